"""Thread mode's WebSocket transport (``transports.ThreadWebSocket``): what
other threads queue while the pump thread runs a handler is written by them,
without blocking, in order, and within the outbox limit.

A real socketpair stands in for the client's connection; the rest of
simple-websocket is not needed (the transport uses its ``sock``, ``event`` and
``connected``).
"""

from __future__ import annotations

import socket
import threading
import types

import pytest

from flask_sio09.server import Options, Server
from flask_sio09.transports import ThreadWebSocket

from .doubles import EchoApp


class FakeWs:
    """What ThreadWebSocket uses of a simple_websocket.Server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.event = threading.Event()
        self.connected = True


def server_frames(data: bytes) -> list[str]:
    """The text frames a server wrote (unmasked, RFC 6455 §5.2)."""
    texts, pos = [], 0
    while pos < len(data):
        assert data[pos] == 0x81, data[pos:pos + 10]
        length, pos = data[pos + 1], pos + 2
        if length == 126:
            length, pos = int.from_bytes(data[pos:pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(data[pos:pos + 8], "big"), pos + 8
        texts.append(data[pos:pos + length].decode())
        pos += length
    assert pos == len(data)
    return texts


def read_all(sock: socket.socket, quiet_for: float = 0.0) -> bytes:
    """What the socket has now, or (``quiet_for`` > 0) until nothing came for
    that many seconds."""
    if quiet_for:
        sock.settimeout(quiet_for)
    else:
        sock.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except (BlockingIOError, TimeoutError):
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.fixture
def pump():
    """A server, a session and its ThreadWebSocket as ``_pump`` sets them up,
    pumped by a thread that is not this one; yields (server, session,
    transport, client socket)."""
    server = Server(Options(max_outbox_bytes=200_000), EchoApp(), monitor=False,
                    synchronous=True)
    ours, theirs = socket.socketpair()
    ours.setblocking(True)  # as gunicorn and Werkzeug hand it over
    transport = ThreadWebSocket(FakeWs(ours))
    session = server.new_session({"QUERY_STRING": ""})
    transport.pump_ident = -1  # the pump is some other thread
    transport.session = session
    server.attach(session, transport)
    assert transport.flush()
    assert server_frames(read_all(theirs)) == ["1::"]
    yield server, session, transport, theirs
    server.shutdown()
    ours.close()
    theirs.close()


def test_a_heartbeat_queued_while_a_handler_runs_is_written_at_once(pump):
    server, session, transport, client = pump
    transport.in_handler = True
    transport.ws.event.clear()
    session.send("2::")
    assert server_frames(read_all(client)) == ["2::"]
    assert not session.has_outbox()


def test_outside_a_handler_the_pump_is_woken_and_writes(pump):
    server, session, transport, client = pump
    transport.ws.event.clear()
    session.send("2::")
    assert transport.ws.event.is_set()
    assert read_all(client) == b""  # nothing written aside
    assert transport.flush()
    assert server_frames(read_all(client)) == ["2::"]


def test_a_client_that_stops_reading_costs_one_batch_beyond_the_outbox(pump):
    """What the socket does not take waits in ``_unsent``; while it does, the
    outbox keeps the rest, so its byte limit still holds, and once the client
    reads again everything arrives in order."""
    server, session, transport, client = pump
    transport.in_handler = True
    packet = "3:::" + "x" * 1000
    sent = 0
    # fill the socket buffers: packets then stay queued in the outbox
    for _ in range(10_000):
        session.send(f"{packet}{sent}")
        sent += 1
        if session.has_outbox():
            break
    assert session.has_outbox(), "the socket never filled up"
    assert len(transport._unsent) < 2 * len(packet)
    while not session.closed and sent < 10_000:
        session.send(f"{packet}{sent}")
        sent += 1
    if not session.closed:
        assert session.has_outbox()
    transport.in_handler = False
    received: list[bytes] = []
    # read to the end of stream (the bound only ends a hung test)
    reader = threading.Thread(target=lambda: received.append(read_all(client, quiet_for=60)))
    reader.start()
    assert transport.flush()
    transport.ws.sock.shutdown(socket.SHUT_WR)
    reader.join(timeout=90)
    assert received, "the reader did not finish"
    texts = server_frames(b"".join(received))
    assert texts == [f"{packet}{n}" for n in range(len(texts))]
    assert len(texts) >= sent - 1


def test_a_socket_with_a_timeout_is_left_to_the_pump(pump):
    """Python waits for room on a socket with a timeout even with
    MSG_DONTWAIT: such a socket is never written aside."""
    server, session, transport, client = pump
    transport.ws.sock.settimeout(5.0)
    transport.in_handler = True
    transport.ws.event.clear()
    session.send("2::")
    assert session.has_outbox()
    assert read_all(client) == b""
    transport.in_handler = False  # the handler returned: the pump flushes
    assert transport.flush()
    assert server_frames(read_all(client)) == ["2::"]


def test_the_tail_of_an_earlier_write_goes_out_first_then_the_outbox(pump):
    server, session, transport, client = pump
    from flask_sio09 import wsframe

    transport._unsent = wsframe.encode_text("3:::earlier")[3:]  # a frame's tail
    client_prefix = wsframe.encode_text("3:::earlier")[:3]
    transport.in_handler = True
    session.send("2::")
    assert server_frames(client_prefix + read_all(client)) == ["3:::earlier", "2::"]
    assert not session.has_outbox() and transport._unsent == b""


def test_heard_from_client_counts_messages_read_since_the_last_look():
    ws = types.SimpleNamespace(input_buffer=[], sock=socket.socket())
    try:
        transport = ThreadWebSocket(ws)
        assert transport.heard_from_client() is False
        ws.input_buffer += ["2::", "2::"]  # read by simple-websocket, not yet by the pump
        assert transport.heard_from_client() is True
        assert transport.heard_from_client() is False  # nothing new since
        ws.input_buffer.append("2::")
        assert transport.heard_from_client() is True
    finally:
        ws.sock.close()
