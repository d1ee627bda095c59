"""The Flask application that the integration and end-to-end suites talk to.

It uses only the public surface of ``API.md``. Its options come from environment
variables so that one module serves every server kind the fixtures start
(``sio.run``, ``flask run``, ``gunicorn -k gthread``):

- ``SIO09_TEST_TRANSPORTS``: ``transports`` (comma separated)
- ``SIO09_TEST_HEARTBEAT_INTERVAL``: ``heartbeat_interval`` (seconds)
- ``SIO09_TEST_HEARTBEAT_TIMEOUT``: ``heartbeat_timeout`` (seconds)
- ``SIO09_TEST_CLOSE_TIMEOUT``: ``close_timeout`` (seconds)
- ``SIO09_TEST_POLLING_DURATION``: ``polling_duration`` (seconds)
- ``SIO09_TEST_MAX_HTTP_BUFFER_SIZE``: ``max_http_buffer_size`` (bytes)
- ``SIO09_TEST_MAX_OUTBOX_BYTES``: ``max_outbox_bytes`` (bytes)
- ``SIO09_TEST_WEBSOCKET_MODE``: ``websocket_mode``
- ``SIO09_TEST_MESSAGE_QUEUE``: ``message_queue`` (a Redis URL)
- ``SIO09_TEST_HANDLER_THREADS``: ``handler_threads``
- ``SIO09_TEST_LOGGER``: ``logger`` (``1`` means ``True``)
- ``SIO09_TEST_JOURNAL``: a file the event journal (``/events``) is also written to
- ``SIO09_TEST_LOG_LEVELS``: ``1`` writes every log line as ``LEVEL:logger:message``
  (so that tests can count ERROR lines); Werkzeug's access lines are then left out
- ``SIO09_TEST_CORS_ALLOWED_ORIGINS``: ``cors_allowed_origins`` (``*`` or a comma
  separated list)

Server-side effects (connects, disconnects, answers to server ``callback=`` emits)
are recorded in memory and exposed as JSON at ``GET /events`` so that tests can
assert them; ``GET /events?sid=<sid>`` filters by session id.

``wait_gate(name)`` is a handler that blocks until a test opens gate ``name``
(``POST /gates/<name>/open``); ``GET /gates/<name>`` tells how many handlers wait
on it now, at most at once, and in all. Tests of slow handlers use it so that
nothing depends on timing.

``POST /kill_connections`` (test only) shuts down, at the TCP level, every
connection a session's transport requests came in on, to test how clients
survive a network drop. It needs the WSGI server's socket in the environ and a
transport that keeps using it (``websocket_mode="thread"``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from flask import Flask, abort, has_request_context, jsonify, request, send_file

from flask_sio09 import (
    SocketIO,
    disconnect,
    emit,
    join_room,
    leave_room,
    rooms,
    send,
)

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
VENDOR_JS = REPO_ROOT / "vendor" / "socket.io.js"
TEST_PAGE = HERE / "e2e_page.html"

_NUMERIC_OPTIONS = {
    "HEARTBEAT_INTERVAL": "heartbeat_interval",
    "HEARTBEAT_TIMEOUT": "heartbeat_timeout",
    "CLOSE_TIMEOUT": "close_timeout",
    "POLLING_DURATION": "polling_duration",
    "MAX_HTTP_BUFFER_SIZE": "max_http_buffer_size",
    "MAX_OUTBOX_BYTES": "max_outbox_bytes",
    "HANDLER_THREADS": "handler_threads",
}


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def options_from_env(environ=os.environ) -> dict:
    """Map the ``SIO09_TEST_*`` environment variables to SocketIO keyword options."""
    options: dict = {}
    transports = environ.get("SIO09_TEST_TRANSPORTS")
    if transports:
        options["transports"] = tuple(t.strip() for t in transports.split(",") if t.strip())
    for suffix, option in _NUMERIC_OPTIONS.items():
        value = environ.get("SIO09_TEST_" + suffix)
        if value:
            options[option] = _number(value)
    queue = environ.get("SIO09_TEST_MESSAGE_QUEUE")
    if queue:
        options["message_queue"] = queue
    mode = environ.get("SIO09_TEST_WEBSOCKET_MODE")
    if mode:
        options["websocket_mode"] = mode
    if environ.get("SIO09_TEST_LOGGER") == "1":
        options["logger"] = True
    origins = environ.get("SIO09_TEST_CORS_ALLOWED_ORIGINS")
    if origins:
        options["cors_allowed_origins"] = (
            "*" if origins == "*" else [o.strip() for o in origins.split(",") if o.strip()]
        )
    return options


if os.environ.get("SIO09_TEST_LOG_LEVELS") == "1":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s:%(name)s:%(message)s")

app = Flask(__name__)
app.config["SECRET_KEY"] = "e2e-tests-only"
sio = SocketIO(app, **options_from_env())

# ---------------------------------------------------------------------------
# the connections behind POST /kill_connections
# ---------------------------------------------------------------------------

_connections: dict[str, set] = {}
_connections_lock = threading.Lock()


class _RecordConnections:
    """Notes the raw socket of every ``/socket.io/1/<transport>/<sid>`` request."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        sock = environ.get("werkzeug.socket") or environ.get("gunicorn.socket")
        parts = environ.get("PATH_INFO", "").split("/")
        if isinstance(sock, socket.socket) and len(parts) >= 5 and parts[1] == "socket.io" \
                and parts[3] and parts[4]:
            with _connections_lock:
                _connections.setdefault(parts[4], set()).add(sock)
        return self.wsgi_app(environ, start_response)


app.wsgi_app = _RecordConnections(app.wsgi_app)


@app.post("/kill_connections")
def kill_connections():
    """Shut down the TCP connections of session ``sid`` (JSON body ``{"sid": ...}``)."""
    sid = request.get_json(force=True)["sid"]
    with _connections_lock:
        sockets = _connections.pop(sid, set())
    killed = 0
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
            killed += 1
        except OSError:  # already closed
            pass
    return jsonify({"killed": killed})

# ---------------------------------------------------------------------------
# the event journal behind GET /events
# ---------------------------------------------------------------------------

_events: list[dict] = []
#: SIO09_TEST_JOURNAL: a file that every recorded event is appended to as well
JOURNAL = os.environ.get("SIO09_TEST_JOURNAL")
_events_lock = threading.Lock()


def record(kind: str, **fields) -> None:
    entry = {
        "event": kind,
        "sid": getattr(request, "sid", None) if has_request_context() else None,
        "namespace": getattr(request, "namespace", None) if has_request_context() else None,
        "time": time.time(),
    }
    entry.update(fields)
    with _events_lock:
        _events.append(entry)
        if JOURNAL:  # (outlives the process: what a stopping server did)
            with open(JOURNAL, "a", encoding="utf-8") as journal:
                journal.write(json.dumps(entry, default=repr) + "\n")


def _multidict(query) -> dict:
    """A MultiDict (or None) as a plain JSON-able dict of lists."""
    if query is None:
        return {}
    if hasattr(query, "to_dict"):
        return query.to_dict(flat=False)
    return dict(query)


# ---------------------------------------------------------------------------
# plain HTTP routes
# ---------------------------------------------------------------------------


@app.get("/")
def index():
    return send_file(TEST_PAGE, mimetype="text/html")


@app.get("/vendor/socket.io.js")
def vendor_client():
    if not VENDOR_JS.is_file():
        abort(404, "vendor/socket.io.js is missing: run `make vendor`")
    return send_file(VENDOR_JS, mimetype="application/javascript")


@app.get("/events")
def events():
    sid = request.args.get("sid")
    with _events_lock:
        found = [dict(e) for e in _events if sid is None or e.get("sid") == sid]
    return jsonify(found)


@app.get("/healthz")
def healthz():
    return "ok"


@app.get("/big")
def big():
    """16 MiB streamed in 64 KiB parts (a download a client may read slowly)."""
    part = b"x" * 65536
    return app.response_class((part for _ in range(256)), mimetype="application/octet-stream")


@app.get("/scheme")
def scheme():
    """What the WSGI server made of the proxy headers (kept-connection tests)."""
    return {"scheme": request.environ["wsgi.url_scheme"],
            "script_name": request.environ.get("SCRIPT_NAME", ""),
            "path": request.environ.get("PATH_INFO", "")}


@app.get("/session_count")
def session_count():
    """How many sessions the server holds (handshakes not yet used included),
    for tests that wait for the server to forget some."""
    return jsonify(len(app.extensions["sio09"].server.sessions))


@app.get("/attached")
def attached():
    """Whether session ``sid`` has a transport now (a poll waiting, say)."""
    session = app.extensions["sio09"].server.sessions.get(request.args.get("sid", ""))
    return jsonify(session is not None and session.transport is not None)


@app.post("/server_emit")
def server_emit():
    """Emit from outside any Socket.IO handler (``sio.emit`` from another request).

    JSON body: ``{"event": str, "args": list, "to": str|null, "namespace": str,
    "count": int}``; with ``count`` the event is emitted that many times with the
    sequence number appended to its args.
    """
    body = request.get_json(force=True)
    event = body["event"]
    args = list(body.get("args", []))
    to = body.get("to")
    namespace = body.get("namespace", "")
    count = body.get("count")
    if count is None:
        sio.emit(event, *args, to=to, namespace=namespace)
    else:
        for i in range(int(count)):
            sio.emit(event, *args, i, to=to, namespace=namespace)
    return jsonify({"ok": True})


# ---------------------------------------------------------------------------
# global namespace
# ---------------------------------------------------------------------------


@sio.on("connect")
def on_connect(query=None):
    record("connect", query=_multidict(query), args=request.args.to_dict(flat=False))
    if query is not None and query.get("boot") == "1":
        # accepted, told something, then disconnected: the client sees all three
        emit("before_boot", 1)
        disconnect()


@sio.on("disconnect")
def on_disconnect():
    record("disconnect")


@sio.on("echo")
def echo(*args):
    """The return value is the ack (a tuple acks several args)."""
    return args


@sio.on("echo_kw")
def echo_kw(*args, ack=None):
    """The injected ``ack`` keyword answers with every argument."""
    if ack is not None:
        ack(*args)


@sio.on("ack_many")
def ack_many(ack=None):
    ack("woot", 2, {"three": [3, "drei"]}, None, True, "😀")


@sio.on("whoami")
def whoami():
    return request.sid, request.namespace


@sio.on("pid")
def pid():
    """The process that holds the session (message_queue tests, several processes)."""
    return os.getpid()


@sio.on("kick")
def kick(sid):
    """Disconnect another client, which another process may hold."""
    disconnect(sid=sid)
    return "kicked"


@sio.on("ask_sid")
def ask_sid(sid, question):
    """Ask another client (``callback=``), which another process may hold;
    its answer is recorded here, in the asking process."""
    def answered(*answer):
        record("sid_answer", asked=sid, answer=list(answer))

    sio.emit("question", question, to=sid, callback=answered)
    return "asked"


@sio.on("enroll")
def enroll(sid, room):
    """Put another client in a room, whichever process holds it."""
    join_room(room, sid=sid)
    return "enrolled"


@sio.on("message")
def on_message(data, ack=None):
    record("message", data=data)
    if ack is not None:
        ack(data)


@sio.on("join")
def on_join(room):
    join_room(room)
    return sorted(rooms(), key=str)


@sio.on("leave")
def on_leave(room):
    leave_room(room)
    return sorted(rooms(), key=str)


@sio.on("to_room")
def to_room(room, payload, include_self=False):
    emit("room_msg", payload, to=room, include_self=include_self)
    return "sent"


@sio.on("broadcast")
def on_broadcast(payload, include_self=True):
    emit("broadcast_msg", payload, broadcast=True, include_self=include_self)
    return "sent"


@sio.on("ask_client")
def ask_client(question):
    """Ask the client with ``callback=``; its answer is recorded and sent back."""
    sid = request.sid
    namespace = request.namespace

    def answered(*answer):
        record("client_answer", sid=sid, namespace=namespace, answer=list(answer))
        sio.emit("client_answered", list(answer), to=sid, namespace=namespace)

    emit("question", question, callback=answered)
    return "asked"


@sio.on("send_asking")
def send_asking(text):
    """``send`` with ``callback=``: the client's ack (automatic for a message,
    as browsers answer one) is sent back as ``send_answered``."""
    sid = request.sid

    def answered(*answer):
        record("send_answer", sid=sid, answer=list(answer))
        sio.emit("send_answered", list(answer), to=sid)

    send(text, callback=answered)


@sio.on("emit_many")
def emit_many(count, event="seq"):
    """Emit ``count`` events ``event(i)`` to the sender, all from the handler."""
    for i in range(int(count)):
        emit(event, i)
    return int(count)


@sio.on("burst")
def burst(count, size):
    """Broadcast ``count`` events ``b(i, text)`` of ``size`` characters, back to back."""
    text = "x" * int(size)
    for i in range(int(count)):
        emit("b", i, text, broadcast=True)
    return int(count)


@sio.on("emit_texts")
def emit_texts(texts):
    """Emit one ``text`` event per string, back to back (batched on polling)."""
    for text in texts:
        emit("text", text)
    return len(texts)


@sio.on("emit_many_background")
def emit_many_background(count, delay=0.01, event="seq"):
    """Emit ``count`` events from a background thread, ``delay`` seconds apart."""
    sid = request.sid
    namespace = request.namespace

    def run():
        for i in range(int(count)):
            sio.emit(event, i, to=sid, namespace=namespace)
            sio.sleep(delay)

    sio.start_background_task(run)
    return "started"


@sio.on("emit_concurrently")
def emit_concurrently(threads, count, event="par"):
    """Start ``threads`` background threads that each emit ``event(t, i)``
    for i in 0..count-1 to the sender, all at once."""
    sid = request.sid
    namespace = request.namespace
    start = threading.Barrier(int(threads))

    def run(t):
        start.wait(30)
        for i in range(int(count)):
            sio.emit(event, t, i, to=sid, namespace=namespace)

    for t in range(int(threads)):
        sio.start_background_task(run, t)
    return "started"


@sio.on("server_disconnect")
def server_disconnect():
    record("server_disconnect_called")
    disconnect()


@sio.on("send_text")
def send_text(text):
    send(text)


# ---------------------------------------------------------------------------
# gates: handlers that block until a test lets them go
# ---------------------------------------------------------------------------

#: a handler never waits on a gate longer than this (a test that failed before
#: opening its gate must not leave threads blocked for the rest of the session)
GATE_LIMIT_SECONDS = 120


class _Gate:
    def __init__(self) -> None:
        self.opened = threading.Event()
        self.waiting = 0  # handlers blocked on the gate now
        self.peak = 0  # the most that were blocked on it at once
        self.entered = 0  # handlers that reached it in all


_gates: dict[str, _Gate] = {}
_gates_lock = threading.Lock()


def _gate(name: str) -> _Gate:
    with _gates_lock:
        return _gates.setdefault(name, _Gate())


@app.post("/gates/<name>/open")
def open_gate(name):
    """Let every handler waiting on gate ``name`` go (and any that comes later)."""
    _gate(name).opened.set()
    return jsonify({"ok": True})


@app.get("/gates/<name>")
def gate_state(name):
    gate = _gate(name)
    with _gates_lock:
        return jsonify({"waiting": gate.waiting, "peak": gate.peak,
                        "entered": gate.entered, "open": gate.opened.is_set()})


@sio.on("wait_gate")
def wait_gate(name, tag=None):
    """Block until gate ``name`` is opened; the ack is ``["released", tag]``
    (``["gave up", tag]`` after ``GATE_LIMIT_SECONDS``)."""
    gate = _gate(name)
    with _gates_lock:
        gate.waiting += 1
        gate.entered += 1
        gate.peak = max(gate.peak, gate.waiting)
    try:
        opened = gate.opened.wait(GATE_LIMIT_SECONDS)
    finally:
        with _gates_lock:
            gate.waiting -= 1
    return ("released" if opened else "gave up"), tag


# ---------------------------------------------------------------------------
# /private: a namespace guarded by the connect handler's query
# ---------------------------------------------------------------------------


@sio.on("connect", namespace="/private")
def private_connect(query=None):
    allowed = query is not None and query.get("token") == "ok"
    record(
        "connect",
        query=_multidict(query),
        args=request.args.to_dict(flat=False),
        allowed=allowed,
    )
    if not allowed:
        return False


@sio.on("disconnect", namespace="/private")
def private_disconnect():
    record("disconnect")


@sio.on("echo", namespace="/private")
def private_echo(*args):
    return args


@sio.on("whoami", namespace="/private")
def private_whoami():
    return request.sid, request.namespace


@sio.on("server_disconnect", namespace="/private")
def private_server_disconnect():
    record("server_disconnect_called")
    disconnect()
