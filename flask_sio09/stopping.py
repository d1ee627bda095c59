"""When the process stops, its sessions end so that their clients reconnect elsewhere.

A gunicorn worker told to stop (TERM, HUP, ``--max-requests``), a Werkzeug
reloader restarting its child, an interpreter that exits: without a word, the
sessions of the process would vanish with it, their clients cut off mid-frame
and their disconnect handlers never run. ``Server.go_away`` ends each session
as if its client had left: the disconnect handlers run, a WebSocket gets the
close code 1001 (going away), a waiting poll fails (socket.io-client 0.9 then
handshakes again, reaching a process that serves), and nothing says ``0::``,
which tells a 0.9 client not to come back.

Two moments start it:

* the interpreter's exit, by a hook that ``threading`` runs before it joins the
  WSGI server's threads (hub mode under gunicorn ends up there at once: the
  hub's connections are no requests of gunicorn's, so it has none to wait for);
* under gunicorn, the server's monitor seeing the worker's graceful stop begin
  (``worker_stopping``): a gthread worker waits up to ``--graceful-timeout``
  for its requests, and thread mode's WebSockets and long polls are requests,
  which end only when told to.
"""

from __future__ import annotations

import concurrent.futures.thread  # noqa: F401  (its exit hook must be registered before ours)
import logging
import signal
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import Server

logger = logging.getLogger("flask_sio09")

#: why a session ends when its process stops
GOING_AWAY = "server going away"
#: the close code of a WebSocket whose server goes away (RFC 6455 §7.4.1)
GOING_AWAY_CODE = 1001
#: how long the exit waits for the disconnect handlers and the last writes
EXIT_WAIT_SECONDS = 5.0
#: how often the monitor looks whether its gunicorn worker began to stop
STOP_LOOK_SECONDS = 0.1

_servers: weakref.WeakSet[Server] = weakref.WeakSet()
_hook_lock = threading.Lock()
_hooked = False


def watch(server: Server) -> None:
    """Have ``server``'s sessions end when the interpreter exits."""
    global _hooked
    _servers.add(server)
    with _hook_lock:
        if _hooked:
            return
        _hooked = True
    # ``threading._register_atexit`` (Python 3.9+) runs before the interpreter
    # joins non-daemon threads (the WSGI server's request threads), after
    # ``concurrent.futures``' own hook (registered earlier: imported above),
    # and before ``atexit``'s hooks (the message queue's forgets the
    # sessions' records: their disconnect handlers run first)
    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_at_exit)
        except RuntimeError:  # the interpreter is exiting already
            pass


def _at_exit() -> None:
    servers = [server for server in list(_servers) if server.serving()]
    for server in servers:
        server.go_away()  # (again, if the monitor began: the sessions that came since)
    wait = exit_wait(gunicorn_worker())
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not all(server.gone() for server in servers):
        time.sleep(0.02)
    left = sum(server.left_behind() for server in servers)
    if left:
        logger.warning("the server stops: %d sessions still had disconnect handlers running "
                       "(or waiting) after %.1f s; the process exits without them", left, wait)
    # thread mode's WebSockets end on their own threads, their close frame
    # after the session let go of them; any still open (a session that was
    # not this hook's to end) ends now. Waited for: the interpreter would not
    # wait for Werkzeug's threads, which are daemons
    thread_websocket = sys.modules.get(__package__ + ".thread_websocket")
    if thread_websocket is not None:
        thread_websocket.end_all()
        deadline = max(deadline, time.monotonic() + 1.0)
        while time.monotonic() < deadline and thread_websocket.open_count():
            time.sleep(0.02)


def exit_wait(worker: Any | None) -> float:
    """How long the exit waits for the disconnect handlers: at most
    ``EXIT_WAIT_SECONDS``, and well within a gunicorn worker's
    ``--graceful-timeout``, after which its master kills it."""
    graceful = getattr(getattr(worker, "cfg", None), "graceful_timeout", None)
    if isinstance(graceful, (int, float)) and graceful > 0:
        return min(EXIT_WAIT_SECONDS, 0.6 * graceful)
    return EXIT_WAIT_SECONDS


def gunicorn_worker() -> Any | None:
    """The gunicorn worker this process runs, or None. gunicorn shows it
    nowhere but in the signal handlers it installs: ``handle_exit``, its
    SIGTERM handler, is a method of the worker."""
    try:
        handler = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return None
    worker = getattr(handler, "__self__", None)
    if worker is None or not type(worker).__module__.startswith("gunicorn.") \
            or not hasattr(worker, "alive"):
        return None
    return worker


def worker_stopping(worker: Any | None) -> bool:
    """Whether the gunicorn ``worker`` (from ``gunicorn_worker``) has begun
    to stop: its SIGTERM handler turned ``alive`` off."""
    return worker is not None and worker.alive is False
