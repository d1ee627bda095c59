"""Rooms and emits across processes and machines, through Redis pub/sub.

``RedisManager`` is the room index of this process (``MemoryManager``) plus
one Redis channel that every process of the application subscribes to. A
process knows only its own clients. An operation that may concern clients of
other processes (an emit to a room or to everyone, closing a room, a room
change or a disconnect for a client this process does not hold, an emit that
asks another process's client for an ack) is applied here at once, then
published; each other process applies it to its own clients. Every message
carries the publisher's ``host_id``, and a process skips its own.

Delivery is at most once: what is published while a process is not
subscribed (Redis restarting, the network down) does not reach that
process's clients. Publishing waits for Redis (a round trip, with short
timeouts); a message that cannot be published is logged and dropped, and the
local part of the operation has happened anyway.

A write-only manager (``SocketIO(message_queue=url, write_only=True)``, an
emitter for scripts and task workers) only publishes. ``redis`` is imported
lazily: it is an optional dependency (``pip install flask_sio09[redis]``).

Imports: manager, the standard library, and ``redis`` when one is made.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from . import packet as packet_codec
from .droplog import log_refused
from .manager import Deliver, MemoryManager, check_room, listed_names

logger = logging.getLogger("flask_sio09")

#: the pub/sub channel's name, followed by ``:<database number>`` (Redis
#: pub/sub ignores the database: the number keeps apps on two databases apart);
#: ``?channel=<name>`` in the URL chooses another name
CHANNEL = "flask_sio09"
#: the largest message published. Redis's default ``client-output-buffer-limit
#: pubsub 32mb 8mb 60`` cuts a subscriber off at 32 MB unsent, or once it has
#: been past 8 MB unsent for 60 s; those 60 s count from the first time it was
#: seen past 8 MB, and the small replies between do not reset them, so a
#: second message over 8 MB a minute after the first cut every process off the
#: channel at once, and the message was lost everywhere. The soft limit is the
#: real one, and Redis counts what its allocator reserved for the reply:
#: jemalloc rounds a block past 4 MiB up to a whole MiB, so a message over
#: 7 MiB counts as 8 MiB and reaches the limit. 64 KiB are left for the
#: framing and for other messages waiting in the same buffer
MAX_MESSAGE_BYTES = 7 * 1024 * 1024 - 64 * 1024
#: while Redis cannot be reached, one ERROR line per this many seconds
ERROR_LOG_INTERVAL = 10.0
#: seconds a publish or a connection attempt may take before it fails
SOCKET_TIMEOUT = 5.0
#: once a publish has timed out (Redis stalled: paused, or cut off without a
#: reset), what is published goes to the manager's own thread (``later``), in
#: order, until one gets through with nothing left behind it: a handler that
#: emits then goes on serving its own process's clients, instead of waiting
#: SOCKET_TIMEOUT for each message. At most this many bytes wait there; past
#: that a message is dropped (logged), as one Redis never took
STALLED_QUEUE_BYTES = 64 * 1024 * 1024
#: a message that waited this long for a stalled Redis is dropped (logged):
#: delivered so late, it would mislead more than its loss
STALLED_QUEUE_SECONDS = 30.0
#: sessions whose records could not be deleted when they ended (Redis away),
#: kept to be deleted once Redis answers again; past this many the oldest is
#: left to its record's expiry (SESSION_RECORD_SECONDS)
MAX_UNFORGOTTEN = 100_000
#: the listener's wait between reconnection attempts doubles up to this (what
#: other processes publish meanwhile is lost to this one: keep it short)
MAX_BACKOFF = 4.0
#: the listener pings Redis after this many seconds without a word from it, and
#: takes the connection for dead after three times as long (a connection that a
#: firewall or a failover dropped without a reset never fails a read by itself)
HEALTH_INTERVAL = 5.0
#: how long the first subscription may take before serving goes on without it
SUBSCRIBE_WAIT = 5.0
#: callbacks waiting for an ack from another process's client; past this the
#: oldest is forgotten (its client may never answer)
MAX_REMOTE_CALLBACKS = 10_000
#: a callback whose question no process took within this many seconds is
#: forgotten: no process held the client (it had gone, its process had died),
#: so no answer can come (the process that takes it says so at once)
CALLBACK_TAKEN_SECONDS = 30.0

#: how long a claimed session's record is kept at most (it is deleted when the
#: session ends; this bounds what a process that died leaves behind)
SESSION_RECORD_SECONDS = 24 * 3600
#: the claim of another process, atomic in Redis: an unclaimed handshake
#: record becomes the session's record, and the handshake's record stays
#: until it would have expired, marked claimed (``CLAIMED``): the
#: handshake's own process then knows, even once the session has ended and
#: its record is gone, that the session was another's
CLAIM_SCRIPT = """
local handshake = redis.call('get', KEYS[1])
if not handshake or handshake == ARGV[3] then
  return 0
end
local left = redis.call('pttl', KEYS[1])
if left < 1 then left = 1000 end
redis.call('set', KEYS[1], ARGV[3], 'PX', left)
redis.call('set', KEYS[2], ARGV[1], 'EX', ARGV[2])
return 1
"""
#: the claim of the handshake's own process: it holds the session unless
#: another process claimed it. A missing handshake record (Redis restarted
#: without persistence, evicted it, was flushed) leaves it to this process,
#: which says so (2): the client's requests reached it, and a process that
#: claimed it before the record went says so on the channel
CLAIM_OWN_SCRIPT = """
local handshake = redis.call('get', KEYS[1])
if handshake and handshake ~= ARGV[1] then
  return 0
end
local holder = redis.call('get', KEYS[2])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('del', KEYS[1], KEYS[3])
redis.call('set', KEYS[2], ARGV[1], 'EX', ARGV[2])
if handshake then return 1 end
return 2
"""
#: the handshake record's value once another process claimed it
CLAIMED = "claimed"
#: a process forgets a session's records (the session's and an unused
#: handshake's, with that handshake's query) only while they are its own
FORGET_SCRIPT = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('del', KEYS[1])
end
if redis.call('get', KEYS[2]) == ARGV[1] then
  redis.call('del', KEYS[2], KEYS[3])
end
return 0
"""

Forwarded = Callable[[dict[str, Any]], None]
"""``apply(message)``: the server's part of a message from another process
(``disconnect``, ``emit_callback``), supplied by the server."""


def import_redis() -> Any:
    """The ``redis`` package, or a clear error when it is not installed."""
    try:
        import redis
    except ImportError:
        raise RuntimeError("message_queue needs the 'redis' package: "
                           "pip install 'flask_sio09[redis]'") from None
    return redis


def without_password(url: str) -> str:
    """``url`` with its password, in the authority or as redis-py's
    ``?password=``, replaced by ``***`` (for logs)."""
    scheme, slashes, rest = url.partition("://")
    if not slashes:
        return url
    authority, path = re.match(r"([^/?#]*)(.*)", rest, re.S).groups()  # type: ignore[union-attr]
    credentials, at, host = authority.rpartition("@")
    if at and ":" in credentials:
        authority = credentials.partition(":")[0] + ":***@" + host
    path = re.sub(r"([?&]password=)[^&#]*", r"\1***", path)
    return f"{scheme}://{authority}{path}"


def split_channel(url: str) -> tuple[str, str | None]:
    """``url`` without its ``channel`` query parameter, and that parameter
    (None when absent); redis-py would pass it on to the connection."""
    base, _, query = url.partition("?")  # (not urlunsplit: it drops unix:///'s //)
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [value for key, value in pairs if key == "channel"]
    if not names:
        return url, None
    rest = urlencode([(key, value) for key, value in pairs if key != "channel"])
    return base + ("?" + rest if rest else ""), names[-1]


def _listed(value: str | Iterable[str] | None) -> str | list[str] | None:
    """``to`` and ``skip_sid`` as JSON can carry them."""
    if value is None or isinstance(value, str):
        return value
    return list(value)


class RedisManager(MemoryManager):
    """The room index of this process, shared with the other processes
    subscribed to ``channel`` on the Redis at ``url``.

    :param deliver: called once per local recipient with the encoded packet
                    (None for a write-only manager).
    :param url: ``redis://``, ``rediss://`` or ``unix://`` URL, optionally
                with ``?channel=<name>``.
    :param forwarded: the server's handler of the messages it applies itself.
    :param write_only: publish only; never subscribe.
    :param channel: the pub/sub channel (processes of one app share it); by
                    default from the URL (see ``CHANNEL``).
    """

    def __init__(self, deliver: Deliver | None, url: str, forwarded: Forwarded | None = None,
                 write_only: bool = False, channel: str | None = None) -> None:
        super().__init__(deliver or (lambda sid, endpoint, encoded: None))
        self.url, named = split_channel(url)
        #: the URL as logged: without its password
        self.shown_url = without_password(self.url)
        self.write_only = write_only
        self._forwarded = forwarded
        self._redis_module = import_redis()
        self._last_error_log = -ERROR_LOG_INTERVAL
        self._errors_not_logged = 0
        #: an ERROR was logged and no operation has reached Redis since
        self._failing = False
        #: Redis answered a write with an error reply (a read-only replica,
        #: ``maxmemory``) and has accepted none since: reads and PUBLISH may
        #: still work meanwhile, so they do not end this
        self._refusing = False
        self._callback_ids = itertools.count(1)
        #: callback id -> (namespace, callback) for acks other processes forward
        self._remote_callbacks: OrderedDict[int, tuple[str, Callable[..., Any]]] = OrderedDict()
        #: callback id -> when it is forgotten, for those no process took yet
        self._untaken: OrderedDict[int, float] = OrderedDict()
        self._start_lock = threading.Lock()
        self._new_process()
        database = self._client.connection_pool.connection_kwargs.get("db", 0)
        self.channel = channel or named or f"{CHANNEL}:{database}"

    def _new_process(self) -> None:
        """This process's identity and connections (again after a fork)."""
        self.host_id = uuid.uuid4().hex
        self._client = self._redis_module.Redis.from_url(
            self.url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT,
            retry=self._no_retry())
        # (EVALSHA once Redis knows them, not the script's text each time)
        self._claim_script = self._client.register_script(CLAIM_SCRIPT)
        self._claim_own_script = self._client.register_script(CLAIM_OWN_SCRIPT)
        self._forget_script = self._client.register_script(FORGET_SCRIPT)
        self._listener: threading.Thread | None = None
        self._subscribed = threading.Event()
        self._stopped = threading.Event()
        #: Redis operations nobody waits for (``later``), and their thread
        self._later: queue.SimpleQueue[Callable[[], Any]] = queue.SimpleQueue()
        self._later_thread: threading.Thread | None = None
        #: ``later`` operations not finished yet (queued, or running on its thread)
        self._later_pending = 0
        self._later_finished = threading.Condition()
        #: a publish timed out, and none has got through since: publishes
        #: wait on ``later``'s thread (see STALLED_QUEUE_BYTES), these many
        #: of them and bytes
        self._stalled = False
        #: the process exits (``run_later_now``)
        self._exiting = False
        self._stalled_waiting = 0
        self._stalled_bytes = 0
        #: publishes dropped behind the stall, reported once it is over
        self._stall_drops = 0
        self._stall_lock = threading.Lock()
        #: sids whose records ``forget_later`` is to delete, in one round trip
        #: on ``later``'s thread (again once Redis answers, when it could not)
        self._to_forget: OrderedDict[str, None] = OrderedDict()
        self._to_forget_lock = threading.Lock()
        self._forget_queued = False
        #: after a failed attempt, the next waits until then (an ACL that
        #: denies the script would fail it again for every operation that works)
        self._forget_again_at = 0.0
        #: the listener is subscribed now (cleared while it reconnects)
        self._listening = threading.Event()
        #: when the listener subscribed again after it had lost Redis
        self._resubscribed_at: float | None = None

    def _no_retry(self) -> Any:
        """redis-py's retry policy that never retries: it would send again a
        command whose answer timed out, and a publish that Redis had received
        (it was only slow) would then reach every process twice, after twice
        the timeout. ``publish`` retries what is safe to retry itself."""
        from redis.backoff import NoBackoff
        from redis.retry import Retry
        return Retry(NoBackoff(), 0)

    def reset_after_fork(self) -> None:
        """In a forked child: a new host id, new connections, and the
        listener (which did not survive the fork) starts again on first use."""
        self._start_lock = threading.Lock()
        self._new_process()

    # -- publishing ------------------------------------------------------

    def publish(self, message: dict[str, Any]) -> bool:
        """Send ``message`` to the other processes; False when Redis could
        not be reached (logged: the message is lost). While Redis is stalled
        it is queued instead (True; see STALLED_QUEUE_BYTES)."""
        return self._publish(message) is True

    def _publish(self, message: dict[str, Any], callback_id: int | None = None) -> bool | None:
        # True: sent (or queued behind a stall); False: surely lost; None:
        # Redis did not answer in time, so it may or may not have it
        data = _message_bytes({**message, "host": self.host_id})
        op = message.get("op")
        if len(data) > MAX_MESSAGE_BYTES:
            logger.error("message queue: a %r of %d bytes is too large to publish "
                         "(at most %d); dropped", op, len(data), MAX_MESSAGE_BYTES)
            return False
        if self._stalled and not self.write_only:
            # (an emitter, a script, serves no clients of its own, and would
            # exit with what it queued unsent: it waits for each publish)
            return self._publish_behind_stall(data, op, callback_id)
        return self._send(data, op)

    def _send(self, data: bytes, op: Any) -> bool | None:
        redis = self._redis_module
        for attempt in (1, 2):
            try:
                self._client.publish(self.channel, data)
                self._reachable(wrote=False)  # (a read-only replica takes PUBLISH)
                return True
            except redis.TimeoutError as exc:
                # never again: Redis may have it (delivery is at most once)
                self._stalled = True
                self._log_unreachable(f"publish {op!r}", exc)
                return None
            except redis.ConnectionError as exc:
                # a pooled connection that Redis dropped (it restarted) fails
                # before the command leaves: once more, on a new connection
                if attempt == 2:
                    self._log_unreachable(f"publish {op!r}", exc)
            except redis.RedisError as exc:  # an error reply (an ACL): not sent
                self._log_unreachable(f"publish {op!r}", exc)
                return False
        return False

    def _publish_behind_stall(self, data: bytes, op: Any,
                              callback_id: int | None) -> bool | None:
        """Queue a publish on ``later``'s thread, behind those that wait for a
        stalled Redis (see STALLED_QUEUE_BYTES); False when too much waits."""
        with self._stall_lock:
            stalled = self._stalled  # (again: the last queued one may just have gone)
            full = stalled and self._stalled_bytes + len(data) > STALLED_QUEUE_BYTES
            if full:
                self._stall_drops += 1
            elif stalled:
                self._stalled_waiting += 1
                self._stalled_bytes += len(data)
        if not stalled:
            return self._send(data, op)
        if full:
            self._log_unreachable(f"publish {op!r}", TimeoutError(
                f"Redis stalled, and {STALLED_QUEUE_BYTES} bytes wait for it already"))
            return False
        queued_at, most = time.monotonic(), STALLED_QUEUE_SECONDS
        self.later(lambda: self._send_queued(data, op, callback_id, queued_at, most))
        return True

    def _send_queued(self, data: bytes, op: Any, callback_id: int | None,
                     queued_at: float, most: float) -> None:
        """A publish that waited for a stalled Redis (on ``later``'s thread):
        sent once the listeners can hear it, or dropped (logged) if that
        cannot be within ``most`` seconds of ``queued_at``."""
        deadline = queued_at + most
        if self._exiting and self._stalled:
            # (one timeout each would hold the exit for as many of them)
            reason = "the process exits, and Redis is stalled"
        elif not self._exiting and not self._listeners_ready(deadline) or \
                time.monotonic() > deadline:
            reason = f"it waited over {most:.0f} s for a stalled Redis"
        else:
            reason = ""
        if reason:
            self._log_unreachable(f"publish {op!r}", TimeoutError(reason))
            sent: bool | None = False
        else:
            sent = self._send(data, op)
        if sent is False and callback_id is not None:
            self.pop_callback(callback_id)  # never left: no answer can come
        with self._stall_lock:
            self._stalled_waiting -= 1
            self._stalled_bytes -= len(data)
            if reason:
                self._stall_drops += 1
            if sent is True and self._stalled_waiting == 0:
                # nothing queued is left to overtake: publish directly again
                self._stalled = False
                dropped, self._stall_drops = self._stall_drops, 0
            else:
                dropped = 0
        if dropped:
            logger.warning("message queue: %d messages that waited for a stalled Redis at %s "
                           "were dropped (too old, or past the %d bytes that may wait)",
                           dropped, self.shown_url, STALLED_QUEUE_BYTES)

    def _listeners_ready(self, deadline: float) -> bool:
        """Before a publish that waited for a stalled Redis: when this
        process's listener lost Redis during the stall (silent for 15 s, see
        HEALTH_INTERVAL), so did the other processes' listeners, and what is
        published before they subscribe again reaches none of them. Wait for
        this one to be back, then for as long as the others may take (their
        reconnection attempts: MAX_BACKOFF, and a second for the connection
        and the subscription). False when that cannot be by ``deadline``."""
        if self._listener is None:
            return True
        if not self._listening.wait(max(0.0, deadline - time.monotonic())):
            return False
        since = self._resubscribed_at
        if since is None:
            return True
        ready = since + MAX_BACKOFF + 1.0
        if ready > deadline:
            return False
        self._stopped.wait(max(0.0, ready - time.monotonic()))
        return True

    def publish_with_callback(self, message: dict[str, Any], namespace: str,
                              callback: Callable[..., Any]) -> None:
        """Publish ``message`` (given ``cb``, the id of ``callback``, kept here
        until another process forwards the answer or says none will come, or
        none takes the question: see ``CALLBACK_TAKEN_SECONDS``)."""
        callback_id = self.remember_callback(namespace, callback)
        if self._publish({**message, "cb": callback_id}, callback_id) is False:
            self.pop_callback(callback_id)  # never left: no answer can come

    def later(self, operation: Callable[[], Any]) -> None:
        """Run ``operation`` (a publish, a record to delete) on this manager's
        own thread, in order: for a caller that must not wait for Redis, such
        as the hub's thread closing a session while Redis is slow."""
        with self._later_finished:
            self._later_pending += 1
        self._later.put(operation)
        if self._later_thread is None:
            with self._start_lock:
                if self._later_thread is None:
                    self._later_thread = threading.Thread(
                        target=self._run_later, daemon=True, name="sio09-message-queue-later")
                    self._later_thread.start()

    def _run_later(self) -> None:
        while True:
            self._run_one_later(self._later.get())

    def _run_one_later(self, operation: Callable[[], Any]) -> None:
        try:
            _run_deferred(operation)
        finally:
            with self._later_finished:
                self._later_pending -= 1
                self._later_finished.notify_all()

    def run_later_now(self) -> None:
        """Run here what waits for ``later``'s thread, and wait for the one it
        runs (the process exits: its daemon thread would be cut off in the
        middle, and a session's records left behind). Publishes that wait
        for a stalled Redis are dropped (logged)."""
        self._exiting = True
        while True:
            try:
                operation = self._later.get_nowait()
            except queue.Empty:
                break
            self._run_one_later(operation)
        with self._later_finished:  # (bounded: Redis may be away)
            self._later_finished.wait_for(lambda: self._later_pending <= 0,
                                          timeout=SOCKET_TIMEOUT + 1)
        if self._errors_not_logged:  # (the process exits: the count is told now)
            others, self._errors_not_logged = self._errors_not_logged, 0
            logger.error("message queue: %d operations failed at %s since the last report, "
                         "as the process exits", others, self.shown_url)

    def _log_unreachable(self, what: str, exc: Exception) -> None:
        """One ERROR line per ``ERROR_LOG_INTERVAL`` while Redis is away or
        refuses (each emit would otherwise log one), with the count of the
        others."""
        if isinstance(exc, self._redis_module.exceptions.NoPermissionError) or \
                "can't run this command" in str(exc):
            pass  # an ACL denies a command (in a script, too): lasting, and other
            # writes go on working
        elif isinstance(exc, self._redis_module.ResponseError):
            self._refusing = True
        else:
            self._failing = True
        now = time.monotonic()
        if now - self._last_error_log < ERROR_LOG_INTERVAL:
            self._errors_not_logged += 1
            return
        others, self._errors_not_logged = self._errors_not_logged, 0
        self._last_error_log = now
        logger.error("message queue: cannot %s at %s: %s%s", what, self.shown_url, exc,
                     f" ({others} more failures since the last report)" if others else "")

    def _reachable(self, wrote: bool) -> None:
        """An operation reached Redis (``wrote``: a write that Redis
        accepted): after failures, say so once, with the count of the
        failures not reported yet; and delete the records that could not be
        deleted meanwhile (``forget``)."""
        if self._to_forget and not self._forget_queued and \
                time.monotonic() >= self._forget_again_at:
            self._queue_forget()
        if self._failing:
            self._failing = False
            state = "reachable again"
        elif wrote and self._refusing:
            state = "accepts writes again"
        else:
            return
        if wrote:
            self._refusing = False
        others, self._errors_not_logged = self._errors_not_logged, 0
        logger.warning("message queue: %s %s%s", self.shown_url, state,
                       f" ({others} more failures since the last report)" if others else "")

    # -- the manager's operations, across processes ------------------------

    def enter_room(self, sid: str, namespace: str, room: str) -> None:
        check_room(room)
        if self.is_connected(sid, namespace):
            super().enter_room(sid, namespace, room)
        else:  # another process's client (or none: that process ignores it)
            self.publish({"op": "enter", "sid": sid, "ns": namespace, "room": room})

    def leave_room(self, sid: str, namespace: str, room: str) -> None:
        check_room(room)
        if self.is_connected(sid, namespace):
            super().leave_room(sid, namespace, room)
        else:
            self.publish({"op": "leave", "sid": sid, "ns": namespace, "room": room})

    def close_room(self, room: str, namespace: str) -> None:
        super().close_room(room, namespace)
        self.publish({"op": "close_room", "ns": namespace, "room": room})

    def emit_encoded(self, encoded: str, namespace: str, to: str | Iterable[str] | None = None,
                     skip_sid: str | Iterable[str] | None = None) -> int:
        """Deliver to this process's recipients, then publish for the others'.
        Returns how many recipients this process had."""
        if to is not None and not isinstance(to, str):
            to = listed_names(to, "to")  # read twice: here and for the message
        if skip_sid is not None and not isinstance(skip_sid, str):
            skip_sid = listed_names(skip_sid, "skip_sid")
        count = super().emit_encoded(encoded, namespace, to, skip_sid)
        if isinstance(to, str) and count == 1 and self.is_connected(to, namespace):
            return count  # to one client of this process: no one else has it
        self.publish({"op": "emit", "ns": namespace, "to": _listed(to),
                      "skip": _listed(skip_sid), "p": encoded})
        return count

    def remember_callback(self, namespace: str, callback: Callable[..., Any]) -> int:
        """Keep ``callback`` for an ack another process will forward; its id.
        Until a process takes the question (``callback_taken``) it is kept
        ``CALLBACK_TAKEN_SECONDS`` at most."""
        callback_id = next(self._callback_ids)
        now = time.monotonic()
        with self._lock:
            self._forget_untaken(now)
            untaken = self._untaken
            self._remote_callbacks[callback_id] = (namespace, callback)
            untaken[callback_id] = now + CALLBACK_TAKEN_SECONDS
            while len(self._remote_callbacks) > MAX_REMOTE_CALLBACKS:
                forgotten, _ = self._remote_callbacks.popitem(last=False)
                untaken.pop(forgotten, None)
                logger.info("message queue: callback %d forgotten: no ack came", forgotten)
        return callback_id

    def _forget_untaken(self, now: float) -> None:
        # (under the lock) the questions no process took in time
        untaken = self._untaken
        while untaken:  # (oldest first: all wait the same time)
            oldest, deadline = next(iter(untaken.items()))
            if deadline > now:
                return
            del untaken[oldest]
            if self._remote_callbacks.pop(oldest, None) is not None:
                logger.info("message queue: callback %d forgotten: no process held "
                            "its client", oldest)

    def forget_untaken(self) -> None:
        """Forget the questions no process took in ``CALLBACK_TAKEN_SECONDS``
        (the listener calls this every second or so, so that they go even
        when no other question is asked)."""
        if self._untaken:
            with self._lock:
                self._forget_untaken(time.monotonic())

    def callback_taken(self, callback_id: Any) -> None:
        """A process holds the client the question went to: the callback now
        waits for its answer, or for word that none will come."""
        with self._lock:
            self._untaken.pop(callback_id, None)

    def pop_callback(self, callback_id: Any) -> tuple[str, Callable[..., Any]] | None:
        """The callback ``remember_callback`` kept as ``callback_id``, removed."""
        with self._lock:
            self._untaken.pop(callback_id, None)
            return self._remote_callbacks.pop(callback_id, None)

    # -- which process holds a session ------------------------------------------
    #
    # With several processes behind one address (gunicorn -w N), a client's
    # handshake and its transport's connection may reach different processes.
    # The handshake is recorded in Redis; the first process a transport
    # request reaches claims it, atomically, and holds the session from then on.

    def _key(self, kind: str, sid: str) -> str:
        return f"{self.channel}:{kind}:{sid}"

    def _guarded(self, what: str, call: Callable[[], Any], wrote: bool = False) -> Any:
        """``call()``, or None when Redis cannot be reached or answers with
        an error (a replica made read-only by a failover, ``maxmemory``
        reached, an ACL): logged, and treated alike, since either way the
        operation did not happen.

        :param wrote: the call always writes when it succeeds, so its
                      success shows that Redis accepts writes again (the
                      scripts write only in some cases, reads never).
        """
        redis = self._redis_module
        try:
            result = call()
        except redis.RedisError as exc:
            self._log_unreachable(what, exc)
            return None
        self._reachable(wrote)
        return result

    def record_handshake(self, sid: str, seconds: float, query: str = "") -> bool:
        """Note a handshake made here, claimable for ``seconds``, and its
        query string (``handshake_query``); False when Redis could not be
        reached or refused the write (no process can claim it then, this one
        included)."""
        expiry = max(1, int(seconds))

        def record() -> Any:
            # both or neither (MULTI): a handshake record without its query
            # would be claimed elsewhere while this process, told it failed,
            # held the session too
            pipe = self._client.pipeline(transaction=True)
            pipe.set(self._key("handshake", sid), self.host_id, ex=expiry)
            # (an empty one too: the session has no query then, in any process,
            # whatever its transport's URL carries)
            pipe.set(self._query_key(sid), query, ex=expiry)
            try:
                return pipe.execute()
            except self._redis_module.RedisError as exc:
                raise _without_commands(exc) from None

        return self._guarded("record a handshake", record, wrote=True) is not None

    def _query_key(self, sid: str) -> str:
        # (under the handshake's key: an ACL's key pattern for it covers this)
        return self._key("handshake", sid) + ":query"

    def handshake_query(self, sid: str) -> str | None:
        """The query string of session ``sid``'s handshake, which another
        process made (``""`` for none): None when Redis has no record of it
        (or cannot be reached)."""
        def take() -> Any:  # (read once: the session is claimed, it goes)
            pipe = self._client.pipeline(transaction=True)
            pipe.get(self._query_key(sid))
            pipe.delete(self._query_key(sid))
            return pipe.execute()[0]

        value = self._guarded("read a handshake", take)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        return value if isinstance(value, str) else None

    def claim(self, sid: str, own: bool = False) -> bool | str | None:
        """Take the session ``sid``'s handshake for this process: True once,
        for the first process that asks; False for the others and for a sid
        no process handshook; None when Redis cannot be reached.

        :param own: the handshake was made here: True unless another process
                    claimed it; ``"unrecorded"`` when its record was gone
                    (a process that claimed it before may yet say so).
        """
        script = self._claim_own_script if own else self._claim_script
        claimed = self._guarded("claim a session", lambda: script(
            keys=[self._key("handshake", sid), self._key("session", sid), self._query_key(sid)],
            args=[self.host_id, SESSION_RECORD_SECONDS, CLAIMED]))
        if claimed in (1, 2):
            self._reachable(wrote=True)  # (a claim writes when it succeeds)
        if claimed is None:
            return None
        return "unrecorded" if claimed == 2 else claimed == 1

    def forget_many(self, sids: list[str],
                    what: str = "forget the sessions of an exiting process") -> bool:
        """``forget`` for each of ``sids``, in one round trip (a process
        exits); False when Redis could not be reached (logged as ``what``)."""
        def run() -> bool:
            pipeline = self._client.pipeline(transaction=False)
            for sid in sids:
                self._forget_script(keys=self._forget_keys(sid), args=[self.host_id],
                                    client=pipeline)
            pipeline.execute()
            return True
        return self._guarded(what, run) is not None

    def held_elsewhere(self, sid: str) -> bool:
        """Whether another process holds the session ``sid`` now."""
        holder = self._guarded("look up a session", lambda: self._client.get(
            self._key("session", sid)))
        return holder is not None and holder.decode("ascii", "replace") != self.host_id

    def forget(self, sid: str) -> None:
        """The session ``sid`` ended here: no process holds it any more, and
        an unused handshake of it can no longer be claimed (records another
        process wrote are left alone)."""
        self._guarded("forget a session", lambda: self._forget_script(
            keys=self._forget_keys(sid), args=[self.host_id]))

    def forget_later(self, sids: Iterable[str]) -> None:
        """``forget`` on ``later``'s thread, for a caller that must not wait
        for Redis, the sessions that ended meanwhile together (one round
        trip); once more when Redis answers again, should it not now (see
        MAX_UNFORGOTTEN)."""
        with self._to_forget_lock:
            to_forget = self._to_forget
            for sid in sids:
                to_forget[sid] = None
            while len(to_forget) > MAX_UNFORGOTTEN:
                to_forget.popitem(last=False)
        self._queue_forget()

    def _queue_forget(self) -> None:
        """Have ``_forget_now`` run on ``later``'s thread, unless it is queued."""
        with self._to_forget_lock:
            if self._forget_queued:
                return
            self._forget_queued = True
        self.later(self._forget_now)

    def _forget_now(self) -> None:
        """What ``forget_later`` was given (``later``'s thread)."""
        with self._to_forget_lock:
            sids = list(self._to_forget)
            self._forget_queued = False
        for start in range(0, len(sids), 1000):  # (bounded round trips)
            batch = sids[start:start + 1000]
            if not self.forget_many(batch, "forget the sessions that ended"):
                # kept for when Redis answers again (_reachable), a second on
                self._forget_again_at = time.monotonic() + 1.0
                return
            with self._to_forget_lock:
                for sid in batch:
                    self._to_forget.pop(sid, None)

    def _forget_keys(self, sid: str) -> list[str]:
        # (FORGET_SCRIPT's: the session's record, its handshake's, that one's query)
        return [self._key("session", sid), self._key("handshake", sid), self._query_key(sid)]

    # -- listening -----------------------------------------------------------

    def started(self) -> bool:
        """Whether this process's listener was started."""
        return self._listener is not None

    def start(self) -> None:
        """Subscribe in a listener thread, once per process; wait (a little)
        for the subscription, so that what is published to this process's
        first clients reaches them."""
        if self.write_only or self._listener is not None:
            return
        with self._start_lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(target=self._listen, daemon=True,
                                              name="sio09-message-queue")
            self._listener.start()
        if not self._subscribed.wait(SUBSCRIBE_WAIT):
            logger.error("message queue: not subscribed to %s yet; serving on, "
                         "emits from other processes are lost until it is", self.shown_url)

    def stop(self) -> None:
        """End the listener thread (within a second)."""
        self._stopped.set()

    def _listen(self) -> None:
        redis = self._redis_module
        backoff = 1.0
        while not self._stopped.is_set():
            pubsub = None
            try:
                # no read timeout: a subscriber waits for messages as long as it
                # takes, and pings when Redis has been quiet (below)
                client = redis.Redis.from_url(self.url, socket_connect_timeout=SOCKET_TIMEOUT,
                                              socket_keepalive=True)
                pubsub = client.pubsub()
                pubsub.subscribe(self.channel)
                heard = time.monotonic()
                pinged = heard
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    self.forget_untaken()
                    now = time.monotonic()
                    if message is None:
                        if now - heard > 3 * HEALTH_INTERVAL:
                            raise redis.ConnectionError(
                                f"no answer to a ping in {3 * HEALTH_INTERVAL:.0f} s")
                        if now - heard > HEALTH_INTERVAL and now - pinged > HEALTH_INTERVAL:
                            pubsub.ping()
                            pinged = now
                        continue
                    heard = now
                    if message.get("type") == "message":
                        self.receive(message["data"])
                    elif message.get("type") == "subscribe":  # Redis confirmed it
                        if self._subscribed.is_set():
                            logger.warning("message queue: subscribed to %s again",
                                           self.shown_url)
                            self._resubscribed_at = time.monotonic()
                        self._subscribed.set()
                        self._listening.set()
                        self._reachable(wrote=False)
                        backoff = 1.0
            except redis.RedisError as exc:
                self._listening.clear()
                # (one line per ERROR_LOG_INTERVAL, as for the other operations)
                self._log_unreachable(f"listen (again in {backoff:.0f} s)", exc)
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            except Exception:  # the listener must outlive anything unforeseen
                self._listening.clear()
                logger.exception("message queue: listener error; again in %.0f s", backoff)
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except Exception:
                        pass

    def receive(self, data: bytes | str) -> None:
        """Apply one message published by a process (a listener's call)."""
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise ValueError("not an object")
            if message.get("host") == self.host_id:
                return  # applied when it was published
            self._apply(message)
        except Exception as exc:  # (RecursionError too: JSON nested too deep)
            # another program on the channel, or a version with other messages:
            # one bad message must not cost the subscription (nor flood the
            # log: what a client sends may end up in one message per event)
            log_refused("message queue message", "message queue: message dropped: %s: %s",
                        type(exc).__name__, str(exc)[:200], level=logging.WARNING)

    def _apply(self, message: dict[str, Any]) -> None:
        op = message["op"]
        namespace = message["ns"] if "ns" in message else ""
        if not isinstance(namespace, str):
            raise ValueError("bad namespace")
        if op == "emit":
            MemoryManager.emit_encoded(self, _text(message["p"]), namespace,
                                       _names(message.get("to")), _names(message.get("skip")))
        elif op in ("enter", "leave"):
            sid, room = _text(message["sid"]), _text(message["room"])
            if self.is_connected(sid, namespace):
                if op == "enter":
                    MemoryManager.enter_room(self, sid, namespace, room)
                else:
                    MemoryManager.leave_room(self, sid, namespace, room)
        elif op == "close_room":
            MemoryManager.close_room(self, _text(message["room"]), namespace)
        elif self._forwarded is not None:
            self._forwarded(message)


def _message_bytes(message: dict[str, Any]) -> bytes:
    """A message as published: UTF-8 JSON, whose text stays as it is (with
    ``\\uXXXX`` escapes, the default, a non-Latin character would take 6
    bytes instead of 2 or 3 of the size limit). A lone surrogate (a room
    name from a client's bad UTF-16) cannot be UTF-8: escaped, such a
    message still is."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=False,
                      default=packet_codec.json_default)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":"),
                          default=packet_codec.json_default).encode("ascii")


#: what redis-py puts before an error of a command in a pipeline: the command
#: with its arguments (a handshake's query, which may hold a token)
_PIPELINE_COMMAND = re.compile(r"Command # \d+ \(.*?\) of pipeline caused error: ", re.S)


def _without_commands(exc: Exception) -> Exception:
    """``exc`` with the commands redis-py quotes in it taken out, for the log."""
    text = _PIPELINE_COMMAND.sub("", str(exc))
    try:
        return type(exc)(text)
    except Exception:  # (an exception type that wants other arguments)
        return exc


def _run_deferred(operation: Callable[[], Any]) -> None:
    try:
        operation()
    except Exception:  # (each operation logs its own Redis errors; this is the rest)
        logger.exception("message queue: a deferred operation failed")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string was expected")
    return value


def _names(value: Any) -> str | list[str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError("bad room list")

