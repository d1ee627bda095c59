"""The bench's echo + broadcast app on Flask-SocketIO 5 (threading mode).

Run by bench/run.py from the peers' own venv (bench/.peers/venv) as
``gunicorn -k gthread -w 1 --threads N fsio_app:app``; WebSockets are served by
simple-websocket, a thread per connection, as Flask-SocketIO documents for
gunicorn's threaded worker. ``HEARTBEAT_INTERVAL`` (seconds) sets
``ping_interval``.

Events, the same on every server of the bench: ``echo`` acks with the data it
got; ``bcast`` sends ``b`` with the data to every client, then acks.
"""

from __future__ import annotations

import os

from flask import Flask
from flask_socketio import SocketIO

app = Flask(__name__)
interval = float(os.environ.get("HEARTBEAT_INTERVAL", 25))
socketio = SocketIO(app, async_mode="threading", ping_interval=interval,
                    ping_timeout=max(20.0, interval * 2))


@socketio.on("echo")
def echo(data: object) -> object:
    # the return value becomes the ack's arguments
    return data


@socketio.on("bcast")
def bcast(data: object) -> None:
    socketio.emit("b", data)
