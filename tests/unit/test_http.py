"""The HTTP surface through Flask's test client: handshake, xhr-polling, the
forced disconnect, and handlers running in the connection's request context;
in thread mode, a poll's connection (a socketpair) whose client hung up or
stopped reading."""

import socket
import threading

import pytest
from flask import Flask, request, session
from werkzeug.test import EnvironBuilder

from flask_sio09 import SocketIO, disconnect, emit, join_room, protocol, rooms, send, transports
from flask_sio09.options import OptionError
from flask_sio09.server import Options, Server
from tests.conftest import wait_until
from tests.unit.doubles import Clock, EchoApp


@pytest.fixture
def app():
    app = Flask(__name__)
    app.secret_key = "test"
    return app


@pytest.fixture
def sio(app):
    sio = SocketIO(app, polling_duration=2, close_timeout=5, heartbeat_interval=3,
                   heartbeat_timeout=6)
    yield sio
    app.extensions["sio09"].server.shutdown()


@pytest.fixture
def client(app, sio):
    return app.test_client()


@pytest.fixture
def sio_with(app):
    """Factory: ``sio_with(**options)``, the extension on ``app`` with other
    options than ``sio``'s; its server is shut down afterwards."""
    made = []

    def factory(**options):
        made.append(SocketIO(app, **options))
        return made[-1]

    yield factory
    if made:
        app.extensions["sio09"].server.shutdown()


def handshake(client, path="/socket.io/1/", **kw):
    resp = client.get(path, **kw)
    assert resp.status_code == 200, resp.data
    sid, hb, close, transports = resp.get_data(as_text=True).split(":")
    return sid


def poll(client, sid):
    resp = client.get(f"/socket.io/1/xhr-polling/{sid}?t=1")
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def post(client, sid, body):
    resp = client.post(f"/socket.io/1/xhr-polling/{sid}", data=body.encode("utf-8"),
                       content_type="text/plain;charset=UTF-8")
    return resp


def poll_until(client, sid, want, rounds=10):
    seen = []
    for _ in range(rounds):
        seen.append(poll(client, sid))
        if any(want in s for s in seen):
            return seen
    raise AssertionError(f"{want!r} never arrived: {seen}")


def test_handshake_body_and_defaults(client):
    resp = client.get("/socket.io/1/?t=123")
    sid, hb, close, transports = resp.get_data(as_text=True).split(":")
    assert len(sid) >= 20 and all(c.isalnum() or c in "-_" for c in sid)
    assert (hb, close) == ("6", "5")
    assert transports == "websocket,htmlfile,xhr-polling,jsonp-polling"
    assert resp.headers["Content-Type"].startswith("text/plain")


def test_handshake_post_and_jsonp(client):
    assert client.post("/socket.io/1/").status_code == 200
    resp = client.get("/socket.io/1/?jsonp=3")
    body = resp.get_data(as_text=True)
    assert body.startswith('io.j[3]("') and body.endswith('");')


def test_welcome_and_bad_protocol(client):
    assert client.get("/socket.io/").get_data(as_text=True) == "Welcome to socket.io."
    resp = client.get("/socket.io/2/")
    assert resp.status_code == 500
    assert resp.get_data(as_text=True) == "Protocol version not supported."


def test_unknown_sid(client):
    assert poll(client, "nope") == "7:::1+0"
    resp = post(client, "nope", "5:::{}")
    assert resp.status_code == 200 and resp.get_data(as_text=True) == "1"


def test_unknown_transport_is_refused(client):
    sid = handshake(client)
    assert client.get(f"/socket.io/1/xhr-multipart/{sid}").status_code == 400


def test_first_poll_connects_then_events_roundtrip(client, sio):
    seen = {}

    @sio.on("hello")
    def hello(a, b):
        seen["sid"] = request.sid
        seen["event"] = request.event
        return a + b, "ok"

    sid = handshake(client)
    assert poll(client, sid) == "1::"
    resp = post(client, sid, '5:1+::{"name":"hello","args":[2,3]}')
    assert resp.get_data(as_text=True) == "1"
    assert resp.headers["Content-Type"].startswith("text/plain")
    assert poll_until(client, sid, "6:::1+")[-1] == '6:::1+[5,"ok"]'
    assert seen["sid"] == sid
    assert seen["event"] == {"name": "hello", "args": [2, 3]}


def test_noop_after_polling_duration(client):
    sid = handshake(client)
    poll(client, sid)
    assert poll(client, sid) == "8::"


def test_packets_buffered_between_polls_are_framed_in_order(client, sio):
    @sio.on("burst")
    def burst():
        for i in range(50):
            emit("n", i)

    sid = handshake(client)
    poll(client, sid)
    post(client, sid, '5:::{"name":"burst"}')
    got = []
    for _ in range(20):
        body = poll(client, sid)
        if body.startswith("\ufffd"):
            from flask_sio09 import packet
            got += [p["args"][0] for p in packet.decode_payload(body)]
        elif body.startswith("5:"):
            got.append(int(body.split('"args":[')[1].rstrip("]}")))
        if len(got) >= 50:
            break
    assert got == list(range(50))


def test_a_second_poll_releases_the_first_at_once_with_a_noop(app, sio_with):
    """A newer poll of the session answers the one still held at once with
    ``8::``, and carries what comes next. Broken, the older poll is held for
    the whole polling_duration (probe AD, mutation T15)."""
    sio = sio_with(polling_duration=50)
    client = app.test_client()
    sid = handshake(client)
    poll(client, sid)
    session = app.extensions["sio09"].server.get_session(sid)
    first, second = [], []
    older = threading.Thread(target=lambda: first.append(poll(app.test_client(), sid)),
                             daemon=True)
    newer = threading.Thread(target=lambda: second.append(poll(app.test_client(), sid)),
                             daemon=True)
    try:
        older.start()
        wait_until(lambda: session.transport is not None, timeout=20, message="the first poll")
        newer.start()
        older.join(20)
        assert first == ["8::"]
        sio.emit("later", 1, to=sid)
        newer.join(20)
        assert second == ['5:::{"name":"later","args":[1]}']
    finally:  # (a poll still held ends with the session)
        app.extensions["sio09"].server.close_session(session, "test over")


def test_forced_disconnect_ends_session_and_runs_handler_once(client, sio):
    calls = []
    done = threading.Event()

    @sio.on("disconnect")
    def gone():
        calls.append(request.sid)
        done.set()

    sid = handshake(client)
    poll(client, sid)
    assert client.get(f"/socket.io/1/xhr-polling/{sid}?disconnect").status_code == 200
    assert done.wait(5)
    assert poll(client, sid) == "7:::1+0"
    assert client.get(f"/socket.io/1//{sid}/?disconnect=1").status_code == 200
    assert calls == [sid]


@pytest.mark.parametrize("query, forced", [
    ("disconnect", True), ("t=1&disconnect=True", True), ("%64isconnect=1", True),
    ("t=1&disconnec%74", True), ("disconnect=&t=2", True),
    ("t=1", False), ("t=disconnect", False), ("xdisconnect=1", False), ("dis+connect=1", False),
    ("t=%31", False), ("", False)])
def test_only_a_query_field_named_disconnect_forces_it(client, sio, query, forced):
    """A poll's query is read for a ``disconnect`` field in every spelling a
    query parser decodes to that name, and only then."""
    sid = handshake(client)
    poll(client, sid)
    resp = client.get(f"/socket.io/1/xhr-polling/{sid}?{query}")
    assert resp.status_code == 200
    session = client.application.extensions["sio09"].server.get_session(sid)
    if forced:
        assert session is None or session.closed
    else:
        assert session is not None and not session.closed


def test_connect_refusal_and_query(client, sio):
    @sio.on("connect", namespace="/private")
    def private(query):
        return query.get("token") == "ok"

    sid = handshake(client)
    poll(client, sid)
    post(client, sid, "1::/private:?token=no")
    assert poll(client, sid) == "7::/private:2"
    post(client, sid, "1::/private:?token=ok")
    assert poll(client, sid) == "1::/private"


def test_a_connect_handlers_query_keeps_blank_values(client, sio):
    """``1::/chat:?flag=&x=1``: the connect handler's query has ``flag``, an
    empty string. Broken, a field given without a value is missing (probe
    AD, mutation E10)."""
    seen = []

    @sio.on("connect", namespace="/chat")
    def chat(query):
        seen.append(query.to_dict())

    sid = handshake(client)
    poll(client, sid)
    post(client, sid, "1::/chat:?flag=&x=1")
    assert poll(client, sid) == "1::/chat"
    assert seen == [{"flag": "", "x": "1"}]


def test_flask_session_and_rooms_in_handlers(client, sio, app):
    @app.route("/login")
    def login():
        session["user"] = "ann"
        return "ok"

    @sio.on("who")
    def who():
        join_room("r1")
        send(session.get("user"))
        emit("rooms", sorted(rooms()))

    client.get("/login")
    sid = handshake(client)
    poll(client, sid)
    post(client, sid, '5:::{"name":"who"}')
    seen = poll_until(client, sid, "rooms")
    joined = "".join(seen)
    assert "3:::ann" in joined
    assert f'"args":[["r1","{sid}"]]' in joined or f'"args":[["{sid}","r1"]]' in joined


def test_handler_error_goes_to_error_handler_and_connection_lives(client, sio):
    errors = []

    @sio.on("boom")
    def boom():
        raise KeyError("x")

    @sio.on_error_default
    def on_error(exc):
        errors.append(type(exc).__name__)

    @sio.on("ping")
    def ping():
        return "pong"

    sid = handshake(client)
    poll(client, sid)
    post(client, sid, '5:::{"name":"boom"}')
    post(client, sid, '5:1+::{"name":"ping"}')
    assert poll_until(client, sid, "6:::1+")[-1] == '6:::1+["pong"]'
    assert errors == ["KeyError"]


def test_on_handshake_refusal(client, sio):
    @sio.on_handshake
    def allow():
        return request.args.get("key") == "good"

    resp = client.get("/socket.io/1/?key=bad")
    assert resp.status_code == 403
    assert resp.get_data(as_text=True) == "handshake unauthorized"
    assert client.get("/socket.io/1/?key=good").status_code == 200


def test_on_handshake_returning_none_accepts(client, sio):
    """Only False refuses a handshake: an authorizer that ends without a
    return (None) lets the client in. Broken, the client gets 403 (probe AD,
    mutation E05)."""
    @sio.on_handshake
    def allow():
        request.args.get("key")  # looks, and says nothing

    resp = client.get("/socket.io/1/")
    assert resp.status_code == 200, resp.data


def test_on_handshake_that_raises_is_a_500_and_makes_no_session(client, sio, app):
    """An authorizer that raises: the client gets 500 "handshake error" and
    no session is made. Broken, it is let in (probe AD, mutation T07)."""
    @sio.on_handshake
    def allow():
        raise RuntimeError("the user store is down")

    resp = client.get("/socket.io/1/")
    assert (resp.status_code, resp.get_data(as_text=True)) == (500, "handshake error")
    assert app.extensions["sio09"].server.sessions == {}


def test_post_too_large_is_refused_and_the_next_poll_fails_with_410(app, sio_with):
    """A POST over max_http_buffer_size is refused (413) and ends the
    session; the client's next poll fails with 410, on which socket.io-client
    reconnects at once. Broken, that poll is answered 200 (``7:::1+0``, or the
    410's text as if it were packets) (probe AD, mutations S16 and T11)."""
    sio_with(max_http_buffer_size=100)
    client = app.test_client()
    sid = handshake(client)
    assert post(client, sid, "3:::" + "x" * 200).status_code == 413
    resp = client.get(f"/socket.io/1/xhr-polling/{sid}?t=1")
    assert (resp.status_code, resp.get_data(as_text=True)) == (410, "session ended: reconnect")


def test_an_upload_while_handlers_lag_past_the_inbound_limit_is_answered_after_them(client, sio,
                                                                                    app):
    """Once more than the inbound limit of a session's uploads waits for its
    handlers, the answer to its next upload waits for them too (a
    ``HeldAnswer``), which holds the client's next upload back. Broken, the
    answer goes at once, and a client that sends faster than its handlers
    run grows the server's memory without a bound (probe AD, mutations T12
    and S07)."""
    gate, running = threading.Event(), threading.Event()

    @sio.on("slow")
    def slow():
        running.set()
        gate.wait(30)

    sid = handshake(client)
    poll(client, sid)
    server = app.extensions["sio09"].server

    def upload(body):
        environ = EnvironBuilder(path=f"/socket.io/1/xhr-polling/{sid}", method="POST",
                                 data=body.encode("utf-8")).get_environ()
        route = protocol.parse_path(environ["PATH_INFO"])
        return transports.route_request(server, route, "POST", environ)

    try:
        assert upload('5:::{"name":"slow"}')[0] == "200 OK"
        assert running.wait(30)
        big = "3:::" + "x" * 600_000  # two of them pass INBOUND_LIMIT
        first = upload(big)
        assert not isinstance(first, transports.HeldAnswer) and first[2] == b"1"
        held = upload(big)
        assert isinstance(held, transports.HeldAnswer)
        assert held.response[0] == "200 OK" and held.response[2] == b"1"
    finally:
        gate.set()
    wait_until(lambda: server.get_session(sid).uploads_waiting == 0, timeout=30,
               message="the handlers to catch up")


def test_a_poll_after_a_server_disconnect_between_polls_gets_0(client, sio, app):
    """The server ends a polling session between two polls: the next poll
    gets its ``0::``, and the client stays disconnected; the one after hears
    that the session is gone. Broken, the next poll gets ``7:::1+0`` and the
    client reconnects (probe AD, mutation T14)."""
    sid = handshake(client)
    assert poll(client, sid) == "1::"
    with app.app_context():
        disconnect(sid=sid)
    assert poll(client, sid) == "0::"
    assert poll(client, sid) == "7:::1+0"


def test_a_poll_whose_client_hung_up_leaves_its_packets_for_the_next_poll(app, sio_with):
    """Thread mode: a poll answered after its client hung up (socketIO-client
    gives up on a poll after its own timeout) takes nothing from the
    session, and the client's next poll gets the packets. Broken, they are
    written to the closed connection and lost (probe AD, mutation T16)."""
    sio = sio_with(websocket_mode="thread", polling_duration=1)
    client = app.test_client()
    sid = handshake(client)
    poll(client, sid)
    sio.emit("news", 1, to=sid)
    ours, theirs = socket.socketpair()
    theirs.close()  # the client's end of the connection
    try:
        resp = client.get(f"/socket.io/1/xhr-polling/{sid}?t=1",
                          environ_base={"werkzeug.socket": ours})
        assert resp.status_code == 200
    finally:
        ours.close()
    assert poll(client, sid) == '5:::{"name":"news","args":[1]}'


def test_a_large_poll_answer_its_client_stopped_reading_is_cut_after_close_timeout():
    """Thread mode: the WSGI server's thread writes a long poll's answer
    without a timeout; when no part of it has been taken for close_timeout,
    the monitor shuts the connection down and the thread is free. Broken, a
    client that stops reading holds the thread for as long as it keeps the
    connection (probe AD, mutation T19)."""
    clock = Clock()
    server = Server(Options(close_timeout=20), EchoApp(), clock=clock, monitor=False)
    ours, theirs = socket.socketpair()
    try:
        answer = transports.WatchedAnswer(server, b"x" * (3 * transports.WatchedAnswer.PART),
                                          ours)
        parts = iter(answer)
        next(parts)  # the WSGI server writes the first part; the client reads no more
        clock.now += 20
        server.monitor_step(clock.now)
        theirs.setblocking(False)
        with pytest.raises(BlockingIOError):
            theirs.recv(1)  # still open: close_timeout has not passed
        clock.now += 1
        server.monitor_step(clock.now)
        theirs.settimeout(10)
        assert theirs.recv(1) == b""  # shut down: the blocked write fails
    finally:
        server.shutdown()
        ours.close()
        theirs.close()


def test_routes_outside_resource_reach_flask(client, app):
    @app.route("/hello")
    def hello():
        return "flask"

    assert client.get("/hello").get_data(as_text=True) == "flask"
    assert client.get("/socket.iox/1/").status_code == 404


@pytest.mark.parametrize("options, name", [
    ({"heartbeat_interval": 70}, "heartbeat_interval"),
    ({"polling_duration": 0}, "polling_duration"),
    ({"transports": ["carrier-pigeon"]}, "transports"),
    ({"websocket_mode": "fast"}, "websocket_mode"),
    ({"handler_threads": -1}, "handler_threads"),
])
def test_invalid_options_name_the_option(options, name):
    with pytest.raises(OptionError, match=name):
        SocketIO(Flask(__name__), **options)


def test_options_from_config_and_argument_wins():
    app = Flask(__name__)
    app.config["SIO09_HEARTBEAT_TIMEOUT"] = 30
    app.config["SIO09_RESOURCE"] = "rt"
    SocketIO(app, heartbeat_timeout=40)
    server = app.extensions["sio09"].server
    assert server.options.heartbeat_timeout == 40
    assert server.options.resource == "rt"
    body = app.test_client().get("/rt/1/").get_data(as_text=True)
    assert body.split(":")[1] == "40"
    server.shutdown()


def test_init_app_twice_is_an_error(app, sio):
    with pytest.raises(RuntimeError):
        sio.init_app(app)


def test_a_stopping_server_takes_no_handshake(app, sio, client):
    server = app.extensions["sio09"].server
    sid = handshake(client).split(":")[0]
    server.go_away()  # the process stops (stopping.py)
    response = client.get("/socket.io/1/")
    assert response.status_code == 503 and response.get_data(as_text=True) == "server stopping"
    jsonp = client.get("/socket.io/1/?jsonp=2")
    assert jsonp.status_code == 200
    assert jsonp.get_data(as_text=True) == 'io.j[2](new Error("server stopping"));'
    assert server.sessions.get(sid) is None  # (ended by go_away)
