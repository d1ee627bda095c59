"""Two Flask apps on one real redis-server stand for two processes of one
application (``message_queue``): emits, rooms, disconnects and callbacks
reach the other app's clients; a write-only emitter reaches them all.
"""

import threading

import pytest
from flask import Flask, request

from flask_sio09 import SocketIO, disconnect, emit, join_room, leave_room
from tests.conftest import wait_until

pytestmark = pytest.mark.redis

DEADLINE = 20


def make_app(url: str, name: str) -> tuple[Flask, SocketIO, list]:
    app = Flask(name)
    sio = SocketIO(app, message_queue=url)
    answers: list = []

    @sio.on("join")
    def on_join(room, sid=None):
        join_room(room, sid=sid)

    @sio.on("leave")
    def on_leave(room, sid=None):
        leave_room(room, sid=sid)

    @sio.on("shout")
    def shout(room, text):
        emit("heard", text, to=room)

    @sio.on("kick")
    def kick(sid):
        disconnect(sid=sid)

    @sio.on("ask")
    def ask(sid):
        def answered(*args):
            answers.append((request.sid if request else None, list(args)))
        emit("question", "ready?", to=sid, callback=answered)

    @sio.on("ask_not_me")
    def ask_not_me(sid):
        def answered(*args):
            answers.append((None, list(args)))
        emit("question", "ready?", to=sid, include_self=False, callback=answered)

    return app, sio, answers


class Inbox:
    """Everything a test client got, kept (``get_received`` hands it out once)."""

    def __init__(self, client):
        self.client = client
        self.seen: list = []

    def names(self):
        self.seen += self.client.get_received()
        return [(r["name"], r["args"]) for r in self.seen]

    def wait_for(self, item):
        wait_until(lambda: item in self.names(), timeout=DEADLINE,
                   message=lambda: f"{item} among {self.names()}")


@pytest.fixture
def two_apps(fresh_redis):
    url = fresh_redis().url
    made = [make_app(url, "one"), make_app(url, "two")]
    yield made
    for app, _, _ in made:
        app.extensions["sio09"].server.shutdown()


def test_an_emit_to_a_room_reaches_the_members_of_both_processes(two_apps):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    a.emit("join", "lobby")
    b.emit("join", "lobby")
    b.emit("shout", "lobby", "hello")
    inbox_a, inbox_b = Inbox(a), Inbox(b)
    inbox_a.wait_for(("heard", ["hello"]))
    assert inbox_b.names() == [("heard", ["hello"])]  # once: its own process's copy


def test_sio_emit_from_outside_reaches_every_process(two_apps):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    sio2.emit("news", 1)
    sio2.emit("news", 2, to=a.sid)
    inbox_a, inbox_b = Inbox(a), Inbox(b)
    inbox_a.wait_for(("news", [2]))
    assert inbox_a.names() == [("news", [1]), ("news", [2])]
    assert inbox_b.names() == [("news", [1])]


def test_a_client_of_the_other_process_can_be_put_in_a_room_and_taken_out(two_apps):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    b.emit("join", "den", a.sid)
    manager1 = app1.extensions["sio09"].server.manager
    wait_until(lambda: "den" in manager1.get_rooms(a.sid, ""), timeout=DEADLINE)
    b.emit("leave", "den", a.sid)
    wait_until(lambda: "den" not in manager1.get_rooms(a.sid, ""), timeout=DEADLINE)


def test_close_room_empties_it_in_every_process(two_apps):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    a.emit("join", "den")
    sio2.close_room("den")
    manager1 = app1.extensions["sio09"].server.manager
    wait_until(lambda: manager1.recipients("", "den") == [], timeout=DEADLINE)
    assert b.is_connected()


def test_disconnect_of_another_process_client_ends_its_session(two_apps):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    b.emit("kick", a.sid)
    wait_until(lambda: not a.is_connected(), timeout=DEADLINE, message="a disconnected")
    assert b.is_connected()


def ask_across(two_apps, event):
    """Process two's client has its handler ``event`` ask process one's
    client a question with callback=; returns both clients, once the answer
    came back (the list of answers the asking app kept is ``two_apps[1][2]``)."""
    (app1, sio1, _), (app2, sio2, answers2) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    a.on("question", lambda text: ("yes", text))
    b.emit(event, a.sid)
    Inbox(a).wait_for(("question", ["ready?"]))
    wait_until(lambda: answers2, timeout=DEADLINE, message="the forwarded ack")
    return a, b


def test_a_callback_answered_by_another_process_client_runs_here(two_apps):
    ask_across(two_apps, "ask")
    # run in the asking app's context, with no request of the other's client
    assert two_apps[1][2] == [(None, ["yes", "ready?"])]


def test_a_callback_to_another_process_client_with_include_self_false(two_apps):
    """include_self=False skips the sender, not the sid asked: the question
    goes to the other process as without it (it raised ValueError)."""
    _, b = ask_across(two_apps, "ask_not_me")
    answers2 = two_apps[1][2]
    assert answers2 == [(None, ["yes", "ready?"])]
    b.emit("ask_not_me", b.sid)  # the sender itself, skipped: nothing is sent
    assert b.get_received() == [] and answers2 == [(None, ["yes", "ready?"])]


def test_a_callback_no_process_takes_is_forgotten(two_apps, monkeypatch):
    from flask_sio09 import redis_manager

    (app1, sio1, answers1), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    manager1 = app1.extensions["sio09"].server.manager
    # a question that no process takes (the sid's client is gone, or its process
    # died) waits CALLBACK_TAKEN_SECONDS at most (here 3), with no other question
    # asked meanwhile: the listener forgets it
    monkeypatch.setattr(redis_manager, "CALLBACK_TAKEN_SECONDS", 3)
    gone = b.sid
    b.disconnect()
    with app1.app_context():
        sio1.emit("question", "ready?", to="n" * 20, callback=print)
        sio1.emit("question", "ready?", to=gone, callback=print)
    assert len(manager1._remote_callbacks) == 2
    wait_until(lambda: not manager1._remote_callbacks, timeout=DEADLINE, message="forgotten")
    # one that a process takes waits for its answer however long it takes
    asked, release = threading.Event(), threading.Event()
    c = sio2.test_client(app2)
    c.on("question", lambda text: asked.set() or release.wait(DEADLINE) and "late")
    a.emit("ask", c.sid)
    try:
        assert asked.wait(DEADLINE)
        wait_until(lambda: not manager1._untaken, timeout=DEADLINE, message="taken")
        with app1.app_context():
            sio1.emit("question", "ready?", to="m" * 20, callback=print)
        wait_until(lambda: len(manager1._remote_callbacks) == 1, timeout=DEADLINE,
                   message="the untaken one forgotten")
        assert len(manager1._remote_callbacks) == 1 and not manager1._untaken  # c's, kept
    finally:
        release.set()
    wait_until(lambda: answers1, timeout=DEADLINE, message="c's late answer")
    assert answers1 == [(None, ["late"])]  # (no request: see the test above)
    assert not manager1._remote_callbacks


@pytest.fixture
def three_apps(fresh_redis):
    url = fresh_redis().url
    made = [make_app(url, name) for name in ("one", "two", "three")]
    yield made
    for app, _, _ in made:
        app.extensions["sio09"].server.shutdown()


def test_an_answer_runs_only_the_callback_of_the_process_that_asked(three_apps):
    """Callback ids are counted per process: processes one and two each ask
    a client of process three, both with callback id 1. Each answer must run
    the asking process's callback only, not every process's callback 1 (the
    other asker got an answer to a question it never asked, and lost its own)."""
    (app1, sio1, answers1), (app2, sio2, answers2), (app3, sio3, _) = three_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    c1, c2 = sio3.test_client(app3), sio3.test_client(app3)
    asked1, two_asked = threading.Event(), threading.Event()

    def answer_once_two_asked(text):
        # (on process three's listener: two's question waits behind it)
        asked1.set()
        two_asked.wait(DEADLINE)
        return "from c1"

    c1.on("question", answer_once_two_asked)
    c2.on("question", lambda text: "from c2")
    try:
        a.emit("ask", c1.sid)  # process one's callback 1
        assert asked1.wait(DEADLINE)
        b.emit("ask", c2.sid)  # process two's callback 1, kept before c1 answers
    finally:
        two_asked.set()
    wait_until(lambda: answers1 and answers2, timeout=DEADLINE, message="both answers")
    assert answers1 == [(None, ["from c1"])]
    assert answers2 == [(None, ["from c2"])]


def test_a_client_leaving_unanswered_forgets_only_the_askers_callback(three_apps):
    """Word that a client left before answering forgets the callback of the
    process that asked it, not every process's callback of that id: another
    process's question (same id) still gets its answer."""
    (app1, sio1, answers1), (app2, sio2, answers2), (app3, sio3, _) = three_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    c1, c2 = sio3.test_client(app3), sio3.test_client(app3)
    manager1 = app1.extensions["sio09"].server.manager
    asked1, release = threading.Event(), threading.Event()

    def never_in_time(text):  # (on process three's listener: two's question waits)
        asked1.set()
        release.wait(DEADLINE)
        return "too late"

    c1.on("question", never_in_time)
    c2.on("question", lambda text: "from c2")
    try:
        a.emit("ask", c1.sid)  # process one's callback 1
        assert asked1.wait(DEADLINE)
        b.emit("ask", c2.sid)  # process two's callback 1
        # c1's session ends unanswered: process three tells process one
        app3.extensions["sio09"].server.disconnect(c1.sid)
        wait_until(lambda: not manager1._remote_callbacks, timeout=DEADLINE,
                   message="process one's callback forgotten")
    finally:
        release.set()  # (c2 answers now, after the word about c1 went out)
    wait_until(lambda: answers2, timeout=DEADLINE, message="c2's answer to process two")
    assert answers2 == [(None, ["from c2"])] and answers1 == []


def test_a_callback_to_a_client_of_this_process_outside_the_namespace_sends_nothing(two_apps):
    """As in one process: nobody to ask (the client may have just left the
    namespace), so nothing is sent, nothing published, nothing kept."""
    (app1, sio1, _), _ = two_apps
    a = sio1.test_client(app1)
    manager1 = app1.extensions["sio09"].server.manager
    with app1.app_context():
        sio1.emit("question", to=a.sid, namespace="/chat", callback=print)
    assert len(manager1._remote_callbacks) == 0
    assert a.get_received("/chat") == [] and a.get_received() == []


def test_a_callback_to_a_client_whose_connect_handler_runs_waits_for_it(two_apps):
    (app1, sio1, _), (app2, sio2, answers2) = two_apps
    a = sio1.test_client(app1)
    manager2 = app2.extensions["sio09"].server.manager
    a.on("question", lambda: ("here",), namespace="/wait")

    @sio1.on("connect", namespace="/wait")
    def connecting():  # another process asks meanwhile
        with app2.app_context():
            sio2.emit("question", to=request.sid, namespace="/wait",
                      callback=lambda *args: answers2.append(list(args)))
        wait_until(lambda: not manager2._untaken, timeout=DEADLINE, message="taken")

    a.connect("/wait")
    wait_until(lambda: answers2, timeout=DEADLINE, message="the answer")
    assert answers2 == [["here"]] and len(manager2._remote_callbacks) == 0


def test_telling_another_process_a_callback_goes_unanswered_never_waits_for_redis(two_apps):
    from flask_sio09.cluster import ForwardedAck

    (app1, _, _), _ = two_apps
    manager1 = app1.extensions["sio09"].server.manager
    redis_answers = threading.Event()
    published = []

    def stalled_publish(message):  # Redis does not answer until told to
        redis_answers.wait(DEADLINE)
        published.append(message)
        return True

    manager1.publish = stalled_publish
    ack = ForwardedAck(manager1, "origin", 7)
    caller = threading.Thread(target=ack.unanswered)  # (the hub's thread, say)
    caller.start()
    caller.join(DEADLINE)
    try:
        assert not caller.is_alive() and published == []
    finally:
        redis_answers.set()
    wait_until(lambda: published, timeout=DEADLINE, message="published after all")
    assert published == [{"op": "forget_callback", "to": "origin", "cb": 7}]


def test_a_callback_whose_client_leaves_before_answering_is_forgotten(two_apps):
    (app1, sio1, answers1), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    manager2 = app2.extensions["sio09"].server.manager
    asked, release = threading.Event(), threading.Event()

    def slow_answer(text):  # the test client answers when this returns
        asked.set()
        release.wait(DEADLINE)
        return "too late"

    a.on("question", slow_answer)
    b.emit("ask", a.sid)
    try:
        assert asked.wait(DEADLINE)
        assert len(manager2._remote_callbacks) == 1
        # a's session ends unanswered: a's process tells b's that no answer will come
        app1.extensions["sio09"].server.disconnect(a.sid)
        wait_until(lambda: len(manager2._remote_callbacks) == 0, timeout=DEADLINE,
                   message="the callback forgotten")
    finally:
        release.set()
    assert answers1 == [] and b.is_connected()


def test_a_callback_whose_client_left_the_namespace_is_forgotten(two_apps):
    (app1, sio1, _), (app2, sio2, answers2) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    a.connect("/chat")
    manager2 = app2.extensions["sio09"].server.manager
    asked, release = threading.Event(), threading.Event()
    a.on("question", lambda: asked.set() or release.wait(DEADLINE), namespace="/chat")
    with app2.app_context():
        sio2.emit("question", to=a.sid, namespace="/chat", callback=print)
    try:
        assert asked.wait(DEADLINE)
        assert len(manager2._remote_callbacks) == 1
        app1.extensions["sio09"].server.disconnect(a.sid, "/chat")  # its acks there never come
        wait_until(lambda: len(manager2._remote_callbacks) == 0, timeout=DEADLINE,
                   message="the callback forgotten")
    finally:
        release.set()
    assert answers2 == []
    # asked on a namespace the client is not in: forgotten at once by its process
    with app2.app_context():
        sio2.emit("question", to=a.sid, namespace="/chat", callback=print)
    wait_until(lambda: len(manager2._remote_callbacks) == 0, timeout=DEADLINE,
               message="the callback forgotten")
    assert b.is_connected() and a.is_connected()


def test_a_callback_whose_question_could_not_be_published_is_not_kept(fresh_redis):
    redis = fresh_redis()
    app, sio, _ = make_app(redis.url, "alone")
    try:
        client = sio.test_client(app)
        manager = app.extensions["sio09"].server.manager
        redis.stop()  # the question cannot leave: no answer can come back
        with app.app_context():
            sio.emit("question", to="n" * 20, callback=print)
        assert len(manager._remote_callbacks) == 0
        assert client.is_connected()
    finally:
        app.extensions["sio09"].server.shutdown()


def test_a_write_only_emitter_reaches_the_clients_of_every_process(two_apps, fresh_redis):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    a.emit("join", "lobby")
    url = app1.extensions["sio09"].server.options.message_queue
    emitter = SocketIO(message_queue=url, write_only=True)
    emitter.emit("from_task", {"n": 1}, to="lobby")
    emitter.send("plain text")
    emitter.emit("on_chat", namespace="/chat")  # nobody there: nothing
    inbox_a, inbox_b = Inbox(a), Inbox(b)
    inbox_a.wait_for(("message", ["plain text"]))
    inbox_b.wait_for(("message", ["plain text"]))
    assert inbox_a.names() == [("from_task", [{"n": 1}]), ("message", ["plain text"])]
    assert inbox_b.names() == [("message", ["plain text"])]
    emitter.close_room("lobby")
    manager1 = app1.extensions["sio09"].server.manager
    wait_until(lambda: manager1.recipients("", "lobby") == [], timeout=DEADLINE)


def test_emits_from_many_threads_reach_the_other_process_all_in_order_per_thread(two_apps):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a = sio1.test_client(app1)
    threads, count = 4, 50

    def run(t):
        for i in range(count):
            sio2.emit("par", t, i, to=a.sid)

    workers = [threading.Thread(target=run, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(DEADLINE)
    inbox = Inbox(a)
    wait_until(lambda: len(inbox.names()) == threads * count, timeout=DEADLINE,
               message=lambda: f"{len(inbox.names())} of {threads * count}")
    for t in range(threads):
        assert [args[1] for name, args in inbox.names() if args[0] == t] == list(range(count))


def test_callback_across_processes_takes_a_sid_not_a_room(two_apps):
    (app1, sio1, _), (app2, sio2, _) = two_apps
    a = sio1.test_client(app1)
    a.emit("join", "den")  # its only member is the other process's client
    with pytest.raises(ValueError, match="callback= takes a sid"):
        sio2.emit("question", to="den", callback=lambda *args: None)


def test_a_session_that_ends_never_waits_for_redis_to_forget_its_records(two_apps):
    (app1, sio1, _), _ = two_apps
    a = sio1.test_client(app1)
    server1 = app1.extensions["sio09"].server
    redis_answers = threading.Event()
    forgotten = []

    def stalled_forget(sids, what=""):  # Redis does not answer until told to
        redis_answers.wait(DEADLINE)
        forgotten.extend(sids)
        return True

    server1.manager.forget_many = stalled_forget
    session = server1.sessions[a.sid]
    # the hub's thread, say: it must go on serving every other client
    closer = threading.Thread(target=server1.close_session, args=(session, "gone"))
    closer.start()
    closer.join(DEADLINE)
    try:
        assert not closer.is_alive() and session.closed and forgotten == []
    finally:
        redis_answers.set()
    wait_until(lambda: forgotten, timeout=DEADLINE, message="forgotten after all")
    assert forgotten == [a.sid]


def test_an_exiting_process_forgets_every_record_in_one_round_trip(two_apps):
    """At exit the records of the open sessions and those of the sessions that
    ended, still waiting for the manager's thread, go in one round trip: while
    Redis stalls that is one timeout, not one per session (probe AC: an exit
    outlasted gunicorn's graceful timeout)."""
    (app1, sio1, _), _ = two_apps
    server1 = app1.extensions["sio09"].server
    manager = server1.cluster.manager
    clients = [sio1.test_client(app1) for _ in range(4)]
    busy = threading.Event()
    manager.later(lambda: busy.wait(DEADLINE))  # (Redis slow: its thread is held)
    for client in clients[:2]:
        server1.close_session(server1.sessions[client.sid], "gone")
    calls = []
    forget_many = manager.forget_many
    manager.forget_many = lambda sids, *args: calls.append(sorted(sids)) or forget_many(
        sids, *args)
    threading.Timer(0.2, busy.set).start()
    server1.cluster._forget_all()
    assert calls == [sorted(client.sid for client in clients)]


def test_a_callback_whose_client_ends_as_the_question_arrives_is_forgotten(two_apps):
    (app1, sio1, _), (app2, sio2, answers2) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    server1 = app1.extensions["sio09"].server
    manager2 = app2.extensions["sio09"].server.manager
    send_with_callback = server1.send_with_callback

    def session_ends_first(session, *args, **kwargs):
        # the race: the client's session ends between the holder's look at it
        # and its keeping the callback
        server1.close_session(session, "gone just then")
        return send_with_callback(session, *args, **kwargs)

    server1.send_with_callback = session_ends_first
    b.emit("ask", a.sid)
    wait_until(lambda: a.sid not in server1.sessions, timeout=DEADLINE, message="a gone")
    wait_until(lambda: not manager2._remote_callbacks, timeout=DEADLINE,
               message="the callback forgotten")
    assert answers2 == [] and b.is_connected()


def test_a_session_claimed_elsewhere_is_never_held_twice(two_apps):
    """Another process's claim leaves the handshake's record marked: once
    that session has ended and its record is gone, the handshake's own
    process still refuses it. And a session that the handshake's process
    held without the record (Redis lost it) gives way when the process that
    claimed it before says so."""
    import redis as redis_py

    (app1, _, _), (app2, _, _) = two_apps
    one, two = app1.extensions["sio09"].server, app2.extensions["sio09"].server
    admin = redis_py.Redis.from_url(one.cluster.manager.url)
    environ = {"QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1"}

    # claimed by two, which then ends it: one cannot hold it afterwards
    session = one.new_session(environ)
    assert two.cluster.adopt(session.sid, lambda: dict(environ)) is not None
    two.close_session(two.sessions[session.sid], "transport closed")
    wait_until(lambda: not list(admin.scan_iter(match=f"*:session:{session.sid}")),
               timeout=DEADLINE, message="two's record of the ended session to go")
    assert one.cluster.claim(session) is False

    # held by one without its record; two says it claimed it first
    session = one.new_session(environ)
    for key in admin.scan_iter(match=f"*:handshake:{session.sid}"):
        admin.delete(key)
    assert one.cluster.claim(session) is True
    assert not session.closed
    two.cluster.manager.publish({"op": "claimed", "sid": session.sid})
    wait_until(lambda: session.closed, timeout=DEADLINE, message="one's copy to close")


def test_a_session_held_by_another_process_keeps_its_handshakes_query(two_apps):
    """The session adopted by the process its transport reached got that
    request's query: socketIO-client leaves the handshake's off the
    WebSocket URL, so the connect handler (and request.args) lost it there,
    while the handshake's own process had it."""
    (app1, _, _), (app2, _, _) = two_apps
    one, two = app1.extensions["sio09"].server, app2.extensions["sio09"].server
    session = one.new_session({"QUERY_STRING": "cid=q15&token=%C3%A9",
                               "REMOTE_ADDR": "127.0.0.1"})
    adopted = two.cluster.adopt(session.sid, lambda: {"QUERY_STRING": "",
                                                      "REMOTE_ADDR": "127.0.0.1"})
    assert adopted is not None and adopted.environ["QUERY_STRING"] == "cid=q15&token=%C3%A9"
    # a handshake without a query: none either where the transport went,
    # whatever its URL carries (a connect handler refusing by the query
    # decided otherwise in the two processes)
    bare = one.new_session({"QUERY_STRING": "", "REMOTE_ADDR": "127.0.0.1"})
    adopted = two.cluster.adopt(bare.sid, lambda: {"QUERY_STRING": "token=ok",
                                                   "REMOTE_ADDR": "127.0.0.1"})
    assert adopted is not None and adopted.environ["QUERY_STRING"] == ""


def test_a_question_to_another_process_client_is_encoded_as_for_one_here(two_apps):
    """callback= to another process's client: a Decimal travels as a number
    (the channel's JSON raised TypeError), and what cannot be encoded raises
    PacketError here, as for a client of this process (a NaN went out and was
    dropped, with a WARNING, by the other process)."""
    from decimal import Decimal

    from flask_sio09.packet import PacketError

    (app1, sio1, _), (app2, sio2, _) = two_apps
    a = sio1.test_client(app1)
    answers = []
    a.on("question", lambda value: ("got", value))
    with app2.app_context():
        sio2.emit("question", {"d": Decimal("0.5")}, to=a.sid,
                  callback=lambda *args: answers.append(args))
        with pytest.raises(PacketError):
            sio2.emit("question", float("nan"), to=a.sid, callback=print)
        # what a client of this process is sent, the other process's client
        # is sent too (the limits of decoding a client's input do not apply)
        sio2.emit("question", [10 ** 120], to=a.sid, callback=print)
    Inbox(a).wait_for(("question", [{"d": 0.5}]))
    wait_until(lambda: answers, timeout=DEADLINE, message="the forwarded ack")
    assert answers == [("got", {"d": 0.5})]
