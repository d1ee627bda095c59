"""Class-based namespaces (``flask_sio09.Namespace``), driven through the test client."""

import pytest
from flask import Flask, request, session

from flask_sio09 import Namespace, SocketIO, emit


@pytest.fixture
def app_sio():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test-only"
    sio = SocketIO(app)
    yield app, sio
    app.extensions["sio09"].server.shutdown()


class Chat(Namespace):
    def __init__(self, namespace="/chat"):
        super().__init__(namespace)
        self.calls = []

    def on_connect(self, query):
        self.calls.append(("connect", query.get("token"), request.sid, request.namespace))
        return query.get("token") != "bad"

    def on_disconnect(self):
        self.calls.append(("disconnect", request.sid))

    def on_add(self, a, b):
        return a + b

    def on_pair(self):
        return "woot", "wa"

    def on_explicit(self, x, ack=None):
        self.calls.append(("explicit", ack is not None))
        if ack:
            ack("got", x)

    def on_user_message(self, text):
        self.emit("echo", text)

    def on_message(self, data):
        self.calls.append(("message", data))
        return data.upper()

    def on_json(self, data):
        self.calls.append(("json", data))

    def on_error(self, reason, advice):
        self.calls.append(("error packet", reason, advice))


def test_on_methods_with_ack_injection_and_return_value_acks(app_sio):
    app, sio = app_sio
    chat = Chat()
    sio.on_namespace(chat)
    client = sio.test_client(app, namespace="/chat", query_string="token=ok")
    assert client.emit("add", 2, 3, callback=True) == [5]
    assert client.emit("pair", callback=True) == ["woot", "wa"]
    assert client.emit("explicit", 9, callback=True) == ["got", 9]
    client.emit("explicit", 1)  # no ack asked for: nothing injected
    assert [c for c in chat.calls if c[0] == "explicit"] == [("explicit", True), ("explicit", False)]


def test_on_connect_gets_the_query_and_false_refuses(app_sio):
    app, sio = app_sio
    chat = Chat()
    sio.on_namespace(chat)
    ok = sio.test_client(app, namespace="/chat", query_string="token=ok")
    bad = sio.test_client(app, namespace="/chat", query_string="token=bad")
    assert ok.is_connected("/chat") and not bad.is_connected("/chat")
    assert chat.calls == [("connect", "ok", ok.sid, "/chat"), ("connect", "bad", bad.sid, "/chat")]


def test_on_connect_without_a_query_parameter(app_sio):
    app, sio = app_sio
    seen = []

    class NoQuery(Namespace):
        def on_connect(self):
            seen.append(request.sid)

    sio.on_namespace(NoQuery("/nq"))
    client = sio.test_client(app, namespace="/nq", query_string="a=1")
    assert client.is_connected("/nq") and seen == [client.sid]


def test_on_disconnect_runs_for_client_and_server_disconnects(app_sio):
    app, sio = app_sio
    chat = Chat()
    sio.on_namespace(chat)
    a = sio.test_client(app, namespace="/chat")
    b = sio.test_client(app, namespace="/chat")
    a.disconnect("/chat")
    chat.disconnect(sid=b.sid)  # outside a handler: the sid is given
    assert [c for c in chat.calls if c[0] == "disconnect"] == [("disconnect", a.sid),
                                                              ("disconnect", b.sid)]
    assert not b.is_connected("/chat") and b.is_connected("/")


def test_event_names_with_spaces_and_message_and_json_packets(app_sio):
    app, sio = app_sio
    chat = Chat()
    sio.on_namespace(chat)
    client = sio.test_client(app, namespace="/chat")
    client.emit("user message", "hi there")
    assert client.get_received() == [{"name": "echo", "args": ["hi there"], "namespace": "/chat"}]
    assert client.send("shout", callback=True) == ["SHOUT"]
    client.send({"k": 1}, json=True)
    assert ("message", "shout") in chat.calls and ("json", {"k": 1}) in chat.calls


def test_error_packets_reach_on_error(app_sio):
    app, sio = app_sio
    chat = Chat()
    sio.on_namespace(chat)
    client = sio.test_client(app, namespace="/chat")
    client.send_packet({"type": "error", "reason": "unauthorized", "advice": "reconnect"})
    assert ("error packet", "unauthorized", "reconnect") in chat.calls


def test_client_events_named_after_lifecycle_methods_are_not_dispatched(app_sio):
    app, sio = app_sio
    chat = Chat()
    sio.on_namespace(chat)
    client = sio.test_client(app, namespace="/chat")
    before = list(chat.calls)
    client.emit("connect", "x")
    client.emit("error", "x", "y")
    assert chat.calls == before


def test_unknown_events_are_ignored(app_sio):
    app, sio = app_sio
    sio.on_namespace(Chat())
    client = sio.test_client(app, namespace="/chat")
    assert client.emit("nothing here", callback=True) == []
    assert client.emit("bad-name!", callback=True) == []
    assert client.is_connected("/chat")


def test_bound_helpers_default_to_the_namespace_and_the_current_client(app_sio):
    app, sio = app_sio

    class Rooms(Namespace):
        def on_join(self, room):
            self.join_room(room)
            return self.rooms()

        def on_leave(self, room):
            self.leave_room(room)
            return self.rooms()

        def on_tell(self, room, text):
            self.emit("told", text, to=room)
            self.send("sent " + text, to=room)

        def on_close(self, room):
            self.close_room(room)

        def on_me(self):
            self.emit("just you")

        def on_everyone(self):
            self.emit("all of you", broadcast=True, include_self=False)

        def on_bye(self):
            self.disconnect()

    sio.on_namespace(Rooms("/r"))
    a = sio.test_client(app, namespace="/r")
    b = sio.test_client(app, namespace="/r")
    assert sorted(a.emit("join", "red", callback=True)[0]) == sorted([a.sid, "red"])
    b.emit("join", "red")
    b.emit("tell", "red", "hello")
    expected = [{"name": "told", "args": ["hello"], "namespace": "/r"},
                {"name": "message", "args": ["sent hello"], "namespace": "/r"}]
    assert a.get_received() == expected and b.get_received() == expected
    assert a.emit("leave", "red", callback=True) == [[a.sid]]
    b.emit("close", "red")
    a.emit("tell", "red", "nobody")
    assert a.get_received() == [] and b.get_received() == []
    a.emit("me")
    b.emit("everyone")
    assert a.get_received() == [{"name": "just you", "args": [], "namespace": "/r"},
                                {"name": "all of you", "args": [], "namespace": "/r"}]
    assert b.get_received() == []
    b.emit("bye")
    assert not b.is_connected("/r") and b.is_connected("/")


def test_bound_helpers_outside_a_handler(app_sio):
    app, sio = app_sio
    ns = Namespace("/out")
    sio.on_namespace(ns)
    a = sio.test_client(app, namespace="/out")
    b = sio.test_client(app, namespace="/out")
    ns.join_room("blue", sid=a.sid)
    assert sorted(ns.rooms(sid=a.sid)) == sorted([a.sid, "blue"])
    ns.emit("to blue", 1, to="blue")
    ns.emit("to all", 2)
    ns.send("hello", to=b.sid)
    assert a.get_received() == [{"name": "to blue", "args": [1], "namespace": "/out"},
                                {"name": "to all", "args": [2], "namespace": "/out"}]
    assert b.get_received() == [{"name": "to all", "args": [2], "namespace": "/out"},
                                {"name": "message", "args": ["hello"], "namespace": "/out"}]
    ns.leave_room("blue", sid=a.sid)
    assert ns.rooms(sid=a.sid) == [a.sid]
    with pytest.raises(RuntimeError):
        ns.join_room("x")  # no current client outside a handler


def test_bound_helpers_take_flask_socketio_5s_room_and_skip_sid(app_sio):
    app, sio = app_sio

    class Fs5(Namespace):
        def on_join(self, room):
            self.join_room(room)

        def on_tell(self, room, skipped):
            self.emit("told", room, room=room, skip_sid=skipped)
            self.send("sent", room=room, include_self=False)

    ns = Fs5("/fs5")
    sio.on_namespace(ns)
    a, b, c = (sio.test_client(app, namespace="/fs5") for _ in range(3))
    for client in (a, b, c):
        client.emit("join", "red")
    c.emit("tell", "red", b.sid)
    assert a.get_received() == [{"name": "told", "args": ["red"], "namespace": "/fs5"},
                                {"name": "message", "args": ["sent"], "namespace": "/fs5"}]
    assert b.get_received() == [{"name": "message", "args": ["sent"], "namespace": "/fs5"}]
    assert c.get_received() == [{"name": "told", "args": ["red"], "namespace": "/fs5"}]
    # outside a handler: include_self has no one to leave out, as before
    ns.emit("out", room="red", skip_sid=a.sid, include_self=False)
    ns.send("out", room="red", skip_sid=[a.sid, b.sid])
    assert a.get_received() == []
    assert b.get_received() == [{"name": "out", "args": [], "namespace": "/fs5"}]
    assert c.get_received() == [{"name": "out", "args": [], "namespace": "/fs5"},
                                {"name": "message", "args": ["out"], "namespace": "/fs5"}]


def test_process_packet_override_sees_the_packet_dicts_and_may_call_super(app_sio):
    app, sio = app_sio
    seen = []

    class Spy(Namespace):
        def process_packet(self, packet):
            seen.append(dict(packet))
            return super().process_packet(packet)

        def on_add(self, a, b):
            return a + b

    sio.on_namespace(Spy("/spy"))
    client = sio.test_client(app, namespace="/spy", query_string="q=1")
    assert client.emit("add", 1, 2, callback=True) == [3]
    client.emit("add", 1, 1)
    client.send("text")
    client.send([1], json=True)
    client.send_packet({"type": "error", "reason": "unauthorized", "advice": ""})
    client.disconnect("/spy")
    assert seen[0] == {"type": "connect", "endpoint": "/spy", "qs": "?q=1"}
    assert seen[1]["type"] == "event" and seen[1]["name"] == "add"
    assert seen[1]["args"] == [1, 2] and seen[1]["ack"] == "data" and isinstance(seen[1]["id"], int)
    assert seen[2] == {"type": "event", "name": "add", "args": [1, 1], "endpoint": "/spy"}
    assert seen[3] == {"type": "message", "data": "text", "endpoint": "/spy"}
    assert seen[4] == {"type": "json", "data": [1], "endpoint": "/spy"}
    assert seen[5] == {"type": "error", "reason": "unauthorized", "advice": "", "endpoint": "/spy"}
    assert seen[6] == {"type": "disconnect", "endpoint": "/spy"}


def test_process_packet_override_can_answer_the_ack_itself(app_sio):
    app, sio = app_sio

    class Manual(Namespace):
        def process_packet(self, packet):
            if packet["type"] == "event":
                ack = self.take_ack()
                if ack:
                    ack("manual", packet["name"])
                return "ignored once the ack was taken"
            return super().process_packet(packet)

    sio.on_namespace(Manual("/m"))
    client = sio.test_client(app, namespace="/m")
    assert client.emit("anything", callback=True) == ["manual", "anything"]


def test_decorators_and_a_class_serve_different_namespaces_of_one_app(app_sio):
    app, sio = app_sio
    sio.on_namespace(Chat())

    @sio.on("add")
    def add(a, b):
        return ["decorated", a + b]

    @sio.on("add", namespace="/chat")
    def shadowed(a, b):  # the class serves /chat, so this never runs
        return "shadowed"

    client = sio.test_client(app, namespace="/chat")
    assert client.emit("add", 1, 2, callback=True, namespace="/chat") == [3]
    assert client.emit("add", 1, 2, callback=True, namespace="/") == [["decorated", 3]]


def test_the_global_namespace_can_be_a_class(app_sio):
    app, sio = app_sio

    class Global(Namespace):
        def on_connect(self):
            emit("hello", request.namespace)

        def on_who(self):
            return request.sid

    sio.on_namespace(Global("/"))
    client = sio.test_client(app)
    assert client.get_received() == [{"name": "hello", "args": [""], "namespace": "/"}]
    assert client.emit("who", callback=True) == [client.sid]


def test_flask_session_and_request_inside_methods(app_sio):
    app, sio = app_sio

    @app.get("/login")
    def login():
        session["user"] = "grace"
        return "ok"

    class Who(Namespace):
        def on_who(self):
            session["seen"] = session.get("seen", 0) + 1
            return session["user"], session["seen"], request.event["name"]

    sio.on_namespace(Who("/who"))
    flask_client = app.test_client()
    flask_client.get("/login")
    client = sio.test_client(app, namespace="/who", flask_test_client=flask_client)
    assert client.emit("who", callback=True) == ["grace", 1, "who"]
    assert client.emit("who", callback=True) == ["grace", 2, "who"]  # kept per connection


def test_on_namespace_takes_namespace_objects_only(app_sio):
    _, sio = app_sio
    with pytest.raises(TypeError):
        sio.on_namespace(Chat)  # the class, not an instance
    with pytest.raises(ValueError):
        Namespace("no-slash")


def test_helpers_of_an_unregistered_namespace_explain(app_sio):
    with pytest.raises(RuntimeError, match="on_namespace"):
        Namespace("/x").emit("ev")


def test_a_namespace_emit_from_a_flask_view_reaches_every_client(app_sio):
    # A view (an HTTP request, no Socket.IO client behind it) that calls
    # Namespace.emit broadcasts, as outside any request: the request context
    # alone must not make it look like a handler of some client.
    app, sio = app_sio
    ns = Namespace("/news")
    sio.on_namespace(ns)

    @app.route("/publish")
    def publish():
        ns.emit("news", "from a view")
        ns.send("sent from a view")
        return "ok"

    a = sio.test_client(app, namespace="/news")
    b = sio.test_client(app, namespace="/news")
    response = app.test_client().get("/publish")
    assert response.status_code == 200, response.get_data(as_text=True)
    expected = [{"name": "news", "args": ["from a view"], "namespace": "/news"},
                {"name": "message", "args": ["sent from a view"], "namespace": "/news"}]
    assert a.get_received() == expected
    assert b.get_received() == expected
