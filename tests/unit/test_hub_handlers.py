"""Where handlers run in hub mode: on the hub thread after the I/O of their
select round, and, when one blocks, the hub goes on in a new thread (see
workers.py). Real socketpairs, a real hub, handlers that block on events."""

import contextlib
import gc
import threading
import time
import weakref

import pytest

from flask_sio09.hub import Hub
from flask_sio09.server import Options, Server
from flask_sio09 import droplog
from flask_sio09.workers import JobQueue, Workers
from tests.unit.doubles import EchoApp, wait_until
from tests.unit.test_hub import client_frame, hub, open_websocket  # noqa: F401 (hub: a fixture)


class BlockingApp(EchoApp):
    """Acks like EchoApp; the event ``block`` waits until ``release`` is set,
    and every event records the thread that ran it."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()
        self.blocked = 0
        self.threads = []

    def event(self, session, namespace, name, args, ack, packet=False):
        with self.lock:
            self.threads.append((name, threading.current_thread().name))
        if name == "block":
            with self.lock:
                self.blocked += 1
            assert self.release.wait(30)
        super().event(session, namespace, name, args, ack)


@pytest.fixture
def app():
    return BlockingApp()


def make_server(app, handler_threads=16):
    return Server(Options(handler_threads=handler_threads, close_timeout=5), app, monitor=False)


@contextlib.contextmanager
def hub_server(app, handler_threads):
    """A server with ``handler_threads`` and its hub; shut down (its blocked
    handlers released) afterwards."""
    server = make_server(app, handler_threads=handler_threads)
    hub = Hub(server)
    server.hub = hub
    try:
        yield server, hub
    finally:
        app.release.set()
        server.shutdown()


@pytest.fixture
def server(app):
    srv = make_server(app)
    yield srv
    app.release.set()
    srv.shutdown()


def emit(client, name, ack_id, *args):
    import json
    client.sock.sendall(client_frame(f'5:{ack_id}+::{json.dumps({"name": name, "args": list(args)})}'))


def test_fast_handlers_run_on_the_hub_thread_and_start_no_pool_thread(server, hub, app):
    _, _, client = open_websocket(server, hub)
    for i in range(1, 21):
        emit(client, "echo", i, i)
    assert [client.text() for _ in range(20)] == [f"6:::{i}+[{i}]" for i in range(1, 21)]
    assert {thread for _, thread in app.threads} == {"sio09-hub"}
    assert server.workers._threads == []


def test_a_blocked_handler_does_not_stall_the_other_connections(server, hub, app):
    _, _, stuck = open_websocket(server, hub)
    _, _, other = open_websocket(server, hub)
    emit(stuck, "block", 1)
    assert wait_until(lambda: app.blocked == 1)
    # the hub goes on in a new thread: the other client is served while the
    # first handler still blocks, pings included
    for i in range(1, 11):
        emit(other, "echo", i, "x")
        assert other.text() == f'6:::{i}+["x"]'
    other.sock.sendall(client_frame(payload=b"hi", opcode=0x9))
    assert other.frame() == (0xA, b"hi")
    assert not app.release.is_set()
    # what the blocked client sent meanwhile waits its turn, in order
    for i in range(2, 6):
        emit(stuck, "echo", i, i)
    app.release.set()
    assert [stuck.text() for _ in range(5)] == ["6:::1"] + [f"6:::{i}+[{i}]" for i in range(2, 6)]
    # the stuck thread, done with its handler, ended; one hub thread is left
    assert wait_until(lambda: hub._demoted == 0)
    assert wait_until(lambda: sum(t.name == "sio09-hub" for t in threading.enumerate()
                                  if t.is_alive()) >= 1)


def test_once_handler_threads_are_stuck_the_rest_queue_and_io_goes_on(app):
    with hub_server(app, 2) as (server, hub):
        clients = [open_websocket(server, hub)[2] for _ in range(4)]
        for client in clients[:3]:
            emit(client, "block", 1)
        # two handlers block (on hub threads that gave the hub away, or on
        # the pool); the third waits for one of them to finish
        assert wait_until(lambda: app.blocked == 2)
        # the hub still reads and writes: pings are answered
        clients[3].sock.sendall(client_frame(payload=b"p", opcode=0x9))
        assert clients[3].frame() == (0xA, b"p")
        assert app.blocked == 2
        assert 1 <= hub._demoted <= 2
        app.release.set()
        for client in clients[:3]:
            assert client.text() == "6:::1"
        assert app.blocked == 3


def test_many_handlers_just_under_the_watchdogs_limit_do_not_hold_the_hub_for_their_sum(
        app, monkeypatch):
    # Each handler blocks for less than the watchdog's limit, so no single one
    # makes it hand the hub over; the round's handlers stop at the same limit
    # in total, and the sessions not started run on the pool. (The limit is
    # raised for the test, with a margin that a busy machine's delays to a
    # 0.3 s nap do not use up.)
    from flask_sio09 import hub as hub_module

    monkeypatch.setattr(hub_module, "STUCK_SECONDS", 0.5)
    naps = 6

    class NappingApp(BlockingApp):
        def event(self, session, namespace, name, args, ack, packet=False):
            if name == "nap":
                time.sleep(0.3)
            super().event(session, namespace, name, args, ack)

    napping = NappingApp()
    with hub_server(napping, naps) as (server, hub):
        clients = [open_websocket(server, hub)[2] for _ in range(naps)]
        for client in clients:
            emit(client, "nap", 1, "z")
        for client in clients:
            assert client.text() == '6:::1+["z"]'
        on_hub = sum(thread == "sio09-hub" for name, thread in napping.threads if name == "nap")
        # at most two naps a round on the hub (the second starts 0.3 s in,
        # under 0.5 s); the first round may have read only the first emit.
        # (Before, all six ran there, one after another.)
        assert on_hub <= 3, (napping.threads, hub._demoted)


def test_handler_threads_zero_keeps_running_handlers_on_the_hub(app):
    with hub_server(app, 0) as (server, hub):
        _, _, client = open_websocket(server, hub)
        emit(client, "echo", 1, "a")
        assert client.text() == '6:::1+["a"]'
        assert app.threads == [("echo", "sio09-hub")]
        assert hub._watchdog is None


# -- Workers' deferral, without a hub ------------------------------------------

class FakeSession:
    def __init__(self, sid):
        from collections import deque

        self.sid = sid
        self.lock = threading.Lock()
        self.jobs = deque()
        self.jobs_running = False
        self.collecting = None


def test_a_failing_job_of_a_queue_that_is_no_session_is_logged_and_the_rest_run(caplog):
    """Jobs of no client (the message queue's callbacks) fail as a session's
    do: logged a few times, and the queue's later jobs still run."""
    workers = Workers(size=1)
    queue = JobQueue("message-queue callbacks")
    ran = threading.Event()

    def fail():
        raise RuntimeError("no")

    try:
        for _ in range(2 * droplog.BURST):
            workers.submit(queue, fail)
        workers.submit(queue, lambda: (_ for _ in ()).throw(SystemExit(5)))
        workers.submit(queue, ran.set)
        assert ran.wait(30)
        lines = [r.getMessage() for r in caplog.records if "message-queue callbacks" in
                 r.getMessage()]
        assert 1 <= len(lines) <= droplog.BURST + 1
        assert lines[0] == "unhandled error in a handler job of message-queue callbacks"
    finally:
        workers.stop()


def test_deferred_jobs_wait_for_run_deferred_in_submission_order():
    workers = Workers(2)
    workers.defer_to(threading.get_ident())
    ran = []
    a, b = FakeSession("a"), FakeSession("b")
    workers.submit(a, lambda: ran.append("a1"))
    workers.submit(b, lambda: ran.append("b1"))
    workers.submit(a, lambda: ran.append("a2"))
    assert ran == [] and workers.has_deferred()
    assert workers.run_deferred() is True
    assert ran == ["a1", "a2", "b1"]
    assert not workers.has_deferred()
    assert workers._threads == []


def test_run_deferred_leaves_the_sessions_past_its_budget_to_the_pool():
    # Many sessions whose handlers each block a little less than the
    # watchdog's limit held the hub for their sum: the watchdog saw one
    # session at a time. Past the budget, the sessions not started go to the
    # pool, first in line first, and each session's jobs stay in order.
    workers = Workers(4)
    me = threading.get_ident()
    workers.defer_to(me)
    ran: dict[str, list] = {}
    lock = threading.Lock()
    done = threading.Semaphore(0)

    def job(name, pause=0.0):
        def run():
            time.sleep(pause)
            with lock:
                ran.setdefault(name, []).append(threading.get_ident())
            done.release()
        return run

    sessions = [FakeSession(f"s{i}") for i in range(5)]
    for session in sessions:
        # (each first job outlasts the budget: the second session always
        # begins past it, however slow the machine)
        workers.submit(session, job(session.sid, 0.03))
        workers.submit(session, job(session.sid))
    try:
        assert workers.run_deferred(0.025) is True
        assert ran["s0"] == [me, me]  # the first session runs whatever the budget
        assert not workers.has_deferred()
        for _ in range(2 * len(sessions)):  # (s0's two jobs included)
            assert done.acquire(timeout=30)
        for session in sessions[1:]:
            idents = ran[session.sid]
            assert len(idents) == 2 and me not in idents, (session.sid, idents)
    finally:
        workers.stop()


def test_run_deferred_without_a_budget_runs_every_session_itself():
    workers = Workers(2)
    me = threading.get_ident()
    workers.defer_to(me)
    ran = []
    for i in range(3):
        workers.submit(FakeSession(f"s{i}"),
                       lambda i=i: (time.sleep(0.01), ran.append((i, threading.get_ident()))))
    assert workers.run_deferred() is True
    assert ran == [(0, me), (1, me), (2, me)]
    assert workers._threads == []


def test_other_threads_still_hand_off_to_the_pool():
    workers = Workers(2)
    workers.defer_to(threading.get_ident() + 1)  # some other thread defers
    done = threading.Event()
    workers.submit(FakeSession("a"), done.set)
    assert done.wait(10)
    workers.stop()


def test_release_stuck_hands_the_rest_to_the_pool_and_ends_deferral():
    workers = Workers(2)
    gate, started, pooled = threading.Event(), threading.Event(), threading.Event()
    result = {}

    def deferring_thread():
        workers.defer_to(threading.get_ident())
        workers.submit(FakeSession("slow"), lambda: (started.set(), gate.wait(30)))
        workers.submit(FakeSession("next"), pooled.set)
        result["kept"] = workers.run_deferred()
        # after losing the role, its submissions go to the pool
        after = threading.Event()
        workers.submit(FakeSession("after"), after.set)
        result["after"] = after.wait(10)

    thread = threading.Thread(target=deferring_thread)
    thread.start()
    assert started.wait(10)
    assert workers.release_stuck(60) is False  # not stuck for that long
    assert wait_until(lambda: workers.release_stuck(0.01))
    assert pooled.wait(10)  # "next" ran on the pool while "slow" still blocks
    gate.set()
    thread.join(10)
    assert result == {"kept": False, "after": True}
    workers.stop()


class NoConnectHandlerApp(BlockingApp):
    """An app with no connect handler anywhere (most apps, for the global
    namespace)."""

    def has_connect_handler(self, namespace):
        return False


def test_without_a_connect_handler_a_client_is_joined_while_every_handler_thread_is_busy():
    # the global namespace's join waited for a handler thread, though it had
    # no handler to run: a new client heard neither 1:: nor heartbeats while
    # handler_threads handlers blocked, and gave up (Node sends 1:: at once)
    app = NoConnectHandlerApp()
    with hub_server(app, 1) as (server, hub):
        _, _, first = open_websocket(server, hub)
        emit(first, "block", 1)
        # the watchdog let the blocked handler go: it holds the one slot
        assert wait_until(lambda: app.blocked == 1 and not server.workers.can_defer())
        _, _, second = open_websocket(server, hub)  # (it asserts the 1::)
        emit(second, "echo", 1, "queued")
        app.release.set()
        assert second.text() == '6:::1+["queued"]'
        assert first.text() == "6:::1"


def test_two_hand_offs_in_a_row_to_one_idle_thread_start_a_second_thread():
    # a pool thread counts as idle until it wakes: the second session must not
    # wait behind the first when a thread could be started for it
    workers = Workers(3)
    warm = threading.Event()
    workers.submit(FakeSession("warm"), warm.set)
    assert warm.wait(10)
    assert wait_until(lambda: workers._free == 1)
    gate, quick = threading.Event(), threading.Event()
    workers.submit(FakeSession("s1"), lambda: gate.wait(30))
    workers.submit(FakeSession("s2"), quick.set)
    try:
        assert quick.wait(10), "s2 waited behind s1's blocked handler"
    finally:
        gate.set()
        workers.stop()


@contextlib.contextmanager
def blocking_jobs(size: int, count: int, prefix: str = "s"):
    """A pool of ``size`` threads given ``count`` sessions, each with one job
    that blocks until the block ends; yields the pool and a semaphore each
    job releases as it starts."""
    workers = Workers(size)
    gate = threading.Event()
    started = threading.Semaphore(0)

    def blocked():
        started.release()
        gate.wait(30)

    try:
        for i in range(count):
            workers.submit(FakeSession(f"{prefix}{i}"), blocked)
        yield workers, started
    finally:
        gate.set()
        workers.stop()


def test_sessions_handed_off_at_once_each_get_a_thread_while_the_pool_has_room():
    # a thread that has just woken from get(), and not yet counted itself as
    # busy, was taken for a free one: a session then waited behind another's
    # blocked handler (in about 1 trial of 3 of this loop)
    for trial in range(20):
        with blocking_jobs(16, 10, f"t{trial}s") as (_, started):
            for i in range(10):
                assert started.acquire(timeout=10), \
                    f"trial {trial}: {i} of 10 sessions run, the others wait for a thread"


def test_the_pool_never_starts_more_threads_than_its_size():
    # handler_threads bounds the threads, not only how many run at once
    with blocking_jobs(3, 12) as (workers, started):
        for _ in range(3):
            assert started.acquire(timeout=10)
        assert not started.acquire(timeout=0.2)  # the others wait for a thread
        assert len(workers._threads) == 3


def test_a_server_no_one_holds_lets_its_pool_threads_go():
    # a test's app let go of: its handler threads end with its server
    server = Server(Options(), EchoApp(), monitor=False)
    ran = threading.Event()
    server.workers.submit(FakeSession("s"), ran.set)
    assert ran.wait(10)
    threads = list(server.workers._threads)
    assert threads and all(t.is_alive() for t in threads)
    del server
    gc.collect()
    assert wait_until(lambda: not any(t.is_alive() for t in threads))


def test_an_idle_pool_thread_keeps_no_session_alive():
    workers = Workers(2)
    session = FakeSession("gone")
    ran = threading.Event()
    workers.submit(session, ran.set)
    assert ran.wait(10)
    assert wait_until(lambda: workers._free == 1)  # back in get(), waiting
    gone = weakref.ref(session)
    del session
    try:
        assert wait_until(lambda: gc.collect() is not None and gone() is None), \
            "the idle pool thread still holds its last session"
    finally:
        workers.stop()


class ExitingApp(BlockingApp):
    """``exit`` raises SystemExit and ``interrupt`` KeyboardInterrupt, as a
    handler calling sys.exit() would, or one a ^C reached."""

    def event(self, session, namespace, name, args, ack, packet=False):
        if name == "exit":
            raise SystemExit(3)
        if name == "interrupt":
            raise KeyboardInterrupt
        super().event(session, namespace, name, args, ack)


class ExitingConnectApp(ExitingApp):
    """The connect handler of ``/cx`` raises SystemExit."""

    def connect(self, session, namespace, query):
        if namespace == "/cx":
            raise SystemExit(1)
        return super().connect(session, namespace, query)


def test_a_connect_handler_raising_systemexit_refuses_the_namespace(caplog):
    """The namespace stayed "connecting": a repeated 1::/cx then requeued
    itself for ever (a core busy, and after handler_threads sessions doing it,
    no handler ran for anyone)."""
    app = ExitingConnectApp()
    with hub_server(app, 1) as (server, hub):
        clients = [open_websocket(server, hub)[2] for _ in range(3)]
        for client in clients[:2]:
            client.sock.sendall(client_frame("1::/cx") + client_frame("1::/cx"))
            assert client.text().startswith("7::/cx")
            assert client.text().startswith("7::/cx")
        for i, client in enumerate(clients):
            emit(client, "echo", 1, i)
            assert client.text() == f"6:::1+[{i}]"
        assert "raised SystemExit" in caplog.text


@pytest.mark.parametrize("handler_threads", [1, 2])
def test_a_handler_raising_systemexit_costs_neither_its_session_nor_the_server(
        handler_threads, caplog):
    """It used to end the thread running it: on the hub, that session's
    handlers never ran again; on the pool, a slot stayed taken, and after
    handler_threads of them no handler ran for anyone."""
    app = ExitingApp()
    with hub_server(app, handler_threads) as (server, hub):
        _, _, client = open_websocket(server, hub)
        for round_ in range(3):
            emit(client, "exit", 10 * round_ + 1)
            emit(client, "interrupt", 10 * round_ + 2)
            emit(client, "echo", 10 * round_ + 3, round_)
            assert client.text() == f"6:::{10 * round_ + 3}+[{round_}]"
        # from another thread the session's jobs go to the pool
        session = next(iter(server.sessions.values()))
        for _ in range(2 * handler_threads):
            server.workers.submit(session, lambda: (_ for _ in ()).throw(SystemExit(4)))
        server.workers.submit(session, lambda: server.send_to_session(session, "3:::pool"))
        assert client.text() == "3:::pool"
        _, _, other = open_websocket(server, hub)
        emit(other, "echo", 1, "other")
        assert other.text() == '6:::1+["other"]'
        assert "raised SystemExit" in caplog.text and "raised KeyboardInterrupt" in caplog.text
        # a few lines per session, then a count, however often its handlers raise
        assert sum("raised" in r.getMessage() for r in caplog.records) <= droplog.BURST


class HeldDecode:
    """Decoding a payload over ``DECODE_AS_JOB_CHARS`` waits for ``finish``
    (``started`` is set meanwhile); smaller ones decode as usual."""

    def __init__(self, monkeypatch):
        from flask_sio09 import server as server_module

        self.started = threading.Event()
        self.finish = threading.Event()
        self.large = "x" * (server_module.DECODE_AS_JOB_CHARS + 1)
        decode = server_module.decode_event

        def slow_for_large(part):
            if len(part) > server_module.DECODE_AS_JOB_CHARS:
                self.started.set()
                assert self.finish.wait(30)
            return decode(part)

        monkeypatch.setattr(server_module, "decode_event", slow_for_large)


def record_handlers(app) -> list:
    """The names of the events ``app`` handles, and "disconnect", in order."""
    order = []
    event, disconnect = app.event, app.disconnect
    app.event = lambda session, namespace, name, args, ack, packet=False: (
        order.append(name), event(session, namespace, name, args, ack, packet))
    app.disconnect = lambda session, namespace: (
        order.append("disconnect"), disconnect(session, namespace))
    return order


def test_a_large_payload_is_decoded_as_a_job_and_a_slow_decode_stalls_no_one(
        server, hub, app, monkeypatch):
    """A payload past DECODE_AS_JOB_CHARS is decoded as a job of its session,
    where the watchdog hands the hub to a new thread when it takes long (a
    probe's 900 kB of small JSON arrays kept every client of the hub waiting
    seconds while the hub's round decoded them). What the session sends after
    it waits for it, in order."""
    held = HeldDecode(monkeypatch)
    session, _, big = open_websocket(server, hub)
    _, _, other = open_websocket(server, hub)
    large = held.large
    emit(big, "echo", 1, large)
    assert held.started.wait(30)
    # the hub goes on while the decode takes its time: another client's
    # events and pings are answered
    for i in range(1, 6):
        emit(other, "echo", i, "y")
        assert other.text() == f'6:::{i}+["y"]'
    other.sock.sendall(client_frame(payload=b"hi", opcode=0x9))
    assert other.frame() == (0xA, b"hi")
    # small events sent after the large one wait for it, and keep their order
    for i in range(2, 5):
        emit(big, "echo", i, i)
    assert wait_until(lambda: session.decoding == 4)
    held.finish.set()
    assert [big.text() for _ in range(4)] == \
        [f'6:::1+["{large}"]'] + [f"6:::{i}+[{i}]" for i in range(2, 5)]
    assert wait_until(lambda: session.decoding == 0)
    # and once it is done, a small payload is decoded in the hub's round again
    emit(big, "echo", 5, 5)
    assert big.text() == "6:::5+[5]"
    assert session.decoding == 0


def test_a_payload_received_off_the_hub_thread_is_decoded_at_once(server, monkeypatch):
    """Thread mode and the WSGI transports decode on the thread that read the
    payload, however large (it serves that client alone)."""
    from flask_sio09 import server as server_module

    decoded = []
    decode = server_module.decode_event
    monkeypatch.setattr(server_module, "decode_event",
                        lambda part: decoded.append(len(part)) or decode(part))
    session = server.new_session({"QUERY_STRING": ""})
    text = '5:1+::{"name":"echo","args":["%s"]}' % ("z" * 20_000)
    assert not server.workers.defers_here()
    server.receive(session, text)
    assert decoded == [len(text)]  # before receive returned, on this thread
    assert session.decoding == 0


def test_a_slot_a_pool_thread_gives_back_wakes_a_thread_waiting_for_one():
    workers = Workers(2)
    with workers._slot_freed:
        workers._slots -= 1  # as a hub thread that release_stuck let go holds one
    gate, first, second = threading.Event(), threading.Event(), threading.Event()
    try:
        workers.submit(FakeSession("s1"), lambda: first.set() or gate.wait(30))
        # (s1's thread has the one slot before s2 comes: else s2's thread could
        # take it first, under load, and run at once)
        assert first.wait(10)
        workers.submit(FakeSession("s2"), second.set)  # waits for a slot
        assert wait_until(lambda: len(workers._threads) == 2)
        assert not second.wait(0.3)  # (a short look: it must not have run)
        gate.set()  # s1's thread gives its slot back: s2's thread must hear of it
        assert second.wait(10), "the slot given back woke no thread waiting for one"
    finally:
        gate.set()
        workers.stop()


def test_a_blocking_handler_that_comes_while_every_slot_is_taken_waits_for_one(app):
    # the hub hands it to the pool's queue rather than run it and let it go
    # too: handler_threads bounds the handlers that run away from the hub
    with hub_server(app, 1) as (server, hub):
        first = open_websocket(server, hub)[2]
        second = open_websocket(server, hub)[2]
        emit(first, "block", 1)
        assert wait_until(lambda: app.blocked == 1 and not server.workers.can_defer())
        emit(second, "block", 1)
        # the hub still does I/O (a ping is answered) and the second handler
        # has not started (a short look: it must not have)
        second.sock.sendall(client_frame(payload=b"p", opcode=0x9))
        assert second.frame() == (0xA, b"p")
        assert not wait_until(lambda: app.blocked == 2, deadline=0.5)
        app.release.set()
        assert first.text() == "6:::1" and second.text() == "6:::1"
        assert app.blocked == 2


def test_a_parked_watchdog_wakes_for_a_handler_that_blocks(app):
    with hub_server(app, 4) as (server, hub):
        stuck = open_websocket(server, hub)[2]
        other = open_websocket(server, hub)[2]
        emit(other, "echo", 1, "warm")
        assert other.text() == '6:::1+["warm"]'
        # idle for a while, the watchdog parks (it must: it would wake every
        # 10 ms for ever otherwise)
        assert wait_until(lambda: hub._watch_parked, deadline=20)
        emit(stuck, "block", 1)
        assert wait_until(lambda: app.blocked == 1)
        # a parked watchdog that was not woken would leave the hub stuck
        # in that handler, and this echo unanswered until it returns
        emit(other, "echo", 2, "x")
        assert other.text() == '6:::2+["x"]'
        assert not app.release.is_set()
        app.release.set()
        assert stuck.text() == "6:::1"


@pytest.mark.patches_internals
@pytest.mark.parametrize("ending", ["close frame", "hang-up", "0::"])
def test_the_packets_of_a_payload_decoded_as_a_job_come_before_what_followed_it(
        server, hub, app, monkeypatch, ending):
    """Its handlers run right after the decode, ahead of what the client sent
    after it and the hub acted on meanwhile: a close (the session's end waits
    for the handlers queued before it), a 0::. A probe saw the event of a large
    payload sent just before a close dropped (its handler queued behind the
    close, then finding the session closed)."""
    held = HeldDecode(monkeypatch)
    order = record_handlers(app)
    session, _, client = open_websocket(server, hub)
    # the first look of a handler job at the session waits a little: a close
    # that the hub acts on before it then finds the session ended
    is_connected = session.is_connected
    delayed = []

    def slow_first_look(endpoint):
        if not delayed and threading.get_ident() != hub.leader:
            delayed.append(True)
            time.sleep(0.3)
        return is_connected(endpoint)

    session.is_connected = slow_first_look
    emit(client, "large", 1, held.large)
    emit(client, "small", 2, "y")
    assert held.started.wait(30)
    if ending == "close frame":
        client.sock.sendall(client_frame(payload=b"\x03\xe8", opcode=0x8))
    elif ending == "hang-up":
        client.sock.close()
    else:
        client.sock.sendall(client_frame("0::"))
    # the hub has read (and acted on) the ending before the decode is done
    assert wait_until(lambda: session.closed or session.jobs_running and len(session.jobs) >= 2)
    held.finish.set()
    assert wait_until(lambda: "disconnect" in order)
    assert order == ["large", "small", "disconnect"]
    assert wait_until(lambda: session.decoding == 0 and session.collecting is None)


@pytest.mark.patches_internals
def test_back_pressure_waits_for_the_handlers_of_a_payload_decoded_as_a_job(server):
    """``when_handled`` (what holds a WebSocket's reading and a polling upload's
    answer) fires after the handlers of a payload decoded as a job, not once
    it is decoded."""
    from flask_sio09 import server as server_module

    session = server.new_session({"QUERY_STRING": ""})
    ran = []
    server.workers.defer_to(threading.get_ident())  # (this thread acts as the hub's)
    try:
        large = "z" * (server_module.DECODE_AS_JOB_CHARS + 1)
        server.receive(session, '5:1+::{"name":"echo","args":["%s"]}' % large)
        assert session.decoding == 1
        server.when_handled(session, lambda: ran.append("handled"))
        server.workers.submit(session, lambda: ran.append("later job"))
        original = server.workers.submit

        def submit(target, job, inline=False):
            # the decode's own submissions: record when they run
            original(target, lambda: (ran.append("dispatched"), job()), inline)

        server.workers.submit = submit
        assert server.workers.run_deferred()
    finally:
        server.workers.submit = original
        server.workers.defer_to(None)
    assert ran[0] == "dispatched" and ran[1:] == ["handled", "later job"]
    assert session.decoding == 0


def test_a_forced_disconnect_waits_for_the_handlers_of_what_came_before(
        server, hub, app, monkeypatch):
    """``?disconnect`` ends the session after the handlers of what the client
    sent before it, as Node did: a POST is answered before its packets run,
    and a large one may still be decoding (a probe lost the events of a large
    POST that socket.io-client's disconnectSync followed)."""
    from flask_sio09 import transports

    held = HeldDecode(monkeypatch)
    order = record_handlers(app)
    session, _, client = open_websocket(server, hub)
    emit(client, "large", 1, held.large)
    assert held.started.wait(30)
    transports.forced_disconnect(server, session.sid)
    assert not session.closed  # (it waits for the decode and its handlers)
    held.finish.set()
    assert wait_until(lambda: "disconnect" in order)
    assert order == ["large", "disconnect"]
    assert session.closed and session.close_reason == "client disconnect"


def test_a_forced_disconnect_of_an_idle_session_ends_it_at_once(server, hub):
    session, _, _ = open_websocket(server, hub)
    assert wait_until(lambda: not session.jobs_running and not session.jobs)
    from flask_sio09 import transports

    transports.forced_disconnect(server, session.sid)
    assert session.closed


@pytest.mark.patches_internals
def test_a_packet_marked_as_the_watchdog_hands_the_hub_over_wakes_the_new_hub_thread(
        app, monkeypatch):
    """A handler on the hub thread emits just as the watchdog gives the hub
    to a new thread: between ``mark``'s look at the leader and its insert,
    the new thread has started and waits in poll. It must be woken, or the
    packet waits for the client's next message or heartbeat, seconds away
    (probe AG, mutation 06). The hand-over is made to happen at that point."""
    from flask_sio09 import hub as hub_module

    # no hand-over but the test's own (a slow machine's would blur it)
    monkeypatch.setattr(hub_module, "STUCK_SECONDS", 60.0)
    with hub_server(app, 4) as (server, hub):
        session, conn, client = open_websocket(server, hub)
        old_leader = []  # the hub thread that runs the handler
        promoted = threading.Event()
        new_thread_waits = threading.Event()
        handed_over = []  # (whether the new thread waited in poll before the insert)
        poll = hub._poller.poll

        def watched_poll(timeout):
            if promoted.is_set() and threading.get_ident() not in old_leader \
                    and timeout != 0.0:
                new_thread_waits.set()  # the new hub thread is about to wait
            return poll(timeout)

        hub._poller.poll = watched_poll

        class HandOverAtInsert(dict):
            """The hub's dirty set, which hands the hub over (as the watchdog
            does) when the old hub thread inserts into it."""

            def __setitem__(self, key, value):
                if not promoted.is_set() and threading.get_ident() in old_leader:
                    assert server.workers.release_stuck(-1.0)
                    promoted.set()
                    hub._promote()
                    handed_over.append(new_thread_waits.wait(20))
                super().__setitem__(key, value)

        event = app.event

        def hand_over_event(session, namespace, name, args, ack, packet=False):
            if name == "hand over":  # on the hub thread, its leader
                old_leader.append(threading.get_ident())
                hub._dirty = HandOverAtInsert(hub._dirty)
            event(session, namespace, name, args, ack, packet)

        app.event = hand_over_event
        emit(client, "hand over", 1, "x")
        assert client.text() == '6:::1+["x"]'  # broken: a timeout, the ack never written
        assert handed_over == [True]
        assert ("hand over", "sio09-hub") in app.threads
