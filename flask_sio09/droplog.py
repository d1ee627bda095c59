"""A few log lines about input that was dropped or refused, not one per item.

A broken or hostile client can send thousands of malformed packets or
requests a second, each dropped with an INFO line (or, for an exception it
provokes in a handler, an ERROR line with a traceback): the log would grow
faster than the input, and writing it would slow every other client.

* Each session gets ``BURST`` such lines per ``WINDOW`` seconds
  (``log_dropped``); so does each kind of refused request that has no
  session, across the process (``log_refused``).
* All sessions together get at most ``PROCESS_BURST`` lines per window
  beyond each session's first, so that a client that makes a new session
  for every few bad packets cannot get round its session's limit, while the
  first line about any client is never hidden by another's flood.
* Past a limit, one line says that the rest of the window go unlogged; their
  number is given by the next such line after the window, when the session
  ends (``report_unlogged``), or by the server's monitor once the window is
  over (``report_expired``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

logger = logging.getLogger("flask_sio09")

#: lines logged per session (or per kind of refused request) in each window
BURST = 5
#: lines logged for all sessions together in each window
PROCESS_BURST = 50
#: seconds of one window
WINDOW = 10.0


class DropCounter:
    """The lines of one session (or one kind of request, or the process) in
    its current window."""

    __slots__ = ("window_end", "logged", "silenced", "level")

    def __init__(self) -> None:
        self.window_end = 0.0
        self.logged = 0
        self.silenced = 0
        #: the highest level of the lines ``silenced`` counts: their count is
        #: said at it (an app logging at WARNING would miss a count at INFO)
        self.level = logging.INFO

    def silence(self, level: int) -> None:
        """Count one line not logged."""
        self.silenced += 1
        if level > self.level:
            self.level = level


class _HasDrops(Protocol):
    sid: str
    drops: DropCounter | None


#: one lock for every counter: these paths are the rare ones, and the
#: check-then-log of a counter must not run in two threads at once
_lock = threading.Lock()
#: kind of refused request -> its counter, for the whole process
_refused: dict[str, DropCounter] = {}
#: every session's lines together
_sessions = DropCounter()


def log_dropped(session: _HasDrops, message: str, *args: Any, level: int = logging.INFO,
                exc_info: bool = False) -> None:
    """Log ``message % args`` about ``session``'s dropped input (at ``level``,
    with the current exception's traceback when ``exc_info``), unless its
    window's ``BURST`` lines, or the process's ``PROCESS_BURST``, are spent
    (then only count it)."""
    if not logger.isEnabledFor(level):
        return
    with _lock:
        counter = session.drops
        if counter is None:  # (made at the first drop: most sessions never have one)
            counter = session.drops = DropCounter()
        now = time.monotonic()
        first = counter.logged == 0 or now >= counter.window_end
        if not _open(counter, f"session {session.sid}", now, level):
            counter.silence(level)
        elif _open(_sessions, "all sessions", now, level) or first:
            # (a session's first line always goes out: what happened to a
            # client is never hidden by another's flood)
            logger.log(level, message, *args, exc_info=exc_info)
        else:
            _sessions.silence(level)


def report_unlogged(session: _HasDrops) -> None:
    """The session ended: say how many of its lines went unlogged, if any
    (in the process's count instead, while its lines are spent)."""
    with _lock:
        counter = session.drops
        if counter is None or not counter.silenced:
            return
        if _open(_sessions, "all sessions", time.monotonic(), counter.level):
            _say_count(counter, f"session {session.sid}")
        else:
            _sessions.silenced += counter.silenced
            _sessions.level = max(_sessions.level, counter.level)
            counter.silenced, counter.level = 0, logging.INFO


def log_refused(kind: str, message: str, *args: Any, level: int = logging.INFO) -> None:
    """Log ``message % args`` (at INFO by default) about a refused or dropped
    request of ``kind`` (one with no session to count it: an unknown
    transport, a POST to an ended session, a bad upgrade, a message from the
    message queue), at most ``BURST`` per window for each kind across the
    process."""
    if not logger.isEnabledFor(level):
        return
    with _lock:
        counter = _refused.get(kind)
        if counter is None:
            counter = _refused[kind] = DropCounter()
        if _open(counter, f"requests of kind {kind!r}", time.monotonic(), level):
            logger.log(level, message, *args)
        else:
            counter.silence(level)


def log_about(session: _HasDrops | None, kind: str, message: str, *args: Any) -> None:
    """``log_dropped`` for ``session``, or, with none (a request for no known
    session), ``log_refused`` of ``kind``."""
    if session is not None:
        log_dropped(session, message, *args)
    else:
        log_refused(kind, message, *args)


def reset() -> None:
    """Forget every count and window (for tests)."""
    global _sessions
    with _lock:
        _refused.clear()
        _sessions = DropCounter()


def report_expired() -> None:
    """Say the counts of the windows that are over (the server's monitor
    calls this): a flood that stopped is counted even if nothing of its
    kind comes again."""
    now = time.monotonic()
    with _lock:
        for kind, counter in _refused.items():
            if counter.silenced and now >= counter.window_end:
                _say_count(counter, f"requests of kind {kind!r}")
        if _sessions.silenced and now >= _sessions.window_end:
            _say_count(_sessions, "all sessions")


def _open(counter: DropCounter, who: str, now: float, level: int) -> bool:
    """Whether ``counter`` may log one more line now (then it counts it);
    starts a new window when the last is over, and says once per window
    that its lines stop, at ``level``, the line's (call with ``_lock`` held)."""
    if now >= counter.window_end:
        if counter.silenced:
            _say_count(counter, who)
        counter.window_end, counter.logged = now + WINDOW, 0
    limit = PROCESS_BURST if counter is _sessions else BURST
    if counter.logged < limit:
        counter.logged += 1
        return True
    if not counter.silenced and (counter is _sessions or _sessions.logged < PROCESS_BURST):
        # (a session's notice is one of the process's lines too)
        if counter is not _sessions:
            _sessions.logged += 1
        logger.log(level, "%s: too many lines about dropped input or failed handlers; "
                   "none for %.0f s", who, counter.window_end - now)
    return False


def _say_count(counter: DropCounter, who: str) -> None:
    logger.log(counter.level, "%s: %d more lines about dropped input or failed handlers "
               "were not logged", who, counter.silenced)
    counter.silenced, counter.level = 0, logging.INFO
