"""Running application handlers: in order per session, on a pool of threads.

A job is a zero-argument callable. ``Workers.submit`` appends it to its
session's job queue; whichever thread finds that session idle drains the queue,
so one session's handlers never run concurrently and never out of order, while
different sessions run in parallel on the pool.

``inline=True`` lets the calling thread drain the queue itself when the session
is idle (the thread-per-connection WebSocket reader does this, saving a thread
hand-off per message). Otherwise the session is handed to the pool.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from .session import Session

logger = logging.getLogger("flask_sio09")

_STOP = None


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
        self._ready: queue.SimpleQueue[Session | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()
        self._stopped = False

    def submit(self, session: Session, job: Callable[[], None],
               inline: bool = False) -> None:
        """Run ``job`` after the session's earlier jobs."""
        with session.lock:
            session.jobs.append(job)
            if session.jobs_running:
                return
            session.jobs_running = True
        if inline or self.synchronous:
            self.drain(session)
        else:
            self._hand_off(session)

    def drain(self, session: Session) -> None:
        """Run the session's queued jobs until none is left."""
        while True:
            with session.lock:
                if not session.jobs:
                    session.jobs_running = False
                    return
                job = session.jobs.popleft()
            try:
                job()
            except Exception:  # a job must never kill the thread that runs it
                logger.exception("unhandled error in a handler job of %s", session.sid)

    def _hand_off(self, session: Session) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._idle == 0 and len(self._threads) < self.size:
                thread = threading.Thread(target=self._run, daemon=True,
                                          name=f"{self.name}-{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
        self._ready.put(session)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            session = self._ready.get()
            with self._lock:
                self._idle -= 1
            if session is _STOP:
                return
            self.drain(session)

    def stop(self) -> None:
        """Let every thread finish its current session and exit."""
        with self._lock:
            self._stopped = True
            count = len(self._threads)
        for _ in range(count):
            self._ready.put(_STOP)
