"""Thread mode's WebSocket transport (``thread_websocket.ThreadWebSocket``): the
messages run on simple-websocket's reader thread, and what any thread queues is
written by that thread without blocking, in order and within the outbox limit;
only what the socket does not take wakes the request thread.

A real socketpair stands in for the client's connection; the rest of
simple-websocket is not needed (the transport uses its ``sock``, ``event``,
``input_buffer`` and ``connected``). The last tests serve a whole connection
as a WSGI server's request thread does, simple-websocket's upgrade, reader
and close included, over a loopback TCP connection (``served_websocket``).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import types

import pytest

from flask_sio09 import thread_websocket, transports
from flask_sio09.server import HEARTBEAT_TIMEOUT, Options, Server
from flask_sio09.thread_websocket import ReaderSignal, ThreadWebSocket, reader_thread
from tests.unit.test_hub import FrameClient, client_frame

from .doubles import Clock, EchoApp, wait_until


class FakeWs:
    """What ThreadWebSocket uses of a simple_websocket.Server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.event = ReaderSignal()
        self.connected = True
        self.input_buffer: list = []

    def read(self, message) -> None:
        """What simple-websocket's reader thread does with a message it read."""
        self.input_buffer.append(message)
        self.event.set()


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
    """A server, a session and its ThreadWebSocket as ``_pump`` sets them up
    (the request thread being some other thread); yields (server, session,
    transport, client socket)."""
    server = Server(Options(max_outbox_bytes=200_000), EchoApp(), monitor=False,
                    synchronous=True)
    ours, theirs = socket.socketpair()
    ours.setblocking(True)  # as gunicorn and Werkzeug hand it over
    transport = ThreadWebSocket(FakeWs(ours))
    session = server.new_session({"QUERY_STRING": ""})
    transport.server, transport.session = server, session
    server.attach(session, transport)
    transport.ws.event.ready(transport)
    assert transport.flush()
    assert server_frames(read_all(theirs)) == ["1::"]
    yield server, session, transport, theirs
    server.shutdown()
    ours.close()
    theirs.close()


def test_a_packet_another_thread_queues_is_written_by_it_at_once(pump):
    server, session, transport, client = pump
    transport.wakeup.clear()
    session.send("2::")
    assert server_frames(read_all(client)) == ["2::"]
    assert not session.has_outbox()
    assert not transport.wakeup.is_set()  # the request thread had nothing to do


def test_while_the_request_thread_writes_a_packet_waits_for_it(pump):
    server, session, transport, client = pump
    transport.wakeup.clear()
    with transport._send_lock:  # the request thread is in the middle of a write
        session.send("2::")
        assert transport.wakeup.is_set()
        assert read_all(client) == b""
    assert transport.flush()
    assert server_frames(read_all(client)) == ["2::"]


def test_messages_run_on_the_reader_thread_in_order_and_their_acks_go_out(pump):
    server, session, transport, client = pump
    threads = []
    server.app.event = lambda session, namespace, name, args, ack: (
        threads.append(threading.get_ident()), ack(*args))
    reader = threading.Thread(target=lambda: [
        transport.ws.read(f'5:{n}+::{{"name":"echo","args":[{n}]}}') for n in range(1, 51)])
    reader.start()
    reader.join(timeout=30)
    assert set(threads) == {reader.ident} and len(threads) == 50
    assert server_frames(read_all(client)) == [f"6:::{n}+[{n}]" for n in range(1, 51)]
    assert transport.ws.input_buffer == []


def test_a_plain_ack_goes_out_before_its_handler_runs(pump):
    server, session, transport, client = pump
    seen_by_handler = []
    server.app.event = lambda *args, **kwargs: seen_by_handler.append(read_all(client))
    transport.ws.read("3:7::hello")
    assert server_frames(seen_by_handler[0]) == ["6:::7"]


def test_the_reader_waits_for_the_session_to_be_attached_then_runs_what_it_read():
    """A message read before the request thread attached the session waits:
    it must not run before the session is open (its 1:: goes first), nor be
    left behind (simple-websocket would answer a close frame that followed it
    and close the socket before the request thread ran it)."""
    server = Server(Options(), EchoApp(), monitor=False, synchronous=True)
    ours, theirs = socket.socketpair()
    try:
        ws = FakeWs(ours)
        reader = threading.Thread(target=ws.read, args=('5:1+::{"name":"early","args":[1]}',))
        reader.start()
        reader.join(timeout=0.5)
        assert reader.is_alive() and server.app.events == []  # waiting in set()
        transport = ThreadWebSocket(ws)
        session = server.new_session({"QUERY_STRING": ""})
        transport.server, transport.session = server, session
        server.attach(session, transport)
        ws.event.ready(transport)
        reader.join(timeout=30)
        assert not reader.is_alive()
        assert server.app.events == [("early", [1])]
        assert transport.flush()
        assert server_frames(read_all(theirs)) == ["1::", "6:::1+[1]"]
    finally:
        server.shutdown()
        ours.close()
        theirs.close()


def test_a_reader_with_no_session_to_run_for_is_let_go():
    ws = FakeWs(socket.socket())
    try:
        reader = threading.Thread(target=ws.read, args=("3:::x",))
        reader.start()
        ws.event.ready(None)  # the sid was unknown: nothing will be attached
        reader.join(timeout=30)
        assert not reader.is_alive() and ws.event.is_set()
    finally:
        ws.sock.close()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_reader_thread_signals_its_end_whichever_way_it_ends():
    class Ws:
        def __init__(self, fail: bool) -> None:
            self.event = ReaderSignal()
            self.fail = fail

        def _thread(self) -> None:
            if self.fail:
                raise RuntimeError("the reader loop failed")

    for fail in (False, True):
        ws = Ws(fail)
        transport = types.SimpleNamespace(wakeup=threading.Event())
        ws.event.ready(transport)
        thread = reader_thread(ws._thread)
        thread.start()
        thread.join(timeout=30)
        assert ws.event.reader_done and transport.wakeup.is_set()


def test_a_failing_receive_is_logged_and_the_reader_goes_on(pump, caplog):
    server, session, transport, client = pump

    def broken(*args):
        raise RuntimeError("a bug below the handlers")

    server.receive = broken
    transport.wakeup.clear()
    transport.ws.read("3:::x")  # does not raise into simple-websocket's loop
    assert "receiving failed" in caplog.text
    assert transport.wakeup.is_set()


def test_a_client_that_stops_reading_costs_one_batch_beyond_the_outbox(pump):
    """What the socket does not take waits in ``_unsent``; while it does, the
    outbox keeps the rest, so its byte limit still holds, and once the client
    reads again everything arrives in order."""
    server, session, transport, client = pump
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


def test_a_socket_with_a_timeout_is_left_to_the_request_thread(pump):
    """Python waits for room on a socket with a timeout even with
    MSG_DONTWAIT: such a socket is never written aside."""
    server, session, transport, client = pump
    transport.ws.sock.settimeout(5.0)
    transport.wakeup.clear()
    session.send("2::")
    assert session.has_outbox() and transport.wakeup.is_set()
    assert read_all(client) == b""
    assert transport.flush()
    assert server_frames(read_all(client)) == ["2::"]


def test_the_tail_of_an_earlier_write_goes_out_first_then_the_outbox(pump):
    server, session, transport, client = pump
    from flask_sio09 import wsframe

    transport._unsent = wsframe.encode_text("3:::earlier")[3:]  # a frame's tail
    client_prefix = wsframe.encode_text("3:::earlier")[:3]
    session.send("2::")
    assert server_frames(client_prefix + read_all(client)) == ["3:::earlier", "2::"]
    assert not session.has_outbox() and transport._unsent == b""


def test_heard_from_client_counts_messages_read_since_the_last_look():
    ws = types.SimpleNamespace(input_buffer=[], sock=socket.socket())
    try:
        transport = ThreadWebSocket(ws)
        assert transport.heard_from_client() is False
        ws.input_buffer += ["2::", "2::"]  # read by simple-websocket, not yet run
        assert transport.heard_from_client() is True
        assert transport.heard_from_client() is False  # nothing new since
        ws.input_buffer.append("2::")
        assert transport.heard_from_client() is True
    finally:
        ws.sock.close()


def test_nothing_is_written_once_the_closing_frame_is_due(pump):
    server, session, transport, client = pump
    transport.close_writes()
    session.send("2::")
    assert transport.flush() is False
    assert read_all(client) == b""


def test_what_simple_websocket_sends_itself_follows_the_tail_of_our_frame(pump):
    """simple-websocket writes pongs and its closing frame with ``sock.send``:
    that goes through the send lock and after any tail of a frame of ours,
    so a control frame never lands inside a text frame."""
    server, session, transport, client = pump
    from flask_sio09 import wsframe

    frame = wsframe.encode_text("3:::" + "z" * 300)
    transport._unsent = frame[7:]  # a non-blocking write took only the start
    pong = wsframe.encode_pong(b"p1")
    assert transport.ws.sock.send(pong) == len(frame) - 7 + len(pong)
    assert read_all(client) == frame[7:] + pong
    assert transport._unsent == b""


def test_an_emit_from_a_handler_goes_out_before_the_handler_returns(pump):
    server, session, transport, client = pump
    seen_before_return = []

    def handler(session, namespace, name, args, ack):
        session.send('5:::{"name":"progress","args":[]}')
        seen_before_return.append(read_all(client, quiet_for=0.5))
        ack(*args)

    server.app.event = handler
    transport.ws.read('5:1+::{"name":"work","args":[1]}')
    assert server_frames(seen_before_return[0]) == ['5:::{"name":"progress","args":[]}']
    assert server_frames(read_all(client)) == ["6:::1+[1]"]


def test_a_session_closed_between_lookup_and_upgrade_gets_7_not_a_500():
    """Another thread ends the session (a ``?disconnect``, another process's
    claim) after the upgrade looked it up: the client is told ``7:::1+0``,
    as for an unknown sid; the attach raised, and the WSGI server wrote an
    HTTP 500 into the upgraded stream."""
    from flask_sio09 import thread_websocket

    server = Server(Options(), EchoApp(), monitor=False, synchronous=True)
    ours, theirs = socket.socketpair()
    try:
        transport = ThreadWebSocket(FakeWs(ours))
        session = server.new_session({"QUERY_STRING": ""})
        server.close_session(session, "client disconnect")
        thread_websocket._pump(server, session, transport)
        assert server_frames(read_all(theirs, quiet_for=0.2)) == ["7:::1+0"]
    finally:
        server.shutdown()
        ours.close()
        theirs.close()


# --- the whole connection: simple-websocket, the request thread, the close ---------

UPGRADE_ENVIRON = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
                   "HTTP_HOST": "127.0.0.1", "HTTP_UPGRADE": "websocket",
                   "HTTP_CONNECTION": "Upgrade", "HTTP_SEC_WEBSOCKET_VERSION": "13",
                   "HTTP_SEC_WEBSOCKET_KEY": "dGhlIHNhbXBsZSBub25jZQ=="}


@contextlib.contextmanager
def served_websocket(server):
    """A session's WebSocket as a gunicorn request thread serves it in thread
    mode (``transports.serve_websocket``: simple-websocket's upgrade and
    reader, the close), over a loopback TCP connection: yields (session,
    client), the client past its ``1::`` and the connect job done."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.create_connection(listener.getsockname())
        ours, _ = listener.accept()
    session = server.new_session({"QUERY_STRING": ""})
    environ = {**UPGRADE_ENVIRON, "gunicorn.socket": ours}

    def request():
        with contextlib.suppress(StopIteration):  # (gunicorn's "close it quietly")
            transports.serve_websocket(server, session.sid, environ, None)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    client = FrameClient(theirs)
    try:
        assert client.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101")
        assert client.text() == "1::"
        assert wait_until(lambda: not session.jobs_running)  # (it sent the 1:: and ends)
        yield session, client
    finally:
        theirs.close()
        thread.join(10)
        ours.close()
        server.shutdown()


def test_a_message_over_the_byte_limit_in_utf8_but_not_in_characters_closes_with_1009():
    """max_http_buffer_size counts UTF-8 bytes, as in hub mode: a message of
    64 characters and 124 bytes over a 100-byte limit is not run, and the
    connection closes with 1009. Broken, it runs, as simple-websocket counts
    characters (probe AD, mutation X01)."""
    server = Server(Options(max_http_buffer_size=100), EchoApp(), monitor=False,
                    synchronous=True)
    with served_websocket(server) as (session, client):
        client.sock.sendall(client_frame("3:::" + "é" * 60))
        opcode, payload = client.frame()
        assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1009))
        assert server.app.events == []


def test_a_websocket_whose_process_stops_is_closed_with_1001():
    """When the process stops serving (``go_away``), a thread-mode WebSocket
    is closed with 1001 (going away), as in hub mode. Broken, it is closed
    with 1000 (probe AD, mutation X02)."""
    server = Server(Options(), EchoApp(), monitor=False, synchronous=True)
    with served_websocket(server) as (session, client):
        server.go_away()
        opcode, payload = client.frame()
        assert (opcode, payload[:2]) == (0x8, struct.pack("!H", 1001))


def test_an_unresponsive_clients_connection_is_reset_after_the_close_frame(monkeypatch):
    """A client silent past heartbeat_timeout gets its close frame, and then
    its connection is reset: what the kernel still held for it is dropped.
    Broken, the connection is closed gracefully (probe AD, mutation X03)."""
    # (the close's answer below may come late on a busy machine: it is waited for)
    monkeypatch.setattr(thread_websocket, "CLOSE_HANDSHAKE_SECONDS", 60.0)
    clock = Clock()
    server = Server(Options(heartbeat_interval=5, heartbeat_timeout=12), EchoApp(),
                    clock=clock, monitor=False, synchronous=True)
    with served_websocket(server) as (session, client):
        clock.now += 13
        server.monitor_step(clock.now)
        assert session.close_reason == HEARTBEAT_TIMEOUT
        assert client.frame()[0] == 0x8
        client.sock.sendall(client_frame(payload=struct.pack("!H", 1000), opcode=0x8))
        with pytest.raises(ConnectionResetError):
            client.sock.recv(1)
