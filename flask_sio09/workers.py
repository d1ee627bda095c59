"""Running application handlers: in order per session, on a pool of threads.

A job is a zero-argument callable. ``Workers.submit`` appends it to its
session's job queue; whichever thread finds that session idle drains the queue,
so one session's handlers never run concurrently and never out of order, while
different sessions run in parallel on the pool.

``inline=True`` lets the calling thread drain the queue itself when the session
is idle (the thread-per-connection WebSocket reader does this, saving a thread
hand-off per message). Otherwise the session is handed to the pool.

The I/O hub's thread gets a third way (``defer_to``): what it submits waits in
a list that the hub runs itself (``run_deferred``) once it has done the I/O of
its ``select`` round, so a fast handler costs no thread hand-off at all, which
is most of what a hand-off per message cost (waking a thread, then the two
threads trading the GIL). A handler that is slow (it sleeps, it waits on a
database) must not stall every connection the hub serves: the hub's watchdog
calls ``release_stuck``, which hands the rest of the list to the pool and takes
the hub role away from that thread, and the hub starts a new thread for its
loop (the leader/followers pattern). The stuck thread finishes its session's
jobs, then ends.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from .droplog import DropCounter, log_dropped

logger = logging.getLogger("flask_sio09")

_STOP = None


class JobOwner(Protocol):
    """What the pool needs of whom jobs belong to: a ``Session``, or a
    :class:`JobQueue` of no client. (A Protocol, not a class: compiled, a
    parameter typed with a class is checked to be one at each call.)"""

    sid: str
    drops: DropCounter | None
    lock: threading.Lock
    jobs: deque[Callable[[], None]]
    jobs_running: bool
    collecting: tuple[int, list[Callable[[], None]]] | None


class JobQueue:
    """Jobs that run in order on the pool but belong to no client (a
    ``Session`` carries the same four attributes for its own jobs)."""

    def __init__(self, name: str) -> None:
        #: named ``sid`` as in a session: the log line of a failed job shows it
        self.sid = name
        self.drops: DropCounter | None = None  # (what droplog counts per session)
        self.lock = threading.Lock()
        self.jobs: deque[Callable[[], None]] = deque()
        self.jobs_running = False
        self.collecting: tuple[int, list[Callable[[], None]]] | None = None


class Workers:
    """A pool of handler threads, started lazily.

    :param size: how many threads run handlers at most.
    :param name: prefix of the threads' names.
    :param synchronous: run every job on the submitting thread (the test
                        client uses this so that handlers finish before
                        ``emit`` returns); per-session order still holds.
    """

    def __init__(self, size: int = 16, name: str = "sio09-worker",
                 synchronous: bool = False) -> None:
        if size < 1:
            raise ValueError("handler_threads must be at least 1")
        self.size = size
        self.synchronous = synchronous
        self.name = name
        self._ready: queue.SimpleQueue[JobOwner | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        #: threads waiting for a session, less the sessions waiting for a
        #: thread; below zero, a hand-off starts a thread (if size allows)
        self._free = 0
        self._lock = threading.Lock()
        self._stopped = False
        #: the ident of the thread whose submissions are deferred (the hub's), or None
        self._deferring: int | None = None
        self._deferred: deque[JobOwner] = deque()
        #: when the deferring thread began draining its current session
        self._draining_since: float | None = None
        #: handlers that may run at once away from the deferring thread: the
        #: pool's threads take one each while they run a session, and so does
        #: a deferring thread that ``release_stuck`` let go, until it is done
        self._slots = size
        self._slot_freed = threading.Condition(self._lock)

    def submit(self, session: JobOwner, job: Callable[[], None],
               inline: bool = False) -> None:
        """Run ``job`` after the session's earlier jobs."""
        lock = session.lock
        lock.acquire()  # (not ``with``: see LOCK_NOTE in session.py; this runs per packet)
        try:
            collecting = session.collecting
            if collecting is not None and collecting[0] == threading.get_ident():
                # a job of the session collects what it submits, to run next
                # (see collect_next)
                collecting[1].append(job)
                return
            session.jobs.append(job)
            if session.jobs_running:
                return
            session.jobs_running = True
        finally:
            lock.release()
        if inline or self.synchronous:
            self.drain(session)  # this thread runs the session's jobs now
        elif threading.get_ident() == self._deferring:
            self._deferred.append(session)
        else:
            self._hand_off(session)

    @staticmethod
    def collect_next(session: JobOwner, job: Callable[[], None]) -> None:
        """Run ``job`` (a job of ``session``, now on this thread) so that the
        jobs it submits to its own session run right after it, in order,
        ahead of any queued meanwhile: as if they had been submitted in its
        place (a payload decoded as a job: its packets' handlers must come
        before, say, the close that the client sent after it)."""
        collected: list[Callable[[], None]] = []
        with session.lock:
            session.collecting = (threading.get_ident(), collected)
        try:
            job()
        finally:
            with session.lock:
                session.collecting = None
                session.jobs.extendleft(reversed(collected))

    def defer_to(self, thread_ident: int) -> None:
        """From now on, what that thread (``threading.get_ident()``) submits
        waits for its ``run_deferred``."""
        with self._lock:
            self._deferring = thread_ident

    def run_deferred(self, budget: float | None = None) -> bool:
        """Run the sessions that the deferring thread (the caller) submitted.

        :param budget: seconds this call may spend running handlers; once
                       spent, the sessions not started go to the pool. The
                       watchdog sees one session's handlers at a time: many
                       sessions whose handlers each take a little less than
                       its limit would otherwise hold the caller (the hub,
                       and every connection it reads) for their sum.
        :return: False when ``release_stuck`` took the role away from this
                 thread while it ran a session; the rest went to the pool.
        """
        me = threading.get_ident()
        deferred = self._deferred
        lock = self._lock
        started = None
        while deferred:
            try:
                session = deferred.popleft()
            except IndexError:  # release_stuck took the last one
                break
            now = self._draining_since = time.monotonic()
            if started is None:
                started = now
            elif budget is not None and now - started > budget:
                self._draining_since = None
                deferred.appendleft(session)  # (not started: first in line)
                self.hand_off_deferred()
                return True
            self.drain(session)
            lock.acquire()  # (not ``with``: see LOCK_NOTE in session.py)
            try:
                if self._deferring != me:  # released: give back the slot it took
                    self._slots += 1
                    self._slot_freed.notify()
                    return False
                self._draining_since = None
            finally:
                lock.release()
        return True

    def can_defer(self) -> bool:
        """Whether a handler run by the deferring thread could be let go when
        it blocks (a slot is free); else its work should go to the pool."""
        return self._slots > 0

    def defers_here(self) -> bool:
        """True on the deferring thread (the hub's)."""
        return threading.get_ident() == self._deferring

    def has_deferred(self) -> bool:
        """True when the deferring thread has sessions to run."""
        return bool(self._deferred)

    def hand_off_deferred(self) -> None:
        """Give what the deferring thread has not run yet to the pool."""
        while self._deferred:
            try:
                session = self._deferred.popleft()
            except IndexError:
                break
            self._hand_off(session)

    def release_stuck(self, max_seconds: float) -> bool:
        """If the deferring thread has been running one session's handlers
        for more than ``max_seconds``, hand what it has not started to the
        pool and stop deferring its submissions. True when that happened (the
        caller then gives its role to another thread and calls ``defer_to``)."""
        with self._lock:
            since = self._draining_since
            if self._deferring is None or since is None or \
                    time.monotonic() - since <= max_seconds:
                return False
            self._deferring = None
            self._draining_since = None
            # the stuck thread now runs a handler away from the hub: it takes
            # a slot (the hub checked can_defer; a pool thread may have taken
            # the last one since, so this can briefly go one below zero)
            self._slots -= 1
        self.hand_off_deferred()
        return True

    def drain(self, session: JobOwner) -> None:
        """Run the session's queued jobs until none is left."""
        jobs = session.jobs
        while True:
            # Only the thread that set ``jobs_running`` takes jobs out, so a
            # job seen here is still there to pop without the lock; the lock
            # is for the last look, which must not miss a job that ``submit``
            # appends just then (it appends, then looks at ``jobs_running``,
            # under the lock).
            if not jobs:
                lock = session.lock
                lock.acquire()  # (not ``with``: see LOCK_NOTE in session.py)
                try:
                    if not jobs:
                        session.jobs_running = False
                        return
                finally:
                    lock.release()
            job = jobs.popleft()
            try:
                job()
            except Exception:  # a job must never kill the thread that runs it
                log_dropped(session, "unhandled error in a handler job of %s", session.sid,
                            level=logging.ERROR, exc_info=True)
            except BaseException as exc:
                # sys.exit() or KeyboardInterrupt in a handler would end this
                # thread and leave the session's jobs_running set: none of its
                # handlers would run again, and a pool thread's slot would stay
                # taken (handler_threads of them, and no handler ran at all)
                if threading.current_thread() is threading.main_thread():
                    # (the test client's thread: Ctrl-C stops the tests) the
                    # jobs left run with the session's next submission
                    with session.lock:
                        session.jobs_running = False
                    raise
                log_dropped(session, "a handler job of %s raised %s; ignored", session.sid,
                            type(exc).__name__, level=logging.ERROR, exc_info=True)

    def _hand_off(self, session: JobOwner) -> None:
        with self._lock:
            if self._stopped:
                return
            # counted here, not when a thread wakes from get(): a thread that
            # has just woken, and not yet said so, must not be taken for a
            # free one, or the session would wait behind another's handler
            self._free -= 1
            if self._free < 0 and len(self._threads) < self.size:
                thread = threading.Thread(target=self._run, daemon=True,
                                          name=f"{self.name}-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
        self._ready.put(session)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._free += 1
            session = self._ready.get()
            if session is _STOP:
                return
            with self._slot_freed:
                while self._slots <= 0:
                    self._slot_freed.wait()
                self._slots -= 1
            try:
                self.drain(session)
            finally:
                # an idle thread must not keep its last session (its environ,
                # its Flask context) alive until the next hand-off
                session = None
                with self._slot_freed:
                    self._slots += 1
                    self._slot_freed.notify()

    def stop(self) -> None:
        """Let every thread finish its current session and exit."""
        with self._lock:
            self._stopped = True
            count = len(self._threads)
        for _ in range(count):
            self._ready.put(_STOP)
