"""End-to-end: a handler that blocks holds up only its own session.

In hub mode one I/O thread (the hub) owns every WebSocket and runs the handlers
of what it read itself; a watchdog gives the hub loop to a new thread when a
handler runs long, and at most ``handler_threads`` handlers run away from the hub
at once (the rest wait in a queue while the hub goes on with I/O). One session's
handlers still run one at a time, in arrival order. In thread mode each WebSocket
has its own thread, which runs that session's handlers, so a blocked handler
holds up only that connection.
These tests prove it with real servers (``sio.run`` and gunicorn gthread) and
real clients (raw WebSockets and socketIO-client 0.5.7.2):

1. while client A's handler blocks, client B gets 50 acks, WebSocket pongs and
   heartbeats; A's ack comes after the release, followed by the acks of what A
   sent meanwhile, in order;
2. with every handler slot blocked (10 clients, ``handler_threads=2``) the hub
   still does I/O: a connected client gets plain acks, pongs and heartbeats, a
   fresh client handshakes, upgrades to a WebSocket and gets a pong (its
   ``1::`` and data acks need a handler slot, so they come after the release);
   the worker's thread count stays within the bound of the design; after the
   release all 10 acks arrive;
3. the same with socketIO-client 0.5.7.2: A's slow callback does not delay B's;
4. idle clients keep getting heartbeats while handlers block, and no session
   (the blocked ones included) is closed for heartbeat timeout: the blocked
   ones get their heartbeats too, in both modes.

Nothing here depends on timing: the blocking handler is e2e_app's ``wait_gate``,
which waits until the test opens its gate over HTTP (``POST /gates/<name>/open``),
and every wait is a condition with a generous deadline.

Why each test fails when the behaviour breaks: if the hub ran a blocking handler
with no watchdog (``handler_threads=0`` semantics), the hub would read nothing
more once A's handler blocked, so B's acks, pongs and heartbeats (1, 3, 4) and
the plain acks, pongs and heartbeats of test 2 would never come and their
waits time out; a session whose handlers ran out of order or concurrently would see its
acks early or out of order (1); a hub that started a thread per blocked handler
would exceed the thread bound or the gate's ``peak`` (2); a hub that stopped
reading a blocked session's socket would let that session time out (4).
"""

from __future__ import annotations

import ssl
import threading
import uuid

import pytest
import requests
import websocket

from tests.conftest import wait_until
from tests.integration.helpers import WsClient, XhrClient, event_packet, handshake
from tests.integration.test_hostile import ack_of, checked_servers, worker_pid

pytestmark = pytest.mark.timeout(300)

KINDS = ["sio_run", "gunicorn"]
MODES = ["hub", "thread"]

#: heartbeats every second, so that "heartbeats keep flowing" is seen soon;
#: a timeout of several intervals so that a loaded machine does not trip it
SLOW = dict(
    transports=["websocket", "xhr-polling"],
    heartbeat_interval=1,
    heartbeat_timeout=8,
    close_timeout=25,
    polling_duration=1,
    handler_threads=3,
    log_levels=True,
)

DEADLINE = 60.0


# ---------------------------------------------------------------------------
# servers, gates and a WebSocket client that reads in the background
# ---------------------------------------------------------------------------


@pytest.fixture
def start(live_server):
    """``start(kind, mode, fresh=False, **options)``: a server on SLOW options
    whose log must hold no traceback or ERROR line when the test ends."""
    yield from checked_servers(live_server, SLOW)


class Gate:
    """A gate of e2e_app's ``wait_gate`` handler, unique to one test."""

    def __init__(self, server):
        self.server = server
        self.name = f"gate-{uuid.uuid4().hex}"

    def state(self) -> dict:
        response = requests.get(f"{self.server.url}/gates/{self.name}", timeout=30)
        response.raise_for_status()
        return response.json()

    def wait_waiting(self, count: int) -> dict:
        """Wait until ``count`` handlers are blocked on the gate."""
        seen: list[dict] = [{}]

        def check():
            seen[0] = self.state()
            return seen[0]["waiting"] >= count

        wait_until(check, timeout=DEADLINE,
                   message=lambda: f"{count} handlers blocked on the gate; state {seen[0]}")
        return seen[0]

    def open(self) -> None:
        requests.post(f"{self.server.url}/gates/{self.name}/open", timeout=30).raise_for_status()


@pytest.fixture
def make_gate():
    """Factory of gates; every gate is opened when the test ends, pass or fail."""
    gates: list[Gate] = []

    def factory(server) -> Gate:
        gate = Gate(server)
        gates.append(gate)
        return gate

    yield factory
    for gate in gates:
        if gate.server.alive():
            try:
                gate.open()
            except requests.RequestException:
                pass


class PumpedWs(WsClient):
    """A raw 0.9 WebSocket client whose frames a background thread reads at
    once: heartbeats are answered while the test does something else, pongs
    are kept, and the test waits for conditions on what arrived."""

    def __init__(self, server, answer_heartbeats: bool = True, wait_connect: bool = True):
        super().__init__(server)
        self.answer_heartbeats = answer_heartbeats
        self.pongs: list[bytes] = []
        self.closed = False
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_connect:
            self.wait_for(lambda got: "1::" in got, "the connect packet")

    def _read(self) -> None:
        self.ws.settimeout(None)
        while True:
            try:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
            except (websocket.WebSocketException, OSError, ssl.SSLError):
                break
            if opcode == websocket.ABNF.OPCODE_TEXT:
                text = frame.data.decode("utf-8")
                if text == "2::" and self.answer_heartbeats:
                    try:
                        self.ws.send("2::")
                    except (websocket.WebSocketException, OSError):
                        break
                with self._lock:
                    self.received.append(text)
            elif opcode == websocket.ABNF.OPCODE_PONG:
                with self._lock:
                    self.pongs.append(frame.data)
            elif opcode == websocket.ABNF.OPCODE_CLOSE:
                break
        self.closed = True

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.received)

    def wait_for(self, predicate, what: str, timeout: float = DEADLINE) -> list[str]:
        """Wait until ``predicate(frames received so far)`` holds."""
        wait_until(lambda: predicate(self.snapshot()), timeout=timeout,
                   message=lambda: f"{what}; closed={self.closed}; received {self.snapshot()[-20:]}")
        return self.snapshot()

    def emit(self, name: str, *args, ack_id: int) -> None:
        self.send(event_packet(name, *args, ack_id=ack_id))

    def wait_ack(self, ack_id: int, timeout: float = DEADLINE) -> str:
        self.wait_for(lambda got: ack_of(got, ack_id) is not None, f"the ack {ack_id}", timeout)
        return ack_of(self.snapshot(), ack_id)

    def call(self, name: str, *args, ack_id: int) -> str:
        self.emit(name, *args, ack_id=ack_id)
        return self.wait_ack(ack_id)

    def ping(self, payload: bytes) -> None:
        self.ws.ping(payload)

    def heartbeats(self) -> int:
        return self.snapshot().count("2::")

    def acks(self) -> list[str]:
        return [p for p in self.snapshot() if p.startswith("6:")]

    def close(self) -> None:
        try:
            self.ws.close(timeout=2)
        except (websocket.WebSocketException, OSError):
            pass
        self._reader.join(10)


@pytest.fixture
def clients():
    """``clients(server)`` opens a PumpedWs; all are closed when the test ends."""
    opened: list[PumpedWs] = []

    def factory(server, **kw) -> PumpedWs:
        client = PumpedWs(server, **kw)
        opened.append(client)
        return client

    yield factory
    for client in opened:
        client.close()


def data_ack(ack_id: int, payload: str) -> str:
    return f"6:::{ack_id}+{payload}"


def threads_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise AssertionError(f"no Threads line for pid {pid}")


def disconnects(server, sids) -> list[dict]:
    return [e for e in server.events() if e["event"] == "disconnect" and e["sid"] in sids]


# ---------------------------------------------------------------------------
# 1. one blocked handler, one busy neighbour
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_plain_ack_comes_before_its_handler_runs(start, make_gate, clients, kind, mode):
    """API.md: a packet with a plain ack is acknowledged before the handler
    runs, as Node does: the ack arrives while the handler is blocked. (No
    heartbeat is due before the wait ends: it must not be what carries the ack.)"""
    server = start(kind, mode, heartbeat_interval=50, heartbeat_timeout=120)
    gate = make_gate(server)
    client = clients(server)
    client.send(event_packet("wait_gate", gate.name, "plain", ack_id=7, data_ack=False))
    gate.wait_waiting(1)
    client.wait_for(lambda got: "6:::7" in got, "the plain ack while its handler is blocked",
                    timeout=30)
    assert gate.state()["waiting"] == 1  # still blocked: the ack did not wait for it
    gate.open()
    # the handler's return value answers nothing: a plain ack carries no data
    assert client.call("echo", "after", ack_id=8) == data_ack(8, '["after"]')
    assert client.acks() == ["6:::7", data_ack(8, '["after"]')]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_blocked_handler_does_not_stall_another_client(start, make_gate, clients, kind, mode):
    # a long heartbeat timeout: A's blocked session must not depend on how
    # fast B's round trips go (thread mode reads A's answers only afterwards)
    server = start(kind, mode, heartbeat_timeout=30)
    gate = make_gate(server)
    a = clients(server)
    b = clients(server)

    # A blocks, then sends more while blocked: those must wait for the gate
    a.emit("wait_gate", gate.name, "A", ack_id=1)
    gate.wait_waiting(1)
    for ack_id in range(2, 12):
        a.emit("echo", ack_id, ack_id=ack_id)

    # B is served meanwhile: 50 emit+acks, WebSocket pings, heartbeats
    for ack_id in range(1, 51):
        assert b.call("echo", "b", ack_id, ack_id=ack_id) == data_ack(ack_id, f'["b",{ack_id}]')
    for n in range(3):
        b.ping(f"ping-{n}".encode())
    b.wait_for(lambda _: len(b.pongs) == 3, "three pongs")
    assert b.pongs == [b"ping-0", b"ping-1", b"ping-2"]
    start_heartbeats = b.heartbeats()
    b.wait_for(lambda _: b.heartbeats() >= start_heartbeats + 2, "two more heartbeats")

    # B's 50 round trips are done: A's later packets were read long ago, yet
    # none was handled, since A's handlers run one at a time and in order
    assert a.acks() == [], "A's handlers ran past its blocked one"
    assert gate.state()["waiting"] == 1

    gate.open()
    a.wait_ack(11)
    assert a.acks() == [data_ack(1, '["released","A"]')] + [
        data_ack(ack_id, f"[{ack_id}]") for ack_id in range(2, 12)
    ]
    assert not a.closed and not b.closed
    assert disconnects(server, {a.sid, b.sid}) == []


# ---------------------------------------------------------------------------
# 2. every handler slot blocked
# ---------------------------------------------------------------------------


BLOCKED_CLIENTS = 10
FEW_HANDLER_THREADS = 2
#: threads the design may add while handlers block, beyond the base: the pool
#: (at most handler_threads) and the hub threads that gave up the hub while
#: stuck in a handler (they hold the same slots; one may briefly go over), and
#: a couple for the WSGI server's own variation
EXTRA_THREADS_ALLOWED = 2 * FEW_HANDLER_THREADS + 1 + 2


@pytest.mark.parametrize("kind", KINDS)
def test_many_blocked_handlers_with_few_handler_threads(start, make_gate, clients, kind):
    """Every slot blocked: the hub still does I/O, threads stay bounded.

    While all ``handler_threads`` slots are blocked no other handler can run,
    by design: a new client's connect handler (hence its ``1::``) and every
    data ack wait in the queue. What must go on is I/O: handshakes, WebSocket
    upgrades, pongs, heartbeats, and the plain acks the server writes before
    dispatch. The heartbeat timeout is long here because a client whose
    connect waits has no ``1::`` yet, so it cannot answer heartbeats.
    """
    server = start(kind, "hub", fresh=True, handler_threads=FEW_HANDLER_THREADS,
                   heartbeat_timeout=60)
    pid = worker_pid(server)
    gate = make_gate(server)

    # the base: the same connections, their handlers done at once
    blocked = [clients(server) for _ in range(BLOCKED_CLIENTS)]
    warm = clients(server)
    for n, client in enumerate(blocked + [warm]):
        assert client.call("echo", n, ack_id=1) == data_ack(1, f"[{n}]")
    base = threads_of(pid)

    for n, client in enumerate(blocked):
        client.emit("wait_gate", gate.name, n, ack_id=2)
    gate.wait_waiting(FEW_HANDLER_THREADS)  # every slot is taken

    # I/O goes on: plain acks, pongs and heartbeats for a connected client ...
    for ack_id in range(2, 7):
        warm.send(event_packet("echo", "plain", ack_id=ack_id, data_ack=False))
        warm.wait_for(lambda got, i=ack_id: f"6:::{i}" in got, f"the plain ack {ack_id}")
    warm.ping(b"warm")
    warm.wait_for(lambda _: warm.pongs == [b"warm"], "the warm client's pong")
    heartbeats = warm.heartbeats()
    warm.wait_for(lambda _: warm.heartbeats() >= heartbeats + 2, "two more heartbeats")
    # ... and a new client's handshake, WebSocket upgrade and pong
    fresh = clients(server, wait_connect=False)
    fresh.ping(b"fresh")
    fresh.wait_for(lambda _: fresh.pongs == [b"fresh"], "the fresh client's pong")

    # every wait_gate packet was read before the fresh client connected, so
    # the pool and the released hub threads are all there by now
    samples = [threads_of(pid) for _ in range(5)]
    state = gate.state()
    assert state["peak"] <= FEW_HANDLER_THREADS + 1, state
    assert max(samples) <= base + EXTRA_THREADS_ALLOWED, (base, samples, state)
    assert max(samples) < base + BLOCKED_CLIENTS, (base, samples, state)

    gate.open()
    for n, client in enumerate(blocked):
        assert client.wait_ack(2) == data_ack(2, f'["released",{n}]')
    assert gate.state()["entered"] == BLOCKED_CLIENTS
    fresh.wait_for(lambda got: "1::" in got, "the fresh client's connect")
    assert fresh.call("echo", "fresh", ack_id=1) == data_ack(1, '["fresh"]')
    assert warm.call("echo", "warm", ack_id=7) == data_ack(7, '["warm"]')
    assert not any(c.closed for c in blocked + [warm, fresh])
    assert disconnects(server, {c.sid for c in blocked + [warm, fresh]}) == []


# ---------------------------------------------------------------------------
# 3. a real client library: socketIO-client 0.5.7.2
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
@pytest.mark.parametrize("kind", KINDS)
def test_socketio_client_slow_callback_does_not_delay_another(start, make_gate, kind, transport):
    # socketIO-client reads (and answers heartbeats) only inside wait(): the
    # client not being driven must survive the other's round trips
    from tests.integration import test_socketio_client as sioc
    server = start(kind, "hub", heartbeat_timeout=30)
    gate = make_gate(server)
    a = sioc.Client("127.0.0.1", server.port, sioc.Recorder, transports=[transport],
                    wait_for_connection=False)
    b = sioc.Client("127.0.0.1", server.port, sioc.Recorder, transports=[transport],
                    wait_for_connection=False)
    try:
        a_answer: list = []
        a.emit("wait_gate", gate.name, "A", lambda *args: a_answer.append(list(args)))
        gate.wait_waiting(1)

        for n in range(20):
            assert sioc.call(b, "echo", "b", n) == ["b", n]
        assert a_answer == []

        gate.open()
        sioc.wait_for(a, lambda: a_answer, what="A's callback")
        assert a_answer == [["released", "A"]]
        assert sioc.call(a, "echo", "a") == ["a"]
        assert sioc.call(b, "echo", "b") == ["b"]
        assert "disconnect" not in sioc.global_ns(a).names()
        assert "disconnect" not in sioc.global_ns(b).names()
    finally:
        a.close()
        b.close()


# ---------------------------------------------------------------------------
# 4. heartbeats while handlers block
# ---------------------------------------------------------------------------


def heartbeats_for_longer_than_the_timeout(watched: list[PumpedWs]) -> None:
    """Wait until every client has seen more heartbeats than fit in
    ``heartbeat_timeout``; fail as soon as one of them is closed."""
    enough = SLOW["heartbeat_timeout"] // SLOW["heartbeat_interval"] + 3
    start_counts = {c: c.heartbeats() for c in watched}

    def all_got_enough():
        dead = [c.sid for c in watched if c.closed]
        assert not dead, f"closed while handlers blocked: {dead}"
        return all(c.heartbeats() >= start_counts[c] + enough for c in watched)

    wait_until(all_got_enough, timeout=DEADLINE + enough * SLOW["heartbeat_interval"],
               message=lambda: "heartbeats: " + str({c.sid: c.heartbeats() for c in watched}))


def block_every_slot(server, gate: Gate, clients) -> list[PumpedWs]:
    """``handler_threads`` clients whose handlers wait on ``gate`` (in hub
    mode, every slot); their clients answer heartbeats all along.

    One at a time: each blocks the hub thread that read it, which then gives
    the hub away, so no pool thread is involved (sessions handed to the pool
    back to back are the unit tests' concern: test_hub_handlers.py)."""
    slots = SLOW["handler_threads"]
    blocked = [clients(server) for _ in range(slots)]
    for n, client in enumerate(blocked):
        client.emit("wait_gate", gate.name, n, ack_id=1)
        gate.wait_waiting(n + 1)
    return blocked


def release_and_check_alive(server, gate: Gate, blocked: list[PumpedWs], others: list[PumpedWs]):
    gate.open()
    for n, client in enumerate(blocked):
        assert client.wait_ack(1) == data_ack(1, f'["released",{n}]')
    for client in blocked + others:
        assert client.call("echo", "alive", ack_id=2) == data_ack(2, '["alive"]')
    assert not any(c.closed for c in blocked + others)
    assert disconnects(server, {c.sid for c in blocked + others}) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_idle_clients_keep_their_heartbeats_while_handlers_block(
        start, make_gate, clients, kind, mode):
    server = start(kind, mode)
    gate = make_gate(server)
    idle = [clients(server) for _ in range(3)]
    blocked = block_every_slot(server, gate, clients)
    heartbeats_for_longer_than_the_timeout(idle)
    assert gate.state()["waiting"] == len(blocked)
    gate.open()
    # only the idle clients here: whether the blocked sessions outlive the
    # timeout is the next test's question
    for client in idle:
        assert client.call("echo", "alive", ack_id=1) == data_ack(1, '["alive"]')
    assert not any(c.closed for c in idle)
    assert disconnects(server, {c.sid for c in idle}) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_blocked_sessions_outlive_the_heartbeat_timeout(start, make_gate, clients, kind, mode):
    """A session whose handler blocks longer than ``heartbeat_timeout`` is not
    closed for it: its client still gets heartbeats and answers them. In hub
    mode the hub writes the heartbeats and reads the answers while the handler
    waits; in thread mode the monitor writes the heartbeats itself, without
    blocking, since the pump thread that would is the one in the handler."""
    server = start(kind, mode)
    gate = make_gate(server)
    blocked = block_every_slot(server, gate, clients)
    heartbeats_for_longer_than_the_timeout(blocked)
    assert gate.state()["waiting"] == len(blocked)
    release_and_check_alive(server, gate, blocked, [])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind", KINDS)
def test_uploads_past_the_inbound_limit_wait_for_their_handlers(start, make_gate, kind, mode):
    """A polling client that uploads faster than its handlers run: once about
    1 MB (server.INBOUND_LIMIT) waits for them, the answer to its upload waits
    too, and with it the client's next upload, instead of the server queueing
    what comes without a bound. Nothing is lost when the handlers go on."""
    server = start(kind, mode)
    gate = make_gate(server)
    client = XhrClient.open(server)
    assert client.post(event_packet("wait_gate", gate.name, "first", ack_id=1)).text == "1"
    gate.wait_waiting(1)
    pad = "z" * 200_000
    answered: list[int] = []
    failed: list[BaseException] = []

    def upload() -> None:  # one upload after another, as socket.io-client sends them
        try:
            for i in range(10):
                answered.append(client.post(event_packet("echo", pad, ack_id=i + 2),
                                            timeout=120).status_code)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            failed.append(exc)

    uploader = threading.Thread(target=upload, daemon=True)
    uploader.start()
    # five uploads (1.0 MB) are answered; the sixth passes the limit and its
    # answer waits for the blocked handler: it does not come while the gate
    # stays shut
    wait_until(lambda: len(answered) >= 5 or failed, timeout=DEADLINE,
               message=lambda: f"five answered uploads; {answered} {failed}")
    uploader.join(3)
    assert answered == [200] * 5 and not failed, (answered, failed)
    gate.open()
    uploader.join(DEADLINE)
    assert answered == [200] * 10 and not failed, (answered, failed)
    client.collect(lambda _: all(client.ack_for(n) for n in range(1, 12)), timeout=DEADLINE)
    assert client.ack_for(1) == '6:::1+["released","first"]'
    assert client.ack_for(11) == f'6:::11+["{pad}"]'


@pytest.mark.parametrize("kind", KINDS)
def test_held_upload_answers_on_connections_not_kept_alive_hold_no_thread(start, make_gate, kind):
    """In hub mode a held upload answer (above) on a connection the hub does
    not keep alive (``Connection: close``, HTTP/1.0: a proxy speaking 1.0 to
    its backend) waits in the hub, not in a WSGI thread: more of them than
    gunicorn has threads (50) do not stop the server answering others."""
    import socket

    server = start(kind, "hub", fresh=True, close_timeout=120)
    gate = make_gate(server)
    client = XhrClient.open(server)
    assert client.post(event_packet("wait_gate", gate.name, "first", ack_id=1)).text == "1"
    gate.wait_waiting(1)
    # 1.04 MB waits for the gate: just under the inbound limit (1 MiB), so
    # that whichever of the uploads below the server reads first passes it,
    # and every one of them waits for the gate (they race on 60 connections)
    for size in (200_000,) * 5 + (40_000,):
        assert client.post(event_packet("echo", "z" * size)).status_code == 200
    path = f"/socket.io/1/xhr-polling/{client.sid}"
    held = []
    for n in range(60):
        body = event_packet("echo", n, "y" * 10_000, ack_id=n + 10).encode()
        version = "HTTP/1.0" if n % 2 else "HTTP/1.1"
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        sock.sendall(f"POST {path} {version}\r\nHost: {server.host}\r\nConnection: close\r\n"
                     f"Content-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        held.append(sock)
    try:
        # the server answers others while all 60 wait (before, each held a
        # thread until close_timeout, and this handshake waited behind them)
        assert len(handshake(server)[0]) > 0
        assert requests.get(f"{server.url}/gates/{gate.name}", timeout=DEADLINE).ok
        assert gate.state()["waiting"] == 1
        gate.open()
        for sock in held:
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n1"), answer
    finally:
        for sock in held:
            sock.close()
    client.collect(lambda _: all(client.ack_for(n + 10) for n in range(60)), timeout=DEADLINE)
    assert [client.ack_for(n + 10)[:len(f"6:::{n + 10}+[{n},")] for n in range(60)] == \
        [f"6:::{n + 10}+[{n}," for n in range(60)]
