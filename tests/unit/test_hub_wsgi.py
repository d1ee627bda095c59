"""The WSGI runner of kept connections (flask_sio09/hub_wsgi.py): the environ
it builds, the body it streams, and how it frames the app's answer, over a
socketpair."""

from __future__ import annotations

import re
import socket
import threading

import pytest

from flask_sio09 import hub_wsgi
from flask_sio09.http11 import parse_head

TEMPLATE = {"SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SCRIPT_NAME": "",
            "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.version": (1, 0)}


def head_of(data: bytes):
    head = parse_head(data)
    assert head is not None
    return head


def test_the_environ_is_a_wsgi_servers():
    head = head_of(b"POST /app/a%20b?x=1 HTTP/1.1\r\nHost: h:1\r\nContent-Type: text/plain\r\n"
                   b"Content-Length: 3\r\nX-Thing: 1\r\nX-Thing: 2\r\nX_Spoof: 1\r\n\r\n")
    body = hub_wsgi.Body(None, b"abc", 3, False)  # type: ignore[arg-type]
    environ = hub_wsgi.build_environ({**TEMPLATE, "SCRIPT_NAME": "/app"}, head, body)
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == "/app" and environ["PATH_INFO"] == "/a b"
    assert environ["QUERY_STRING"] == "x=1" and environ["RAW_URI"] == "/app/a%20b?x=1"
    assert environ["CONTENT_TYPE"] == "text/plain" and environ["CONTENT_LENGTH"] == "3"
    assert environ["HTTP_HOST"] == "h:1" and environ["HTTP_X_THING"] == "1,2"
    assert "HTTP_X_SPOOF" not in environ
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1" and environ["sio09.kept"] is True
    assert environ["wsgi.input"].read() == b"abc"


class Served:
    """Run hub_wsgi.serve's worker for one request over a socketpair."""

    def __init__(self, app, request: bytes, rest: bytes = b"") -> None:
        self.server_side, self.client = socket.socketpair()
        self.client.settimeout(10)
        self.finished = threading.Event()
        self.result: tuple[bool, bytes] | None = None
        head = head_of(request)
        buffered = request[head.size:]

        def done(keep_alive: bool, leftover: bytes) -> None:
            self.result = (keep_alive, leftover)
            self.finished.set()

        self.client.sendall(rest)
        self.thread = threading.Thread(target=hub_wsgi._serve, args=(
            app, self.server_side, TEMPLATE, head, buffered, done))
        self.thread.start()

    def wait(self) -> tuple[bool, bytes]:
        assert self.finished.wait(10)
        self.thread.join(10)
        assert self.result is not None
        return self.result

    def received(self) -> bytes:
        self.server_side.close()
        data = b""
        while chunk := self.client.recv(65536):
            data += chunk
        self.client.close()
        return data


DATE_LINE = re.compile(rb"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


def without_date(data: bytes) -> bytes:
    """The answer with its one Date line (right after each final status
    line, as the pool writes it) taken out."""
    assert len(DATE_LINE.findall(data)) == 1, data
    return DATE_LINE.sub(b"", data)


def app_with(status="200 OK", headers=(("Content-Type", "text/plain"),), body=(b"hi",)):
    def app(environ, start_response):
        start_response(status, list(headers))
        return body
    return app


def test_a_list_body_gets_a_content_length_and_the_connection_stays():
    served = Served(app_with(), b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /next")
    keep_alive, leftover = served.wait()
    assert keep_alive and leftover == b"GET /next"
    assert without_date(served.received()) == (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                               b"Content-Length: 2\r\n\r\nhi")


def test_an_apps_own_date_is_not_doubled():
    date = "Date: Thu, 01 Jan 2026 00:00:00 GMT"
    served = Served(app_with(headers=[("Date", date[6:]), ("Content-Length", "2")]),
                    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert served.wait()[0]
    answer = served.received()
    assert answer.count(b"Date: ") == 1 and date.encode() in answer


def test_a_generator_body_is_sent_chunked():
    def body():
        yield b"ab"
        yield b""
        yield b"cde"
    served = Served(app_with(body=body()), b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert served.wait()[0]
    assert served.received().endswith(b"Transfer-Encoding: chunked\r\n\r\n"
                                      b"2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n")


def test_nothing_goes_past_the_apps_content_length():
    """Bytes past it would read as the next response to a proxy that reuses
    the connection (gunicorn cuts them too); the connection then closes."""
    evil = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"
    served = Served(app_with(headers=[("Content-Length", "3")], body=iter([b"ab", b"c" + evil])),
                    b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /next")
    assert served.wait()[0] is False
    answer = served.received()
    assert answer.endswith(b"\r\n\r\nabc") and b"EVIL" not in answer


def test_http_1_0_without_a_length_is_delimited_by_the_close():
    served = Served(app_with(body=iter([b"x"])), b"GET / HTTP/1.0\r\n\r\n")
    assert served.wait()[0] is False
    assert served.received().endswith(b"Connection: close\r\n\r\nx")


def test_head_has_no_body():
    served = Served(app_with(headers=[("Content-Length", "2")]),
                    b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert served.wait()[0]
    assert without_date(served.received()) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"


def test_the_app_may_ask_to_close():
    served = Served(app_with(headers=[("Connection", "close"), ("Content-Length", "2")]),
                    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert served.wait()[0] is False
    assert b"Connection: close\r\n" in served.received()


def test_a_failing_app_answers_500_and_closes():
    def app(environ, start_response):
        raise RuntimeError("boom")
    served = Served(app, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert served.wait()[0] is False
    assert served.received().startswith(b"HTTP/1.1 500 ")


def test_the_body_streams_from_buffer_then_socket():
    seen = []

    def app(environ, start_response):
        stream = environ["wsgi.input"]
        seen.append(stream.readline())
        seen.append(stream.read())
        start_response("200 OK", [("Content-Length", "0")])
        return []
    served = Served(app, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nab\ncd",
                    rest=b"efghiNEXT")
    keep_alive, leftover = served.wait()
    assert seen == [b"ab\n", b"cdefghi"] and keep_alive and leftover == b""
    assert served.client.recv(100).startswith(b"HTTP/1.1 200 OK")
    assert served.server_side.recv(100) == b"NEXT"  # left on the socket for the hub


def test_expect_continue_is_answered_when_the_app_reads():
    def app(environ, start_response):
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]
    served = Served(app, b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                    b"Expect: 100-continue\r\n\r\n", rest=b"abc")
    assert served.wait()[0]
    assert without_date(served.received()) == (b"HTTP/1.1 100 Continue\r\n\r\n"
                                               b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")


def test_an_unread_offered_body_ends_the_connection():
    served = Served(app_with(), b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
                    b"Expect: 100-continue\r\n\r\n")
    assert served.wait()[0] is False
    data = served.received()
    assert b"100 Continue" not in data and b"Connection: close" in data


@pytest.mark.parametrize("unread, keep_alive", [(10, True), (hub_wsgi.DRAIN_LIMIT + 1, False)])
def test_an_unread_body_is_drained_or_the_connection_closed(unread, keep_alive):
    served = Served(app_with(), b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n"
                    % unread, rest=b"x" * min(unread, 10))
    if not keep_alive:
        assert served.wait()[0] is False
    else:
        assert served.wait() == (True, b"")


class GunicornConfig:
    """The settings of gunicorn's config that say which proxy headers count."""

    secure_scheme_headers = {"X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"}
    forwarder_headers = ["SCRIPT_NAME", "PATH_INFO"]
    is_ssl = False

    def __init__(self, allowed):
        self.forwarded_allow_ips = allowed


def test_proxy_headers_count_only_from_a_peer_gunicorn_trusts():
    assert hub_wsgi.forwarding_policy(GunicornConfig(["127.0.0.1"]), "10.0.0.9") is None
    assert hub_wsgi.forwarding_policy(None, "127.0.0.1") is None  # (another server)
    for allowed in (["127.0.0.1"], ["*"]):
        policy = hub_wsgi.forwarding_policy(GunicornConfig(allowed), "127.0.0.1")
        template = {**TEMPLATE, hub_wsgi.FORWARDING: policy}
        environ = hub_wsgi.build_environ(template, head_of(
            b"GET /app/x HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\n"
            b"SCRIPT_NAME: /app\r\nX_Other: 1\r\n\r\n"), None)
        assert (environ["wsgi.url_scheme"], environ["SCRIPT_NAME"], environ["PATH_INFO"]) == \
            ("https", "/app", "/x")
        assert "HTTP_X_OTHER" not in environ and hub_wsgi.FORWARDING not in environ
        plain = hub_wsgi.build_environ(template, head_of(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"),
                                       None)
        assert (plain["wsgi.url_scheme"], plain["SCRIPT_NAME"]) == ("http", "")
    untrusted = {**TEMPLATE, hub_wsgi.FORWARDING: None}
    environ = hub_wsgi.build_environ(untrusted, head_of(
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\nSCRIPT_NAME: /a\r\n\r\n"),
        None)
    assert (environ["wsgi.url_scheme"], environ["SCRIPT_NAME"]) == ("http", "")


def test_gunicorns_own_limits_and_its_exact_header_names_count():
    from flask_sio09.http11 import HTTPError, parse_head

    class Limited(GunicornConfig):
        limit_request_line, limit_request_field_size, limit_request_fields = 100, 200, 5

    line, field, fields, header_map = hub_wsgi.head_limits(Limited(["127.0.0.1"]))
    assert header_map == "drop"
    assert (line, field, fields) == (100, 198, 5)  # (gunicorn counts a header's CRLF)
    ok = b"GET /" + b"a" * 86 + b" HTTP/1.1\r\nHost: h\r\nX: " + b"b" * 195 + b"\r\n\r\n"
    assert parse_head(ok, max_line=line, max_field=field, max_headers=fields) is not None
    for bad in (ok.replace(b"GET /", b"GET /a"), ok.replace(b"X: ", b"X: b")):
        with pytest.raises(HTTPError):
            parse_head(bad, max_line=line, max_field=field, max_headers=fields)
    assert hub_wsgi.head_limits(None) is None

    class LowerCaseKeys(GunicornConfig):
        secure_scheme_headers = {"x-forwarded-proto": "https"}  # gunicorn never matches it

    template = {**TEMPLATE, hub_wsgi.FORWARDING: hub_wsgi.forwarding_policy(
        LowerCaseKeys(["*"]), "127.0.0.1")}
    environ = hub_wsgi.build_environ(template, head_of(
        b"GET /x HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: https\r\n\r\n"), None)
    assert environ["wsgi.url_scheme"] == "http"


def test_script_name_is_matched_on_the_path_as_sent_and_header_map_refuse_counts():
    """As gunicorn: the SCRIPT_NAME prefix is matched before percent-decoding,
    and ``--header-map refuse`` refuses a header with ``_`` not a proxy's."""
    from flask_sio09.http11 import HTTPError

    class Refusing(GunicornConfig):
        limit_request_line, limit_request_field_size, limit_request_fields = 4094, 0, 100
        header_map = "refuse"

    cfg = Refusing(["127.0.0.1"])
    template = {**TEMPLATE, hub_wsgi.FORWARDING: hub_wsgi.forwarding_policy(cfg, "127.0.0.1"),
                hub_wsgi.LIMITS: hub_wsgi.head_limits(cfg)}
    assert template[hub_wsgi.LIMITS][1] == 8188  # (a field limit of 0: gunicorn's default)
    sent = head_of(b"GET /my%20app/x HTTP/1.1\r\nHost: h\r\nSCRIPT_NAME: /my%20app\r\n\r\n")
    hub_wsgi.check_forwarding(template, sent)
    environ = hub_wsgi.build_environ(template, sent, None)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/my%20app", "/x")
    for refused in (b"GET /%61pp/x HTTP/1.1\r\nHost: h\r\nSCRIPT_NAME: /app\r\n\r\n",
                    b"GET /x HTTP/1.1\r\nHost: h\r\nX_Other: 1\r\n\r\n"):
        with pytest.raises(HTTPError):
            hub_wsgi.check_forwarding(template, head_of(refused))
    untrusted = {**TEMPLATE, "SCRIPT_NAME": "/base", hub_wsgi.FORWARDING: None}
    with pytest.raises(HTTPError):  # (the process's SCRIPT_NAME, an untrusted peer)
        hub_wsgi.check_forwarding(untrusted, head_of(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"))


@pytest.mark.parametrize("headers, scheme", [
    ("", "http"),
    ("X-Forwarded-Proto: https\r\n", "https"),
    ("X-Forwarded-Ssl: on\r\n", "https"),  # (the second of gunicorn's names alone)
    ("X-Forwarded-Ssl: off\r\n", "http"),
    ("X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: on\r\n", "https"),
    ("X-Forwarded-Proto: https\r\nX-Forwarded-Ssl: off\r\n", None),  # contradictory: 400
    ("X-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n", None),
])
def test_each_of_gunicorns_scheme_headers_counts_and_contradictions_are_refused(headers, scheme):
    from flask_sio09.http11 import HTTPError

    template = {**TEMPLATE, hub_wsgi.FORWARDING: hub_wsgi.forwarding_policy(
        GunicornConfig(["127.0.0.1"]), "127.0.0.1")}
    head = head_of(f"GET /x HTTP/1.1\r\nHost: h\r\n{headers}\r\n".encode())
    if scheme is None:
        with pytest.raises(HTTPError) as refused:
            hub_wsgi.check_forwarding(template, head)
        assert refused.value.status.startswith("400")
    else:
        hub_wsgi.check_forwarding(template, head)
        assert hub_wsgi.build_environ(template, head, None)["wsgi.url_scheme"] == scheme


@pytest.mark.parametrize("script_name, path, refused", [
    ("/app", "/app/x", False), ("/app", "/app", False), ("/app", "/apX/x", True),
    ("/app", "/ap", True), ("/app", "/", True), ("", "/anything", False)])
def test_the_path_must_begin_with_script_name(script_name, path, refused):
    from flask_sio09.http11 import HTTPError

    if refused:
        with pytest.raises(HTTPError) as error:
            hub_wsgi.check_script_name(script_name, path)
        assert error.value.status.startswith("500")
    else:
        hub_wsgi.check_script_name(script_name, path)
