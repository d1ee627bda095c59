"""The bench's echo + broadcast app on flask_sio09.

Run by bench/run.py as ``gunicorn -k gthread -w 1 --threads N sio09_app:app``.
Environment:

* ``SIO09_BENCH_MODE``: the ``websocket_mode`` option (``thread``, ``hub`` or ``auto``).
* ``HEARTBEAT_INTERVAL`` and ``HEARTBEAT_TIMEOUT``: seconds (the idle workload
  shortens them so that a short hold sees several heartbeats).

Events, the same on every server of the bench: ``echo`` acks with the data it
got; ``bcast`` sends ``b`` with the data to every client, then acks.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from flask import Flask

from flask_sio09 import SocketIO

MODE = os.environ.get("SIO09_BENCH_MODE", "thread")

# The option is accepted before the hub exists; refuse to start rather than
# measure thread mode under the name "hub".
if MODE == "hub" and importlib.util.find_spec("flask_sio09.hub") is None:
    sys.exit("sio09_app: websocket_mode='hub' asked, but this flask_sio09 has no hub module")

app = Flask(__name__)
sio = SocketIO(app,
               websocket_mode=MODE,
               transports=("websocket", "xhr-polling"),
               heartbeat_interval=float(os.environ.get("HEARTBEAT_INTERVAL", 25)),
               heartbeat_timeout=float(os.environ.get("HEARTBEAT_TIMEOUT", 60)))


@sio.on("echo")
def echo(data: object) -> object:
    # the return value becomes the ack's arguments
    return data


@sio.on("bcast")
def bcast(data: object) -> None:
    sio.emit("b", data)
