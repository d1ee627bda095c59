"""One client's Socket.IO 0.9 session: its state, outbox, namespaces and acks.

Rules of this module:

* Every change of a session's state happens here, under the session's lock, and
  follows the ``TRANSITIONS`` table.
* It knows nothing about sockets, HTTP or Flask. A transport is anything with a
  ``wake()`` method and a ``persistent`` flag (see ``Transport``); the session
  calls ``wake()`` when the outbox gains data or the session closes, and the
  transport drains the outbox on its own thread.
* Emitting only appends to the outbox, so it never blocks on a slow client. The
  outbox has a byte limit; past it ``send`` reports an overflow and the caller
  closes the session.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .droplog import DropCounter

try:  # (the compiled build's class options; see native.py)
    from mypy_extensions import mypyc_attr
except ImportError:
    from .native import mypyc_attr


class State(enum.Enum):
    """Life stages of a session."""

    #: the handshake was answered; no transport has opened yet
    HANDSHAKEN = "handshaken"
    #: a transport opened and the global namespace was connected
    CONNECTED = "connected"
    #: over; the sid is no longer valid
    CLOSED = "closed"


#: (state, event) -> new state. Any pair not listed is illegal.
TRANSITIONS: dict[tuple[State, str], State] = {
    (State.HANDSHAKEN, "open"): State.CONNECTED,
    (State.HANDSHAKEN, "close"): State.CLOSED,
    (State.CONNECTED, "close"): State.CLOSED,
}


@mypyc_attr(native_class=False)  # (a compiled class cannot extend RuntimeError)
class IllegalTransition(RuntimeError):
    """An event that the session's current state does not allow."""


class Transport(Protocol):
    """What a session needs from the transport that currently carries it."""

    #: websocket, flashsocket and htmlfile stay open: heartbeats flow over them
    #: and their loss ends the session at once.
    persistent: bool

    def wake(self) -> None:
        """The outbox gained data, or the session closed."""


class Session:
    """The server-side state of one Socket.IO 0.9 client.

    :param sid: the session id given in the handshake.
    :param environ: the WSGI environ of the handshake request, kept for the
                    application (its request context, cookies, query).
    :param now: the clock reading at creation.
    :param max_outbox_bytes: the most encoded text that may wait for a slow
                             client before the session is closed.
    """

    def __init__(self, sid: str, environ: dict[str, Any], now: float,
                 max_outbox_bytes: int = 16_000_000) -> None:
        self.sid = sid
        self.environ = environ
        self.state = State.HANDSHAKEN
        #: True once the session is over (``state`` is CLOSED); read on every
        #: packet, so kept as a plain attribute
        self.closed = False
        self.created_at = now
        #: when the client last showed life (any packet or poll)
        self.last_seen = now
        #: when the server last wrote a heartbeat
        self.last_heartbeat = now
        #: when the session lost its last transport (None while one is open)
        self.detached_since: float | None = now
        self.transport: Transport | None = None
        self.close_reason: str | None = None
        # LOCK_NOTE: the code that runs for every packet takes this lock (and
        # the other per-packet locks) with acquire() and a finally: release(),
        # not ``with``, which looks up __enter__ and __exit__ each time and
        # costs some 650 more CPU instructions per use (callgrind, CPython
        # 3.11); a few uses per packet add up to several per cent of an ack.
        self.lock = threading.Lock()
        self.max_outbox_bytes = max_outbox_bytes
        self._outbox: list[str] = []
        self._outbox_bytes = 0
        #: endpoint -> list of packets held while its connect handler runs;
        #: an endpoint that is in ``namespaces`` but not here is connected.
        self._held: dict[str | None, list[str]] = {}
        #: endpoints joined (or being joined) by this client, in the order it
        #: joined them (a dict used as an ordered set: the disconnect handlers
        #: of a session that ends run in that order, the same in every process)
        self.namespaces: dict[str, None] = {}
        #: namespaces the client left whose leaving waits in the job queue
        self.leaving: set[str] = set()
        #: namespaces the server left whose disconnect handler waits in the
        #: job queue
        self.disconnecting: set[str] = set()
        #: namespaces the client left itself (``0::/ns``), which its next
        #: event there joins again, as Node went on serving them; the latest
        #: MAX_NAMESPACES_PER_SESSION, oldest first (a dict for its order)
        self.left_by_client: dict[str, None] = {}
        self._ack_ids = itertools.count(1)
        self._callbacks: dict[tuple[str, int], Callable[..., Any]] = {}
        #: per-session data for the application (e.g. the Flask session copy)
        self.app_data: dict[str, Any] = {}
        # handler jobs of this session, run one at a time (see workers.py)
        self.jobs: deque[Callable[[], None]] = deque()
        self.jobs_running = False
        #: payloads queued to be decoded as jobs (``Server.receive``)
        self.decoding = 0
        #: while such a job decodes: (its thread, the jobs it submits), which
        #: run right after it (``Workers.submit``)
        self.collecting: tuple[int, list[Callable[[], None]]] | None = None
        # (29 attributes: CPython 3.11 keeps up to 29 in the layout that its
        # instances share; a 30th would make every attribute read slower)
        #: bytes of polling uploads whose handlers have not all run yet
        self.uploads_waiting = 0
        #: the log lines about its dropped input (``droplog``), from the first
        self.drops: DropCounter | None = None
        #: a transport took the packets the session left when it closed (its 0::)
        self.farewell_taken = False

    # -- state -----------------------------------------------------------

    def _transition(self, event: str) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            error = IllegalTransition(
                f"event {event!r} is not allowed in state {self.state.value}")
            error.__cause__ = None  # (``from None``, which compiled code would not keep)
            raise error
        self.closed = self.state is State.CLOSED

    def attach(self, transport: Transport, now: float) -> tuple[bool, Transport | None]:
        """Make ``transport`` the session's downstream channel.

        A closed session accepts a transport only to hand over its last
        packets (say the ``0::`` of a server-side disconnect).

        :return: ``(opened, previous)``: ``opened`` is True the first time a
                 transport attaches (the caller then connects the global
                 namespace); ``previous`` is the transport it replaced, which
                 the caller must end.
        """
        with self.lock:
            if self.closed:
                if not self._outbox:
                    raise IllegalTransition("the session is closed")
                opened = False
            else:
                opened = self.state is State.HANDSHAKEN
                if opened:
                    self._transition("open")
                self.detached_since = None
                self.last_seen = now
            previous, self.transport = self.transport, transport
            has_data = bool(self._outbox)
        if has_data:
            transport.wake()
        return opened, previous

    def replace(self, old: Transport, new: Transport) -> bool:
        """Hand the session from ``old`` to ``new`` if ``old`` is still its
        transport (atomically: a newer transport, attached meanwhile, wins).
        A poll moving from its WSGI thread to the hub uses this, so that the
        session is never without a transport in between."""
        with self.lock:
            if self.transport is not old:
                return False
            self.transport = new
        return True

    def release(self, transport: Transport, now: float) -> list[str] | None:
        """Detach ``transport`` (if it is still the current one) and hand it
        whatever the outbox holds, atomically, so no packet falls between.
        None when another transport had replaced it: it takes nothing."""
        with self.lock:
            if self.transport is not transport:
                return None
            self.transport = None
            self.detached_since = now
            return self._take()

    def detach(self, transport: Transport, now: float) -> None:
        """Detach ``transport`` without taking the outbox: its client went
        away before it could be answered, so the packets wait for the next."""
        with self.lock:
            if self.transport is transport:
                self.transport = None
                self.detached_since = now

    def close(self, reason: str, last: str | None = None) -> bool:
        """Mark the session closed. Returns False if it already was.

        :param last: a packet to queue as the session's last (its ``0::``),
                     in the same step: a packet another thread sends
                     meanwhile can come before it, never after.
        """
        with self.lock:
            if self.closed:
                return False
            if last is not None:
                self._outbox.append(last)
                self._outbox_bytes += len(last)
            self._transition("close")
            self.close_reason = reason
            transport = self.transport
            dropped = list(self._callbacks.values())
            self._callbacks.clear()
        if transport is not None:
            transport.wake()
        _tell_unanswered(dropped)
        return True

    def touch(self, now: float) -> None:
        """The client showed life."""
        self.last_seen = now

    # -- outbox ----------------------------------------------------------

    def send(self, encoded: str, endpoint: str | None = "", joined: bool = False) -> bool:
        """Queue one encoded packet for the client.

        Packets for a namespace whose connect handler is still running are
        held back, so that the ``1::/ns`` echo goes out before them. A packet
        of the transport (a heartbeat) has ``endpoint`` None: never held.

        :param joined: drop the packet unless the client is in ``endpoint``,
                       checked here under the lock: an emit from another
                       thread that races the namespace's ``0::/ns`` (queued
                       by ``leave_namespace`` under the same lock) never
                       follows it.
        :return: False when the outbox overflowed (the caller must close the
                 session); True otherwise, including for a closed session,
                 where the packet is dropped.
        """
        lock = self.lock
        lock.acquire()  # (not ``with``: see LOCK_NOTE)
        try:
            if self.closed or (joined and endpoint not in self.namespaces):
                return True
            if self._held:  # (most often empty: no namespace is connecting)
                held = self._held.get(endpoint)
                if held is not None:
                    held.append(encoded)
                    return True
            self._outbox.append(encoded)
            self._outbox_bytes += len(encoded)
            if self._outbox_bytes > self.max_outbox_bytes:
                return False
            transport = self.transport
        finally:
            lock.release()
        if transport is not None:
            transport.wake()
        return True

    def _take(self) -> list[str]:
        packets, self._outbox = self._outbox, []
        self._outbox_bytes = 0
        return packets

    def take_outbox(self, transport: Transport | None = None) -> list[str]:
        """Remove and return every queued packet, oldest first.

        :param transport: when given, packets are handed over only if it is
                          still the session's transport (checked atomically,
                          so a replaced transport never takes the new one's).
        """
        lock = self.lock
        lock.acquire()  # (not ``with``: see LOCK_NOTE)
        try:
            if transport is not None and self.transport is not transport:
                return []
            packets, self._outbox = self._outbox, []  # (what _take does, inline)
            self._outbox_bytes = 0
            return packets
        finally:
            lock.release()

    def outbox_size(self) -> int:
        """Encoded characters waiting in the outbox."""
        return self._outbox_bytes

    def has_outbox(self) -> bool:
        """True when packets are waiting."""
        return bool(self._outbox)

    # -- namespaces ------------------------------------------------------

    def begin_namespace(self, endpoint: str) -> bool:
        """Start joining ``endpoint``; packets for it are held until
        ``accept_namespace`` or ``refuse_namespace``. False if already joined."""
        with self.lock:
            if endpoint in self.namespaces or self.closed:
                return False
            self.namespaces[endpoint] = None
            self._held[endpoint] = []
            return True

    def accept_namespace(self, endpoint: str, echo: str | None) -> bool:
        """Finish joining: queue ``echo`` (the connect packet; None: none)
        then the held packets, in the step that stops holding them (an emit
        or a ``0::/ns`` from another thread goes after them, never between).
        Returns False on outbox overflow."""
        with self.lock:
            held = self._held.pop(endpoint, [])
            if self.closed or endpoint not in self.namespaces:
                return True  # (left while its handler ran: no echo, nothing held)
            packets = held if echo is None else [echo, *held]
            self._outbox.extend(packets)
            self._outbox_bytes += sum(len(encoded) for encoded in packets)
            overflow = self._outbox_bytes > self.max_outbox_bytes
            transport = self.transport if packets else None
        if transport is not None:
            transport.wake()
        return not overflow

    def refuse_namespace(self, endpoint: str) -> None:
        """Give up joining ``endpoint``; held packets are dropped."""
        with self.lock:
            self._held.pop(endpoint, None)
            self.namespaces.pop(endpoint, None)
            dropped = self._drop_callbacks(endpoint)
        _tell_unanswered(dropped)

    def leave_namespace(self, endpoint: str, farewell: str | None = None,
                        handler_queued: bool = False, connected_only: bool = False) -> bool:
        """Leave ``endpoint``, queueing ``farewell`` (the server's ``0::/ns``)
        in the same step. Returns True if the client had joined it.

        :param handler_queued: its disconnect handler will run in the job
                               queue: a join queued meanwhile waits for it
                               (``disconnecting``).
        :param connected_only: leave nothing while it is connecting (its
                               connect handler has still to run).
        """
        with self.lock:
            if endpoint not in self.namespaces or (connected_only and endpoint in self._held):
                return False
            self._held.pop(endpoint, None)
            self.namespaces.pop(endpoint, None)
            if handler_queued:
                self.disconnecting.add(endpoint)
            dropped = self._drop_callbacks(endpoint)
            transport = None
            if farewell is not None and not self.closed:
                self._outbox.append(farewell)
                self._outbox_bytes += len(farewell)
                transport = self.transport
        if transport is not None:
            transport.wake()
        _tell_unanswered(dropped)
        return True

    def _drop_callbacks(self, endpoint: str) -> list[Callable[..., Any]]:
        # (under the lock) the client left ``endpoint``: its acks there never come
        return [self._callbacks.pop(key) for key in list(self._callbacks) if key[0] == endpoint]

    def namespace_state(self, endpoint: str) -> str | None:
        """``"connected"``, ``"connecting"`` (its connect handler runs) or
        None, read in one step (another thread may be joining or leaving)."""
        with self.lock:
            if endpoint not in self.namespaces:
                return None
            return "connecting" if endpoint in self._held else "connected"

    def is_connected(self, endpoint: str) -> bool:
        """True when ``endpoint`` is joined and its connect handler accepted."""
        return endpoint in self.namespaces and endpoint not in self._held

    # -- acks ------------------------------------------------------------

    def add_callback(self, endpoint: str, callback: Callable[..., Any]) -> int:
        """Remember ``callback`` for the client's ack; returns the packet id.
        A session that has ended, or left ``endpoint``, keeps nothing: no ack
        can come (and a ``ForwardingCallback`` is told so at once)."""
        ack_id = next(self._ack_ids)
        with self.lock:
            kept = not self.closed and endpoint in self.namespaces
            if kept:
                self._callbacks[(endpoint, ack_id)] = callback
        if not kept:
            _tell_unanswered([callback])
        return ack_id

    def pop_callback(self, endpoint: str, ack_id: int) -> Callable[..., Any] | None:
        """The callback waiting for ``ack_id`` on ``endpoint``, removed; or None."""
        with self.lock:
            return self._callbacks.pop((endpoint, ack_id), None)

    def unsent_callback(self, endpoint: str, ack_id: int) -> None:
        """The packet of ``ack_id`` could not be sent (it could not be
        encoded): its callback goes, and can never be answered (a client's
        ack of that id would otherwise run it)."""
        callback = self.pop_callback(endpoint, ack_id)
        if callback is not None:
            _tell_unanswered([callback])


def _tell_unanswered(callbacks: list[Callable[..., Any]]) -> None:
    """Callbacks whose client can no longer answer: those that want to know
    (``ForwardingCallback``) are told."""
    for callback in callbacks:
        if isinstance(callback, ForwardingCallback):
            callback.unanswered()


@mypyc_attr(allow_interpreted_subclasses=True)  # (cluster.ForwardedAck)
class ForwardingCallback:
    """A callback that stands for one kept elsewhere (``cluster.ForwardedAck``:
    in another process, which forwarded the packet): ``unanswered`` tells it
    that the client can no longer answer, so that the other side forgets it."""

    __slots__ = ()

    def unanswered(self) -> None:
        raise NotImplementedError
