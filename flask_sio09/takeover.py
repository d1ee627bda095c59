"""Taking a connection's socket away from the WSGI server, for the hub.

Gunicorn and Werkzeug put the connection's socket in the environ. After the
HTTP part of a request, the hub adopts the connection and the WSGI call ends
as if nothing happened, so the server's thread is free at once.
"""

from __future__ import annotations

import os
import socket
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
    dead, peer = socket.socketpair()
    try:
        os.dup2(dead.fileno(), original.fileno())
    finally:
        dead.close()
        peer.close()
    adopted.setblocking(False)
    return adopted
