"""The HTTP surface: handshake, polling transports, htmlfile and thread-mode WebSocket.

Each function turns one WSGI request into session calls and a response; the
protocol rules (URLs, bodies, framing, escaping, origins) come from
``protocol.py`` and ``packet.py``. Responses are built as data
(``Response``) and written in one place, ``handle_request``, which also adds
the CORS headers. The htmlfile GET is the one response written in pieces
(``HTMLFileStream``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import packet as packet_codec
from . import protocol, wsframe
from .droplog import log_about, log_refused
from .http11 import date_line
from .server import NOOP, NOT_HANDSHAKEN, POLL_FAILED, UNRESPONSIVE, Server
from .session import IllegalTransition, Session
from .takeover import (can_take_over, client_socket, peer_closed, read_ahead, reset_on_close,
                       take_over_socket, wsgi_server_connections)

logger = logging.getLogger("flask_sio09")

Response = tuple[str, list[tuple[str, str]], bytes]
StartResponse = Callable[..., Any]

TEXT = "text/plain; charset=UTF-8"
SCRIPT = "text/javascript; charset=UTF-8"
# N answers the JSONP handshake with this type, and polls with SCRIPT
HANDSHAKE_SCRIPT = "application/javascript"
HTML = "text/html; charset=UTF-8"
#: how long a long-poll GET waits in its WSGI thread, in hub mode, before the
#: hub takes it over (see handle_request)
POLL_GRACE_SECONDS = 0.05
#: a poll's answer longer than this, written by the WSGI server's thread, is
#: watched for a client that stops reading it (a shorter one fits in the
#: kernel's socket buffers, so its write never waits for the client)
WATCHED_ANSWER_BYTES = 16384
# transports whose GET is a WebSocket upgrade
WEBSOCKET_TRANSPORTS = frozenset({"websocket", "flashsocket"})


def _response(status: str, body: str | bytes, content_type: str = TEXT,
              headers: Iterable[tuple[str, str]] = ()) -> Response:
    data = body.encode("utf-8") if isinstance(body, str) else body
    return status, [("Content-Type", content_type), *headers], data


def _query(environ: dict[str, Any]) -> dict[str, list[str]]:
    return protocol.parse_query(environ.get("QUERY_STRING", ""))


def _origin_ok(server: Server, environ: dict[str, Any], use_referer: bool = True,
               script: bool = False) -> bool:
    """See ``protocol.origin_allowed``; ``script``: a JSONP handshake or poll."""
    # N checks a WebSocket upgrade by its Origin alone (PROTOCOL.md §1.4)
    referer = environ.get("HTTP_REFERER") if use_referer else None
    return protocol.origin_allowed(environ.get("HTTP_ORIGIN"), referer,
                                   server.options.cors_allowed_origins,
                                   host=environ.get("HTTP_HOST"),
                                   fetch_site=environ.get("HTTP_SEC_FETCH_SITE"),
                                   credentialed_script=script and _credentialed(environ))


def _credentialed(environ: dict[str, Any]) -> bool:
    """Whether the request carries the user's credentials (what a browser
    adds by itself: cookies, HTTP authentication)."""
    return bool(environ.get("HTTP_COOKIE") or environ.get("HTTP_AUTHORIZATION"))


@dataclass
class HeldAnswer:
    """The answer to an upload whose session's handlers lag behind
    (``Server.upload_received``): sent once they have run, which holds the
    client's next upload back until then."""

    session: Session
    response: Response


@dataclass
class LongPoll:
    """A GET to answer later, once, with the session's packets: ``render``
    turns the payload (packets, ``8::`` or ``0::``) into the response."""

    session: Session
    render: Callable[[str], Response]


def handle_request(server: Server, route: protocol.Route, environ: dict[str, Any],
                   start_response: StartResponse) -> Iterable[bytes]:
    """Answer one request under ``/<resource>/``."""
    method = environ.get("REQUEST_METHOD", "GET")
    transport = route.transport
    if transport in WEBSOCKET_TRANSPORTS and method == "GET" and \
            wsframe.names_websocket(environ.get("HTTP_UPGRADE", "")) and \
            transport in server.options.transports:
        if not _origin_ok(server, environ, use_referer=False):
            return _finish(environ, start_response, _response("403 Forbidden", "bad origin"),
                           cors=False)
        if use_hub(server, environ):
            return serve_websocket_in_hub(server, route.sid or "", environ, start_response)
        if server.options.websocket_mode != "thread" and hub_full(server):
            # a thread would hold one of the WSGI server's threads for as long
            # as the client stays: the client tries again (or another transport)
            return _finish(environ, start_response,
                           _response("503 Service Unavailable", "server full"), cors=False)
        return serve_websocket(server, route.sid or "", environ, start_response)
    # N sends no CORS headers to a refused origin
    cors = _origin_ok(server, environ)
    result = route_request(server, route, method, environ, origin_allowed=cors)
    if isinstance(result, LongPoll):
        if use_hub(server, environ) and _keeps_alive(server, environ):
            # the hub answers this poll and serves the connection's next requests
            poll = result
            return _keep_in_hub(server, environ, start_response,
                                lambda conn: conn.begin_poll(poll, environ, cors))
        if use_hub(server, environ):
            # A busy client's answer usually comes within a moment: answered in
            # this thread, the HTTP connection stays alive for its next request
            # (an answer from the hub closes it). An idle poll goes to the hub.
            waiter = hold_poll(server, result.session, POLL_GRACE_SECONDS)
            if not waiter.ready():
                return park_in_hub(server, result, environ, start_response, cors, waiter)
        else:
            waiter = hold_poll(server, result.session, server.options.polling_duration)
        sock = client_socket(environ)
        payload = answer_held_poll(server, result.session, waiter, sock)
        status, headers, body = _complete(environ, result.render(payload), cors)
        start_response(status, headers)
        if sock is None or len(body) <= WATCHED_ANSWER_BYTES:
            return [body]
        return WatchedAnswer(server, body, sock)
    if isinstance(result, Stream):
        add_cors(environ, result.headers, cors)
        if use_hub(server, environ):
            return stream_in_hub(server, result, environ, start_response)
        start_response("200 OK", result.headers)  # no length: sent chunked
        return stream_chunks(server, result, client_socket(environ))
    if isinstance(result, HeldAnswer):
        held = result
        if use_hub(server, environ):
            answer = _complete(environ, held.response, cors)
            if _keeps_alive(server, environ):
                return _keep_in_hub(server, environ, start_response,
                                    lambda conn: conn.respond_when_handled(held.session, answer))
            return hold_answer_in_hub(server, held.session, answer, environ, start_response)
        handled = threading.Event()
        server.when_handled(held.session, handled.set)
        if not handled.wait(server.options.close_timeout):
            logger.info("session %s: its handlers still lag behind its uploads after %s s; "
                        "answered anyway", held.session.sid, server.options.close_timeout)
        result = held.response
    if method == "POST" and transport in KEPT_TRANSPORTS and result[0] == "200 OK" and \
            use_hub(server, environ) and _keeps_alive(server, environ):
        answer = _complete(environ, result, cors)
        return _keep_in_hub(server, environ, start_response, lambda conn: conn.respond(answer))
    return _finish(environ, start_response, result, cors=cors)


def route_request(server: Server, route: protocol.Route, method: str,
                  environ: dict[str, Any],
                  full_environ: Callable[[], dict[str, Any]] | None = None,
                  origin_allowed: bool | None = None,
                  ) -> Response | LongPoll | Stream:
    """Decide the response to a non-WebSocket request.

    :param full_environ: makes the whole environ of the request, when
                         ``environ`` has only what the routing needs (the
                         hub's kept connections): a session adopted from
                         another process keeps it.
    :param origin_allowed: ``origin_ok(server, environ)``, when the caller
                           has asked it already (for its CORS headers).
    """
    if route.protocol == "":
        return _response("200 OK", "Welcome to socket.io.")
    if route.protocol != "1":
        return _response("500 Internal Server Error", "Protocol version not supported.")
    if method == "OPTIONS":  # a CORS preflight: answered, no session is made
        return _preflight()
    if route.transport is None:
        return handshake(server, environ, _query(environ))
    if method == "GET" and route.transport == "jsonp-polling":
        # (a script's answer is readable by any page: the stricter check)
        origin_allowed = _origin_ok(server, environ, script=True)
    elif origin_allowed is None:
        origin_allowed = _origin_ok(server, environ)
    if not origin_allowed:
        return _response("403 Forbidden", "bad origin")
    query_string = environ.get("QUERY_STRING", "")
    # (only a query naming it, or with escapes, can have a "disconnect" field:
    # a poll's "t=<timestamp>" is not parsed here)
    if ("disconnect" in query_string or "%" in query_string) and \
            "disconnect" in protocol.parse_query(query_string):
        return forced_disconnect(server, route.sid or "")
    handler = POLLING.get(route.transport)
    if handler is None or route.transport not in server.options.transports:
        log_refused("unknown transport", "request for unknown or disabled transport %r",
                    route.transport[:40])
        return _response("400 Bad Request", "transport not supported")
    # a GET may still collect a closed session's last packets (its "0::")
    sid = route.sid or ""
    adopt = None
    if server.cluster is not None:  # (no closure per request without a message queue)
        adopt = full_environ or (lambda: keep_environ(environ))
    session = server.get_session(sid, draining=method == "GET", adopt=adopt)
    # another process of the application (message_queue) may hold the session
    elsewhere = session is None and server.held_elsewhere(sid)
    if method == "POST":
        return handler.post(server, session, environ, sid if elsewhere else None)
    if method == "GET":
        if elsewhere:  # a poll cannot wait here for packets queued there
            logger.info("session %s: a poll reached this process, another holds the "
                        "session; polling transports need requests routed to one process "
                        "(docs/deployment.md)", sid)
        return handler.get(server, session, environ)
    return _response("405 Method Not Allowed", "")


def origin_ok(server: Server, environ: dict[str, Any], use_referer: bool = True) -> bool:
    """Whether the request's Origin (or Referer, unless ``use_referer`` is
    False, as for a WebSocket upgrade) may use the server: it then gets the
    CORS headers."""
    return _origin_ok(server, environ, use_referer)


def complete_response(environ: dict[str, Any], response: Response, cors: bool) -> Response:
    """``response`` with its CORS pair (when ``cors`` and an Origin came) and
    its Content-Length, ready to write."""
    return _complete(environ, response, cors)


def add_cors(environ: dict[str, Any], headers: list[tuple[str, str]], cors: bool) -> None:
    """Add the CORS pair when asked and an Origin came (N echoes the Origin)."""
    origin = environ.get("HTTP_ORIGIN")
    if cors and origin and not any(h[0] == "Access-Control-Allow-Origin" for h in headers):
        headers.append(("Access-Control-Allow-Origin", origin))
        headers.append(("Access-Control-Allow-Credentials", "true"))


def _complete(environ: dict[str, Any], response: Response, cors: bool) -> Response:
    """Add the CORS pair (when asked and an Origin came) and Content-Length."""
    status, headers, body = response
    add_cors(environ, headers, cors)
    headers.append(("Content-Length", str(len(body))))
    return status, headers, body


def _finish(environ: dict[str, Any], start_response: StartResponse, response: Response,
            cors: bool = True) -> list[bytes]:
    status, headers, body = _complete(environ, response, cors)
    start_response(status, headers)
    return [body]


def http_bytes(response: Response) -> bytes:
    """A completed response as HTTP/1.1 bytes, for the hub to write itself.
    The hub closes the connection after it, so it says so."""
    status, headers, body = response
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (f"HTTP/1.1 {status}\r\n{date_line()}{head}Connection: close\r\n\r\n"
            .encode("latin-1") + body)


def _preflight() -> Response:
    return _response("200 OK", "", headers=[
        ("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
        ("Access-Control-Allow-Headers", "Content-Type"),
        ("Access-Control-Max-Age", "3600")])


# -- handshake and disconnect ---------------------------------------------

def handshake(server: Server, environ: dict[str, Any], query: dict[str, list[str]]) -> Response:
    """``/<resource>/1/``: create a session, or refuse (403/500)."""
    jsonp = protocol.jsonp_index(query.get("jsonp", [None])[0])

    def error(status: str, message: str) -> Response:
        if jsonp is not None:
            return _response("200 OK", protocol.jsonp_error(jsonp, message), HANDSHAKE_SCRIPT)
        return _response(status, message)

    if server.going_away:
        # this process stops serving: the client tries again, and reaches one
        # that serves (a session made here would end with the process)
        return error("503 Service Unavailable", "server stopping")
    if not _origin_ok(server, environ, script=jsonp is not None):
        log_refused("bad origin", "handshake refused: bad origin %r",
                    (environ.get("HTTP_ORIGIN") or "")[:100])
        if jsonp is not None:
            return error("403 Forbidden", "handshake bad origin")
        return _response("403 Forbidden", "handshake bad origin")
    try:
        allowed = server.app.authorize_handshake(environ)
    except Exception:
        logger.exception("handshake authorization failed")
        return error("500 Internal Server Error", "handshake error")
    if not allowed:
        return error("403 Forbidden", "handshake unauthorized")
    session = server.new_session(keep_environ(environ))
    opts = server.options
    body = protocol.handshake_body(session.sid, opts.heartbeat_timeout, opts.close_timeout,
                                   opts.transports)
    if jsonp is not None:
        return _response("200 OK", protocol.jsonp_wrap(jsonp, body), HANDSHAKE_SCRIPT)
    return _response("200 OK", body)


def keep_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """A copy of the handshake environ that is safe to keep for the session's
    life: no socket, and an empty body stream."""
    import io

    kept = {k: v for k, v in environ.items()
            if k not in ("werkzeug.socket", "gunicorn.socket", "wsgi.input", "wsgi.errors")
            and not k.startswith("werkzeug.request")}
    kept["wsgi.input"] = io.BytesIO(b"")
    kept["wsgi.errors"] = environ.get("wsgi.errors")
    return kept


def forced_disconnect(server: Server, sid: str) -> Response:
    """``?disconnect``: end the session, whether or not a transport is open
    (``Server.forced_disconnect``: after the handlers of what came before)."""
    session = server.get_session(sid)
    if session is not None:
        server.forced_disconnect(session)
    elif server.held_elsewhere(sid):
        server.disconnect(sid)  # its process ends it
    return _response("200 OK", "")


# -- polling ----------------------------------------------------------------

class PollWaiter:
    """A long-poll GET held in its WSGI thread until data comes or time runs out."""

    persistent = False

    def __init__(self, session: Session) -> None:
        self.session = session
        self.event = threading.Event()

    def wake(self) -> None:
        self.event.set()

    def ready(self) -> bool:
        """True when the poll must be answered now: packets are queued, the
        session ended, or a newer poll replaced this one."""
        session = self.session
        return session.has_outbox() or session.closed or session.transport is not self


def hold_poll(server: Server, session: Session, seconds: float) -> PollWaiter:
    """Attach a poll to the session and wait, at most ``seconds``, until it is
    ready to be answered; the poll is still attached when this returns."""
    waiter = PollWaiter(session)
    server.attach(session, waiter)
    deadline = server.clock() + seconds
    while not waiter.ready():
        remaining = deadline - server.clock()
        if remaining <= 0 or not waiter.event.wait(remaining):
            break
        waiter.event.clear()
    return waiter


def answer_held_poll(server: Server, session: Session, waiter: PollWaiter,
                     sock: socket.socket | None) -> str:
    """The answer of a poll held in this thread (``Server.answer_poll``). If its
    client hung up meanwhile (socketIO-client gives up on a poll after its
    own timeout), the poll lets go of the session without taking its packets:
    they wait for the next poll, and the answer reaches no one."""
    if sock is not None and peer_closed(sock):
        server.detach(session, waiter)
        return NOOP
    return server.answer_poll(session, waiter)


class WatchedAnswer:
    """A long poll's answer that the WSGI server writes from its thread,
    handed to it in parts. A client that stops reading would hold that
    thread for as long as it keeps the connection open (gunicorn and
    Werkzeug write without a timeout), so the server's monitor checks it:
    when no part has been taken for ``close_timeout``, the socket is shut
    down, the blocked write fails and the thread is free. The hub applies
    the same rule to the answers it writes itself."""

    PART = 65536

    def __init__(self, server: Server, body: bytes, sock: socket.socket) -> None:
        self.server, self.body, self.sock = server, body, sock
        self.moved_at = server.clock()
        server.watch_write(self)

    def __iter__(self) -> Iterator[bytes]:
        body, part = self.body, self.PART
        for start in range(0, len(body), part):
            # the WSGI server asks for a part once it has written the last one
            self.moved_at = self.server.clock()
            yield body[start:start + part]

    def close(self) -> None:
        """Called by the WSGI server when the answer is written or abandoned."""
        self.server.unwatch_write(self)

    def check(self, now: float) -> None:
        """The monitor's look: cut off a write that has not moved on for
        ``close_timeout``."""
        if now - self.moved_at <= self.server.options.close_timeout:
            return
        self.server.unwatch_write(self)
        logger.info("a poll's answer untaken for %ss; connection cut off",
                    self.server.options.close_timeout)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class BadBody(ValueError):
    """A request body that cannot be used: its Content-Length is not a
    number, or it ended before that length (the client hung up)."""


def _discard(stream: Any, length: int) -> None:
    """Read and drop ``length`` bytes of a body, in bounded pieces."""
    try:
        while length > 0:
            chunk = stream.read(min(length, 65536))
            if not chunk:
                return
            length -= len(chunk)
    except OSError:
        pass  # the client went away: nothing to answer anyway


def read_body(server: Server, environ: dict[str, Any]) -> bytes | None:
    """The request body, or None when it is larger than ``max_http_buffer_size``
    (a declared length over the limit is refused before any of it is read).

    :raises BadBody: an invalid Content-Length, or a body cut short.
    """
    limit = server.options.max_http_buffer_size
    stream = environ["wsgi.input"]
    declared = environ.get("CONTENT_LENGTH") or ""
    if not declared:
        if not environ.get("wsgi.input_terminated"):
            # neither a length nor chunked: HTTP/1.1 says there is no body
            # (reading would wait for a client that sends nothing more)
            return b""
        try:
            data: bytes = stream.read(limit + 1)  # chunked; the server ends the stream
        except (OSError, ValueError) as exc:
            # the server's de-chunking found a bad chunk size or framing
            # (Werkzeug raises OSError for them); the client hung up mid-body
            raise BadBody(f"chunked body not received: {exc.__class__.__name__}") from None
        return None if len(data) > limit else data
    if not (declared.isascii() and declared.isdigit()):
        raise BadBody("invalid Content-Length")
    if len(declared) > 15 or int(declared) > limit:
        if len(declared) <= 15 and int(declared) <= 2 * limit:
            # read and drop a body that is only somewhat too large: closing the
            # connection with it unread would reset it before the client could
            # read our 413 (a far larger one is refused unread)
            _discard(stream, int(declared))
        return None
    length = int(declared)
    try:
        data = stream.read(length)
    except OSError as exc:  # the connection failed mid-body
        raise BadBody(f"body not received: {exc.__class__.__name__}") from None
    if len(data) < length:
        raise BadBody(f"body of {len(data)} bytes, {length} announced")
    return data


class XHRPolling:
    """``xhr-polling``: GET is a long poll, POST uploads a payload."""

    @staticmethod
    def get(server: Server, session: Session | None, environ: dict[str, Any],
            ) -> Response | LongPoll:
        if session is None:
            return _response("200 OK", NOT_HANDSHAKEN)
        return _long_poll(session, lambda payload: _response("200 OK", payload))

    @staticmethod
    def decode_body(body: bytes) -> str:
        return body.decode("utf-8")

    @classmethod
    def post(cls, server: Server, session: Session | None, environ: dict[str, Any],
             held_elsewhere: str | None = None) -> Response:
        """:param held_elsewhere: with no session here, the sid of a session
                                  another process holds: the payload is
                                  forwarded to it."""
        sid = session.sid if session is not None else held_elsewhere
        try:
            body = read_body(server, environ)
        except BadBody as exc:  # nothing of it is dispatched; the session lives on
            log_about(session, "bad POST", "session %s: POST refused: %s", sid or "-", exc)
            return _response("400 Bad Request", "")
        if body is None:
            log_about(session, "bad POST", "session %s: POST over %d bytes refused (413)",
                      sid or "-", server.options.max_http_buffer_size)
            if session is not None:
                server.refuse_upload(session)
            elif held_elsewhere is not None:  # it ends where it is held
                server.refuse_upload_elsewhere(held_elsewhere)
            return _response("413 Request Entity Too Large", "")
        if sid is None:
            # answered "1" as N does; its next poll tells the client the session is gone
            log_refused("POST to no session",
                        "POST to an unknown or ended session: %d bytes dropped", len(body))
            return _response("200 OK", "1", headers=[("X-XSS-Protection", "0")])
        try:
            text = cls.decode_body(body)
        except (UnicodeDecodeError, packet_codec.PacketError) as exc:
            log_about(session, "bad POST", "session %s: undecodable POST dropped (%s)", sid, exc)
            return _response("400 Bad Request", "")
        answer = _response("200 OK", "1", headers=[("X-XSS-Protection", "0")])
        if session is not None:
            server.receive(session, text)
            if server.upload_received(session, len(text)):
                return HeldAnswer(session, answer)
        elif not server.forward_payload(sid, text):  # (logged)
            return _response("503 Service Unavailable", "")
        return answer


class JSONPPolling(XHRPolling):
    """``jsonp-polling``: the long poll of xhr-polling, answered as a script
    ``io.j[<i>]("<payload>");``; POSTs carry the payload in a form field ``d``."""

    @staticmethod
    def get(server: Server, session: Session | None, environ: dict[str, Any],
            ) -> Response | LongPoll:
        index = protocol.jsonp_index(_query(environ).get("i", [None])[0])
        if index is None:
            # N falls back to io.j[0]; answering 400 keeps a bad value out of
            # the script, and every client sends a valid one
            return _response("400 Bad Request", "bad jsonp index")
        if session is None:
            return _jsonp_answer(index, NOT_HANDSHAKEN)
        return _long_poll(session, lambda payload: _jsonp_answer(index, payload))

    @staticmethod
    def decode_body(body: bytes) -> str:
        return protocol.decode_jsonp_body(body)


def _long_poll(session: Session, answer: Callable[[str], Response]) -> LongPoll:
    """A poll answered by ``answer(payload)``, or failed with an HTTP error when
    its session ended so that its client reconnects (``Server.answer_poll``):
    a failed poll (an XHR's status, a script tag's onerror) makes
    socket.io-client 0.9 start a new handshake."""
    def render(payload: str) -> Response:
        if payload == POLL_FAILED:
            return _response("410 Gone", "session ended: reconnect")
        return answer(payload)
    return LongPoll(session, render)


def _jsonp_answer(index: int, payload: str) -> Response:
    # N's headers: a script (no CORS: a script tag ignores it) that old IE's
    # XSS filter must leave alone
    return _response("200 OK", protocol.jsonp_wrap(index, payload), SCRIPT,
                     headers=[("X-XSS-Protection", "0")])


# -- htmlfile: one streaming response per connection ---------------------------

class HTMLFileStream:
    """An open htmlfile GET. Like a WebSocket it is persistent: heartbeats flow
    over it and its end ends the session. In thread mode it holds its request
    thread for its whole life."""

    persistent = True

    def __init__(self, sock: socket.socket | None = None) -> None:
        self.event = threading.Event()
        self.sock = sock
        #: set once the body generator has ended
        self.done = False

    def wake(self) -> None:
        self.event.set()

    def peer_closed(self) -> bool:
        """Whether the client has hung up. A client sends nothing after its
        htmlfile GET, so only its end of stream can wait unread; the write
        that would notice the loss comes with the next heartbeat, and after
        a FIN only the second write fails."""
        return self.sock is not None and peer_closed(self.sock)

    def abort(self) -> None:
        """The session closed ``close_timeout`` ago (at once, for an outbox
        overflow) and the WSGI server is still writing this stream to a
        client that stopped reading: shutting the socket down unblocks it,
        and its close then resets the connection, dropping what was not sent
        (decisions.md, "Outbox limit"), as for a thread-mode WebSocket."""
        if not self.done and self.sock is not None:
            logger.info("htmlfile stream still open long after its session closed; cut off")
            self.cut_off()

    def cut_off(self) -> None:
        """End the connection with a reset: its close drops what the kernel
        still holds for a client that stopped reading."""
        if self.sock is not None:
            try:
                reset_on_close(self.sock)
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class Stream:
    """A GET that stays open and carries the session (htmlfile): ``preamble``
    first, then ``encode(packets)`` for each flush of the outbox."""

    session: Session
    headers: list[tuple[str, str]]
    preamble: bytes
    encode: Callable[[list[str]], bytes]


#: how often an htmlfile stream in a request thread looks whether its client hung up
HANG_UP_CHECK_SECONDS = 1.0


def htmlfile_encode(packets: list[str]) -> bytes:
    """One htmlfile write: every packet waiting, framed when there are several."""
    return protocol.htmlfile_chunk(packet_codec.frame(packets)).encode("utf-8")


def stream_chunks(server: Server, stream: Stream,
                  sock: socket.socket | None = None) -> Iterator[bytes]:
    """The body of a stream, pulled by the WSGI server on the request thread:
    the preamble, then one chunk per flush, until the session closes or a newer
    transport replaces this one.

    A write that fails (the client went away) makes the WSGI server close this
    generator, which releases the transport and so ends the session. ``sock``
    (the request's socket, when the WSGI server exposes it) lets the server cut
    off a client that stops reading (``HTMLFileStream.abort``).
    """
    session = stream.session
    transport = HTMLFileStream(sock)
    try:
        server.attach(session, transport)
    except IllegalTransition:  # the session closed since the request looked it up
        yield stream.preamble
        yield stream.encode([NOT_HANDSHAKEN])
        return
    # re-check now and then even if nothing wakes us (cheap insurance); with
    # the socket at hand, often enough to see the client hang up
    recheck = server.options.heartbeat_interval
    if sock is not None:
        recheck = min(recheck, HANG_UP_CHECK_SECONDS)
    released = False
    try:
        yield stream.preamble
        while session.transport is transport and not session.closed:
            packets = session.take_outbox(transport)
            if packets:
                yield stream.encode(packets)
                continue
            if not transport.event.wait(recheck) and transport.peer_closed():
                logger.debug("session %s: the htmlfile client hung up", session.sid)
                break  # (released below: the session ends, as when a write fails)
            transport.event.clear()
        released = True
        leftover = server.release(session, transport)
        if session.close_reason in UNRESPONSIVE:
            # its client stopped reading: nothing more, and what the kernel
            # holds for it is dropped (the stream may end here before the
            # monitor's abort, when no write was stuck as the session closed)
            transport.cut_off()
            return
        if leftover:  # e.g. the "0::" of a server-side disconnect
            yield stream.encode(leftover)
    finally:
        transport.done = True
        if not released:
            server.release(session, transport)


class HTMLFile(XHRPolling):
    """``htmlfile``: GET is a stream of ``<script>`` calls into an iframe;
    POSTs upload payloads exactly as for xhr-polling."""

    @staticmethod
    def get(server: Server, session: Session | None, environ: dict[str, Any],
            ) -> Response | Stream:
        if session is None:
            body = protocol.HTMLFILE_PREAMBLE + protocol.htmlfile_chunk(NOT_HANDSHAKEN)
            return _response("200 OK", body, HTML)
        return Stream(session, [("Content-Type", HTML)],
                      protocol.HTMLFILE_PREAMBLE.encode("utf-8"), htmlfile_encode)


POLLING: dict[str, Any] = {"xhr-polling": XHRPolling, "jsonp-polling": JSONPPolling,
                           "htmlfile": HTMLFile}


# -- WebSocket, one thread per connection --------------------------------------

def serve_websocket(server: Server, sid: str, environ: dict[str, Any],
                    start_response: StartResponse) -> Iterable[bytes]:
    """Upgrade on simple-websocket, then serve the session on this thread and
    simple-websocket's reader thread (``thread_websocket``) until either side
    closes."""
    import simple_websocket

    from . import thread_websocket

    try:
        # simple-websocket would upgrade with a malformed key: answer as the hub does
        wsframe.handshake_response(environ)
    except wsframe.HandshakeError as exc:
        log_refused("websocket upgrade", "websocket upgrade refused: %s", exc)
        return _finish(environ, start_response,
                       (exc.status, list(exc.headers), str(exc).encode("utf-8")))
    # before the 101: should the lookup fail, the client gets a plain HTTP
    # error, not one written into the upgraded stream (a session the server
    # ended before any transport opened gives its last packets, as to a poll)
    session = server.get_session(sid, draining=True, adopt=lambda: keep_environ(environ))
    try:
        ws = simple_websocket.Server(thread_websocket.upgrade_environ(environ),
                                     max_message_size=server.options.max_http_buffer_size,
                                     thread_class=thread_websocket.reader_thread,
                                     event_class=thread_websocket.ReaderSignal)
    except Exception as exc:
        log_refused("websocket upgrade", "websocket upgrade failed: %s", exc)
        return _finish(environ, start_response, _response("400 Bad Request", ""))
    return thread_websocket.serve(server, ws, session, environ, start_response)


# -- the I/O hub ------------------------------------------------------------------

_hub_lock = threading.Lock()


def use_hub(server: Server, environ: dict[str, Any]) -> bool:
    """Whether this request's connection goes to the hub: the mode allows it
    and the WSGI server exposes a socket that can be taken over."""
    mode = server.options.websocket_mode
    if mode == "thread" or environ.get("sio09.kept"):
        return False  # (a kept connection's request: the hub has its socket already)

    if can_take_over(environ):
        # when the hub is full, a poll is answered by this thread, whose
        # connection the WSGI server counts (and bounds) as its own
        return not hub_full(server)
    if mode == "hub":
        # said once per server: every long-poll and upgrade comes here
        level = logging.DEBUG if server in _told_no_hub else logging.WARNING
        _told_no_hub.add(server)
        logger.log(level, "websocket_mode='hub' but this server does not expose a plain "
                   "socket (none, or TLS); using a thread for this connection")
    return False


#: servers already warned that the hub cannot take their connections
_told_no_hub: weakref.WeakSet[Server] = weakref.WeakSet()

#: when each server last said that its hub is full (see hub_full)
_told_full: weakref.WeakKeyDictionary[Server, float] = weakref.WeakKeyDictionary()
FULL_WARNING_INTERVAL = 10.0


def hub_full(server: Server) -> bool:
    """Whether the hub holds as many connections as the process's open-file
    limit leaves it (``takeover.connection_capacity``); logged at most every
    ``FULL_WARNING_INTERVAL`` seconds."""
    hub = server.hub
    if hub is None or hub.connections < hub.capacity:
        return False
    now = time.monotonic()
    if now - _told_full.get(server, -FULL_WARNING_INTERVAL) >= FULL_WARNING_INTERVAL:
        _told_full[server] = now
        logger.warning("hub: %d connections, all that the open-file limit leaves it "
                       "(raise ulimit -n); WebSocket upgrades get 503 meanwhile",
                       hub.connections)
    return True


def get_hub(server: Server) -> Any:
    """The server's hub, started on first use."""
    if server.hub is None:
        with _hub_lock:
            if server.hub is None:
                from .hub import Hub

                wsframe.choose_unmask()  # (the import, here rather than on the hub thread)
                server.hub = Hub(server, server.clock, wsgi_server_connections())
    return server.hub


def _end_taken_over(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """End the WSGI call of a connection the hub now owns. The server's fd
    points at a dead socket (see hub.take_over_socket), so nothing it writes
    reaches the client."""
    if "gunicorn.socket" in environ:
        raise StopIteration()  # gunicorn: close this connection without a response
    start_response("200 OK", [("Content-Length", "0")])
    return []


#: transports whose POSTs the hub serves on a connection it keeps alive
#: (hub_http.py); htmlfile's GET is a stream, so only its POSTs come here
KEPT_TRANSPORTS = frozenset({"xhr-polling", "jsonp-polling", "htmlfile"})


def _keeps_alive(server: Server, environ: dict[str, Any]) -> bool:
    from .hub_http import can_keep

    return can_keep(server, environ)


def _keep_in_hub(server: Server, environ: dict[str, Any], start_response: StartResponse,
                 first: Callable[[Any], None]) -> Iterable[bytes]:
    """Give the connection to the hub, which finishes this request with
    ``first`` and serves the next ones (hub_http.py); this thread returns at once."""
    from .hub_http import keep_in_hub

    keep_in_hub(server, environ, first)
    return _end_taken_over(environ, start_response)


def park_in_hub(server: Server, poll: LongPoll, environ: dict[str, Any],
                start_response: StartResponse, cors: bool,
                waiter: PollWaiter) -> Iterable[bytes]:
    """Hand a long-poll GET to the hub, which takes the session over from
    ``waiter`` (still attached, so nothing is missed in between); this thread
    returns at once."""
    from .hub import HubPoll

    hub = get_hub(server)
    sock = take_over_socket(environ)
    kept = {"HTTP_ORIGIN": environ.get("HTTP_ORIGIN")} if environ.get("HTTP_ORIGIN") else {}

    def render(payload: str) -> bytes:
        return http_bytes(_complete(kept, poll.render(payload), cors))

    deadline = server.clock() + server.options.polling_duration
    conn = HubPoll(hub, sock, poll.session, render, deadline, replaces=waiter)
    hub.call(conn.start)
    return _end_taken_over(environ, start_response)


def hold_answer_in_hub(server: Server, session: Session, answer: Response,
                       environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Hand a held upload answer (``HeldAnswer``) on a connection that is not
    kept alive to the hub, which sends it once the session's handlers have
    run and closes; this thread returns at once."""
    from .hub import HubHeldAnswer

    conn = HubHeldAnswer(get_hub(server), take_over_socket(environ), session,
                         http_bytes(answer))
    conn.hub.call(conn.start)
    return _end_taken_over(environ, start_response)


def stream_in_hub(server: Server, stream: Stream, environ: dict[str, Any],
                  start_response: StartResponse) -> Iterable[bytes]:
    """Hand an htmlfile stream to the hub, which writes it chunked."""
    from .hub import HubStream

    head_bytes = stream_head(stream)
    hub = get_hub(server)
    conn = HubStream(hub, take_over_socket(environ), stream.session, stream.encode)
    hub.call(lambda: conn.start(head_bytes))
    return _end_taken_over(environ, start_response)


def stream_head(stream: Stream) -> bytes:
    """What the hub writes first for a stream: the response head (chunked;
    the stream ends the connection) and the preamble as the first chunk."""
    from .hub import HubStream

    head = "".join(f"{name}: {value}\r\n" for name, value in stream.headers)
    return (f"HTTP/1.1 200 OK\r\n{date_line()}{head}Transfer-Encoding: chunked\r\n"
            f"Connection: close\r\n\r\n").encode("latin-1") + HubStream.chunk(stream.preamble)


def serve_websocket_in_hub(server: Server, sid: str, environ: dict[str, Any],
                           start_response: StartResponse) -> Iterable[bytes]:
    """Answer the upgrade and hand the socket to the hub."""
    from .hub_websocket import HubWebSocket

    try:
        answer = wsframe.handshake_response(environ)
    except wsframe.HandshakeError as exc:
        log_refused("websocket upgrade", "websocket upgrade refused: %s", exc)
        refusal = (exc.status, list(exc.headers), str(exc).encode("utf-8"))
        return _finish(environ, start_response, refusal)
    # before the socket is taken: should the lookup fail, the client gets a
    # plain HTTP error rather than a connection closed without a word (a
    # session the server ended before any transport opened gives its last
    # packets, its 0::, as it would to a poll)
    session = server.get_session(sid, draining=True, adopt=lambda: keep_environ(environ))
    hub = get_hub(server)
    take_early = read_ahead(environ)
    sock = take_over_socket(environ)
    early = take_early() if take_early is not None else b""
    conn = HubWebSocket(hub, sock, session, server.options.max_http_buffer_size)
    hub.call(lambda: conn.start(answer, early))
    return _end_taken_over(environ, start_response)
