"""A few log lines about input that was dropped or refused, not one per item.

A broken or hostile client can send thousands of malformed packets or
requests a second, each dropped with an INFO line: the log would grow faster
than the input (and writing it would slow every other client). Each session
gets ``BURST`` such lines per ``WINDOW`` seconds (``log_dropped``), and so does
each kind of refused request, across the process (``log_refused``); past them,
one line says that the rest of the window go unlogged, and their number is
given by the next such line after the window, or when the session ends.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

logger = logging.getLogger("flask_sio09")

#: lines logged per session (or per kind of refused request) in each window
BURST = 5
#: seconds of one window
WINDOW = 10.0


class DropCounter:
    """The dropped-input lines of one session (or one kind of request) in its
    current window."""

    __slots__ = ("window_end", "logged", "silenced")

    def __init__(self) -> None:
        self.window_end = 0.0
        self.logged = 0
        self.silenced = 0


class _HasDrops(Protocol):
    sid: str
    drops: DropCounter | None


def log_dropped(session: _HasDrops, message: str, *args: Any) -> None:
    """Log ``message % args`` at INFO about ``session``'s dropped input,
    unless its window's ``BURST`` lines are spent (then only count it)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    counter = session.drops
    if counter is None:  # (made at the first drop: most sessions never have one)
        counter = session.drops = DropCounter()
    _log(counter, f"session {session.sid}", message, args)


def report_unlogged(session: _HasDrops) -> None:
    """The session ended: say how many of its lines went unlogged, if any."""
    counter = session.drops
    if counter is not None and counter.silenced:
        logger.info("session %s: %d more lines about dropped input were not logged",
                    session.sid, counter.silenced)
        counter.silenced = 0


#: kind of refused request -> its counter, for the whole process
_refused: dict[str, DropCounter] = {}
_refused_lock = threading.Lock()


def log_refused(kind: str, message: str, *args: Any) -> None:
    """Log ``message % args`` at INFO about a refused or dropped request of
    ``kind`` (one with no session to count it: an unknown transport, a POST
    to an ended session, a bad upgrade), at most ``BURST`` per window for
    each kind across the process."""
    if not logger.isEnabledFor(logging.INFO):
        return
    with _refused_lock:
        counter = _refused.get(kind)
        if counter is None:
            counter = _refused[kind] = DropCounter()
        _log(counter, f"requests of kind {kind!r}", message, args)


def _log(counter: DropCounter, who: str, message: str, args: tuple[Any, ...]) -> None:
    now = time.monotonic()
    if now >= counter.window_end:
        if counter.silenced:
            logger.info("%s: %d more lines about dropped input were not logged",
                        who, counter.silenced)
        counter.window_end, counter.logged, counter.silenced = now + WINDOW, 0, 0
    if counter.logged < BURST:
        counter.logged += 1
        logger.info(message, *args)
        return
    if not counter.silenced:
        logger.info("%s: more input dropped; no more lines about it for %.0f s",
                    who, counter.window_end - now)
    counter.silenced += 1
