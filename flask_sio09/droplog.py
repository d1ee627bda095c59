"""A few log lines per session about the input of its client that was dropped.

A broken or hostile client can send thousands of malformed packets a second,
each dropped with an INFO line: the log would grow faster than the input (and
writing it would slow every other client). Each session gets ``BURST`` such
lines per ``WINDOW`` seconds; past them, one line says that the rest of the
window go unlogged, and the next window's first line says how many they were.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

logger = logging.getLogger("flask_sio09")

#: dropped-input lines logged per session in each window
BURST = 5
#: seconds of one window
WINDOW = 10.0


class DropCounter:
    """The dropped-input lines of one session's current window."""

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
    now = time.monotonic()
    if now >= counter.window_end:
        if counter.silenced:
            logger.info("session %s: %d more lines about its dropped input were not logged",
                        session.sid, counter.silenced)
        counter.window_end, counter.logged, counter.silenced = now + WINDOW, 0, 0
    if counter.logged < BURST:
        counter.logged += 1
        logger.info(message, *args)
        return
    if not counter.silenced:
        logger.info("session %s: more input dropped; no more lines about it for %.0f s",
                    session.sid, counter.window_end - now)
    counter.silenced += 1
