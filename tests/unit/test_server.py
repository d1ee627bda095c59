"""Server dispatch and timers, with a recording application and a fake clock."""

import contextlib
import logging
import sys
import threading

import pytest

from flask_sio09 import packet
from flask_sio09.server import Options, Server
from tests.conftest import wait_until
from tests.unit.doubles import Clock


class RecordingApp:
    def __init__(self):
        self.calls = []
        self.refuse = set()
        self.answers = {}

    def authorize_handshake(self, environ):
        return True

    def connect(self, session, namespace, query):
        self.calls.append(("connect", namespace, query))
        return namespace not in self.refuse

    def event(self, session, namespace, name, args, ack, packet=False):
        self.calls.append(("event", namespace, name, args))
        if ack is not None:
            ack(*self.answers.get(name, ()))

    def disconnect(self, session, namespace):
        self.calls.append(("disconnect", namespace))

    def callback(self, session, namespace, callback, args):
        callback(*args)

    def error(self, session, namespace, reason, advice):
        self.calls.append(("error", namespace, reason, advice))


class Transport:
    def __init__(self, persistent=True):
        self.persistent = persistent
        self.wakes = 0

    def wake(self):
        self.wakes += 1


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def app():
    return RecordingApp()


@pytest.fixture
def server(app, clock):
    opts = Options(heartbeat_interval=5, heartbeat_timeout=12, close_timeout=20)
    srv = Server(opts, app, clock=clock, monitor=False, synchronous=True)
    yield srv
    srv.shutdown()


def open_session(server, query=""):
    session = server.new_session({"QUERY_STRING": query})
    transport = Transport()
    server.attach(session, transport)
    return session, transport


def during_connect(server, app, action, namespace="/ns", once=False):
    """Run ``action(session)`` inside ``namespace``'s connect handler (on its
    first run only, with ``once``): what arrives or happens while it runs."""
    original = app.connect
    runs = []

    def connect(s, endpoint, query):
        if endpoint == namespace:
            runs.append(endpoint)
            if not once or len(runs) == 1:
                action(s)
        return original(s, endpoint, query)

    app.connect = connect


def test_open_connects_global_namespace_and_sends_connect(server, app):
    session, _ = open_session(server, "token=1")
    assert app.calls == [("connect", "", "token=1")]
    assert session.take_outbox() == ["1::"]
    assert session.is_connected("")


def test_refused_global_connect_ends_session(server, app):
    app.refuse.add("")
    session, _ = open_session(server)
    assert session.closed
    # the refusal and the disconnect wait for the transport to drain them
    assert session.take_outbox() == ["7:::2", "0::"]
    assert ("disconnect", "") not in app.calls


def test_namespace_connect_echo_then_query_then_refusal(server, app):
    session, _ = open_session(server, "h=1")
    session.take_outbox()
    server.receive(session, "1::/chat:?a=b")
    assert ("connect", "/chat", "a=b") in app.calls
    server.receive(session, "1::/chat2")
    assert ("connect", "/chat2", "h=1") in app.calls  # falls back to the handshake query
    app.refuse.add("/private")
    server.receive(session, "1::/private")
    assert session.take_outbox() == ["1::/chat", "1::/chat2", "7::/private:2"]
    assert not session.is_connected("/private")


def test_a_connect_handler_that_raises_refuses_the_namespace(server, app):
    """The bridge's connect call raises (say a ``teardown_request`` that fails
    after the handler ran): the client is refused (``7::/ns:2``) and is not
    in the namespace. Broken, it is told ``1::/ns`` and joined (probe AD,
    mutation S23)."""
    def fail(session):
        raise RuntimeError("teardown_request failed")

    during_connect(server, app, fail, namespace="/ns")
    session, _ = open_session(server)
    session.take_outbox()
    server.receive(session, "1::/ns")
    assert session.take_outbox() == ["7::/ns:2"]
    assert not session.is_connected("/ns") and "/ns" not in session.namespaces


def test_a_1_for_the_global_namespace_of_an_open_session_is_not_answered(server, app):
    """The global namespace is joined when the transport opens; a ``1::``
    that the client sends later gets no answer, and no connect handler runs
    again. Broken, the client gets a ``1::`` back (probe AD, mutation S34)."""
    session, _ = open_session(server)
    session.take_outbox()
    server.receive(session, "1::")
    assert session.take_outbox() == []
    assert app.calls == [("connect", "", "")]


def test_events_auto_ack_data_ack_and_blacklist(server, app):
    session, _ = open_session(server)
    session.take_outbox()
    app.answers["sum"] = (3, "x")
    server.receive(session, '5:7::{"name":"plain"}')
    server.receive(session, '5:8+::{"name":"sum","args":[1,2]}')
    server.receive(session, '5:9+::{"name":"disconnect"}')
    server.receive(session, "3:10::hello")
    assert session.take_outbox() == ["6:::7", '6:::8+[3,"x"]', "6:::10"]
    names = [c[2] for c in app.calls if c[0] == "event"]
    assert names == ["plain", "sum", "message"]


def test_auto_ack_even_for_unjoined_namespace_but_no_dispatch(server, app):
    session, _ = open_session(server)
    session.take_outbox()
    server.receive(session, "3:7:/other:x")
    assert session.take_outbox() == ["6::/other:7"]
    assert not [c for c in app.calls if c[0] == "event"]


def test_malformed_packets_are_dropped_and_session_lives(server, app):
    session, _ = open_session(server)
    session.take_outbox()
    for junk in ["", "zz", "99::", "4:::{bad", "\ufffd5\ufffd3:::5\ufffd99\ufffd", "5:x::{}"]:
        server.receive(session, junk)
    server.receive(session, '5:1+::{"name":"ok"}')
    assert not session.closed
    assert session.take_outbox() == ["6:::1"]


def test_framed_payload_dispatches_every_packet_in_order(server, app):
    session, _ = open_session(server)
    session.take_outbox()
    payload = '\ufffd18\ufffd5:::{"name":"one"}\ufffd18\ufffd5:::{"name":"two"}'
    assert payload == packet.frame(['5:::{"name":"one"}', '5:::{"name":"two"}'])
    server.receive(session, payload)
    assert [c[2] for c in app.calls if c[0] == "event"] == ["one", "two"]


def test_client_disconnect_runs_handlers_once_per_namespace(server, app):
    session, _ = open_session(server)
    server.receive(session, "1::/chat")
    server.receive(session, "0::/chat")
    assert app.calls.count(("disconnect", "/chat")) == 1
    server.receive(session, "0::/chat")
    assert app.calls.count(("disconnect", "/chat")) == 1
    server.receive(session, "1::/chat")
    server.receive(session, "0::")
    assert session.closed
    assert app.calls.count(("disconnect", "/chat")) == 2
    assert app.calls.count(("disconnect", "")) == 1
    assert server.get_session(session.sid) is None


def test_server_disconnect_of_namespace_and_session(server, app):
    session, _ = open_session(server)
    server.receive(session, "1::/chat")
    session.take_outbox()
    server.disconnect(session.sid, "/chat")
    assert session.take_outbox() == ["0::/chat"]
    assert ("disconnect", "/chat") in app.calls
    server.disconnect(session.sid)
    assert session.closed
    assert session.release(session.transport, 0) == ["0::"]


def test_emit_with_callback_needs_one_recipient_and_routes_ack(server, app):
    session, _ = open_session(server)
    session.take_outbox()
    got = []
    server.emit_packet({"type": "event", "name": "q", "args": [1]}, "", to=session.sid,
                       callback=lambda *a: got.append(a))
    wire = session.take_outbox()
    assert wire == ['5:1+::{"name":"q","args":[1]}']
    server.receive(session, '6:::1+["yes",2]')
    assert got == [("yes", 2)]
    other, _ = open_session(server)
    other.take_outbox()
    with pytest.raises(ValueError, match="reaches 2"):
        server.emit_packet({"type": "event", "name": "q", "args": []}, "", callback=print)
    # none: as without callback=, nothing is sent (a background task's client
    # may leave at any moment), and the callback is not kept
    server.emit_packet({"type": "event", "name": "q", "args": []}, "", to="gone",
                       callback=print)
    assert session.take_outbox() == [] and other.take_outbox() == []
    server.close_session(other, "client disconnect")
    server.emit_packet({"type": "event", "name": "q", "args": []}, "", to=other.sid,
                       callback=print)
    assert other.take_outbox() == []


def test_a_question_that_cannot_be_encoded_keeps_no_callback(server, app):
    # the callback was kept before the packet failed to encode: never sent,
    # its id was answerable all the same (a client's "6:::1+..." ran it)
    from flask_sio09.packet import PacketError

    session, _ = open_session(server)
    session.take_outbox()
    got = []
    for bad in (float("nan"), {1, 2}):
        with pytest.raises(PacketError):
            server.emit_packet({"type": "event", "name": "q", "args": [bad]}, "",
                               to=session.sid, callback=lambda *a: got.append(a))
    assert session.take_outbox() == []
    server.receive(session, '6:::1+["forged"]')
    server.receive(session, '6:::2+["forged"]')
    assert got == []


def test_broadcast_skips_sender_and_unjoined(server, app):
    a, _ = open_session(server)
    b, _ = open_session(server)
    c, _ = open_session(server)
    for s in (a, b):
        server.receive(s, "1::/chat")
    for s in (a, b, c):
        s.take_outbox()
    server.emit_packet({"type": "event", "name": "hi", "args": []}, "/chat", skip_sid=a.sid)
    assert a.take_outbox() == []
    assert b.take_outbox() == ['5::/chat:{"name":"hi"}']
    assert c.take_outbox() == []


class BusyWriter(Transport):
    """A thread-mode WebSocket whose thread is stuck in a write while its
    reader thread goes on reading: ``heard`` is what it reports each look."""

    def __init__(self, heard):
        super().__init__()
        self.heard = list(heard)

    def heard_from_client(self):
        return self.heard.pop(0)


def test_a_client_heard_while_its_thread_writes_is_not_timed_out(server, clock):
    session = server.new_session({})
    server.attach(session, BusyWriter([True, True, False]))
    for _ in range(2):  # silent to the session, but new messages were read
        clock.now += 12.5
        server.monitor_step(clock.now)
        assert not session.closed
        assert session.last_seen == clock.now
    clock.now += 12.5  # nothing more read: silent
    server.monitor_step(clock.now)
    assert session.closed and session.close_reason == "heartbeat timeout"


def test_heartbeats_and_heartbeat_timeout(server, clock):
    session, _ = open_session(server)
    session.take_outbox()
    clock.now += 5
    server.monitor_step(clock.now)
    assert session.take_outbox() == ["2::"]
    server.receive(session, "2::")
    clock.now += 5
    server.monitor_step(clock.now)
    assert session.take_outbox() == ["2::"]
    clock.now += 12.5  # silent past heartbeat_timeout
    server.monitor_step(clock.now)
    assert session.closed and session.close_reason == "heartbeat timeout"


def test_every_payload_the_client_sends_counts_as_its_sign_of_life(server, clock):
    """Each payload received sets the session's ``last_seen`` to the
    server's clock, so a client that speaks is not timed out. Broken, every
    client is cut at heartbeat_timeout whatever it sends (probe AD, mutation
    S29)."""
    session, _ = open_session(server)
    clock.now += 7
    server.receive(session, "2::")
    assert session.last_seen == clock.now
    clock.now += 7  # 14 s since the transport opened, 7 since the client spoke
    server.monitor_step(clock.now)
    assert not session.closed


def test_one_heartbeat_per_interval_however_often_the_monitor_looks(server, clock):
    """The monitor passes several times per heartbeat_interval: the client
    gets one ``2::`` per interval. Broken, it gets one per pass, and answers
    each (probe AD, mutation S11)."""
    session, _ = open_session(server)
    session.take_outbox()
    sent = []
    for _ in range(20):  # a pass every half second for 10 s (interval: 5 s)
        clock.now += 0.5
        server.monitor_step(clock.now)
        beats = session.take_outbox()
        if beats:
            server.receive(session, "2::")  # the client answers each
        sent += beats
    assert sent == ["2::", "2::"]


def test_heartbeats_go_out_while_the_global_connect_handler_runs(server, app, clock):
    # a heartbeat belongs to no namespace: it was held back with the global
    # namespace's packets, so a client whose connect handler waited for a
    # handler thread heard nothing at all, and gave its transport up
    seen = []

    def beat(session):
        clock.now += 5
        server.monitor_step(clock.now)
        seen.append(session.take_outbox())

    during_connect(server, app, beat, namespace="")
    session, _ = open_session(server)
    assert seen == [["2::"]]
    assert session.take_outbox() == ["1::"]


def test_close_timeout_for_detached_session(server, clock, app):
    session = server.new_session({})
    poll = Transport(persistent=False)
    server.attach(session, poll)
    server.release(session, poll)
    clock.now += 19
    server.monitor_step(clock.now)
    assert not session.closed
    clock.now += 2
    server.monitor_step(clock.now)
    assert session.closed and session.close_reason == "close timeout"
    assert app.calls.count(("disconnect", "")) == 1


def test_unused_handshake_is_forgotten(server, clock):
    session = server.new_session({})
    clock.now += 19.9
    server.monitor_step(clock.now)
    assert not session.closed
    clock.now += 0.2
    server.monitor_step(clock.now)
    assert session.closed


def test_an_unused_handshake_is_forgotten_sooner_than_close_timeout(app, clock):
    # a handshake no transport ever used goes after UNUSED_HANDSHAKE_TIMEOUT
    # (30 s), a polling session between two polls only after close_timeout
    from flask_sio09.server import UNUSED_HANDSHAKE_TIMEOUT

    srv = Server(Options(close_timeout=60), app, clock=clock, monitor=False, synchronous=True)
    try:
        unused = srv.new_session({"QUERY_STRING": ""})
        polling = srv.new_session({"QUERY_STRING": ""})
        poll = Transport(persistent=False)
        srv.attach(polling, poll)
        srv.release(polling, poll)
        clock.now += UNUSED_HANDSHAKE_TIMEOUT + 1
        srv.monitor_step(clock.now)
        assert unused.closed and not polling.closed
        clock.now += 60 - UNUSED_HANDSHAKE_TIMEOUT
        srv.monitor_step(clock.now)
        assert polling.closed
    finally:
        srv.shutdown()


def test_persistent_transport_loss_ends_session(server, app):
    session, transport = open_session(server)
    server.release(session, transport)
    assert session.closed
    assert app.calls.count(("disconnect", "")) == 1


def test_a_replaced_websocket_ending_between_two_polls_leaves_the_session_alone(server, app):
    # a WebSocket replaced by a poll, the poll answered (no transport attached
    # until the next one), then the WebSocket's end is noticed: the session is
    # the polling client's, and lives on
    session, websocket = open_session(server)
    poll = Transport(persistent=False)
    server.attach(session, poll)
    server.release(session, poll)
    assert session.transport is None
    assert server.release(session, websocket) == []
    assert not session.closed
    assert ("disconnect", "") not in app.calls
    server.send_to_session(session, "3:::later")
    next_poll = Transport(persistent=False)
    server.attach(session, next_poll)
    assert server.release(session, next_poll) == ["3:::later"]


def test_two_polls_racing_for_a_closed_sessions_last_packets_get_its_0_once(server):
    # both found the session still draining its 0::; the one that took it
    # says it, the other that the session is gone
    session, websocket = open_session(server)
    poll = Transport(persistent=False)
    server.attach(session, poll)
    server.release(session, poll)
    server.disconnect(session.sid)
    first, second = Transport(persistent=False), Transport(persistent=False)
    assert server.get_session(session.sid, draining=True) is session
    server.attach(session, first)
    server.attach(session, second)  # (replaces the first)
    assert server.answer_poll(session, second) == "0::"
    assert server.answer_poll(session, first) == "7:::1+0"


def test_outbox_overflow_closes_session(app, clock):
    srv = Server(Options(max_outbox_bytes=100), app, clock=clock, monitor=False,
                 synchronous=True)
    session, _ = open_session(srv)
    for _ in range(20):
        srv.emit_packet({"type": "message", "data": "x" * 20}, "", to=session.sid)
    assert session.closed and session.close_reason == "outbox overflow"
    srv.shutdown()


def test_an_overflowed_outbox_is_dropped_not_kept_for_a_poll(app, clock):
    srv = Server(Options(max_outbox_bytes=100), app, clock=clock, monitor=False,
                 synchronous=True)
    session = srv.new_session({"QUERY_STRING": ""})
    poll = Transport(persistent=False)
    srv.attach(session, poll)
    srv.release(session, poll)  # a polling client between two polls
    for _ in range(20):
        srv.emit_packet({"type": "message", "data": "x" * 20}, "", to=session.sid)
    assert session.closed and session.close_reason == "outbox overflow"
    assert not session.has_outbox()
    assert srv.get_session(session.sid, draining=True) is None
    srv.shutdown()


def test_uploads_past_the_inbound_limit_ask_for_their_answer_to_wait(server):
    """``upload_received`` says True once the bytes whose handlers have not
    run pass the inbound limit, so that the POST's answer waits for them.
    Broken (past a hundred times the limit), a client that uploads faster
    than its handlers run grows the server's memory (probe AD, mutation
    S07)."""
    from flask_sio09.server import INBOUND_LIMIT

    session, _ = open_session(server)
    assert server.upload_received(session, INBOUND_LIMIT) is False
    assert server.upload_received(session, INBOUND_LIMIT + 1) is True
    assert session.uploads_waiting == 0  # (their handlers ran: synchronous)


def test_close_during_connect_handler_runs_disconnect_once(server, app):
    session = server.new_session({"QUERY_STRING": ""})
    original = app.connect

    def connect_then_close(s, namespace, query):
        server.close_session(s, "gone while connecting")
        return original(s, namespace, query)

    app.connect = connect_then_close
    server.attach(session, Transport())
    assert session.closed
    assert app.calls.count(("disconnect", "")) == 1


@pytest.mark.patches_internals
def test_close_right_after_accept_runs_disconnect_once(server, app):
    # the race: the session closes between the namespace's acceptance and the
    # connect job's own check of session.closed
    session = server.new_session({"QUERY_STRING": ""})
    accept = session.accept_namespace

    def accept_then_close(endpoint, echo):
        ok = accept(endpoint, echo)
        server.close_session(session, "closed at once")
        return ok

    session.accept_namespace = accept_then_close
    server.attach(session, Transport())
    assert session.closed
    assert app.calls.count(("disconnect", "")) == 1


def test_server_disconnect_between_polls_is_collected_by_next_poll(server, app, clock):
    session = server.new_session({"QUERY_STRING": ""})
    poll = Transport(persistent=False)
    server.attach(session, poll)
    assert server.release(session, poll) == ["1::"]
    server.disconnect(session.sid)
    assert session.closed
    assert server.get_session(session.sid) is None
    # a poll still gets the "0::" (a client told "7:::1+0" would reconnect)
    assert server.get_session(session.sid, draining=True) is session
    late = Transport(persistent=False)
    server.attach(session, late)
    assert late.wakes == 1
    assert server.release(session, late) == ["0::"]
    assert server.get_session(session.sid, draining=True) is None


def _between_polls_with_a_packet_queued(server):
    """A polling session whose first poll was answered, with a packet queued since."""
    session = server.new_session({"QUERY_STRING": ""})
    poll = Transport(persistent=False)
    server.attach(session, poll)
    server.release(session, poll)
    server.emit_packet({"type": "message", "data": "queued"}, "", to=session.sid)
    assert session.has_outbox()
    return session


def test_a_session_closed_by_its_close_timeout_keeps_nothing_for_a_poll(server, clock):
    """A polling client that no poll came from in close_timeout is gone: what
    was queued for it goes with the session, and a poll that comes later
    anyway is told to start again, not handed those stale packets (they were
    kept for one more close_timeout: probe S)."""
    session = _between_polls_with_a_packet_queued(server)
    clock.now += 21
    server.monitor_step(clock.now)
    assert session.closed and session.close_reason == "close timeout"
    assert server.get_session(session.sid) is None
    assert server.get_session(session.sid, draining=True) is None
    assert server._draining == {}


def test_a_session_the_client_ended_between_polls_keeps_nothing_for_a_poll(server):
    """?disconnect (or a POSTed 0::) with no poll open: the client ended the
    session, so what was queued for it goes with it and a later poll is told
    7:::1+0 (PROTOCOL.md 2.3), not handed those packets (probe AA)."""
    session = _between_polls_with_a_packet_queued(server)
    server.forced_disconnect(session)
    assert session.closed and session.close_reason == "client disconnect"
    assert server.get_session(session.sid) is None
    assert server.get_session(session.sid, draining=True) is None
    assert server._draining == {}


def test_undelivered_last_packets_are_forgotten_after_close_timeout(server, clock):
    session = server.new_session({"QUERY_STRING": ""})
    poll = Transport(persistent=False)
    server.attach(session, poll)
    server.release(session, poll)
    server.disconnect(session.sid)
    clock.now += 21
    server.monitor_step(clock.now)
    assert server.get_session(session.sid, draining=True) is None


def test_handler_threads_zero_runs_handlers_on_the_reading_thread(app, clock):
    import threading

    seen = []
    app.event = lambda session, ns, name, args, ack, packet=False: seen.append(threading.current_thread())
    srv = Server(Options(handler_threads=0), app, clock=clock, monitor=False)
    session, _ = open_session(srv)
    srv.receive(session, '5:::{"name":"x"}')
    assert seen == [threading.current_thread()]
    srv.shutdown()


def test_a_session_whose_handler_runs_is_not_timed_out_for_heartbeats(app, clock):
    # in thread mode the running handler holds the thread that would read the
    # client's heartbeat answers: its session is spared until the handler ends
    srv = Server(Options(heartbeat_timeout=10, heartbeat_interval=5, handler_threads=0), app,
                 clock=clock, monitor=False)
    session, _ = open_session(srv)
    session.jobs_running = True  # a handler of this session is running
    clock.now += 30
    srv.monitor_step(clock.now)
    assert not session.closed
    session.jobs_running = False
    srv.monitor_step(clock.now)
    assert session.closed and session.close_reason == "heartbeat timeout"
    srv.shutdown()


def test_a_namespace_left_and_joined_again_in_one_read(app, clock):
    """``0::/chat``, ``1::/chat`` and an event in one payload, their jobs
    deferred as on the hub thread: the disconnect handler, then the connect
    handler (and its echo), then the event, in that order."""
    import threading

    opts = Options(heartbeat_interval=5, heartbeat_timeout=12, close_timeout=20)
    srv = Server(opts, app, clock=clock, monitor=False)
    try:
        srv.workers.defer_to(threading.get_ident())
        session, _ = open_session(srv)
        srv.receive(session, "1::/chat")
        srv.workers.run_deferred()
        assert session.is_connected("/chat")
        session.take_outbox()
        app.calls.clear()
        srv.receive(session, packet.frame(["0::/chat", "1::/chat:?again=1",
                                           '5::/chat:{"name":"after"}']))
        srv.workers.run_deferred()
        assert app.calls == [("disconnect", "/chat"), ("connect", "/chat", "again=1"),
                             ("event", "/chat", "after", [])]
        assert session.take_outbox() == ["1::/chat"]
        assert session.is_connected("/chat") and not session.leaving
        assert srv.manager.recipients("/chat", session.sid) == [session.sid]
    finally:
        srv.shutdown()


@pytest.mark.parametrize("refused", [True, False])
def test_a_plain_ack_is_sent_at_once_while_its_namespace_connects(server, app, refused):
    # an event asking for a plain ack arrives while /ns's connect handler runs:
    # its ack goes out at once (before dispatch, as Node), not held with the
    # namespace's packets, which a refusal drops
    session = server.new_session({"QUERY_STRING": ""})
    server.attach(session, Transport())
    session.take_outbox()
    during_connect(server, app, lambda s: server.receive(s, '5:12:/ns:{"name":"hi","args":[]}'))
    if refused:
        app.refuse.add("/ns")
    server.receive(session, "1::/ns")
    out = session.take_outbox()
    assert out[0] == "6::/ns:12"
    assert out[1:] == (["7::/ns:2"] if refused else ["1::/ns"])


def test_go_away_ends_every_session_so_that_clients_come_back(server, app):
    from flask_sio09.server import POLL_FAILED

    websocket = server.new_session({"QUERY_STRING": ""})
    server.attach(websocket, Transport(persistent=True))
    server.receive(websocket, "1::/chat")
    polling = server.new_session({"QUERY_STRING": ""})
    poll = Transport(persistent=False)
    server.attach(polling, poll)
    polling.take_outbox()
    waiting = server.new_session({"QUERY_STRING": ""})
    parked = Transport(persistent=False)
    server.attach(waiting, parked)
    waiting.take_outbox()
    server.emit_packet({"type": "message", "data": "last"}, "", to=waiting.sid)
    app.calls.clear()

    server.go_away()
    server.go_away()  # once
    for session in (websocket, polling, waiting):
        assert session.closed and session.close_reason == "server going away"
    # every namespace's disconnect handler ran, once, the global one last
    assert app.calls.count(("disconnect", "")) == 3
    assert app.calls.count(("disconnect", "/chat")) == 1
    assert app.calls.index(("disconnect", "/chat")) < app.calls.index(("disconnect", ""))
    # a waiting poll fails (a 0.9 client told "0::" would not come back),
    # unless it has packets to carry: they still go out
    assert server.answer_poll(polling, poll) == POLL_FAILED
    assert server.answer_poll(waiting, parked) == "3:::last"
    assert "0::" not in websocket.take_outbox()
    assert not server.gone()  # the WebSocket has not let go yet
    server.release(websocket, websocket.transport)
    assert server.gone()


def test_go_away_says_the_server_stops_only_in_a_process_that_took_clients(server, caplog):
    # A script or a ``flask`` command that only imports the app stops no
    # server: it said "the server stops: 0 sessions end" at every exit.
    caplog.set_level(logging.INFO, logger="flask_sio09")
    server.go_away()
    assert not [r for r in caplog.records if "the server stops" in r.getMessage()]

    served = Server(Options(), server.app, monitor=False, synchronous=True)
    try:
        session = served.new_session({"QUERY_STRING": ""})
        served.close_session(session, "client disconnected")
        caplog.clear()
        served.go_away()  # (its one session is gone already: 0 end now)
        assert [r.getMessage() for r in caplog.records
                if "the server stops" in r.getMessage()] == \
            ["the server stops: 0 sessions end, their clients reconnect elsewhere"]
    finally:
        served.shutdown()


def test_a_gunicorn_worker_is_found_by_its_term_handler_and_its_stop_seen():
    import signal
    import types

    from flask_sio09 import stopping

    worker_class = types.new_class("ThreadWorker")
    worker_class.__module__ = "gunicorn.workers.gthread"
    worker = worker_class()
    worker.alive = True
    worker.handle_exit = types.MethodType(lambda self, sig, frame: setattr(self, "alive", False),
                                          worker)
    before = signal.getsignal(signal.SIGTERM)
    try:
        assert stopping.gunicorn_worker() is None  # (pytest's own handler, or none)
        signal.signal(signal.SIGTERM, worker.handle_exit)
        found = stopping.gunicorn_worker()
        assert found is worker and not stopping.worker_stopping(found)
        worker.handle_exit(signal.SIGTERM, None)  # what gunicorn's TERM does
        assert stopping.worker_stopping(found)
        signal.signal(signal.SIGTERM, lambda *_: None)  # any other handler: no worker
        assert stopping.gunicorn_worker() is None
    finally:
        signal.signal(signal.SIGTERM, before)


def test_the_exit_waits_for_disconnect_handlers_well_within_gunicorns_graceful_timeout():
    """gunicorn's master kills a worker still running --graceful-timeout
    seconds after its TERM: the exit's wait for the disconnect handlers
    must end before that, or the worker is killed mid-exit."""
    import types

    from flask_sio09 import stopping

    def worker(graceful_timeout):
        return types.SimpleNamespace(cfg=types.SimpleNamespace(graceful_timeout=graceful_timeout))

    assert stopping.exit_wait(worker(2)) == pytest.approx(1.2)  # 0.6 of it
    assert stopping.exit_wait(worker(0.5)) == pytest.approx(0.3)
    # a long graceful timeout, none or not a number: EXIT_WAIT_SECONDS
    assert stopping.exit_wait(worker(300)) == stopping.EXIT_WAIT_SECONDS
    assert stopping.exit_wait(worker(None)) == stopping.EXIT_WAIT_SECONDS
    assert stopping.exit_wait(None) == stopping.EXIT_WAIT_SECONDS


def test_go_away_again_ends_the_sessions_that_came_since(server, app):
    first = server.new_session({"QUERY_STRING": ""})
    server.attach(first, Transport(persistent=False))
    server.go_away()
    late = server.new_session({"QUERY_STRING": ""})  # (a handshake already under way)
    late_transport = Transport(persistent=False)
    server.attach(late, late_transport)
    assert not late.closed
    server.go_away()  # at the interpreter's exit, after the monitor's call
    assert first.closed and late.closed and late.close_reason == "server going away"
    assert server.left_behind() == 2  # their polls have not answered yet
    server.answer_poll(first, first.transport)
    server.answer_poll(late, late_transport)
    assert server.gone() and server.left_behind() == 0


@pytest.mark.parametrize("endpoint", ["", "/chat"])
def test_disconnect_from_a_connect_handler_accepts_then_disconnects(server, app, endpoint):
    # As Node does for `socket.disconnect()` in its connection handler: the
    # client gets its connect packet, what the handler sent, then the
    # disconnect, and the disconnect handler runs once.
    session = server.new_session({"QUERY_STRING": ""})
    original = app.connect

    def connect_then_disconnect(s, namespace, query):
        accepted = original(s, namespace, query)
        if namespace == endpoint:
            server.send_to_session(s, packet.encode(
                {"type": "event", "name": "after", "args": [1], "endpoint": namespace}), namespace)
            server.disconnect(s.sid, namespace)
        return accepted

    app.connect = connect_then_disconnect
    server.attach(session, Transport())
    if endpoint:
        server.receive(session, "1::" + endpoint)
    prefix = f"{endpoint}:" if endpoint else ":"
    wire = session.take_outbox() if endpoint else session.release(session.transport, 0)
    tail = ["1::" + endpoint, f'5::{prefix}{{"name":"after","args":[1]}}', "0::" + endpoint]
    assert wire[-3:] == tail
    assert app.calls.count(("disconnect", endpoint)) == 1
    assert session.closed == (endpoint == "")


@pytest.mark.patches_internals
def test_a_disconnect_that_races_the_acceptance_is_not_lost(server, app):
    # disconnect() from another thread sees the namespace still connecting,
    # and the connect job accepts and looks for a pending disconnect before
    # disconnect() has asked for one: disconnect() then does it itself
    session, _ = open_session(server)
    session.take_outbox()
    assert session.begin_namespace("/chat")  # its connect handler runs
    real_state = session.namespace_state
    raced = []

    def namespace_state(endpoint):
        answer = real_state(endpoint)
        if not raced:  # disconnect()'s first look: the job finishes right after it
            raced.append(endpoint)
            assert session.accept_namespace("/chat", "1::/chat")
            assert not server._pop_leave_after_connect(session.sid, "/chat")
        return answer

    session.namespace_state = namespace_state
    server.disconnect(session.sid, "/chat")
    assert raced == ["/chat"]
    assert session.take_outbox() == ["1::/chat", "0::/chat"]
    assert ("disconnect", "/chat") in app.calls
    assert not server._leave_after_connect


def test_send_with_callback_asks_for_a_plain_ack_as_node_does(server, app):
    # socket.io-client 0.9.16 answers a plain ack on a message by itself, but
    # hands a data ack to the app's 'message' listener, which rarely calls it:
    # Node and gevent-socketio ask for a plain ack, and so do we
    session, _ = open_session(server)
    session.take_outbox()
    got = []
    server.emit_packet({"type": "message", "data": "m"}, "", to=session.sid,
                       callback=lambda *a: got.append(a))
    server.emit_packet({"type": "json", "data": {"a": 1}}, "", to=session.sid,
                       callback=lambda *a: got.append(("json",) + a))
    assert session.take_outbox() == ["3:1::m", '4:2::{"a":1}']
    server.receive(session, "6:::1")
    server.receive(session, "6:::2")
    assert got == [(), ("json",)]


def test_an_event_on_a_namespace_the_client_left_joins_it_again(server, app):
    # socket.io-client 0.9.16 keeps a namespace it left and never sends
    # 1::/ns for it again; Node went on serving it. The connect handler runs
    # again (with the handshake's query, which that client sends for a
    # namespace), then the event; no 1::/ns echo.
    session, _ = open_session(server, "token=1")
    session.take_outbox()
    server.receive(session, "1::/chat")
    assert session.take_outbox() == ["1::/chat"]
    server.receive(session, "0::/chat")
    assert ("disconnect", "/chat") in app.calls and not session.is_connected("/chat")
    app.calls.clear()
    app.answers["q"] = ("yes",)
    server.receive(session, '5:7+:/chat:{"name":"q","args":[1]}')
    assert app.calls == [("connect", "/chat", "token=1"), ("event", "/chat", "q", [1])]
    assert session.take_outbox() == ['6::/chat:7+["yes"]']
    assert session.is_connected("/chat")
    # a client that asks now is answered (as Node did), without a second connect
    server.receive(session, "1::/chat")
    assert session.take_outbox() == ["1::/chat"]
    assert app.calls.count(("connect", "/chat", "token=1")) == 1


def test_the_namespaces_a_client_left_are_remembered_within_a_bound(server, app):
    # a hostile client joining and leaving new names must not grow the session
    from flask_sio09.server import MAX_NAMESPACES_PER_SESSION

    session, _ = open_session(server)
    for i in range(3 * MAX_NAMESPACES_PER_SESSION):
        server.receive(session, f"1::/n{i}")
        server.receive(session, f"0::/n{i}")
    assert len(session.left_by_client) == MAX_NAMESPACES_PER_SESSION
    assert f"/n{3 * MAX_NAMESPACES_PER_SESSION - 1}" in session.left_by_client
    assert list(session.namespaces) == [""]


def test_a_namespace_the_server_left_or_the_handler_refused_stays_left(server, app):
    session, _ = open_session(server)
    server.receive(session, "1::/chat")
    server.disconnect(session.sid, "/chat")  # the server's decision holds
    session.take_outbox()
    app.calls.clear()
    server.receive(session, '5:1+:/chat:{"name":"q","args":[]}')
    assert app.calls == [] and session.take_outbox() == []
    # left by the client, then refused on the way back: one attempt only
    server.receive(session, "1::/other")
    server.receive(session, "0::/other")
    app.refuse.add("/other")
    session.take_outbox()
    app.calls.clear()
    server.receive(session, '5:2+:/other:{"name":"q","args":[]}')
    server.receive(session, '5:3+:/other:{"name":"q","args":[]}')
    assert app.calls == [("connect", "/other", "")]
    assert session.take_outbox() == ["7::/other:2"]


def test_no_emit_from_another_thread_follows_the_servers_namespace_disconnect(
        server, fast_switching):
    """An emit racing ``disconnect(sid, "/a")`` either goes before the
    ``0::/a`` or not at all: socket.io-client keeps the namespace object, so
    a packet after it reached the page's listeners of a namespace it had
    left."""
    late = []
    for _ in range(60):
        session, _ = open_session(server)
        server.receive(session, "1::/a")
        session.take_outbox()
        with emitting(server, "/a"):
            server.disconnect(session.sid, "/a")
        sent = session.take_outbox()
        late.extend(sent[sent.index("0::/a") + 1:])
        server.disconnect(session.sid)
    assert late == []


@pytest.mark.parametrize("how", ["server", "client"])
def test_no_emit_from_another_thread_follows_the_sessions_0(server, fast_switching, how):
    """An emit racing the end of the session (the server's ``disconnect(sid)``,
    the client's ``0::``) goes before its ``0::`` or not at all: after it,
    socket.io-client would hand the page an event after its disconnect."""
    late = []
    for _ in range(200):
        session, _ = open_session(server)
        session.take_outbox()
        with emitting(server, ""):
            if how == "server":
                server.disconnect(session.sid)
            else:
                server.receive(session, "0::")
        sent = session.take_outbox()
        late.extend(sent[sent.index("0::") + 1:])
    assert late == []


@pytest.mark.parametrize("refused", [False, True])
def test_a_namespace_asked_again_while_it_connects_is_answered_again(server, app, refused):
    """``1::/ns`` twice, the second while the first's connect handler runs:
    Node answered each (one was once dropped unanswered here)."""
    session, _ = open_session(server)
    session.take_outbox()
    during_connect(server, app, lambda s: server.receive(s, "1::/ns"), once=True)
    if refused:
        app.refuse.add("/ns")
    server.receive(session, "1::/ns")
    assert session.take_outbox() == (["7::/ns:2", "7::/ns:2"] if refused
                                     else ["1::/ns", "1::/ns"])
    assert [c for c in app.calls if c[:2] == ("connect", "/ns")] == \
        [("connect", "/ns", "")] * (2 if refused else 1)


def test_a_rejoin_queued_behind_a_connect_handler_that_disconnects_joins_after_it(server, app):
    """``1::/ns`` twice, the first visit's connect handler calling
    ``disconnect()``: the second visit joins after the first's disconnect
    handler, in the namespace's rooms (the first's leave, queued behind the
    second's join, emptied them)."""
    session, _ = open_session(server)
    session.take_outbox()

    def ask_again_then_leave(s):
        server.receive(s, "1::/ns")  # (arrives while the handler runs)
        server.disconnect(s.sid, "/ns")

    during_connect(server, app, ask_again_then_leave, once=True)
    server.receive(session, "1::/ns")
    assert session.take_outbox() == ["1::/ns", "0::/ns", "1::/ns"]
    assert [c[:2] for c in app.calls if c[1] == "/ns"] == \
        [("connect", "/ns"), ("disconnect", "/ns"), ("connect", "/ns")]
    assert server.manager.recipients("/ns", session.sid) == [session.sid]


def test_an_ack_answered_after_the_servers_namespace_disconnect_is_dropped(server, app):
    session, _ = open_session(server)
    server.receive(session, "1::/ns")
    session.take_outbox()

    def event(s, namespace, name, args, ack, packet=False):
        server.disconnect(s.sid, namespace)
        ack("late")

    app.event = event
    server.receive(session, '5:7+:/ns:{"name":"storm","args":[]}')
    assert session.take_outbox() == ["0::/ns"]


def test_emits_racing_a_namespace_acceptance_go_after_its_echo_in_order(server, app,
                                                                       fast_switching):
    """The echo and the packets held while the connect handler ran are queued
    in the step that stops holding them: an emit from another thread came
    between them, before the echo or ahead of older packets of its sender."""
    bad = []
    for _ in range(300):
        session, _ = open_session(server)
        session.take_outbox()
        with emitting(server, "/ns"):
            server.receive(session, "1::/ns")
        sent = [p for p in session.take_outbox() if p.startswith(("1::/ns", "5::/ns"))]
        if sent and sent[0] != "1::/ns":
            bad.append(("before the echo", sent[0]))
        last = {}
        for p in sent[1:]:
            tid, seq = packet.decode(p)["args"]
            if seq <= last.get(tid, -1):
                bad.append(("out of order", tid, seq))
            last[tid] = seq
        server.disconnect(session.sid)
    assert bad == []


@pytest.mark.parametrize("synchronous", [True, False], ids=["inline", "pool"])
def test_joins_and_a_kick_racing_leave_the_client_and_server_agreeing(app, clock, synchronous,
                                                                      fast_switching):
    """A client joined to /ns sends 1::/ns again and again while another
    thread kicks it once, then asks once more: the server ran connect and
    disconnect in turn, each 0::/ns was followed by a connect before the next
    echo, and the client ends joined and in its rooms, with nothing left
    behind to kick its next visit."""
    srv = Server(Options(heartbeat_interval=5, heartbeat_timeout=12, close_timeout=20), app,
                 clock=clock, monitor=False, synchronous=synchronous)
    bad = []
    try:
        for _ in range(150):
            app.calls.clear()
            session, _ = open_session(srv)
            srv.receive(session, "1::/ns")
            settled(session)
            asking = threading.Thread(target=lambda: [srv.receive(session, "1::/ns")
                                                      for _ in range(5)])
            kicking = threading.Thread(target=lambda: srv.disconnect(session.sid, "/ns"))
            asking.start()
            kicking.start()
            asking.join(10)
            kicking.join(10)
            srv.receive(session, "1::/ns")
            settled(session)
            wire = [p for p in session.take_outbox() if p in ("1::/ns", "0::/ns")]
            calls = [c[0] for c in app.calls if c[1] == "/ns"]
            kicks = wire.count("0::/ns")
            if calls != ["connect", "disconnect"] * kicks + ["connect"] \
                    or wire[-1] != "1::/ns" \
                    or not session.is_connected("/ns") \
                    or srv.manager.recipients("/ns", session.sid) != [session.sid] \
                    or srv._leave_after_connect:
                bad.append((wire, calls, session.is_connected("/ns"),
                            set(srv._leave_after_connect)))
            srv.disconnect(session.sid)
            settled(session)  # (its disconnect handlers, before the next round's)
    finally:
        srv.shutdown()
    assert bad == []


def settled(session):
    """Wait until the session's job queue has run dry (the pool's threads)."""
    wait_until(lambda: not session.jobs and not session.jobs_running, timeout=30,
               message="the session's jobs to run")


@pytest.fixture
def fast_switching():
    """Threads switch every microsecond, to widen the races a test looks for."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@contextlib.contextmanager
def emitting(server, namespace, threads=3):
    """Threads that emit ``b(thread number, sequence)`` on ``namespace``
    until the block ends."""
    stop = threading.Event()

    def emit(tid):
        seq = 0
        while not stop.is_set():
            server.emit_packet({"type": "event", "name": "b", "args": [tid, seq]}, namespace)
            seq += 1

    emitters = [threading.Thread(target=emit, args=(tid,)) for tid in range(threads)]
    for thread in emitters:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in emitters:
            thread.join(10)


@pytest.mark.patches_internals
def test_the_clients_leave_never_ends_a_visit_that_began_since(server, app):
    """The client's 0::/ns is handled while another thread kicks it from /ns
    and its next 1::/ns begins a new visit: that visit, still connecting, is
    not the one the client left (it lost its disconnect handler's pairing,
    and its 1::/ns went unanswered)."""
    session, _ = open_session(server)
    server.receive(session, "1::/ns")
    session.take_outbox()
    real = session.is_connected
    raced = []

    def is_connected(endpoint):
        answer = real(endpoint)
        if endpoint == "/ns" and not raced:  # _client_left's look; meanwhile:
            raced.append(endpoint)
            server.disconnect(session.sid, "/ns")  # a kick from another thread
            assert session.begin_namespace("/ns")  # and the client's next visit
        return answer

    session.is_connected = is_connected
    server.receive(session, "0::/ns")
    assert raced == ["/ns"]
    assert session.namespace_state("/ns") == "connecting"
    assert [c[0] for c in app.calls if c[1] == "/ns"] == ["connect", "disconnect"]


def test_each_1_ns_after_a_leave_and_rejoin_in_one_read_is_answered(app, clock):
    """0::/ns and 1::/ns in one read, and another 1::/ns while the leave's
    disconnect handler runs on the pool: both are answered, as Node answered
    each (the rejoin queued behind the leave found the new visit connecting,
    and answered nothing)."""
    srv = Server(Options(heartbeat_interval=5, heartbeat_timeout=12, close_timeout=20), app,
                 clock=clock, monitor=False, synchronous=False)
    try:
        session, _ = open_session(srv)
        srv.receive(session, "1::/ns")
        settled(session)
        session.take_outbox()
        original, gate = app.disconnect, threading.Event()

        def disconnect(s, namespace):
            original(s, namespace)
            if namespace == "/ns":
                gate.wait(10)

        app.disconnect = disconnect
        srv.receive(session, packet.frame(["0::/ns", "1::/ns"]))
        wait_until(lambda: ("disconnect", "/ns") in app.calls, timeout=10,
                   message="the leave's disconnect handler to run")
        srv.receive(session, "1::/ns")  # (while that handler runs)
        gate.set()
        settled(session)
        assert session.take_outbox() == ["1::/ns", "1::/ns"]
        assert [c[0] for c in app.calls if c[1] == "/ns"] == ["connect", "disconnect", "connect"]
    finally:
        srv.shutdown()


def test_a_namespace_whose_session_ended_before_its_handler_ran_runs_no_handler(app, clock):
    """The copy of a session that another process turned out to hold is
    closed while its connect job waits: that handler never runs (it ran, and
    the app saw the client connect in two processes)."""
    srv = Server(Options(), app, clock=clock, monitor=False, synchronous=False)
    try:
        session, _ = open_session(srv)
        settled(session)
        gate = threading.Event()
        srv.workers.submit(session, lambda: gate.wait(10))  # the queue waits behind this
        srv.receive(session, "1::/ns")
        srv.close_session(session, "claimed by another process before")
        gate.set()
        settled(session)
        assert not [c for c in app.calls if c[1] == "/ns"]
    finally:
        srv.shutdown()


def test_an_ack_two_threads_answer_at_once_goes_out_once(server, app, monkeypatch, caplog):
    """A handler's ack handed to a thread, answered there while the bridge
    answers it for the handler that raised: one answer per id. The claim
    must come before anything that can yield the GIL (here: the first
    caller stalls in the debug check, as a thread switch could stall it)."""
    from flask_sio09 import server as server_module
    from flask_sio09.server import Ack

    session, _ = open_session(server)
    session.take_outbox()
    stalled, go = threading.Event(), threading.Event()
    real_enabled = server_module._debug_enabled

    def stall_first(level):
        if not stalled.is_set():
            stalled.set()
            assert go.wait(30)
        return real_enabled(level)

    monkeypatch.setattr(server_module, "_debug_enabled", stall_first)
    ack = Ack(server, session, "", 7)
    first = threading.Thread(target=ack, args=("thread",))
    first.start()
    assert stalled.wait(30)
    ack("bridge")
    go.set()
    first.join(30)
    assert session.take_outbox() == ['6:::7+["thread"]']
    assert "answered twice" in caplog.text


def test_an_ack_kept_by_the_handler_answers_later_without_holding_the_event_args(server, app):
    kept = []
    app.event = lambda session, namespace, name, args, ack, packet=False: kept.append((args, ack))
    session, _ = open_session(server)
    session.take_outbox()
    server.receive(session, '5:7+::{"name":"big","args":["' + "x" * 1000 + '"]}')
    (args, ack), = kept
    assert args == ["x" * 1000]  # the handler got them
    assert ack.args is None  # the ack it keeps does not hold them any longer
    assert ack.id == 7 and session.take_outbox() == []
    ack("later")
    assert session.take_outbox() == ['6:::7+["later"]']


def test_an_event_job_that_runs_after_its_session_closed_runs_no_handler(server, app):
    # (its namespaces are still listed until the disconnect handlers have run)
    from flask_sio09.server import _EventJob

    session, _ = open_session(server)
    job = _EventJob(server, session, "", "late", [], 3)
    session.close("client disconnect")
    assert session.is_connected("")
    job.run()
    assert ("event", "", "late", []) not in app.calls


def test_every_answer_of_an_ack_is_claimed_under_the_lock(server, app, monkeypatch):
    # two threads may answer one ack at once (the handler's thread, and the
    # bridge for a handler that raised): the claim must be atomic
    from flask_sio09 import server as server_module

    taken = []

    class CountingLock:
        def __init__(self):
            self.lock = threading.Lock()

        def acquire(self, *args):
            taken.append(1)
            return self.lock.acquire(*args)

        def release(self):
            self.lock.release()

    monkeypatch.setattr(server_module, "_claim", CountingLock())
    app.answers["q"] = ("a",)
    session, _ = open_session(server)
    session.take_outbox()
    server.receive(session, '5:4+::{"name":"q"}')
    server.receive(session, '5:5+::{"name":"q"}')
    assert session.take_outbox() == ['6:::4+["a"]', '6:::5+["a"]']
    assert len(taken) == 2


def test_a_closing_session_runs_its_disconnect_handlers_in_join_order(server, app):
    # (the same order in every process: not a set's, which the hash seed decides)
    session, _ = open_session(server)
    joined = ["/q", "/b", "/zz", "/a", "/m", "/c0", "/x", "/e", "/k9", "/d"]
    for endpoint in joined:
        server.receive(session, f"1::{endpoint}")
    server.close_session(session, "client disconnect")
    left = [call[1] for call in app.calls if call[0] == "disconnect"]
    assert left == joined + [""]  # the global namespace last
