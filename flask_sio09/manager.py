"""Rooms and broadcast: who receives an emit.

The index is ``namespace -> room -> set of sids``. Room ``None`` of a namespace
holds every client connected to it, and every client is also in a room named
after its own sid, so "to one client", "to a room" and "to everyone" take the
same path. A broadcast is encoded once and the same string is handed to every
recipient through the ``deliver`` callable that the server provides.

``MemoryManager`` keeps the index of this process; ``RedisManager``
(``redis_manager.py``) subclasses it and publishes what concerns other
processes' clients. Both pass one contract test suite.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

Deliver = Callable[[str, str, str], None]
"""``deliver(sid, endpoint, encoded_packet)``, supplied by the server."""


def check_room(room: object) -> None:
    """Refuse what cannot name a room, with a ``TypeError``: rooms are
    strings, as across processes (the message queue carries them as JSON
    text) and as ``emit(to=)`` takes them. ``None`` above all, which the
    index keeps for "every client of the namespace": a handler doing
    ``close_room(room)`` with a client's ``null`` would have ended every
    broadcast of the namespace."""
    if not isinstance(room, str):
        raise TypeError(f"a room is a string, not {type(room).__name__}")


def listed_names(value: Iterable[str], what: str) -> list[str]:
    """``value``, several sids or rooms, as a list; a ``TypeError`` naming
    ``what`` (``to``, ``skip_sid``) when it is not a collection of strings
    (a client's number in a room list reached this process's recipients but
    was dropped by every other one, which logged it each time)."""
    try:
        if isinstance(value, (bytes, bytearray)):
            raise TypeError
        names = list(value)
    except TypeError:
        raise TypeError(f"{what}= takes a sid or room (a string) or a list of them, "
                        f"not {type(value).__name__}") from None
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{what}= lists sids or rooms, which are strings, "
                            f"not {type(name).__name__}")
    return names


class MemoryManager:
    """The room index of one process. Thread-safe (one lock).

    :param deliver: called once per recipient with the encoded packet.
    """

    def __init__(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._rooms: dict[str, dict[str | None, set[str]]] = {}
        self._lock = threading.Lock()

    # -- membership ------------------------------------------------------

    def connect(self, sid: str, namespace: str) -> None:
        """Enter ``sid`` into the namespace's everyone-room and its own room."""
        with self._lock:
            rooms = self._rooms.setdefault(namespace, {})
            rooms.setdefault(None, set()).add(sid)
            rooms.setdefault(sid, set()).add(sid)

    def disconnect(self, sid: str, namespace: str) -> None:
        """Remove ``sid`` from every room of ``namespace``."""
        with self._lock:
            rooms = self._rooms.get(namespace)
            if not rooms:
                return
            for room in [r for r, members in rooms.items() if sid in members]:
                self._discard(rooms, room, sid)
            if not rooms:
                del self._rooms[namespace]

    def enter_room(self, sid: str, namespace: str, room: str) -> None:
        """Add ``sid`` to ``room``, if it is a client of ``namespace`` here
        (one that left, or never came, would stay in the room for ever: its
        leaving has already emptied its rooms)."""
        check_room(room)
        with self._lock:
            rooms = self._rooms.get(namespace)
            if rooms is None or sid not in rooms.get(None, ()):
                return
            rooms.setdefault(room, set()).add(sid)

    def leave_room(self, sid: str, namespace: str, room: str) -> None:
        """Remove ``sid`` from ``room``."""
        check_room(room)
        with self._lock:
            rooms = self._rooms.get(namespace)
            if rooms and room in rooms:
                self._discard(rooms, room, sid)

    def close_room(self, room: str, namespace: str) -> None:
        """Empty ``room``."""
        check_room(room)
        with self._lock:
            rooms = self._rooms.get(namespace)
            if rooms:
                rooms.pop(room, None)

    def is_connected(self, sid: str, namespace: str) -> bool:
        """Whether ``sid`` is a client of this process in ``namespace``."""
        with self._lock:
            return sid in self._rooms.get(namespace, {}).get(None, ())

    def get_rooms(self, sid: str, namespace: str) -> list[str]:
        """The named rooms ``sid`` is in (its own sid-room included)."""
        with self._lock:
            rooms = self._rooms.get(namespace, {})
            return [r for r, members in rooms.items() if r is not None and sid in members]

    def get_participants(self, namespace: str, room: str | None) -> list[str]:
        """The sids in ``room`` (``None``: everyone in the namespace)."""
        with self._lock:
            return list(self._rooms.get(namespace, {}).get(room, ()))

    @staticmethod
    def _discard(rooms: dict[str | None, set[str]], room: str | None, sid: str) -> None:
        members = rooms[room]
        members.discard(sid)
        if not members:
            del rooms[room]

    # -- emitting --------------------------------------------------------

    def recipients(self, namespace: str, to: str | Iterable[str] | None,
                   skip_sid: str | Iterable[str] | None = None) -> list[str]:
        """The sids an emit reaches: the union of the rooms in ``to`` (or the
        whole namespace), minus ``skip_sid``."""
        several = None if to is None or isinstance(to, str) else listed_names(to, "to")
        if skip_sid is not None and not isinstance(skip_sid, str):
            skip_sid = listed_names(skip_sid, "skip_sid")
        with self._lock:
            rooms = self._rooms.get(namespace)
            if not rooms:
                return []
            if several is None:
                targets = set(rooms.get(to, ()))
            else:
                targets = set()
                for room in several:
                    targets.update(rooms.get(room, ()))
        if skip_sid is not None:
            if isinstance(skip_sid, str):
                targets.discard(skip_sid)
            else:
                targets.difference_update(skip_sid)
        return list(targets)

    def emit_encoded(self, encoded: str, namespace: str, to: str | Iterable[str] | None = None,
                     skip_sid: str | Iterable[str] | None = None) -> int:
        """Deliver one encoded packet to every recipient. Returns how many."""
        targets = self.recipients(namespace, to, skip_sid)
        for sid in targets:
            self._deliver(sid, namespace, encoded)
        return len(targets)
