"""jsonp-polling, htmlfile and the cross-origin rules, through Flask's test
client (no network): what each request answers, byte for byte where
PROTOCOL.md fixes the bytes."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from urllib.parse import quote

import pytest
from flask import Flask

from flask_sio09 import SocketIO, emit, packet, protocol, transports

P_REGEX = re.compile(r'io.j\[(\d+)\]\("(.*)"\);')  # socketIO-client's JSONP parser
SCRIPT_CHUNK = re.compile(r'<script>_\((".*")\);</script>', re.S)
NASTY = "a</script><script>alert(1)</script><!-- \u2028\u2029 \"q\" \\ \n😀"
WAIT = 10.0


@pytest.fixture
def app():
    app = Flask(__name__)
    app.secret_key = "test"
    return app


# Heartbeats are far apart by default, so that none lands among the packets a
# test expects however slow the machine; the heartbeat tests ask for HEARTBEATS.
HEARTBEATS = dict(heartbeat_interval=1, heartbeat_timeout=4)


def make_sio(app, **options):
    defaults = dict(polling_duration=1, close_timeout=5, heartbeat_interval=30,
                    heartbeat_timeout=60)
    sio = SocketIO(app, **{**defaults, **options})
    return sio


@pytest.fixture
def sio(app):
    sio = make_sio(app)
    yield sio
    app.extensions["sio09"].server.shutdown()


@pytest.fixture
def client(app, sio):
    return app.test_client()


@pytest.fixture
def beating(app):
    """``(client, sio)`` of a server with heartbeats every second."""
    sio = make_sio(app, **HEARTBEATS)
    yield app.test_client(), sio
    app.extensions["sio09"].server.shutdown()


def server_of(app):
    return app.extensions["sio09"].server


def handshake(client, **kw):
    resp = client.get("/socket.io/1/", **kw)
    assert resp.status_code == 200, resp.data
    return resp.get_data(as_text=True).split(":")[0]


def record_calls(sio, event):
    """Register a handler for ``event`` that keeps its argument; return the list."""
    calls = []
    sio.on_event(event, calls.append)
    return calls


def eventually(predicate, timeout=WAIT):
    """Wait (bounded) until ``predicate()`` holds; handlers run on worker threads."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def record_disconnects(sio):
    gone = []
    done = threading.Event()

    @sio.on("disconnect")
    def on_disconnect():
        from flask import request
        gone.append(request.sid)
        done.set()

    return gone, done


# --- jsonp-polling -------------------------------------------------------------

def jsonp_get(client, sid, i="0"):
    return client.get(f"/socket.io/1/jsonp-polling/{sid}", query_string={"t": "1", "i": i})


def jsonp_post(client, sid, payload, i="0"):
    body = "d=" + quote(json.dumps(payload, ensure_ascii=False), safe="")
    return client.post(f"/socket.io/1/jsonp-polling/{sid}?t=1&i={i}", data=body.encode(),
                       content_type="application/x-www-form-urlencoded")


def jsonp_payload(resp, i):
    text = resp.get_data(as_text=True)
    match = P_REGEX.fullmatch(text)
    assert match and match.group(1) == str(i), text
    return json.loads(text[len(f"io.j[{i}]("):-2])


def test_jsonp_first_poll_and_headers(client):
    sid = handshake(client)
    resp = jsonp_get(client, sid, "7")
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == 'io.j[7]("1::");'
    assert resp.headers["Content-Type"] == "text/javascript; charset=UTF-8"
    assert resp.headers["X-XSS-Protection"] == "0"
    assert resp.headers["Content-Length"] == str(len(resp.data))
    # a script tag: no CORS headers are due, and none come without an Origin
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_jsonp_noop_after_polling_duration(client):
    sid = handshake(client)
    jsonp_get(client, sid)
    assert jsonp_get(client, sid, "12").get_data(as_text=True) == 'io.j[12]("8::");'


def test_jsonp_unknown_sid(client):
    resp = jsonp_get(client, "nosuchsession", "4")
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, 'io.j[4]("7:::1+0");')


@pytest.mark.parametrize("index", ["", "x", "-1", "1e3", "0x1", " 1", "1 ", "１",
                                   "12345678901", "<script>", "1;alert(1)//"])
def test_jsonp_bad_index_is_400_and_not_reflected(client, index):
    sid = handshake(client)
    resp = jsonp_get(client, sid, index)
    assert resp.status_code == 400
    # the answer is the same whatever came: nothing of the value is echoed
    assert resp.data == jsonp_get(client, sid, "other").data
    # the session was not touched: its first poll still connects it
    assert jsonp_get(client, sid).get_data(as_text=True) == 'io.j[0]("1::");'


def test_jsonp_missing_index_is_400(client):
    sid = handshake(client)
    resp = client.get(f"/socket.io/1/jsonp-polling/{sid}?t=1")
    assert resp.status_code == 400


def test_jsonp_post_escaping_undone_and_answer_escaped(client, sio):
    @sio.on("echo")
    def echo(*args):
        return args

    sid = handshake(client)
    jsonp_get(client, sid)
    event = '5:1+::' + json.dumps({"name": "echo", "args": [NASTY, "+ & = %"]})
    resp = jsonp_post(client, sid, event)
    assert (resp.status_code, resp.get_data(as_text=True)) == (200, "1")
    assert resp.headers["Content-Type"].startswith("text/plain")
    answer = jsonp_payload(jsonp_get(client, sid, "3"), 3)
    assert packet.decode(answer) == {"type": "ack", "ackId": 1, "endpoint": "",
                                     "args": [NASTY, "+ & = %"]}


def test_jsonp_answer_is_one_line_with_js_line_separators_escaped(client, sio):
    @sio.on("echo")
    def echo(*args):
        return args

    sid = handshake(client)
    jsonp_get(client, sid)
    jsonp_post(client, sid, '5:1+::{"name":"echo","args":["l1\\nl2\u2028\u2029"]}')
    text = jsonp_get(client, sid).get_data(as_text=True)
    assert "\n" not in text and "\u2028" not in text and "\u2029" not in text
    assert "\\u2028" in text


def test_jsonp_post_framed_payload_dispatches_all(client, sio):
    seen = record_calls(sio, "n")
    sid = handshake(client)
    jsonp_get(client, sid)
    body = packet.encode_payload([{"type": "event", "name": "n", "args": [i], "endpoint": ""}
                                  for i in range(3)] + [
        {"type": "event", "name": "n", "args": ["😀"], "endpoint": ""}])
    assert jsonp_post(client, sid, body).get_data(as_text=True) == "1"
    eventually(lambda: len(seen) == 4)
    assert seen == [0, 1, 2, "😀"]


def test_jsonp_post_raw_d_is_tolerated_and_bad_json_refused(client, sio):
    got = record_calls(sio, "message")
    sid = handshake(client)
    jsonp_get(client, sid)
    raw = client.post(f"/socket.io/1/jsonp-polling/{sid}?i=0", data={"d": "3:::raw"})
    assert raw.get_data(as_text=True) == "1"
    bad = client.post(f"/socket.io/1/jsonp-polling/{sid}?i=0", data={"d": '"3:::unterminated'})
    assert bad.status_code == 400
    eventually(lambda: got)
    assert got == ["raw"]
    # the session lives on
    assert jsonp_get(client, sid).get_data(as_text=True) == 'io.j[0]("8::");'


def test_jsonp_disabled_transport_is_refused(app):
    make_sio(app, transports=["xhr-polling"])
    client = app.test_client()
    sid = handshake(client)
    assert jsonp_get(client, sid).status_code == 400
    server_of(app).shutdown()


# --- htmlfile ------------------------------------------------------------------

class Stream:
    """Pulls an htmlfile response's chunks the way a WSGI server does, with a
    deadline on each pull."""

    def __init__(self, client, sid):
        self.resp = client.get(f"/socket.io/1/htmlfile/{sid}?t=1", buffered=False)
        self.chunks = iter(self.resp.response)

    def next(self, timeout=WAIT):
        box = []
        thread = threading.Thread(target=lambda: box.append(next(self.chunks, None)))
        thread.start()
        thread.join(timeout)
        assert not thread.is_alive(), f"no htmlfile chunk within {timeout} s"
        return box[0]

    def payload(self, timeout=WAIT):
        chunk = self.next(timeout)
        assert chunk is not None, "the stream ended"
        return script_payload(chunk)

    def close(self):
        self.resp.close()


def script_payload(chunk: bytes) -> str:
    text = chunk.decode("utf-8")
    match = SCRIPT_CHUNK.fullmatch(text)
    assert match, text
    literal = match.group(1)
    # nothing inside the call can end the script or open an HTML comment
    assert "</" not in literal and "<!--" not in literal, literal
    # the client undoes "\/" and then JSON-parses (JSON accepts "\/" too)
    return json.loads(literal.replace("\\/", "/"))


@pytest.fixture
def streams():
    opened = []

    def factory(client, sid):
        stream = Stream(client, sid)
        opened.append(stream)
        return stream

    yield factory
    for stream in opened:
        stream.close()


def test_htmlfile_headers_preamble_and_connect(client, streams):
    sid = handshake(client)
    stream = streams(client, sid)
    assert stream.resp.status_code == 200
    assert stream.resp.headers["Content-Type"] == "text/html; charset=UTF-8"
    # written as it comes: no length, so the server sends it chunked
    assert "Content-Length" not in stream.resp.headers
    preamble = stream.next()
    assert preamble == (b"<html><body><script>var _ = function (msg) "
                        b"{ parent.s._(msg, document); };</script>" + b" " * 173)
    assert stream.next() == b'<script>_("1::");</script>'


def test_htmlfile_buffered_packets_flush_as_one_framed_chunk(client, sio, streams):
    done = threading.Event()

    @sio.on("burst")
    def burst(ack=None):
        for text in ("one", NASTY, "three"):
            emit("t", text)
        ack("done")
        done.set()

    sid = handshake(client)
    stream = streams(client, sid)
    stream.next()
    assert stream.payload() == "1::"
    post = client.post(f"/socket.io/1/htmlfile/{sid}", data='5:9+::{"name":"burst"}',
                       content_type="text/plain;charset=UTF-8")
    assert (post.status_code, post.get_data(as_text=True)) == (200, "1")
    assert done.wait(WAIT)
    payload = stream.payload()
    assert payload.startswith("\ufffd")
    packets = packet.decode_payload(payload)
    assert [p.get("args") for p in packets] == [["one"], [NASTY], ["three"], ["done"]]


def test_htmlfile_one_chunk_per_write(client, sio, streams):
    sid = handshake(client)
    stream = streams(client, sid)
    stream.next()
    stream.payload()
    for i in range(3):
        sio.emit("n", i, to=sid)
        assert packet.decode(stream.payload()) == {"type": "event", "name": "n", "args": [i],
                                                   "endpoint": ""}


def test_htmlfile_heartbeats_over_the_stream(beating, streams):
    client, _ = beating
    sid = handshake(client)
    stream = streams(client, sid)
    stream.next()
    assert stream.payload() == "1::"
    # heartbeat_interval is 1 s: the monitor writes "2::" on its own
    assert stream.payload(timeout=WAIT) == "2::"
    client.post(f"/socket.io/1/htmlfile/{sid}", data="2::")
    assert stream.payload(timeout=WAIT) == "2::"


def test_htmlfile_client_gone_ends_the_session(client, sio, streams):
    gone, done = record_disconnects(sio)
    sid = handshake(client)
    stream = streams(client, sid)
    stream.next()
    stream.payload()
    # what a WSGI server does when a write fails: close the body iterator
    stream.close()
    assert done.wait(WAIT)
    assert gone == [sid]
    assert client.get(f"/socket.io/1/xhr-polling/{sid}").get_data(as_text=True) == "7:::1+0"


def test_htmlfile_server_disconnect_writes_0_and_ends(client, sio, streams):
    gone, done = record_disconnects(sio)

    @sio.on("bye")
    def bye():
        from flask_sio09 import disconnect
        disconnect()

    sid = handshake(client)
    stream = streams(client, sid)
    stream.next()
    stream.payload()
    client.post(f"/socket.io/1/htmlfile/{sid}", data='5:::{"name":"bye"}')
    assert stream.payload() == "0::"
    assert stream.next() is None  # the generator ended
    assert done.wait(WAIT) and gone == [sid]


def test_htmlfile_forced_disconnect_ends_the_stream(client, sio, streams):
    gone, done = record_disconnects(sio)
    sid = handshake(client)
    stream = streams(client, sid)
    stream.next()
    stream.payload()
    assert client.get(f"/socket.io/1//{sid}/?disconnect=1").status_code == 200
    tail = stream.next()
    if tail is not None:  # the "0::" written before the end, if any
        assert script_payload(tail) == "0::"
        assert stream.next() is None
    assert done.wait(WAIT) and gone == [sid]


def test_htmlfile_replaced_by_a_newer_transport_ends_without_closing(client, sio, streams):
    gone, _ = record_disconnects(sio)
    sid = handshake(client)
    first = streams(client, sid)
    first.next()
    first.payload()
    second = streams(client, sid)
    assert second.next() == protocol.HTMLFILE_PREAMBLE.encode()
    assert first.next() is None  # the older stream ended ...
    sio.emit("still", "here", to=sid)
    assert packet.decode(second.payload())["name"] == "still"  # ... the session lives on
    assert gone == []


def test_htmlfile_session_closed_before_the_stream_starts(app, client, sio):
    """The session may end between the GET's lookup and the WSGI server pulling
    the body: the stream then says "not handshaken" and ends."""
    server = server_of(app)
    session = server.get_session(handshake(client))
    stream = transports.HTMLFile.get(server, session, {})
    server.close_session(session, "closed meanwhile")
    chunks = list(transports.stream_chunks(server, stream))
    assert chunks == [protocol.HTMLFILE_PREAMBLE.encode(), b'<script>_("7:::1+0");</script>']


def test_htmlfile_whose_outbox_overflowed_is_cut_off_with_nothing_more(app):
    """Thread mode: a stream whose client stopped reading until its outbox
    overflowed ends at once and its connection is cut (reset): the client
    gets nothing more, not even the end of the chunked body. Broken, the
    stream ends as if nothing were wrong, and the connection is kept for a
    client that reads nothing (probe AD, mutation T18)."""
    sio = make_sio(app, max_outbox_bytes=1000)
    server = server_of(app)
    session = server.get_session(handshake(app.test_client()))
    ours, theirs = socket.socketpair()
    chunks = transports.stream_chunks(server, transports.HTMLFile.get(server, session, {}), ours)
    try:
        assert next(chunks) == protocol.HTMLFILE_PREAMBLE.encode()
        assert script_payload(next(chunks)) == "1::"
        for _ in range(5):  # the client reads none of it
            sio.emit("big", "x" * 400, to=session.sid)
        assert session.close_reason == "outbox overflow"
        assert next(chunks, None) is None
        theirs.settimeout(WAIT)
        assert theirs.recv(1) == b""  # cut: the WSGI server's last chunk goes nowhere
        with pytest.raises(OSError):
            ours.sendall(b"0\r\n\r\n")
    finally:
        chunks.close()
        ours.close()
        theirs.close()
        server.shutdown()


def test_htmlfile_unknown_sid(client):
    resp = client.get("/socket.io/1/htmlfile/nosuchsession")
    assert resp.status_code == 200
    assert resp.get_data(as_text=True) == protocol.HTMLFILE_PREAMBLE + '<script>_("7:::1+0");</script>'
    assert resp.headers["Content-Length"] == str(len(resp.data))


def test_htmlfile_heartbeat_timeout_ends_the_stream(beating, streams):
    client, sio = beating
    gone, done = record_disconnects(sio)
    sid = handshake(client)
    stream = streams(client, sid)
    stream.next()
    stream.payload()
    # the client never answers: after heartbeat_timeout (4 s) the session ends
    chunks = []
    while True:
        chunk = stream.next(timeout=WAIT)
        if chunk is None:
            break
        chunks.append(script_payload(chunk))
    assert set(chunks) <= {"2::"}
    assert done.wait(WAIT) and gone == [sid]


# --- cross-origin ----------------------------------------------------------------

ALLOWED = "http://allowed.example:8000"
REFUSED = "http://evil.example"


@pytest.fixture
def cors_app(app):
    make_sio(app, cors_allowed_origins=[ALLOWED])
    yield app
    server_of(app).shutdown()


@pytest.fixture
def cors_client(cors_app):
    return cors_app.test_client()


def cors_pair(resp):
    return (resp.headers.get("Access-Control-Allow-Origin"),
            resp.headers.get("Access-Control-Allow-Credentials"))


def test_cors_handshake_echoes_origin(cors_client):
    resp = cors_client.get("/socket.io/1/", headers={"Origin": ALLOWED})
    assert resp.status_code == 200
    assert cors_pair(resp) == (ALLOWED, "true")


def test_cors_handshake_refused_origin(cors_client):
    resp = cors_client.get("/socket.io/1/", headers={"Origin": REFUSED})
    assert (resp.status_code, resp.get_data(as_text=True)) == (403, "handshake bad origin")
    assert cors_pair(resp) == (None, None)
    # a page's Referer counts when no Origin came (N's fallback)
    resp = cors_client.get("/socket.io/1/", headers={"Referer": REFUSED + "/page"})
    assert resp.status_code == 403


def test_cors_jsonp_handshake(cors_client):
    # a <script> sends no Origin; its Referer is the embedding page
    ok = cors_client.get("/socket.io/1/?jsonp=2", headers={"Referer": ALLOWED + "/app"})
    assert ok.headers["Content-Type"] == "application/javascript"
    assert re.fullmatch(r'io\.j\[2\]\("[A-Za-z0-9_-]{20,}:60:5:websocket,htmlfile,'
                        r'xhr-polling,jsonp-polling"\);', ok.get_data(as_text=True))
    bad = cors_client.get("/socket.io/1/?jsonp=5", headers={"Referer": REFUSED + "/app"})
    assert bad.status_code == 200  # so that the script runs and the client sees the error
    assert bad.get_data(as_text=True) == 'io.j[5](new Error("handshake bad origin"));'


def test_a_jsonp_poll_with_the_users_cookies_and_no_origin_is_refused(app, client):
    """A JSONP poll's answer is a script any page can load and read: one that
    carries the user's cookies, with neither Origin nor Referer (a page
    elsewhere that hides its referrer), is refused (403) unless every origin
    is allowed; a client without cookies (not a browser) is served. Broken,
    a page elsewhere reads the user's packets (probe AD, mutation T03)."""
    sid = handshake(client)
    browser = app.test_client()
    browser.set_cookie("session", "abc")
    refused = jsonp_get(browser, sid)
    assert (refused.status_code, refused.get_data(as_text=True)) == (403, "bad origin")
    assert jsonp_get(client, sid).get_data(as_text=True) == 'io.j[0]("1::");'


@pytest.mark.parametrize("transport", ["xhr-polling", "jsonp-polling", "htmlfile"])
def test_cors_every_polling_transport(cors_client, transport):
    sid = handshake(cors_client, headers={"Origin": ALLOWED})
    url = f"/socket.io/1/{transport}/{sid}?t=1&i=0"
    if transport != "htmlfile":
        get = cors_client.get(url, headers={"Origin": ALLOWED})
        assert get.status_code == 200
        assert cors_pair(get) == (ALLOWED, "true")
    body = 'd="2::"' if transport == "jsonp-polling" else "2::"
    post = cors_client.post(url, data=body, headers={"Origin": ALLOWED},
                            content_type="application/x-www-form-urlencoded"
                            if transport == "jsonp-polling" else "text/plain;charset=UTF-8")
    assert (post.status_code, post.get_data(as_text=True)) == (200, "1")
    assert cors_pair(post) == (ALLOWED, "true")
    assert post.headers["X-XSS-Protection"] == "0"
    for method in ("get", "post"):
        refused = getattr(cors_client, method)(url, headers={"Origin": REFUSED})
        assert refused.status_code == 403
        assert cors_pair(refused) == (None, None)


def test_cors_htmlfile_stream_carries_the_pair(cors_client):
    sid = handshake(cors_client, headers={"Origin": ALLOWED})
    resp = cors_client.get(f"/socket.io/1/htmlfile/{sid}", headers={"Origin": ALLOWED},
                           buffered=False)
    try:
        assert cors_pair(resp) == (ALLOWED, "true")
    finally:
        resp.close()


@pytest.mark.parametrize("path", ["/socket.io/1/", "/socket.io/1/xhr-polling/anysid"])
def test_cors_preflight_answered_without_a_session(cors_app, cors_client, path):
    before = len(server_of(cors_app).sessions)
    resp = cors_client.options(path, headers={"Origin": ALLOWED,
                                              "Access-Control-Request-Method": "POST"})
    assert resp.status_code == 200
    assert cors_pair(resp) == (ALLOWED, "true")
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert len(server_of(cors_app).sessions) == before
    refused = cors_client.options(path, headers={"Origin": REFUSED})
    assert cors_pair(refused) == (None, None)


UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.mark.parametrize("transport", ["websocket"])
def test_cors_websocket_upgrade_refused_origin(cors_client, transport):
    sid = handshake(cors_client)
    resp = cors_client.get(f"/socket.io/1/{transport}/{sid}",
                           headers={**UPGRADE, "Origin": REFUSED})
    assert resp.status_code == 403
    assert cors_pair(resp) == (None, None)


def test_websocket_upgrade_checks_origin_not_referer(cors_client):
    """N checks an upgrade by its Origin only: a Referer that would be refused
    on a poll does not refuse an upgrade."""
    sid = handshake(cors_client)
    resp = cors_client.get(f"/socket.io/1/websocket/{sid}",
                           headers={**UPGRADE, "Referer": REFUSED + "/x"})
    assert resp.status_code != 403


def test_same_origin_default(client):
    host = "localhost"  # the test client's Host
    assert client.get("/socket.io/1/", headers={"Origin": f"http://{host}"}).status_code == 200
    resp = client.get("/socket.io/1/", headers={"Origin": REFUSED})
    assert resp.status_code == 403


def test_cors_star_echoes_any_origin(app):
    make_sio(app, cors_allowed_origins="*")
    client = app.test_client()
    resp = client.get("/socket.io/1/", headers={"Origin": REFUSED})
    # "*" with credentials is invalid CORS: the origin itself is echoed
    assert cors_pair(resp) == (REFUSED, "true")
    server_of(app).shutdown()


# --- flashsocket -------------------------------------------------------------------

def test_flashsocket_upgrade_refused_unless_listed(client):
    sid = handshake(client)
    resp = client.get(f"/socket.io/1/flashsocket/{sid}", headers=UPGRADE)
    assert resp.status_code == 400  # not offered: never upgraded


def test_a_websocket_upgrade_is_refused_when_websocket_is_not_offered(app):
    """``transports`` without websocket: an upgrade request is answered 400
    and nothing is written on its connection. Broken, the client is upgraded
    and served on a transport the server does not offer (probe AD, mutation
    T22)."""
    make_sio(app, transports=["xhr-polling"], websocket_mode="thread")
    client = app.test_client()
    sid = handshake(client)
    ours, theirs = socket.socketpair()
    answers = []
    request = threading.Thread(target=lambda: answers.append(client.get(
        f"/socket.io/1/websocket/{sid}", headers=UPGRADE, environ_base={"werkzeug.socket": ours})),
        daemon=True)
    try:
        request.start()
        request.join(WAIT)
        assert answers, "the request was upgraded and is being served"
        assert (answers[0].status_code, answers[0].get_data(as_text=True)) == \
            (400, "transport not supported")
        theirs.setblocking(False)
        with pytest.raises(BlockingIOError):
            theirs.recv(1)
    finally:
        theirs.close()  # (ends the connection, were it served)
        request.join(WAIT)
        ours.close()
        server_of(app).shutdown()


def test_flashsocket_listed_is_offered(app):
    make_sio(app, transports=["websocket", "flashsocket", "xhr-polling"])
    client = app.test_client()
    body = client.get("/socket.io/1/").get_data(as_text=True)
    assert body.endswith(":websocket,flashsocket,xhr-polling")
    server_of(app).shutdown()


@pytest.mark.parametrize("transport", ["xhr-polling", "jsonp-polling", "htmlfile"])
@pytest.mark.parametrize("headers, status", [
    ({"Origin": REFUSED}, 403), ({"Referer": REFUSED + "/page"}, 403),
    ({"Origin": "http://localhost"}, 200), ({"Referer": "http://localhost/page"}, 200), ({}, 200)])
def test_every_polling_upload_has_its_origin_checked(client, transport, headers, status):
    """The WSGI path asks the origin check once per request, for its CORS
    headers and its 403 alike: by the Origin, else the Referer."""
    sid = handshake(client)
    body = b"d=2%3A%3A" if transport == "jsonp-polling" else b"2::"
    resp = client.post(f"/socket.io/1/{transport}/{sid}", data=body, headers=headers,
                       content_type="application/x-www-form-urlencoded"
                       if transport == "jsonp-polling" else "text/plain;charset=UTF-8")
    assert resp.status_code == status, resp.data
