"""The test client (``sio.test_client``): each feature of API.md's "Testing applications"."""

import collections
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from flask import Flask, request, session

from flask_sio09 import SocketIO, emit, join_room, leave_room, packet, rooms, send
from flask_sio09 import disconnect as sio_disconnect
from flask_sio09.extension import message_packet


@pytest.fixture
def make_app():
    """Factory for a fresh app and extension; their servers are shut down afterwards."""
    made = []

    def factory(**options):
        app = Flask(__name__)
        app.config["SECRET_KEY"] = "test-only"
        sio = SocketIO(app, **options)
        made.append(app)
        return app, sio

    yield factory
    for app in made:
        app.extensions["sio09"].server.shutdown()


def test_connect_runs_the_connect_handler_with_query_and_headers(make_app):
    app, sio = make_app()
    seen = {}

    @sio.on("connect", namespace="/chat")
    def on_connect(query):
        seen.update(query=query.to_dict(), agent=request.headers.get("X-Agent"),
                    cookie=request.cookies.get("flavour"), sid=request.sid)

    client = sio.test_client(app, namespace="/chat", query_string="token=ok&x=1",
                             headers={"X-Agent": "tests", "Cookie": "flavour=mint"})
    assert client.is_connected("/chat")
    assert client.is_connected("/")
    assert seen == {"query": {"token": "ok", "x": "1"}, "agent": "tests", "cookie": "mint",
                    "sid": client.sid}


@pytest.mark.parametrize("query_string", ["token=ok", "?token=ok", {"token": "ok"}])
def test_a_query_string_with_or_without_its_question_mark(make_app, query_string):
    """Flask-SocketIO's test client takes both forms (ported tests pass "?...")."""
    app, sio = make_app()
    seen = []

    @sio.on("connect", namespace="/chat")
    def on_connect(query):
        seen.append(query.to_dict())
        return query.get("token") == "ok"

    client = sio.test_client(app, namespace="/chat", query_string=query_string)
    assert client.is_connected("/chat")
    client.disconnect("/chat")
    client.connect("/chat", query_string=query_string)
    assert client.is_connected("/chat")
    assert seen == [{"token": "ok"}] * 2


def test_connect_without_a_namespace_joins_the_clients_own(make_app):
    """The client's namespace is the default of every method, connect too."""
    app, sio = make_app()
    client = sio.test_client(app, namespace="/chat")
    client.disconnect()
    assert not client.is_connected() and client.is_connected("/")
    client.connect()
    assert client.is_connected() and client.is_connected("/chat")
    client.disconnect("/")
    client.connect()  # a new session, with the client's namespace
    assert client.is_connected("/") and client.is_connected("/chat")


def test_flask_session_flows_in_from_a_flask_test_client(make_app):
    app, sio = make_app()

    @app.get("/login/<name>")
    def login(name):
        session["user"] = name
        return "ok"

    @sio.on("whoami")
    def whoami():
        return session.get("user")

    flask_client = app.test_client()
    flask_client.get("/login/ada")
    client = sio.test_client(app, flask_test_client=flask_client)
    assert client.emit("whoami", callback=True) == ["ada"]
    assert sio.test_client(app).emit("whoami", callback=True) == []  # no cookie, no user


def test_emit_with_callback_returns_the_ack_args(make_app):
    app, sio = make_app()

    @sio.on("add")
    def add(a, b):
        return a + b

    @sio.on("pair")
    def pair():
        return "woot", "wa"

    @sio.on("explicit")
    def explicit(x, ack=None):
        ack(x, "done")

    @sio.on("silent")
    def silent():
        pass

    Point = collections.namedtuple("Point", "x y")

    @sio.on("point")
    def point():
        return Point(1, 2)  # a tuple subclass: spread, as a tuple is

    @sio.on("listed")
    def listed():
        return [1, 2]  # a list is one argument

    client = sio.test_client(app)
    assert client.emit("point", callback=True) == [1, 2]
    assert client.emit("listed", callback=True) == [[1, 2]]
    assert client.emit("add", 2, 3, callback=True) == [5]
    assert client.emit("pair", callback=True) == ["woot", "wa"]
    assert client.emit("explicit", {"k": [1]}, callback=True) == [{"k": [1]}, "done"]
    assert client.emit("silent", callback=True) == []
    assert client.emit("add", 1, 1) is None  # no ack asked for


def test_a_callable_callback_gets_an_ack_answered_later_from_another_thread(make_app):
    app, sio = make_app()
    kept = []

    @sio.on("slow")
    def slow(ack=None):
        kept.append(ack)

    client = sio.test_client(app)
    got = []
    answered = threading.Event()

    def on_ack(*args):
        got.append(args)
        answered.set()

    assert client.emit("slow", callback=on_ack) is None
    assert got == [] and len(kept) == 1
    threading.Thread(target=kept[0], args=("late",)).start()
    assert answered.wait(10)
    assert got == [("late",)]


def test_send_message_and_json_and_receive_them(make_app):
    app, sio = make_app()
    seen = []

    @sio.on("message")
    def on_message(data):
        seen.append(("message", data))
        send(data.upper())

    @sio.on("json")
    def on_json(data):
        seen.append(("json", data))
        send({"echo": data}, json=True)

    client = sio.test_client(app)
    client.send("hi ✓ 😀")
    client.send({"a": [1, 2]}, json=True)
    assert seen == [("message", "hi ✓ 😀"), ("json", {"a": [1, 2]})]
    assert client.get_received() == [
        {"name": "message", "args": ["HI ✓ 😀"], "namespace": "/"},
        {"name": "json", "args": [{"echo": {"a": [1, 2]}}], "namespace": "/"},
    ]


def test_send_of_data_that_is_not_a_str_goes_as_json(make_app):
    """A type 3 message carries text only; a dict, list, number, bool or None
    goes as a JSON message, whose decoded value a 0.9 client hands to its
    ``message`` listeners (Python's repr on the wire helped no client)."""
    app, sio = make_app()

    @sio.on("message")
    def on_message(data):
        for value in ({"a": 1}, ["x", 2], 5, True, None):
            send(value)

    client = sio.test_client(app)
    client.send("go")
    assert client.get_received() == [
        {"name": "json", "args": [value], "namespace": "/"}
        for value in ({"a": 1}, ["x", 2], 5, True, None)]
    assert [packet.encode({**message_packet(v, json=False), "endpoint": ""}) for v in
            ("text", {"a": 1}, None)] == ["3:::text", '4:::{"a":1}', "4:::null"]


def test_sio_event_registers_a_handler_named_after_the_function(make_app):
    app, sio = make_app()

    @sio.event
    def shout(text):
        return text.upper()

    @sio.event(namespace="/chat")
    def whisper(text):
        return text.lower()

    assert shout("a") == "A"  # the function itself is returned
    assert sio.test_client(app).emit("shout", "hi", callback=True) == ["HI"]
    chat = sio.test_client(app, namespace="/chat")
    assert chat.emit("whisper", "HI", callback=True) == ["hi"]
    with pytest.raises(TypeError, match="@sio.on"):
        sio.event("name")


def test_send_with_callback_returns_the_handlers_answer(make_app):
    app, sio = make_app()

    @sio.on("message")
    def on_message(data):
        return len(data)

    assert sio.test_client(app).send("four", callback=True) == [4]


def test_get_received_is_per_namespace_and_empties(make_app):
    app, sio = make_app()

    @sio.on("go")
    def go():
        emit("one", 1)
        emit("two", 2, namespace="/other")

    client = sio.test_client(app)
    client.connect("/other")
    client.emit("go")
    assert client.get_received("/other") == [{"name": "two", "args": [2], "namespace": "/other"}]
    assert client.get_received("/") == [{"name": "one", "args": [1], "namespace": "/"}]
    assert client.get_received("/") == []
    assert client.get_received("/other") == []


def test_the_default_namespace_is_the_clients(make_app):
    app, sio = make_app()

    @sio.on("ping", namespace="/chat")
    def ping(x):
        emit("pong", x)
        return x

    client = sio.test_client(app, namespace="/chat")
    assert client.emit("ping", 7, callback=True) == [7]
    assert client.get_received() == [{"name": "pong", "args": [7], "namespace": "/chat"}]


def test_server_callbacks_are_answered_by_registered_handlers(make_app):
    app, sio = make_app()
    answers = []

    @sio.on("start")
    def start():
        emit("question", 20, callback=lambda *a: answers.append(("question", a)))
        emit("unregistered", callback=lambda *a: answers.append(("unregistered", a)))

    client = sio.test_client(app)
    client.on("question", lambda n: (n * 2, "ok"))
    client.emit("start")
    assert answers == [("question", (40, "ok")), ("unregistered", ())]
    # the questions were received like any event
    assert [r["name"] for r in client.get_received()] == ["question", "unregistered"]


def test_server_callback_from_outside_a_handler(make_app):
    app, sio = make_app()
    client = sio.test_client(app)

    @client.on("ask")
    def ask(x):
        return x + 1

    got = []
    sio.emit("ask", 41, to=client.sid, callback=lambda *a: got.append(a))
    assert got == [(42,)]


def test_a_server_send_with_callback_is_answered_by_itself(make_app):
    # a plain ack, which the client answers as a browser does, with no args
    app, sio = make_app()
    client = sio.test_client(app)
    got = []
    sio.send("hello", to=client.sid, callback=lambda *a: got.append(("message", a)))
    sio.send({"a": 1}, json=True, to=client.sid, callback=lambda *a: got.append(("json", a)))
    assert got == [("message", ()), ("json", ())]
    assert [r["name"] for r in client.get_received()] == ["message", "json"]


def test_disconnect_in_the_global_connect_handler(make_app):
    app, sio = make_app()
    left = []

    @sio.on("connect")
    def connect():
        emit("before", 1)
        sio_disconnect()

    @sio.on("disconnect")
    def gone():
        left.append(request.sid)

    client = sio.test_client(app)
    assert not client.is_connected()
    assert client.get_received() == [{"name": "before", "args": [1], "namespace": "/"}]
    assert left == [client.sid]


def test_a_namespace_left_then_used_again(make_app):
    # as a browser does: after leaving, an emit there joins it again (the
    # connect handler runs again); connect() then answers at once
    app, sio = make_app()
    joins = []

    @sio.on("connect", namespace="/ns")
    def joined():
        joins.append(request.sid)

    @sio.on("echo", namespace="/ns")
    def echo(x):
        return x

    client = sio.test_client(app, namespace="/ns")
    client.disconnect("/ns")
    assert not client.is_connected("/ns")
    assert client.emit("echo", "b", namespace="/ns", callback=True) == ["b"]
    assert len(joins) == 2
    client.connect("/ns")
    assert client.is_connected("/ns") and len(joins) == 2


def test_rooms_and_broadcasts_between_two_clients(make_app):
    app, sio = make_app()

    @sio.on("join")
    def on_join(room):
        join_room(room)

    @sio.on("say")
    def say(room, text):
        emit("said", text, to=room)

    @sio.on("shout")
    def shout(text):
        emit("shouted", text, broadcast=True, include_self=False)

    alice, bob, carol = (sio.test_client(app) for _ in range(3))
    alice.emit("join", "r")
    bob.emit("join", "r")
    carol.emit("say", "r", "hello room")
    assert alice.get_received() == [{"name": "said", "args": ["hello room"], "namespace": "/"}]
    assert bob.get_received() == [{"name": "said", "args": ["hello room"], "namespace": "/"}]
    assert carol.get_received() == []
    alice.emit("shout", "hey")
    assert alice.get_received() == []
    assert bob.get_received() == carol.get_received() == [
        {"name": "shouted", "args": ["hey"], "namespace": "/"}]


def test_join_and_leave_another_clients_room_by_sid(make_app):
    """The module-level helpers act on the client named by ``sid=``, not on
    the one whose handler calls them (global namespace)."""
    app, sio = make_app()

    @sio.on("put")
    def put(sid, room):
        join_room(room, sid=sid)
        return sorted(rooms(sid=sid))

    @sio.on("take")
    def take(sid, room):
        leave_room(room, sid=sid)
        return sorted(rooms(sid=sid))

    @sio.on("say")
    def say(room, text):
        emit("said", text, to=room)

    admin, member = sio.test_client(app), sio.test_client(app)
    assert admin.emit("put", member.sid, "r", callback=True) == [sorted([member.sid, "r"])]
    admin.emit("say", "r", "in")
    assert member.get_received() == [{"name": "said", "args": ["in"], "namespace": "/"}]
    assert admin.get_received() == []
    admin.emit("put", admin.sid, "r")
    assert admin.emit("take", member.sid, "r", callback=True) == [[member.sid]]
    admin.emit("say", "r", "out")
    assert member.get_received() == []
    assert admin.get_received() == [{"name": "said", "args": ["out"], "namespace": "/"}]


def test_refused_connections(make_app):
    app, sio = make_app()

    @sio.on("connect", namespace="/private")
    def private(query):
        return query.get("token") == "ok"

    @sio.on("connect")
    def global_connect(query):
        return query.get("ban") != "1"

    assert not sio.test_client(app, namespace="/private").is_connected("/private")
    allowed = sio.test_client(app, namespace="/private", query_string="token=ok")
    assert allowed.is_connected("/private")
    banned = sio.test_client(app, query_string="ban=1")
    assert not banned.is_connected("/")
    with pytest.raises(RuntimeError):
        banned.emit("anything")


def test_refused_handshake(make_app):
    app, sio = make_app()

    @sio.on_handshake
    def allow():
        return request.headers.get("X-Key") == "k"

    refused = sio.test_client(app)
    assert not refused.is_connected()
    assert refused.sid is None
    assert refused.handshake_error == (403, "handshake unauthorized")
    assert sio.test_client(app, headers={"X-Key": "k"}).is_connected()


def test_disconnect_a_namespace_then_the_session(make_app):
    app, sio = make_app()
    events = []
    sio.on_event("disconnect", lambda: events.append(("disconnect", request.namespace)),
                 namespace="/chat")
    sio.on_event("disconnect", lambda: events.append(("disconnect", request.namespace)))

    client = sio.test_client(app, namespace="/chat")
    client.disconnect("/chat")
    assert events == [("disconnect", "/chat")]
    assert not client.is_connected("/chat") and client.is_connected("/")
    client.connect("/chat")
    assert client.is_connected("/chat")
    client.disconnect("/")
    assert not client.is_connected("/") and not client.is_connected("/chat")
    assert events == [("disconnect", "/chat"), ("disconnect", "/chat"), ("disconnect", "")]
    # a new connect after the end starts a new session
    old_sid = client.sid
    client.connect()
    assert client.is_connected("/") and client.sid != old_sid


@pytest.mark.parametrize("how", ["client leaves the namespace", "client ends the session",
                                 "server disconnects the namespace",
                                 "server ends the session"])
def test_a_disconnect_handler_still_sees_the_clients_rooms(make_app, how):
    """As in Flask-SocketIO: ``rooms()`` in the disconnect handler lists the
    client's rooms, and an emit to them reaches the others (not the client
    that left); once the handler has run, the client is in no room."""
    app, sio = make_app()
    seen = []

    @sio.on("join", namespace="/chat")
    def on_join(room):
        join_room(room)

    @sio.on("kick", namespace="/chat")
    def kick(sid, whole_session):
        sio_disconnect(sid, namespace="/" if whole_session else "/chat")

    @sio.on("disconnect", namespace="/chat")
    def on_disconnect():
        seen.append(sorted(rooms()))
        for room in rooms():
            if room != request.sid:
                emit("left", request.sid, to=room)
        emit("to-myself", to=request.sid)

    leaving = sio.test_client(app, namespace="/chat")
    staying = sio.test_client(app, namespace="/chat")
    leaving.emit("join", "lobby", namespace="/chat")
    staying.emit("join", "lobby", namespace="/chat")
    sid = leaving.sid
    if how == "client leaves the namespace":
        leaving.disconnect("/chat")
    elif how == "client ends the session":
        leaving.disconnect("/")
    else:
        staying.emit("kick", sid, how == "server ends the session", namespace="/chat")
    assert seen == [sorted([sid, "lobby"])]
    assert staying.get_received("/chat") == [
        {"name": "left", "args": [sid], "namespace": "/chat"}]
    assert not any(p["name"] == "to-myself" for p in leaving.get_received("/chat"))
    server = app.extensions["sio09"].server
    assert server.manager.recipients("/chat", "lobby") == [staying.sid]
    assert server.manager.recipients("/chat", sid) == []


def test_server_side_disconnect_is_seen_by_the_client(make_app):
    app, sio = make_app()

    @sio.on("leave", namespace="/chat")
    def leave():
        sio_disconnect()

    client = sio.test_client(app, namespace="/chat")
    client.emit("leave")
    assert not client.is_connected("/chat")
    assert client.is_connected("/")


def test_send_packet_sends_a_raw_packet_dict(make_app):
    app, sio = make_app()
    errors = []
    sio.on_event("error", lambda reason, advice: errors.append((reason, advice)))
    client = sio.test_client(app)
    client.send_packet({"type": "error", "reason": "unauthorized", "advice": "reconnect"})
    assert errors == [("unauthorized", "reconnect")]


def test_what_the_client_reads_went_through_the_session_outbox_and_the_codec(make_app):
    app, sio = make_app()
    client = sio.test_client(app)
    session = client.server.get_session(client.sid)
    # a packet queued on the session (as any emit does) reaches get_received,
    # decoded by the codec: here an astral-plane string and a JSON line separator
    session.send(packet.encode({"type": "event", "name": "raw", "args": ["😀\u2028"],
                                "endpoint": ""}))
    assert client.get_received() == [{"name": "raw", "args": ["😀\u2028"], "namespace": "/"}]
    assert not session.has_outbox()


def test_a_client_event_named_connect_does_not_run_the_connect_handler(make_app):
    # "connect" names the connect handler: a client may not run it again,
    # with arguments of its choosing, by emitting an event of that name
    app, sio = make_app()
    connects = []
    sio.on("connect")(lambda *args: connects.append(args))
    sio.on("connect", namespace="/chat")(lambda *args: connects.append(("/chat",) + args))
    client = sio.test_client(app)
    client.connect("/chat")
    assert len(connects) == 2
    assert client.emit("connect", "forged", callback=True) is None
    assert client.emit("connect", "forged", callback=True, namespace="/chat") is None
    assert len(connects) == 2
    assert client.is_connected() and client.is_connected("/chat")


@pytest.mark.parametrize("namespace", ["/a:b", "chat", ":"])
def test_a_namespace_that_cannot_be_on_the_wire_is_refused_at_once(make_app, namespace):
    # a ':' ends the endpoint in a 0.9 packet, and an endpoint starts with '/'
    app, sio = make_app()
    with pytest.raises(ValueError, match="must start with '/' and contain no ':'"):
        sio.on("x", namespace=namespace)
    with pytest.raises(ValueError, match="must start with '/' and contain no ':'"):
        sio.on_event("x", lambda: None, namespace=namespace)
    with pytest.raises(ValueError, match="must start with '/' and contain no ':'"):
        sio.emit("x", namespace=namespace)


def test_a_refusal_by_the_global_connect_handler_leaves_a_client_not_connected(make_app):
    # the usual login check (refuse in the global connect handler): a test
    # client made with namespace= reports it, as for a refused handshake
    app, sio = make_app()
    sio.on("connect")(lambda: False)
    client = sio.test_client(app, namespace="/chat")
    assert not client.is_connected()
    assert not client.is_connected("/chat")


def test_a_handler_raising_systemexit_reaches_the_test_and_the_client_goes_on(make_app):
    """The test client runs handlers on the test's thread: SystemExit (and a
    ^C) reach the test, and the client's later handlers still run."""
    app, sio = make_app()

    @sio.on("exit")
    def leave():
        raise SystemExit(2)

    @sio.on("echo")
    def echo(x):
        return x

    client = sio.test_client(app)
    with pytest.raises(SystemExit):
        client.emit("exit")
    assert client.emit("echo", 5, callback=True) == [5]


# -- Flask-SocketIO 5's ways, kept for a port ---------------------------------

def test_room_is_the_older_name_of_to_in_every_emit_and_send(make_app):
    """Flask-SocketIO 5 still takes ``room=``: a port runs unchanged."""
    app, sio = make_app()

    @sio.on("join")
    def on_join(room):
        join_room(room)

    @sio.on("helpers")
    def helpers(room):
        emit("e", "helper", room=room)
        send("m", room=room)

    @sio.on("server")
    def server_side(room):
        sio.emit("e", "server", room=room)
        sio.send("m2", room=room)

    @sio.on("both")
    def both(room):
        emit("e", "x", to=room, room="elsewhere")

    alice, bob = sio.test_client(app), sio.test_client(app)
    alice.emit("join", "r")
    bob.emit("helpers", "r")
    bob.emit("server", "r")
    assert alice.get_received() == [
        {"name": "e", "args": ["helper"], "namespace": "/"},
        {"name": "message", "args": ["m"], "namespace": "/"},
        {"name": "e", "args": ["server"], "namespace": "/"},
        {"name": "message", "args": ["m2"], "namespace": "/"}]
    assert bob.get_received() == []  # (not in the room)
    with pytest.raises(TypeError, match="to= or room="):
        sio.emit("e", to="a", room="b")
    errors = []
    sio.on_error_default(errors.append)
    bob.emit("both", "r")
    assert [type(e) for e in errors] == [TypeError]


def test_skip_sid_in_a_handlers_emit_and_include_self_in_the_servers(make_app):
    app, sio = make_app()

    @sio.on("who")
    def who():
        return request.sid

    @sio.on("skip")
    def skip(other):
        emit("e", "a", broadcast=True, skip_sid=other)
        send("m", broadcast=True, include_self=False, skip_sid=[other])

    @sio.on("others")
    def others():
        sio.emit("e", "b", include_self=False)
        sio.send("m", include_self=False, skip_sid="nobody")

    alice, bob, carol = (sio.test_client(app) for _ in range(3))
    carol_sid = carol.emit("who", callback=True)[0]
    alice.emit("skip", carol_sid)
    assert alice.get_received() == [{"name": "e", "args": ["a"], "namespace": "/"}]
    assert bob.get_received() == [{"name": "e", "args": ["a"], "namespace": "/"},
                                  {"name": "message", "args": ["m"], "namespace": "/"}]
    assert carol.get_received() == []
    bob.emit("others")
    assert bob.get_received() == []
    for client in (alice, carol):
        assert client.get_received() == [{"name": "e", "args": ["b"], "namespace": "/"},
                                          {"name": "message", "args": ["m"], "namespace": "/"}]
    # outside a handler no client sent anything: there is no one to leave out
    with app.app_context(), pytest.raises(RuntimeError, match="skip_sid=sid"):
        sio.emit("e", include_self=False)


def test_connection_refused_error_refuses_quietly_with_its_message_logged(make_app, caplog):
    """Flask-SocketIO 5 refuses a client with ``raise ConnectionRefusedError``:
    no error handler, no traceback; the 0.9 client is told ``unauthorized``."""
    from flask_sio09 import ConnectionRefusedError as Refused

    app, sio = make_app()
    errors = []
    sio.on_error_default(errors.append)

    @sio.on("connect")
    def connect(query):
        if query.get("token") != "ok":
            raise Refused("unauthorized!", {"hint": "log in"})

    @sio.on("later")
    def later():
        raise Refused("not in a connect handler")

    caplog.set_level("INFO", logger="flask_sio09")
    refused = sio.test_client(app, query_string="token=no")
    assert not refused.is_connected()
    assert errors == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in caplog.records if "refused by its connect handler" in
            r.getMessage()] == [f"session {refused.sid}: the connection refused by its connect "
                                "handler: unauthorized!"]
    allowed = sio.test_client(app, query_string="token=ok")
    assert allowed.is_connected()
    allowed.emit("later")  # anywhere else it is an error like any other
    assert [str(e) for e in errors] == ["not in a connect handler"]
    assert Refused("a", 1).error_args == {"message": "a", "data": 1}
    assert Refused().error_args == {"message": "Connection rejected by server"}


def test_a_catch_all_handler_is_warned_about_at_registration(make_app, caplog):
    app, sio = make_app()

    @sio.on("*")
    def everything(*args):
        return "caught"

    assert any(r.levelname == "WARNING" and "no catch-all" in r.getMessage()
               for r in caplog.records)
    client = sio.test_client(app)
    assert client.emit("*", callback=True) == ["caught"]  # (an event named "*": it runs)


def test_a_process_that_exits_with_a_test_client_connected_runs_no_disconnect_handler():
    """A test run that ends with its test clients still connected exits at
    once and quietly: the server has no remote client to tell at the exit,
    so no disconnect handler runs then (they did, and the exit waited for
    them and warned about sessions left behind)."""
    import flask_sio09

    script = textwrap.dedent("""
        from flask import Flask
        from flask_sio09 import SocketIO

        app = Flask(__name__)
        sio = SocketIO(app)

        @sio.on("disconnect")
        def gone():
            print("disconnect handler ran", flush=True)

        client = sio.test_client(app)
        assert client.is_connected()
        print("connected", flush=True)
    """)
    # the package under test, wherever it is imported from
    root = os.path.dirname(os.path.dirname(os.path.abspath(flask_sio09.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "connected\n", done.stdout
    assert "disconnect handlers" not in done.stderr, done.stderr
