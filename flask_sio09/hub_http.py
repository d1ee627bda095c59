"""Polling connections the hub keeps alive and serves itself (hub mode).

A polling client sends a long-poll GET and a POST per message it emits: two
HTTP requests per exchange, on connections it keeps alive (a browser, a Node
agent with ``keepAlive``). Served by the WSGI server, each of them costs the
server's request machinery, a thread hand-off and a parse into a full WSGI
environ. So once a keep-alive polling request has come through the WSGI
server (and our middleware), the hub adopts its connection (``keep_in_hub``)
and reads the client's next requests itself with the strict parser of
``http11.py``:

* GET and POST of ``xhr-polling`` and ``jsonp-polling``, and POSTs of
  ``htmlfile``, under ``/<resource>/1/`` are answered on the hub thread by
  the same code the WSGI path uses (``transports.route_request``): origin
  and CORS rules, JSONP rules and the body limit are unchanged. A long-poll GET waits in the hub
  and its answer leaves the connection open for the next request.
* An htmlfile GET becomes a stream the hub writes (``HubStream``), as on
  the WSGI path; the stream ends the connection.
* Any other request (a page, a static file, a handshake)
  runs the whole Flask app on a thread of ``hub_wsgi.py``, as a WSGI server
  would run it, and the connection comes back to the hub afterwards.
* A WebSocket upgrade of ours is checked as on the WSGI path and the socket
  becomes a ``HubWebSocket``.
* Input the parser refuses gets its 4xx/5xx and the connection is closed;
  chunked request bodies are answered ``411`` and closed (no browser sends
  them). Pipelined requests are served in order, one at a time.
"""

from __future__ import annotations

import functools
import io
import logging
import math
import socket
import sys
from collections.abc import Callable
from typing import Any

from . import hub_wsgi, protocol, transports, wsframe
from .droplog import log_refused
from .http11 import MAX_HEAD_BYTES, HeadMemo, HTTPError, RequestHead, date_line, parse_head
from .hub import READ, Hub, HubConnection
from .server import Server
from .session import IllegalTransition, Session
from .takeover import read_ahead, take_over_socket

logger = logging.getLogger("flask_sio09")

#: how long a kept connection may sit without a whole request (idle, or a
#: request that stopped arriving) before the hub closes it
KEEP_ALIVE_SECONDS = 10.0
#: the slowest a request body may arrive, on average, in bytes a second: a
#: body gets KEEP_ALIVE_SECONDS plus its length at this rate, from its head's
#: end, so that one sent a byte now and then does not hold the connection
MIN_BODY_RATE = 8192
#: bytes a client may send ahead while its long poll waits (pipelining);
#: more than this closes the connection
PIPELINE_LIMIT = 65536
#: request paths whose route is remembered (``_route_of``), the latest used
#: kept: a path per polling session; one sent a new path each time only
#: pushes others out
ROUTES_REMEMBERED = 4096
#: the longest path remembered: a session's polling path is about 50
#: characters; longer ones are routed each time, so that what the cache
#: holds stays small (4,096 paths of 4 KB, which a client may send, kept
#: about 30 MB)
ROUTE_PATH_REMEMBERED = 256
#: the transports whose requests the hub serves itself (an htmlfile GET turns
#: the connection into a stream the hub writes, which ends it)
SERVED_TRANSPORTS = frozenset({"xhr-polling", "jsonp-polling", "htmlfile"})

# what a kept connection is doing
IDLE = "idle"            # waiting for (the rest of) a request head
BODY = "body"            # waiting for the rest of a body
DISCARD = "discard"      # dropping a body somewhat over the limit, before the 413
POLL = "poll"            # a long-poll GET waits for packets
HELD = "held"            # an upload's answer waits for its session's handlers
ELSEWHERE = "elsewhere"  # a worker thread serves a request on the socket
CLOSING = "closing"      # the last answer is on its way


class KeptPoll:
    """The session transport of one long-poll GET on a kept connection: a
    wake-up marks the connection, whose ``flush`` answers the poll."""

    persistent = False
    __slots__ = ("conn", "session", "render")

    def __init__(self, conn: HubHTTP, session: Session,
                 render: Callable[[str], transports.Response]) -> None:
        self.conn = conn
        self.session = session
        self.render = render

    def wake(self) -> None:
        self.conn.hub.mark(self.conn)


class HubHTTP(HubConnection):
    """A keep-alive HTTP connection owned by the hub.

    :param hub: the hub that owns it.
    :param sock: the adopted socket (non-blocking).
    :param template: the server-level WSGI keys of the request that came
                     through the WSGI server (``SERVER_NAME``, ``SCRIPT_NAME``,
                     ``REMOTE_ADDR``...), reused for the requests read here.
    :param buffered: bytes the WSGI server had already read past that request.
    :param app: the whole WSGI app, for requests the hub does not serve itself.
    """

    def __init__(self, hub: Hub, sock: socket.socket, template: dict[str, Any],
                 buffered: bytes, app: Callable[..., Any]) -> None:
        super().__init__(hub, sock, None)
        self.template = template
        self.app = app
        self.buf = bytearray(buffered)
        self.state = IDLE
        self.head: RequestHead | None = None
        #: the header blocks this client sent lately, parsed (its next
        #: requests repeat them), and what they say (``HeaderFacts``)
        self.memo = HeadMemo()
        self.facts: HeaderFacts | None = None
        self.route: protocol.Route | None = None
        self.poll: KeptPoll | None = None
        self.keep_alive = True
        self.discard_left = 0
        #: when the first byte of the head being read arrived
        self.head_since: float | None = None
        #: when the body being read (or dropped) must have arrived
        self.body_deadline = math.inf
        #: the answer to an upload that waits for its session's handlers
        self._held_answer: transports.Response | None = None
        self.deadline = math.inf
        self._timer_at: float | None = None
        options = self.server.options
        self.limit = options.max_http_buffer_size
        #: bytes held unread at most: a whole head and body, and some ahead
        self.buffer_limit = MAX_HEAD_BYTES + self.limit + PIPELINE_LIMIT
        self.resource = options.resource

    # -- entry (hub thread) -------------------------------------------------

    def start(self, first: Callable[[HubHTTP], None]) -> None:
        """Register the socket, then finish the request the WSGI server
        read (``first`` answers it or waits for its packets)."""
        self.hub.register(self, READ)
        try:
            first(self)
        except Exception:
            logger.exception("kept connection: finishing its first request failed; closed")
            self.lost()
            return
        self._advance_guarded()

    def begin_poll(self, poll: transports.LongPoll, environ: dict[str, Any], cors: bool,
                   keep_alive: bool = True) -> None:
        """Hold a long-poll GET until its session has packets, ends, or
        ``polling_duration`` passes; then answer it and keep the connection."""
        self.keep_alive = self.keep_alive and keep_alive
        kept = {"HTTP_ORIGIN": environ["HTTP_ORIGIN"]} if environ.get("HTTP_ORIGIN") else {}

        def render(payload: str) -> transports.Response:
            return transports.complete_response(kept, poll.render(payload), cors)

        current = KeptPoll(self, poll.session, render)
        self.poll = current
        self.state = POLL
        self._arm(self.hub.clock() + self.server.options.polling_duration)
        try:
            self.server.attach(poll.session, current)  # type: ignore[arg-type]
        except IllegalTransition:  # the session closed since it was looked up
            self._answer_poll(transports.NOT_HANDSHAKEN)
            return
        self._poll_answered()  # the caller goes on reading requests

    def respond(self, response: transports.Response) -> None:
        """Write a completed response; keep the connection unless it must close."""
        status, headers, body = response
        close = not self.keep_alive or status.startswith("413")
        head = "".join([f"{name}: {value}\r\n" for name, value in headers])
        ending = "Connection: close\r\n\r\n" if close else "\r\n"
        self.write(f"HTTP/1.1 {status}\r\n{date_line()}{head}{ending}".encode("latin-1") + body)
        if close:
            self.state = CLOSING
            self.close_after_flush()
        else:
            self.state = IDLE

    def respond_when_handled(self, session: Session, response: transports.Response) -> None:
        """Answer an upload once the session's handlers have caught up with
        what it received (``Server.upload_received``); the connection reads
        no further request meanwhile."""
        self.state = HELD
        self._held_answer = response
        self.reading = False  # what the client sends meanwhile waits in the kernel
        self._send()
        # as a request thread waits in thread mode: handlers stuck for good
        # must not hold the connection for ever
        self._arm(self.hub.clock() + self.server.options.close_timeout)
        hub = self.hub
        self.server.when_handled(session, lambda: hub.call(lambda: self._release_held(response)))

    def _release_held(self, response: transports.Response | None = None) -> None:
        """Send the held answer: ``response`` when the handlers caught up
        (not if it was sent already, on time, and another waits now), or
        whichever waits (None: the deadline passed)."""
        held = self._held_answer
        if held is None or (response is not None and held is not response):
            return
        self._held_answer = None
        if not self.closed and self.state is HELD:
            self.deadline = math.inf
            self.reading = True
            self.respond(held)
            self._advance()

    def write(self, data: bytes) -> None:
        """Queue ``data`` and send what the socket takes now. What it does not
        take must be taken within ``close_timeout``, or the connection is
        dropped: the next request waits until it is, and a client that reads
        nothing would otherwise hold the socket and those bytes for ever."""
        super().write(data)
        if self.out and self.state is not CLOSING and not self.closed:
            self._arm(self.hub.clock() + self.server.options.close_timeout)

    # -- the hub's calls ------------------------------------------------------

    def on_readable(self) -> None:
        data = self.read()
        if data is None:
            return
        if self.state is CLOSING:
            return  # the rest of a refused request: dropped
        self.buf += data
        if len(self.buf) > (PIPELINE_LIMIT if self.state is POLL else self.buffer_limit):
            # sent ahead of a long poll, or of answers the client does not read
            logger.info("kept connection: too much sent ahead; closed")
            self.lost()
            return
        self._advance_guarded()

    def on_writable(self) -> None:
        pending = len(self.out)
        super().on_writable()
        if self.closed:
            return
        if not self.out:
            self._advance_guarded()
        elif len(self.out) < pending and self.state is not CLOSING:
            # a slow reader that takes its answer bit by bit gets more time
            self._arm(self.hub.clock() + self.server.options.close_timeout)

    def _advance_guarded(self) -> None:
        # the hub calls on_readable and on_writable outside its own guard: a
        # failure here must cost this connection only, not the hub's pass
        try:
            self._advance()
        except Exception:
            logger.exception("kept connection: serving a request failed; closed")
            self.lost()

    def flush(self) -> None:
        if self._poll_answered():
            self._advance()

    def _poll_answered(self) -> bool:
        """Answer the waiting poll if its time has come; True if it was answered."""
        poll = self.poll
        if self.state is POLL and poll is not None:
            session = poll.session
            if session.has_outbox() or session.closed or session.transport is not poll:
                if self.peer_closed():  # hung up: its packets wait for the next poll
                    self.lost()
                    return False
                self._answer_poll(None)
                return True
        return False

    def on_timer(self, now: float) -> None:
        if self._timer_at is not None and now >= self._timer_at:
            self._timer_at = None
        if self.deadline == math.inf:
            return  # nothing is timed now (a worker thread has the socket)
        if now < self.deadline:
            self._arm(self.deadline)
            return
        self.deadline = math.inf
        if self.out and self.state is not CLOSING:
            logger.info("kept connection: the client took none of its answer for %s s; closed",
                        self.server.options.close_timeout)
            self.lost()
        elif self.state is POLL:
            self._answer_poll(None)
            self._advance()
        elif self.state is HELD and self._held_answer is not None:
            logger.info("kept connection: its session's handlers still lag behind its "
                        "uploads after %s s; answered anyway", self.server.options.close_timeout)
            self._release_held()
        elif self.state in (IDLE, BODY, DISCARD):
            # idle past keep-alive, or a request that stopped arriving
            if self.buf or self.state is not IDLE:
                logger.info("kept connection: a request %s not complete after %s s; closed",
                            "head" if self.state is IDLE else "body", KEEP_ALIVE_SECONDS)
            self.state = CLOSING
            self.close_after_flush()

    def lost(self) -> None:
        """The client hung up: a waiting poll's packets stay queued for its next."""
        poll, self.poll = self.poll, None
        if poll is not None:
            self.server.detach(poll.session, poll)  # type: ignore[arg-type]
        self.close()

    # -- reading requests -----------------------------------------------------

    def _arm(self, deadline: float) -> None:
        self.deadline = deadline
        if self._timer_at is None or self._timer_at > deadline:
            self._timer_at = deadline
            self.hub.add_timer(deadline, self)

    def _advance(self) -> None:
        """Serve what the buffer holds, one request at a time, each once the
        previous answer is sent (a client that stops reading stops here)."""
        while not self.closed and not self.out:
            state = self.state
            if state is IDLE:
                if not self._read_head():
                    return
            elif state is BODY:
                head = self.head
                assert head is not None
                if len(self.buf) < head.content_length:
                    self._arm(self.body_deadline)
                    return
                if self.route is None:  # the whole app's request, its body read
                    self._elsewhere(head)  # (the body goes with the bytes read ahead)
                    return
                body = bytes(self.buf[:head.content_length])
                del self.buf[:head.content_length]
                self._serve(head, body)
            elif state is DISCARD:
                taken = min(len(self.buf), self.discard_left)
                del self.buf[:taken]
                self.discard_left -= taken
                if self.discard_left:
                    self._arm(self.body_deadline)
                    return
                assert self.head is not None
                self._serve(self.head, b"")
            else:
                return

    def _read_head(self) -> bool:
        """Parse and start the next request; False when more bytes are needed."""
        now = self.hub.clock()
        if not self.buf:
            self.head_since = None
            self._arm(now + KEEP_ALIVE_SECONDS)
            return False
        if self.server.going_away:
            # this process stops serving: a connection closed before any byte
            # of the answer makes the browser send its request again, on a new
            # connection, which a process that serves accepts
            self.close()
            return False
        if self.head_since is None:
            self.head_since = now
        try:
            limits = self.template.get(hub_wsgi.LIMITS)
            head = parse_head(self.buf, memo=self.memo) if limits is None else parse_head(
                self.buf, max_line=limits[0], max_field=limits[1], max_headers=limits[2],
                memo=self.memo)
            if head is not None:
                self.facts = self._facts(head)
        except HTTPError as exc:
            log_refused("kept connection request", "kept connection: request refused (%s): %s",
                        exc.status, exc)
            self.keep_alive = False
            self.respond(transports.complete_response({}, (exc.status, [
                ("Content-Type", transports.TEXT)], b""), False))
            return False
        if head is None:
            # from the head's first byte, not from its latest: a head sent a
            # byte now and then would otherwise hold the connection forever
            self._arm(self.head_since + KEEP_ALIVE_SECONDS)
            return False
        self.head_since = None
        del self.buf[:head.size]
        self.head = head
        self.keep_alive = head.keep_alive
        if head.chunked:
            log_refused("kept connection request",
                        "kept connection: a chunked request body refused (411)")
            self.keep_alive = False
            self.respond(("411 Length Required", [("Content-Type", transports.TEXT),
                                                  ("Content-Length", "0")], b""))
            return False
        if head.get("upgrade") is not None:
            upgrade = self._websocket_route(head)
            if upgrade is not None:
                self._upgrade(head, upgrade)
                return False
        route = self._served_route(head)
        self.route = route
        if route is None:
            length = head.content_length
            if 0 < length <= self.limit and len(self.buf) < length:
                # the hub reads the body before a thread of the pool runs the
                # app, so that a client sending it slowly holds no thread (the
                # keep-alive timer limits how slowly); a larger body is for the
                # app to read. A client that awaits 100 Continue gets it now,
                # as gunicorn sends it, before the app has seen the request.
                if head.expect_continue:
                    self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                self._await_body(BODY, now, length)
                return True
            self._elsewhere(head)
            return False
        length = head.content_length
        if length > self.limit:
            if length <= 2 * self.limit and not head.expect_continue:
                # read and drop it, so the client reads our 413, not a reset
                self.discard_left = length
                self._await_body(DISCARD, now, length)
            else:
                # the body is left unread: the connection ends after this
                # answer, or its bytes would be parsed as the next request
                self.keep_alive = False
                self._serve(head, b"")
        elif length:
            if head.expect_continue:
                self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self._await_body(BODY, now, length)
        else:
            self._serve(head, b"")
        return True

    def _facts(self, head: RequestHead) -> HeaderFacts:
        """What ``head``'s header lines say: worked out once per block the
        memo knows, and checked (``hub_wsgi.check_forwarding``) as gunicorn
        checks each request."""
        block = head.block
        facts: HeaderFacts | None = block.derived if block is not None else None
        if facts is None:
            facts = HeaderFacts(hub_wsgi.check_forwarding_headers(self.template, head), head)
            if block is not None:
                block.derived = facts
        hub_wsgi.check_script_name(facts.script_name, head.path)
        return facts

    def _await_body(self, state: str, now: float, length: int) -> None:
        """Read (or drop) a body of ``length`` bytes next, by a deadline that
        counts from now, not from its latest byte."""
        self.state = state
        self.body_deadline = now + KEEP_ALIVE_SECONDS + length / MIN_BODY_RATE

    def _route(self, head: RequestHead) -> protocol.Route | None:
        """The route under ``/<resource>/1/`` that the app's middleware would
        find for this request: the same ``PATH_INFO`` (percent-decoded, as
        the WSGI server gives it), parsed the same way. Were they to differ,
        a long poll or a stream could reach the app on one of ``hub_wsgi``'s
        few threads and hold it."""
        assert self.facts is not None
        script_name = self.facts.script_name
        if len(head.path) > ROUTE_PATH_REMEMBERED:  # (routed, not remembered)
            return _route_of.__wrapped__(head.path, script_name, self.resource)
        return _route_of(head.path, script_name, self.resource)

    def _served_route(self, head: RequestHead) -> protocol.Route | None:
        """The route of a polling request the hub serves itself, or None for
        one that goes to the whole app. (A WebSocket upgrade of ours was
        taken before; any other ``Upgrade`` header is ignored here, as the
        transports ignore it.)"""
        if head.method not in ("GET", "POST", "OPTIONS"):
            return None
        route = self._route(head)
        if route is None or route.transport not in SERVED_TRANSPORTS:
            return None
        # a session this process does not hold (or has not claimed) is looked
        # up in Redis: on a thread of the whole app's pool, not on the hub's
        return route if self.server.knows_locally(route.sid or "") else None

    def _websocket_route(self, head: RequestHead) -> protocol.Route | None:
        """The route of a WebSocket upgrade of ours, or None."""
        upgrade = head.get("upgrade")
        if head.method != "GET" or upgrade is None or not wsframe.names_websocket(upgrade):
            return None
        route = self._route(head)
        if route is None or route.transport not in transports.WEBSOCKET_TRANSPORTS \
                or route.transport not in self.server.options.transports:
            return None
        return route

    def _upgrade(self, head: RequestHead, route: protocol.Route) -> None:
        """A WebSocket upgrade on a kept connection (a client that reuses its
        polling connection to upgrade): checked as on the WSGI path, then the
        socket becomes a ``HubWebSocket``."""
        from .hub_websocket import HubWebSocket

        self.keep_alive = False  # whatever the answer, this connection ends as HTTP
        environ = hub_wsgi.build_environ(self.template, head, None)
        if head.content_length:
            self.respond(transports.complete_response({}, ("400 Bad Request", [
                ("Content-Type", transports.TEXT)], b"a body on an upgrade request"), False))
            return
        if not transports.origin_ok(self.server, environ, use_referer=False):
            self.respond(transports.complete_response({}, ("403 Forbidden", [
                ("Content-Type", transports.TEXT)], b"bad origin"), False))
            return
        try:
            answer = wsframe.handshake_response(environ)
        except wsframe.HandshakeError as exc:
            log_refused("websocket upgrade", "websocket upgrade refused: %s", exc)
            self.respond(transports.complete_response({}, (
                exc.status, list(exc.headers), str(exc).encode("utf-8")), False))
            return
        # what the client sent behind the request (its first frames, sent
        # before the 101 came) is the WebSocket's, as if it came after
        early = bytes(self.buf)
        self._let_go()
        server, hub, sock, limit, sid = self.server, self.hub, self.sock, self.limit, route.sid or ""

        def find_session() -> Session | None:
            return server.get_session(sid, draining=True,
                                      adopt=lambda: transports.keep_environ(environ))

        def open_websocket(session: Session | None) -> None:
            HubWebSocket(hub, sock, session, limit).start(answer, early)

        def look_up_then_open() -> None:  # (a pool thread)
            session = find_session()
            hub.call(lambda: open_websocket(session))

        if server.knows_locally(sid):
            open_websocket(find_session())
        else:  # Redis decides, maybe slowly: not on the hub thread
            hub_wsgi.run_blocking(look_up_then_open)

    def _serve(self, head: RequestHead, body: bytes) -> None:
        """Answer a polling request with the WSGI path's own rules."""
        route, facts = self.route, self.facts
        assert route is not None and facts is not None
        environ: dict[str, Any] = {
            "REQUEST_METHOD": head.method,
            "QUERY_STRING": head.query,
            "CONTENT_LENGTH": head.get("content-length") or "",
            "wsgi.input": io.BytesIO(body),
            **facts.origin_environ,
        }
        # a session adopted here (message_queue) keeps the whole request
        full_environ = (lambda: transports.keep_environ(
            hub_wsgi.build_environ(self.template, head, None))) \
            if self.server.cluster is not None else None
        cors = self._origin_ok(facts, environ)
        result = transports.route_request(self.server, route, head.method, environ, full_environ,
                                          origin_allowed=cors)
        if isinstance(result, transports.LongPoll):
            self.begin_poll(result, environ, cors, head.keep_alive)
        elif isinstance(result, transports.HeldAnswer):
            self.respond_when_handled(
                result.session, transports.complete_response(environ, result.response, cors))
        elif isinstance(result, transports.Stream):
            transports.add_cors(environ, result.headers, cors)
            self._become_stream(result)
        else:
            self.respond(transports.complete_response(environ, result, cors))

    def _origin_ok(self, facts: HeaderFacts, environ: dict[str, Any]) -> bool:
        """``transports.origin_ok`` for a request with these header facts:
        asked once per block and ``cors_allowed_origins`` setting (the
        answer depends on nothing else)."""
        allowed = self.server.options.cors_allowed_origins
        # (a collection as what it holds now: one changed in place since
        # the last request must be asked again)
        setting = allowed if allowed is None or isinstance(allowed, str) else tuple(allowed)
        if facts.origin_answer is None or facts.origin_answer[0] != setting:
            facts.origin_answer = (setting, transports.origin_ok(self.server, environ))
        return facts.origin_answer[1]

    def _become_stream(self, stream: transports.Stream) -> None:
        """An htmlfile GET: the socket becomes a ``HubStream``, as on the WSGI
        path, rather than holding a thread of ``hub_wsgi`` for the stream's
        life. The stream ends the connection; bytes sent after the GET are
        ignored."""
        from .hub import HubStream

        self.keep_alive = False
        self._let_go()
        HubStream(self.hub, self.sock, stream.session, stream.encode).start(
            transports.stream_head(stream))

    def _let_go(self) -> None:
        """The socket becomes another connection's (a WebSocket's, a
        stream's): stop watching it as this one, without closing it."""
        self.hub.unregister(self)
        with self.lock:
            self.closed = True

    def _answer_poll(self, payload: str | None) -> None:
        poll, self.poll = self.poll, None
        assert poll is not None
        self.deadline = math.inf
        if payload is None:
            payload = self.server.answer_poll(poll.session, poll)  # type: ignore[arg-type]
        self.respond(poll.render(payload))

    # -- requests the whole app serves ------------------------------------------

    def _elsewhere(self, head: RequestHead) -> None:
        """Let a worker thread run the app for this request, on the socket in
        blocking mode; the hub watches the socket again once it is done."""
        self.state = ELSEWHERE
        self.deadline = math.inf
        self.hub.unregister(self)
        buffered, self.buf = bytes(self.buf), bytearray()
        hub = self.hub

        def done(keep_alive: bool, leftover: bytes) -> None:
            hub.call(lambda: self._back(keep_alive, leftover))

        large_body = head.content_length > len(buffered)  # (only over the limit)
        if not hub_wsgi.serve(self.app, self.sock, self.template, head, buffered, done,
                              large_body):
            logger.warning("kept connection: %d requests with large bodies are being "
                           "read already; %s %s answered 503", hub_wsgi.large_body_threads(),
                           head.method, head.path)
            self.hub.register(self, READ)
            self.state, self.keep_alive = IDLE, False
            self.respond(("503 Service Unavailable", [
                ("Content-Type", transports.TEXT), ("Content-Length", "0"),
                ("Retry-After", "1")], b""))

    def _back(self, keep_alive: bool, leftover: bytes) -> None:
        """The worker thread is done with the socket (hub thread)."""
        if self.closed:
            return
        self.hub.register(self, READ)
        if not keep_alive:
            self.state = CLOSING
            self.close_after_flush()
            return
        self.state = IDLE
        self.buf[:0] = leftover
        self._advance()


@functools.lru_cache(maxsize=ROUTES_REMEMBERED)
def _route_of(path: str, script_name: str, resource: str) -> protocol.Route | None:
    """``HubHTTP._route``'s answer for a path as sent, remembered: every poll
    of a client asks for the same one, often on another kept connection
    (a client's connection pool serves all its requests)."""
    route = protocol.parse_path(hub_wsgi.path_info(path, script_name), resource)
    return route if route is not None and route.protocol == "1" else None


#: the headers the origin check reads, and their WSGI keys
ORIGIN_CHECK_HEADERS = tuple((name, "HTTP_" + name.upper().replace("-", "_")) for name in (
    "origin", "referer", "host", "sec-fetch-site", "cookie", "authorization"))


class HeaderFacts:
    """What a kept connection works out from a request's header lines alone.
    Kept with the memo's ``KnownBlock``, so that the client's next requests,
    which repeat those lines, reuse it."""

    __slots__ = ("script_name", "origin_environ", "origin_answer")

    def __init__(self, script_name: str, head: RequestHead) -> None:
        #: the request's ``SCRIPT_NAME`` (``hub_wsgi.script_name_of``)
        self.script_name = script_name
        #: the WSGI keys of the headers the origin check reads
        self.origin_environ = {key: value for name, key in ORIGIN_CHECK_HEADERS
                               if (value := head.get(name)) is not None}
        #: the ``cors_allowed_origins`` setting (a collection as a tuple of
        #: what it held) and the origin check's answer under it, once asked
        self.origin_answer: tuple[Any, bool] | None = None


# -- adopting a connection from the WSGI server ---------------------------------

#: server-level WSGI keys a kept connection reuses for the requests it reads
TEMPLATE_KEYS = ("SERVER_NAME", "SERVER_PORT", "SCRIPT_NAME", "REMOTE_ADDR", "REMOTE_PORT",
                 "SERVER_SOFTWARE", "wsgi.version", "wsgi.url_scheme", "wsgi.errors",
                 "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once",
                 "PROXY_PROTOCOL", "PROXY_ADDR", "PROXY_PORT")


def can_keep(server: Server, environ: dict[str, Any]) -> bool:
    """Whether the hub may adopt this request's connection and keep it alive:
    the client allows it (HTTP/1.1, no ``Connection: close``), no body is
    left unread (a GET's), the WSGI server lets us see what it read ahead,
    and there is a whole app to run the requests the hub does not serve
    itself. Not for an app in debug mode:
    Werkzeug's debugger wraps it from outside, and would miss the requests of
    a kept connection (their errors would get a bare 500)."""
    if environ.get("SERVER_PROTOCOL") != "HTTP/1.1" or environ.get("sio09.kept"):
        return False
    if "close" in environ.get("HTTP_CONNECTION", "").lower():
        return False
    if environ.get("REQUEST_METHOD") != "POST" and (
            environ.get("CONTENT_LENGTH", "") not in ("", "0")
            or environ.get("HTTP_TRANSFER_ENCODING")):
        # a body nothing reads (only an upload's is read): the hub would
        # parse it as the connection's next request
        return False
    app = getattr(server.app, "app", None)
    return read_ahead(environ) is not None and callable(app) and \
        not getattr(app, "debug", False) and _served_as_the_whole_site(app) is not None


#: the modules whose code calls the WSGI application itself, in the servers
#: whose connections the hub can keep (``read_ahead``)
_WSGI_SERVER_MODULES = ("gunicorn.workers.", "werkzeug.serving")


def _served_as_the_whole_site(app: Any) -> Any:
    """Whether the WSGI server calls the Flask ``app`` itself, with nothing
    around it. The hub runs a kept connection's other requests on ``app``: an
    app mounted beside others (``DispatcherMiddleware``) would get their
    requests, and middleware around it would be skipped. So the hub keeps a
    connection only when ``app`` is the whole site: when the call that the
    server's own code made, found on this thread's stack, is a call on
    ``app`` (its ``__call__``, or what replaced it: a subclass's, or a
    tracer's patch of ``Flask.__call__``).

    :return: None when it is not; else the server's object that made the
             call (a gunicorn worker, whose ``cfg`` says which proxy headers
             it honours).
    """
    frame = sys._getframe(1)
    while frame is not None:
        caller = frame.f_back
        if caller is not None and \
                caller.f_globals.get("__name__", "").startswith(_WSGI_SERVER_MODULES):
            called = frame.f_locals
            if called.get("self") is app or called.get("instance") is app:
                return caller.f_locals.get("self", caller)
            return None
        frame = caller
    return None


def keep_in_hub(server: Server, environ: dict[str, Any], first: Callable[[HubHTTP], None]
                ) -> None:
    """Adopt the request's connection for the hub; ``first`` finishes the
    request on the hub thread (answers it, or waits for its packets). The
    caller then ends its WSGI call without a response."""
    hub = transports.get_hub(server)
    take_read_ahead = read_ahead(environ)
    assert take_read_ahead is not None
    template = {key: environ[key] for key in TEMPLATE_KEYS if key in environ}
    server_object = _served_as_the_whole_site(server.app.app)  # type: ignore[attr-defined]
    cfg = getattr(server_object, "cfg", None)
    threads = getattr(cfg, "threads", None)
    if isinstance(threads, int):
        hub_wsgi.size_pool(threads)
    template[hub_wsgi.LIMITS] = hub_wsgi.head_limits(cfg)
    sock = take_over_socket(environ)  # (with TCP_NODELAY: each answer is one write)
    try:
        peer = sock.getpeername()
    except OSError:
        peer = ()
    template[hub_wsgi.FORWARDING] = hub_wsgi.forwarding_policy(
        cfg, peer[0] if isinstance(peer, tuple) and peer else "")
    # server.app is the extension's bridge; its .app is the Flask app (checked in can_keep)
    conn = HubHTTP(hub, sock, template, take_read_ahead(), server.app.app)  # type: ignore[attr-defined]
    hub.call(lambda: conn.start(first))
