"""The I/O hub against peers that misbehave: one that never reads, and a
connection whose own work fails. Real socketpairs, no HTTP."""

from __future__ import annotations

import socket
import threading

import pytest

from flask_sio09.hub import Hub, HubConnection
from flask_sio09.hub_websocket import HubWebSocket
from flask_sio09.server import Options, Server
from tests.unit.doubles import EchoApp, wait_until


@pytest.fixture
def server():
    srv = Server(Options(max_outbox_bytes=100_000, polling_duration=0.5, close_timeout=1),
                 EchoApp(), monitor=False)
    yield srv
    srv.shutdown()


@pytest.fixture
def hub(server):
    hub = Hub(server)
    server.hub = hub
    return hub


def test_peer_that_never_reads_is_dropped_after_close_timeout(server, hub):
    session = server.new_session({"QUERY_STRING": ""})
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setblocking(False)
    conn = HubWebSocket(hub, ours, session, 1_000_000)
    hub.call(lambda: conn.start(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
    assert wait_until(lambda: session.transport is conn)
    before = hub.connections
    big = "x" * 20_000
    for _ in range(500):  # 10 MB offered; the peer reads none of it
        server.emit_packet({"type": "message", "data": big}, "", to=session.sid)
        if session.closed:
            break
    assert wait_until(lambda: session.closed)
    assert session.close_reason == "outbox overflow"
    # what the hub still holds for it (and its socket) goes once close_timeout passes
    # (close() marks the connection closed before the hub's count drops)
    assert wait_until(lambda: conn.closed and hub.connections == before - 1)
    theirs.close()


class Recording(HubConnection):
    def __init__(self, hub, sock, fail):
        super().__init__(hub, sock, None)
        self.fail = fail
        self.flushed = 0
        self.lost_called = threading.Event()

    def on_readable(self):
        pass

    def flush(self):
        self.flushed += 1
        if self.fail:
            raise RuntimeError("boom")

    def lost(self):
        self.lost_called.set()
        self.close()


def test_a_failing_connection_does_not_cost_the_others_their_flush(hub, caplog):
    caplog.set_level("ERROR", logger="flask_sio09")
    pairs = [socket.socketpair() for _ in range(3)]
    conns = [Recording(hub, ours, fail=(i == 0)) for i, (ours, _) in enumerate(pairs)]
    done = threading.Event()

    def mark_all():
        for conn in conns:
            hub.register(conn, 1)
            hub.mark(conn)  # one batch: the failing one comes first
        # a pass runs its calls before its flushes: signal from the pass after
        hub.call(lambda: hub.call(done.set))

    hub.call(mark_all)
    assert done.wait(10)
    assert [c.flushed for c in conns] == [1, 1, 1]
    assert conns[0].lost_called.is_set() and conns[0].closed
    assert not conns[1].closed and not conns[2].closed
    assert any("a connection failed" in r.getMessage() for r in caplog.records)
    for ours, theirs in pairs:
        theirs.close()


def masked_ping(payload: bytes) -> bytes:
    key = b"\x01\x02\x03\x04"
    return bytes([0x89, 0x80 | len(payload)]) + key + \
        bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_ping_flood_from_a_peer_that_never_reads_stays_bounded(server, hub):
    from flask_sio09.hub import HIGH_WATER

    session = server.new_session({"QUERY_STRING": ""})
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    conn = HubWebSocket(hub, ours, session, 1_000_000)
    hub.call(lambda: conn.start(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
    assert wait_until(lambda: session.transport is conn)
    theirs.settimeout(30)
    batch = masked_ping(b"p" * 125) * 1000
    for _ in range(40):  # 5 MB of pings; sendall returns once the hub read most of it
        theirs.sendall(batch)
    assert len(conn.out) < HIGH_WATER + 200
    assert not conn.closed
    theirs.close()
