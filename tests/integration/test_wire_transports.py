"""jsonp-polling, htmlfile and the cross-origin rules over real sockets, on every
server kind.

htmlfile is read with a raw socket: the test parses the chunked body itself, so
it sees each chunk when the server writes it and can drop the connection like a
closed browser tab.
"""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
import requests
import websocket

from tests.conftest import wait_until
from tests.integration.helpers import (decode_payload, encode_payload, event_packet, handshake,
                                       parse_event)

pytestmark = pytest.mark.timeout(240)

OPTIONS = dict(heartbeat_interval=1, heartbeat_timeout=20, close_timeout=20, polling_duration=2)
# every server kind, with the connections served by the I/O hub where the server
# allows it ("auto") and by request threads ("thread")
KINDS = [pytest.param((kind, mode), id=f"{kind}-{mode}",
                      marks=[pytest.mark.gunicorn] if kind == "gunicorn" else [])
         for kind in ("sio_run", "flask", "gunicorn") for mode in ("auto", "thread")]
PREAMBLE = (b"<html><body><script>var _ = function (msg) { parent.s._(msg, document); };"
            b"</script>" + b" " * 173)
P_REGEX = re.compile(r'io.j\[(\d+)\]\("(.*)"\);')  # socketIO-client's JSONP parser
NASTY = "a</script><script>x()</script><!-- \u2028 \"q\" \\ \n😀"
ALLOWED = "http://allowed.example:8000"
REFUSED = "http://evil.example"


@pytest.fixture(params=KINDS)
def server(request, live_server):
    kind, mode = request.param
    return live_server(kind, websocket_mode=mode, **OPTIONS)


def disconnects(server, sid):
    return [e for e in server.events(sid) if e["event"] == "disconnect"]


# ---------------------------------------------------------------------------
# a raw streaming HTTP/1.1 client
# ---------------------------------------------------------------------------


class ChunkedStream:
    """A GET whose chunked body is read chunk by chunk as it arrives."""

    def __init__(self, server, path: str, headers: dict[str, str] | None = None):
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        lines = [f"GET {path} HTTP/1.1", f"Host: {server.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in head[1:])}
        self.ended = False

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buffer += data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found

    def chunk(self, timeout: float = 30.0) -> bytes | None:
        """The next chunk's data, or None at the terminating chunk."""
        self.sock.settimeout(timeout)
        size = int(self._read_until(b"\r\n").split(b";")[0], 16)
        data = self._read_exactly(size)
        assert self._read_exactly(2) == b"\r\n"
        if size == 0:
            self.ended = True
            return None
        return data

    def close(self) -> None:
        self.sock.close()


def script_payload(chunk: bytes) -> str:
    """The payload of one ``<script>_("...");</script>`` chunk, checked to be
    unable to break out of its script."""
    text = chunk.decode("utf-8")
    match = re.fullmatch(r'<script>_\((".*")\);</script>', text, re.S)
    assert match, text
    literal = match.group(1)
    assert "</" not in literal and "<!--" not in literal, literal
    return json.loads(literal.replace("\\/", "/"))


def payloads_until(stream: ChunkedStream, predicate, timeout: float = 30.0) -> list[str]:
    """Read chunks until ``predicate(packets so far)``; heartbeats included."""
    packets: list[str] = []
    deadline = time.monotonic() + timeout
    while not predicate(packets):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {packets!r}"
        chunk = stream.chunk(timeout=remaining)
        assert chunk is not None, f"the stream ended; got {packets!r}"
        packets.extend(decode_payload(script_payload(chunk)))
    return packets


def post(server, transport: str, sid: str, body: str, **kw) -> requests.Response:
    return requests.post(f"{server.url}/socket.io/1/{transport}/{sid}", data=body.encode("utf-8"),
                         headers={"Content-Type": "text/plain;charset=UTF-8"}, timeout=30, **kw)


# ---------------------------------------------------------------------------
# htmlfile
# ---------------------------------------------------------------------------


def test_htmlfile_streams_chunked(server):
    sid = handshake(server)[0]
    stream = ChunkedStream(server, f"/socket.io/1/htmlfile/{sid}?t=1")
    try:
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/html; charset=UTF-8"
        assert stream.headers.get("transfer-encoding") == "chunked"
        assert "content-length" not in stream.headers
        assert stream.chunk() == PREAMBLE
        assert stream.chunk() == b'<script>_("1::");</script>'
        # Data posted now comes down the open stream, each write as it happens.
        assert post(server, "htmlfile", sid, event_packet("emit_texts", [NASTY, "two"], ack_id=1)).text == "1"
        got = payloads_until(stream, lambda p: any(x.startswith("6:::1+") for x in p))
        texts = [parse_event(p)[1] for p in got if p.startswith("5:")]
        assert texts == [[NASTY], ["two"]]
        # Heartbeats flow over the stream; the client answers with POSTs.
        payloads_until(stream, lambda p: "2::" in p, timeout=15)
        assert post(server, "htmlfile", sid, "2::").text == "1"
        server.server_emit("pushed", "late", to=sid)
        got = payloads_until(stream, lambda p: any('"pushed"' in x for x in p))
        assert parse_event(next(x for x in got if '"pushed"' in x)) == ("pushed", ["late"])
    finally:
        stream.close()


def test_htmlfile_client_gone_ends_the_session(server):
    sid = handshake(server)[0]
    stream = ChunkedStream(server, f"/socket.io/1/htmlfile/{sid}?t=1")
    assert stream.chunk() == PREAMBLE
    assert script_payload(stream.chunk()) == "1::"
    stream.close()  # like a closed tab: no disconnect packet
    # The next writes (heartbeats, every second) fail and end the session: the
    # wait ends before heartbeat_timeout (20 s) or close_timeout (20 s) could.
    wait_until(lambda: disconnects(server, sid), timeout=15,
               message="the disconnect handler after the stream's client went away")
    assert len(disconnects(server, sid)) == 1
    later = requests.get(f"{server.url}/socket.io/1/xhr-polling/{sid}", timeout=30)
    assert later.text == "7:::1+0"


@pytest.mark.parametrize(("kind", "mode"), [p.values[0] for p in KINDS],
                         ids=[p.id for p in KINDS])
def test_htmlfile_client_hang_up_is_seen_before_any_heartbeat(live_server, kind, mode):
    """A closed tab (FIN) with no heartbeat due for 30 s: the session ends
    all the same, and a poll on its sid is told so (a write to the stream
    would only notice at the second heartbeat, a minute on)."""
    server = live_server(kind, websocket_mode=mode, heartbeat_interval=30,
                         heartbeat_timeout=60, close_timeout=60, polling_duration=2)
    sid = handshake(server)[0]
    stream = ChunkedStream(server, f"/socket.io/1/htmlfile/{sid}?t=1")
    assert stream.chunk() == PREAMBLE
    assert script_payload(stream.chunk()) == "1::"
    stream.close()
    wait_until(lambda: disconnects(server, sid), timeout=20,
               message="the disconnect handler after the htmlfile client hung up")
    later = requests.get(f"{server.url}/socket.io/1/xhr-polling/{sid}", timeout=30)
    assert later.text == "7:::1+0"


def test_htmlfile_server_disconnect_ends_the_stream(server):
    sid = handshake(server)[0]
    stream = ChunkedStream(server, f"/socket.io/1/htmlfile/{sid}?t=1")
    try:
        stream.chunk()
        stream.chunk()
        post(server, "htmlfile", sid, event_packet("server_disconnect"))
        payloads_until(stream, lambda p: "0::" in p)
        while stream.chunk() is not None:  # heartbeats, if any, then the end
            pass
        assert stream.ended
        wait_until(lambda: disconnects(server, sid), message="the disconnect handler")
    finally:
        stream.close()


def test_htmlfile_unknown_sid(server):
    response = requests.get(f"{server.url}/socket.io/1/htmlfile/notasession", timeout=30)
    assert response.status_code == 200
    assert response.content == PREAMBLE + b'<script>_("7:::1+0");</script>'


# ---------------------------------------------------------------------------
# jsonp-polling
# ---------------------------------------------------------------------------


def jsonp_get(server, sid: str, i: str = "1", **kw) -> requests.Response:
    response = requests.get(f"{server.url}/socket.io/1/jsonp-polling/{sid}",
                            params={"t": str(int(time.time() * 1000)), "i": i}, timeout=30, **kw)
    response.encoding = "utf-8"
    return response


def jsonp_post(server, sid: str, payload: str, i: str = "1") -> requests.Response:
    # what socket.io-client's hidden form sends: d = the JSON-encoded payload
    return requests.post(f"{server.url}/socket.io/1/jsonp-polling/{sid}",
                         params={"t": "1", "i": i}, data={"d": json.dumps(payload)}, timeout=30)


def jsonp_packets(response: requests.Response, i: str) -> list[str]:
    match = P_REGEX.fullmatch(response.text)
    assert match and match.group(1) == i, response.text
    return decode_payload(json.loads(response.text[len(f"io.j[{i}]("):-2]))


def test_jsonp_poll_answers(server):
    sid = handshake(server)[0]
    first = jsonp_get(server, sid, "3")
    assert (first.status_code, first.text) == (200, 'io.j[3]("1::");')
    assert first.headers["Content-Type"] == "text/javascript; charset=UTF-8"
    assert first.headers["X-XSS-Protection"] == "0"
    assert first.headers["Content-Length"] == str(len(first.content))
    noop = jsonp_get(server, sid, "3")
    assert noop.text == 'io.j[3]("8::");'


def test_jsonp_round_trip_with_escaping(server):
    sid = handshake(server)[0]
    jsonp_get(server, sid)
    answer = jsonp_post(server, sid, event_packet("echo", NASTY, "+&=%", ack_id=1))
    assert (answer.status_code, answer.text) == (200, "1")
    received: list[str] = []

    def acked():
        received.extend(jsonp_packets(jsonp_get(server, sid), "1"))
        return any(p.startswith("6:::1+") for p in received)

    wait_until(acked, message=lambda: f"the ack; got {received!r}")
    ack = next(p for p in received if p.startswith("6:::1+"))
    assert json.loads(ack[len("6:::1+"):]) == [NASTY, "+&=%"]


def test_jsonp_bad_index_is_refused(server):
    sid = handshake(server)[0]
    for index in ("x", "-1", "1);alert(1)//", ""):
        response = jsonp_get(server, sid, index)
        assert response.status_code == 400, index
        assert "alert" not in response.text


def test_jsonp_unknown_sid(server):
    assert jsonp_get(server, "notasession", "9").text == 'io.j[9]("7:::1+0");'


# ---------------------------------------------------------------------------
# a poll the client gave up on
# ---------------------------------------------------------------------------


def poll_packets(server, transport: str, sid: str, timeout: float) -> list[str]:
    """One xhr-polling or jsonp-polling GET's packets (``requests``' timeout:
    a client that gives up on the poll)."""
    response = requests.get(f"{server.url}/socket.io/1/{transport}/{sid}",
                            params={"t": "1", "i": "0"}, timeout=timeout)
    if transport == "jsonp-polling":
        response.encoding = "utf-8"
        return jsonp_packets(response, "0")
    return decode_payload(response.text)


@pytest.fixture(params=KINDS)
def slow_poll_server(request, live_server):
    """Polls held 5 s and heartbeats every 15 s: a poll is answered only when
    something is emitted to it (or after 5 s), never within its first second."""
    kind, mode = request.param
    return live_server(kind, websocket_mode=mode,
                       **dict(OPTIONS, heartbeat_interval=15, polling_duration=5))


@pytest.mark.parametrize("transport", ["xhr-polling", "jsonp-polling"])
def test_a_poll_the_client_gave_up_on_keeps_its_packets(slow_poll_server, transport):
    """socketIO-client 0.5 ends a poll after its own timeout and sends the next
    one: what is emitted after it gave up must come with its next poll, not be
    written to the abandoned one."""
    server = slow_poll_server
    sid = handshake(server)[0]

    def poll(timeout: float) -> list[str]:
        return poll_packets(server, transport, sid, timeout)

    assert poll(30) == ["1::"]
    for round_ in range(3):
        with pytest.raises(requests.exceptions.ReadTimeout):
            poll(0.5)  # given up: the server holds the poll for 5 s
        server.server_emit("pushed", round_, to=sid)
        received: list[str] = []
        for _ in range(3):  # the next poll, or the one after a noop
            received += poll(30)
            if any('"pushed"' in p for p in received):
                break
        assert [parse_event(p) for p in received if '"pushed"' in p] == [("pushed", [round_])]


@pytest.mark.parametrize("transport", ["xhr-polling", "jsonp-polling"])
def test_a_server_disconnect_after_a_given_up_poll_reaches_the_next_poll(slow_poll_server,
                                                                         transport):
    """The session ends while the poll the client gave up on is still held
    (thread mode notices the hang-up only when it answers): the session's last
    packets, what the handler emitted and the ``0::``, go to the next poll, as
    they do when no poll was attached, rather than a ``7:::1+0`` that would
    make the client reconnect."""
    server = slow_poll_server
    sid = handshake(server)[0]
    url = f"{server.url}/socket.io/1/{transport}/{sid}"

    def poll(timeout: float) -> list[str]:
        return poll_packets(server, transport, sid, timeout)

    assert poll(30) == ["1::"]
    with pytest.raises(requests.exceptions.ReadTimeout):
        poll(0.5)  # given up: the server holds the poll for 5 s
    # one upload: the handler's emit, then a handler that disconnects the client
    payload = encode_payload([event_packet("emit_many", 1, "bye"),
                              event_packet("server_disconnect")])
    if transport == "jsonp-polling":
        assert jsonp_post(server, sid, payload, "0").status_code == 200
    else:
        assert requests.post(url, data=payload.encode("utf-8"), timeout=30).status_code == 200
    received: list[str] = []
    for _ in range(3):  # (a noop may come first, from the given-up poll's time)
        received += poll(30)
        if "0::" in received:
            break
    assert received[-1] == "0::", received
    assert ("bye", [0]) in [parse_event(p) for p in received if p.startswith("5:")]


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
def test_a_session_ended_before_its_transport_opened_says_so_on_every_transport(server,
                                                                              transport):
    """The server disconnects a client that has handshaken but opened no
    transport yet: its first transport gets the ``0::`` (the client was
    told to go), whichever it is; a WebSocket was told ``7:::1+0`` and its
    client reconnected, undoing the kick."""
    kicker_sid = handshake(server)[0]
    kicker = websocket.create_connection(f"{server.ws_url}/socket.io/1/websocket/{kicker_sid}",
                                         timeout=30)
    try:
        assert kicker.recv() == "1::"
        sid = handshake(server)[0]
        kicker.send(event_packet("kick", sid, ack_id=1))
        while (answer := kicker.recv()) == "2::":  # (heartbeats)
            pass
        assert answer == '6:::1+["kicked"]'
    finally:
        kicker.close()
    if transport == "websocket":
        ws = websocket.create_connection(f"{server.ws_url}/socket.io/1/websocket/{sid}",
                                         timeout=30)
        try:
            opcode, data = ws.recv_data()
            assert (opcode, data) == (websocket.ABNF.OPCODE_TEXT, b"0::")
            opcode, data = ws.recv_data(control_frame=True)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
        finally:
            ws.close()
    else:
        poll = requests.get(f"{server.url}/socket.io/1/xhr-polling/{sid}", timeout=30)
        assert poll.text == "0::"
    # told once: the session is gone for the next request
    again = requests.get(f"{server.url}/socket.io/1/xhr-polling/{sid}", timeout=30)
    assert again.text == "7:::1+0"
    # it never opened, so its connect handler never ran, nor its disconnect handler
    assert [e["event"] for e in server.events(sid)
            if e["event"] in ("connect", "disconnect")] == []


# ---------------------------------------------------------------------------
# cross-origin
# ---------------------------------------------------------------------------


@pytest.fixture
def cors_server(live_server):
    return live_server("sio_run", cors_allowed_origins=[ALLOWED],
                       transports=["websocket", "flashsocket", "htmlfile", "xhr-polling",
                                   "jsonp-polling"], **OPTIONS)


def test_cors_handshake_and_polls(cors_server):
    ok = requests.get(f"{cors_server.url}/socket.io/1/", headers={"Origin": ALLOWED}, timeout=30)
    assert ok.status_code == 200
    assert ok.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    sid = ok.text.split(":")[0]
    poll = requests.get(f"{cors_server.url}/socket.io/1/xhr-polling/{sid}",
                        headers={"Origin": ALLOWED}, timeout=30)
    assert (poll.text, poll.headers["Access-Control-Allow-Origin"]) == ("1::", ALLOWED)
    refused = requests.get(f"{cors_server.url}/socket.io/1/", headers={"Origin": REFUSED}, timeout=30)
    assert (refused.status_code, refused.text) == (403, "handshake bad origin")
    assert "Access-Control-Allow-Origin" not in refused.headers
    jsonp = requests.get(f"{cors_server.url}/socket.io/1/", params={"jsonp": "0"},
                         headers={"Referer": REFUSED + "/page"}, timeout=30)
    assert jsonp.text == 'io.j[0](new Error("handshake bad origin"));'
    preflight = requests.options(f"{cors_server.url}/socket.io/1/xhr-polling/{sid}",
                                 headers={"Origin": ALLOWED,
                                          "Access-Control-Request-Method": "POST"}, timeout=30)
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == ALLOWED


@pytest.mark.parametrize("transport", ["websocket", "flashsocket"])
def test_cors_upgrade_refused_origin(cors_server, transport):
    sid = handshake(cors_server)[0]
    url = f"{cors_server.ws_url}/socket.io/1/{transport}/{sid}"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=30, origin=REFUSED)
    assert refused.value.status_code == 403
    ws = websocket.create_connection(url, timeout=30, origin=ALLOWED)
    try:
        assert ws.recv() == "1::"
    finally:
        ws.close()


@pytest.mark.parametrize(("kind", "mode"), [p.values[0] for p in KINDS],
                         ids=[p.id for p in KINDS])
def test_a_page_elsewhere_that_hides_its_referrer_is_refused(live_server, kind, mode):
    """Default origin rule. A page with ``Referrer-Policy: no-referrer`` sends
    neither Origin nor Referer on its script tags; the browser's
    ``Sec-Fetch-Site`` still tells a cross-site request from the server's own
    pages. Checked on the handshake and on polls, the second poll of a kept
    connection included (the hub reads those requests itself)."""
    server = live_server(kind, websocket_mode=mode, **OPTIONS)
    cross = {"Sec-Fetch-Site": "cross-site"}
    jsonp = requests.get(f"{server.url}/socket.io/1/", params={"jsonp": "0"}, headers=cross,
                         timeout=30)
    assert jsonp.text == 'io.j[0](new Error("handshake bad origin"));'
    own = {"Sec-Fetch-Site": "same-origin"}
    with requests.Session() as kept:
        answer = kept.get(f"{server.url}/socket.io/1/", headers=own, timeout=30)
        sid = answer.text.split(":")[0]
        url = f"{server.url}/socket.io/1/jsonp-polling/{sid}"
        assert kept.get(url, params={"i": "1"}, headers=own, timeout=30).text == 'io.j[1]("1::");'
        refused = kept.get(url, params={"i": "1"}, headers=cross, timeout=30)
        assert refused.status_code == 403
        # a no-referrer page's own form POST carries "Origin: null"
        posted = kept.post(url, params={"i": "1"}, data={"d": '"3:::hi"'},
                           headers={**own, "Origin": "null"}, timeout=30)
        assert (posted.status_code, posted.text) == (200, "1")


@pytest.mark.parametrize(("kind", "mode"), [p.values[0] for p in KINDS],
                         ids=[p.id for p in KINDS])
def test_a_jsonp_script_with_the_users_cookie_and_no_origin_at_all_is_refused(
        live_server, kind, mode):
    """Over plain HTTP a browser sends no ``Sec-Fetch-Site``: a page elsewhere
    (another subdomain) with ``Referrer-Policy: no-referrer`` loads the JSONP
    handshake and polls as script tags that carry the user's cookie and say
    nothing of their origin, and reads the user's packets through ``io.j``.
    Refused; without a cookie (a non-browser client), or with the app's own
    Referer, such a request still passes. Checked on the handshake and on the
    polls, the second poll of a kept connection included."""
    server = live_server(kind, websocket_mode=mode, **OPTIONS)
    cookie = {"Cookie": "session=the-users"}
    jsonp = requests.get(f"{server.url}/socket.io/1/", params={"jsonp": "0"}, headers=cookie,
                         timeout=30)
    assert jsonp.text == 'io.j[0](new Error("handshake bad origin"));'
    own = {**cookie, "Referer": f"{server.url}/page"}
    with requests.Session() as kept:
        answer = kept.get(f"{server.url}/socket.io/1/", params={"jsonp": "0"}, headers=own,
                          timeout=30)
        sid = answer.text.split('"')[1].split(":")[0]
        url = f"{server.url}/socket.io/1/jsonp-polling/{sid}"
        assert kept.get(url, params={"i": "1"}, headers=own, timeout=30).text == \
            'io.j[1]("1::");'
        refused = kept.get(url, params={"i": "1"}, headers=cookie, timeout=30)
        assert refused.status_code == 403
    basic = requests.get(f"{server.url}/socket.io/1/", params={"jsonp": "0"},
                         headers={"Authorization": "Basic dXNlcjpwdw=="}, timeout=30)
    assert basic.text == 'io.j[0](new Error("handshake bad origin"));'
    bare = requests.get(f"{server.url}/socket.io/1/", params={"jsonp": "0"}, timeout=30)
    assert bare.text.startswith('io.j[0]("') and "Error" not in bare.text
