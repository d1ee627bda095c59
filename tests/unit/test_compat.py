"""The gevent-socketio compatibility layer (``flask_sio09.compat``), through the test client."""

import logging
import threading

import pytest
from flask import Flask, current_app

from flask_sio09 import SocketIO, disconnect
from flask_sio09.compat import BaseNamespace, BroadcastMixin, RoomsMixin, socketio_manage
from tests.unit.doubles import wait_until


@pytest.fixture
def app_sio():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test-only"
    sio = SocketIO(app)
    yield app, sio
    app.extensions["sio09"].server.shutdown()


def events(client, namespace=None):
    return [(r["name"], r["args"]) for r in client.get_received(namespace)]


def test_socketio_manage_maps_namespaces_to_classes(app_sio):
    app, sio = app_sio
    made = []

    class Global(BaseNamespace):
        def initialize(self):
            made.append(("global", self.ns_name))

        def on_hello(self):
            return "from global"

    class Chat(BaseNamespace):
        def initialize(self):
            made.append(("chat", self.ns_name))

        def on_hello(self):
            return "from chat"

    socketio_manage(sio, {"": Global, "/chat": Chat})
    client = sio.test_client(app, namespace="/chat")
    assert made == [("global", ""), ("chat", "/chat")]
    assert client.emit("hello", callback=True, namespace="/") == ["from global"]
    assert client.emit("hello", callback=True) == ["from chat"]
    with pytest.raises(TypeError):
        socketio_manage(sio, {"/bad": object})


def test_socketio_manage_called_the_gevent_socketio_way_says_what_to_do(app_sio):
    app, sio = app_sio

    class Chat(BaseNamespace):
        pass

    with app.test_request_context("/socket.io/1/"):
        from flask import request

        with pytest.raises(TypeError, match="takes the SocketIO object first"):
            socketio_manage(request.environ, {"/chat": Chat}, request)


def test_a_view_left_under_the_resource_is_named_at_the_first_handshake(app_sio, caplog):
    # A port that keeps gevent-socketio's view: the server answers its paths
    # first, so the view (and the socketio_manage call in it) never runs, and
    # the client's events reached no handler without a word in the log.
    app, sio = app_sio

    @app.route("/socket.io/<path:remaining>")
    def run_socketio(remaining):
        return ""

    @app.route("/socket.iox/<path:remaining>")  # (not under the resource)
    def elsewhere(remaining):
        return ""

    caplog.set_level(logging.WARNING, logger="flask_sio09")
    sio.test_client(app)
    sio.test_client(app)  # (said once)
    said = [r.getMessage() for r in caplog.records if "never reached" in r.getMessage()]
    assert said == ["the route /socket.io/<path:remaining> (view 'run_socketio') is never "
                    "reached: flask_sio09 answers every path under /socket.io/ itself (a "
                    "gevent-socketio socketio_manage view? see "
                    "docs/porting-gevent-socketio.md)"]


def test_recv_connect_runs_on_namespaces_but_not_on_the_global_one(app_sio):
    app, sio = app_sio
    connects = []

    class Recorder(BaseNamespace):
        def recv_connect(self):
            connects.append(self.ns_name)
            self.emit("welcome")

    socketio_manage(sio, {"": Recorder, "/chat": Recorder})
    client = sio.test_client(app, namespace="/chat")
    assert connects == ["/chat"]
    assert events(client) == [("welcome", [])]
    assert events(client, "/") == []


def test_recv_connect_returning_false_refuses(app_sio):
    app, sio = app_sio

    class Closed(BaseNamespace):
        def recv_connect(self):
            return False

    socketio_manage(sio, {"/closed": Closed})
    assert not sio.test_client(app, namespace="/closed").is_connected("/closed")


def test_initialize_runs_once_per_class_that_defines_it(app_sio):
    app, sio = app_sio
    calls = []

    class Base(BaseNamespace):
        def initialize(self):
            calls.append("base")

    class Child(Base):
        def initialize(self):
            calls.append("child")

    class GrandChild(Child):
        pass

    socketio_manage(sio, {"/g": GrandChild})
    sio.test_client(app, namespace="/g")
    assert calls == ["child", "base"]


def test_ack_callable_is_appended_positionally(app_sio):
    app, sio = app_sio
    seen = []

    class Acks(BaseNamespace):
        def on_with_ack(self, a, b, ack):
            seen.append(callable(ack))
            ack(a + b, "done")

        def on_optional(self, a, ack=None):
            seen.append(ack is None)
            if ack:
                ack("optional", a)

        def on_returns(self, a):
            return a * 2

        def on_returns_none(self):
            return None

        def on_returns_tuple(self):
            return 1, 2

        def on_packet(self, packet):
            return packet["name"], packet["args"], packet.get("ack")

        def on_star(self, *args):  # gevent-socketio passed the event's args alone
            seen.append(("star", args))
            return len(args)

        def on_join(self, room, password=None):  # the same: an optional parameter
            seen.append(("join", room, password))
            return "joined " + room

        def on_fn(self, a, fn):  # as socket.io's examples name the ack
            fn("fn", a)

        def on_cb(self, cb):
            cb("cb")

    socketio_manage(sio, {"/a": Acks})
    client = sio.test_client(app, namespace="/a")
    assert client.emit("with_ack", 1, 2, callback=True) == [3, "done"]
    assert client.emit("optional", 5, callback=True) == ["optional", 5]
    client.emit("optional", 5)  # no ack asked for: nothing appended
    assert seen == [True, False, True]
    # a method with no room for the ack answers with its return value
    assert client.emit("returns", 4, callback=True) == [8]
    assert client.emit("returns_none", callback=True) == [None]  # gevent-socketio sends [null]
    assert client.emit("returns_tuple", callback=True) == [1, 2]
    assert client.emit("packet", "x", callback=True) == ["packet", ["x"], "data"]
    # a ported method with *args or an optional parameter (not named ack or
    # callback) gets the event's args alone, as in gevent-socketio
    assert client.emit("star", "a", "b", callback=True) == [2]
    assert client.emit("join", "lobby", callback=True) == ["joined lobby"]
    assert client.emit("join", "lobby", "pw", callback=True) == ["joined lobby"]
    assert seen[3:] == [("star", ("a", "b")), ("join", "lobby", None), ("join", "lobby", "pw")]
    assert client.emit("fn", 1, callback=True) == ["fn", 1]
    assert client.emit("cb", callback=True) == ["cb"]


def test_too_few_args_never_put_the_ack_in_a_data_parameter(app_sio, caplog):
    # a client that sends fewer args than a method takes, with a data ack:
    # the ack callable must not land in a data parameter (and from there in
    # what the app stores and broadcasts); the method fails as it did under
    # gevent-socketio, with TypeError, and no ack is sent
    app, sio = app_sio
    stored = []

    class Chat(BaseNamespace):
        def on_nickname(self, nickname):
            stored.append(nickname)
            return True

        def on_set(self, key, value):
            stored.append((key, value))
            return True

        def on_named(self, a, callback):
            callback(a)

    socketio_manage(sio, {"/chat": Chat})
    client = sio.test_client(app, namespace="/chat")
    with caplog.at_level(logging.CRITICAL, logger="flask_sio09"):
        assert client.emit("nickname", callback=True) is None
        assert client.emit("set", "k", callback=True) is None
    assert stored == []
    assert client.emit("nickname", "bob", callback=True) == [True]
    assert client.emit("named", 7, callback=True) == [7]  # named as the ack: appended
    assert stored == ["bob"]


def test_an_error_handlers_answer_answers_a_raising_methods_data_ack(app_sio, caplog):
    # as for decorated handlers and Namespace classes (handlers-and-acks.md)
    app, sio = app_sio

    class Chat(BaseNamespace):
        def on_boom(self):
            raise RuntimeError("no")

        def on_boom_after_ack(self, ack):
            ack("first")
            raise RuntimeError("no")

    socketio_manage(sio, {"/chat": Chat})
    client = sio.test_client(app, namespace="/chat")
    with caplog.at_level(logging.CRITICAL, logger="flask_sio09"):
        assert client.emit("boom", callback=True) is None  # no error handler: no ack
        sio.on_error("/chat")(lambda exc: "fallback")
        assert client.emit("boom", callback=True) == ["fallback"]
        assert client.emit("boom_after_ack", callback=True) == ["first"]  # answered once


def test_an_event_named_message_goes_to_on_message_not_recv_message(app_sio):
    # gevent-socketio told them apart: a message packet (send) to
    # recv_message, an event named "message" (emit) to on_message
    app, sio = app_sio
    seen = []

    class Chat(BaseNamespace):
        def recv_message(self, data):
            seen.append(("recv_message", data))
            return "recv_message"

        def recv_json(self, data):
            seen.append(("recv_json", data))
            return "recv_json"

        def on_message(self, *args):
            seen.append(("on_message", args))
            return "on_message"

        def on_json(self, *args):
            seen.append(("on_json", args))
            return "on_json"

    socketio_manage(sio, {"/chat": Chat})
    client = sio.test_client(app, namespace="/chat")
    assert client.emit("message", "hi", callback=True) == ["on_message"]
    assert client.emit("json", {"a": 1}, callback=True) == ["on_json"]
    assert client.send("hi", callback=True) == ["recv_message"]
    assert client.send({"a": 1}, json=True, callback=True) == ["recv_json"]
    assert seen == [("on_message", ("hi",)), ("on_json", ({"a": 1},)),
                    ("recv_message", "hi"), ("recv_json", {"a": 1})]


def test_recv_message_and_recv_json(app_sio):
    app, sio = app_sio
    got = []

    class Messages(BaseNamespace):
        def recv_message(self, data):
            got.append(("message", data))
            self.send("pong " + data)

        def recv_json(self, data):
            got.append(("json", data))
            self.send({"echo": data}, json=True)

    class Defaults(BaseNamespace):
        pass

    socketio_manage(sio, {"/m": Messages, "/d": Defaults})
    client = sio.test_client(app, namespace="/m")
    client.send("ping")
    client.send({"a": 1}, json=True)
    assert got == [("message", "ping"), ("json", {"a": 1})]
    assert events(client) == [("message", ["pong ping"]), ("json", [{"echo": {"a": 1}}])]
    # the defaults return the data, which answers a data ack
    client.connect("/d")
    assert client.send("back", callback=True, namespace="/d") == ["back"]
    assert client.send([1, 2], json=True, callback=True, namespace="/d") == [[1, 2]]


def test_acl_refuses_and_logs_until_lifted(app_sio, caplog):
    app, sio = app_sio

    class Guarded(BaseNamespace):
        def get_initial_acl(self):
            return ["recv_connect", "on_login"]

        def on_login(self, password):
            if password == "secret":
                self.lift_acl_restrictions()
            return self.allowed_methods is None

        def on_private(self):
            return "private data"

    socketio_manage(sio, {"/g": Guarded})
    client = sio.test_client(app, namespace="/g")
    with caplog.at_level(logging.INFO, logger="flask_sio09"):
        assert client.emit("private", callback=True) == [None]
    assert events(client) == [("error", ["method_access_denied",
                                         'You do not have access to method "on_private"'])]
    assert any("method_access_denied" in r.getMessage() and client.sid in r.getMessage()
               for r in caplog.records if r.levelno >= logging.INFO)
    assert client.emit("login", "wrong", callback=True) == [False]
    assert client.emit("login", "secret", callback=True) == [True]
    assert client.emit("private", callback=True) == ["private data"]
    assert events(client) == []


def test_the_end_of_the_connection_runs_recv_disconnect_whatever_the_acl(app_sio):
    """As gevent-socketio's Socket.disconnect: recv_disconnect is called, not
    dispatched through the ACL, when the connection ends; a client's own
    ``0::/ns`` packet still goes through the ACL."""
    app, sio = app_sio
    log = []

    class Guarded(BaseNamespace):
        def get_initial_acl(self):
            return ["recv_connect"]

        def recv_disconnect(self):
            log.append(self.socket.sessid)
            super().recv_disconnect()

    socketio_manage(sio, {"/g": Guarded})
    ending = sio.test_client(app, namespace="/g")
    ending.disconnect("/")
    assert log == [ending.sid]
    leaving = sio.test_client(app, namespace="/g")
    leaving.disconnect("/g")
    assert log == [ending.sid]  # the ACL refused it, as in gevent-socketio


def test_acl_methods(app_sio):
    app, sio = app_sio
    results = {}

    class Acl(BaseNamespace):
        def get_initial_acl(self):
            return {"recv_connect", "on_change"}

        def on_change(self):
            self.add_acl_method("on_extra")
            results["after add"] = self.is_method_allowed("on_extra")
            self.del_acl_method("on_extra")
            results["after del"] = self.is_method_allowed("on_extra")
            self.lift_acl_restrictions()
            results["lifted"] = self.is_method_allowed("on_anything")
            try:
                self.del_acl_method("on_change")
            except ValueError:
                results["del without acl"] = "ValueError"
            self.reset_acl()
            results["reset"] = sorted(self.allowed_methods)

    socketio_manage(sio, {"/acl": Acl})
    sio.test_client(app, namespace="/acl").emit("change")
    assert results == {"after add": True, "after del": False, "lifted": True,
                       "del without acl": "ValueError", "reset": ["on_change", "recv_connect"]}


def test_unknown_methods_and_bad_event_names_are_reported(app_sio):
    app, sio = app_sio
    socketio_manage(sio, {"/e": BaseNamespace})
    client = sio.test_client(app, namespace="/e")
    client.emit("missing")
    client.emit("bad-name!")
    client.emit("_private")
    assert events(client) == [
        ("error", ["no_such_method", 'The method "on_missing" was not found']),
        ("error", ["unallowed_event_name", "name must only contains alpha numerical characters"]),
        ("error", ["unallowed_event_name", "name must only contains alpha numerical characters"]),
    ]


def test_error_quiet_and_a_custom_error_handler(app_sio):
    app, sio = app_sio
    custom = []

    class Errs(BaseNamespace):
        def on_loud(self):
            self.error("my_error", "details")

        def on_quiet(self):
            self.error("my_error", "details", quiet=True)

    socketio_manage(sio, {"/e": Errs})
    socketio_manage(sio, {"/c": Errs},
                    error_handler=lambda socket, *rest: custom.append((socket.sessid, *rest)))
    client = sio.test_client(app, namespace="/e")
    client.emit("loud")
    client.emit("quiet")
    assert events(client) == [("error", ["my_error", "details"])]
    other = sio.test_client(app, namespace="/c")
    other.emit("loud")
    assert custom == [(other.sid, "my_error", "details", "/c", None, False)]
    assert events(other) == []


def test_session_request_and_environ(app_sio):
    app, sio = app_sio
    seen = {}

    class One(BaseNamespace):
        def on_remember(self, value):
            self.session["value"] = value
            seen["request"] = self.request
            seen["environ"] = self.environ

    class Two(BaseNamespace):
        def on_recall(self):
            return self.session.get("value")

    socketio_manage(sio, {"/one": One, "/two": Two})
    a = sio.test_client(app, namespace="/one", headers={"Cookie": "flavour=mint"})
    a.connect("/two")
    b = sio.test_client(app, namespace="/two")
    a.emit("remember", 42)
    assert a.emit("recall", callback=True, namespace="/two") == [42]  # shared by namespaces
    assert b.emit("recall", callback=True) == [None]  # one dict per connection
    assert seen["request"].cookies["flavour"] == "mint"  # the connection's Flask request
    assert seen["environ"]["socketio"].sessid == a.sid
    assert seen["environ"]["HTTP_COOKIE"] == "flavour=mint"


def test_request_given_to_socketio_manage(app_sio):
    app, sio = app_sio
    shared = {"names": []}

    class Names(BaseNamespace):
        def on_add(self, name):
            self.request["names"].append(name)
            return self.request["names"]

    socketio_manage(sio, {"/n": Names}, request=shared)
    sio.test_client(app, namespace="/n").emit("add", "a")
    assert sio.test_client(app, namespace="/n").emit("add", "b", callback=True) == [["a", "b"]]


def test_emit_and_send_with_callbacks(app_sio):
    app, sio = app_sio
    answers = []

    class Asks(BaseNamespace):
        def on_start(self):
            self.emit("question", 1, callback=lambda *a: answers.append(("emit", a)))
            self.send("note", callback=lambda *a: answers.append(("send", a)))

        def on_bad(self):
            self.emit("x", room="nope")

    errors = []
    sio.on_error("/q")(errors.append)
    socketio_manage(sio, {"/q": Asks})
    client = sio.test_client(app, namespace="/q")
    client.on("question", lambda n: n + 1)
    client.emit("start")
    assert answers == [("emit", (2,)), ("send", ())]
    client.emit("bad")
    assert len(errors) == 1 and isinstance(errors[0], ValueError)


def test_disconnect_from_a_handler_and_recv_disconnect(app_sio):
    app, sio = app_sio
    log = []

    class Door(BaseNamespace):
        def on_kick(self):
            self.disconnect()
            log.append("after disconnect")

        def recv_disconnect(self):
            log.append(("recv_disconnect", self.socket.sessid))
            super().recv_disconnect()

    socketio_manage(sio, {"/door": Door})
    kicked = sio.test_client(app, namespace="/door")
    kicked.emit("kick")
    assert not kicked.is_connected("/door") and kicked.is_connected("/")
    assert log == ["after disconnect"]  # as in gevent-socketio: no recv_disconnect after disconnect()
    leaving = sio.test_client(app, namespace="/door")
    leaving.disconnect("/door")
    ending = sio.test_client(app, namespace="/door")
    ending.disconnect("/")
    assert log[1:] == [("recv_disconnect", leaving.sid), ("recv_disconnect", ending.sid)]
    # a reconnect makes a new object, whose methods work
    kicked.connect("/door")
    kicked.emit("kick")
    assert log[-1] == "after disconnect"


def test_recv_error_gets_the_error_packet(app_sio):
    app, sio = app_sio
    got = []

    class Errors(BaseNamespace):
        def recv_error(self, packet):
            got.append(packet)

    socketio_manage(sio, {"/e": Errors})
    client = sio.test_client(app, namespace="/e")
    client.send_packet({"type": "error", "reason": "unauthorized", "advice": "reconnect"})
    assert got == [{"type": "error", "reason": "unauthorized", "advice": "reconnect",
                    "endpoint": "/e"}]


def test_spawn_runs_in_a_thread_with_an_app_context(app_sio):
    app, sio = app_sio
    done = threading.Event()
    result = {}

    class Spawner(BaseNamespace):
        def on_start(self, n):
            self.spawn(self.work, n)
            return len(self.jobs)

        def work(self, n):
            result["app"] = current_app.name
            result["thread"] = threading.current_thread() is not threading.main_thread()
            self.emit("worked", n * 10)
            done.set()

    socketio_manage(sio, {"/s": Spawner})
    client = sio.test_client(app, namespace="/s")
    assert client.emit("start", 4, callback=True) == [1]
    assert done.wait(10)
    assert result == {"app": app.name, "thread": True}
    assert events(client) == [("worked", [40])]


def test_a_spawned_loop_watching_active_stops_when_its_client_leaves(app_sio):
    # gevent-socketio killed a namespace's greenlets when its client left it;
    # threads cannot be killed, so loops watch self.active, which turns False
    # then while the connection (self.socket.connected) goes on
    app, sio = app_sio
    running, stopped = threading.Semaphore(0), threading.Semaphore(0)
    still_connected = []

    class Feed(BaseNamespace):
        def on_start(self):
            self.spawn(self.loop)

        def loop(self):
            running.release()
            while self.active:
                threading.Event().wait(0.01)
            still_connected.append(self.socket.connected)
            stopped.release()

    socketio_manage(sio, {"/feed": Feed})
    client = sio.test_client(app, namespace="/feed")
    client.emit("start")
    assert running.acquire(timeout=10)
    client.disconnect("/feed")
    assert stopped.acquire(timeout=10)
    assert still_connected == [True]
    client.connect("/feed")  # a new object for the new visit, with its own jobs
    client.emit("start")
    assert running.acquire(timeout=10)
    client.disconnect()  # the connection ends: that loop stops too
    assert stopped.acquire(timeout=10)


def test_kill_local_jobs_stops_the_jobs_running_then_not_the_next_ones(app_sio):
    # gevent-socketio's "stop the old stream, start a new one": kill_local_jobs
    # killed the greenlets running; a job spawned after it ran. (It stopped
    # every later job of the object too, at once.)
    app, sio = app_sio
    ticks = {"A": 0, "B": 0}
    stopped = []
    started = threading.Semaphore(0)

    class Stream(BaseNamespace):
        def on_subscribe(self, channel):
            self.kill_local_jobs()
            self.spawn(self.stream, channel)

        def stream(self, channel):
            started.release()
            while self.active:
                ticks[channel] += 1
                threading.Event().wait(0.005)
            stopped.append(channel)

    socketio_manage(sio, {"/stream": Stream})
    client = sio.test_client(app, namespace="/stream")
    client.emit("subscribe", "A")
    assert started.acquire(timeout=10)
    client.emit("subscribe", "B")
    assert started.acquire(timeout=10)
    assert wait_until(lambda: stopped == ["A"] and ticks["B"] > 3), (stopped, ticks)
    client.disconnect("/stream")
    assert wait_until(lambda: stopped == ["A", "B"])


def test_a_job_spawned_in_initialize_runs(app_sio):
    # the porting doc's advice together (set-up in initialize, loops that
    # watch self.active): the object served nobody until every initialize had
    # returned, so such a loop saw active False and ended at once
    app, sio = app_sio
    ticks = []
    stopped = threading.Event()

    class Feed(BaseNamespace):
        def initialize(self):
            self.spawn(self.feed)

        def feed(self):
            while self.active:
                ticks.append(1)
                threading.Event().wait(0.005)
            stopped.set()

    socketio_manage(sio, {"/feed": Feed})
    client = sio.test_client(app, namespace="/feed")
    assert wait_until(lambda: len(ticks) > 3)
    client.disconnect("/feed")
    assert stopped.wait(10)


def test_a_job_spawned_by_an_initialize_that_raises_stops(app_sio):
    app, sio = app_sio
    seen = []
    done = threading.Event()
    go = threading.Event()

    class Refused(BaseNamespace):
        def initialize(self):
            self.spawn(self.job)
            raise RuntimeError("not this client")

        def job(self):
            go.wait(10)  # (until initialize has raised)
            seen.append(self.active)
            done.set()

    socketio_manage(sio, {"/r": Refused})
    client = sio.test_client(app)
    try:
        client.connect("/r")
    except RuntimeError:
        pass
    go.set()
    assert done.wait(10)
    assert seen == [False]


def test_socket_disconnect_ends_the_connection_with_every_recv_disconnect(app_sio):
    # gevent-socketio's user-facing Socket.disconnect(); it raised AttributeError
    app, sio = app_sio
    left = []

    class Room(BaseNamespace):
        def recv_disconnect(self):
            left.append(self.ns_name)
            super().recv_disconnect()

        def on_leave_all(self):
            self.socket.disconnect()

    socketio_manage(sio, {"/a": Room, "/b": Room})
    client = sio.test_client(app, namespace="/a")
    client.connect("/b")
    client.emit("leave_all", namespace="/b")
    assert sorted(left) == ["/a", "/b"]
    assert not client.is_connected()


def test_a_stopped_job_starts_no_job_that_runs_and_the_jobs_list_is_emptied(app_sio):
    # gevent-socketio killed the greenlet before it could spawn anything; and
    # kill_local_jobs emptied self.jobs (it grew by one thread per restart)
    app, sio = app_sio
    stop_now, spawned = threading.Event(), threading.Event()
    child_ticks = []
    jobs_after_kill = []

    class Poller(BaseNamespace):
        def on_start(self):
            self.spawn(self.poll)

        def on_kill(self):
            self.kill_local_jobs()
            jobs_after_kill.append(len(self.jobs))
            stop_now.set()

        def poll(self):
            if self.active:
                stop_now.wait(10)  # (a slow step, during which the client says stop)
                self.spawn(self.work)
                spawned.set()

        def work(self):
            while self.active:
                child_ticks.append(1)
                threading.Event().wait(0.005)

    socketio_manage(sio, {"/k": Poller})
    client = sio.test_client(app, namespace="/k")
    client.emit("start")
    client.emit("kill")
    assert spawned.wait(10)
    assert jobs_after_kill == [0]
    # the child saw itself stopped at once: it never ticked
    assert wait_until(lambda: all(not t.is_alive() for t in
                                  client.server.sessions[client.sid].app_data[
                                      "compat.socket"].active_ns["/k"].jobs))
    assert child_ticks == []


def test_spawn_keeps_no_list_of_ended_threads(app_sio):
    app, sio = app_sio
    counts = []

    class Quick(BaseNamespace):
        def on_run(self):
            thread = self.spawn(lambda: None)
            thread.join(10)
            counts.append(len(self.jobs))

    socketio_manage(sio, {"/q": Quick})
    client = sio.test_client(app, namespace="/q")
    for _ in range(5):
        client.emit("run", namespace="/q")
    assert counts == [1, 1, 1, 1, 1]


def test_a_callback_question_that_cannot_be_encoded_keeps_no_callback(app_sio):
    app, sio = app_sio
    objects, got = [], []

    class Asker(BaseNamespace):
        def recv_connect(self):
            objects.append(self)

    socketio_manage(sio, {"/a": Asker})
    client = sio.test_client(app, namespace="/a")
    asker = objects[0]
    from flask_sio09.packet import PacketError
    with app.app_context():
        with pytest.raises(PacketError):
            asker.emit("q", float("nan"), callback=lambda *a: got.append(a))
        with pytest.raises(PacketError):
            asker.send({1, 2}, json=True, callback=lambda *a: got.append(a))
    assert asker.socket._session._callbacks == {}


def test_a_namespace_object_sends_nothing_after_the_servers_0_ns(app_sio):
    # a spawned loop emitting while the server disconnects the client from
    # the namespace: nothing of it follows the 0::/ns (socket.io-client would
    # hand the page's listeners an event of a namespace it was told it left)
    app, sio = app_sio
    objects = []

    class Feed(BaseNamespace):
        def recv_connect(self):
            objects.append(self)

    socketio_manage(sio, {"/feed": Feed})
    client = sio.test_client(app, namespace="/feed")
    feed = objects[0]
    client.get_received("/feed")
    with app.app_context():
        disconnect(sid=client.sid, namespace="/feed")
    feed.emit("tick", 1)
    feed.emit("tick", 2, callback=lambda *a: None)
    feed.send("late")
    assert client.get_received("/feed") == []
    assert not client.is_connected("/feed")


def test_exception_handler_decorator_wraps_methods(app_sio):
    app, sio = app_sio
    caught = []

    def decorator(method):
        def wrapper(*args):
            try:
                return method(*args)
            except ZeroDivisionError as exc:
                caught.append(type(exc).__name__)
                return "caught"
        return wrapper

    class Guarded(BaseNamespace):
        exception_handler_decorator = staticmethod(decorator)

        def on_divide(self, a, b):
            return a / b

    socketio_manage(sio, {"/d": Guarded})
    client = sio.test_client(app, namespace="/d")
    assert client.emit("divide", 1, 0, callback=True) == ["caught"]
    assert caught == ["ZeroDivisionError"]


def test_exceptions_go_to_the_namespace_error_handler(app_sio):
    app, sio = app_sio
    errors = []
    sio.on_error("/boom")(lambda exc: errors.append(repr(exc)))

    class Boom(BaseNamespace):
        def on_fail(self):
            raise KeyError("oops")

    socketio_manage(sio, {"/boom": Boom})
    client = sio.test_client(app, namespace="/boom")
    client.emit("fail")
    assert errors == ["KeyError('oops')"]
    assert client.is_connected("/boom")


def test_rooms_mixin(app_sio):
    app, sio = app_sio

    class Rooms(BaseNamespace, RoomsMixin):
        def on_join(self, room):
            self.join(room)
            return sorted(self.session["rooms"])

        def on_leave(self, room):
            self.leave(room)
            return sorted(self.session["rooms"])

        def on_say(self, room, text):
            self.emit_to_room(room, "said", text)

    socketio_manage(sio, {"/r": Rooms})
    a, b, c = (sio.test_client(app, namespace="/r") for _ in range(3))
    assert a.emit("join", "main", callback=True) == [["/r_main"]]
    b.emit("join", "main")
    a.emit("say", "main", "hi")
    assert events(a) == []  # not to the sender, as gevent-socketio 0.3.6
    assert events(b) == [("said", ["hi"])] and events(c) == []
    assert b.emit("leave", "main", callback=True) == [[]]
    a.emit("say", "main", "again")
    assert events(b) == []


def test_broadcast_mixin(app_sio):
    app, sio = app_sio

    class Loud(BaseNamespace, BroadcastMixin):
        def on_all(self, text):
            self.broadcast_event("all", text)

        def on_others(self, text):
            self.broadcast_event_not_me("others", text)

    socketio_manage(sio, {"/b": Loud})
    a, b = (sio.test_client(app, namespace="/b") for _ in range(2))
    outsider = sio.test_client(app)  # not on /b: gets nothing
    a.emit("all", 1)
    a.emit("others", 2)
    assert events(a) == [("all", [1])]
    assert events(b) == [("all", [1]), ("others", [2])]
    assert outsider.get_received("/b") == [] and outsider.get_received("/") == []


def test_mixins_first_in_the_bases_work_too(app_sio):
    app, sio = app_sio

    class MixinsFirst(RoomsMixin, BroadcastMixin, BaseNamespace):
        def on_join(self, room):
            self.join(room)
            self.broadcast_event("joined", room)
            return sorted(self.session["rooms"])

    socketio_manage(sio, {"/f": MixinsFirst})
    client = sio.test_client(app, namespace="/f")
    assert client.emit("join", "x", callback=True) == [["/f_x"]]
    assert events(client) == [("joined", ["x"])]


def test_an_initialize_that_raises_refuses_every_attempt(app_sio):
    # gevent-socketio kept a namespace object only once every initialize had
    # returned: a check there refuses each connect, not just the first
    app, sio = app_sio
    made = []

    class Guarded(BaseNamespace):
        def initialize(self):
            made.append(self)
            if not self.session.get("user"):
                raise PermissionError("not logged in")

        def on_whoami(self):
            ran.append(self)

    ran = []
    socketio_manage(sio, {"/guarded": Guarded})
    client = sio.test_client(app)
    for _ in range(3):
        client.connect("/guarded")
        assert not client.is_connected("/guarded")
        client.emit("whoami", namespace="/guarded")
    assert len(made) == 3 and ran == []


def test_rooms_of_the_session_hold_when_a_namespace_is_joined_again(app_sio):
    # gevent-socketio found room members through session["rooms"], which a
    # namespace's leave kept: after a rejoin the client still gets the room
    app, sio = app_sio

    class Chat(BaseNamespace, RoomsMixin):
        def on_join(self, room):
            self.join(room)

        def on_say(self, room, text):
            self.emit_to_room(room, "said", text)

    socketio_manage(sio, {"/chat": Chat})
    x = sio.test_client(app, namespace="/chat")
    y = sio.test_client(app, namespace="/chat")
    x.emit("join", "main", namespace="/chat")
    y.emit("say", "main", "before", namespace="/chat")
    assert events(x, "/chat") == [("said", ["before"])]
    x.disconnect("/chat")
    x.connect("/chat")
    assert x.is_connected("/chat")
    x.get_received("/chat")
    y.emit("say", "main", "after", namespace="/chat")
    assert events(x, "/chat") == [("said", ["after"])]


def test_a_list_acl_can_be_extended_and_is_each_connections_own(app_sio):
    """gevent-socketio apps return a list from get_initial_acl: add_acl_method
    then opens a method for that connection only (a list has no ``add``,
    and a list kept as is would be shared by every connection of the class)."""
    app, sio = app_sio

    class Locked(BaseNamespace):
        ACL = ["recv_connect", "on_login"]

        def get_initial_acl(self):
            return self.ACL

        def on_login(self):
            self.add_acl_method("on_secret")
            return "in"

        def on_secret(self):
            return "secret"

    socketio_manage(sio, {"/locked": Locked})
    member = sio.test_client(app, namespace="/locked")
    stranger = sio.test_client(app, namespace="/locked")
    assert member.emit("login", callback=True) == ["in"]
    assert member.emit("secret", callback=True) == ["secret"]
    assert events(member) == []
    stranger.emit("secret")
    assert events(stranger) == [("error", ["method_access_denied",
                                           'You do not have access to method "on_secret"'])]
    assert Locked.ACL == ["recv_connect", "on_login"]


def test_a_connect_refused_by_recv_connect_is_tried_afresh_next_time(app_sio):
    """As in gevent-socketio, a refused connect leaves no namespace object
    behind: the client's next connect gets a new one, initialized again, whose
    recv_connect may accept it (a login in between, say)."""
    app, sio = app_sio
    made = []

    class Gate(BaseNamespace):
        def initialize(self):
            made.append(self)

        def recv_connect(self):
            return False if len(made) == 1 else None

    socketio_manage(sio, {"/gate": Gate})
    client = sio.test_client(app, namespace="/gate")
    assert not client.is_connected("/gate")
    client.connect("/gate")
    assert client.is_connected("/gate")
    assert len(made) == 2 and made[0] is not made[1]


def test_an_error_with_a_message_id_carries_it_on_the_wire(app_sio):
    """gevent-socketio's error(..., msg_id=N) sends the error event with that
    message id (``5:N:/ns:``), as client code answering a message expects."""
    app, sio = app_sio

    class Err(BaseNamespace):
        def on_bad(self):
            self.error("bad_thing", "went wrong", msg_id=7)

        def on_plain(self):
            self.error("plain_thing", "no id")

    socketio_manage(sio, {"/err": Err})
    client = sio.test_client(app, namespace="/err")
    server = app.extensions["sio09"].server
    wire = []
    send_to_session = server.send_to_session

    def recording(session, data, *args, **kwargs):
        wire.append(data)
        return send_to_session(session, data, *args, **kwargs)

    server.send_to_session = recording
    client.emit("bad")
    client.emit("plain")
    assert wire == ['5:7:/err:{"name":"error","args":["bad_thing","went wrong"]}',
                    '5::/err:{"name":"error","args":["plain_thing","no id"]}']
