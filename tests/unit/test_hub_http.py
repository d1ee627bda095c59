"""Timers of the polling connections the hub keeps (hub_http.py), driven on a
real hub over socketpairs: a connection must never be left without one while
bytes it wrote wait for a client that reads nothing."""

import math
import socket
import time

import pytest

from flask_sio09 import http11, hub_http
from flask_sio09.hub import Hub
from flask_sio09.server import Options, Server
from tests.unit.doubles import EchoApp, wait_until


@pytest.fixture
def server(request):
    """A server with a hub; ``parametrize("server", [{option: value}], indirect=True)``
    changes its options."""
    options = {"polling_duration": 0.5, "close_timeout": 1, **getattr(request, "param", {})}
    srv = Server(Options(**options), EchoApp(), monitor=False)
    srv.hub = Hub(srv)
    yield srv
    srv.shutdown()


def kept_connection(server, fill: bool):
    """A kept connection back from a request of the whole app (as after
    ``_elsewhere``); with ``fill`` that answer left the socket's send buffer
    full, as a large answer written by ``hub_wsgi`` can."""
    ours, theirs = socket.socketpair()
    for sock in (ours, theirs):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ours.setblocking(False)
    conn = hub_http.HubHTTP(server.hub, ours, {"SCRIPT_NAME": ""}, b"", lambda e, s: [])
    handed = []

    def first(c):
        if fill:
            try:
                while True:
                    c.sock.send(b"x" * 1024)
            except BlockingIOError:
                pass
        c.state, c.deadline = hub_http.ELSEWHERE, math.inf  # what _elsewhere does
        server.hub.unregister(c)
        handed.append(True)

    server.hub.call(lambda: conn.start(first))
    assert wait_until(lambda: handed)
    return conn, theirs


@pytest.mark.parametrize("fill", [False, True], ids=["taken", "not-taken"])
def test_a_100_continue_the_client_does_not_take_still_ends_the_connection(server, fill,
                                                                          monkeypatch):
    """A pipelined POST awaiting 100 Continue, read when the connection comes
    back from the pool: whether or not the client takes the 100, a client
    that then sends nothing and reads nothing is dropped."""
    monkeypatch.setattr(hub_http, "KEEP_ALIVE_SECONDS", 1.0)
    conn, theirs = kept_connection(server, fill)
    session = server.new_session({"QUERY_STRING": ""})
    pipelined = (f"POST /socket.io/1/xhr-polling/{session.sid} HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 10\r\nExpect: 100-continue\r\n\r\n").encode()
    try:
        server.hub.call(lambda: conn._back(True, pipelined))
        assert wait_until(lambda: conn.state == hub_http.BODY)
        assert bool(conn.out) is fill  # (the 100 Continue waits when not taken)
        # close_timeout (1 s) or the keep-alive timer, whichever applies
        assert wait_until(lambda: conn.closed, deadline=hub_http.KEEP_ALIVE_SECONDS + 20)
    finally:
        theirs.close()


def test_an_upload_answer_held_for_handlers_that_never_finish_goes_after_close_timeout(server):
    """An upload's answer waits for its session's handlers (the inbound limit),
    but at most ``close_timeout`` (1 s here), as a request thread waits in
    thread mode: a handler stuck for good must not hold the connection."""
    import threading

    conn, theirs = kept_connection(server, fill=False)
    session = server.new_session({"QUERY_STRING": ""})
    stuck = threading.Event()
    server.workers.submit(session, lambda: stuck.wait(30))
    answer = ("200 OK", [("Content-Length", "1")], b"1")
    try:
        server.hub.call(lambda: conn._back(True, b""))  # the connection is the hub's again
        assert wait_until(lambda: conn.state == hub_http.IDLE)
        server.hub.call(lambda: conn.respond_when_handled(session, answer))
        theirs.settimeout(20)
        got = b""
        while b"\r\n\r\n1" not in got:
            chunk = theirs.recv(4096)
            assert chunk, got
            got += chunk
        assert got.startswith(b"HTTP/1.1 200 OK") and not stuck.is_set()
        assert wait_until(lambda: conn.state == hub_http.IDLE)
    finally:
        stuck.set()
        theirs.close()


def test_an_answer_sent_at_its_deadline_does_not_release_the_next_one_early(server):
    """The handlers of the first held upload finish after its deadline sent
    its answer; by then the next upload's answer waits for handlers of its
    own, and must go on waiting for them."""
    import threading

    conn, theirs = kept_connection(server, fill=False)
    session = server.new_session({"QUERY_STRING": ""})
    first_gate, second_gate = threading.Event(), threading.Event()
    server.workers.submit(session, lambda: first_gate.wait(30))
    first = ("200 OK", [("Content-Length", "1")], b"A")
    second = ("200 OK", [("Content-Length", "1")], b"B")
    theirs.settimeout(20)

    def read_until(marker: bytes) -> bytes:
        got = b""
        while marker not in got:
            chunk = theirs.recv(4096)
            assert chunk, got
            got += chunk
        return got

    try:
        server.hub.call(lambda: conn._back(True, b""))
        assert wait_until(lambda: conn.state == hub_http.IDLE)
        server.hub.call(lambda: conn.respond_when_handled(session, first))
        read_until(b"\r\n\r\nA")  # at close_timeout (1 s), the handler still stuck
        assert wait_until(lambda: conn.state == hub_http.IDLE)
        server.workers.submit(session, lambda: second_gate.wait(30))
        server.hub.call(lambda: conn.respond_when_handled(session, second))
        assert wait_until(lambda: conn.state == hub_http.HELD)
        first_gate.set()  # the first upload's handlers are done: not the second's
        theirs.settimeout(0.5)
        try:
            early = theirs.recv(4096)
        except TimeoutError:
            early = b""
        assert b"B" not in early, early
        theirs.settimeout(20)
        second_gate.set()
        read_until(b"\r\n\r\nB")
    finally:
        first_gate.set()
        second_gate.set()
        theirs.close()


def held_answer(server, session):
    """A held upload answer on a connection not kept alive (hub.HubHeldAnswer)."""
    from flask_sio09.hub import HubHeldAnswer

    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    conn = HubHeldAnswer(server.hub, ours, session, b"HTTP/1.1 200 OK\r\n\r\n1")
    server.hub.call(conn.start)
    return conn, theirs


def read_to_end(sock) -> bytes:
    sock.settimeout(20)
    got = b""
    while chunk := sock.recv(4096):
        got += chunk
    return got


def test_a_held_answer_not_kept_alive_goes_when_the_handlers_have_run_then_closes(server):
    import threading

    session = server.new_session({"QUERY_STRING": ""})
    gate = threading.Event()
    server.workers.submit(session, lambda: gate.wait(30))
    conn, theirs = held_answer(server, session)
    try:
        theirs.settimeout(0.2)
        with pytest.raises(TimeoutError):  # nothing while the handler runs
            theirs.recv(1)
        gate.set()
        assert read_to_end(theirs) == b"HTTP/1.1 200 OK\r\n\r\n1"
        assert wait_until(lambda: conn.closed)
    finally:
        gate.set()
        theirs.close()


def test_a_held_answer_not_kept_alive_goes_after_close_timeout_and_to_a_half_closed_client(
        server):
    """Handlers stuck for good: the answer goes after close_timeout (1 s here).
    A client that half-closed once its request was sent still gets it; one
    that went away for good costs its connection no longer than that."""
    import threading

    session = server.new_session({"QUERY_STRING": ""})
    stuck = threading.Event()
    server.workers.submit(session, lambda: stuck.wait(30))
    late, late_peer = held_answer(server, session)
    half, half_peer = held_answer(server, session)
    gone, gone_peer = held_answer(server, session)
    try:
        half_peer.shutdown(socket.SHUT_WR)
        gone_peer.close()
        assert read_to_end(late_peer) == b"HTTP/1.1 200 OK\r\n\r\n1"
        assert read_to_end(half_peer) == b"HTTP/1.1 200 OK\r\n\r\n1"
        assert not stuck.is_set()
        assert wait_until(lambda: late.closed and half.closed and gone.closed)
    finally:
        stuck.set()
        late_peer.close()
        half_peer.close()


# -- routing a kept connection's request -------------------------------------------

class _Routing:
    """What ``HubHTTP._route`` reads of its connection: the facts of the
    head's headers, as ``_read_head`` finds them before routing (the check
    of the path against SCRIPT_NAME left out: routing is tested alone)."""

    def __init__(self, template):
        self.template, self.resource = template, "socket.io"

    def route(self, head):
        from flask_sio09 import hub_wsgi

        self.facts = hub_http.HeaderFacts(hub_wsgi.check_forwarding_headers(self.template, head),
                                          head)
        return hub_http.HubHTTP._route(self, head)


def _head(target: str, *headers: str):
    from flask_sio09.http11 import parse_head

    lines = "".join(f"{h}\r\n" for h in ("Host: h", *headers))
    return parse_head(f"GET {target} HTTP/1.1\r\n{lines}\r\n".encode())


def _trusted_proxy_template():
    from flask_sio09 import hub_wsgi

    class Config:
        secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}
        forwarder_headers = ["SCRIPT_NAME"]
        forwarded_allow_ips = ["127.0.0.1"]
        is_ssl = False

    return {"SCRIPT_NAME": "", hub_wsgi.FORWARDING: hub_wsgi.forwarding_policy(Config(), "127.0.0.1")}


def test_the_route_follows_each_requests_script_name_though_the_path_is_the_same():
    """A trusted proxy's SCRIPT_NAME header, per request, on one connection:
    the same path routes as ours with one prefix and not with another (the
    remembered routes are keyed by both)."""
    from flask_sio09.protocol import Route

    conn = _Routing(_trusted_proxy_template())
    path = "/pre/socket.io/1/xhr-polling/abc"
    for _ in range(2):  # (the second time from what is remembered)
        assert conn.route(_head(path, "SCRIPT_NAME: /pre")) == Route("1", "xhr-polling", "abc")
        assert conn.route(_head(path)) is None
        assert conn.route(_head(path, "SCRIPT_NAME: /other")) is None
        assert conn.route(_head("/socket.io/1/xhr-polling/abc")) == \
            Route("1", "xhr-polling", "abc")


@pytest.mark.parametrize("target", ["/socket.io/2/xhr-polling/abc", "/socket.io/", "/socket.io",
                                    "/socket.iox/1/xhr-polling/abc", "/other/1/xhr-polling/a"])
def test_only_protocol_1_routes_are_the_hubs(target):
    conn = _Routing({"SCRIPT_NAME": ""})
    for _ in range(2):
        assert conn.route(_head(target)) is None


def test_long_paths_are_routed_but_not_remembered():
    from flask_sio09.protocol import Route

    conn = _Routing({"SCRIPT_NAME": ""})
    hub_http._route_of.cache_clear()
    sid = "s" * 4000
    assert conn.route(_head(f"/socket.io/1/xhr-polling/{sid}")) == Route("1", "xhr-polling", sid)
    assert conn.route(_head("/socket.io/1/xhr-polling/short")) == \
        Route("1", "xhr-polling", "short")
    assert hub_http._route_of.cache_info().currsize == 1


def test_the_origin_answer_is_kept_per_header_block_and_follows_the_setting():
    """A kept connection asks the origin check once per header block, and
    again whenever ``cors_allowed_origins`` changes, in place included."""
    from types import SimpleNamespace

    from flask_sio09.http11 import parse_head

    allowed = ["http://a"]
    conn = SimpleNamespace(server=SimpleNamespace(options=SimpleNamespace(
        cors_allowed_origins=allowed)))
    head = parse_head(b"POST /x HTTP/1.1\r\nHost: h\r\nOrigin: http://a\r\n\r\n")
    facts = hub_http.HeaderFacts("", head)
    environ = dict(facts.origin_environ)
    assert environ == {"HTTP_HOST": "h", "HTTP_ORIGIN": "http://a"}

    def origin_ok():
        return hub_http.HubHTTP._origin_ok(conn, facts, environ)

    assert origin_ok() is True
    assert origin_ok() is True
    allowed[0] = "http://b"  # (changed in place)
    assert origin_ok() is False
    conn.server.options.cors_allowed_origins = "*"
    assert origin_ok() is True
    conn.server.options.cors_allowed_origins = None  # same origin only: the Host is h
    assert origin_ok() is False
    # any collection the check reads, assigned at run time and changed in place
    origins = {"http://a"}
    conn.server.options.cors_allowed_origins = origins
    assert origin_ok() is True
    origins.discard("http://a")
    origins.add("http://b")
    assert origin_ok() is False
    origins.add("http://a")
    assert origin_ok() is True
    conn.server.options.cors_allowed_origins = ("http://b",)
    assert origin_ok() is False


# -- the header memo on a real kept connection ----------------------------------

GUNICORN_LIMITS = {"SCRIPT_NAME": "", "sio09.limits": (4094, 8188, 100, "drop")}


def _idle_kept(server, template):
    """A kept connection waiting for its next request, and the client's end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(20)
    conn = hub_http.HubHTTP(server.hub, ours, dict(template), b"", lambda e, s: [])
    server.hub.call(lambda: conn.start(lambda c: None))
    return conn, theirs


def _ask(sock, request: bytes, with_headers: bool = False):
    """Send one request; read its answer's status and body (with
    ``with_headers``, and its headers: lower-cased names to values). An
    answer without a Content-Length is read as one without a body."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        body += sock.recv(65536)
    assert len(body) == length, "more than one answer came"
    status = int(lines[0].split(" ")[1])
    return (status, body, headers) if with_headers else (status, body)


def _upload(sid: str, *headers: str, body: bytes = b"2::") -> bytes:
    lines = "".join(f"{h}\r\n" for h in ("Host: h", *headers))
    return (f"POST /socket.io/1/xhr-polling/{sid}?t={time.monotonic_ns()} HTTP/1.1\r\n{lines}"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def test_a_kept_connection_reads_repeated_headers_from_its_own_memo(server):
    """Under gunicorn's limits too, the second request with the same header
    lines comes from the memo with what the hub derived from them; another
    connection has a memo of its own."""
    session = server.new_session({"QUERY_STRING": ""})
    conn, theirs = _idle_kept(server, GUNICORN_LIMITS)
    other, other_end = _idle_kept(server, GUNICORN_LIMITS)
    try:
        assert _ask(theirs, _upload(session.sid, "X-Client: a")) == (200, b"1")
        first = conn.head
        assert _ask(theirs, _upload(session.sid, "X-Client: a")) == (200, b"1")
        assert conn.head is not first and conn.head.block is first.block
        assert first.block is not None and first.block.derived is conn.facts
        assert other.memo is not conn.memo and not other.memo.blocks
        assert _ask(other_end, _upload(session.sid, "X-Client: a")) == (200, b"1")
        assert other.head.block is not conn.head.block
    finally:
        theirs.close()
        other_end.close()


def test_every_request_of_a_kept_connection_has_its_origin_checked(server):
    """The origin check's answer is kept per header block: each upload of
    one connection gets its own headers' answer, whatever came before."""
    session = server.new_session({"QUERY_STRING": ""})
    conn, theirs = _idle_kept(server, GUNICORN_LIMITS)
    pad = "X-Pad: " + "p" * (http11.MEMO_BLOCK_CHARS + 100)  # (too long for the memo)
    try:
        for headers, status in [
                ((), 200), (("Origin: http://evil.example",), 403), ((), 200),
                (("Origin: http://h",), 200), (("Origin: http://evil.example",), 403),
                (("Referer: http://evil.example/page",), 403), (("Referer: http://h/page",), 200),
                (("Origin: http://evil.example", "Origin: http://h"), 403),
                (("Sec-Fetch-Site: same-origin", "Origin: http://evil.example"), 200),
                (("Sec-Fetch-Site:",), 403), ((pad,), 200),
                ((pad, "Origin: http://evil.example"), 403), ((), 200)]:
            for _ in range(2):  # (the second time from the memo, where it fits)
                assert _ask(theirs, _upload(session.sid, *headers))[0] == status, headers
    finally:
        theirs.close()


def test_header_facts_keep_the_origin_headers_as_the_wsgi_server_would():
    from flask_sio09.http11 import parse_head

    head = parse_head(b"GET / HTTP/1.1\r\nHost: h\r\nOrigin: http://evil\r\nOrigin: http://h\r\n"
                      b"Sec-Fetch-Site:\r\nCookie: a=b\r\nX-Other: 1\r\n\r\n")
    assert hub_http.HeaderFacts("/s", head).origin_environ == {
        "HTTP_HOST": "h", "HTTP_ORIGIN": "http://evil,http://h", "HTTP_SEC_FETCH_SITE": "",
        "HTTP_COOKIE": "a=b"}


# -- refusals and the end of a kept connection ------------------------------------

def _poll(sid: str) -> bytes:
    return f"GET /socket.io/1/xhr-polling/{sid}?t={time.monotonic_ns()} HTTP/1.1\r\n" \
           "Host: h\r\n\r\n".encode()


def _last_answer_then_the_end(server, session, request: bytes, upload_first: bool = False):
    """On a kept connection (after an upload of ``session``'s, with
    ``upload_first``), ``request``'s status and body: its answer must say
    ``Connection: close`` and be the last thing the connection carries."""
    conn, theirs = _idle_kept(server, GUNICORN_LIMITS)
    try:
        if upload_first:
            assert _ask(theirs, _upload(session.sid)) == (200, b"1")
        status, body, headers = _ask(theirs, request, with_headers=True)
        assert headers.get("connection") == "close"
        assert read_to_end(theirs) == b""
        return status, body
    finally:
        theirs.close()


def test_a_websocket_upgrade_from_a_foreign_origin_on_a_kept_connection_is_403(server):
    """A page of another site must not open a WebSocket by reusing a kept
    polling connection: the upgrade gets the 403 a fresh connection gets,
    not a 101, and the connection ends."""
    session = server.new_session({"QUERY_STRING": ""})
    upgrade = (f"GET /socket.io/1/websocket/{session.sid} HTTP/1.1\r\nHost: h\r\n"
               "Origin: http://evil.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    assert _last_answer_then_the_end(server, session, upgrade, upload_first=True) == \
        (403, b"bad origin")


def test_a_chunked_upload_on_a_kept_connection_is_411_and_the_connection_ends(server):
    """A chunked body is not read: its chunks would be taken for the next
    request. The client gets a 411 and the end of the connection."""
    session = server.new_session({"QUERY_STRING": ""})
    chunked = (f"POST /socket.io/1/xhr-polling/{session.sid} HTTP/1.1\r\nHost: h\r\n"
               "Transfer-Encoding: chunked\r\n\r\n3\r\n2::\r\n0\r\n\r\n").encode()
    assert _last_answer_then_the_end(server, session, chunked) == (411, b"")


def test_a_request_saying_connection_close_on_a_kept_connection_gets_its_answer_then_the_end(
        server):
    """The client asked for the connection to end after this request: its
    answer says ``Connection: close`` and the connection ends, rather than
    staying open for a request that never comes."""
    session = server.new_session({"QUERY_STRING": ""})
    assert _last_answer_then_the_end(server, session, _upload(session.sid, "Connection: close"),
                                     upload_first=True) == (200, b"1")


@pytest.mark.parametrize("server", [{"max_http_buffer_size": 1000}], indirect=True)
def test_a_413_for_a_body_read_and_dropped_still_ends_the_kept_connection(server):
    """A body somewhat over the limit (here 1,500 bytes of 1,000) is read and
    dropped so that the client can read its 413; the 413 (which closes the
    session) still says ``Connection: close`` and the connection ends, as a
    fresh connection's does, rather than staying open as if all were well."""
    session = server.new_session({"QUERY_STRING": ""})
    status, _ = _last_answer_then_the_end(server, session,
                                          _upload(session.sid, body=b"3:::" + b"x" * 1496))
    assert status == 413


@pytest.mark.parametrize("server", [{"max_http_buffer_size": 1000}], indirect=True)
def test_a_body_over_twice_the_limit_gets_its_413_before_any_byte_of_it(server):
    """Only bodies up to twice the limit are read and dropped: one declared
    at 2,500 bytes (limit 1,000) is answered 413 at once, from its head
    alone, not after the client has sent it (or never, if it waits)."""
    session = server.new_session({"QUERY_STRING": ""})
    conn, theirs = _idle_kept(server, GUNICORN_LIMITS)
    head_only = (f"POST /socket.io/1/xhr-polling/{session.sid} HTTP/1.1\r\nHost: h\r\n"
                 "Content-Length: 2500\r\n\r\n").encode()
    try:
        status, _, headers = _ask(theirs, head_only, with_headers=True)
        assert status == 413
        assert headers.get("connection") == "close"  # (the body is left unread)
    finally:
        theirs.close()


@pytest.mark.parametrize("server", [{"polling_duration": 60}], indirect=True)
def test_more_than_the_pipeline_limit_sent_while_a_long_poll_waits_ends_the_connection(
        server):
    """While its long poll waits, a client may send only PIPELINE_LIMIT bytes
    ahead, though a connection otherwise holds a whole head and body more:
    past it the connection is closed, with the poll unanswered."""
    session = server.new_session({"QUERY_STRING": ""})
    conn, theirs = _idle_kept(server, GUNICORN_LIMITS)
    ahead = (f"POST /socket.io/1/xhr-polling/{session.sid} HTTP/1.1\r\nHost: h\r\n"
             "Content-Length: 900000\r\n\r\n").encode() + b"x" * 70000
    assert hub_http.PIPELINE_LIMIT < len(ahead) < conn.buffer_limit
    try:
        assert _ask(theirs, _poll(session.sid)) == (200, b"1::")
        theirs.sendall(_poll(session.sid))
        assert wait_until(lambda: conn.state == hub_http.POLL)
        theirs.sendall(ahead)
        assert wait_until(lambda: conn.closed), "the connection stayed open"
        try:  # no answer to the poll came first (closed with bytes unread: maybe a reset)
            assert read_to_end(theirs) == b""
        except ConnectionResetError:
            pass
    finally:
        theirs.close()


def test_a_head_sent_a_few_bytes_at_a_time_still_ends_keep_alive_seconds_after_its_first():
    """A client that trickles its request head, a little before each
    timeout, must not hold the connection for ever: it ends
    KEEP_ALIVE_SECONDS after the head's first byte (a fake clock here)."""
    now = [1000.0]
    srv = Server(Options(close_timeout=1), EchoApp(), clock=lambda: now[0], monitor=False)
    srv.hub = Hub(srv, clock=srv.clock)
    conn, theirs = _idle_kept(srv, GUNICORN_LIMITS)
    try:
        theirs.sendall(b"GET /socket.io/1/xhr-polling/x HTTP/1.1\r\n")
        assert wait_until(lambda: conn.head_since == 1000.0)
        now[0] += hub_http.KEEP_ALIVE_SECONDS - 2
        theirs.sendall(b"Host: h\r\n")  # a little before the head's deadline
        assert wait_until(lambda: conn.buf.endswith(b"Host: h\r\n"))
        now[0] = 1000.0 + hub_http.KEEP_ALIVE_SECONDS + 1
        srv.hub.call(lambda: None)  # (the hub looks at its timers on the new time)
        assert wait_until(lambda: conn.lingering or conn.closed), "the connection stayed open"
        assert read_to_end(theirs) == b""
    finally:
        theirs.close()
        srv.shutdown()


def test_a_request_saying_connection_close_is_not_kept_by_the_hub(server):
    """A client that sends ``Connection: close`` expects the connection to
    end after its answer: the hub must not adopt it to keep it alive. (The
    call is made as Werkzeug's server makes it, on the whole Flask app,
    which is what ``can_keep`` looks for on the stack.)"""
    import io

    class Site:  # the whole Flask app
        debug = False

        def __call__(self, environ, start_response):
            return hub_http.can_keep(server, environ)

    server.app.app = Site()
    werkzeug_serving = {"__name__": "werkzeug.serving", "site": server.app.app}
    exec("def run_wsgi(environ):\n    return site(environ, None)\n", werkzeug_serving)

    def keeps(**headers) -> bool:
        environ = {"SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": "GET",
                   "wsgi.input": io.BufferedReader(io.BytesIO(b"")), **headers}
        return werkzeug_serving["run_wsgi"](environ)

    assert keeps() is True
    assert keeps(HTTP_CONNECTION="keep-alive") is True
    assert keeps(HTTP_CONNECTION="close") is False
    assert keeps(HTTP_CONNECTION="keep-alive, Close") is False
