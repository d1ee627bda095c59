"""The Flask context handlers run in (``_EventContext``): one per connection,
in effect for each event (pushed and popped, or in a copy of a Context where it
stays pushed), with the effects of Flask's own push and pop."""

import threading

import flask
import pytest
from flask import Flask, g, request, signals

from flask_sio09 import emit

from tests.unit.test_testing import make_app  # noqa: F401 (a fixture)


def test_flask_g_is_fresh_for_each_event(make_app):
    app, sio = make_app()

    @sio.on("remember")
    def remember(value):
        before = g.get("value")
        g.value = value
        return repr(before)

    client = sio.test_client(app)
    assert client.emit("remember", 1, callback=True) == ["None"]
    assert client.emit("remember", 2, callback=True) == ["None"]


def test_teardown_functions_run_once_per_event(make_app):
    app, sio = make_app()
    calls = []
    app.teardown_request(lambda exc: calls.append(("request", exc)))
    app.teardown_appcontext(lambda exc: calls.append(("appcontext", exc)))

    @sio.on("ping")
    def ping():
        calls.append(("handler", flask.has_request_context()))
        return "pong"

    client = sio.test_client(app)
    calls.clear()  # the connect event had its own
    assert client.emit("ping", callback=True) == ["pong"]
    assert client.emit("ping", callback=True) == ["pong"]
    assert calls == [("handler", True), ("request", None), ("appcontext", None)] * 2


def test_teardown_functions_get_the_exception_no_error_handler_took(make_app):
    """As when a handler's exception leaves Flask-SocketIO's request
    context: an exception the error handler answered is not passed on."""
    app, sio = make_app()
    calls = []
    app.teardown_request(lambda exc: calls.append(("request", repr(exc))))
    app.teardown_appcontext(lambda exc: calls.append(("appcontext", repr(exc))))

    @sio.on("fail")
    def fail():
        raise KeyError("lost")

    @sio.on("fail", namespace="/handled")
    def fail_handled():
        raise KeyError("answered")

    sio.on_error("/handled")(lambda exc: "sorry")
    client = sio.test_client(app)
    client.connect("/handled")
    calls.clear()
    client.emit("fail")
    assert calls == [("request", "KeyError('lost')"), ("appcontext", "KeyError('lost')")]
    calls.clear()
    assert client.emit("fail", namespace="/handled", callback=True) == ["sorry"]
    assert calls == [("request", "None"), ("appcontext", "None")]
    calls.clear()
    client.emit("fail")
    assert [exc for _, exc in calls] == ["KeyError('lost')"] * 2


@pytest.mark.parametrize("kind", ["teardown_request", "teardown_appcontext",
                                  "appcontext_pushed", "appcontext_popped",
                                  "request_tearing_down", "appcontext_tearing_down"])
def test_each_teardown_function_or_signal_alone_runs_once_per_event(make_app, kind):
    # any one of them is enough to take the push-and-pop path (the shortcut
    # would run none of them)
    app, sio = make_app()
    calls = []

    def receiver(*args, **kwargs):
        calls.append(kind)

    if kind.startswith("teardown"):
        getattr(app, kind)(receiver)
    else:
        getattr(signals, kind).connect(receiver, app)

    @sio.on("ping")
    def ping():
        return "pong"

    try:
        client = sio.test_client(app)
        calls.clear()
        for _ in range(3):
            assert client.emit("ping", callback=True) == ["pong"]
        assert calls == [kind] * 3
    finally:
        if not kind.startswith("teardown"):
            getattr(signals, kind).disconnect(receiver, app)


def test_the_flask_session_is_opened_with_the_contexts_pushed(make_app):
    """As Flask opens it for a request: a session interface may use
    current_app or the request."""
    from flask.sessions import SecureCookieSessionInterface

    seen = []

    class Recording(SecureCookieSessionInterface):
        def open_session(self, app, request):
            seen.append((flask.has_app_context(), flask.has_request_context()))
            return super().open_session(app, request)

    app, sio = make_app()
    app.session_interface = Recording()

    @sio.on("ping")
    def ping():
        return "pong"

    client = sio.test_client(app)
    assert client.emit("ping", callback=True) == ["pong"]
    assert client.emit("ping", callback=True) == ["pong"]
    assert seen == [(True, True)]  # once per connection


def test_context_signals_are_sent_for_each_event(make_app):
    app, sio = make_app()
    seen = []
    receivers = {
        "pushed": lambda sender, **kw: seen.append("pushed"),
        "popped": lambda sender, **kw: seen.append("popped"),
        "request_tearing_down": lambda sender, **kw: seen.append("request_tearing_down"),
        "appcontext_tearing_down": lambda sender, **kw: seen.append("appcontext_tearing_down"),
    }
    signals.appcontext_pushed.connect(receivers["pushed"], app)
    signals.appcontext_popped.connect(receivers["popped"], app)
    signals.request_tearing_down.connect(receivers["request_tearing_down"], app)
    signals.appcontext_tearing_down.connect(receivers["appcontext_tearing_down"], app)
    try:
        @sio.on("ping")
        def ping():
            seen.append("handler")

        client = sio.test_client(app)
        seen.clear()
        client.emit("ping")
        assert seen == ["pushed", "handler", "request_tearing_down",
                        "appcontext_tearing_down", "popped"]
    finally:
        signals.appcontext_pushed.disconnect(receivers["pushed"], app)
        signals.appcontext_popped.disconnect(receivers["popped"], app)
        signals.request_tearing_down.disconnect(receivers["request_tearing_down"], app)
        signals.appcontext_tearing_down.disconnect(receivers["appcontext_tearing_down"], app)


def test_each_event_sees_its_own_connection_and_nothing_leaks_out(make_app):
    app, sio = make_app()

    @sio.on("who")
    def who():
        assert flask.current_app._get_current_object() is app
        return request.sid, request.namespace, request.event["name"], \
            flask.url_for("page", _external=False)

    @app.get("/page")
    def page():
        return "page"

    first, second = sio.test_client(app), sio.test_client(app)
    for client in (first, second, first):
        assert client.emit("who", callback=True) == [client.sid, "", "who", "/page"]
    # after a handler, no context is left behind on this thread
    assert not flask.has_request_context() and not flask.has_app_context()


def test_a_nested_app_context_and_a_raising_handler_leave_the_contexts_balanced(make_app):
    app, sio = make_app()
    other = Flask("other")
    errors = []
    sio.on_error_default(lambda exc: errors.append(str(exc)))

    @sio.on("nested")
    def nested():
        with other.app_context():
            assert flask.current_app._get_current_object() is other
        assert flask.current_app._get_current_object() is app
        return request.sid

    @sio.on("fail")
    def fail():
        g.partial = True
        raise RuntimeError("boom")

    client = sio.test_client(app)
    client.emit("fail")
    assert errors == ["boom"]
    assert client.emit("nested", callback=True) == [client.sid]
    assert not flask.has_request_context() and not flask.has_app_context()


def test_the_connection_flask_session_lives_across_events(make_app):
    app, sio = make_app()

    @sio.on("count")
    def count():
        flask.session["n"] = flask.session.get("n", 0) + 1
        return flask.session["n"]

    client = sio.test_client(app)
    assert [client.emit("count", callback=True) for _ in range(3)] == [[1], [2], [3]]
    assert sio.test_client(app).emit("count", callback=True) == [1]


def test_copy_current_request_context_takes_the_handler_context_to_a_task(make_app):
    """Flask-SocketIO users hand a handler's context to a background task
    with ``flask.copy_current_request_context``: the task sees the
    connection's request (its sid) and its ``flask.session``."""
    app, sio = make_app()
    seen = {}
    done = threading.Event()

    @sio.on("start")
    def start():
        flask.session["user"] = "ada"

        @flask.copy_current_request_context
        def task():
            seen["sid"] = request.sid
            seen["user"] = flask.session.get("user")
            seen["context"] = flask.has_request_context()
            done.set()

        sio.start_background_task(task)
        return request.sid

    client = sio.test_client(app)
    sid = client.emit("start", callback=True)[0]
    assert done.wait(30)
    assert seen == {"sid": sid, "user": "ada", "context": True}


def test_a_copied_context_keeps_its_events_namespace_while_others_come(make_app):
    """The connection's request is rewritten for each event: a task's copy
    must not follow it (its emit went to the namespace of the last event)."""
    app, sio = make_app()
    go, done = threading.Event(), threading.Event()

    @sio.on("start", namespace="/chat")
    def start():
        @flask.copy_current_request_context
        def task():
            assert go.wait(30)
            emit("finished", request.namespace, request.event["name"])
            done.set()

        sio.start_background_task(task)

    @sio.on("ping")
    def ping():
        return "pong"

    client = sio.test_client(app, namespace="/chat")
    client.emit("start")
    assert client.emit("ping", callback=True, namespace="/") == ["pong"]
    go.set()
    assert done.wait(30)
    assert client.get_received("/chat") == [
        {"name": "finished", "args": ["/chat", "start"], "namespace": "/chat"}]
    assert client.get_received("/") == []


def _bridge_and_session(app, sid):
    server = app.extensions["sio09"].server
    return server.app, server.get_session(sid)


def test_signals_connected_after_some_events_are_sent_from_the_next_one_on(make_app):
    """Events with no receiver and no teardown function take the shortcut
    (the connection's own contextvars.Context, pushed for good); one
    connected later must still be heard, and g must stay fresh throughout."""
    app, sio = make_app()
    seen = []

    @sio.on("ping")
    def ping():
        seen.append(("handler", g.get("mark")))
        g.mark = True
        return request.sid

    def pushed(sender, **kw):
        seen.append("pushed")

    def popped(sender, **kw):
        seen.append("popped")

    client = sio.test_client(app)
    assert client.emit("ping", callback=True) == [client.sid]
    assert client.emit("ping", callback=True) == [client.sid]
    signals.appcontext_pushed.connect(pushed, app)
    signals.appcontext_popped.connect(popped, app)
    try:
        assert client.emit("ping", callback=True) == [client.sid]
    finally:
        signals.appcontext_pushed.disconnect(pushed, app)
        signals.appcontext_popped.disconnect(popped, app)
    assert client.emit("ping", callback=True) == [client.sid]
    assert seen == [("handler", None), ("handler", None),
                    "pushed", ("handler", None), "popped", ("handler", None)]
    assert not flask.has_request_context() and not flask.has_app_context()


def test_a_handler_that_runs_another_of_its_connection_nests_the_contexts(make_app):
    """The bridge called again for the same connection, from inside one of
    its handlers (on the same thread, then on another thread while the
    first still runs): each call sees the request, and the outer handler's
    context is intact afterwards."""
    app, sio = make_app()
    seen = []

    def inner(where):
        seen.append((where, request.sid, request.event["name"], flask.has_app_context()))
        return where

    @sio.on("outer")
    def outer():
        bridge, session = _bridge_and_session(app, request.sid)
        assert g.get("outer") is None  # (fresh for this event)
        g.outer = True
        same = bridge._call(session, "", {"name": "nested", "args": []}, inner, ("same thread",))
        results = []
        thread = threading.Thread(target=lambda: results.append(bridge._call(
            session, "", {"name": "threaded", "args": []}, inner, ("other thread",))))
        thread.start()
        thread.join(30)
        seen.append(("outer", request.sid, flask.has_request_context()))
        return [same] + results

    client = sio.test_client(app)
    assert client.emit("outer", callback=True) == [["same thread", "other thread"]]
    assert seen == [("same thread", client.sid, "nested", True),
                    ("other thread", client.sid, "threaded", True),
                    ("outer", client.sid, True)]
    # the next event takes the shortcut again, with a fresh g
    assert client.emit("outer", callback=True) == [["same thread", "other thread"]]
    assert not flask.has_request_context() and not flask.has_app_context()


@pytest.mark.parametrize("with_teardown", [False, True], ids=["shortcut", "push-and-pop"])
def test_what_a_handler_leaves_in_its_context_ends_with_its_event(make_app, with_teardown):
    """A context variable a handler sets, and a Flask context it pushes and
    never pops, end with the event: no later event (of its connection or
    another) sees them, and what they hold is freed at once, without
    waiting for the garbage collector. So with and without a teardown
    function (which takes the push-and-pop path)."""
    import contextvars
    import gc
    import weakref

    app, sio = make_app()
    if with_teardown:
        app.teardown_appcontext(lambda exc: None)
    mark = contextvars.ContextVar("mark", default="unset")
    held = []

    class Big:
        pass

    @sio.on("mark")
    def set_mark(value):
        before = mark.get()
        big = Big()
        held.append(weakref.ref(big))
        mark.set((value, big))
        return before

    @sio.on("leave_pushed")
    def leave_pushed(how):
        if how == "app":
            app.app_context().push()
            g.mark = "leaked"
        else:
            app.test_request_context("/elsewhere?x=1").push()
            raise RuntimeError("a helper failed before its pop")

    @sio.on("look")
    def look():
        return g.get("mark"), request.sid, request.path, \
            flask.current_app._get_current_object() is app

    errors = []
    sio.on_error_default(lambda exc: errors.append(str(exc)))
    first, second = sio.test_client(app), sio.test_client(app)
    gc.disable()  # (what is freed must be freed by reference counting)
    try:
        assert first.emit("mark", "a", callback=True) == ["unset"]
        assert held[-1]() is None
        assert second.emit("mark", "b", callback=True) == ["unset"]
        assert first.emit("mark", "c", callback=True) == ["unset"]
        assert held[-1]() is None
    finally:
        gc.enable()
    assert mark.get() == "unset"
    for how in ("app", "request"):
        first.emit("leave_pushed", how)
        assert first.emit("look", callback=True) == [None, first.sid, "/socket.io/1/", True]
    assert errors == ["a helper failed before its pop"]
    assert not flask.has_request_context() and not flask.has_app_context()


def test_the_server_is_told_which_namespaces_run_a_connect_handler():
    # (without one, the server joins a client to the global namespace at once)
    from flask_sio09 import Namespace, SocketIO
    from flask_sio09.extension import _AppBridge

    app = Flask(__name__)
    sio = SocketIO(app)
    bridge = _AppBridge(sio, app)
    assert not bridge.has_connect_handler("")
    sio.on("connect", namespace="/a")(lambda: None)
    sio.on("echo")(lambda: None)
    sio.on_namespace(Namespace("/b"))
    assert [bridge.has_connect_handler(ns) for ns in ("", "/a", "/b", "/c")] == [
        False, True, True, False]
    sio.on("connect")(lambda: None)
    assert bridge.has_connect_handler("")
