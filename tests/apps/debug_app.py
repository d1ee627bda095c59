"""An app that ``tests.apps.run_sio`` serves with ``debug=True`` (no reloader):
its ``/boom`` route raises, for Werkzeug's debugger to show."""

from flask import Flask

from flask_sio09 import SocketIO

#: read by tests.apps.run_sio
RUN_DEBUG = True

app = Flask(__name__)
sio = SocketIO(app, logger=True)


@app.route("/")
def healthz():
    return "ok"


@app.route("/boom")
def boom():
    raise RuntimeError("boom, for the debugger")


@sio.on("echo")
def echo(*args):
    return args
