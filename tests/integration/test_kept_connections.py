"""Polling connections the hub keeps alive (hub mode, flask_sio09/hub_http.py).

Every test drives one raw TCP connection by hand: the first polling request
goes through the WSGI server (Werkzeug via ``sio.run``, or gunicorn), which
hands the connection to the hub; the following requests on the same
connection are the hub's. Neither WSGI server answers them then: Werkzeug
would have closed the connection after its first answer, and both put a
``Server`` header on their own answers, which the hub's lack.

No timing is asserted; every read has a generous deadline.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
import requests

from flask_sio09 import hub_wsgi
from tests.integration.helpers import decode_payload, event_packet, handshake
from tests.conftest import GUNICORN_THREADS, wait_until
from tests.integration.test_hostile import (BASE, LIMIT, RawWs, Watched,  # noqa: F401
                                            assert_serves, open_ws, start)

pytestmark = pytest.mark.timeout(300)

KINDS = ["sio_run", "gunicorn"]
DEADLINE = 20.0


class RawConnection:
    """One keep-alive HTTP/1.1 connection, requests written by hand."""

    def __init__(self, server) -> None:
        self.server = server
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, target: str, body: bytes = b"",
                headers: dict | None = None) -> bytes:
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.server.host}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buf += chunk

    def response(self, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        """Read one response: (status, lower-cased headers, body);
        ``head_only`` for the answer to a HEAD, which has no body."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if status == 100:
            return self.response(head_only)
        if head_only:
            return status, headers, b""
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                size_line, _, self.buf = self.buf.partition(b"\r\n")
                size = int(size_line, 16)
                while len(self.buf) < size + 2:
                    self._fill()
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    return status, headers, body
        length = int(headers.get("content-length", "0"))
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def ask(self, method: str, target: str, body: bytes = b"",
            headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
        self.send(self.request(method, target, body, headers))
        return self.response(head_only=method == "HEAD")

    def ended(self) -> bool:
        """True once the server has closed the connection (read with a deadline)."""
        deadline = time.monotonic() + DEADLINE
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        return False


def poll_path(sid: str, transport: str = "xhr-polling") -> str:
    return f"/socket.io/1/{transport}/{sid}?t={time.monotonic_ns()}"


def open_kept(server) -> tuple[RawConnection, str]:
    """A session whose first poll (``1::``) went through the WSGI server on a
    connection the hub then keeps."""
    sid = handshake(server)[0]
    conn = RawConnection(server)
    status, headers, body = conn.ask("GET", poll_path(sid))
    assert (status, body) == (200, b"1::")
    return conn, sid


def echo_on(conn: RawConnection, sid: str, ack_id: int, text: str) -> list[str]:
    """POST an echo with a data ack and poll for the ack, on ``conn``; the
    answers must be the hub's (no Server header)."""
    status, headers, body = conn.ask("POST", poll_path(sid),
                                     event_packet("echo", text, ack_id=ack_id).encode())
    assert (status, body) == (200, b"1") and "server" not in headers, headers
    status, headers, body = conn.ask("GET", poll_path(sid))
    assert status == 200 and "server" not in headers, headers
    return decode_payload(body.decode("utf-8"))


@pytest.mark.parametrize("kind", KINDS)
def test_polls_and_posts_on_one_kept_connection(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        for ack_id in range(1, 6):
            packets = echo_on(conn, sid, ack_id, f"n{ack_id}")
            assert packets == [f'6:::{ack_id}+["n{ack_id}"]']
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_jsonp_polling_on_a_kept_connection(start, kind):
    server = start(kind)
    sid = handshake(server)[0]
    conn = RawConnection(server)
    try:
        status, _, body = conn.ask("GET", poll_path(sid, "jsonp-polling") + "&i=3")
        assert status == 200 and body == b'io.j[3]("1::");'
        form = "d=" + event_packet("echo", "j", ack_id=1).replace("%", "%25").replace(
            "&", "%26").replace("+", "%2B")
        status, headers, body = conn.ask(
            "POST", poll_path(sid, "jsonp-polling") + "&i=3", form.encode(),
            {"Content-Type": "application/x-www-form-urlencoded"})
        assert (status, body) == (200, b"1") and "server" not in headers
        status, headers, body = conn.ask("GET", poll_path(sid, "jsonp-polling") + "&i=4")
        assert status == 200 and body.startswith(b"io.j[4](") and b"6:::1+" in body
        status, headers, body = conn.ask("GET", poll_path(sid, "jsonp-polling") + "&i=x")
        assert status == 400
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_other_routes_and_a_handshake_on_a_kept_connection(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        assert echo_on(conn, sid, 1, "a") == ['6:::1+["a"]']
        status, headers, body = conn.ask("GET", "/healthz")
        assert (status, body) == (200, b"ok")
        status, _, body = conn.ask("GET", "/no-such-page")
        assert status == 404
        status, _, body = conn.ask("HEAD", "/healthz")
        assert status == 200 and body == b""
        status, _, body = conn.ask("POST", "/server_emit",
                                   b'{"event": "pushed", "args": [7], "to": "%s"}'
                                   % sid.encode(), {"Content-Type": "application/json"})
        assert status == 200, body
        status, _, body = conn.ask("GET", "/socket.io/1/?t=1")
        assert status == 200 and body.count(b":") == 3
        other = body.split(b":")[0].decode()
        # the connection came back to the hub: both sessions poll on it
        packets = decode_payload(conn.ask("GET", poll_path(sid))[2].decode())
        assert packets == ['5:::{"name":"pushed","args":[7]}']
        assert conn.ask("GET", poll_path(other))[2] == b"1::"
        assert echo_on(conn, other, 2, "b") == ['6:::2+["b"]']
    finally:
        conn.close()


def test_an_app_in_debug_mode_shows_the_debugger_on_every_connection(live_server):
    """``sio.run(app, debug=True)``: the app's errors reach Werkzeug's
    debugger, which wraps the app from outside: the hub keeps no connection of
    a debug app, whose requests would miss it."""
    server = live_server("sio_run", app="tests.apps.debug_app")
    sid = handshake(server)[0]
    conn = RawConnection(server)
    try:
        status, headers, body = conn.ask("GET", poll_path(sid))
        # answered by Werkzeug, which closes it: no request of this connection
        # can go past the debugger
        assert (status, body) == (200, b"1::") and "server" in headers, headers
        assert headers.get("connection") == "close", headers
    finally:
        conn.close()
    for _ in range(2):
        conn = RawConnection(server)
        try:
            status, _, body = conn.ask("GET", "/boom")
            assert status == 500 and b"Werkzeug Debugger" in body, body[:200]
            assert b"boom, for the debugger" in body
        finally:
            conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_pipelined_requests_are_answered_in_order(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        body = event_packet("echo", "p", ack_id=1).encode()
        conn.send(conn.request("POST", poll_path(sid), body)
                  + conn.request("GET", poll_path(sid))
                  + conn.request("GET", "/healthz")
                  + conn.request("POST", poll_path(sid), event_packet("echo", "q", ack_id=2)
                                 .encode()))
        assert conn.response()[2] == b"1"
        assert decode_payload(conn.response()[2].decode()) == ['6:::1+["p"]']
        assert conn.response()[2] == b"ok"
        assert conn.response()[2] == b"1"
        assert decode_payload(conn.ask("GET", poll_path(sid))[2].decode()) == ['6:::2+["q"]']
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_expect_continue_and_http_1_0(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        body = event_packet("echo", "e", ack_id=1).encode()
        conn.send(conn.request("POST", poll_path(sid), headers={
            "Content-Length": str(len(body)), "Expect": "100-continue"}).replace(
            b"Content-Length: 0\r\n", b""))
        while b"\r\n\r\n" not in conn.buf:
            conn._fill()
        assert conn.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.send(body)
        assert conn.response()[2] == b"1"
        assert decode_payload(conn.ask("GET", poll_path(sid))[2].decode()) == ['6:::1+["e"]']
        # an HTTP/1.0 request is answered, then the connection ends
        conn.send(f"GET {poll_path(sid)} HTTP/1.0\r\n\r\n".encode())
        server.server_emit("late", 1, to=sid)
        status, headers, body = conn.response()
        assert status == 200 and headers.get("connection") == "close"
        assert conn.ended()
    finally:
        conn.close()
    assert_serves(server, websocket=False)


HOSTILE = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),
    (b"GET /socket.io/1/ HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"POST /socket.io/1/xhr-polling/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400),
    (b"POST /socket.io/1/xhr-polling/x HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 411),
    (b"POST /socket.io/1/xhr-polling/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
     b"Content-Length: 2\r\n\r\nab", 400),
    (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(200)), 400),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data, status", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_bytes_on_a_kept_connection(start, kind, data, status):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        assert echo_on(conn, sid, 1, "before") == ['6:::1+["before"]']
        conn.send(data)
        answered, headers, _ = conn.response()
        assert answered == status and headers.get("connection") == "close"
        assert conn.ended()
    finally:
        conn.close()
    assert_serves(server, websocket=False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_post_over_the_limit_on_a_kept_connection(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        assert echo_on(conn, sid, 1, "x") == ['6:::1+["x"]']
        body = b"3:::" + b"a" * LIMIT
        status, headers, _ = conn.ask("POST", poll_path(sid), body)
        assert status == 413 and headers.get("connection") == "close"
        assert conn.ended()
    finally:
        conn.close()
    other = RawConnection(server)
    try:
        # the session was closed for it, as on the WSGI path: its polls fail
        assert other.ask("GET", poll_path(sid))[0] == 410
    finally:
        other.close()


#: a request for another route, sent as the body of a poll: answered, it
#: would be a second response to one request (a proxy reusing the connection
#: would hand it to the next client's request)
SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def assert_no_second_answer(conn: RawConnection, headers: dict[str, str]) -> None:
    """Nothing on ``conn`` answers a request found in the previous request's
    body (``headers``: that answer's): the next answer is to the request sent
    now, or, after ``Connection: close``, the server sends nothing more."""
    if headers.get("connection") == "close":
        # (Werkzeug reads what the client sends until it ends its side)
        conn.sock.shutdown(socket.SHUT_WR)
        rest = conn.buf
        try:
            while chunk := conn.sock.recv(65536):
                rest += chunk
        except ConnectionError:
            pass
        assert b"HTTP/1." not in rest, "the body of the poll was served as a request"
        return
    status, _, _ = conn.ask("GET", "/no-such-page")
    assert status == 404, "the body of the poll was served as a request"


@pytest.mark.parametrize("kind", KINDS)
def test_the_body_of_a_first_poll_is_not_served_as_a_request(start, kind):
    server = start(kind)
    sid = handshake(server)[0]
    conn = RawConnection(server)
    try:
        conn.send(f"GET {poll_path(sid)} HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: {len(SMUGGLED)}\r\n\r\n".encode() + SMUGGLED)
        status, headers, body = conn.response()
        assert (status, body) == (200, b"1::")
        assert_no_second_answer(conn, headers)
    finally:
        conn.close()
    assert_serves(server, websocket=False)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["GET", "OPTIONS"])
def test_a_body_too_large_to_read_ends_a_kept_connection(start, kind, method):
    # the body over twice the limit is not read: the answer must close the
    # connection, else its first bytes would be taken for the next request
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        assert echo_on(conn, sid, 1, "x") == ['6:::1+["x"]']
        # something to answer at once
        status, _, _ = conn.ask("POST", poll_path(sid), event_packet("echo", "y", ack_id=2).encode())
        assert status == 200
        conn.send(f"{method} {poll_path(sid)} HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: {3 * LIMIT}\r\n\r\n".encode() + SMUGGLED)
        status, headers, _ = conn.response()
        assert status == 200 and headers.get("connection") == "close", headers
        assert_no_second_answer(conn, headers)
    finally:
        conn.close()
    assert_serves(server, websocket=False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_client_that_hangs_up_during_a_kept_poll_loses_nothing(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    conn.send(conn.request("GET", poll_path(sid)))
    conn.close()
    server.server_emit("kept", 1, to=sid)
    other = RawConnection(server)
    try:
        deadline = time.monotonic() + DEADLINE
        received: list[str] = []
        while not any("kept" in p for p in received) and time.monotonic() < deadline:
            received += decode_payload(other.ask("GET", poll_path(sid))[2].decode())
        assert any('"kept"' in p for p in received), received
    finally:
        other.close()


UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_websocket_upgrade_on_a_kept_connection(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        assert echo_on(conn, sid, 1, "polled") == ['6:::1+["polled"]']
        conn.send(conn.request("GET", f"/socket.io/1/websocket/{sid}", headers=UPGRADE))
        while b"\r\n\r\n" not in conn.buf:
            conn._fill()
        assert conn.buf.startswith(b"HTTP/1.1 101 ")
        # the session goes on over the WebSocket: a server emit arrives as a text frame
        server.server_emit("over_ws", 1, to=sid)
        while b"over_ws" not in conn.buf:
            conn._fill()
        assert b"\x81" in conn.buf
    finally:
        conn.close()
    assert_serves(server, websocket=False)


@pytest.mark.parametrize("kind", KINDS)
def test_an_upgrade_on_a_kept_connection_for_a_session_ended_before_it_opened(start, kind):
    # the server disconnected the session after its handshake, before any
    # transport: its WebSocket gets the 0:: (then a close frame), as a poll
    # or a WebSocket on a new connection does, not a 7:::1+0 that would make
    # the client reconnect
    server = start(kind)
    conn, sid = open_kept(server)
    kicked = handshake(server)[0]
    _, kicker = open_ws(server)
    try:
        kicker.send_text(event_packet("kick", kicked, ack_id=1))
        kicker.texts_until(lambda got: '6:::1+["kicked"]' in got)
        conn.send(conn.request("GET", f"/socket.io/1/websocket/{kicked}", headers=UPGRADE))
        while b"\r\n\r\n" not in conn.buf:
            conn._fill()
        head, _, conn.buf = conn.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ")

        def frame() -> tuple[int, bytes]:  # (the server's frames are not masked, short)
            while len(conn.buf) < 2 or len(conn.buf) < 2 + (conn.buf[1] & 0x7F):
                conn._fill()
            opcode, length = conn.buf[0] & 0x0F, conn.buf[1] & 0x7F
            payload, conn.buf = conn.buf[2:2 + length], conn.buf[2 + length:]
            return opcode, bytes(payload)

        assert frame() == (0x1, b"0::")
        assert frame()[0] == 0x8
    finally:
        kicker.close()
        conn.close()
    assert_serves(server, websocket=False)


@pytest.mark.parametrize("kind", KINDS)
def test_frames_sent_with_an_upgrade_on_a_kept_connection_count(start, kind):
    # the client did not wait for the 101 (RFC 6455 §4.1 says it should): what
    # it sent behind the request is the WebSocket's, as on a new connection
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        assert echo_on(conn, sid, 1, "polled") == ['6:::1+["polled"]']
        conn.send(conn.request("GET", f"/socket.io/1/websocket/{sid}", headers=UPGRADE)
                  + RawWs.frame(event_packet("echo", "early", ack_id=2).encode()))
        while b'6:::2+["early"]' not in conn.buf:
            conn._fill()
        assert conn.buf.startswith(b"HTTP/1.1 101 ")
    finally:
        conn.close()
    assert_serves(server, websocket=False)


def read_stream_head(conn: RawConnection) -> tuple[int, dict[str, str]]:
    """The head of a response whose chunked body does not end (a stream)."""
    while b"\r\n\r\n" not in conn.buf:
        conn._fill()
    head, _, conn.buf = conn.buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers


def read_stream_until(conn: RawConnection, needle: bytes) -> None:
    while needle not in conn.buf:
        conn._fill()


@pytest.mark.parametrize("kind", KINDS)
def test_htmlfile_streams_on_kept_connections_hold_no_thread(start, kind):
    """An htmlfile GET on a kept connection becomes a stream the hub writes, as
    on the WSGI path: more streams than ``hub_wsgi`` has threads stay open at
    once, each carries its session, and a request the whole app serves on
    another kept connection is still answered."""
    server = start(kind)
    streams = []
    try:
        for _ in range(hub_wsgi.THREADS + 4):
            conn, sid = open_kept(server)
            streams.append((conn, sid))
            conn.send(conn.request("GET", poll_path(sid, "htmlfile"),
                                   headers={"Origin": server.url}))
            status, headers = read_stream_head(conn)
            assert status == 200 and headers.get("transfer-encoding") == "chunked", headers
            assert headers.get("content-type", "").startswith("text/html"), headers
            assert headers.get("access-control-allow-origin") == server.url, headers
            read_stream_until(conn, b"<body>")
        for n, (conn, sid) in enumerate(streams):
            server.server_emit("streamed", n, to=sid)
        for n, (conn, sid) in enumerate(streams):
            # (htmlfile writes each packet as a JavaScript string)
            read_stream_until(conn, b'<script>_("5:::{\\"name\\":\\"streamed\\",'
                                    b'\\"args\\":[%d]}");</script>' % n)
        # the app's own routes still get a thread (a poll first, so the hub keeps it)
        other, other_sid = open_kept(server)
        try:
            assert other.ask("GET", "/healthz")[::2] == (200, b"ok")
            assert echo_on(other, other_sid, 1, "after") == ['6:::1+["after"]']
            # htmlfile's POSTs are the hub's too; the ack comes down the stream
            conn, sid = streams[0]
            status, headers, body = other.ask("POST", poll_path(sid, "htmlfile"),
                                              event_packet("echo", "up", ack_id=5).encode())
            assert (status, body) == (200, b"1") and "server" not in headers, headers
            read_stream_until(conn, b'<script>_("6:::5+[\\"up\\"]");</script>')
        finally:
            other.close()
        # a connection that begins with an htmlfile POST is kept as well: its
        # next POST (a client's heartbeat, say) is the hub's, not the WSGI
        # server's (whose keep-alive ends after 2 s of silence under gunicorn)
        conn, sid = streams[1]
        poster = RawConnection(server)
        try:
            for ack_id in (6, 7):
                status, headers, body = poster.ask(
                    "POST", poll_path(sid, "htmlfile"),
                    event_packet("echo", "again", ack_id=ack_id).encode())
                assert (status, body) == (200, b"1"), (status, body)
                read_stream_until(conn, b'<script>_("6:::%d+[\\"again\\"]");</script>' % ack_id)
            assert "server" not in headers, headers  # the second answer is the hub's
        finally:
            poster.close()
        # a stream's session ends with its connection
        conn, sid = streams.pop()
        conn.close()
        server.wait_events(lambda events: any(e["event"] == "disconnect" for e in events),
                           sid=sid, timeout=DEADLINE, what="the stream's session to end")
    finally:
        for conn, _ in streams:
            conn.close()
    assert_serves(server, websocket=False)


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_websocket_upgrade_on_a_kept_connection_is_refused_and_closed(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        status, _, _ = conn.ask("GET", f"/socket.io/1/websocket/{sid}",
                                headers={**UPGRADE, "Sec-WebSocket-Key": "short"})
        assert status == 400 and conn.ended()
    finally:
        conn.close()
    assert_serves(server, websocket=False)


@pytest.mark.parametrize("kind", KINDS)
def test_another_upgrade_on_a_kept_connection_is_answered_and_closed(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        status, _, body = conn.ask("GET", "/healthz", headers={
            "Upgrade": "h2c", "Connection": "Upgrade, HTTP2-Settings", "HTTP2-Settings": ""})
        # the whole app serves it as a plain GET, then the connection ends
        assert (status, body) == (200, b"ok") and conn.ended()
    finally:
        conn.close()


def post_after_the_first_poll(server) -> tuple[RawConnection, dict[str, str]]:
    """A first poll, then an echo POST, on one connection: the connection and
    the POST's answer headers (no ``Server`` header when the hub kept it)."""
    sid = handshake(server)[0]
    conn = RawConnection(server)
    try:
        assert conn.ask("GET", poll_path(sid))[2] == b"1::"
        status, headers, body = conn.ask(
            "POST", poll_path(sid), event_packet("echo", "t", ack_id=1).encode())
        assert (status, body) == (200, b"1")
    except BaseException:
        conn.close()
        raise
    return conn, headers


def test_thread_mode_leaves_connections_to_the_wsgi_server(start):
    server = start("gunicorn", mode="thread")
    conn, headers = post_after_the_first_poll(server)
    try:
        assert headers.get("server", "").startswith("gunicorn")
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_unanswered_kept_poll_gets_a_noop_and_the_connection_lives_on(start, kind):
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        # nothing to send: polling_duration (3 s here) later the hub answers 8::
        assert conn.ask("GET", poll_path(sid))[2] == b"8::"
        assert echo_on(conn, sid, 1, "after") == ['6:::1+["after"]']
    finally:
        conn.close()


def test_an_idle_kept_connection_is_closed_by_the_server(start):
    server = start("gunicorn")
    conn, sid = open_kept(server)
    try:
        assert echo_on(conn, sid, 1, "x") == ['6:::1+["x"]']
        # no request for KEEP_ALIVE_SECONDS (10 s): the hub ends the connection
        assert conn.ended()
    finally:
        conn.close()


def test_too_much_sent_ahead_of_a_kept_poll_ends_the_connection(start):
    server = start("gunicorn")
    conn, sid = open_kept(server)
    try:
        conn.send(conn.request("GET", poll_path(sid)))
        # pipelined bytes past PIPELINE_LIMIT (64 KiB) while the poll waits
        try:
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 100_000)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert conn.ended()
    finally:
        conn.close()
    assert_serves(server, websocket=False)


def test_a_client_that_stops_reading_its_answer_loses_the_kept_connection(start):
    """An answer the client leaves unread must not hold the socket and its
    bytes for ever: once the client has taken none of it for
    ``close_timeout`` (4 s here), the hub drops the connection."""
    server = start("gunicorn", close_timeout=4)
    watched = Watched(server)
    conn, sid = open_kept(server)
    # a small receive buffer (which also stops the kernel growing it)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        # 10 MB for the poll's answer, far more than the kernel's buffers take
        # from a client that reads nothing: most of it waits in the hub
        server.server_emit("big", "x" * 100_000, to=sid, count=100)
        conn.send(conn.request("GET", poll_path(sid)))
        wait_until(lambda: "took none of its answer" in watched.new_log(), timeout=60,
                   message="the hub to drop the connection")
        assert_serves(server, websocket=False)
        # (the rest is not read: through a window smaller than a segment the
        # kernel would deliver what it holds only at its probe timer's pace)
    finally:
        conn.close()


def assert_another_kept_connection_is_served(server) -> None:
    """A new kept connection gets a route of the whole app (which runs on a
    thread of ``hub_wsgi``'s pool) and an echo answered."""
    other, other_sid = open_kept(server)
    try:
        assert other.ask("GET", "/healthz")[::2] == (200, b"ok")
        assert echo_on(other, other_sid, 1, "after") == ['6:::1+["after"]']
    finally:
        other.close()


AROUND_THE_HUB = [
    # (a polling request the app's middleware would route to a transport,
    # its transport, its extra headers)
    ("/socket.io/1/xhr%2Dpolling/{sid}", "xhr-polling", {}),
    ("/socket.io/1/%78hr-polling/{sid}", "xhr-polling", {}),
    ("/socket.io/1/html%66ile/{sid}", "htmlfile", {}),
    ("/socket.io/1/xhr-polling/{sid}", "xhr-polling",
     {"Upgrade": "websocket", "Connection": "Upgrade"}),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("path, transport, headers", AROUND_THE_HUB,
                         ids=["escaped-dash", "escaped-letter", "escaped-htmlfile",
                              "upgrade-header"])
def test_polls_the_app_would_serve_are_the_hubs_on_kept_connections(start, kind, path,
                                                                     transport, headers):
    """A polling request is the same route for the hub as for the app's
    middleware: a percent-escaped path (which the WSGI server decodes), or a
    GET with an ``Upgrade`` header that is not a WebSocket upgrade of ours.
    The hub serves it. Were it handed to the app on one of ``hub_wsgi``'s
    threads, each waiting poll or stream would hold that thread, and a few
    of them would starve every other request of kept connections."""
    # polls wait longer than any read of the test (its DEADLINE is 20 s)
    server = start(kind, polling_duration=45, close_timeout=60)
    held = []
    try:
        for _ in range(hub_wsgi.THREADS + 4):
            conn, sid = open_kept(server)
            held.append((conn, sid))
            conn.send(conn.request("GET", path.format(sid=sid) + "?t=1",
                                   headers={"Origin": server.url, **headers}))
            if transport == "htmlfile":
                status, stream_headers = read_stream_head(conn)
                assert status == 200 and "server" not in stream_headers, stream_headers
        # with every one of them waiting, another kept connection is served
        assert_another_kept_connection_is_served(server)
        conn, sid = held[0]
        server.server_emit("poked", 1, to=sid)
        if transport == "htmlfile":
            read_stream_until(conn, b'<script>_("5:::{\\"name\\":\\"poked\\",'
                                    b'\\"args\\":[1]}");</script>')
        else:
            status, answer_headers, body = conn.response()
            assert status == 200 and "server" not in answer_headers, answer_headers
            assert decode_payload(body.decode()) == ['5:::{"name":"poked","args":[1]}']
            assert echo_on(conn, sid, 2, "kept") == ['6:::2+["kept"]']
    finally:
        for conn, _ in held:
            conn.close()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100"])
def test_slow_request_bodies_for_the_app_hold_no_thread(start, kind, expect):
    """A request for the whole app whose body comes slowly is read by the hub
    before a thread of ``hub_wsgi``'s pool runs the app (a client that asks
    for 100 Continue gets it from the hub at once, as from gunicorn): more
    such requests than the pool has threads leave the other requests of kept
    connections served, and each is answered once its body is complete."""
    server = start(kind)
    slow = []
    extra = "Expect: 100-continue\r\n" if expect else ""
    try:
        for _ in range(hub_wsgi.THREADS + 4):
            conn, _ = open_kept(server)
            slow.append(conn)
            conn.send(f"POST /server_emit HTTP/1.1\r\nHost: {server.host}\r\n{extra}"
                      "Content-Length: 1000\r\n\r\nabc".encode())
        assert_another_kept_connection_is_served(server)
        conn = slow[0]
        conn.send(b"d" * 997)
        status, _, _ = conn.response()  # (a 100 Continue before it is skipped)
        assert status == 400  # the app's own answer: that body is not JSON
        assert conn.ask("GET", "/healthz")[::2] == (200, b"ok")  # and the connection lives on
    finally:
        for conn in slow:
            conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_slow_large_bodies_for_the_app_leave_threads_for_the_others(start, kind):
    """A body over the limit is read by the app as it comes, on a thread of
    ``hub_wsgi``'s pool: at most half the pool does that at once, the next
    such request gets 503, and pages and handshakes are still served."""
    server = start(kind)
    # (the pool has as many threads as gunicorn's --threads, if more than 16)
    readers = hub_wsgi.pool_size(GUNICORN_THREADS if kind == "gunicorn" else None) \
        // hub_wsgi.LARGE_BODY_SHARE
    slow = []
    try:
        for _ in range(readers + 2):
            conn, _ = open_kept(server)
            slow.append(conn)
            conn.send(f"POST /server_emit HTTP/1.1\r\nHost: {server.host}\r\n"
                      f"Content-Length: {LIMIT + 1000}\r\n\r\nabc".encode())
        for conn in slow[-2:]:
            status, headers, _ = conn.response()
            assert status == 503 and headers.get("connection") == "close"
            assert conn.ended()
        assert_another_kept_connection_is_served(server)
        assert handshake(server)[0]
        conn = slow[0]
        conn.send(b"d" * (LIMIT + 997))
        assert conn.response()[0] == 400  # the app's own answer: that body is not JSON
        # the others hang up mid-body: a line each in the log, no traceback (the
        # fixture fails the test on one), and their threads are free again
        watched = Watched(server)
        for conn in slow[1:readers]:
            conn.close()
        wait_until(lambda: watched.new_log().count("the client ended the body early")
                   == readers - 1, timeout=DEADLINE,
                   message="a log line for each body cut short")
        assert_another_kept_connection_is_served(server)
    finally:
        for conn in slow:
            conn.close()


def trickled_until_closed(conn: RawConnection, seconds: float) -> bool:
    """Send a byte about every second until the server closes the
    connection (True) or ``seconds`` pass (False)."""
    conn.sock.settimeout(1.0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            conn.send(b"a")
            if conn.sock.recv(65536) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_head_sent_a_byte_at_a_time_is_cut_off(start, kind):
    """KEEP_ALIVE_SECONDS (10 s) bound the whole head, counted from its
    first byte: sending a byte now and then does not keep it open."""
    server = start(kind)
    conn, _ = open_kept(server)
    try:
        conn.send(f"GET /healthz HTTP/1.1\r\nHost: {server.host}\r\nX-Slow: ".encode())
        assert trickled_until_closed(conn, 40), "the head was still being read after 40 s"
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_request_body_sent_a_byte_at_a_time_is_cut_off(start, kind):
    """A body gets KEEP_ALIVE_SECONDS plus its length at MIN_BODY_RATE (here
    about 10 s) from its head's end: a byte now and then does not keep it open."""
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        conn.send(f"POST {poll_path(sid)} HTTP/1.1\r\nHost: {server.host}\r\n"
                  "Content-Length: 200\r\n\r\n".encode())
        began = time.monotonic()
        assert trickled_until_closed(conn, 40), "the body was still being read after 40 s"
        assert time.monotonic() - began > 5  # (not cut off before its time)
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_line_and_an_absolute_target_on_a_kept_connection(start, kind):
    """RFC 9112: an empty line before a request line is skipped (a client may
    send one after a body), and an absolute-form target is accepted."""
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        body = event_packet("echo", "after", ack_id=1).encode()
        conn.send(conn.request("POST", poll_path(sid), body) + b"\r\n")
        status, _, answer = conn.response()
        assert (status, answer) == (200, b"1")
        target = f"http://{server.host}{poll_path(sid)}"  # (host is host:port)
        status, headers, answer = conn.ask("GET", target)
        assert status == 200 and "server" not in headers, headers
        assert decode_payload(answer.decode("utf-8")) == ['6:::1+["after"]']
    finally:
        conn.close()


def _one_date(headers: dict[str, str]) -> None:
    """A Date header that parses as an HTTP date in GMT (RFC 9110 §5.6.7)."""
    assert headers.get("date", "").endswith(" GMT"), headers
    assert parsedate_to_datetime(headers["date"]).utcoffset() == timedelta(0)


@pytest.mark.parametrize("kind", KINDS)
def test_the_hubs_answers_carry_a_date(start, kind):
    """RFC 9110 §6.6.1: an origin server with a clock sends Date. The hub's
    answers on kept connections, the pool's, a stream's head and the answer of
    a poll the hub parks (not kept) all carry one, as the WSGI servers' do."""
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        status, headers, _ = conn.ask("POST", poll_path(sid),
                                      event_packet("echo", "d", ack_id=1).encode())
        assert status == 200 and "server" not in headers, headers
        _one_date(headers)
        status, headers, body = conn.ask("GET", poll_path(sid))  # (takes the ack)
        assert body == b'6:::1+["d"]' and "server" not in headers, (body, headers)
        _one_date(headers)
        _one_date(conn.ask("GET", "/healthz")[1])
        closing = RawConnection(server)
        try:
            # a poll on a connection that is not kept, with nothing to answer:
            # parked in the hub, which writes its noop
            status, headers, body = closing.ask("GET", poll_path(sid),
                                                headers={"Connection": "close"})
            assert body == b"8::" and "server" not in headers, (body, headers)
            _one_date(headers)
        finally:
            closing.close()
        conn.send(conn.request("GET", poll_path(sid, "htmlfile")))
        status, headers = read_stream_head(conn)
        assert status == 200
        _one_date(headers)
    finally:
        conn.close()


@pytest.mark.parametrize("kind", ["gunicorn", "sio_run"])
def test_an_app_mounted_beside_others_keeps_no_connection_for_them(live_server, kind):
    """Mounted under /pre beside another app (DispatcherMiddleware), the
    Socket.IO app does not keep a polling connection in the hub: the hub would
    serve that connection's next requests with the mounted app, and the root
    app's pages, asked on the browser's kept connection, got the mounted app's
    index and 404s instead."""
    server = live_server(kind, fresh=True, app="tests.apps.mounted_app", websocket_mode="hub")
    answer = requests.get(f"{server.url}/pre/socket.io/1/", timeout=30)
    assert answer.status_code == 200, answer.text
    sid = answer.text.split(":")[0]
    # one connection for every request, as a browser keeps it, unless the
    # server closes it (Werkzeug's development server does after each answer)
    conn: dict = {}

    def ask(path: str) -> tuple[int, bytes]:
        if not conn:
            conn["sock"] = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            conn["reader"] = conn["sock"].makefile("rb")
        conn["sock"].sendall(f"GET {path} HTTP/1.1\r\nHost: {server.host}\r\n\r\n".encode())
        reader = conn["reader"]
        status = int(reader.readline().split()[1])
        length, close = 0, False
        while (line := reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            close = close or (name.lower() == "connection" and "close" in value.lower())
        body = reader.read(length)
        if close:
            conn.pop("reader").close()
            conn.pop("sock").close()
        return status, body

    try:
        assert ask(f"/pre/socket.io/1/xhr-polling/{sid}") == (200, b"1::")
        assert ask("/") == (200, b"root app")
        assert ask("/other") == (200, b"root other")
        assert ask("/pre/") == (200, b"mounted app")
    finally:
        if conn:
            conn["reader"].close()
            conn["sock"].close()


@pytest.mark.parametrize(("wrap", "kept"), [("subclass", True), ("patched", True),
                                            ("proxyfix", False), ("", True)])
def test_a_connection_is_kept_when_the_app_is_the_whole_site(live_server, wrap, kept):
    """Kept when the WSGI server calls the Flask app, through a subclass's
    ``__call__`` or a tracer's patch of ``Flask.__call__`` too (the hub calls
    the app the same way); not when middleware wraps the Flask object, which
    the hub would skip. A kept connection's answers are the hub's, which
    sends no ``Server`` header."""
    server = live_server("gunicorn", fresh=True, app="tests.apps.wrapped_app",
                         websocket_mode="hub", wrap=wrap)
    conn, headers = post_after_the_first_poll(server)
    try:
        assert ("server" not in headers) is kept, headers
        status, headers, body = conn.ask("GET", "/")
        assert (status, body) == (200, b"wrapped app")
    finally:
        conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_each_request_on_a_kept_connection_has_its_own_proxy_headers(start, kind):
    """A proxy that reuses its connection sends many clients' requests on it:
    gunicorn reads each one's scheme and SCRIPT_NAME headers from a peer it
    trusts (127.0.0.1 by default), and so does the hub; the first request's
    were kept for all. Werkzeug's server reads none of them."""
    server = start(kind)
    conn, sid = open_kept(server)
    try:
        def scheme(path="/scheme", **headers):
            status, _, body = conn.ask("GET", path, headers=headers or None)
            assert status == 200, (status, body)
            return json.loads(body)

        gunicorn = kind.startswith("gunicorn")
        assert scheme(**{"X-Forwarded-Proto": "https"})["scheme"] == \
            ("https" if gunicorn else "http")
        assert scheme()["scheme"] == "http"
        if gunicorn:
            assert scheme("/app/scheme", SCRIPT_NAME="/app") == \
                {"scheme": "http", "script_name": "/app", "path": "/scheme"}
            # the hub routes by the same SCRIPT_NAME: its own request, not the app's
            status, headers, body = conn.ask(
                "POST", "/app" + poll_path(sid), event_packet("echo", "x", ack_id=1).encode(),
                headers={"SCRIPT_NAME": "/app"})
            assert (status, body) == (200, b"1") and "server" not in headers, headers
            status, _, _ = conn.ask("GET", "/scheme", headers={"SCRIPT_NAME": "/app"})
            assert status == 500  # no prefix of the path: gunicorn's answer
            assert conn.ended()
            conn.close()
            conn, sid = open_kept(server)
            status, _, _ = conn.ask("GET", "/scheme", headers={
                "X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "off"})
            assert status == 400  # contradictory, as gunicorn answers
            assert conn.ended()
    finally:
        conn.close()


def test_clients_that_read_slowly_leave_threads_for_the_others(start):
    """Writing an answer to a client that does not read holds a thread of the
    hub's pool, as it would hold one of gunicorn's: the pool has as many as
    gunicorn's --threads. With 16 whatever --threads said, 16 such clients
    kept every other kept connection's pages and handshakes waiting."""
    server = start("gunicorn")
    stuck = []
    try:
        for _ in range(20):  # more than 16, fewer than --threads
            conn, _ = open_kept(server)
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            conn.send(conn.request("GET", "/big"))  # and never read
            stuck.append(conn)
        other, _ = open_kept(server)
        try:
            other.sock.settimeout(10)  # (was 25 s and more with a pool of 16)
            assert other.ask("GET", "/healthz")[::2] == (200, b"ok")
            status, _, body = other.ask("GET", "/socket.io/1/")
            assert status == 200 and body.count(b":") == 3
        finally:
            other.close()
    finally:
        for conn in stuck:
            conn.close()
