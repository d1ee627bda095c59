"""gevent-socketio's classic chat, ported with ``flask_sio09.compat`` (page ``/classic``).

This is the pattern of gevent-socketio's ``examples/simple_chat``: one
``BaseNamespace`` subclass with ``RoomsMixin`` and ``BroadcastMixin``, its
``on_<event>`` and ``recv_*`` methods, ``self.session`` for the connection's
nickname and a shared ``request`` object for the list of nicknames. What the
port changed:

* ``socketio_manage(sio, {...}, request=...)`` runs once at set-up; the
  Socket.IO view of the gevent-socketio application is gone;
* the shared nickname list is guarded by a lock: methods of different clients
  run on different threads;
* the ``nickname`` ack is answered through the ack callable that the layer
  appends to the method's arguments;
* the ACL keeps everything but the nickname closed until one is chosen.

Everything happens in the ``/classic`` namespace.

Client to server: ``nickname`` (nick) with an ack (True: accepted, False: taken
or not valid); ``user message`` (text), relayed to the others in the room as
``msg_to_room`` (nick, text); a plain message (``socket.send``), answered with
the message ``pong: <text>``.

Server to client: ``announcement`` (text), ``nicknames`` ([nick, ...]),
``msg_to_room`` (nick, text), and ``error`` (name, message) when the ACL
refuses an event.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from flask import Blueprint, Flask, render_template

from flask_sio09 import SocketIO
from flask_sio09.compat import BaseNamespace, BroadcastMixin, RoomsMixin, socketio_manage

NAMESPACE = "/classic"
ROOM = "main_room"
MAX_MESSAGE_LENGTH = 2000
_VALID_NICK = re.compile(r"^[\w .'-]{1,32}$")

bp = Blueprint("classic", __name__)

# The object gevent-socketio's example passed to socketio_manage as `request`:
# every namespace instance sees it as self.request.
shared_state: dict[str, Any] = {"nicknames": []}
_lock = threading.Lock()


@bp.get("/classic")
def page() -> str:
    return render_template("classic.html")


class ClassicChat(BaseNamespace, RoomsMixin, BroadcastMixin):
    """One instance per connection to ``/classic``."""

    def get_initial_acl(self) -> set[str]:
        return {"recv_connect", "on_nickname", "recv_message", "recv_disconnect"}

    def on_nickname(self, nickname: object, ack: Any = None) -> None:
        nick = nickname.strip() if isinstance(nickname, str) else ""
        names = self.request["nicknames"]
        with _lock:
            accepted = bool(_VALID_NICK.match(nick)) and nick not in names
            if accepted:
                old = self.session.get("nickname")
                if old in names:
                    names.remove(old)
                names.append(nick)
                roster = sorted(names)
        if ack:
            ack(accepted)
        if not accepted:
            return
        self.session["nickname"] = nick
        self.lift_acl_restrictions()
        self.join(ROOM)
        self.broadcast_event("announcement", f"{nick} has connected")
        self.broadcast_event("nicknames", roster)

    def on_user_message(self, text: object) -> None:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_MESSAGE_LENGTH:
            return
        # the sender shows its own line; the others get it from the room
        self.emit_to_room(ROOM, "msg_to_room", self.session["nickname"], text)

    def recv_message(self, message: str) -> None:
        self.send(f"pong: {message}")

    def recv_disconnect(self) -> None:
        nick = self.session.pop("nickname", None)
        if nick is not None:
            with _lock:
                names = self.request["nicknames"]
                if nick in names:
                    names.remove(nick)
                roster = sorted(names)
            self.broadcast_event("announcement", f"{nick} has disconnected")
            self.broadcast_event("nicknames", roster)
        self.disconnect(silent=True)


def register(app: Flask, sio: SocketIO) -> None:
    """Add the page and the namespace to the example app."""
    app.register_blueprint(bp)
    socketio_manage(sio, {NAMESPACE: ClassicChat}, request=shared_state)
