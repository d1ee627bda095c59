"""The classic Socket.IO 0.9 chat, served by flask_sio09.

Run it with any of::

    make run                                   # sets up, then python -m example_app
    flask --app example_app run
    gunicorn -k gthread --threads 50 -w 1 example_app:app

Everything happens in the ``/chat`` namespace.

Client to server:

``nickname`` (nick) with an ack
    The ack answers ``True`` when the nickname is now yours, ``False`` when it is taken
    or not a valid nickname.
``join`` (room) with an ack
    Leave the current room and enter ``room``; the ack carries the room's name, or
    ``None`` when the name is not valid. Everyone starts in ``lobby``.
``user message`` (text)
    Sent to everyone in the sender's room, the sender included, as
    ``user message`` (nick, text).
``typing`` (bool)
    Sent to the rest of the room as ``typing`` (nick, bool).

Server to client: ``nicknames`` (room, [nick, ...]) whenever who is in a room changes,
``announcement`` (text), ``user message`` and ``typing``.

``/classic`` serves a second page: gevent-socketio's classic chat ported with the
compatibility layer, in the ``/classic`` namespace (see ``example_app/classic.py``).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, Response, render_template, request, send_file

from flask_sio09 import SocketIO, emit, join_room, leave_room

NAMESPACE = "/chat"
DEFAULT_ROOM = "lobby"
MAX_MESSAGE_LENGTH = 2000
_VALID_NAME = re.compile(r"^[\w .'-]{1,32}$")

# socket.io-client 0.9.16 is fetched from npm by `make vendor`, never committed.
CLIENT_JS = Path(__file__).resolve().parent.parent / "vendor" / "socket.io.js"

app = Flask(__name__)
sio = SocketIO(app)


@dataclass
class _User:
    nick: str | None = None
    room: str = DEFAULT_ROOM


# sid -> _User, for every client connected to /chat. Handlers run on many threads.
_users: dict[str, _User] = {}
_users_lock = threading.Lock()


def _room_key(room: str) -> str:
    # Chat rooms get a prefix so that no one can join a room named after another
    # client's sid (every sid is a room of its own).
    return "room:" + room


def _valid_name(name: object) -> str | None:
    if not isinstance(name, str):
        return None
    name = name.strip()
    return name if _VALID_NAME.match(name) else None


def _nicknames(room: str) -> list[str]:
    """The nicknames in ``room``; call with ``_users_lock`` held."""
    return sorted(u.nick for u in _users.values() if u.room == room and u.nick)


def _announce_room(room: str, skip_sid: str | None = None) -> None:
    with _users_lock:
        names = _nicknames(room)
    sio.emit("nicknames", room, names, to=_room_key(room), skip_sid=skip_sid,
             namespace=NAMESPACE)


@app.get("/")
def index() -> str:
    return render_template("index.html")


@app.get("/vendor/socket.io.js")
def vendor_client() -> Response:
    if not CLIENT_JS.is_file():
        return Response("socket.io-client is missing: run `make run` to fetch "
                        "socket.io-client 0.9.16\n", status=404, mimetype="text/plain")
    return send_file(CLIENT_JS, mimetype="application/javascript")


@sio.on("connect", namespace=NAMESPACE)
def on_connect() -> None:
    with _users_lock:
        _users[request.sid] = _User()
    join_room(_room_key(DEFAULT_ROOM))


@sio.on("disconnect", namespace=NAMESPACE)
def on_disconnect() -> None:
    with _users_lock:
        user = _users.pop(request.sid, None)
    if user is None or user.nick is None:
        return
    sio.emit("announcement", f"{user.nick} left", to=_room_key(user.room),
             skip_sid=request.sid, namespace=NAMESPACE)
    _announce_room(user.room, skip_sid=request.sid)


@sio.on("nickname", namespace=NAMESPACE)
def on_nickname(nick: object, ack=None) -> None:
    nick = _valid_name(nick)
    with _users_lock:
        user = _users.get(request.sid)
        taken = any(u.nick == nick for sid, u in _users.items() if sid != request.sid)
        accepted = user is not None and nick is not None and not taken
        if accepted:
            old, user.nick = user.nick, nick
            room = user.room
    if ack:
        ack(accepted)
    if not accepted:
        return
    text = f"{nick} joined {room}" if old is None else f"{old} is now {nick}"
    emit("announcement", text, to=_room_key(room))
    _announce_room(room)


@sio.on("join", namespace=NAMESPACE)
def on_join(room: object) -> str | None:
    # No `ack` parameter: if the client asked for an ack, the return value answers it.
    room = _valid_name(room)
    with _users_lock:
        user = _users.get(request.sid)
        if user is None or room is None:
            return None
        old, user.room = user.room, room
        nick = user.nick
    if old == room:
        return room
    leave_room(_room_key(old))
    join_room(_room_key(room))
    if nick:
        emit("announcement", f"{nick} left for {room}", to=_room_key(old))
        emit("announcement", f"{nick} joined {room}", to=_room_key(room))
        _announce_room(old)
    # The newcomer gets the list even before choosing a nickname.
    _announce_room(room)
    return room


@sio.on("user message", namespace=NAMESPACE)
def on_user_message(text: object) -> bool:
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_MESSAGE_LENGTH:
        return False
    with _users_lock:
        user = _users.get(request.sid)
        nick, room = (user.nick, user.room) if user else (None, None)
    if not nick:
        return False
    emit("user message", nick, text, to=_room_key(room))
    return True


@sio.on("typing", namespace=NAMESPACE)
def on_typing(is_typing: object = True) -> None:
    with _users_lock:
        user = _users.get(request.sid)
        nick, room = (user.nick, user.room) if user else (None, None)
    if nick:
        emit("typing", nick, bool(is_typing), to=_room_key(room), include_self=False)


# The second page: gevent-socketio's classic chat on flask_sio09.compat.
from example_app.classic import register as _register_classic  # noqa: E402

_register_classic(app, sio)
