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


def test_a_callback_answered_by_another_process_client_runs_here(two_apps):
    (app1, sio1, _), (app2, sio2, answers2) = two_apps
    a, b = sio1.test_client(app1), sio2.test_client(app2)
    a.on("question", lambda text: ("yes", text))
    b.emit("ask", a.sid)
    Inbox(a).wait_for(("question", ["ready?"]))
    wait_until(lambda: answers2, timeout=DEADLINE, message="the forwarded ack")
    # run in the asking app's context, with no request of the other's client
    assert answers2 == [(None, ["yes", "ready?"])]


def test_a_callback_to_a_sid_no_process_holds_is_refused_and_not_kept(two_apps):
    (app1, sio1, answers1), (app2, sio2, _) = two_apps
    a = sio1.test_client(app1)
    manager1 = app1.extensions["sio09"].server.manager
    # a well-formed sid that no process holds: as in one process, a ValueError,
    # and no callback waits for an answer that cannot come
    with app1.app_context(), pytest.raises(ValueError, match="no process holds"):
        sio1.emit("question", "ready?", to="n" * 20, callback=print)
    assert len(manager1._remote_callbacks) == 0
    # a sid whose session ended: the same
    b = sio2.test_client(app2)
    gone = b.sid
    b.disconnect()
    with app1.app_context(), pytest.raises(ValueError, match="no process holds"):
        sio1.emit("question", "ready?", to=gone, callback=print)
    assert len(manager1._remote_callbacks) == 0
    a.emit("ask", "n" * 20)  # from a handler: its error, logged; nothing kept
    assert len(manager1._remote_callbacks) == 0 and answers1 == []


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
