"""The I/O hub: one selector thread for every WebSocket and parked long-poll.

After the HTTP part of a request is handled in the WSGI server's thread, the
connection's socket is taken over (``take_over_socket``) and handed to the
hub; the WSGI call then ends, so the server's thread is free at once. The hub
thread does all non-blocking reads and writes, WebSocket framing
(``wsframe.py``) and long-poll answers. Decoded packets go to the server's
worker pool, which runs handlers in order per session; emits from any thread
only append to the session's outbox and mark the connection dirty, which
wakes the hub through a socketpair.

Nothing here parses Socket.IO itself: it calls ``Server.receive`` with the
text that arrived and drains ``Session`` outboxes.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .server import UNRESPONSIVE, Server
from .session import Session
from .takeover import connection_capacity, peer_closed, reset_on_close

try:  # (the compiled build's class options; see native.py)
    from mypy_extensions import mypyc_attr
except ImportError:
    from .native import mypyc_attr

logger = logging.getLogger("flask_sio09")

#: what a connection waits for, in ``HubConnection._events`` and in the poller's answers
READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
#: bytes read per recv call
RECV_SIZE = 65536
#: after our last byte, how long we wait for the peer to close its side
#: (RFC 6455 §7.1.1: the server should let the client close first)
LINGER_SECONDS = 2.0
#: encoded bytes a connection may hold unsent before the hub stops taking more
#: from the session outbox (the outbox then fills, and past its limit the
#: session is closed: a client that stops reading cannot grow memory forever)
HIGH_WATER = 1 << 20
#: a hub thread running one session's handlers for longer than this gives the
#: hub to a new thread (a handler that blocks must not stall the others); and
#: the handlers of a round that ran this long leave the sessions not yet
#: started to the pool (many handlers just under the limit must not either)
STUCK_SECONDS = 0.02
#: how often the watchdog looks, while handlers run on the hub
WATCH_INTERVAL = 0.01
#: checks without any handler run on the hub before the watchdog parks
WATCH_IDLE_CHECKS = 100


class Poller:
    """Which sockets are ready, answered with the objects registered for them:
    ``select.epoll`` on Linux, ``selectors.DefaultSelector`` elsewhere.

    ``selectors`` builds a key and a tuple in Python for every ready socket,
    which under load is once per message: 0.4 µs of the hub's CPU each. With
    epoll the kernel's answer is a list of (file descriptor, events), and one
    dict maps a descriptor to its object.
    """

    def __init__(self, epoll: bool = True) -> None:
        """:param epoll: use epoll where there is one (tests pass False to
                      try the ``selectors`` code on Linux)."""
        self._epoll = select.epoll() if epoll and hasattr(select, "epoll") else None
        self._selector = selectors.DefaultSelector() if self._epoll is None else None
        self._objects: dict[int, Any] = {}
        #: what each descriptor is watched for (epoll reports a hang-up whatever it was)
        self._watched: dict[int, int] = {}

    @staticmethod
    def _epoll_events(events: int) -> int:
        return (select.EPOLLIN if events & READ else 0) | \
            (select.EPOLLOUT if events & WRITE else 0)

    def register(self, fd: int, events: int, obj: Any) -> None:
        """Watch ``fd`` for ``events`` (READ, WRITE); ``poll`` answers with ``obj``."""
        if self._epoll is not None:
            self._epoll.register(fd, self._epoll_events(events))
        else:
            assert self._selector is not None
            self._selector.register(fd, events, obj)
        self._objects[fd] = obj
        self._watched[fd] = events

    def modify(self, fd: int, events: int) -> None:
        """Change what ``fd`` is watched for."""
        if self._epoll is not None:
            self._epoll.modify(fd, self._epoll_events(events))
        else:
            assert self._selector is not None
            self._selector.modify(fd, events, self._objects[fd])
        self._watched[fd] = events

    def unregister(self, fd: int, obj: Any) -> bool:
        """Stop watching ``fd`` for ``obj``; False when it was not watched
        for it (a descriptor number is reused once its socket is closed)."""
        if self._objects.get(fd) is not obj:
            return False
        del self._objects[fd]
        del self._watched[fd]
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                assert self._selector is not None
                self._selector.unregister(fd)
        except (OSError, KeyError, ValueError):  # closed meanwhile: already dropped
            pass
        return True

    def poll(self, timeout: float | None) -> list[tuple[Any, int]]:
        """Wait up to ``timeout`` seconds (None: no limit) and return
        ``(obj, events)`` for each ready descriptor. An error or a hang-up
        counts as every event the descriptor is watched for, as in ``selectors``."""
        if self._epoll is None:
            assert self._selector is not None
            return [(key.data, events) for key, events in self._selector.select(timeout)]
        ready = []
        objects, watched = self._objects, self._watched
        not_in, not_out = ~select.EPOLLIN, ~select.EPOLLOUT
        for fd, kernel_events in self._epoll.poll(-1 if timeout is None else timeout):
            obj = objects.get(fd)
            if obj is None:  # unregistered earlier in this round
                continue
            ready.append((obj, ((READ if kernel_events & not_out else 0)
                                | (WRITE if kernel_events & not_in else 0)) & watched[fd]))
        return ready


class Hub:
    """The selector loop. Start it once per server; it runs as a daemon thread.

    :param server: the server whose sessions the connections carry.
    :param clock: the clock the timers use (the server's).
    :param server_connections: how many connections the WSGI server may hold
        itself, when known (``takeover.connection_capacity``).
    """

    def __init__(self, server: Server, clock: Callable[[], float] = time.monotonic,
                 server_connections: int | None = None) -> None:
        self.server = server
        self.clock = clock
        self._poller = Poller()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._poller.register(self._wake_r.fileno(), READ, self._wake_r)
        self._lock = threading.Lock()
        self._calls: list[Callable[[], None]] = []
        self._dirty: dict[HubConnection, None] = {}
        self._woken = False
        self._timers: list[tuple[float, int, HubConnection]] = []
        self._seq = itertools.count()
        self.connections = 0
        #: the most connections the hub takes (the open-file limit's share)
        self.capacity = connection_capacity(server_connections)
        #: hub threads that gave up the hub while stuck in a handler, and
        #: have not finished it yet
        self._demoted = 0
        #: rounds that ran handlers; the watchdog parks when it stops growing
        self._handler_rounds = 0
        self._watch_parked = False
        self._watch_wake = threading.Event()
        #: ident of the thread that runs the hub loop now (see _promote);
        #: ``threading.get_ident() == hub.leader`` means "on the hub thread"
        self.leader = 0
        threading.Thread(target=self._run, daemon=True, name="sio09-hub").start()
        self._watchdog: threading.Thread | None = None
        if not server.workers.synchronous:  # else handlers never wait for the hub
            self._watchdog = threading.Thread(target=self._watch, daemon=True,
                                              name="sio09-hub-watchdog")
            self._watchdog.start()

    # -- called from any thread --------------------------------------------

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the hub thread soon."""
        with self._lock:
            self._calls.append(fn)
            wake = not self._woken
            self._woken = True
        if wake:
            self._poke()

    def mark(self, conn: HubConnection) -> None:
        """``conn`` has data to flush (called by ``wake()`` from any thread)."""
        me = threading.get_ident()
        if me == self.leader:
            # The hub thread needs no lock: only it swaps ``_dirty`` out (in
            # ``_run_pending``), a dict insert is atomic, and it flushes
            # before it next waits. Should the watchdog give the hub to a new
            # thread meanwhile, the new one may be waiting already: wake it.
            # (With the GIL no other thread runs between the check above and
            # the insert, which calls nothing; a build without the GIL would
            # need the lock here.)
            self._dirty[conn] = None
            if self.leader != me:
                self._poke()
            return
        with self._lock:
            if conn in self._dirty:
                return
            self._dirty[conn] = None
            # the hub thread flushes before it next waits; others wake it
            wake = not self._woken and me != self.leader
            self._woken = True
        if wake:
            self._poke()

    def _poke(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, InterruptedError):
            pass  # the pipe is full, so the hub is awake anyway

    # -- hub thread only ---------------------------------------------------

    def register(self, conn: HubConnection, events: int) -> None:
        conn.fd = conn.sock.fileno()
        self._poller.register(conn.fd, events, conn)
        self.connections += 1

    def modify(self, conn: HubConnection, events: int) -> None:
        """Change what ``conn`` is watched for. Watched for nothing (it reads
        no more for now, and has nothing to write), it leaves the poller until
        it wants something again: epoll would report its hang-up, whatever it
        is watched for, on every poll."""
        if not events:
            if self._poller.unregister(conn.fd, conn):
                conn.unwatched = True
        elif conn.unwatched:
            conn.unwatched = False
            self._poller.register(conn.fd, events, conn)
        else:
            self._poller.modify(conn.fd, events)

    def unregister(self, conn: HubConnection) -> None:
        if self._poller.unregister(conn.fd, conn) or conn.unwatched:
            conn.unwatched = False
            self.connections -= 1

    def add_timer(self, deadline: float, conn: HubConnection) -> None:
        heapq.heappush(self._timers, (deadline, next(self._seq), conn))

    def _run(self) -> None:
        me = threading.get_ident()
        with self._lock:
            if self.leader == 0:  # the first hub thread; later ones are set by _promote
                self.leader = me
        self.server.workers.defer_to(me)
        while True:
            try:
                if not self._step():
                    break
            except Exception:  # the hub must outlive any one bad connection
                logger.exception("hub loop error")
        with self._lock:  # this thread was stuck in a handler and is done with it
            self._demoted -= 1

    def _step(self) -> bool:
        """One round: wait for I/O or a timer, read, flush, run the handlers
        of what was read, flush their output. False when this thread lost the
        hub."""
        timeout = None
        if self._dirty or self._calls or self.server.workers.has_deferred():
            # work is waiting (a new hub thread inherits its predecessor's):
            # only look at what the sockets have, then do it
            timeout = 0.0
        elif self._timers:
            timeout = max(0.0, self._timers[0][0] - self.clock())
        wake_r = self._wake_r
        for conn, mask in self._poller.poll(timeout):
            if conn is wake_r:
                try:
                    while self._wake_r.recv(4096):
                        pass
                except (BlockingIOError, InterruptedError):
                    pass
                continue
            if mask & READ:
                if conn.lingering:
                    conn.drain_lingering()
                else:
                    conn.on_readable()
            if mask & WRITE and not conn.closed:
                conn.on_writable()
        self._run_pending()
        now = self.clock()
        while self._timers and self._timers[0][0] <= now:
            _, _, conn = heapq.heappop(self._timers)
            if conn.lingering:
                conn.close()
            elif conn.flush_overdue(now):
                conn.reset()
            elif not conn.closed:
                conn.on_timer(now)
        if not self._run_handlers():
            return False
        # what the handlers wrote goes out now; a flush never comes before the
        # reads of its round, so a client that hung up is seen before a packet
        # is written to its dead poll
        self._run_pending()
        return True

    def _run_handlers(self) -> bool:
        """Run, on this thread, the handlers of the packets this round read
        (see workers.py). False when the watchdog gave the hub to another
        thread meanwhile."""
        workers = self.server.workers
        if not workers.has_deferred():
            return True
        if not workers.can_defer():
            # handler_threads handlers already run away from the hub (some
            # may block): the rest wait for one of them on the pool rather
            # than risk one more thread stuck in a handler
            workers.hand_off_deferred()
            return True
        self._handler_rounds += 1
        if self._watch_parked:
            self._watch_parked = False
            self._watch_wake.set()
        return workers.run_deferred(STUCK_SECONDS)

    def _watch(self) -> None:
        """The watchdog: gives the hub to a new thread when the current one
        is stuck in a handler. It parks while no handler runs on the hub."""
        seen, idle = -1, 0
        while True:
            if idle >= WATCH_IDLE_CHECKS:
                self._watch_wake.clear()
                self._watch_parked = True
                if self._handler_rounds == seen:  # else a round began meanwhile
                    self._watch_wake.wait()
                self._watch_parked = False
                idle = 0
            time.sleep(WATCH_INTERVAL)
            try:
                if self.server.workers.release_stuck(STUCK_SECONDS):
                    self._promote()
            except Exception:
                logger.exception("hub watchdog error")
            rounds = self._handler_rounds
            idle = idle + 1 if rounds == seen else 0
            seen = rounds

    def _promote(self) -> None:
        """Start a new thread for the hub loop; the current one, stuck in a
        handler, finishes that session and ends."""
        with self._lock:
            self._demoted += 1
            self.leader = 0  # no thread is the hub's until the new one runs
        logger.debug("hub: a handler is slow; the hub goes on in a new thread")
        threading.Thread(target=self._run, daemon=True, name="sio09-hub").start()

    def _run_pending(self) -> None:
        lock = self._lock
        while True:
            lock.acquire()  # (not ``with``: see session.py's LOCK_NOTE)
            try:
                calls, self._calls = self._calls, []
                dirty, self._dirty = self._dirty, {}
                if not calls and not dirty:
                    self._woken = False
                    return
            finally:
                lock.release()
            for fn in calls:
                self._guarded(fn)
            for conn in dirty:
                if not conn.closed:
                    try:  # (what _guarded does, inline: this runs for every flush)
                        conn.flush()
                    except Exception:
                        self._failed(conn)

    @staticmethod
    def _guarded(fn: Callable[[], None], conn: HubConnection | None = None) -> None:
        """Run one connection's work; if it fails, that connection is dropped
        and the others still get their turn in this pass."""
        try:
            fn()
        except Exception:
            if conn is None:
                logger.exception("hub: a connection failed")
            else:
                Hub._failed(conn)

    @staticmethod
    def _failed(conn: HubConnection) -> None:
        """``conn``'s work raised (the exception is being handled): log it
        and drop that connection."""
        logger.exception("hub: a connection failed")
        try:
            conn.lost()
        except Exception:
            conn.close()


@mypyc_attr(allow_interpreted_subclasses=True)  # (hub_http.HubHTTP)
class HubConnection:
    """A socket owned by the hub: buffered non-blocking writes, close after
    flush. Subclasses define what reading, flushing and timers mean."""

    persistent = False

    def __init__(self, hub: Hub, sock: socket.socket, session: Session | None) -> None:
        self.hub = hub
        self.server = hub.server
        self.sock = sock
        self.session = session
        self.out = bytearray()
        #: the socket's descriptor while the hub watches it (see Hub.register)
        self.fd = -1
        self.closed = False
        self._close_when_flushed = False
        self.lingering = False
        #: when a connection still flushing its last bytes is dropped anyway
        self._flush_deadline: float | None = None
        self._events = READ
        #: False while the connection reads nothing (see HubWebSocket's
        #: back-pressure); what it waits for is then WRITE or nothing
        self.reading = True
        #: out of the poller, watched for nothing (see Hub.modify)
        self.unwatched = False
        # guards ``out``, sending and closing: a handler thread may write
        # directly (see HubWebSocket.wake); never held across server calls
        self.lock = threading.Lock()

    def wake(self) -> None:
        """The session's outbox gained data, or the session closed."""
        self.hub.mark(self)

    def write(self, data: bytes) -> None:
        """Queue ``data`` and send what the socket takes now."""
        with self.lock:
            self.out += data
        self._send()

    def close_after_flush(self) -> None:
        """Close once everything queued is sent, or after ``close_timeout``
        if the peer stops reading: it must not keep the socket and the unsent
        bytes for ever. A session closed because its client stopped reading
        (outbox overflow) or answering (heartbeat timeout) is reset at once:
        waiting would hold up to ``HIGH_WATER`` unsent bytes and the socket
        for ``close_timeout``, and a graceful close would leave the kernel's
        unsent bytes waiting for as long as the client stays."""
        self._close_when_flushed = True
        session = self.session
        if self.persistent and session is not None and session.close_reason in UNRESPONSIVE:
            # (a WebSocket or a stream: a poll's answer, once written, closes
            # on its own, and a kept connection may serve other sessions)
            self.reset()
        elif not self.out:
            self._finish()
        elif self._flush_deadline is None:
            self._flush_deadline = self.hub.clock() + self.server.options.close_timeout
            self.hub.add_timer(self._flush_deadline, self)

    def flush_overdue(self, now: float) -> bool:
        """True when the last bytes were not all taken by the flush deadline."""
        return self._flush_deadline is not None and now >= self._flush_deadline \
            and not self.closed and not self.lingering

    def _finish(self) -> None:
        """Half-close, then close once the peer closes its side (or after
        ``LINGER_SECONDS``). Closing while the peer's last bytes sit unread
        would reset the connection, and a reset can destroy our own last
        bytes (a ``0::``, a close frame) before the peer has read them."""
        if self.closed or self.lingering:
            return
        self.lingering = True  # before the peer can see our end of stream
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.reading = True  # (its end of stream, or what it still sends, is read)
        if self._events != READ:
            self._events = READ
            self.hub.modify(self, READ)
        self.hub.add_timer(self.hub.clock() + LINGER_SECONDS, self)

    def receive(self) -> bytes | None:
        """What the socket has: ``None`` when nothing is ready, ``b""`` when
        the peer has gone (end of stream or an error)."""
        try:
            return self.sock.recv(RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""

    def peer_closed(self) -> bool:
        """True when the peer has already closed its side (``takeover.peer_closed``)."""
        return peer_closed(self.sock)

    def read(self) -> bytes | None:
        """What the socket has, or None: when nothing is ready, and when the
        peer has gone, which ends this connection (``lost``) first."""
        data = self.receive()
        if data == b"":
            self.lost()
            return None
        return data

    def drain_lingering(self) -> None:
        """Discard what the peer still sends; close at its end of stream."""
        if self.receive() == b"":
            self.close()

    def _send(self) -> None:
        """Send what the socket takes now (hub thread)."""
        failed = False
        with self.lock:
            if self.closed:
                return
            if self.out:
                try:
                    sent = self.sock.send(self.out)
                    del self.out[:sent]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    failed = True
            pending = bool(self.out)
        if failed:
            self.lost()
            return
        if not pending and self._close_when_flushed:
            self._finish()
            return
        wanted = (READ if self.reading else 0) | (WRITE if pending else 0)
        if wanted != self._events:
            self._events = wanted
            self.hub.modify(self, wanted)

    def on_writable(self) -> None:
        self._send()
        # A stream (WebSocket, htmlfile) takes no more from the outbox while a
        # megabyte waits on its socket (HIGH_WATER). Now that the client reads
        # again, the rest follows: else it would wait for the next packet's
        # wake-up, a heartbeat seconds away.
        session = self.session
        if session is not None and session.transport is self and not self.closed \
                and len(self.out) < HIGH_WATER and session.has_outbox():
            self.flush()

    def on_readable(self) -> None:
        raise NotImplementedError

    def on_timer(self, now: float) -> None:
        """A timer set with ``hub.add_timer`` expired."""

    def flush(self) -> None:
        """Move what the session has queued onto the socket."""

    def lost(self) -> None:
        """The peer went away or the socket failed."""
        self.close()

    def reset(self) -> None:
        """Close with a reset, dropping what the kernel still holds for a
        peer that stopped reading (a graceful close would keep those bytes,
        up to the socket's send buffer, for as long as the peer stays)."""
        reset_on_close(self.sock)
        self.close()

    def close(self) -> None:
        """Unregister and close the socket (hub thread)."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            # (the timer heap may hold this object until its deadline)
            del self.out[:]
            self.hub.unregister(self)
            try:
                self.sock.close()
            except OSError:
                pass


class HubPoll(HubConnection):
    """A parked long-poll GET: answered once, with packets, a noop after
    ``polling_duration``, or a disconnect; then the connection is closed."""

    def __init__(self, hub: Hub, sock: socket.socket, session: Session,
                 render: Callable[[str], bytes], deadline: float,
                 replaces: Any = None) -> None:
        super().__init__(hub, sock, session)
        self.render = render
        self.deadline = deadline
        self.answered = False
        #: the transport this poll takes the session over from (the WSGI
        #: thread's waiter), or None to attach afresh
        self.replaces = replaces

    def start(self) -> None:
        """Attach to the session and arm the polling timer (hub thread)."""
        self.hub.register(self, READ)
        self.hub.add_timer(self.deadline, self)
        session = self.session
        assert session is not None
        if self.replaces is not None:
            if not session.replace(self.replaces, self):  # type: ignore[arg-type]
                self.answer("8::")  # a newer poll came meanwhile: it waits instead
                return
        else:
            try:
                self.server.attach(session, self)  # type: ignore[arg-type]
            except Exception:
                self.answer("7:::1+0")
                return
        self.flush()

    def flush(self) -> None:
        session = self.session
        assert session is not None
        if self.answered:
            return
        if session.has_outbox() or session.closed or session.transport is not self:
            if self.peer_closed():
                self.lost()
                return
            self.answer(None)

    def on_timer(self, now: float) -> None:
        if not self.answered:
            self.answer(None)

    def answer(self, payload: str | None) -> None:
        """Write the poll's one answer and close after it is sent."""
        self.answered = True
        if payload is None:
            assert self.session is not None
            payload = self.server.answer_poll(self.session, self)
        self.write(self.render(payload))
        self.close_after_flush()

    def on_readable(self) -> None:
        self.read()  # anything but the end of stream is a pipelined request we do not serve

    def lost(self) -> None:
        """The client hung up before its answer: keep the packets queued."""
        if not self.answered and self.session is not None:
            self.answered = True
            self.server.detach(self.session, self)
        self.close()

    def clock(self) -> float:
        return self.hub.clock()


class HubHeldAnswer(HubConnection):
    """The answer to a polling upload that waits for its session's handlers
    (``Server.upload_received``), on a connection the hub does not keep alive
    (HTTP/1.0, ``Connection: close``): held here rather than by a WSGI
    thread, so that such uploads cannot take all of them. Sent once the
    handlers have run, or after ``close_timeout`` as in thread mode; then the
    connection closes. It carries no session: it is not a transport."""

    def __init__(self, hub: Hub, sock: socket.socket, waits_for: Session, answer: bytes) -> None:
        super().__init__(hub, sock, None)
        self.waits_for = waits_for
        self.answer = answer
        self.sent = False

    def start(self) -> None:
        """Watch the connection and wait for the handlers (hub thread)."""
        self.hub.register(self, READ)
        self.hub.add_timer(self.hub.clock() + self.server.options.close_timeout, self)
        hub = self.hub
        self.server.when_handled(self.waits_for, lambda: hub.call(self.release))

    def release(self) -> None:
        """Send the answer, then close (hub thread)."""
        if self.sent or self.closed:
            return
        self.sent = True
        self.write(self.answer)
        self.close_after_flush()

    def on_timer(self, now: float) -> None:
        if not self.sent:
            logger.info("session %s: its handlers still lag behind its uploads after %s s; "
                        "answered anyway", self.waits_for.sid, self.server.options.close_timeout)
            self.release()

    def on_readable(self) -> None:
        # (what comes behind a Connection: close request is not served)
        if self.receive() == b"":
            # The client's end of stream: a client may half-close once its
            # request is sent and still wait for the answer. Read no more
            # (the poller would report the end again and again); a client
            # that went away for good fails the answer's write, or is
            # dropped at the deadline.
            self.reading = False
            self._send()


class HubStream(HubConnection):
    """A streaming response (htmlfile) carrying one session: the head and a
    preamble, then one chunk per flush, until the session ends or a newer
    transport replaces it. Persistent: heartbeats flow over it and its loss
    ends the session, as with a WebSocket."""

    persistent = True

    def __init__(self, hub: Hub, sock: socket.socket, session: Session,
                 encode: Callable[[list[str]], bytes]) -> None:
        super().__init__(hub, sock, session)
        self.encode = encode
        self._ended = False

    def start(self, head: bytes) -> None:
        """Write the head (status, headers and preamble) and attach (hub thread)."""
        self.hub.register(self, READ)
        self.write(head)
        try:
            self.server.attach(self.session, self)  # type: ignore[arg-type]
        except Exception:
            self._ended = True
            self.write(b"0\r\n\r\n")
            self.close_after_flush()
            return
        self.flush()

    @staticmethod
    def chunk(data: bytes) -> bytes:
        """One piece of a chunked HTTP/1.1 body."""
        return b"%x\r\n%s\r\n" % (len(data), data)

    def flush(self) -> None:
        session = self.session
        assert session is not None
        if self._ended:
            return
        if session.closed or session.transport is not self:
            self.end()
            return
        if len(self.out) < HIGH_WATER:
            packets = session.take_outbox(self)
            if packets:
                data = self.chunk(self.encode(packets))
                with self.lock:
                    self.out += data
        self._send()

    def end(self) -> None:
        """Write what the session still has, finish the body, close."""
        if self._ended:
            return
        self._ended = True
        assert self.session is not None
        leftover = self.server.release(self.session, self)
        tail = self.chunk(self.encode(leftover)) if leftover else b""
        with self.lock:
            self.out += tail + b"0\r\n\r\n"
        self._send()
        self.close_after_flush()

    def on_readable(self) -> None:
        self.read()  # only the end of stream matters: it ends the stream

    def lost(self) -> None:
        if not self._ended and self.session is not None:
            self._ended = True
            self.server.release(self.session, self)
        self.close()
