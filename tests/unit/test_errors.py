"""Handler exceptions, error handlers, client error packets and disconnect() inside handlers."""

import logging

import pytest
from flask import Flask, request

from flask_sio09 import Namespace, SocketIO, disconnect, emit
from flask_sio09.server import Options, Server


@pytest.fixture
def app_sio():
    app = Flask(__name__)
    sio = SocketIO(app)
    yield app, sio
    app.extensions["sio09"].server.shutdown()


def test_namespace_error_handler_gets_the_exception_in_the_request_context(app_sio):
    app, sio = app_sio
    caught = []

    @sio.on("fail", namespace="/chat")
    def fail(x):
        raise ValueError(f"bad {x}")

    @sio.on_error("/chat")
    def chat_error(exc):
        caught.append((type(exc).__name__, str(exc), request.sid, request.event["name"]))
        emit("oops", str(exc))

    client = sio.test_client(app, namespace="/chat")
    client.emit("fail", 1)
    assert caught == [("ValueError", "bad 1", client.sid, "fail")]
    assert client.get_received() == [{"name": "oops", "args": ["bad 1"], "namespace": "/chat"}]
    assert client.is_connected("/chat")


def test_default_error_handler_serves_namespaces_without_their_own(app_sio):
    app, sio = app_sio
    own, default = [], []

    @sio.on("fail")
    def fail_global():
        raise KeyError("global")

    @sio.on("fail", namespace="/a")
    def fail_a():
        raise KeyError("a")

    @sio.on("fail", namespace="/b")
    def fail_b():
        raise KeyError("b")

    sio.on_error("/a")(lambda exc: own.append(exc.args[0]))
    sio.on_error_default(lambda exc: default.append((request.namespace, exc.args[0])))
    client = sio.test_client(app)
    client.connect("/a")
    client.connect("/b")
    for ns in ("/", "/a", "/b"):
        client.emit("fail", namespace=ns)
    assert own == ["a"]
    assert default == [("", "global"), ("/b", "b")]


def test_error_handler_return_value_answers_the_ack(app_sio):
    app, sio = app_sio

    @sio.on("fail")
    def fail():
        raise RuntimeError("no")

    sio.on_error_default(lambda exc: ("error", str(exc)))
    assert sio.test_client(app).emit("fail", callback=True) == ["error", "no"]


def test_a_return_value_json_cannot_carry_goes_to_the_error_handler(app_sio, caplog):
    """A set returned for a data ack: the error handler gets the codec's
    PacketError (as when the handler calls ack with it), and its value
    answers, also the ack of a handler that took it and raised; with no
    error handler the ack stays unanswered, the traceback is logged, and the
    client stays connected."""
    app, sio = app_sio
    caught = []

    @sio.on("odd")
    def odd():
        return {1, 2}

    @sio.on("odd", namespace="/chat")
    def odd_by_hand(ack=None):
        ack({1, 2})

    class Odd(Namespace):
        def on_odd(self):
            return {1, 2}

    sio.on_namespace(Odd("/odd"))
    client = sio.test_client(app)
    client.connect("/chat")
    client.connect("/odd")
    with caplog.at_level(logging.ERROR, logger="flask_sio09"):
        assert client.emit("odd", callback=True) is None
    assert any("error in a handler" in r.getMessage() and r.exc_info for r in caplog.records)

    @sio.on_error_default
    def fallback(exc):
        caught.append((type(exc).__name__, request.event["name"], request.sid))
        return "unsendable"

    for namespace in ("/", "/chat", "/odd"):
        assert client.emit("odd", callback=True, namespace=namespace) == ["unsendable"]
    assert caught == [("PacketError", "odd", client.sid)] * 3
    assert client.is_connected() and client.is_connected("/chat") and client.is_connected("/odd")


@pytest.mark.parametrize("declares_ack", [False, True])
def test_an_error_handler_value_json_cannot_carry_is_logged_once(app_sio, caplog, declares_ack):
    """The error handler runs once per event: its own unsendable value is
    logged, not handed back to it as a new error (it ran twice)."""
    app, sio = app_sio
    calls = []

    if declares_ack:
        @sio.on("boom")
        def boom(ack=None):
            raise RuntimeError("no")
    else:
        @sio.on("boom")
        def boom():
            raise RuntimeError("no")

    @sio.on_error_default
    def unsendable(exc):
        calls.append(type(exc).__name__)
        return {1, 2}

    client = sio.test_client(app)
    with caplog.at_level(logging.ERROR, logger="flask_sio09"):
        assert client.emit("boom", callback=True) is None
    assert calls == ["RuntimeError"]
    assert sum("answered an ack with what JSON cannot carry" in r.getMessage()
               for r in caplog.records) == 1
    assert client.is_connected()


def test_request_event_stays_name_and_args_after_a_handler_raised(app_sio):
    app, sio = app_sio
    kept = []

    @sio.on("boom")
    def boom(x):
        kept.append(request.event)
        raise RuntimeError("no")

    sio.on_error_default(lambda exc: {1, 2})  # (unsendable: the path that looks back)
    client = sio.test_client(app)
    assert client.emit("boom", 1, callback=True) is None
    assert kept == [{"name": "boom", "args": [1]}]


def test_an_ack_the_handler_answered_before_raising_is_not_answered_again(app_sio, caplog):
    app, sio = app_sio

    @sio.on("half")
    def half(ack=None):
        ack("done")
        raise RuntimeError("after")

    sio.on_error_default(lambda exc: "error")
    client = sio.test_client(app)
    with caplog.at_level(logging.WARNING, logger="flask_sio09"):
        assert client.emit("half", callback=True) == ["done"]
    assert "answered twice" not in caplog.text


def test_an_exception_no_error_handler_answers_leaves_the_data_ack_unanswered(app_sio, caplog):
    # as Flask-SocketIO (it re-raises) and Node (the exception ends the
    # dispatch): the client is not told that a failed handler succeeded
    app, sio = app_sio

    @sio.on("fail")
    def fail():
        raise RuntimeError("no")

    @sio.on("fail_with_ack", namespace="/chat")
    def fail_with_ack(ack=None):
        raise RuntimeError("no")

    class Broken(Namespace):
        def on_fail(self):
            raise LookupError("no")

    sio.on_namespace(Broken("/broken"))
    client = sio.test_client(app)
    client.connect("/chat")
    client.connect("/broken")
    with caplog.at_level(logging.CRITICAL, logger="flask_sio09"):
        assert client.emit("fail", callback=True) is None
        assert client.emit("fail_with_ack", callback=True, namespace="/chat") is None
        assert client.emit("fail", callback=True, namespace="/broken") is None

        @sio.on_error_default
        def broken(exc):
            raise TypeError("second")

        assert client.emit("fail", callback=True) is None
    assert client.get_received() == []
    assert client.is_connected() and client.is_connected("/broken")


def test_an_error_handler_that_returns_none_answers_the_ack_with_no_arguments(app_sio):
    app, sio = app_sio

    @sio.on("fail")
    def fail():
        raise RuntimeError("no")

    sio.on_error_default(lambda exc: None)
    assert sio.test_client(app).emit("fail", callback=True) == []


def test_unhandled_exception_is_logged_with_traceback_and_the_connection_lives(app_sio, caplog):
    app, sio = app_sio

    @sio.on("fail")
    def fail():
        raise ZeroDivisionError("boom")

    @sio.on("ok")
    def ok():
        return "still here"

    client = sio.test_client(app)
    with caplog.at_level(logging.ERROR, logger="flask_sio09"):
        client.emit("fail")
    records = [r for r in caplog.records if r.exc_info]
    assert len(records) == 1
    assert records[0].exc_info[0] is ZeroDivisionError
    assert "Traceback" in caplog.text and "ZeroDivisionError: boom" in caplog.text
    assert client.emit("ok", callback=True) == ["still here"]


def test_a_failing_error_handler_is_logged_too(app_sio, caplog):
    app, sio = app_sio

    @sio.on("fail")
    def fail():
        raise ValueError("first")

    @sio.on_error_default
    def broken(exc):
        raise TypeError("second")

    client = sio.test_client(app)
    with caplog.at_level(logging.ERROR, logger="flask_sio09"):
        client.emit("fail")
    assert any(r.exc_info and r.exc_info[0] is TypeError for r in caplog.records)
    assert client.is_connected()


def test_namespace_class_exceptions_reach_the_error_handlers(app_sio):
    app, sio = app_sio
    caught = []

    class Broken(Namespace):
        def on_fail(self, n):
            raise LookupError(n)

        def on_connect(self):
            emit("welcome")

    sio.on_namespace(Broken("/broken"))
    sio.on_error("/broken")(lambda exc: caught.append(repr(exc)))
    client = sio.test_client(app, namespace="/broken")
    client.emit("fail", 3)
    assert caught == ["LookupError(3)"]
    assert client.is_connected("/broken")


def test_a_connect_handler_that_raises_refuses_the_client(app_sio):
    app, sio = app_sio
    caught = []

    @sio.on("connect", namespace="/auth")
    def auth():
        raise PermissionError("database down")

    sio.on_error("/auth")(lambda exc: caught.append(type(exc).__name__))
    client = sio.test_client(app, namespace="/auth")
    assert caught == ["PermissionError"]
    assert not client.is_connected("/auth")
    assert client.is_connected("/")


def test_client_error_packets_reach_the_error_event_handler(app_sio, caplog):
    app, sio = app_sio
    got = []
    sio.on_event("error", lambda reason, advice: got.append((reason, advice)), namespace="/e")
    client = sio.test_client(app, namespace="/e")
    client.send_packet({"type": "error", "reason": "client not handshaken", "advice": "reconnect"})
    assert got == [("client not handshaken", "reconnect")]
    # without a handler the packet is logged, with the sid
    with caplog.at_level(logging.INFO, logger="flask_sio09"):
        client.send_packet({"type": "error", "reason": "unauthorized", "advice": ""},)
        client.send_packet({"type": "error", "endpoint": "", "reason": "unauthorized",
                            "advice": ""})
    assert got == [("client not handshaken", "reconnect"), ("unauthorized", "")]
    assert any(client.sid in r.getMessage() and "error packet" in r.getMessage()
               for r in caplog.records)


def test_disconnect_inside_an_event_handler_is_safe(app_sio):
    app, sio = app_sio
    log = []

    @sio.on("leave", namespace="/chat")
    def leave():
        disconnect()
        log.append("handler went on")
        emit("after", "dropped")  # the client has left: dropped, no error
        return "acked anyway"

    @sio.on("disconnect", namespace="/chat")
    def on_disconnect():
        log.append("disconnect handler")
        disconnect()  # again, from the disconnect handler: nothing happens

    client = sio.test_client(app, namespace="/chat")
    client.emit("leave")
    assert log == ["handler went on", "disconnect handler"]
    assert not client.is_connected("/chat") and client.is_connected("/")
    assert client.get_received() == []


def test_disconnect_of_the_whole_session_inside_a_handler(app_sio):
    app, sio = app_sio
    log = []

    @sio.on("quit")
    def quit_():
        disconnect()
        log.append("handler went on")

    for ns in ("", "/chat"):
        sio.on_event("disconnect", lambda: log.append(("disconnect", request.namespace)),
                     namespace=ns)

    client = sio.test_client(app, namespace="/chat")
    client.emit("quit", namespace="/")
    assert log == ["handler went on", ("disconnect", "/chat"), ("disconnect", "")]
    assert not client.is_connected("/") and not client.is_connected("/chat")


def test_disconnect_inside_the_connect_handler(app_sio):
    app, sio = app_sio
    log = []

    @sio.on("connect", namespace="/chat")
    def on_connect():
        disconnect()
        log.append("connect handler went on")

    sio.on_event("disconnect", lambda: log.append("disconnect handler"), namespace="/chat")
    client = sio.test_client(app, namespace="/chat")
    # accepted (1::/chat), then disconnected (0::/chat) once the handler returned
    assert not client.is_connected("/chat") and client.is_connected("/")
    assert log == ["connect handler went on", "disconnect handler"]
    # the namespace can be joined again
    log.clear()
    client.connect("/chat")
    assert log == ["connect handler went on", "disconnect handler"]


def test_disconnect_inside_a_connect_handler_on_the_wire():
    """At the server level: the echo goes out, then the disconnect, then the
    disconnect handler runs (paired with the connect handler that ran)."""
    calls = []

    class App:
        def authorize_handshake(self, environ):
            return True

        def connect(self, session, namespace, query):
            calls.append(("connect", namespace))
            if namespace == "/chat":
                server.disconnect(session.sid, namespace)
            return True

        def disconnect(self, session, namespace):
            calls.append(("disconnect", namespace))

        def event(self, *args, **kwargs):
            pass

        def callback(self, *args):
            pass

        def error(self, *args):
            pass

    class Transport:
        persistent = False

        def wake(self):
            pass

    server = Server(Options(), App(), monitor=False, synchronous=True)
    try:
        session = server.new_session({})
        server.attach(session, Transport())
        server.receive(session, "1::/chat")
        assert session.take_outbox() == ["1::", "1::/chat", "0::/chat"]
        assert calls == [("connect", ""), ("connect", "/chat"), ("disconnect", "/chat")]
        assert not session.is_connected("/chat")
    finally:
        server.shutdown()


@pytest.mark.parametrize("call, message", [
    (lambda: emit("x", 1), r"only inside a Socket\.IO handler.*sio\.emit"),
    (lambda: __import__("flask_sio09").send("x"), r"only inside a Socket\.IO handler"),
    (lambda: __import__("flask_sio09").join_room("r"), r"join_room\(\) outside.*sid"),
    (lambda: __import__("flask_sio09").leave_room("r"), r"leave_room\(\) outside.*sid"),
    (lambda: __import__("flask_sio09").rooms(), r"rooms\(\) outside.*sid"),
    (lambda: disconnect(), r"disconnect\(\) outside.*sid"),
])
def test_a_handler_helper_outside_a_handler_says_what_it_needs(app_sio, call, message):
    app, _ = app_sio
    # with no context at all, in the app's context, and inside a plain Flask
    # request (a view): Flask's own error would speak of its testing docs
    with pytest.raises(RuntimeError, match=message):
        call()
    with app.app_context(), pytest.raises(RuntimeError, match=message):
        call()
    with app.test_request_context("/"), pytest.raises(RuntimeError, match=message):
        call()


def test_room_and_disconnect_helpers_work_outside_a_handler_given_the_sid(app_sio):
    """As with Flask-SocketIO: a background thread or a view with the app's
    context names the client; the namespace is the global one unless given."""
    from flask_sio09 import close_room, join_room, leave_room, rooms

    app, sio = app_sio
    client = sio.test_client(app)
    chat = sio.test_client(app, namespace="/chat")
    with pytest.raises(RuntimeError, match="app's context"):
        close_room("r")  # no app context: which app's room?
    outcome = {}

    def background():
        with app.app_context():
            join_room("r", sid=client.sid)
            join_room("r", sid=chat.sid, namespace="/chat")
            sio.emit("news", 1, to="r")
            sio.emit("news", 2, to="r", namespace="/chat")
            leave_room("r", sid=client.sid)
            outcome["rooms"] = sorted(rooms(sid=client.sid))
            outcome["chat rooms"] = sorted(rooms(sid=chat.sid, namespace="/chat"))
            close_room("r", namespace="/chat")
            outcome["closed"] = sorted(rooms(sid=chat.sid, namespace="/chat"))
            disconnect(sid=chat.sid, namespace="/chat")
            disconnect(sid=client.sid)

    sio.start_background_task(background).join(10)
    # sids are random, so where "r" sorts among them is too
    assert outcome == {"rooms": [client.sid], "chat rooms": sorted([chat.sid, "r"]),
                       "closed": [chat.sid]}
    assert client.get_received() == [{"name": "news", "args": [1], "namespace": "/"}]
    assert chat.get_received("/chat") == [{"name": "news", "args": [2], "namespace": "/chat"}]
    assert not client.is_connected()
    assert not chat.is_connected("/chat")


def test_sio_on_without_its_parentheses_is_refused(app_sio):
    _, sio = app_sio
    with pytest.raises(TypeError, match=r"@sio\.on\('my_event'\)"):
        @sio.on
        def my_event(data):
            return data
    with pytest.raises(TypeError, match="event name"):
        sio.on_event(lambda: None, lambda: None)
    with pytest.raises(TypeError, match="not callable"):
        sio.on_event("x", "not a function")


def test_sio_on_error_without_its_parentheses_is_refused(app_sio):
    _, sio = app_sio
    with pytest.raises(TypeError, match=r"@sio\.on_error\(\)"):
        @sio.on_error
        def oops(exc):
            pass
    assert sio.error_handlers == {}


def test_a_client_null_room_is_an_error_and_broadcasts_still_reach_everyone(app_sio):
    """Chat code passes the client's room to leave_room / close_room: a JSON
    null there used to empty the namespace's "everyone" index, so no
    broadcast reached anybody after it."""
    from flask_sio09 import close_room, leave_room

    app, sio = app_sio
    caught = []

    @sio.on("leave", namespace="/chat")
    def leave(room):
        leave_room(room)

    @sio.on("close", namespace="/chat")
    def close(room):
        close_room(room)

    @sio.on("shout", namespace="/chat")
    def shout(text):
        emit("heard", text, broadcast=True)

    @sio.on_error("/chat")
    def chat_error(exc):
        caught.append(type(exc).__name__)

    alice = sio.test_client(app, namespace="/chat")
    bob = sio.test_client(app, namespace="/chat")
    alice.emit("leave", None)
    bob.emit("close", None)
    assert caught == ["TypeError", "TypeError"]
    alice.emit("shout", "hi")
    heard = {"name": "heard", "args": ["hi"], "namespace": "/chat"}
    assert heard in alice.get_received() and heard in bob.get_received()


@pytest.mark.parametrize("value", [0, False, "", 0.0, [], {}])
def test_a_falsy_return_value_answers_the_ack_with_itself(app_sio, value):
    # (only None means "no arguments"; a mutation probe found no test telling them apart)
    app, sio = app_sio
    sio.on("falsy")(lambda: value)
    assert sio.test_client(app).emit("falsy", callback=True) == [value]


def test_a_raising_handler_without_an_error_handler_logs_one_error(app_sio, caplog):
    # its data ack stays unanswered: no second error about what JSON cannot carry
    app, sio = app_sio

    @sio.on("boom")
    def boom():
        raise RuntimeError("boom")

    client = sio.test_client(app)
    with caplog.at_level(logging.DEBUG, logger="flask_sio09"):
        client.emit("boom", callback=True)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].exc_info and errors[0].exc_info[0] is RuntimeError
    assert client.is_connected()
