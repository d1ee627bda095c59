"""A server's part in an application of several processes (``message_queue``).

``RedisManager`` carries rooms and emits between the processes. This module
holds what concerns sessions: which process holds each one, and the
operations on another process's session that go through the channel.

* A session is held by exactly one process. Its handshake is recorded in
  Redis; the first transport request, in whichever process it arrives,
  claims it (``claim``, ``adopt``), and the claimer publishes the claim so
  that the handshake's process drops its unused copy (``drop_unclaimed``).
* A POST, a ``?disconnect`` or ``disconnect(sid=)`` for a session another
  process holds is forwarded to it; a long poll there cannot be (see
  ``transports._held_elsewhere``).
* An emit with ``callback=`` to another process's client is sent by that
  process, which forwards the client's ack back to the asking one.

Imports: session, workers, the standard library. Never flask or redis (the
manager is handed in).
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import packet as packet_codec
from .session import ForwardingCallback, Session
from .workers import JobQueue

if TYPE_CHECKING:
    from .redis_manager import RedisManager
    from .server import Server

logger = logging.getLogger("flask_sio09")

#: why a session handshaken here closes when another process claimed it
CLAIMED_ELSEWHERE = "claimed by another process"
#: why a session claimed here without its handshake's record (Redis lost it)
#: closes when another process says it had claimed it before
CLAIMED_BEFORE = "claimed by another process before"
#: what ``Server.new_session`` makes a sid of (``secrets.token_urlsafe(15)``)
SID_PATTERN = re.compile(r"[A-Za-z0-9_-]{20}")


class ForwardedAck(ForwardingCallback):
    """The callback of a packet sent here for another process
    (``emit_with_callback`` there): the client's ack goes back to that
    process. When the client can no longer answer (it left the namespace, its
    session ended), the session calls ``unanswered`` and that process forgets its
    callback, which would otherwise wait there for ever."""

    __slots__ = ("manager", "origin", "callback_id")

    def __init__(self, manager: RedisManager, origin: Any, callback_id: Any) -> None:
        self.manager = manager
        self.origin = origin
        self.callback_id = callback_id

    def __call__(self, *args: Any) -> None:
        self.manager.publish({"op": "ack", "to": self.origin, "cb": self.callback_id,
                              "args": list(args)})

    def unanswered(self) -> None:
        """The client will not answer. (Published by the manager's own thread:
        the caller may be the hub's, which must not wait for a slow Redis.)"""
        message = {"op": "forget_callback", "to": self.origin, "cb": self.callback_id}
        self.manager.later(lambda: self.manager.publish(message))


class Cluster:
    """The sessions of ``server`` among the application's processes.

    :param server: this process's server.
    :param manager: its Redis manager (the channel to the other processes).
    :param unused_handshake_seconds: how long a handshake may wait for its
                                     first transport request.
    """

    def __init__(self, server: Server, manager: RedisManager,
                 unused_handshake_seconds: float) -> None:
        self.server = server
        self.manager = manager
        self.unused_handshake_seconds = unused_handshake_seconds
        #: sids handshaken here whose first transport request has not come yet
        self.unclaimed: set[str] = set()
        #: sids claimed here whose handshake record Redis had lost -> until
        #: when another process's word that it claimed them first counts
        self.claimed_unrecorded: dict[str, float] = {}
        self._claim_lock = threading.Lock()
        #: callbacks answered by other processes' clients, run in order
        self._callback_jobs = JobQueue("(message queue callbacks)")
        self._exit_hooked = False

    def start(self) -> None:
        """Subscribe, once per process (later calls return at once)."""
        if self.manager.started():
            return
        self.manager.start()
        if not self._exit_hooked:
            self._exit_hooked = True
            # a worker that exits (gunicorn's HUP, TERM) lets go of its sessions'
            # records, so that a request for one reaching another process is not
            # forwarded to no one; after a crash they expire (redis_manager.py)
            atexit.register(self._forget_all)

    def stop(self) -> None:
        """Stop listening; the sessions' records stay (the server shuts down
        without closing them)."""
        atexit.unregister(self._forget_all)
        self.manager.stop()

    def _forget_all(self) -> None:
        # the open sessions' records with those of the sessions that ended
        # (queued, or kept while Redis was away): one round trip, so that an
        # exit while Redis stalls waits for one timeout, not one per session
        self.manager.forget_later(sid for sid, session in list(self.server.sessions.items())
                                  if not session.closed)
        self.manager.run_later_now()

    def reset_after_fork(self) -> None:
        """In a forked child: a new identity and connections."""
        self._claim_lock = threading.Lock()
        self.manager.reset_after_fork()

    # -- which process holds a session -----------------------------------------

    def handshaken(self, sid: str, query: str = "") -> None:
        """A handshake made here (``query``: its query string): its transport
        may reach another process, once Redis has its record. Unrecorded
        (Redis away or refusing writes), it is this process's alone: a claim
        would find no record and take it for another process's (a full
        ``maxmemory`` still lets the claim run and find nothing)."""
        self.unclaimed.add(sid)
        if not self.manager.record_handshake(sid, self.unused_handshake_seconds, query):
            with self._claim_lock:
                self.unclaimed.discard(sid)

    def claim(self, session: Session) -> bool:
        """A session handshaken here meets its first transport request: hold
        it, unless another process's transport request claimed it first."""
        with self._claim_lock:  # one claim per session, whichever thread asks
            if session.sid not in self.unclaimed:
                return not session.closed  # decided by another thread
            self.unclaimed.discard(session.sid)
            claimed = self.manager.claim(session.sid, own=True)
            if claimed == "unrecorded":
                # another process may have claimed it before the record went
                # (a flush): its word, on the channel, is awaited a while
                now = time.monotonic()
                unrecorded = self.claimed_unrecorded
                while unrecorded and next(iter(unrecorded.values())) < now:
                    del unrecorded[next(iter(unrecorded))]
                unrecorded[session.sid] = now + self.unused_handshake_seconds
        if claimed is not False:  # (None: Redis is away; serve it here)
            return True
        logger.info("session %s: held by another process; this copy dropped", session.sid)
        self.server.close_session(session, CLAIMED_ELSEWHERE)  # never opened: no handler
        return False

    def adopt(self, sid: str, environ: Callable[[], dict[str, Any]]) -> Session | None:
        """Hold here a session another process handshook, if no process holds it yet."""
        if not SID_PATTERN.fullmatch(sid) or not self.manager.claim(sid):
            return None
        adopted = environ()
        # the handshake's query, as the session of the handshake's process has
        # it (its environ is the handshake's): a client may leave it off the
        # transport's URL (socketIO-client does), and the connect handler and
        # request.args must see it whichever process the transport reaches
        query = self.manager.handshake_query(sid)
        if query is not None:
            adopted["QUERY_STRING"] = query
        session = self.server.add_session(sid, adopted)
        if session is None:  # (claim() is once per sid: cannot happen)
            return None
        logger.info("session %s: handshaken by another process, held here", sid)
        # the handshake's process drops its unused copy now rather than when it
        # next looks it up (a disconnect(sid=) there would otherwise find it)
        self.manager.publish({"op": "claimed", "sid": sid})
        return session

    def drop_unclaimed(self, sid: str) -> None:
        """Another process claimed a session handshaken here: drop this copy."""
        session = self.server.sessions.get(sid)
        if session is None:
            return
        with self._claim_lock:
            claimed_before = self.claimed_unrecorded.pop(sid, 0.0) >= time.monotonic()
            if claimed_before:
                # claimed here without its record, which the other process's
                # claim had taken before Redis lost it: that claim stands
                logger.info("session %s: claimed by another process before; this "
                            "copy closed", sid)
                reason = CLAIMED_BEFORE
            elif sid not in self.unclaimed:
                return  # claimed here after all, or dropped already
            else:
                reason = CLAIMED_ELSEWHERE  # never opened: no handler
            self.unclaimed.discard(sid)
        self.server.close_session(session, reason)

    def session_closed(self, sid: str, reason: str) -> None:
        """A session of this process ended: its records go (unless another
        process claimed it: the records are then that process's)."""
        if reason != CLAIMED_ELSEWHERE:
            # (only this process's own records; on the manager's thread: the
            # caller may be the hub's, which must not wait for a slow Redis)
            self.manager.forget_later([sid])
        self.unclaimed.discard(sid)

    def held_elsewhere(self, sid: str) -> bool:
        """Whether another process holds session ``sid``."""
        return SID_PATTERN.fullmatch(sid) is not None and self.manager.held_elsewhere(sid)

    # -- operations on another process's session ---------------------------------

    def forward_payload(self, sid: str, data: str) -> bool:
        """A payload POSTed here for a session another process holds; False
        when it could not be published (Redis away, or too large: logged)."""
        return self.manager.publish({"op": "feed", "sid": sid, "data": data})

    def forward_disconnect(self, sid: str, namespace: str) -> None:
        """``disconnect(sid=)`` for a session that another process may hold."""
        self.manager.publish({"op": "disconnect", "sid": sid, "ns": namespace})

    def forward_refused_upload(self, sid: str) -> None:
        """A POST too large for a session that another process holds: that
        process ends it as ``Server.refuse_upload`` does."""
        self.manager.publish({"op": "refuse_upload", "sid": sid})

    def emit_with_callback(self, pkt: dict[str, Any], namespace: str, sid: str,
                           callback: Callable[..., Any]) -> bool:
        """Have the process that holds ``sid`` send ``pkt`` and forward the
        client's ack here; False when ``sid`` is not a sid (a room: across
        processes ``callback=`` needs one client, named by its sid). True
        also when this process holds ``sid`` outside ``namespace``: there is
        nobody to send it to."""
        if not SID_PATTERN.fullmatch(sid):
            return False
        session = self.server.sessions.get(sid)
        if session is not None and not session.closed and sid not in self.unclaimed:
            # this process's client, not in the namespace: as in one process,
            # nothing is sent (the caller returns)
            return True
        # Encoded here first, as for a client of this process: what cannot be
        # sent raises PacketError now (not in the other process, or as a
        # TypeError of the channel's JSON, which writes a Decimal as the
        # codec does)
        packet_codec.encode({**pkt, "id": 1, "ack": "data" if pkt.get("type") == "event" else True})
        # the answer comes through the channel: listen, if this process has
        # not yet (it subscribes with its first session)
        self.start()
        # Kept until the answer, or word that none will come, or, when no
        # process takes the question (the client is gone), for a while
        self.manager.publish_with_callback({"op": "emit_callback", "sid": sid,
                                            "ns": namespace, "pkt": pkt},
                                           namespace, callback)
        return True

    # -- messages from the other processes ---------------------------------------

    def apply(self, message: dict[str, Any]) -> None:
        """A message from another process that concerns sessions (the
        manager applies the room operations itself)."""
        op = message["op"]
        if op == "disconnect":
            sid, namespace = message["sid"], message["ns"]
            if isinstance(sid, str) and isinstance(namespace, str):
                self.server.disconnect(sid, namespace, forward=False)
        elif op == "refuse_upload":
            sid = message["sid"]
            session = self.server.sessions.get(sid) if isinstance(sid, str) else None
            if session is not None and not session.closed:
                self.server.refuse_upload(session)
        elif op == "claimed":
            if isinstance(message["sid"], str):
                self.drop_unclaimed(message["sid"])
        elif op == "feed":
            sid, data = message["sid"], message["data"]
            session = self.server.sessions.get(sid) if isinstance(sid, str) else None
            if session is not None and isinstance(data, str) and not session.closed:
                self.server.receive(session, data)
        elif op == "emit_callback":
            self._emit_for_callback(message)
        elif op == "ack":
            if message.get("to") == self.manager.host_id:
                self._run_callback(message)
        elif op == "callback_taken":
            if message.get("to") == self.manager.host_id:
                self.manager.callback_taken(message["cb"])
        elif op == "forget_callback":
            if message.get("to") == self.manager.host_id:
                # its client left before answering
                self.manager.pop_callback(message["cb"])
        else:
            logger.warning("message queue: unknown message %r dropped", op)

    def _emit_for_callback(self, message: dict[str, Any]) -> None:
        sid, namespace, pkt = message["sid"], message["ns"], message["pkt"]
        if not (isinstance(sid, str) and isinstance(namespace, str) and isinstance(pkt, dict)):
            raise ValueError("bad emit_callback message")
        # (not get_session: it would claim a copy handshaken here, whose
        # transport may be on its way to another process)
        session = self.server.sessions.get(sid)
        if session is None or sid in self.unclaimed or session.close_reason == CLAIMED_ELSEWHERE:
            return  # not this process's client
        origin, callback_id = message["host"], message["cb"]
        ack = ForwardedAck(self.manager, origin, callback_id)
        if session.closed or namespace not in session.namespaces:
            ack.unanswered()  # this process's client, which cannot answer there
            return
        # The packet is held with the namespace's packets while its connect
        # handler runs; a refusal then tells the asking process, as a leave
        # does. "Taken" goes out once the session has the callback (a session
        # that has just ended or left tells it at once instead): whatever
        # happens to the client from then on reaches the asking process, in
        # whichever order the two messages arrive there.
        manager = self.manager

        def taken() -> None:
            manager.publish({"op": "callback_taken", "to": origin, "cb": callback_id})

        self.server.send_with_callback(session, pkt, namespace, ack, kept=taken)

    def _run_callback(self, message: dict[str, Any]) -> None:
        args = message["args"]
        kept = self.manager.pop_callback(message["cb"])
        if kept is None or not isinstance(args, list):
            return  # answered twice, or forgotten
        namespace, callback = kept
        app = self.server.app
        # on a worker, as callbacks run: never on the listener, which a slow
        # callback would hold up for every other process's message
        self.server.workers.submit(self._callback_jobs,  # type: ignore[arg-type]
                                   lambda: app.remote_callback(namespace, callback, args))
