"""The Socket.IO 0.9 server: sessions, packet dispatch, timers, emitting.

This module never imports Flask. The application side is reached through an
object satisfying ``Application`` (``extension.py`` provides the Flask one, the
test client another), and HTTP is handled by ``transports.py``.

Threads: packets are decoded on the thread that read them (a WebSocket reader,
a POST's request thread, or the I/O hub); everything that runs application code
is a job handed to ``Workers``, which runs one session's jobs in order. One
monitor thread serves every session's timers (heartbeats, heartbeat timeout,
close timeout).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import packet as packet_codec
from .packet import decode_event
from .manager import MemoryManager, listed_names
from .cluster import Cluster
from . import stopping
from .droplog import log_dropped, report_expired, report_unlogged
from .session import IllegalTransition, Session, Transport
from .stopping import GOING_AWAY
from .workers import Workers

logger = logging.getLogger("flask_sio09")
_debug_enabled = logger.isEnabledFor

DEFAULT_TRANSPORTS = ("websocket", "htmlfile", "xhr-polling", "jsonp-polling")
KNOWN_TRANSPORTS = frozenset(DEFAULT_TRANSPORTS + ("flashsocket",))
#: client-emitted event names that are dropped (N's default ``blacklist``)
BLACKLISTED_EVENTS = frozenset({"disconnect"})
#: a handshake that no transport opens is forgotten after this long (N: 30 s)
UNUSED_HANDSHAKE_TIMEOUT = 30.0
#: the most namespaces one client may join (each costs server memory)
MAX_NAMESPACES_PER_SESSION = 100
#: bytes a client's messages may wait for their handlers (at least; the
#: largest message or upload allowed, if more) before the server reads no
#: more from it (a WebSocket) or holds the answer to its upload (polling)
#: until they have run: a client that sends faster than slow handlers run
#: must not grow the server's memory without a bound
INBOUND_LIMIT = 1 << 20
#: characters past which a payload that the hub's thread received is decoded
#: as a job of its session (as its handlers run) instead of in the hub's
#: round: a megabyte of small JSON arrays takes a sixth of a second to decode,
#: and the watchdog lets other clients' I/O go on only while a job runs
DECODE_AS_JOB_CHARS = 16 * 1024

CONNECT_ECHO = "1::"
HEARTBEAT = "2::"
DISCONNECT = "0::"
NOOP = "8::"
NOT_HANDSHAKEN = "7:::1+0"
#: why a session ends when its client POSTs more than ``max_http_buffer_size``
UPLOAD_TOO_LARGE = "upload too large"
#: the close reason of a session whose outbox went past ``max_outbox_bytes``:
#: its connection is then cut at once, its unsent bytes dropped
OUTBOX_OVERFLOW = "outbox overflow"
#: the close reason of a session whose client went silent past heartbeat_timeout
HEARTBEAT_TIMEOUT = "heartbeat timeout"
#: the close reason of a polling session no poll came for in close_timeout
CLOSE_TIMEOUT = "close timeout"
#: the reason of a session the client ended (``0::`` or ``?disconnect``)
CLIENT_DISCONNECT = "client disconnect"
#: close reasons of a client that stopped reading or answering: its
#: connection is reset, what it was not sent dropped (hub, thread mode)
UNRESPONSIVE = frozenset({OUTBOX_OVERFLOW, HEARTBEAT_TIMEOUT})
#: ``answer_poll``'s answer when the poll must fail with an HTTP error rather
#: than carry a payload (no payload is empty)
POLL_FAILED = ""


def namespace_refused(endpoint: str) -> str:
    """``7::/ns:2`` (reason unauthorized, no advice), encoded by the codec so
    that any endpoint a client sent is written safely."""
    return packet_codec.encode({"type": "error", "reason": "unauthorized", "endpoint": endpoint})


@dataclass
class Options:
    """Server settings; the names and defaults are those of API.md."""

    resource: str = "socket.io"
    transports: tuple[str, ...] = DEFAULT_TRANSPORTS
    heartbeat_timeout: float = 60
    heartbeat_interval: float = 25
    close_timeout: float = 60
    polling_duration: float = 20
    cors_allowed_origins: str | list[str] | None = None
    max_http_buffer_size: int = 1_000_000
    #: encoded text that may wait for one slow client before it is dropped
    max_outbox_bytes: int = 16_000_000
    websocket_mode: str = "auto"
    handler_threads: int = 16
    #: Redis URL shared with the application's other processes, or None
    message_queue: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Application(Protocol):
    """What the server calls to run application code (always on a worker)."""

    def authorize_handshake(self, environ: dict[str, Any]) -> bool:
        """False refuses the handshake (403)."""

    def connect(self, session: Session, namespace: str, query: str) -> bool:
        """Run the namespace's connect handler; False refuses the client."""

    def event(self, session: Session, namespace: str, name: str, args: list[Any],
              ack: Ack | None, packet: bool = False) -> None:
        """Run the handler of an event; a ``message`` or ``json`` packet comes
        as an event of that name with its data as the one argument, and
        ``packet`` True (an event the client named so has it False). ``ack``:
        the data ack the packet asked for."""

    def disconnect(self, session: Session, namespace: str) -> None:
        """Run the namespace's disconnect handler."""

    def callback(self, session: Session, namespace: str, callback: Callable[..., Any],
                 args: list[Any]) -> None:
        """Run a server ``callback=`` with the client's ack arguments."""

    def error(self, session: Session, namespace: str, reason: str, advice: str) -> None:
        """The client sent an error packet."""

    def remote_callback(self, namespace: str, callback: Callable[..., Any],
                        args: list[Any]) -> None:
        """Run an emit's callback with the ack of another process's client."""


#: taken for the moment an ``Ack`` is claimed (one lock for all: held for two lines)
_claim = threading.Lock()


class Ack:
    """The ``ack`` callable handed to a handler for a data-ack packet.
    It answers once; a second call is ignored with a warning."""

    __slots__ = ("_server", "_session", "_endpoint", "_id", "used")

    def __init__(self, server: Server, session: Session, endpoint: str, ack_id: int) -> None:
        self._server, self._session = server, session
        self._endpoint, self._id = endpoint, ack_id
        self.used = False

    @property
    def id(self) -> int:
        """The id of the packet this ack answers."""
        return self._id

    def __call__(self, *args: Any) -> None:
        self.answer(args)

    def answer(self, args: tuple[Any, ...]) -> None:
        """Answer with ``args`` (what calling it does: the bridge answers
        with a handler's return value this way, sparing the call's packing)."""
        # claimed under a lock: a thread the handler gave it to, and the
        # bridge answering for the handler that raised, may call at once
        _claim.acquire()
        used, self.used = self.used, True
        _claim.release()
        if used:
            logger.warning("ack %s of %s answered twice; ignored", self._id, self._session.sid)
            return
        session = self._session
        if _debug_enabled(logging.DEBUG):  # (checked here: this runs for every ack)
            logger.debug("session %s: data ack %s on %r", session.sid, self._id, self._endpoint)
        try:
            encoded = packet_codec.encode_ack(self._id, args, self._endpoint)
        except Exception:
            # args JSON cannot carry: not answered, so the error handler may
            self.used = False
            raise
        # (joined: an answer after the server's 0::/ns would reach a namespace
        # the client was told it had left)
        if not session.send(encoded, self._endpoint, True):
            self._server.outbox_overflow(session)


class _EventJob(Ack):
    """Runs the handler of one event (``run`` is a job for ``Workers``), and
    is that event's ``ack`` callable when the packet asked for a data ack.

    One small object rather than a closure: a closure over these values
    allocates a cell per value, and in hub mode a round's jobs all wait until
    its I/O is done; with a few hundred clients that many objects alive at once
    set off Python's cyclic garbage collector every round. Being the ack too
    spares making a second object for each event.
    """

    __slots__ = ("name", "args")

    #: False: an event packet; True (``_MessageJob``): a message or json packet
    message_packet = False

    def __init__(self, server: Server, session: Session, endpoint: str, name: str,
                 args: list[Any], ack_id: int | None) -> None:
        self._server, self._session = server, session
        self._endpoint, self._id = endpoint, ack_id  # type: ignore[assignment]
        self.used = False
        self.name, self.args = name, args

    def run(self) -> None:
        """Run the event's handler (on a worker, after the session's earlier jobs)."""
        session, endpoint = self._session, self._endpoint
        try:
            connected = session.is_connected(endpoint)
            if not connected and endpoint in session.left_by_client and not session.closed:
                self._server.rejoin_left(session, endpoint)  # (off the common path)
                connected = session.is_connected(endpoint)
            if connected and not session.closed:
                app = self._server.app
                ack = None if self._id is None else self
                if self.message_packet:
                    app.event(session, endpoint, self.name, self.args, ack, packet=True)
                else:
                    app.event(session, endpoint, self.name, self.args, ack)
            elif not session.closed:
                # a namespace the client left, never joined, or (a POST racing the
                # first poll) a session no transport has opened yet: N ran no handler
                log_dropped(session,
                            "session %s: an event on a namespace not connected dropped",
                            session.sid)
                logger.debug("session %s: event %r on %r dropped", session.sid, self.name,
                             endpoint)
        finally:
            # an ack the handler keeps (to answer later) must not keep the
            # event's arguments alive with it
            self.args = None  # type: ignore[assignment]


class _MessageJob(_EventJob):
    """Runs the handler of a ``message`` or ``json`` packet (an event of that
    name to the handlers, which the gevent-socketio layer tells apart)."""

    __slots__ = ()
    message_packet = True


class Server:
    """Sessions and dispatch for one application.

    :param options: the settings.
    :param application: the bridge to the application's handlers.
    :param clock: a monotonic clock (tests pass a fake one).
    :param monitor: start the monitor thread (tests drive ``monitor_step``).
    :param synchronous: run handlers on the thread that received the packet
                        (the test client); by default they run on the pool.
    """

    def __init__(self, options: Options, application: Application,
                 clock: Callable[[], float] = time.monotonic, monitor: bool = True,
                 synchronous: bool = False) -> None:
        self.options = options
        self.app = application
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        #: closed sessions whose last packets wait for a poll: sid -> (session, since)
        self._draining: dict[str, tuple[Session, float]] = {}
        #: transports of closed sessions to cut off (``abort()``) at a deadline,
        #: in case their thread is stuck writing to a client that stopped reading
        self._closing: list[tuple[Any, float]] = []
        #: answers a WSGI server's thread is writing, checked by the monitor
        #: for a client that stopped reading them (``watch_write``)
        self._writes: set[Any] = set()
        #: (sid, endpoint) disconnected from inside their own connect handler
        self._leave_after_connect: set[tuple[str, str]] = set()
        self.manager = self._new_manager()
        #: this server's part among the application's processes (message_queue)
        self.cluster: Cluster | None = None
        if self.options.message_queue is not None:
            self.cluster = Cluster(self, self.manager,  # type: ignore[arg-type]
                                   UNUSED_HANDSHAKE_TIMEOUT)
        # handler_threads=0: no pool; handlers run on the thread that read the
        # packet (the hub's, in hub mode), as Node does: cheapest, but a handler
        # that blocks stalls every connection that thread serves
        self._synchronous = synchronous
        self.workers = self._new_workers()
        # a server no one holds any more (a test's app let go of) lets its
        # pool threads go too: they hold the pool, not the server
        weakref.finalize(self, Workers.stop, self.workers)
        #: the I/O hub (transports.get_hub starts it on first use)
        self.hub: Any = None
        self._stop = threading.Event()
        # The monitor starts with the first session, in the process that serves
        # it: an app made before a fork (gunicorn --preload) must not leave its
        # threads behind in the parent.
        self._want_monitor = monitor
        self._monitor: threading.Thread | None = None
        self._had_sessions = False  # (whether go_away has anything to tell)
        _after_fork_reset.add(self)
        #: whether the sessions end when the process stops (the test client
        #: turns it off: it has no one to tell, and a test run's exit must not
        #: run the app's handlers)
        self.stop_with_process = monitor
        #: set once the process stops serving (``go_away``)
        self.going_away = False
        #: the sessions ``go_away`` ended, until they are gone
        self._going: list[Session] = []
        if monitor:  # (a server of the tests' that drive it by hand is left alone)
            stopping.watch(self)

    def _new_manager(self) -> MemoryManager:
        url = self.options.message_queue
        if url is None:
            return MemoryManager(self._deliver)
        from .redis_manager import RedisManager  # (imports redis: optional)

        return RedisManager(self._deliver, url, lambda message: self.cluster.apply(message))

    def _new_workers(self) -> Workers:
        return Workers(max(1, self.options.handler_threads),
                       synchronous=self._synchronous or self.options.handler_threads == 0)

    def _ensure_monitor(self) -> None:
        if self._want_monitor and self._monitor is None:
            with self._lock:
                if self._monitor is None:
                    # (the thread holds the server weakly: a server no one
                    # else holds, a test's app let go of, stops it)
                    self._monitor = threading.Thread(target=_monitor_loop,
                                                     args=(weakref.ref(self), self._stop),
                                                     daemon=True, name="sio09-monitor")
                    self._monitor.start()
        if self.cluster is not None:
            self.cluster.start()

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's threads (monitor, handler pool, hub)
        do not exist here; forget them so they start afresh on first use."""
        self._lock = threading.Lock()
        self._monitor = None
        self.workers = self._new_workers()
        self.hub = None
        if self.cluster is not None:
            self.cluster.reset_after_fork()

    # -- sessions --------------------------------------------------------

    def new_session(self, environ: dict[str, Any]) -> Session:
        """Create a session for a successful handshake."""
        sid = secrets.token_urlsafe(15)  # 120 random bits, 20 URL-safe chars
        session = self.add_session(sid, environ)
        assert session is not None  # (a sid of 120 random bits is new)
        if self.cluster is not None:  # its transport may reach another process
            # (before the client knows the sid)
            self.cluster.handshaken(sid, environ.get("QUERY_STRING", ""))
        logger.debug("handshake: new session %s", sid)
        return session

    def get_session(self, sid: str, draining: bool = False,
                    adopt: Callable[[], dict[str, Any]] | None = None) -> Session | None:
        """The live session with this sid, or None.

        :param draining: also return a closed session whose last packets (the
                         ``0::`` of a server-side disconnect) wait for a poll.
        :param adopt: with a message queue, for a transport request: the
                      environ to give a session that another process of the
                      application handshook, which this one then holds.
        """
        session = self.sessions.get(sid)
        if session is not None and not session.closed:
            cluster = self.cluster
            if cluster is not None and sid in cluster.unclaimed and not cluster.claim(session):
                return None
            return session
        if draining:
            with self._lock:
                entry = self._draining.get(sid)
            if entry is not None and entry[0].has_outbox():
                return entry[0]
        if adopt is not None and self.cluster is not None and session is None:
            return self.cluster.adopt(sid, adopt)
        return None

    def add_session(self, sid: str, environ: dict[str, Any]) -> Session | None:
        """Register a session with ``sid`` (made here, or by another process:
        ``Cluster.adopt``); None when this process has one already."""
        session = Session(sid, environ, self.clock(), self.options.max_outbox_bytes)
        with self._lock:
            if sid in self.sessions:
                return None
            self.sessions[sid] = session
            self._had_sessions = True
        self._ensure_monitor()
        return session

    def knows_locally(self, sid: str) -> bool:
        """Whether a transport request for ``sid`` can be answered without
        asking the message queue: there is none, or this process holds the
        session, open and claimed. (The hub thread asks: a request that needs
        Redis goes to a thread, since Redis may be slow.)"""
        cluster = self.cluster
        if cluster is None:
            return True
        session = self.sessions.get(sid)
        return session is not None and not session.closed and sid not in cluster.unclaimed

    def held_elsewhere(self, sid: str) -> bool:
        """Whether another process of the application holds session ``sid``
        (always False without a message queue)."""
        return self.cluster is not None and self.cluster.held_elsewhere(sid)

    def forward_payload(self, sid: str, data: str) -> bool:
        """A payload POSTed here for a session another process holds: that
        process receives it. False when it could not be sent (logged)."""
        assert self.cluster is not None
        return self.cluster.forward_payload(sid, data)

    def attach(self, session: Session, transport: Transport) -> None:
        """Make ``transport`` the session's channel; the first one connects the
        global namespace. An older transport is woken so that it ends."""
        opened, previous = session.attach(transport, self.clock())
        if previous is not None and previous is not transport:
            previous.wake()
        if opened:
            logger.debug("session %s opened", session.sid)
            self._connect_namespace(session, "", session.environ.get("QUERY_STRING", ""))

    def release(self, session: Session, transport: Transport) -> list[str]:
        """The transport ended: detach it and return what it must still write.
        A persistent transport's loss ends the session (as in N)."""
        leftover = session.release(transport, self.clock())
        if leftover is None:
            # replaced by a newer transport: the session is that one's now
            # (it may be between two polls, with none attached, and lives on)
            return []
        if session.closed:
            if leftover:
                session.farewell_taken = True
            with self._lock:
                self._draining.pop(session.sid, None)
        elif transport.persistent and session.transport is None:
            self.close_session(session, "transport closed")
        return leftover

    def detach(self, session: Session, transport: Transport) -> None:
        """A poll whose client hung up before its answer lets go of the
        session, leaving its packets for the next poll. When the session has
        closed meanwhile (its last packets, the ``0::`` of a server-side
        disconnect, were queued for this poll), they are kept for that poll
        as ``close_session`` keeps them when no transport is attached."""
        session.detach(transport, self.clock())
        if session.closed and session.transport is None and session.has_outbox():
            with self._lock:
                if session.sid not in self.sessions:
                    self._draining.setdefault(session.sid, (session, self.clock()))

    def answer_poll(self, session: Session, transport: Transport) -> str:
        """End a long poll: detach it and return its one answer, the packets
        queued (framed when several), ``0::`` for a session that ended, or the
        noop ``8::``."""
        packets = self.release(session, transport)
        if session.closed and session.close_reason == GOING_AWAY:
            # the process stops: what was queued still goes out; else a failed
            # poll makes the client handshake again, with a process that serves
            return packet_codec.frame(packets) if packets else POLL_FAILED
        if session.closed and session.close_reason == UPLOAD_TOO_LARGE:
            # a failed poll: socket.io-client 0.9 then reconnects at once. Told
            # "0::" it would give up (booted); told "7:::1+0" it sends "0::",
            # which a JSONP client, one POST at a time, may send only to its
            # next session, ending that one too
            return POLL_FAILED
        if packets:
            return packet_codec.frame(packets)
        if session.closed and session.transport is None:
            # told once: a poll that raced the one that took the session's
            # last packets (its 0::) hears that the session is gone
            return NOT_HANDSHAKEN if session.farewell_taken else DISCONNECT
        return NOOP

    def refuse_upload(self, session: Session) -> None:
        """The client POSTed more than ``max_http_buffer_size``: end the
        session so that the client reconnects. Its poll fails
        (``answer_poll``); a stream (htmlfile) is told ``7:::1+0``."""
        self.close_session(session, UPLOAD_TOO_LARGE, last=NOT_HANDSHAKEN)

    def refuse_upload_elsewhere(self, sid: str) -> None:
        """``refuse_upload`` for a session another process holds (it does it)."""
        assert self.cluster is not None
        self.cluster.forward_refused_upload(sid)

    def close_session(self, session: Session, reason: str, last: str | None = None) -> None:
        """End the session; disconnect handlers run once per namespace.

        :param last: the session's last packet (its ``0::``), queued in the
                     step that closes it, so that nothing follows it.
        """
        transport = session.transport  # before close() wakes it and it lets go
        if not session.close(reason, last):
            return
        with self._lock:
            self.sessions.pop(session.sid, None)
            if transport is not None and hasattr(transport, "abort"):
                # a thread still writing to it is cut off after close_timeout;
                # at once when its client stopped reading (outbox overflow)
                grace = 0.0 if reason == OUTBOX_OVERFLOW else self.options.close_timeout
                self._closing.append((transport, self.clock() + grace))
            if session.transport is None and session.has_outbox() and \
                    reason not in (CLOSE_TIMEOUT, CLIENT_DISCONNECT):
                # no transport to carry the last packets: keep them for the
                # next poll (a client told "0::" does not reconnect; one told
                # "7:::1+0" would), at most close_timeout. Not for a client
                # that no poll came from in close_timeout: it is gone, and
                # should it come back, "7:::1+0" has it start again (as in N);
                # nor for one that ended the session itself (?disconnect
                # between polls): a later poll gets "7:::1+0", as from N
                self._draining[session.sid] = (session, self.clock())
        logger.debug("session %s closed: %s", session.sid, reason)
        if session.drops is not None:
            report_unlogged(session)
        if self.cluster is not None:
            self.cluster.session_closed(session.sid, reason)
        with session.lock:  # (another thread may be joining or leaving one)
            joined = [e for e in session.namespaces if session.is_connected(e)]
        for endpoint in sorted(joined, key=lambda e: e == ""):  # global last
            self._leave(session, endpoint)

    def disconnect(self, sid: str, namespace: str = "", forward: bool = True) -> None:
        """Server-side disconnect: ``0::/ns`` leaves one namespace; the global
        namespace ends the session (``0::`` is written first).

        :param forward: with a message queue, a sid this process does not
                        hold is disconnected by the process that holds it.
        """
        session = self.sessions.get(sid)
        cluster = self.cluster
        if cluster is not None and forward and (session is None or sid in cluster.unclaimed):
            # another process's client, perhaps (a copy handshaken here that no
            # transport has reached yet may be held elsewhere): its process
            # disconnects it
            cluster.forward_disconnect(sid, namespace)
            if session is None:
                return
        if session is None or session.closed:
            return
        state = session.namespace_state(namespace)
        if state == "connecting":
            # its connect handler is running (this call may come from it): the
            # connect job disconnects the client once the handler has accepted,
            # so that the client gets its connect packet and what the handler
            # sent, then the disconnect, as Node sends them
            with self._lock:
                self._leave_after_connect.add((sid, namespace))
            # the connect job may have looked already: accepted since, leave
            # now; refused or left since, nothing is left to do (the entry
            # would otherwise stay, to kick the client's next visit)
            after = session.namespace_state(namespace)
            if after != "connecting" and self._pop_leave_after_connect(sid, namespace) \
                    and after == "connected":
                self.disconnect(sid, namespace, forward=False)
            return
        if namespace == "":
            self.close_session(session, "server disconnect", last=DISCONNECT)
        elif state == "connected":
            self._leave(session, namespace, farewell=packet_codec.encode(
                {"type": "disconnect", "endpoint": namespace}), connected_only=True)

    def client_disconnect(self, session: Session) -> None:
        """The client ended its session (``0::`` or ``?disconnect``). As N
        does, ``0::`` is echoed only on an open transport; a later poll gets
        ``7:::1+0``."""
        self.close_session(session, CLIENT_DISCONNECT,
                           last=DISCONNECT if session.transport is not None else None)

    def forced_disconnect(self, session: Session) -> None:
        """``?disconnect``: the client ends its session, after the handlers
        of what it sent before, as Node ran them before it read the request.
        Those may still wait in the job queue: a POST is answered before its
        packets' handlers run, and a large one may still be decoding."""
        with session.lock:
            pending = session.jobs_running or bool(session.jobs)
        if pending:
            self.when_handled(session, lambda: self.client_disconnect(session))
        else:
            self.client_disconnect(session)

    def _client_left(self, session: Session, endpoint: str) -> None:
        """The client sent a disconnect packet: for the session (global
        namespace) or for one namespace."""
        session.leaving.discard(endpoint)
        if endpoint == "":
            self.client_disconnect(session)
        elif session.is_connected(endpoint):
            self._leave(session, endpoint, now=True, connected_only=True)
            left = session.left_by_client
            left[endpoint] = None
            if len(left) > MAX_NAMESPACES_PER_SESSION:  # a bound for a hostile client
                del left[next(iter(left))]

    def rejoin_left(self, session: Session, endpoint: str) -> None:
        """An event came on a namespace the client left itself (a job of the
        session runs this). socket.io-client 0.9.16 keeps a namespace it left
        and never sends ``1::/ns`` for it again, while Node went on running
        its handlers: the client joins it again here, through its connect
        handler (which may refuse), with the handshake's query (what that
        client sends for a namespace) and no ``1::/ns`` echo, which the
        client did not ask for."""
        session.left_by_client.pop(endpoint, None)
        logger.debug("session %s: an event on %r, which it left, joins it again",
                     session.sid, endpoint)
        self._connect_namespace(session, endpoint, session.environ.get("QUERY_STRING", ""),
                                now=True, echo=False)

    def _pop_leave_after_connect(self, sid: str, endpoint: str) -> bool:
        with self._lock:
            if (sid, endpoint) not in self._leave_after_connect:
                return False
            self._leave_after_connect.discard((sid, endpoint))
            return True

    def _leave(self, session: Session, endpoint: str, now: bool = False,
               farewell: str | None = None, connected_only: bool = False) -> None:
        """Take the client out of ``endpoint`` (telling it ``farewell``, the
        server's ``0::/ns``, if given) and run its disconnect handler: on the
        job queue, or here with ``now`` (the caller is a job of the session:
        a rejoin queued behind it then finds the leave done)."""
        # Whoever takes the namespace out of the session runs its disconnect
        # handler; racing callers (a close during a connect handler) get False.
        # ``connected_only``: the caller saw the visit connected; a new visit
        # that another thread's kick and the client's next 1::/ns started
        # since is not the one to leave
        if not session.leave_namespace(endpoint, farewell, handler_queued=not now,
                                       connected_only=connected_only):
            return

        def job() -> None:
            # the handler still sees the client's rooms (``rooms()``, an emit
            # to them telling the others it left), as in Flask-SocketIO; the
            # client itself gets nothing more on the namespace (``_deliver``)
            try:
                self.app.disconnect(session, endpoint)
            finally:
                self.manager.disconnect(session.sid, endpoint)
                session.disconnecting.discard(endpoint)

        if now:
            job()
        else:
            # (a join queued before this job waits for it: ``disconnecting``,
            # set by leave_namespace; it would otherwise run first, and this
            # would then empty the rejoined client's rooms)
            self.workers.submit(session, job)

    def _connect_namespace(self, session: Session, endpoint: str, query: str,
                           now: bool = False, echo: bool = True) -> None:
        """Join ``endpoint``, then run its connect handler: on the job queue,
        or here with ``now`` (the caller is a job of the session). ``echo``:
        the client is told ``1::/ns`` when its handler accepts."""
        if now and endpoint in session.disconnecting:
            # a leave of this namespace was queued after this job: join after it
            self.workers.submit(session, lambda: self._connect_namespace(
                session, endpoint, query, now=True, echo=echo))
            return
        if len(session.namespaces) >= MAX_NAMESPACES_PER_SESSION:
            log_dropped(session, "session %s: too many namespaces, one more refused",
                        session.sid)
            logger.debug("session %s: namespace %r refused", session.sid, endpoint)
            session.send(namespace_refused(endpoint))
            return
        if not session.begin_namespace(endpoint):
            if endpoint in session.leaving and not now:
                # "0::/ns" then "1::/ns" in one read: the leave waits in the
                # job queue, so the join comes after it there
                self.workers.submit(session, lambda: self._connect_namespace(
                    session, endpoint, query, now=True))
            elif echo and session.is_connected(endpoint):
                # asked again (say after an event joined it again, unasked):
                # answered again, as Node did; the handler does not run again
                # (joined: never after a 0::/ns another thread just queued)
                self.send_to_session(session, packet_codec.encode(
                    {"type": "connect", "endpoint": endpoint, "qs": ""}), endpoint, joined=True)
            elif echo and session.namespace_state(endpoint) == "connecting":
                # asked again while its connect handler runs: answered after
                # it, in the job queue (accepted, the echo again; refused, a
                # new attempt), as Node answered each; that handler's job is
                # ahead in the queue, so this ends
                self.workers.submit(session, lambda: self._connect_namespace(
                    session, endpoint, query, now=True))
            return
        session.left_by_client.pop(endpoint, None)

        def job() -> None:
            if session.closed:
                # ended before its connect handler could run (another
                # process's claim closed this copy): no handler, so no pair
                session.refuse_namespace(endpoint)
                self._pop_leave_after_connect(session.sid, endpoint)
                return
            if endpoint in session.disconnecting:
                # the disconnect job of an earlier visit was queued after this
                # one (the two raced): run after it, which empties the rooms
                self.workers.submit(session, job)
                return
            # (in the job: the disconnect job of an earlier visit to this
            # namespace, queued before it, takes the client out of its rooms)
            self.manager.connect(session.sid, endpoint)
            interrupted: BaseException | None = None
            try:
                accepted = self.app.connect(session, endpoint, query)
            except Exception:
                logger.exception("connect handler of %r failed", endpoint)
                accepted = False
            except BaseException as exc:
                # SystemExit or KeyboardInterrupt: refused as well, then raised
                # again (for the job runner). The namespace must not stay
                # "connecting": a repeated 1::/ns waits in the job queue for
                # its connect to end, and would requeue itself for ever
                interrupted, accepted = exc, False
            if accepted:
                logger.debug("session %s joined %r", session.sid, endpoint)
                sent = session.accept_namespace(endpoint, packet_codec.encode(
                    {"type": "connect", "endpoint": endpoint, "qs": ""}) if echo else None)
                # (looked at after the accept: a disconnect() that saw the
                # namespace still connecting has asked by now, or sees it joined)
                leave = self._pop_leave_after_connect(session.sid, endpoint)
                if not sent:
                    self.close_session(session, OUTBOX_OVERFLOW)
                elif session.closed:  # closed while the handler ran: pair it
                    self._leave(session, endpoint)
                elif leave:
                    self.disconnect(session.sid, endpoint)
                return
            logger.debug("session %s refused on %r", session.sid, endpoint)
            self.manager.disconnect(session.sid, endpoint)
            session.refuse_namespace(endpoint)
            # (after the refusal: a disconnect() that saw it still connecting
            # has asked by now, or sees it gone)
            self._pop_leave_after_connect(session.sid, endpoint)
            session.send(namespace_refused(endpoint))
            if endpoint == "":
                self.disconnect(session.sid)
            if interrupted is not None:
                raise interrupted

        if now or (endpoint == "" and self._joins_at_once(session)):
            job()
        else:
            self.workers.submit(session, job)

    def _joins_at_once(self, session: Session) -> bool:
        """Whether the global namespace can be joined on this thread, now: no
        connect handler to run, and no job of the session to come after. The
        client then hears ``1::`` at once, as from Node, and its heartbeats
        flow, even while every handler thread is busy (it would wait for one,
        hear nothing, and give the transport up)."""
        has_handler = getattr(self.app, "has_connect_handler", None)
        if has_handler is None or has_handler(""):
            return False
        with session.lock:
            return not session.jobs_running and not session.jobs

    # -- incoming --------------------------------------------------------

    def receive(self, session: Session, data: str, inline: bool = False) -> None:
        """Decode a payload that arrived from the client and dispatch it.
        Malformed packets are logged and dropped; the session lives on."""
        session.last_seen = self.clock()  # (what session.touch does, inline: every payload)
        if (len(data) > DECODE_AS_JOB_CHARS or session.decoding) and not inline and \
                self.workers.defers_here():
            # On the hub's thread, a large payload is decoded as a job of the
            # session, where the watchdog can hand the hub to another thread
            # while it takes long; what the session sends after it is decoded
            # the same way until it is done, so its packets keep their order.
            with session.lock:
                session.decoding += 1
            self.workers.submit(session, lambda: self._receive_as_job(session, data))
            return
        try:
            # A WebSocket message is most often one packet, not a payload.
            # No count limit: the byte limit bounds a payload (a count adds no
            # protection, the same packets can come in several payloads), and
            # socket.io-client sends every emit made while a POST is under way
            # in one payload, which a burst of emits makes large.
            parts = packet_codec.split_payload(data, None) \
                if data[:1] == packet_codec.FRAME_MARK else (data,) if data else ()
        except packet_codec.PacketError as exc:
            # the codec's message may quote the client's bytes: details at debug only
            log_dropped(session, "session %s: bad payload dropped", session.sid)
            logger.debug("session %s: bad payload: %s", session.sid, exc)
            return
        debug = _debug_enabled(logging.DEBUG)
        for part in parts:
            event = decode_event(part)  # (the common case: no dict, no hop)
            if event is not None:
                if debug:
                    logger.debug("session %s: received %s", session.sid, part)
                endpoint, pid, ack_kind, name, args = event
                self._dispatch(session, endpoint, pid, ack_kind, name, args, _EventJob, inline)
                continue
            try:
                pkt = packet_codec.decode(part)
            except packet_codec.PacketError as exc:
                log_dropped(session, "session %s: bad packet dropped", session.sid)
                logger.debug("session %s: bad packet: %s", session.sid, exc)
                continue
            if debug:
                logger.debug("session %s: received %s", session.sid, part)
            if pkt["type"] == "event":  # the common case, without a hop
                self._handle_event(session, pkt, pkt["endpoint"], inline)
            else:
                self.handle_packet(session, pkt, inline)

    def _receive_as_job(self, session: Session, data: str) -> None:
        try:
            # (inline: decoded on this thread, which runs the session's jobs
            # already; what its packets submit runs right after this job)
            self.workers.collect_next(session, lambda: self.receive(session, data, inline=True))
        finally:
            with session.lock:
                session.decoding -= 1

    def handle_packet(self, session: Session, pkt: dict[str, Any], inline: bool = False) -> None:
        """Act on one decoded packet."""
        kind = pkt["type"]
        endpoint = pkt.get("endpoint", "")
        if kind in ("message", "json", "event"):
            self._handle_event(session, pkt, endpoint, inline)
        elif kind == "heartbeat" or kind == "noop":
            pass  # touch() above already recorded the sign of life
        elif kind == "ack":
            self._handle_ack(session, pkt, endpoint, inline)
        elif kind == "connect":
            if endpoint:
                qs = pkt.get("qs", "").lstrip("?") or session.environ.get("QUERY_STRING", "")
                self._connect_namespace(session, endpoint, qs)
        elif kind == "disconnect":
            # after the handlers of what came before it (they may still wait
            # for a thread): an event and a 0:: can arrive in one read
            if endpoint:
                session.leaving.add(endpoint)
            self.workers.submit(session, lambda: self._client_left(session, endpoint), inline)
        elif kind == "error":
            self.workers.submit(session, lambda: self.app.error(
                session, endpoint, pkt.get("reason", ""), pkt.get("advice", "")), inline)

    def _handle_event(self, session: Session, pkt: dict[str, Any], endpoint: str,
                      inline: bool) -> None:
        pid = pkt.get("id")
        ack_kind = None if pid is None else pkt.get("ack")
        if pkt["type"] == "event":
            self._dispatch(session, endpoint, pid, ack_kind, pkt.get("name"),
                           pkt.get("args", []), _EventJob, inline)
        else:
            self._dispatch(session, endpoint, pid, ack_kind, pkt["type"], [pkt.get("data")],
                           _MessageJob, inline)

    def _dispatch(self, session: Session, endpoint: str, pid: int | None,
                  ack_kind: bool | str | None, name: str | None, args: list[Any],
                  job_class: type[_EventJob], inline: bool) -> None:
        """Queue the handler of an event (``_EventJob``; ``name`` None: its
        JSON was bad) or of a message or json packet (``_MessageJob``, named
        after its type), answering a plain ack (``ack_kind`` True) at once."""
        if ack_kind is True:  # automatic ack, before dispatch (as N does)
            # queued at once, not held with the namespace's packets while its
            # connect handler runs: a refusal drops those, and the client
            # waits for this ack whatever the handler decides
            self.send_to_session(session, packet_codec.encode(
                {"type": "ack", "ackId": pid, "endpoint": endpoint, "args": []}))
        if job_class is _EventJob and (not isinstance(name, str) or name in BLACKLISTED_EVENTS):
            # (bad JSON decodes to an event with no name, as in Node)
            log_dropped(session, "session %s: an event %s dropped", session.sid,
                        "named 'disconnect'" if name in BLACKLISTED_EVENTS
                        else "without a name (bad JSON)" if name is None
                        else "whose name is not a string")
            return
        ack_id = pid if ack_kind == "data" else None
        self.workers.submit(session, job_class(self, session, endpoint, name, args, ack_id).run,
                            inline)

    def _handle_ack(self, session: Session, pkt: dict[str, Any], endpoint: str,
                    inline: bool) -> None:
        callback = session.pop_callback(endpoint, pkt["ackId"])
        if callback is None:
            return
        args = pkt.get("args", [])
        self.workers.submit(session, lambda: self.app.callback(session, endpoint, callback, args),
                            inline)

    # -- outgoing --------------------------------------------------------

    def upload_received(self, session: Session, size: int) -> bool:
        """Count a polling upload's ``size`` bytes, just queued (``receive``),
        until its handlers have run. True when the session's uploads waiting
        for them are past the inbound limit: the upload's answer should then
        wait for them (``when_handled``), and so the client's next upload."""
        limit = max(INBOUND_LIMIT, self.options.max_http_buffer_size)
        with session.lock:
            session.uploads_waiting += size
            over = session.uploads_waiting > limit

        def handled() -> None:
            with session.lock:
                session.uploads_waiting -= size

        self.workers.submit(session, handled)
        return over

    def when_handled(self, session: Session, then: Callable[[], None]) -> None:
        """Call ``then`` once the handlers of what the session has received
        so far have run (on the thread that runs the session's jobs)."""
        self.workers.submit(session, then)

    def send_to_session(self, session: Session, encoded: str, endpoint: str | None = "",
                        joined: bool = False) -> None:
        """Queue an encoded packet (with ``joined``, only while the client is
        in ``endpoint``); close the session if its outbox overflows."""
        if not session.send(encoded, endpoint, joined):
            self.outbox_overflow(session)

    def outbox_overflow(self, session: Session) -> None:
        """The session's outbox went past its limit: close it (its client
        stopped reading, or cannot keep up)."""
        logger.warning("session %s: outbox over %d bytes, closing", session.sid,
                       self.options.max_outbox_bytes)
        # what waits is dropped: the client has stopped reading (or cannot
        # keep up), and its transport or the next poll would otherwise hold
        # those bytes, a second time encoded, until close_timeout
        session.take_outbox()
        self.close_session(session, OUTBOX_OVERFLOW)

    def _deliver(self, sid: str, endpoint: str, encoded: str) -> None:
        session = self.sessions.get(sid)
        # (a client that left the namespace stays in its rooms while its
        # disconnect handler runs, but gets nothing more there)
        if session is not None:
            self.send_to_session(session, encoded, endpoint, joined=True)

    def emit_packet(self, pkt: dict[str, Any], namespace: str, to: str | Iterable[str] | None = None,
                    skip_sid: str | Iterable[str] | None = None,
                    callback: Callable[..., Any] | None = None) -> None:
        """Send a packet dict to a sid, a room, several rooms or everyone.

        With ``callback`` the packet asks for an ack (``send_with_callback``):
        it must not reach several clients (``ValueError``); reaching none, it
        is not sent (with a message queue, ``to`` must then be a sid).
        """
        pkt["endpoint"] = namespace
        if callback is None:
            encoded = packet_codec.encode(pkt)
            count = self.manager.emit_encoded(encoded, namespace, to, skip_sid)
            logger.debug("emit to %r on %r (%d recipients): %s", to, namespace, count, encoded)
            return
        if skip_sid is not None and not isinstance(skip_sid, str):
            skip_sid = listed_names(skip_sid, "skip_sid")  # (read twice)
        targets = self.manager.recipients(namespace, to, skip_sid)
        if not targets:
            skipped = skip_sid is not None and (to == skip_sid if isinstance(skip_sid, str)
                                                else to in skip_sid)
            if self.cluster is not None and isinstance(to, str) and not skipped and \
                    self.cluster.emit_with_callback(pkt, namespace, to, callback):
                return  # a client of another process, perhaps: that process sends it
            if self.cluster is None or skipped:
                # as without callback=, nothing to send: the client left (a
                # background task cannot tell beforehand), and its callback never runs
                logger.debug("emit with callback to %r on %r: no recipient", to, namespace)
                return
        if len(targets) != 1:
            raise ValueError("callback= needs exactly one recipient, this emit reaches "
                             f"{len(targets)}" + (" here (across processes, callback= "
                                                  "takes a sid)" if self.cluster else ""))
        session = self.get_session(targets[0])
        if session is None or namespace not in session.namespaces:
            return  # (gone, or left the namespace: its disconnect handler runs)
        self.send_with_callback(session, pkt, namespace, callback)

    def send_with_callback(self, session: Session, pkt: dict[str, Any], namespace: str,
                           callback: Callable[..., Any],
                           kept: Callable[[], None] | None = None) -> None:
        """Send ``pkt`` to ``session`` asking for an ack (a data ack for an
        event, a plain one for a message) whose args ``callback`` gets.
        ``kept()`` runs once the session has the callback (or, ended, has
        told it no answer will come), before the packet is queued (whose
        queueing may run a handler: the test client's)."""
        pkt["id"] = session.add_callback(namespace, callback)
        if kept is not None:
            kept()
        # An event asks for a data ack, as the API says. A message or JSON
        # message asks for a plain ack, as Node's and gevent-socketio's
        # ``send`` did: socket.io-client 0.9.16 answers that by itself, where
        # it would hand a data ack to the app's 'message' listener, which
        # (written for those servers) never calls it
        pkt["ack"] = "data" if pkt["type"] == "event" else True
        try:
            encoded = packet_codec.encode(pkt)
        except packet_codec.PacketError:
            session.unsent_callback(namespace, pkt["id"])
            raise
        logger.debug("session %s: emit with callback: %s", session.sid, encoded)
        self.send_to_session(session, encoded, namespace, joined=True)

    # -- timers ----------------------------------------------------------

    def monitor_step(self, now: float) -> None:
        """One pass of the timers over every session."""
        report_expired()  # (the counts of floods of dropped input that stopped)
        opts = self.options
        with self._lock:
            for sid, (_, since) in list(self._draining.items()):
                if now - since > opts.close_timeout:
                    del self._draining[sid]
            due = [t for t, when in self._closing if now >= when]
            if due:
                self._closing = [(t, when) for t, when in self._closing if now < when]
            writes = list(self._writes) if self._writes else ()
        for transport in due:
            transport.abort()
        for write in writes:
            write.check(now)
        for session in list(self.sessions.values()):
            transport = session.transport
            if session.detached_since is not None:
                limit = opts.close_timeout
                if not session.namespaces:
                    limit = min(limit, UNUSED_HANDSHAKE_TIMEOUT)
                if now - session.detached_since > limit:
                    self.close_session(session, CLOSE_TIMEOUT)
            elif transport is not None and transport.persistent:
                # A session whose handler still runs (or waits for a thread) is
                # not timed out: in thread mode that handler holds the thread
                # that would read the client's heartbeat answers.
                if now - session.last_seen > opts.heartbeat_timeout and \
                        not session.jobs_running:
                    # a thread-mode WebSocket may have heard from the client
                    # while its thread was busy writing (no other transport
                    # reads on another thread than the one that counts it)
                    heard = getattr(transport, "heard_from_client", None)
                    if heard is not None and heard():
                        session.touch(now)
                    else:
                        self.close_session(session, HEARTBEAT_TIMEOUT)
                elif now - session.last_heartbeat >= opts.heartbeat_interval:
                    session.last_heartbeat = now
                    # (never held back: a heartbeat belongs to no namespace,
                    # not even the global one while its connect handler runs)
                    self.send_to_session(session, HEARTBEAT, None)

    def watch_write(self, write: Any) -> None:
        """Have the monitor call ``write.check(now)`` on each pass, until
        ``unwatch_write``: for an answer a WSGI server's thread writes, which
        a client that stopped reading would hold for as long as it likes."""
        with self._lock:
            self._writes.add(write)

    def unwatch_write(self, write: Any) -> None:
        """The answer is written (or abandoned): stop checking it."""
        with self._lock:
            self._writes.discard(write)

    # -- the process stops (see stopping.py) ------------------------------

    def serving(self) -> bool:
        """Whether ``go_away`` has sessions to end when the process stops:
        not once ``shutdown`` was called, nor for the test client's server."""
        return self.stop_with_process and not self._stop.is_set()

    def go_away(self) -> None:
        """This process stops serving: end every session so that its client
        reconnects to a process that serves, the disconnect handlers running
        as for a client that left. From now on no handshake is taken; a
        later call ends the sessions that came meanwhile."""
        with self._lock:
            first = not self.going_away
            self.going_away = True
            sessions = [s for s in self.sessions.values() if not s.closed]
            self._going.extend(sessions)
        if first and (sessions or self._had_sessions):
            # (not said by a process that never took a client: a script or a
            # ``flask`` command that only imported the app)
            logger.info("the server stops: %d sessions end, their clients reconnect "
                        "elsewhere", len(sessions))
        for session in sessions:
            self.close_session(session, GOING_AWAY)

    def gone(self) -> bool:
        """After ``go_away``: whether every session it ended has run its
        disconnect handlers and been let go by its transport."""
        return not self.left_behind()

    def left_behind(self) -> int:
        """How many of the sessions ``go_away`` ended are not gone yet."""
        return sum(1 for s in self._going if s.jobs_running or s.transport is not None)

    def shutdown(self) -> None:
        """Stop the monitor and the worker threads (sessions are left as they are)."""
        self._stop.set()
        self.workers.stop()
        if self.cluster is not None:
            self.cluster.stop()


_after_fork_reset: weakref.WeakSet[Server] = weakref.WeakSet()


def _reset_servers_in_child() -> None:
    for server in list(_after_fork_reset):
        server.reset_after_fork()


os.register_at_fork(after_in_child=_reset_servers_in_child)

__all__ = ["Ack", "Application", "IllegalTransition", "Options", "Server"]


def _monitor_loop(ref: weakref.ref[Server], stop: threading.Event) -> None:
    """The monitor thread of the server ``ref`` names: its timers, and a
    gunicorn worker's stop. It ends with ``shutdown``, or once the server is
    gone (nothing else held it)."""
    server = ref()
    if server is None:
        return
    opts = server.options
    tick = min(opts.heartbeat_interval, opts.heartbeat_timeout, opts.close_timeout) / 5
    tick = max(0.05, min(1.0, tick))
    # (looked up here, in the process that serves: the monitor starts
    # with the first session, after a gunicorn worker set its signals)
    worker = stopping.gunicorn_worker()
    # a stopping worker must stop taking handshakes at once (a session made
    # then would end with it): its flag is looked at more often than the
    # timers, which cost a pass over every session
    look = min(tick, stopping.STOP_LOOK_SECONDS) if worker is not None else tick
    next_step = time.monotonic() + tick
    del server  # (held only while it works, below)
    while not stop.wait(look):
        server = ref()
        if server is None:
            return
        try:
            if not server.going_away and stopping.worker_stopping(worker):
                server.go_away()
            if time.monotonic() >= next_step:
                next_step = time.monotonic() + tick
                server.monitor_step(server.clock())
        except Exception:  # the monitor must outlive any one bad session
            logger.exception("monitor pass failed")
        del server
