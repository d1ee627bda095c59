"""Taking a connection's socket away from the WSGI server, for the hub.

Gunicorn and Werkzeug put the connection's socket in the environ. After the
HTTP part of a request, the hub adopts the connection and the WSGI call ends
as if nothing happened, so the server's thread is free at once.
"""

from __future__ import annotations

import io
import logging
import os
import select
import socket
import ssl
import struct
import sys
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("flask_sio09")

#: descriptors the hub leaves to the rest of the process: the WSGI server's own
#: connections (gunicorn's ``--worker-connections`` is 1000 by default), files,
#: Redis and the like
FD_RESERVE = 1100
#: descriptors the rest of the process may need beside the WSGI server's
#: connections (listening socket, pipes, log files, Redis)
FD_OTHERS = 100
#: the highest soft open-file limit the hub asks for (Linux's default ``nr_open``)
FD_LIMIT_WANTED = 1 << 20


def client_socket(environ: dict[str, Any]) -> socket.socket | None:
    """The request's connection, where the WSGI server shows it (gunicorn and
    Werkzeug do), else None."""
    sock = environ.get("gunicorn.socket") or environ.get("werkzeug.socket")
    return sock if isinstance(sock, socket.socket) else None


def can_take_over(environ: dict[str, Any]) -> bool:
    """True when the WSGI server exposes a plain (non-TLS) socket that the hub
    can adopt: gunicorn and Werkzeug do.

    The socket says whether it carries TLS, not ``wsgi.url_scheme``: a proxy's
    ``X-Forwarded-Proto`` sets the scheme (gunicorn trusts it from local
    proxies, ``ProxyFix`` from anyone), so ``http`` on a TLS socket would hand
    TLS records to the hub, and ``https`` behind a TLS-ending proxy would keep
    plain connections away from it."""
    sock = client_socket(environ)
    return sock is not None and not isinstance(sock, ssl.SSLSocket) \
        and sock.type == socket.SOCK_STREAM


def connection_capacity(server_connections: int | None = None) -> int:
    """How many connections the hub may take: the process's open-file limit
    less a reserve (``FD_RESERVE``, at most a quarter of the limit) for the
    rest of the process. The soft limit is first raised to the hard one, as
    a server meant for thousands of connections should.

    Past the limit, gunicorn's gthread worker dies on its next ``accept()``
    (EMFILE), and every connection it holds with it. gunicorn's
    ``--worker-connections`` would stop it before that, but a connection the
    hub took has left gunicorn's count: so the hub stops taking connections
    first (see ``transports.hub_full``).

    :param server_connections: how many connections the WSGI server may hold
        itself (gunicorn's ``--worker-connections``), when known: the reserve
        leaves room for them and ``FD_OTHERS`` more, up to half the limit (a
        WARNING says when that is not enough).
    """
    try:
        import resource
    except ImportError:  # not a POSIX system: no limit to read
        return 1 << 30
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_LIMIT_WANTED if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT_WANTED)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass
        else:
            logger.info("open-file limit raised from %d to %d (the hard limit)", soft, wanted)
            soft = wanted
    if soft == resource.RLIM_INFINITY:
        return 1 << 30
    reserve = min(FD_RESERVE, soft // 4)
    if server_connections is not None:
        wanted = server_connections + FD_OTHERS
        reserve = max(reserve, min(wanted, soft // 2))
        if wanted > reserve:
            logger.warning(
                "open-file limit %d: the WSGI server may hold %d connections of its own "
                "(gunicorn's --worker-connections), the hub %d; gunicorn's worker exits "
                "when it runs out of descriptors: raise the limit (ulimit -n) to %d or "
                "more, or lower --worker-connections", soft, server_connections,
                soft - reserve, wanted * 2)
    return max(soft - reserve, 0)


def wsgi_server_connections() -> int | None:
    """How many connections the WSGI server calling us may hold at once
    (gunicorn's ``worker_connections``), found on this thread's stack; None
    for another server or outside a request."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith("gunicorn.workers."):
            count = getattr(getattr(frame.f_locals.get("self"), "cfg", None),
                            "worker_connections", None)
            if isinstance(count, int):
                return count
        frame = frame.f_back
    return None


def peer_closed(sock: socket.socket) -> bool:
    """True when the peer has already closed its side (its end of stream
    waits unread), without waiting and without reading anything.

    A poll checks this before its answer takes packets out of the session:
    written to a client that hung up, they would be lost, while kept they go
    out with its next poll. (A TLS socket cannot peek: it counts as open.)
    """
    # ask the kernel first whether there is anything to read: a blocking
    # socket would wait in recv, and on a non-blocking one the usual answer,
    # nothing, costs an exception
    poller = select.poll()  # (not select(): descriptors may be above 1024)
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except (BlockingIOError, InterruptedError, ValueError):  # ValueError: TLS
        return False
    except OSError:
        return True


def reset_on_close(sock: socket.socket) -> None:
    """Make ``sock``'s close reset the connection (SO_LINGER, 0 s): what its
    peer, which stopped reading, was not sent is dropped, where a graceful
    close would have the kernel keep it (up to the send buffer) for as long
    as the peer stays."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


def read_ahead(environ: dict[str, Any]) -> Callable[[], bytes] | None:
    """How to take the bytes the WSGI server read past this request's head
    (a pipelined request, or a WebSocket client's first frames sent before
    the 101 came), or None when they cannot be found. The returned callable
    never waits for more."""
    stream = environ.get("wsgi.input")
    unreader = getattr(getattr(stream, "reader", None), "unreader", None)
    buf = getattr(unreader, "buf", None)
    if isinstance(buf, io.BytesIO):  # gunicorn
        def from_gunicorn() -> bytes:
            data = unreader.buf.getvalue()
            unreader.buf = io.BytesIO()
            return data
        return from_gunicorn
    if isinstance(stream, io.BufferedReader):  # Werkzeug's rfile
        def from_werkzeug() -> bytes:
            # peek() reads the socket when nothing is buffered: without
            # waiting (after a takeover it is the dead socket: end of stream)
            sock = client_socket(environ)
            timeout = sock.gettimeout() if sock is not None else None
            try:
                if sock is not None:
                    sock.setblocking(False)
                data = stream.peek()
            except OSError:  # (nothing to read: TLS says so by raising)
                data = b""
            finally:
                if sock is not None:
                    sock.settimeout(timeout)
            stream.read(len(data))
            return data
        return from_werkzeug
    return None


def take_over_socket(environ: dict[str, Any]) -> socket.socket:
    """Adopt the request's connection for the hub.

    The hub gets a duplicate of the file descriptor. The server's own fd number
    is then pointed (``dup2``) at a socket whose peer is already closed, so
    whatever the server does next (write a response, drain, shutdown, close)
    touches only that dead socket and never our TCP connection, and its own
    bookkeeping stays as for any finished request.
    """
    original = client_socket(environ)
    assert original is not None, "can_take_over() said yes"
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
