"""RedisManager across processes: two managers on one real redis-server stand
for two processes (each has its own host id and listener thread).

What one process alone does is the contract of ``test_manager.py``.
"""

import itertools
import json
import logging
import os
import signal
import socket
import threading
import time

import pytest
import redis

from flask_sio09 import redis_manager
from flask_sio09.redis_manager import RedisManager
from tests.conftest import wait_until

pytestmark = pytest.mark.redis

_channels = itertools.count()


class Process:
    """One manager, what it delivered, and what reached its server."""

    def __init__(self, url, channel, sids=(), namespace="/chat"):
        self.delivered = []
        self.forwarded = []
        self.manager = RedisManager(
            lambda sid, ns, encoded: self.delivered.append((sid, ns, encoded)),
            url, self.forwarded.append, channel=channel)
        for sid in sids:
            self.manager.connect(sid, namespace)
        self.manager.start()

    def got(self, sid):
        return [encoded for to, _, encoded in self.delivered if to == sid]


@pytest.fixture
def pair(redis_server, caplog):
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    channel = f"pair-{next(_channels)}"
    one = Process(redis_server.url, channel, ["a1", "a2"])
    two = Process(redis_server.url, channel, ["b1"])
    yield one, two
    one.manager.stop()
    two.manager.stop()


def test_an_emit_to_a_room_reaches_its_members_in_every_process(pair):
    one, two = pair
    one.manager.enter_room("a1", "/chat", "lobby")
    two.manager.enter_room("b1", "/chat", "lobby")
    count = one.manager.emit_encoded("5::/chat:{\"name\":\"hi\"}", "/chat", "lobby")
    assert count == 1  # this process's share
    assert one.got("a1") == ['5::/chat:{"name":"hi"}']  # at once, not through Redis
    wait_until(lambda: two.got("b1"), timeout=10, message="the other process's member")
    assert two.got("b1") == ['5::/chat:{"name":"hi"}']
    assert one.got("a2") == []


def test_a_broadcast_skips_the_sid_everywhere_and_never_comes_back(pair):
    one, two = pair
    one.manager.emit_encoded("first", "/chat", skip_sid="b1")
    two.manager.emit_encoded("second", "/chat", skip_sid=["a2"])
    # messages reach each listener in the order Redis got them: once "second"
    # arrived, "first"'s echo has been seen (and skipped) by its own process
    wait_until(lambda: "second" in one.got("a1"), timeout=10, message="the second emit")
    assert one.got("a1") == ["first", "second"]
    assert one.got("a2") == ["first"]
    wait_until(lambda: two.got("b1"), timeout=10)
    assert two.got("b1") == ["second"]


def test_an_emit_to_a_client_of_this_process_is_not_published(pair, redis_server):
    one, two = pair
    spy = redis.Redis.from_url(redis_server.url).pubsub()
    spy.subscribe(one.manager.channel)

    def confirmed():
        message = spy.get_message(timeout=0.5)
        return message is not None and message["type"] == "subscribe"

    wait_until(confirmed, timeout=10, message="the spy's subscription")
    one.manager.emit_encoded("private", "/chat", "a1")
    one.manager.emit_encoded("elsewhere", "/chat", "b1")  # not here: published
    seen = []
    wait_until(lambda: seen.append(spy.get_message(timeout=0.5)) or
               any(m and json.loads(m["data"])["p"] == "elsewhere" for m in seen), timeout=10)
    payloads = [json.loads(m["data"])["p"] for m in seen if m]
    assert payloads == ["elsewhere"]
    wait_until(lambda: two.got("b1"), timeout=10)
    assert two.got("b1") == ["elsewhere"] and one.got("a1") == ["private"]
    spy.close()


def test_rooms_of_another_process_client_are_changed_by_that_process(pair):
    one, two = pair
    one.manager.enter_room("b1", "/chat", "den")  # b1 is the other process's client
    assert "den" not in one.manager.get_rooms("b1", "/chat")
    wait_until(lambda: "den" in two.manager.get_rooms("b1", "/chat"), timeout=10)
    one.manager.leave_room("b1", "/chat", "den")
    wait_until(lambda: "den" not in two.manager.get_rooms("b1", "/chat"), timeout=10)
    two.manager.enter_room("b1", "/chat", "den")
    one.manager.enter_room("a1", "/chat", "den")
    one.manager.close_room("den", "/chat")
    assert one.manager.recipients("/chat", "den") == []
    wait_until(lambda: two.manager.recipients("/chat", "den") == [], timeout=10)


def test_a_room_change_for_a_sid_nobody_holds_changes_nothing(pair):
    one, two = pair
    one.manager.enter_room("ghost", "/chat", "den")
    one.manager.emit_encoded("marker", "/chat")  # after the enter, in Redis's order
    wait_until(lambda: two.got("b1"), timeout=10)
    assert two.manager.recipients("/chat", "den") == []
    assert one.manager.recipients("/chat", "den") == []


def test_other_messages_go_to_the_server(pair):
    one, two = pair
    assert one.manager.publish({"op": "disconnect", "sid": "b1", "ns": "/chat"})
    wait_until(lambda: two.forwarded, timeout=10)
    assert two.forwarded[0]["op"] == "disconnect" and two.forwarded[0]["sid"] == "b1"
    assert two.forwarded[0]["host"] == one.manager.host_id
    assert one.forwarded == []  # never its own


@pytest.mark.parametrize("garbage", [
    b"not json", b"[1, 2]", b'{"op": "emit"}', b'{"op": "emit", "ns": 5, "p": "x"}',
    b'{"op": "emit", "ns": "/chat", "p": 7}', b'{"op": "emit", "ns": "/chat", "p": "x", "to": [1]}',
    b'{"op": "enter", "ns": "/chat", "sid": ["b1"], "room": "x"}', b"\xff\xfe",
])
def test_a_malformed_message_is_logged_and_the_listener_goes_on(pair, redis_server,
                                                                 garbage, caplog):
    one, two = pair
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    raw = redis.Redis.from_url(redis_server.url)
    raw.publish(two.manager.channel, garbage)
    one.manager.emit_encoded("after", "/chat")
    wait_until(lambda: two.got("b1"), timeout=10)
    assert two.got("b1") == ["after"]
    assert "message queue: message dropped" in caplog.text
    raw.close()


def test_a_flood_of_malformed_messages_is_logged_a_few_times_then_counted(pair, redis_server,
                                                                          caplog):
    """What clients send can end up in one message per event: the other
    processes must not write a WARNING for each one they drop."""
    one, two = pair
    raw = redis.Redis.from_url(redis_server.url)
    for number in range(200):
        raw.publish(two.manager.channel, json.dumps({"op": "emit", "to": [number], "p": "x"}))
    one.manager.emit_encoded("after", "/chat")
    wait_until(lambda: two.got("b1"), timeout=30)
    dropped = [r for r in caplog.records if "message dropped" in r.getMessage()]
    assert 1 <= len(dropped) <= 10
    raw.close()


def test_rooms_that_are_not_strings_are_refused_before_anything_is_published(pair, caplog):
    """A number in a room list reached this process's clients and was
    dropped by every other process: the emit raises instead, everywhere."""
    one, two = pair
    one.manager.enter_room("a1", "/chat", "7")
    two.manager.enter_room("b1", "/chat", "7")
    for to, skip in (([7], None), (7, None), (["7", None], None), ("7", [1])):
        with pytest.raises(TypeError, match="to=|skip_sid="):
            one.manager.emit_encoded("bad", "/chat", to, skip)
    for act in (lambda: one.manager.close_room(None, "/chat"),
                lambda: one.manager.enter_room("b1", "/chat", 7),
                lambda: one.manager.leave_room("b1", "/chat", None)):
        with pytest.raises(TypeError, match="a room is a string"):
            act()
    one.manager.emit_encoded("good", "/chat", ["7"])
    wait_until(lambda: two.got("b1"), timeout=30)
    assert one.got("a1") == ["good"] and two.got("b1") == ["good"]
    # nothing of the refused calls was published: the other process dropped nothing
    assert "message dropped" not in caplog.text
    assert sorted(two.manager.get_rooms("b1", "/chat")) == ["7", "b1"]


def test_a_write_only_manager_publishes_and_never_listens(redis_server, pair):
    one, two = pair
    emitter = RedisManager(None, redis_server.url, write_only=True, channel=one.manager.channel)
    emitter.start()
    assert emitter._listener is None
    emitter.emit_encoded("from a script", "/chat", "b1")
    wait_until(lambda: two.got("b1"), timeout=10)
    assert two.got("b1") == ["from a script"] and one.got("a1") == []


def test_a_forked_process_gets_a_new_identity(redis_server):
    manager = RedisManager(None, redis_server.url, write_only=True)
    before = manager.host_id
    manager.reset_after_fork()
    assert manager.host_id != before


def test_remote_callbacks_are_kept_by_id_and_bounded(redis_server, monkeypatch, caplog):
    monkeypatch.setattr(redis_manager, "MAX_REMOTE_CALLBACKS", 2)
    caplog.set_level(logging.INFO, logger="flask_sio09")
    manager = RedisManager(None, redis_server.url, write_only=True)
    first = manager.remember_callback("/chat", print)
    second = manager.remember_callback("", len)
    assert manager.pop_callback(second) == ("", len)
    assert manager.pop_callback(second) is None  # once
    manager.remember_callback("", repr)
    manager.remember_callback("", str)  # a third waiting one: the oldest goes
    assert manager.pop_callback(first) is None
    assert "forgotten" in caplog.text


def test_without_redis_a_publish_is_logged_and_lost(fresh_redis, caplog):
    server = fresh_redis()
    delivered = []
    manager = RedisManager(lambda *d: delivered.append(d), server.url, channel="down")
    manager.connect("a1", "")
    server.stop()
    caplog.set_level(logging.ERROR, logger="flask_sio09")
    assert manager.publish({"op": "close_room", "ns": "", "room": "x"}) is False
    assert manager.emit_encoded("still local", "") == 1  # the local part happens
    assert delivered == [("a1", "", "still local")]
    assert "cannot publish" in caplog.text


def test_the_listener_subscribes_again_after_redis_restarts(fresh_redis, caplog):
    server = fresh_redis()
    channel = f"restart-{next(_channels)}"
    one = Process(server.url, channel, ["a1"])
    two = Process(server.url, channel, ["b1"])
    try:
        server.stop()
        caplog.set_level(logging.WARNING, logger="flask_sio09")
        wait_until(lambda: "message queue: cannot listen" in caplog.text, timeout=20)
        server.start()  # the same port
        # until both listeners are back, an emit may be lost: repeat until one lands
        wait_until(lambda: one.manager.emit_encoded("again", "/chat") is not None
                   and two.got("b1"), timeout=60, interval=0.5,
                   message="an emit after the restart")
        assert "subscribed to" in caplog.text
    finally:
        one.manager.stop()
        two.manager.stop()


def _stall_pair(fresh_redis, monkeypatch):
    """A redis-server of the test's own (to stop and go on), two processes
    on it, and ``emit(text)``: one's publish to ``b1`` of the other; Redis
    operations time out after 1 s."""
    monkeypatch.setattr(redis_manager, "SOCKET_TIMEOUT", 1.0)
    server = fresh_redis()
    channel = f"stall-{next(_channels)}"
    one = Process(server.url, channel)
    two = Process(server.url, channel, ["b1"])

    def emit(text):
        return one.manager.publish({"op": "emit", "ns": "/chat", "to": "b1", "skip": None,
                                    "p": text})
    return server, one, two, emit


def test_a_publish_that_times_out_is_not_sent_again(fresh_redis, caplog, monkeypatch):
    """Redis stalls (SIGSTOP) past the timeout, then resumes: the publish
    fails after one timeout, and what Redis had received reaches the other
    process once, not twice (delivery is at most once). The publishes after
    it do not wait for Redis: they go, in order, through the manager's own
    thread (probe X: each had held its handler for the whole timeout, so a
    session that emits served its own process's clients 20 s late in a 25 s
    stall). The failures are reported once Redis is reachable again."""
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server, one, two, emit = _stall_pair(fresh_redis, monkeypatch)
    try:
        assert emit("before")
        wait_until(lambda: two.got("b1") == ["before"], timeout=20, message="the first emit")
        sent = []
        publish = one.manager._client.publish
        monkeypatch.setattr(one.manager._client, "publish", lambda *args: sent.append(
            (json.loads(args[1])["p"], threading.current_thread().name)) or publish(*args))
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert not emit("stalled")  # the timeout: maybe sent, never again
            queued = [f"queued {n}" for n in range(5)]
            for text in queued:
                assert emit(text)  # behind the stall, not lost
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert sent[0] == ("stalled", threading.current_thread().name)
        assert emit("after")
        wait_until(lambda: "after" in two.got("b1"), timeout=30, message="the emit after")
        # one attempt each, in order; the queued ones from the manager's thread
        assert [text for text, _ in sent] == ["stalled", *queued, "after"]
        assert {thread for text, thread in sent[1:]} == {"sio09-message-queue-later"}
        got = two.got("b1")
        assert got.count("stalled") <= 1 and got.count("after") == 1, got
        arrived = [text for text in got if text.startswith("queued")]
        assert len(set(arrived)) == len(arrived) and arrived == sorted(arrived), got
        assert "cannot publish" in caplog.text
        assert "reachable again" in caplog.text
        # nothing waits any more: the next publish is sent on the caller's thread
        wait_until(lambda: not one.manager._stalled, timeout=20)
        assert emit("direct") and sent[-1] == ("direct", threading.current_thread().name)
    finally:
        one.manager.stop()
        two.manager.stop()


def test_a_publish_never_overtakes_those_still_queued_behind_a_stall(fresh_redis, caplog,
                                                                     monkeypatch):
    """Publishing directly again once the first queued message got through
    would let a new emit reach the other processes before the ones still
    queued: a client's events arrive out of order. Direct publishing resumes
    only when nothing is left queued. The manager's thread is held while it
    sends the second queued message, and the test emits then."""
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server, one, two, emit = _stall_pair(fresh_redis, monkeypatch)
    gate, sending_second, emitted = threading.Event(), threading.Event(), threading.Event()
    publish = one.manager._client.publish

    def held_publish(*args):
        if json.loads(args[1])["p"] == "queued 1":
            sending_second.set()
            emitted.wait(30)
        return publish(*args)

    monkeypatch.setattr(one.manager._client, "publish", held_publish)
    try:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert not emit("stalled")  # the timeout: the manager is stalled
            one.manager.later(lambda: gate.wait(30))  # (what is queued now stays queued)
            for n in range(3):
                assert emit(f"queued {n}")
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
            gate.set()
        # "queued 0" went (the thread runs one job at a time), "queued 1" is on its way
        assert sending_second.wait(30), "the second queued message was never sent"
        assert emit("after")
        emitted.set()
        wait_until(lambda: "after" in two.got("b1") and "queued 2" in two.got("b1"),
                   timeout=30, message=lambda: f"every message; got {two.got('b1')}")
        assert [text for text in two.got("b1") if text != "stalled"] == \
            ["queued 0", "queued 1", "queued 2", "after"]
    finally:
        gate.set()
        emitted.set()
        one.manager.stop()
        two.manager.stop()


def test_publishes_behind_a_stall_are_bounded_in_bytes_and_age(fresh_redis, caplog,
                                                                monkeypatch):
    """While Redis stalls, what waits for it is bounded: past the byte limit a
    publish is refused at once, and one that waited too long is dropped
    (logged), not delivered minutes late."""
    monkeypatch.setattr(redis_manager, "STALLED_QUEUE_BYTES", 1000)
    monkeypatch.setattr(redis_manager, "STALLED_QUEUE_SECONDS", 0.0)
    monkeypatch.setattr(redis_manager, "ERROR_LOG_INTERVAL", 0.0)
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server, one, two, emit = _stall_pair(fresh_redis, monkeypatch)
    gate = threading.Event()
    try:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert not emit("stalled")
            one.manager.later(lambda: gate.wait(30))  # (what is queued now stays queued)
            assert emit("x" * 400)  # (to be dropped for its age)
            monkeypatch.setattr(redis_manager, "STALLED_QUEUE_SECONDS", 30.0)
            assert not emit("y" * 800)  # past the byte limit
            assert "bytes wait for it already" in caplog.text
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
            gate.set()
        wait_until(lambda: "waited over 0 s for a stalled Redis" in caplog.text, timeout=20)
        wait_until(lambda: emit("after") and "after" in two.got("b1"), timeout=30,
                   interval=0.5, message="an emit after")
        assert not [text for text in two.got("b1") if text[0] in "xy"]
        # once the stall is over, the drops are told in one line
        wait_until(lambda: "2 messages that waited for a stalled Redis" in caplog.text,
                   timeout=20)
    finally:
        gate.set()
        one.manager.stop()
        two.manager.stop()


def test_an_emitter_and_an_exiting_process_queue_nothing_behind_a_stall(fresh_redis, caplog,
                                                                        monkeypatch):
    """A write-only emitter (a script) waits for each publish even while
    Redis stalls: it would exit with what it had queued unsent and unlogged.
    A server process that exits drops what waits behind the stall (logged)
    instead of spending a timeout on each."""
    monkeypatch.setattr(redis_manager, "SOCKET_TIMEOUT", 1.0)
    monkeypatch.setattr(redis_manager, "ERROR_LOG_INTERVAL", 0.0)
    caplog.set_level(logging.ERROR, logger="flask_sio09")
    server = fresh_redis()
    channel = f"stall-exit-{next(_channels)}"
    emitter = RedisManager(None, server.url, write_only=True, channel=channel)
    one = Process(server.url, channel)
    attempts = []
    for manager, name in ((emitter, "emitter"), (one.manager, "server")):
        publish = manager._client.publish
        monkeypatch.setattr(manager._client, "publish", lambda *args, publish=publish, name=name:
                            attempts.append((name, json.loads(args[1])["p"])) or publish(*args))

    def emit(manager, text):
        return manager.publish({"op": "emit", "ns": "/chat", "to": "b1", "skip": None,
                                "p": text})
    gate = threading.Event()
    try:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert not emit(emitter, "e1") and not emit(emitter, "e2")  # each waited
            assert attempts == [("emitter", "e1"), ("emitter", "e2")]
            assert not emit(one.manager, "s1")
            one.manager.later(lambda: gate.wait(30))  # (what is queued now stays queued)
            assert emit(one.manager, "s2") and emit(one.manager, "s3")
            threading.Timer(0.2, gate.set).start()
            one.manager.run_later_now()  # the process exits
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
            gate.set()
        assert [text for name, text in attempts if name == "server"] == ["s1"]
        assert caplog.text.count("the process exits, and Redis is stalled") == 2
    finally:
        gate.set()
        one.manager.stop()


def test_what_cannot_wait_for_the_listeners_any_longer_is_dropped_not_sent_to_nobody(
        fresh_redis, caplog, monkeypatch):
    """A message queued while no listener is subscribed, whose age limit
    comes before they are back, is dropped and logged: published then, it
    would reach no process and look sent (probe AF)."""
    monkeypatch.setattr(redis_manager, "HEALTH_INTERVAL", 0.5)  # (over a third of 1 s)
    monkeypatch.setattr(redis_manager, "ERROR_LOG_INTERVAL", 0.0)
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server, one, two, emit = _stall_pair(fresh_redis, monkeypatch)
    attempts = []
    publish = one.manager._client.publish
    monkeypatch.setattr(one.manager._client, "publish", lambda *args: attempts.append(
        json.loads(args[1])["p"]) or publish(*args))
    try:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert not emit("stalled")
            wait_until(lambda: not one.manager._listening.is_set(), timeout=30,
                       message="the listener giving its connection up")
            monkeypatch.setattr(redis_manager, "STALLED_QUEUE_SECONDS", 1.0)
            assert emit("expires")
            wait_until(lambda: "waited over 1 s for a stalled Redis" in caplog.text, timeout=20)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        monkeypatch.setattr(redis_manager, "STALLED_QUEUE_SECONDS", 30.0)
        wait_until(lambda: emit("after") and "after" in two.got("b1"), timeout=30,
                   interval=0.5, message="an emit after")
        assert "expires" not in attempts and "expires" not in two.got("b1")
    finally:
        one.manager.stop()
        two.manager.stop()


def test_records_of_sessions_that_ended_while_redis_stalled_are_deleted_after(
        fresh_redis, caplog, monkeypatch):
    """A session that ends while Redis cannot be reached keeps no record once
    Redis answers again (probe X: they stayed for their 24 h expiry)."""
    monkeypatch.setattr(redis_manager, "SOCKET_TIMEOUT", 1.0)
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server = fresh_redis()
    channel = f"stall-forget-{next(_channels)}"
    one = Process(server.url, channel)
    client = redis.Redis(port=server.port)
    sids = ["f" * 20, "g" * 20]
    for sid in sids:
        assert one.manager.record_handshake(sid, 30)
        assert one.manager.claim(sid, own=True) is True
    assert len(client.keys("*:session:*")) == 2
    try:
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            for sid in sids:
                one.manager.forget_later([sid])
            wait_until(lambda: "cannot forget the sessions that ended" in caplog.text,
                       timeout=20)  # (the manager's thread timed out)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        # the next operation that reaches Redis has them deleted
        wait_until(lambda: one.manager.publish({"op": "close_room", "ns": "", "room": "r"})
                   and client.keys("*:session:*") == [], timeout=30, interval=0.5,
                   message="the records deleted")
        assert client.keys("*" + sids[0] + "*") == []
        wait_until(lambda: one.manager._to_forget == {}, timeout=10)
    finally:
        one.manager.stop()


def test_what_waited_behind_a_long_stall_waits_for_the_listeners_to_return(
        fresh_redis, caplog, monkeypatch):
    """A stall long enough for the listeners to give their connections up
    (silent for 3 x HEALTH_INTERVAL): what is queued meanwhile is published
    once this process's listener is back and the others have had the time to
    be, so it reaches them (probe AC: drained at once, before any listener had
    subscribed again, it was lost in every other process without a word)."""
    monkeypatch.setattr(redis_manager, "HEALTH_INTERVAL", 0.5)  # (over a third of 1 s)
    monkeypatch.setattr(redis_manager, "MAX_BACKOFF", 1.0)
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server, one, two, emit = _stall_pair(fresh_redis, monkeypatch)
    try:
        assert emit("before")
        wait_until(lambda: two.got("b1") == ["before"], timeout=20, message="the first emit")
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            assert not emit("stalled")
            wait_until(lambda: not one.manager._listening.is_set()
                       and not two.manager._listening.is_set(), timeout=30,
                       message="both listeners giving their connections up")
            queued = [f"queued {n}" for n in range(3)]
            for text in queued:
                assert emit(text)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        wait_until(lambda: "queued 2" in two.got("b1"), timeout=30,
                   message=lambda: f"what was queued, got {two.got('b1')}")
        assert [text for text in two.got("b1") if text.startswith("queued")] == queued
        assert "cannot publish" in caplog.text  # ("stalled" only, which timed out)
    finally:
        one.manager.stop()
        two.manager.stop()


def test_without_the_redis_package_the_error_says_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_redis(name, *args, **kwargs):
        if name == "redis":
            raise ImportError("No module named 'redis'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_redis)
    with pytest.raises(RuntimeError, match=r"flask_sio09\[redis\]"):
        RedisManager(None, "redis://127.0.0.1:1/0")


def test_the_channel_is_named_after_the_database_or_the_url(redis_server):
    base = redis_server.url.rsplit("/", 1)[0]
    assert RedisManager(None, base + "/0", write_only=True).channel == "flask_sio09:0"
    assert RedisManager(None, base + "/3", write_only=True).channel == "flask_sio09:3"
    named = RedisManager(None, base + "/3?channel=chat", write_only=True)
    assert named.channel == "chat" and named.url == base + "/3"
    assert redis_manager.split_channel("unix:///run/r.sock?db=2&channel=x") == \
        ("unix:///run/r.sock?db=2", "x")


def test_of_two_channel_parameters_the_last_one_names_the_channel():
    """As for any repeated query parameter that a later one overrides (a URL
    built by appending ``&channel=...`` to a configured one): every process
    must pick the same one, the last."""
    assert redis_manager.split_channel("redis://h:6379/0?channel=first&db=1&channel=second") \
        == ("redis://h:6379/0?db=1", "second")


def test_apps_on_two_databases_do_not_hear_each_other(redis_server):
    base = redis_server.url.rsplit("/", 1)[0]
    zero = Process(base + "/0", None, ["a1"])
    one = Process(base + "/1", None, ["b1"])
    also_one = Process(base + "/1", None, ["c1"])
    try:
        zero.manager.emit_encoded("db0 only", "/chat")
        one.manager.emit_encoded("db1 only", "/chat")
        wait_until(lambda: also_one.got("c1"), timeout=10)
        assert also_one.got("c1") == ["db1 only"]  # "db0 only" was published first
        assert one.got("b1") == ["db1 only"] and zero.got("a1") == ["db0 only"]
    finally:
        for process in (zero, one, also_one):
            process.manager.stop()


def test_a_process_forgets_only_its_own_session_record(pair, redis_server):
    one, two = pair
    one.manager.record_handshake("s" * 20, 30)
    assert two.manager.claim("s" * 20) is True
    assert one.manager.claim("s" * 20) is False  # once
    assert one.manager.held_elsewhere("s" * 20) and not two.manager.held_elsewhere("s" * 20)
    one.manager.forget("s" * 20)  # not its record: left alone
    assert one.manager.held_elsewhere("s" * 20)
    two.manager.forget("s" * 20)
    assert not one.manager.held_elsewhere("s" * 20)
    assert one.manager.claim("never handshaken") is False


def test_a_message_too_large_for_redis_is_not_published(pair, monkeypatch, caplog):
    one, two = pair
    monkeypatch.setattr(redis_manager, "MAX_MESSAGE_BYTES", 1000)
    assert one.manager.publish({"op": "emit", "ns": "/chat", "p": "x" * 2000}) is False
    assert one.manager.emit_encoded("y" * 2000, "/chat") == 2  # delivered here all the same
    assert "too large to publish" in caplog.text
    one.manager.emit_encoded("small", "/chat")
    wait_until(lambda: two.got("b1"), timeout=10)
    assert two.got("b1") == ["small"]


def test_no_message_published_reaches_redis_pubsub_soft_limit(fresh_redis, caplog):
    """Redis cuts a subscriber off once it has been past the soft limit (8 MB
    unsent) for 60 s, counted from the first time, so a second message over
    8 MB a minute after the first cut every process off the channel, the
    message lost everywhere. Here the soft limit's 60 s are 1 s."""
    server = fresh_redis()
    admin = redis.Redis.from_url(server.url)
    admin.config_set("client-output-buffer-limit", "pubsub 33554432 8388608 1")
    caplog.set_level(logging.INFO, logger="flask_sio09")
    channel = f"soft-{next(_channels)}"
    one = Process(server.url, channel, ["a1"])
    two = Process(server.url, channel, ["b1"])
    try:
        largest = "x" * (redis_manager.MAX_MESSAGE_BYTES - 200)  # with its JSON
        for turn in (1, 2):
            assert one.manager.publish({"op": "emit", "ns": "/chat", "p": largest,
                                        "to": ["b1"]})
            wait_until(lambda: len(two.got("b1")) == turn, timeout=30)
            time.sleep(1.5)  # (Redis's 1 s must pass: it is what is tested)
        over = "x" * (8 * 1024 * 1024)
        assert one.manager.publish({"op": "emit", "ns": "/chat", "p": over}) is False
        assert "too large to publish" in caplog.text
        assert one.manager.publish({"op": "emit", "ns": "/chat", "p": "small", "to": ["b1"]})
        wait_until(lambda: len(two.got("b1")) == 3, timeout=30)
        assert two.got("b1")[2] == "small"
        assert "cannot listen" not in caplog.text
    finally:
        one.manager.stop()
        two.manager.stop()


def test_non_ascii_text_counts_its_utf8_bytes_against_the_size_limit(pair, monkeypatch):
    """Published as UTF-8, not with ``\\uXXXX`` escapes (6 bytes a character):
    a 3,000,000-character "é" emit (6 MB) fitted under the 16 MB limit only
    locally. A lone surrogate, which UTF-8 cannot hold, goes escaped."""
    one, two = pair
    monkeypatch.setattr(redis_manager, "MAX_MESSAGE_BYTES", 1000)
    text = "é中😀" * 100  # 900 bytes as UTF-8; 1,800 escaped
    assert one.manager.publish({"op": "emit", "ns": "/chat", "p": text, "to": ["b1"]})
    wait_until(lambda: two.got("b1"), timeout=10)
    assert two.got("b1") == [text]
    two.manager.enter_room("b1", "/chat", "room\ud800")  # (a client's bad UTF-16)
    one.manager.emit_encoded("to the odd room", "/chat", "room\ud800")
    wait_until(lambda: len(two.got("b1")) == 2, timeout=10)
    assert two.got("b1")[1] == "to the odd room"


def test_a_redis_that_refuses_writes_is_reported_once_and_its_recovery_once(fresh_redis,
                                                                           caplog):
    """A read-only replica (a failover) refuses writes, answers reads and
    takes PUBLISH: the refusal is an ERROR, and only a write it accepts again
    ends it (not a read or a publish that works meanwhile, which said
    "reachable again" every ten seconds while nothing had changed)."""
    from tests.conftest import free_port

    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server = fresh_redis()
    manager = RedisManager(lambda *a: None, server.url, lambda m: None,
                           channel=f"ro-{next(_channels)}")
    admin = redis.Redis.from_url(server.url)
    try:
        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
        manager.record_handshake("r" * 20, 30)  # refused: ERROR
        assert manager.claim("r" * 20) is not True  # (refused, or read: per Redis version)
        assert not manager.held_elsewhere("r" * 20)
        assert manager.publish({"op": "close_room", "ns": "/", "room": "x"})
        manager.record_handshake("s" * 20, 30)  # refused again: counted
        messages = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert [level for level, _ in messages] == ["ERROR"], messages
        assert "read only replica" in messages[0][1]
        admin.execute_command("REPLICAOF", "NO", "ONE")
        wait_until(lambda: admin.info("replication")["role"] == "master", timeout=10)
        manager.record_handshake("t" * 20, 30)
        manager.record_handshake("u" * 20, 30)
        messages = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert [level for level, _ in messages] == ["ERROR", "WARNING"], messages
        assert "accepts writes again (" in messages[1][1]
    finally:
        admin.execute_command("REPLICAOF", "NO", "ONE")
        manager.stop()


def test_a_message_nested_too_deep_costs_nothing_but_itself(pair, redis_server, caplog):
    one, two = pair
    raw = redis.Redis.from_url(redis_server.url)
    raw.publish(two.manager.channel, b"[" * 100_000 + b"]" * 100_000)
    one.manager.emit_encoded("after", "/chat")
    wait_until(lambda: two.got("b1"), timeout=10)
    assert "RecursionError" in caplog.text
    assert "subscribed to" not in caplog.text  # the subscription was kept
    raw.close()


def test_while_redis_is_away_errors_are_logged_once_per_interval(fresh_redis, caplog):
    server = fresh_redis()
    manager = RedisManager(None, server.url, write_only=True)
    server.stop()
    caplog.set_level(logging.ERROR, logger="flask_sio09")
    for _ in range(5):
        manager.publish({"op": "close_room", "ns": "", "room": "x"})
    assert caplog.text.count("cannot publish") == 1
    manager._last_error_log -= redis_manager.ERROR_LOG_INTERVAL  # as if time passed
    manager.publish({"op": "close_room", "ns": "", "room": "x"})
    assert "4 more failures since the last report" in caplog.text


class FreezingProxy:
    """A TCP relay to redis-server that can go silent on the connections it
    carries without closing them, as a firewall that forgot them would."""

    def __init__(self, port: int):
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.frozen: list[threading.Event] = []
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            frozen = threading.Event()
            self.frozen.append(frozen)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, frozen), daemon=True).start()

    @staticmethod
    def _pump(source, sink, frozen):
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:
                return
            if not frozen.is_set():  # frozen: swallowed, and the connection stays open
                try:
                    sink.sendall(data)
                except OSError:
                    return

    def freeze(self):
        for frozen in self.frozen:
            frozen.set()

    def close(self):
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_a_listener_whose_connection_went_silent_subscribes_again(redis_server, monkeypatch,
                                                                  caplog):
    monkeypatch.setattr(redis_manager, "HEALTH_INTERVAL", 0.5)
    proxy = FreezingProxy(int(redis_server.url.rsplit(":", 1)[1].split("/")[0]))
    channel = f"silent-{next(_channels)}"
    listening = Process(f"redis://127.0.0.1:{proxy.port}/0", channel, ["b1"])
    sender = Process(redis_server.url, channel, ["a1"])
    try:
        sender.manager.emit_encoded("before", "/chat")
        wait_until(lambda: listening.got("b1") == ["before"], timeout=10)
        proxy.freeze()  # the listener's connection now hears nothing, and never fails
        caplog.set_level(logging.WARNING, logger="flask_sio09")
        wait_until(lambda: "no answer to a ping" in caplog.text, timeout=20)
        # subscribed again over a new connection: emits arrive again
        wait_until(lambda: sender.manager.emit_encoded("after", "/chat") is not None
                   and "after" in listening.got("b1"), timeout=30, interval=0.5,
                   message="an emit after the silent drop")
    finally:
        listening.manager.stop()
        sender.manager.stop()
        proxy.close()


def test_a_disconnected_handshake_cannot_be_claimed_afterwards(pair):
    one, two = pair
    one.manager.record_handshake("h" * 20, 30)
    one.manager.forget("h" * 20)  # closed before any transport came
    assert two.manager.claim("h" * 20) is False


def test_forgetting_an_unused_handshake_leaves_no_key(pair, redis_server):
    """Its query goes with it, not 30 s later with its expiry (probe S); a
    handshake that another process claimed keeps its marker until it expires."""
    import redis

    one, two = pair
    client = redis.Redis(port=redis_server.port)
    one.manager.record_handshake("q" * 20, 30, "?token=abc")
    assert len(client.keys("*" + "q" * 20 + "*")) == 2  # the handshake and its query
    one.manager.forget("q" * 20)
    one.manager.record_handshake("r" * 20, 30, "?a=1")
    one.manager.record_handshake("t" * 20, 30, "")
    one.manager.forget_many(["r" * 20, "t" * 20])
    for sid in ("q" * 20, "r" * 20, "t" * 20):
        assert client.keys("*" + sid + "*") == []
    one.manager.record_handshake("u" * 20, 30, "?b=2")
    assert two.manager.claim("u" * 20) is True
    assert two.manager.handshake_query("u" * 20) == "?b=2"
    one.manager.forget("u" * 20)  # the other process holds it: its record stays
    assert two.manager.held_elsewhere("u" * 20) is False and one.manager.held_elsewhere("u" * 20)


def test_a_handshakes_records_expire_with_it(pair, redis_server):
    """A handshake no transport ever claims leaves nothing in Redis for
    good: its record and its query (which often holds a token) expire
    together, after the seconds it may be claimed in."""
    one, _ = pair
    client = redis.Redis(port=redis_server.port)
    sid = "e" * 20
    one.manager.record_handshake(sid, 30, "token=secret")
    handshake, query = one.manager._key("handshake", sid), one.manager._query_key(sid)
    assert client.get(query) == b"token=secret"
    for key in (handshake, query):
        assert 0 < client.ttl(key) <= 30, key


def test_a_claimed_sessions_record_expires_at_most_a_day_later(pair, redis_server):
    """A session's record is deleted when the session ends; the expiry bounds
    what a process that died (kill -9, OOM) leaves behind, whichever process
    claimed the session: the handshake's own or another."""
    one, two = pair
    client = redis.Redis(port=redis_server.port)
    own, other = "o" * 20, "p" * 20
    one.manager.record_handshake(own, 30)
    one.manager.record_handshake(other, 30)
    assert one.manager.claim(own, own=True) is True
    assert two.manager.claim(other) is True
    for sid in (own, other):
        ttl = client.ttl(one.manager._key("session", sid))
        assert 0 < ttl <= redis_manager.SESSION_RECORD_SECONDS, (sid, ttl)


def test_the_handshakes_process_cannot_claim_a_session_another_holds(pair, redis_server):
    """Once the handshake's marker is gone (it expires long before the
    session's record), the session record alone shows that another process
    holds the session: the handshake's own process must not take it too."""
    one, two = pair
    client = redis.Redis(port=redis_server.port)
    sid = "k" * 20
    one.manager.record_handshake(sid, 30)
    assert two.manager.claim(sid) is True
    client.delete(one.manager._key("handshake", sid))  # (as if it expired)
    assert one.manager.claim(sid, own=True) is False
    assert one.manager.held_elsewhere(sid)


def test_an_exiting_process_forgets_its_records_in_one_go(pair):
    one, two = pair
    for sid in ("x" * 20, "y" * 20):
        one.manager.record_handshake(sid, 30)
    assert two.manager.claim("x" * 20)
    one.manager.record_handshake("z" * 20, 30)
    assert one.manager.claim("z" * 20)
    one.manager.forget_many(["x" * 20, "y" * 20, "z" * 20])
    assert one.manager.held_elsewhere("x" * 20)  # the other process's: kept
    assert not two.manager.held_elsewhere("z" * 20)  # its own: gone
    assert two.manager.claim("y" * 20) is False  # its unused handshake: gone


def test_the_password_of_the_url_never_reaches_the_log(fresh_redis, caplog):
    from flask_sio09.redis_manager import without_password

    assert without_password("redis://app:s3cret@h:6379/0?channel=c") == \
        "redis://app:***@h:6379/0?channel=c"
    assert without_password("redis://:s3cret@h") == "redis://:***@h"
    assert without_password("unix:///run/redis.sock?db=1&password=s3cret") == \
        "unix:///run/redis.sock?db=1&password=***"
    assert without_password("redis://h:6379/0") == "redis://h:6379/0"
    server = fresh_redis()
    url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
    server.stop()  # (unreachable: every operation logs the URL)
    caplog.set_level(logging.INFO, logger="flask_sio09")
    manager = RedisManager(None, url, channel="pw", write_only=True)
    assert manager.publish({"op": "close_room", "ns": "", "room": "x"}) is False
    assert "redis://:***@127.0.0.1" in caplog.text and "s3cret" not in caplog.text
    from flask_sio09.options import OptionError, _message_queue

    with pytest.raises(OptionError) as refused:
        _message_queue("Redis://:s3cret@127.0.0.1:6379/0")  # (the scheme's case is wrong)
    assert "s3cret" not in str(refused.value) and ":***@" in str(refused.value)


def test_a_command_an_acl_denies_is_logged_once_per_interval_not_per_client(fresh_redis,
                                                                           caplog):
    """An ACL that denies the scripts (claims) but lets SET through: each
    handshake's SET used to count as Redis accepting writes again, and
    logged a WARNING per client between the failing claims."""
    server = fresh_redis()
    admin = redis.Redis.from_url(server.url)
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all",
                          "-evalsha", "-eval", "-script")
    caplog.set_level(logging.INFO, logger="flask_sio09")
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    manager = RedisManager(None, url, channel="acl", write_only=True)
    for n in range(20):
        assert manager.record_handshake(f"{n:020d}", 30)
        assert manager.claim(f"{n:020d}", own=True) is None  # denied: served here
    lines = [r.getMessage() for r in caplog.records if r.name == "flask_sio09"]
    assert len([line for line in lines if "cannot claim a session" in line]) == 1
    assert not [line for line in lines if "again" in line], lines


def test_a_handshake_is_recorded_with_its_query_or_not_at_all(fresh_redis, caplog):
    """The handshake's record and its query's are written together: with the
    first written and the second refused (an ACL's key pattern), this
    process took the session for its own while another could claim it, and
    both held it. The ERROR line does not quote the query (often a token)."""
    server = fresh_redis()
    admin = redis.Redis.from_url(server.url)
    # keys of exactly 20 characters after "handshake:": the sid, not its query's key
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*:handshake:" + "?" * 20,
                          "&*", "+@all")
    url = f"redis://app:pw@127.0.0.1:{server.port}/0"
    manager = RedisManager(None, url, channel="acl", write_only=True)
    caplog.set_level(logging.INFO, logger="flask_sio09")
    assert not manager.record_handshake("s" * 20, 30, "token=secret-value")
    assert list(admin.scan_iter(match="*")) == []
    assert "cannot record a handshake" in caplog.text and "secret-value" not in caplog.text
    # allowed, both are written, and the query is taken once
    admin.execute_command("ACL", "SETUSER", "app", "resetkeys", "~*")
    assert manager.record_handshake("t" * 20, 30, "token=ok")
    assert manager.handshake_query("t" * 20) == "token=ok"
    assert manager.handshake_query("t" * 20) is None


def test_at_exit_a_later_operation_running_on_its_thread_is_waited_for(redis_server):
    """``run_later_now`` (the process exits) waits for the operation the
    manager's thread took and runs, not only for those still queued: a
    session's records were left behind when the exit came in between."""
    import threading
    import time

    manager = RedisManager(None, redis_server.url, write_only=True)
    started, done = threading.Event(), []

    def slow() -> None:
        started.set()
        time.sleep(0.5)
        done.append("slow")

    manager.later(slow)
    assert started.wait(10)
    manager.later(lambda: done.append("queued"))
    manager.run_later_now()
    assert done.count("slow") == 1 and done.count("queued") == 1
