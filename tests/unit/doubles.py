"""Test doubles shared by the unit tests: an application that acks every event
with its own arguments, a clock the test moves, and a bounded wait for a
condition."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Clock:
    """A monotonic clock that moves only when the test sets ``now``."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class EchoApp:
    """The server's Application: accepts every namespace but those in
    ``refuse``, answers data acks with the event's args, records events and
    counts disconnect handlers."""

    def __init__(self) -> None:
        self.refuse: set[str] = set()
        self.events: list[tuple[str, list]] = []
        self.disconnects = 0
        self.lock = threading.Lock()

    def authorize_handshake(self, environ):
        return True

    def connect(self, session, namespace, query):
        return namespace not in self.refuse

    def event(self, session, namespace, name, args, ack, packet=False):
        with self.lock:
            self.events.append((name, args))
        if ack is not None:
            ack(*args)

    def disconnect(self, session, namespace):
        with self.lock:
            self.disconnects += 1

    def callback(self, session, namespace, callback, args):
        callback(*args)

    def error(self, session, namespace, reason, advice):
        pass


def wait_until(predicate: Callable[[], object], deadline: float = 20.0) -> bool:
    """Poll ``predicate`` until it holds or ``deadline`` seconds pass."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False
