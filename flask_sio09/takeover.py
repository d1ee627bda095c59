"""Taking a connection's socket away from the WSGI server, for the hub.

Gunicorn and Werkzeug put the connection's socket in the environ. After the
HTTP part of a request, the hub adopts the connection and the WSGI call ends
as if nothing happened, so the server's thread is free at once.
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any


def can_take_over(environ: dict[str, Any]) -> bool:
    """True when the WSGI server exposes a plain (non-TLS) socket that the hub
    can adopt: gunicorn and Werkzeug do."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    return isinstance(sock, socket.socket) and environ.get("wsgi.url_scheme") != "https" \
        and sock.type == socket.SOCK_STREAM


def take_over_socket(environ: dict[str, Any]) -> socket.socket:
    """Adopt the request's connection for the hub.

    The hub gets a duplicate of the file descriptor. The server's own fd number
    is then pointed (``dup2``) at a socket whose peer is already closed, so
    whatever the server does next (write a response, drain, shutdown, close)
    touches only that dead socket and never our TCP connection, and its own
    bookkeeping stays as for any finished request.
    """
    original: socket.socket = environ.get("gunicorn.socket") or environ["werkzeug.socket"]
    adopted = socket.socket(fileno=os.dup(original.fileno()))
    os.dup2(_dead_socket().fileno(), original.fileno())
    adopted.setblocking(False)
    if adopted.family in (socket.AF_INET, socket.AF_INET6):
        # the hub writes each flush in one send: Nagle's algorithm would only
        # hold a small write back until the client ACKs the previous one, up
        # to its delayed-ACK time (Node's 0.9 WebSocket transport disables it
        # too; gunicorn's sockets inherit it from the listener, Werkzeug's not)
        try:
            adopted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
    return adopted


_dead: socket.socket | None = None
_dead_lock = threading.Lock()


def _dead_socket() -> socket.socket:
    """One socket whose peer is closed, made once: every taken-over descriptor
    number is pointed at it (it reads end-of-stream, writes fail quietly)."""
    global _dead
    if _dead is None:
        with _dead_lock:
            if _dead is None:
                dead, peer = socket.socketpair()
                peer.close()
                _dead = dead
    return _dead
