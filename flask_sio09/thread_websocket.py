"""Thread mode's WebSocket: simple-websocket carries the session, a thread per connection.

``transports.serve_websocket`` answers the upgrade with simple-websocket, giving
it this module's ``reader_thread`` and ``ReaderSignal``; ``serve`` then runs the
connection until either side closes. The messages run on simple-websocket's
reader thread; the request thread writes what other threads could not and
ends the session's use of the connection (see ``ThreadWebSocket``).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from wsproto.connection import ConnectionState

from . import wsframe
from .droplog import log_about, log_dropped
from .server import UNRESPONSIVE, Server
from .session import IllegalTransition, Session
from .stopping import GOING_AWAY, GOING_AWAY_CODE
from .takeover import read_ahead, reset_on_close, take_over_socket
from .transports import NOT_HANDSHAKEN, StartResponse

logger = logging.getLogger("flask_sio09")

#: how long the request thread waits for the client's closing answer
CLOSE_HANDSHAKE_SECONDS = 2.0
#: how long simple-websocket's reader waits for the session to be attached
#: before it drops what it read (the request thread attaches at once)
ATTACH_WAIT_SECONDS = 10.0


class ReaderSignal:
    """simple-websocket's ``event`` for one connection (its ``event_class``).

    simple-websocket's reader thread calls ``set()`` each time it has put a
    message in ``input_buffer``, and when the connection ends. Once a
    transport is attached, ``set()`` runs the waiting messages right there, on
    the reader thread: waking another thread for each message, then trading
    the GIL with it, is most of what a message costs in thread mode. Until
    the request thread has attached the session (``ready``), the reader waits
    in ``set()``: a message must not run before the session is open, nor be
    left behind while the reader answers the close frame that followed it.
    """

    def __init__(self) -> None:
        self.transport: ThreadWebSocket | None = None
        #: set once the reader thread has returned (see reader_thread)
        self.reader_done = False
        self._flag = threading.Event()
        self._ready = threading.Event()

    def ready(self, transport: ThreadWebSocket | None) -> None:
        """The session is attached to ``transport`` (None: to nothing, ever):
        from now on the reader runs the messages. Only the first call counts."""
        if not self._ready.is_set():
            self.transport = transport
            self._ready.set()

    def set(self) -> None:
        if not self._ready.is_set():
            self._ready.wait(ATTACH_WAIT_SECONDS)
        transport = self.transport
        if transport is None:
            self._flag.set()
        else:
            transport.on_reader_signal()

    def ended(self) -> None:
        """The reader thread is done: the connection will carry nothing more."""
        self.reader_done = True
        transport = self.transport
        if transport is not None:
            transport.wakeup.set()
        self._flag.set()

    def clear(self) -> None:
        self._flag.clear()

    def is_set(self) -> bool:
        return self._flag.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._flag.wait(timeout)


def reader_thread(target: Callable[[], None]) -> threading.Thread:
    """simple-websocket's ``thread_class``: its reader loop, then
    ``ReaderSignal.ended``, whichever way the loop ends (simple-websocket does
    not signal every end, a message over the size limit for one)."""
    signal = target.__self__.event  # type: ignore[attr-defined]

    def run() -> None:
        try:
            target()
        finally:
            signal.ended()

    # (a daemon: a reader blocked on a client that neither answers nor hangs
    # up must not keep the process from exiting)
    return threading.Thread(target=run, daemon=True)


def upgrade_environ(environ: dict[str, Any]) -> dict[str, Any]:
    """The environ simple-websocket upgrades with.

    Its wsproto takes ``Upgrade: websocket`` only alone (a list naming it is
    as valid), and it would agree to permessage-deflate, which the hub does
    not: the copy says ``websocket`` and offers no extension, so that both
    modes answer alike. Bytes the WSGI server read past the head (frames a
    client sent before the 101 came) reach simple-websocket's reader first
    (``EarlySocket``), as the hub reads them.
    """
    copy = dict(environ)
    copy["HTTP_UPGRADE"] = "websocket"
    copy.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
    take = read_ahead(environ)
    early = take() if take is not None else b""
    if early:
        for key in ("werkzeug.socket", "gunicorn.socket"):
            if isinstance(copy.get(key), socket.socket):
                copy[key] = EarlySocket(copy[key], early)
    return copy


class EarlySocket:
    """A socket whose first reads return bytes read from it already."""

    def __init__(self, sock: socket.socket, early: bytes) -> None:
        self.wrapped = sock
        self._early = early

    def recv(self, size: int, *flags: int) -> bytes:
        early = self._early
        if not early:
            return self.wrapped.recv(size, *flags)
        self._early = early[size:]
        return early[:size]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


class SerialSocket:
    """simple-websocket's socket once a transport serves it: its reader's
    ``recv`` and everything else are the real socket's, but what it sends
    goes through ``ThreadWebSocket.send_for_reader``."""

    def __init__(self, sock: socket.socket, transport: ThreadWebSocket,
                 recv: Callable[..., bytes]) -> None:
        self._sock = sock
        self.recv = recv  # (an attribute: the reader calls it for every read)
        self.send = transport.send_for_reader

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class ThreadWebSocket:
    """simple-websocket carries the session, a thread per connection.

    Two threads serve the connection. simple-websocket's reader thread runs
    the handlers of what the client sends, in order, one at a time
    (``on_reader_signal``). Whichever thread queues a packet (a handler, the
    monitor's heartbeat, an emit from elsewhere) writes it at once without
    blocking (``write_or_wake``). The request thread (``_pump``) waits for the
    rest: what a non-blocking write could not send, and the end of the
    connection. A handler that waits on a database therefore holds back
    nothing but its own answer: heartbeats still go out (a 0.9 client gives
    up after ``heartbeat_timeout`` without one), and so does what it emitted
    before it waited. simple-websocket's own writes (pongs, its closing
    frame) take the same lock, through ``SerialSocket``.

    Packets are framed by ``wsframe`` (one text frame each, as the 0.9
    protocol wants) rather than by ``ws.send`` (wsproto), which costs more per
    frame; uncompressed frames are valid under a negotiated permessage-deflate
    too (RFC 7692 §6: compression is per message, marked by RSV1).
    """

    persistent = True

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        #: the connection itself; simple-websocket's own writes go through
        #: ``SerialSocket`` (see send_for_reader)
        sock = ws.sock
        self.sock: socket.socket = sock.wrapped if isinstance(sock, EarlySocket) else sock
        ws.sock = SerialSocket(self.sock, self, sock.recv)
        #: set once the request is over and the socket is the WSGI server's again
        self.done = False
        #: set by the request thread when it lets go (or by the reader when the
        #: client broke a rule): no message runs after it
        self.ending = False
        #: the close code to end with, when not the normal 1000
        self.close_code: int | None = None
        self.server: Server | None = None
        self.session: Session | None = None
        #: messages waiting unread at the monitor's last look (heard_from_client)
        self.unread_seen = 0
        #: wakes the request thread: there is something to write, or to end
        self.wakeup = threading.Event()
        # Held while the reader runs messages: the request thread takes it to
        # let go (``ending``) only between two of them.
        self._receive_lock = threading.Lock()
        # Guards taking the outbox and writing it, so that packets leave in
        # the order they were queued whichever thread writes them. ``unsent``
        # is the tail of a non-blocking write the socket did not take; it goes
        # out before anything else.
        self._send_lock = threading.Lock()
        self._unsent = b""
        #: set (under the send lock) once simple-websocket is about to send its
        #: closing frame: nothing may follow it
        self._write_closed = False
        # a TLS socket cannot be written without blocking from another thread
        self._can_write_aside = type(self.sock) is socket.socket

    def wake(self) -> None:
        # Written at once, whichever thread queued it (a handler too: what it
        # emits before it blocks must not wait for it to return).
        self.write_or_wake()

    def write_or_wake(self) -> None:
        """Write what is queued without blocking; wake the request thread for
        what the socket did not take, and when the connection must end."""
        session = self.session
        if self._can_write_aside and session is not None and not session.closed \
                and session.transport is self and self._send_lock.acquire(False):
            try:
                if self._write_aside():
                    return
            finally:
                self._send_lock.release()
        self.wakeup.set()

    def _write_aside(self) -> bool:
        """Send what the socket takes now, never blocking (the caller holds
        the send lock); True when nothing is left. What it does not take waits
        in ``_unsent`` for the request thread; while some does, the outbox is
        left alone, so that its byte limit still bounds what a client that
        stops reading costs."""
        session = self.session
        if session is None or self.done or self._write_closed or \
                self.sock.gettimeout() is not None:
            return False  # (with a timeout, Python would wait for room despite MSG_DONTWAIT)
        for _ in range(2):  # the tail left last time, then the outbox
            data = self._unsent
            if not data:
                packets = session.take_outbox(self)
                if not packets:
                    return True
                data = wsframe.encode_texts(packets)
            try:
                sent = self.sock.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the connection is gone; the request thread ends the session
            self._unsent = data[sent:]
            if self._unsent:
                return False
        return True

    def on_reader_signal(self) -> None:
        """simple-websocket's reader thread read a message, or the connection
        ended: run what waits, on that thread (what the handlers queue is
        written as it is queued, see ``wake``)."""
        try:
            self.receive_waiting()
            ws = self.ws
            state = ws.ws.state
            if not ws.connected or state is not ConnectionState.OPEN:
                # simple-websocket answers the close (or gives up on a broken
                # frame, or on a message over its size limit) and closes the
                # socket when this returns: the handlers of the messages
                # before it finish (one may still be queued behind the connect
                # handler on the pool), and what they queued goes out first
                if state is ConnectionState.LOCAL_CLOSING and not self._write_closed:
                    # wsproto closes first: the client broke a rule (a client
                    # that closes first leaves REMOTE_CLOSING, then CLOSED)
                    code, reason = (ws.close_reason, ws.close_message) if not ws.connected \
                        else (wsframe.MESSAGE_TOO_BIG, "message over the size limit")
                    log_about(self.session, "websocket protocol error",
                              "websocket of %s: protocol error %s (%s)",
                              self.session.sid if self.session else "-", int(code), reason)
                self._wait_for_handlers()
                self.flush()
                self.close_writes()
                self.wakeup.set()
        except Exception:  # simple-websocket's reader must go on reading
            logger.exception("websocket of %s: receiving failed",
                             self.session.sid if self.session else "-")
            self.wakeup.set()

    def _wait_for_handlers(self) -> None:
        """Wait (at most ``close_timeout``) until the session's handlers
        queued so far have run."""
        session, server = self.session, self.server
        if session is None or server is None:
            return
        done = threading.Event()
        server.workers.submit(session, done.set, inline=True)
        done.wait(server.options.close_timeout)

    def receive_waiting(self) -> None:
        """Run the messages simple-websocket has read, in order."""
        ws, session, server = self.ws, self.session, self.server
        if session is None or server is None:
            return
        with self._receive_lock:
            while ws.input_buffer and not self.ending:
                message = ws.input_buffer.pop(0)
                if isinstance(message, bytes):
                    # the 0.9 protocol is text; the hub drops binary messages too
                    log_dropped(session, "session %s: binary websocket message dropped", session.sid)
                    continue
                limit = server.options.max_http_buffer_size
                # simple-websocket's own limit counts characters, which up to
                # four times as many UTF-8 bytes can take: the limit is bytes
                if len(message) > limit >> 2 and len(message.encode("utf-8")) > limit:
                    self._refuse_too_big(session, limit)
                    break
                server.receive(session, message, inline=True)
            self.unread_seen = 0  # (see heard_from_client)

    def _refuse_too_big(self, session: Session, limit: int) -> None:
        """A message over ``limit`` bytes: as the hub does, nothing more the
        client sent runs, and the connection ends with close code 1009 (the
        request thread writes it, after what the handlers queued)."""
        log_dropped(session, "websocket of %s: protocol error 1009 (message over %d bytes)",
                    session.sid, limit)
        self.ending = True
        self.close_code = wsframe.MESSAGE_TOO_BIG
        self.ws.input_buffer.clear()
        self.wakeup.set()

    def send_for_reader(self, data: bytes) -> int:
        """What simple-websocket writes itself (a pong, its closing frame):
        under the send lock and after the tail of a frame of ours, never
        inside one (nor, on TLS, at the same time as another thread's write)."""
        with self._send_lock:
            data, self._unsent = self._unsent + data, b""
            self.sock.sendall(data)
        return len(data)

    def close_writes(self) -> None:
        """A closing frame is about to be sent: write nothing more."""
        with self._send_lock:
            self._write_closed = True

    def flush(self, packets: list[str] | None = None) -> bool:
        """Write (blocking) what a non-blocking write left, then ``packets`` or
        else the session's outbox. False when the connection is gone, or
        closing (simple-websocket has its closing frame to send)."""
        with self._send_lock:
            if self._write_closed:
                return False
            data = self._unsent
            self._unsent = b""
            if packets is None:
                packets = self.session.take_outbox(self) if self.session is not None else []
            if packets:
                data += wsframe.encode_texts(packets)
            return _write_quietly(self.sock, data)

    def heard_from_client(self) -> bool:
        """Whether more messages wait unread than at the monitor's last look.
        They wait while the reader thread finishes the messages before them;
        what it read is the client's sign of life, which no handler has
        counted yet. Asked by the monitor before it times a session out for
        silence; looking then, rather than counting each message as it comes,
        costs nothing per message."""
        unread = len(self.ws.input_buffer)
        heard = unread > self.unread_seen
        self.unread_seen = unread
        return heard

    def abort(self) -> None:
        """The session closed ``close_timeout`` ago and this connection is
        still open: its thread is stuck sending to a client that stopped
        reading. Shutting the socket down unblocks it."""
        if not self.done:
            logger.info("websocket still open long after its session closed; cut off")
            try:
                reset_on_close(self.sock)  # (the WSGI server's close drops what is unsent)
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


#: the connections being served, closed when the process exits (see end_all)
_open: weakref.WeakSet[ThreadWebSocket] = weakref.WeakSet()


def end_all() -> None:
    """The interpreter is exiting: end every WebSocket this process serves.

    A request thread serves each one as long as its client stays, and the
    interpreter joins the WSGI server's request threads before it exits
    (gunicorn's gthread worker runs them in a ``ThreadPoolExecutor``): a
    worker told to stop, or whose master died, would otherwise live on,
    serving its clients, and they would never reconnect elsewhere. Called
    by ``stopping``'s exit hook, which runs before the interpreter joins
    those threads, once the sessions had their chance to end in order."""
    for transport in list(_open):
        transport.close_code = GOING_AWAY_CODE
        transport.wakeup.set()


def open_count() -> int:
    """How many WebSockets this process serves in thread mode now."""
    return len(_open)


def serve(server: Server, ws: Any, session: Session | None, environ: dict[str, Any],
          start_response: StartResponse) -> Iterable[bytes]:
    """Serve ``session`` (None: the sid was unknown) on the upgraded ``ws``
    until either side closes, then end the WSGI call."""
    transport = ThreadWebSocket(ws)
    _open.add(transport)
    try:
        if session is None:
            ws.event.ready(None)
            _write_quietly(transport.sock, wsframe.encode_text(NOT_HANDSHAKEN))
        else:
            _pump(server, session, transport)
            if session.close_reason == GOING_AWAY and transport.close_code is None:
                transport.close_code = GOING_AWAY_CODE
            if session.close_reason in UNRESPONSIVE:
                # its client stopped reading or answering: the WSGI server's
                # close resets the connection, dropping what it was not sent
                reset_on_close(transport.sock)
        transport.close_writes()
        try:
            ws.close(transport.close_code)
        except Exception:  # already closed by the peer
            pass
        # Let the client answer the close frame before the WSGI server closes the
        # connection (RFC 6455 §7.1.1): simple-websocket's reader closes the socket
        # when the answer comes. Closing with the client's bytes unread would reset
        # the connection and could destroy our last frames (a "0::") in flight.
        ws.thread.join(timeout=CLOSE_HANDSHAKE_SECONDS)
        if ws.thread.is_alive():
            # no answer (a client gone silent): end the connection here. This
            # wakes the reader from its recv, and spares the WSGI server a
            # linger of its own when it closes the socket (gunicorn waits up
            # to 2 s for the client's end of stream, on its main thread, which
            # accepts nothing meanwhile)
            try:
                transport.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            ws.thread.join(timeout=CLOSE_HANDSHAKE_SECONDS)
    finally:
        ws.event.ready(None)  # (does nothing once the session was attached)
        transport.done = True
        _open.discard(transport)
    return _end_upgraded_call(ws, environ, start_response)


def _pump(server: Server, session: Session, transport: ThreadWebSocket) -> None:
    """The request thread's part: attach, hand the messages to the reader
    thread, write what others could not, and end the session's use of the
    connection."""
    ws = transport.ws
    signal: ReaderSignal = ws.event
    transport.server, transport.session = server, session
    try:
        server.attach(session, transport)
    except IllegalTransition:
        # the session closed after it was looked up, before the upgrade was
        # done (a ?disconnect, another process's claim): as for an unknown
        # sid, and as the hub answers, not an HTTP 500 inside the upgraded stream
        signal.ready(None)
        _write_quietly(transport.sock, wsframe.encode_text(NOT_HANDSHAKEN))
        return
    try:
        signal.ready(transport)  # from now on the reader runs the messages
        # (not ``ws.connected``: it turns False when the client's close frame
        # is read, before the reader has run the messages that preceded it)
        while not signal.reader_done and transport.close_code is None and \
                session.transport is transport and not session.closed:
            transport.wakeup.wait()
            transport.wakeup.clear()
            if not transport.flush():
                break
    finally:
        # A handler running on the reader finishes first, so that what it
        # queues goes out before the end. Not when the process stops: its
        # clients must get their 1001 at once, as in hub mode, and a handler
        # that runs on would hold the worker's exit (gunicorn waits for this
        # request thread). The reader then runs no message after that one,
        # and what the handler emits later goes nowhere (the session is over).
        stopping = session.closed and session.close_reason == GOING_AWAY
        if transport._receive_lock.acquire(blocking=not stopping):
            transport.ending = True
            transport._receive_lock.release()
        else:
            transport.ending = True
        transport.flush(server.release(session, transport))


def _write_quietly(sock: socket.socket, data: bytes) -> bool:
    """Write framed bytes (blocking); False when the connection is gone."""
    if not data:
        return True
    try:
        sock.sendall(data)
    except Exception:  # the peer went away; the caller ends the session
        return False
    return True


def _end_upgraded_call(ws: Any, environ: dict[str, Any],
                       start_response: StartResponse) -> Iterable[bytes]:
    """End the WSGI call of an upgraded connection without the server writing
    an HTTP response onto the socket."""
    mode = getattr(ws, "mode", "")
    if mode == "gunicorn":
        # gunicorn treats StopIteration as "close the connection quietly"
        raise StopIteration()
    if mode == "werkzeug":
        # Werkzeug writes a status line after the call and, the upgrade being
        # HTTP/1.1, would then read the client's next bytes as a request. Take
        # the connection away (as the hub does: Werkzeug's fd now points at a
        # dead socket, so its answer goes nowhere and it reads an end of
        # stream) and close it ourselves.
        tls = isinstance(environ.get("werkzeug.socket"), ssl.SSLSocket)
        real = take_over_socket(environ)
        try:
            real.shutdown(socket.SHUT_RDWR)  # also ends a reader still blocked on it
        except OSError:
            pass
        real.close()
        if tls:
            # Its status line would go through the TLS session, which a client
            # that closed it first has ended: SSLZeroReturnError, logged with a
            # traceback ("Error on request") for every such close. An error
            # Werkzeug counts as a dropped connection ends the call quietly.
            return _connection_ended()
    start_response("200 OK", [("Content-Length", "0")])
    return []


def _connection_ended() -> Iterator[bytes]:
    """A WSGI answer that Werkzeug takes for a connection its client dropped:
    nothing is written, nothing is logged."""
    raise ConnectionAbortedError("the WebSocket connection has ended")
    yield b""  # (a generator: raised when Werkzeug iterates, after the call)
