"""The I/O hub over real socketpairs: WebSocket framing both ways, ordering,
pings, protocol errors, slow readers, and parked long-polls."""

import contextlib
import socket
import struct
import threading

import pytest

from flask_sio09.hub import Hub, HubPoll
from flask_sio09.hub_websocket import HubWebSocket
from flask_sio09.server import Options, Server
from flask_sio09.stopping import GOING_AWAY
from tests.unit.doubles import Clock, EchoApp, wait_until


def client_frame(text=None, opcode=0x1, payload=None, mask=b"\x01\x02\x03\x04", fin=True):
    data = text.encode("utf-8") if text is not None else payload
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(data)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    return head + mask + masked


class Transport:
    """A stand-in transport that only counts wake-ups."""

    persistent = False

    def __init__(self):
        self.wakes = 0

    def wake(self):
        self.wakes += 1


class FrameClient:
    """Reads the hub's unmasked server frames from the client end."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(10)
        self.buf = b""

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def read_until(self, marker):
        while marker not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head + marker

    def frame(self):
        self._need(2)
        opcode = self.buf[0] & 0x0F
        length = self.buf[1] & 0x7F
        pos = 2
        if length == 126:
            self._need(4)
            length = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif length == 127:
            self._need(10)
            length = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        self._need(pos + length)
        payload, self.buf = self.buf[pos:pos + length], self.buf[pos + length:]
        return opcode, payload

    def text(self):
        opcode, payload = self.frame()
        assert opcode == 0x1, (opcode, payload)
        return payload.decode("utf-8")


@pytest.fixture
def app():
    return EchoApp()


@pytest.fixture
def server(app):
    srv = Server(Options(max_outbox_bytes=200_000, polling_duration=0.5, close_timeout=5),
                 app, monitor=False)
    yield srv
    srv.shutdown()


@pytest.fixture
def hub(server):
    hub = Hub(server)
    server.hub = hub
    return hub


def upgrade(hub, session, max_message_size=1_000_000):
    """A WebSocket upgrade onto ``session`` (None: an unknown sid), handed to
    the hub: (connection, client), the client past the 101."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    conn = HubWebSocket(hub, ours, session, max_message_size)
    hub.call(lambda: conn.start(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
    client = FrameClient(theirs)
    assert client.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101")
    return conn, client


def open_websocket(server, hub, max_message_size=1_000_000):
    session = server.new_session({"QUERY_STRING": ""})
    conn, client = upgrade(hub, session, max_message_size)
    assert client.text() == "1::"
    return session, conn, client


def hold_wait_events(app):
    """Make the handler of an event named ``wait`` block until the returned
    event is set (at most 30 s); other events are echoed."""
    gate = threading.Event()
    echo = app.event

    def event(session, namespace, name, args, ack, packet=False):
        if name == "wait":
            gate.wait(30)
        echo(session, namespace, name, args, ack)

    app.event = event
    return gate


def test_messages_in_order_and_acks_one_frame_each(server, hub, app):
    session, conn, client = open_websocket(server, hub)
    burst = b"".join(client_frame(f'5:{i}+::{{"name":"n","args":[{i}]}}') for i in range(1, 201))
    client.sock.sendall(burst)
    answers = [client.text() for _ in range(200)]
    assert answers == [f"6:::{i}+[{i}]" for i in range(1, 201)]
    assert [e[1][0] for e in app.events] == list(range(1, 201))


def test_fragmented_unicode_and_ping(server, hub):
    session, conn, client = open_websocket(server, hub)
    text = '5:1+::{"name":"x","args":["é😀\u2028"]}'
    raw = text.encode("utf-8")
    first = client_frame(payload=raw[:13], opcode=0x1, fin=False)
    ping = client_frame(payload=b"hb", opcode=0x9)
    rest = client_frame(payload=raw[13:], opcode=0x0)
    client.sock.sendall(first + ping + rest)
    assert client.frame() == (0xA, b"hb")
    assert client.text() == '6:::1+["é😀\\u2028"]'


def test_server_emit_from_another_thread_wakes_hub(server, hub):
    session, conn, client = open_websocket(server, hub)
    threading.Thread(target=lambda: server.emit_packet(
        {"type": "event", "name": "tick", "args": [1]}, "", to=session.sid)).start()
    assert client.text() == '5:::{"name":"tick","args":[1]}'


def test_unmasked_frame_closes_with_1002_and_ends_session(server, hub, app):
    session, conn, client = open_websocket(server, hub)
    client.sock.sendall(b"\x81\x05hello")
    opcode, payload = client.frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1002
    assert wait_until(lambda: session.closed)
    assert wait_until(lambda: app.disconnects == 1), (app.disconnects, session.namespaces, session.close_reason, session.jobs, session.jobs_running)


def test_too_big_message_closes_with_1009(server, hub):
    session, conn, client = open_websocket(server, hub, max_message_size=1000)
    client.sock.sendall(client_frame("3:::" + "x" * 2000))
    opcode, payload = client.frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1009


def test_malformed_packet_is_dropped_and_connection_lives(server, hub):
    session, conn, client = open_websocket(server, hub)
    client.sock.sendall(client_frame("99::junk") + client_frame('5:1+::{"name":"ok"}'))
    assert client.text() == "6:::1"


def test_close_frame_and_peer_loss_end_session_once(server, hub, app):
    session, conn, client = open_websocket(server, hub)
    client.sock.sendall(client_frame(payload=struct.pack("!H", 1000), opcode=0x8))
    opcode, _ = client.frame()
    assert opcode == 0x8
    assert wait_until(lambda: session.closed and app.disconnects == 1)
    other, _, other_client = open_websocket(server, hub)
    other_client.sock.close()
    assert wait_until(lambda: other.closed and app.disconnects == 2)


@pytest.mark.patches_internals
def test_a_peer_gone_after_its_close_frame_is_not_read_again_while_handlers_run(app):
    # its close waits for the handler of the event before it; meanwhile the
    # socket's end of stream must end the reading, not be reported (and
    # read) on every round until the handler is done: a spinning hub
    gate = hold_wait_events(app)
    server = Server(Options(), app, monitor=False)
    hub = server.hub = Hub(server)
    try:
        session, conn, client = open_websocket(server, hub)
        reads = []
        on_readable = conn.on_readable

        def counted():
            reads.append(1)
            on_readable()

        conn.on_readable = counted
        client.sock.sendall(client_frame('5:::{"name":"wait","args":[]}')
                            + client_frame(payload=struct.pack("!H", 1000), opcode=0x8))
        client.sock.close()
        for _ in range(50):  # half a second of the hub's rounds, handler waiting
            gate.wait(0.01)
        assert len(reads) <= 5, len(reads)
        gate.set()
        assert wait_until(lambda: session.closed)
    finally:
        gate.set()
        server.shutdown()


@pytest.mark.parametrize("sent, echoed", [
    (struct.pack("!H", 3000) + b"bye", struct.pack("!H", 3000)),
    (struct.pack("!H", 1001), struct.pack("!H", 1001)),
    (b"", b""),
])
def test_a_clients_close_code_is_echoed(server, hub, sent, echoed):
    # as wsproto answers in thread mode (the hub answered 1000 to every close)
    session, _, client = open_websocket(server, hub)
    client.sock.sendall(client_frame(payload=sent, opcode=0x8))
    assert client.frame() == (0x8, echoed)
    assert wait_until(lambda: session.closed)


def test_slow_reader_hits_outbox_limit_and_is_closed(server, hub):
    session, conn, client = open_websocket(server, hub)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    big = "x" * 50_000
    for _ in range(400):  # 20 MB offered to a client that reads nothing
        server.emit_packet({"type": "message", "data": big}, "", to=session.sid)
        if session.closed:
            break
    assert wait_until(lambda: session.closed)
    assert session.close_reason == "outbox overflow"
    assert len(conn.out) < 4 * (1 << 20)


def test_a_slow_reader_cut_for_its_outbox_loses_its_connection_at_once(app):
    # its client stopped reading: the unsent bytes and the socket are let go
    # at once, not held for close_timeout (here far longer than the wait)
    srv = Server(Options(max_outbox_bytes=200_000, close_timeout=600), app, monitor=False)
    hub = Hub(srv)
    srv.hub = hub
    try:
        session, conn, client = open_websocket(srv, hub)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        big = "x" * 50_000
        for _ in range(400):
            srv.emit_packet({"type": "message", "data": big}, "", to=session.sid)
            if session.closed:
                break
        assert wait_until(lambda: session.closed)
        assert session.close_reason == "outbox overflow"
        assert wait_until(lambda: conn.closed, deadline=30)
        assert not conn.out
    finally:
        srv.shutdown()


@contextlib.contextmanager
def stalled_websocket(app):
    """A WebSocket whose client reads nothing, with about 2 MB waiting in the
    hub's buffer for it, on a server whose close_timeout (600 s) no test
    waits for: (server, session, connection, client)."""
    srv = Server(Options(close_timeout=600), app, monitor=False)
    hub = Hub(srv)
    srv.hub = hub
    try:
        session, conn, client = open_websocket(srv, hub)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for _ in range(40):
            srv.emit_packet({"type": "message", "data": "x" * 50_000}, "", to=session.sid)
        assert wait_until(lambda: len(conn.out) > 0)
        yield srv, session, conn, client
    finally:
        srv.shutdown()


def test_a_websocket_timed_out_with_bytes_unsent_is_reset_at_once(app):
    # its client stopped answering (and reading): not kept for close_timeout
    from flask_sio09.server import HEARTBEAT_TIMEOUT

    with stalled_websocket(app) as (srv, session, conn, client):
        srv.close_session(session, HEARTBEAT_TIMEOUT)
        assert wait_until(lambda: conn.closed, deadline=30)
        assert not conn.out


def test_an_ended_websocket_is_not_read_while_its_last_bytes_wait(app):
    # the server ends a connection whose client neither reads nor stops
    # sending: until its last bytes are written (or close_timeout), the hub
    # reads nothing more, so the client's sends back up into its own buffers
    # instead of being read, and dropped, at full speed
    with stalled_websocket(app) as (srv, session, conn, client):
        srv.disconnect(session.sid)
        assert wait_until(lambda: session.closed and not conn.reading)
        client.sock.setblocking(False)
        flood = client_frame("5:::" + "y" * 60_000)
        sent = 0
        while sent < 64 * (1 << 20):  # far more than the kernel buffers
            try:
                sent += client.sock.send(flood)
            except BlockingIOError:
                break
        assert sent < 64 * (1 << 20)
        assert not conn.closed  # its last bytes still wait for the client


def open_slow_reader(server, hub, kind):
    """A WebSocket or htmlfile client (``kind``) with a small receive buffer,
    connected and past its ``1::``: (session, hub connection, client)."""
    if kind == "websocket":
        session, conn, client = open_websocket(server, hub)
    else:
        session = server.new_session({"QUERY_STRING": ""})
        conn, client = open_stream(server, hub, session)
        assert client.read_until(b"\r\n1::\r\n")
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    return session, conn, client


@pytest.mark.parametrize("kind", ["websocket", "htmlfile"])
def test_packets_left_in_the_outbox_past_the_high_water_mark_follow_when_the_client_reads(
        app, kind):
    # A client that does not read for a while: the hub stops taking packets
    # from the session's outbox once a megabyte waits on the socket. When the
    # client reads again, the rest must follow without waiting for another
    # packet to wake the connection (it waited for the next heartbeat).
    srv = Server(Options(max_outbox_bytes=16_000_000), app, monitor=False)
    hub = srv.hub = Hub(srv)
    try:
        session, conn, client = open_slow_reader(srv, hub, kind)
        big = "x" * 50_000
        for i in range(40):  # 2 MB, from a thread other than the hub's
            srv.emit_packet({"type": "message", "data": f"{i:02d}" + big}, "", to=session.sid)
        # (whether the last of these wait in the outbox too depends on when the
        # hub's flushes came: it takes all the outbox holds while under the mark)
        assert wait_until(lambda: len(conn.out) >= (1 << 20))
        for i in range(40, 60):  # these stay in the outbox
            srv.emit_packet({"type": "message", "data": f"{i:02d}" + big}, "", to=session.sid)
        assert wait_until(lambda: session.has_outbox())
        if kind == "websocket":
            got = [client.text()[4:6] for _ in range(60)]  # (each read waits up to 10 s)
            assert got == [f"{i:02d}" for i in range(60)]
        else:  # the last packet comes (each read waits up to 10 s)
            assert client.read_until(b"3:::59" + b"x" * 50_000)
    finally:
        srv.shutdown()


def test_a_client_that_sends_faster_than_its_handlers_run_is_read_no_further(app):
    # A handler that waits: what the client sends meanwhile stays in the
    # kernel's buffers once about INBOUND_LIMIT bytes wait for their handlers,
    # instead of growing the session's job queue without a bound; reading
    # goes on once the handlers catch up, and nothing is lost.
    from flask_sio09 import server as server_module

    gate = hold_wait_events(app)
    server = Server(Options(max_outbox_bytes=16_000_000), app, monitor=False)
    hub = server.hub = Hub(server)
    try:
        session, conn, client = open_websocket(server, hub)
        client.sock.sendall(client_frame('5:1+::{"name":"wait","args":[]}'))
        pad = "y" * 10_000
        count = 600  # 6 MB: far more than the limit and the kernel's buffers

        def flood():
            for i in range(count):
                client.sock.sendall(client_frame(f'5:{i + 2}+::{{"name":"n","args":["{pad}"]}}'))

        sender = threading.Thread(target=flood, daemon=True)
        sender.start()
        most = server_module.INBOUND_LIMIT // 10_000 + 20
        assert wait_until(lambda: not conn.reading)
        for _ in range(50):  # while the handler waits, the queue stays bounded
            assert len(session.jobs) <= most, len(session.jobs)
            gate.wait(0.01)
        assert sender.is_alive()  # its sends wait for our reads
        gate.set()
        answers = [client.text() for _ in range(count + 1)]
        assert answers[0] == "6:::1" and answers[-1] == f'6:::{count + 1}+["{pad}"]'
        sender.join(20)
        assert wait_until(lambda: conn.reading)  # (the last round's resume may follow)
    finally:
        gate.set()
        server.shutdown()


def test_unknown_session_gets_error_packet(server, hub):
    _, client = upgrade(hub, None, 1000)
    assert client.text() == "7:::1+0"
    assert client.frame()[0] == 0x8


def test_an_upgrade_onto_a_session_ended_between_polls_gets_its_0_then_the_close(server, hub):
    """A polling client's session that the server ended between two polls
    keeps its ``0::`` for the next transport: a WebSocket upgrade gets it,
    then the close frame. Broken, the client gets the close alone, and
    reconnects instead of staying disconnected (probe AD, mutation H10)."""
    session = server.new_session({"QUERY_STRING": ""})
    poll = Transport()
    server.attach(session, poll)
    assert wait_until(lambda: session.is_connected("") and session.has_outbox())
    assert server.release(session, poll) == ["1::"]
    server.disconnect(session.sid)
    _, client = upgrade(hub, server.get_session(session.sid, draining=True))
    assert client.text() == "0::"
    assert client.frame() == (0x8, struct.pack("!H", 1000))


def test_a_websocket_whose_process_stops_is_closed_with_1001(server, hub):
    """When the process stops serving (``go_away``), each WebSocket is closed
    with 1001 (going away), which sends its client to a process that serves.
    Broken, it is closed with 1000 (probe AD, mutation H05)."""
    session, _, client = open_websocket(server, hub)
    server.go_away()
    assert client.frame() == (0x8, struct.pack("!H", 1001))
    assert session.close_reason == GOING_AWAY


def test_a_websocket_client_answering_each_heartbeat_outlives_heartbeat_timeout(app):
    """A client that answers every ``2::`` stays connected however long it
    stays. Broken, every WebSocket is cut at heartbeat_timeout (probe AD,
    mutation S29)."""
    clock = Clock()
    srv = Server(Options(heartbeat_interval=5, heartbeat_timeout=12), app, clock=clock,
                 monitor=False)
    hub = srv.hub = Hub(srv)
    try:
        session, _, client = open_websocket(srv, hub)
        for _ in range(6):  # 30 s: two and a half heartbeat timeouts
            clock.now += 5
            srv.monitor_step(clock.now)
            assert not session.closed
            assert client.text() == "2::"
            # a ping after the answer: its pong says the answer was read
            client.sock.sendall(client_frame("2::") + client_frame(payload=b"hb", opcode=0x9))
            assert client.frame() == (0xA, b"hb")
    finally:
        srv.shutdown()


def park(server, hub, session, deadline_in=10, pair=None):
    """A long-poll parked in the hub: (connection, client socket); over
    ``pair`` (ours, theirs) when given, else a socketpair."""
    ours, theirs = pair if pair is not None else socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    conn = HubPoll(hub, ours, session, lambda payload: payload.encode("utf-8"),
                   server.clock() + deadline_in)
    hub.call(conn.start)
    return conn, theirs


def read_all(sock):
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data.decode("utf-8")
        data += chunk


def test_parked_poll_answers_with_connect_then_noop(server, hub):
    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    assert read_all(sock) == "1::"
    _, sock = park(server, hub, session, deadline_in=0.2)
    assert read_all(sock) == "8::"


def test_parked_poll_wakes_on_emit_and_frames_several(server, hub):
    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    read_all(sock)
    _, sock = park(server, hub, session, deadline_in=5)
    assert wait_until(lambda: session.transport is not None)
    server.emit_packet({"type": "message", "data": "a"}, "", to=session.sid)
    body = read_all(sock)
    assert body.startswith("3:::a") or body.startswith("\ufffd")


def test_poll_whose_client_hangs_up_loses_nothing(server, hub):
    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    read_all(sock)
    conn, sock = park(server, hub, session, deadline_in=30)
    assert wait_until(lambda: session.transport is conn)
    sock.close()
    assert wait_until(lambda: conn.closed)
    server.emit_packet({"type": "message", "data": "kept"}, "", to=session.sid)
    _, sock = park(server, hub, session)
    assert read_all(sock) == "3:::kept"


def test_newer_poll_supersedes_older_with_noop(server, hub):
    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    read_all(sock)
    first, first_sock = park(server, hub, session, deadline_in=30)
    assert wait_until(lambda: session.transport is first)
    second, second_sock = park(server, hub, session, deadline_in=30)
    assert read_all(first_sock) == "8::"
    server.emit_packet({"type": "message", "data": "new"}, "", to=session.sid)
    assert read_all(second_sock) == "3:::new"


def test_hub_connection_count_returns_to_zero(server, hub):
    before = hub.connections
    session, conn, client = open_websocket(server, hub)
    assert hub.connections == before + 1
    client.sock.close()
    assert wait_until(lambda: hub.connections == before)


def open_stream(server, hub, session):
    from flask_sio09.hub import HubStream

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    conn = HubStream(hub, ours, session, lambda packets: "|".join(packets).encode("utf-8"))
    hub.call(lambda: conn.start(b"HEAD\r\n\r\n"))
    return conn, FrameClient(theirs)


def test_stream_writes_chunks_then_terminates_on_server_disconnect(server, hub, app):
    session = server.new_session({"QUERY_STRING": ""})
    conn, client = open_stream(server, hub, session)
    assert client.read_until(b"HEAD\r\n\r\n") == b"HEAD\r\n\r\n"
    assert client.read_until(b"\r\n1::\r\n") == b"3\r\n1::\r\n"
    server.emit_packet({"type": "message", "data": "hi"}, "", to=session.sid)
    assert client.read_until(b"3:::hi\r\n") == b"6\r\n3:::hi\r\n"
    server.disconnect(session.sid)
    assert client.read_until(b"0\r\n\r\n").endswith(b"0::\r\n0\r\n\r\n")
    assert wait_until(lambda: conn.closed and app.disconnects == 1)


def test_stream_loss_ends_session(server, hub, app):
    session = server.new_session({"QUERY_STRING": ""})
    conn, client = open_stream(server, hub, session)
    client.read_until(b"\r\n1::\r\n")
    client.sock.close()
    assert wait_until(lambda: session.closed and app.disconnects == 1)


def test_answered_poll_half_closes_and_waits_for_the_peer(server, hub):
    session = server.new_session({"QUERY_STRING": ""})
    conn, sock = park(server, hub, session)
    assert read_all(sock) == "1::"  # end of stream: the server half-closed
    assert conn.lingering and not conn.closed
    sock.sendall(b"late bytes are drained, not a reason to reset")
    sock.close()
    assert wait_until(lambda: conn.closed)


def test_poll_handed_over_from_its_thread_misses_nothing(server, hub):
    # the WSGI thread's waiter stays attached until the hub takes over, so a
    # disconnect in between still reaches the client as "0::"
    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    read_all(sock)
    waiter = Transport()
    server.attach(session, waiter)
    server.disconnect(session.sid)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    conn = HubPoll(hub, ours, session, lambda p: p.encode("utf-8"), server.clock() + 30,
                   replaces=waiter)
    hub.call(conn.start)
    assert read_all(theirs) == "0::"


def test_poll_handed_over_after_a_newer_poll_answers_noop(server, hub):
    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    read_all(sock)
    waiter, newer = Transport(), Transport()
    server.attach(session, waiter)
    server.attach(session, newer)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    conn = HubPoll(hub, ours, session, lambda p: p.encode("utf-8"), server.clock() + 30,
                   replaces=waiter)
    hub.call(conn.start)
    assert read_all(theirs) == "8::"
    assert session.transport is newer


def tcp_socketpair(rcvbuf=None):
    """A loopback TCP connection: (the hub's end, non-blocking; the client's
    end). Unlike a socketpair it can be reset (RST), and shows the reset."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        theirs = socket.socket()
        if rcvbuf is not None:  # (before connecting: it sets the window offered)
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        theirs.settimeout(10)
        theirs.connect(listener.getsockname())
        ours, _ = listener.accept()
    ours.setblocking(False)
    return ours, theirs


def wait_readable(sock, seconds=10.0):
    """Wait until ``sock`` has something to read (data, an end of stream or a
    reset), reading nothing."""
    import select

    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def hub_round(hub):
    """Wait until the hub has flushed every connection marked before this
    call (a call queued by a call runs after the flushes of that pass)."""
    done = threading.Event()
    hub.call(lambda: hub.call(done.set))
    assert done.wait(20)


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_packet_emitted_as_a_parked_polls_client_hangs_up_waits_for_its_next_poll(
        server, hub, how):
    """The client of a parked poll hangs up (FIN, or RST) just before a packet
    is emitted to it, in the hub round that has not seen the hang-up yet: the
    packet must stay queued for the client's next poll, not be written to the
    dead connection and lost (probe AG, mutations 22 and 57)."""
    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    assert read_all(sock) == "1::"
    pair = tcp_socketpair() if how == "reset" else socket.socketpair()
    conn, sock = park(server, hub, session, deadline_in=30, pair=pair)
    assert wait_until(lambda: session.transport is conn)
    seen = []

    def hang_up_then_emit():  # on the hub thread: its poller has not looked yet
        if how == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        seen.append(wait_readable(conn.sock))  # the hang-up has reached our end
        server.emit_packet({"type": "message", "data": "late"}, "", to=session.sid)

    hub.call(hang_up_then_emit)
    assert wait_until(lambda: conn.closed)
    assert seen == [True]
    _, sock = park(server, hub, session, deadline_in=2)
    assert read_all(sock) == "3:::late"  # broken: "8::" at the deadline, the packet lost


def test_a_parked_polls_answer_larger_than_the_socket_buffers_arrives_whole(app):
    """A poll answered with more than the socket takes at once is closed only
    once all of it is written: a client reading slower than the hub writes
    must get the whole answer, not a cut one (probe AG, mutation 17)."""
    srv = Server(Options(max_outbox_bytes=16_000_000, polling_duration=30, close_timeout=60),
                 app, monitor=False)
    hub = srv.hub = Hub(srv)
    try:
        session = srv.new_session({"QUERY_STRING": ""})
        _, sock = park(srv, hub, session)
        assert read_all(sock) == "1::"
        conn, sock = park(srv, hub, session, deadline_in=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert wait_until(lambda: session.transport is conn)
        big = "x" * 4_000_000  # far more than the kernel's buffers
        srv.emit_packet({"type": "message", "data": big}, "", to=session.sid)
        body = read_all(sock)
        received = len(body)
        assert received == len("3:::" + big)  # broken: cut at a few hundred kB
        assert body == "3:::" + big
    finally:
        srv.shutdown()


def test_a_parked_polls_client_that_hangs_up_for_good_has_its_session_end_at_close_timeout(
        server, hub):
    """A polling client that hangs up during a poll and never comes back: its
    session is detached at once, so close_timeout later it ends (and its
    disconnect handlers run). Broken, the dead poll stays its transport and
    the session lives for ever (probe AG, mutation 23)."""
    from flask_sio09.server import CLOSE_TIMEOUT

    session = server.new_session({"QUERY_STRING": ""})
    _, sock = park(server, hub, session)
    assert read_all(sock) == "1::"
    conn, sock = park(server, hub, session, deadline_in=30)
    assert wait_until(lambda: session.transport is conn)
    sock.close()
    assert wait_until(lambda: conn.closed)
    assert session.transport is None and session.detached_since is not None
    server.monitor_step(server.clock() + server.options.close_timeout + 1)
    assert session.closed and session.close_reason == CLOSE_TIMEOUT


@pytest.mark.parametrize("kind", ["websocket", "htmlfile"])
def test_a_client_that_stops_reading_is_cut_even_when_its_packets_come_one_at_a_time(
        server, hub, kind):
    """Packets emitted one at a time, each taken by the hub before the next
    comes, to a client that reads nothing: once HIGH_WATER bytes wait on its
    connection the hub takes no more, so the outbox fills and the session is
    closed (outbox overflow). Broken, the hub's own buffer takes them all and
    grows without a bound (probe AG, mutations 20 and 26)."""
    session, conn, client = open_slow_reader(server, hub, kind)
    big = "x" * 50_000
    for _ in range(100):  # 5 MB: 25 times max_outbox_bytes
        server.emit_packet({"type": "message", "data": big}, "", to=session.sid)
        if session.closed:
            break
        hub_round(hub)  # the next packet once the hub has flushed this one
    assert session.closed, (len(conn.out), session.outbox_size())
    assert session.close_reason == "outbox overflow"


def test_a_websocket_whose_last_bytes_miss_close_timeout_is_reset(app):
    """A WebSocket the server ended whose client stopped reading: once
    close_timeout passes with its last bytes unsent, the connection is reset
    (RST), which drops what the kernel still holds for it. Closed gracefully
    (FIN), the kernel would keep those bytes, and the connection, for as long
    as the client stays (probe AG, mutations 05 and 60)."""
    clock = Clock()
    srv = Server(Options(max_outbox_bytes=16_000_000, close_timeout=60), app, clock=clock,
                 monitor=False)
    hub = srv.hub = Hub(srv, clock=clock)
    try:
        session = srv.new_session({"QUERY_STRING": ""})
        ours, theirs = tcp_socketpair(rcvbuf=4096)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        conn = HubWebSocket(hub, ours, session, 1_000_000)
        hub.call(lambda: conn.start(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"))
        client = FrameClient(theirs)
        assert client.read_until(b"\r\n\r\n").startswith(b"HTTP/1.1 101")
        assert client.text() == "1::"
        for _ in range(40):  # 2 MB the client does not read
            srv.emit_packet({"type": "message", "data": "x" * 50_000}, "", to=session.sid)
        srv.disconnect(session.sid)  # not for an unresponsive client: it waits for the flush
        assert wait_until(lambda: session.closed and len(conn.out) > 0 and conn._close_when_flushed)
        clock.now += 61  # past close_timeout
        hub.call(lambda: None)  # (a round of the hub, which looks at its timers)
        assert wait_until(lambda: conn.closed)
        with pytest.raises(ConnectionResetError):
            while theirs.recv(1 << 16):  # what the kernel had delivered, then the reset
                pass
    finally:
        srv.shutdown()


@pytest.mark.patches_internals
def test_a_half_closed_client_waiting_for_a_held_answer_is_not_read_again(server, hub):
    """A client may half-close once its upload is sent and wait for the
    answer, held until the session's handlers have run: its end of stream is
    read once, then the connection is watched for nothing until the answer
    goes. Still watched for reading, it would be reported ready on every
    round, a hub spinning for as long as the handlers lag (probe AG, mutation 24)."""
    from flask_sio09.hub import HubHeldAnswer

    session = server.new_session({"QUERY_STRING": ""})
    gate = threading.Event()
    server.workers.submit(session, lambda: gate.wait(30))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(10)
    conn = HubHeldAnswer(hub, ours, session, b"HTTP/1.1 200 OK\r\n\r\n1")
    reads = []
    on_readable = conn.on_readable

    def counted():
        on_readable()
        reads.append(1)

    conn.on_readable = counted
    hub.call(conn.start)
    try:
        theirs.shutdown(socket.SHUT_WR)
        assert wait_until(lambda: reads)
        assert not conn.reading and conn.unwatched  # its end read: watched for nothing
        for _ in range(50):  # the hub's rounds while the handler still runs
            gate.wait(0.01)
        assert len(reads) <= 2, len(reads)
        gate.set()
        assert read_all(theirs) == "HTTP/1.1 200 OK\r\n\r\n1"  # still answered
        assert wait_until(lambda: conn.closed)
    finally:
        gate.set()
        theirs.close()


def test_a_connection_closed_while_watched_for_nothing_leaves_the_hubs_count(server, hub):
    """A half-closed client waiting for a held answer is watched for nothing
    (out of the poller); it then goes for good, and the answer's write fails:
    the connection closes and leaves the hub's count of connections, which
    the hub's capacity check reads. Broken, each such client leaks one
    (probe AG, mutation 29)."""
    from flask_sio09.hub import HubHeldAnswer

    before = hub.connections
    session = server.new_session({"QUERY_STRING": ""})
    gate = threading.Event()
    server.workers.submit(session, lambda: gate.wait(30))
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    conn = HubHeldAnswer(hub, ours, session, b"HTTP/1.1 200 OK\r\n\r\n1")
    hub.call(conn.start)
    try:
        assert wait_until(lambda: hub.connections == before + 1)
        theirs.shutdown(socket.SHUT_WR)
        assert wait_until(lambda: conn.unwatched)
        theirs.close()  # gone for good: the hub, not watching, does not see it
        gate.set()  # the answer goes, and its write fails
        assert wait_until(lambda: conn.closed)
        assert wait_until(lambda: hub.connections == before), \
            f"hub.connections is {hub.connections}, was {before} before the answer"
    finally:
        gate.set()
        theirs.close()


# -- the poller ---------------------------------------------------------------

@pytest.fixture(params=[True, False], ids=["epoll", "selectors"])
def poller(request):
    from flask_sio09.hub import Poller
    return Poller(epoll=request.param)


def test_poller_answers_with_the_registered_object_and_events(poller):
    from flask_sio09.hub import READ, WRITE
    a, b = socket.socketpair()
    with a, b:
        conn = object()
        poller.register(a.fileno(), READ, conn)
        assert poller.poll(0) == []  # nothing to read yet
        b.send(b"x")
        assert poller.poll(None) == [(conn, READ)]
        poller.modify(a.fileno(), READ | WRITE)
        assert poller.poll(0) == [(conn, READ | WRITE)]
        a.recv(1)
        poller.modify(a.fileno(), WRITE)
        assert poller.poll(0.5) == [(conn, WRITE)]


def test_poller_reports_a_hang_up_as_every_event_watched_for(poller):
    from flask_sio09.hub import READ, WRITE
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    e, f = socket.socketpair()
    with a, c, d, e:
        reader, half_closed, writer = object(), object(), object()
        poller.register(a.fileno(), READ, reader)
        poller.register(c.fileno(), READ, half_closed)
        poller.register(e.fileno(), READ | WRITE, writer)
        assert poller.poll(0) == [(writer, WRITE)]  # room to write, nothing to read
        b.close()  # a hang-up: the hub must look, at what it waits for
        f.close()
        d.shutdown(socket.SHUT_WR)  # only an end of stream to read
        ready = dict((id(obj), events) for obj, events in poller.poll(1.0))
        assert ready == {id(reader): READ, id(half_closed): READ, id(writer): READ | WRITE}


def test_poller_unregisters_only_the_object_that_holds_the_descriptor(poller):
    from flask_sio09.hub import READ
    a, b = socket.socketpair()
    with a, b:
        old, new = object(), object()
        poller.register(a.fileno(), READ, old)
        assert poller.unregister(a.fileno(), old)
        assert not poller.unregister(a.fileno(), old)  # twice: a no-op
        poller.register(a.fileno(), READ, new)
        assert not poller.unregister(a.fileno(), old)  # the number is another's now
        b.send(b"x")
        assert poller.poll(1.0) == [(new, READ)]
        assert poller.unregister(a.fileno(), new)
        assert poller.poll(0) == []


def test_poller_timeout_waits(poller):
    import time
    start = time.monotonic()
    assert poller.poll(0.05) == []
    assert time.monotonic() - start >= 0.045


def test_connection_capacity_raises_the_soft_open_file_limit_and_keeps_a_reserve():
    """In a child process with a soft open-file limit of 600 under a hard one
    of 800: the soft limit becomes 800, and the hub may take 800 less a
    quarter (the reserve, ``FD_RESERVE`` at most a quarter of the limit)."""
    import resource
    import subprocess
    import sys

    code = ("import resource; from flask_sio09.takeover import connection_capacity; "
            "print(connection_capacity(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")

    def limit(soft: int, hard: int):
        return lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    for (soft, hard), expected in [((600, 800), "600 800"), ((8000, 8000), "6900 8000")]:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60, preexec_fn=limit(soft, hard), check=True)
        assert out.stdout.split() == expected.split(), out


@pytest.mark.parametrize("soft, server_connections, capacity, warned", [
    (20_000, 1000, 18_900, False),  # the usual reserve covers gunicorn's default
    (8_000, 3000, 4_900, False),    # a larger --worker-connections: a larger reserve
    (1_024, 1000, 512, True),       # half the limit at most, and a WARNING
    (1_024, None, 768, False),      # another server: a quarter
])
def test_the_reserve_leaves_room_for_the_wsgi_servers_own_connections(
        monkeypatch, caplog, soft, server_connections, capacity, warned):
    # gunicorn's gthread worker exits when accept() fails with EMFILE: with a
    # limit of 256 it had 64 descriptors left for its 1,000 worker connections
    import resource

    from flask_sio09 import takeover

    monkeypatch.setattr(resource, "getrlimit", lambda which: (soft, soft))
    assert takeover.connection_capacity(server_connections) == capacity
    assert ("gunicorn's worker exits" in caplog.text) is warned


def test_starting_the_hub_chooses_the_unmasking_before_its_first_frame(monkeypatch):
    # (the import of websockets takes 40 to 50 ms: not on the hub thread)
    from flask_sio09 import transports, wsframe

    monkeypatch.setattr(wsframe, "_unmask", wsframe._unmask_first)
    server = Server(Options(), EchoApp(), monitor=False)
    try:
        transports.get_hub(server)
        assert wsframe._unmask is wsframe._c_unmask()  # the C one: the test extra has it
    finally:
        server.shutdown()
