"""A Flash socket policy server, for the legacy ``flashsocket`` transport.

Flash Player asks for a policy before it lets a SWF open a socket: it
connects to the policy port (10843 for socket.io-client 0.9, whose
``flash policy port`` option names it) and sends ``<policy-file-request/>``
and a NUL byte. The answer is a small XML document listing who may connect.

This is off by default and lives apart from the extension: nothing starts it
unless the application calls :func:`serve_policy`. Flash is gone from every
current browser, so only applications that must still serve the Flash
WebSocket shim need it (see docs/transports.md).
"""

from __future__ import annotations

import logging
import re
import selectors
import socket
import threading
import time
from collections.abc import Iterable

logger = logging.getLogger("flask_sio09")

__all__ = ["DEFAULT_PORT", "POLICY_REQUEST", "PolicyServer", "policy_xml", "serve_policy"]

#: the port socket.io-client 0.9 asks by default (``flash policy port``)
DEFAULT_PORT = 10843
#: the exact request Flash Player sends (23 bytes)
POLICY_REQUEST = b"<policy-file-request/>\0"
#: how long a connection may take to send its whole request
READ_TIMEOUT = 5.0
#: after the answer, how long the client may take to close its side
LINGER_SECONDS = 2.0
#: connections held at once; more wait in the listen backlog
MAX_CLIENTS = 256
#: after accept() failed (out of file descriptors, say), the pause before
#: the next try, so that the failure is not retried in a busy loop
ACCEPT_RETRY_SECONDS = 0.5

# host:port patterns as N's ``origins`` setting writes them; the characters
# allowed keep the XML attribute values free of quotes and markup
_PATTERN = re.compile(r"^(\*|[A-Za-z0-9.\-]+):(\*|[0-9]{1,5})$")


def policy_xml(origins: Iterable[str] = ("*:*",)) -> bytes:
    """The policy document: one ``allow-access-from`` per ``host:port``
    pattern (``*`` for any host or port), as N writes it, then the NUL byte
    that ends a message on Flash's XML socket.

    :raises ValueError: a pattern is not ``host:port``, ``host:*``, ``*:port``
                        or ``*:*``.
    """
    entries = []
    for origin in origins:
        match = _PATTERN.match(origin)
        if match is None:
            raise ValueError(f"a Flash policy origin is host:port, host:* or *:port, "
                             f"not {origin!r}")
        host, port = match.groups()
        entries.append(f'<allow-access-from domain="{host}" to-ports="{port}"/>')
    xml = ('<?xml version="1.0"?><!DOCTYPE cross-domain-policy SYSTEM '
           '"http://www.macromedia.com/xml/dtds/cross-domain-policy.dtd">'
           f'<cross-domain-policy>{"".join(entries)}</cross-domain-policy>')
    return xml.encode("ascii") + b"\0"


class _Client:
    """One policy connection: what it sent, and until when it may stay."""

    __slots__ = ("sock", "received", "deadline", "answered")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.received = b""
        self.deadline = deadline
        self.answered = False


class PolicyServer:
    """A TCP server answering policy requests, every connection on one thread.

    One selector thread serves them all, so a client that is silent, or
    sends its request a byte at a time, holds a file descriptor for at most
    ``READ_TIMEOUT`` seconds and no thread; at most ``MAX_CLIENTS`` are held
    at once (the others wait in the listen backlog).

    :param listener: a bound, listening socket.
    :param policy: the bytes sent in answer to :data:`POLICY_REQUEST`.
    """

    def __init__(self, listener: socket.socket, policy: bytes) -> None:
        self._listener = listener
        self._policy = policy
        listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._clients: dict[socket.socket, _Client] = {}
        #: when accepting resumes after a failed accept(), or None
        self._accept_paused_until: float | None = None
        self._listening = False
        self._listen(True)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name="sio09-flash-policy")
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    def _listen(self, on: bool) -> None:
        if on != self._listening:
            if on:
                self._selector.register(self._listener, selectors.EVENT_READ)
            else:
                self._selector.unregister(self._listener)
            self._listening = on

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                self._step()
            except Exception:  # the server must outlive any one bad connection
                logger.exception("flash policy server: a pass failed")
        for client in list(self._clients.values()):
            self._drop(client)
        self._selector.close()

    def _step(self) -> None:
        now = time.monotonic()
        wakes = [c.deadline for c in self._clients.values()]
        if self._accept_paused_until is not None:
            wakes.append(self._accept_paused_until)
        timeout = max(0.0, min(wakes) - now) if wakes else None
        ready = self._selector.select(timeout)
        now = time.monotonic()  # (again: the wait may have been long)
        for key, _ in ready:
            sock = key.fileobj
            if sock is self._wake_r:
                self._wake_r.recv(64)
            elif sock is self._listener:
                self._accept(now)
            else:
                client = self._clients.get(sock)  # type: ignore[call-overload]
                if client is not None:
                    self._read(client)
        now = time.monotonic()
        for client in [c for c in self._clients.values() if now >= c.deadline]:
            self._drop(client)  # silent too long, or done lingering
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
        self._listen(self._accept_paused_until is None and len(self._clients) < MAX_CLIENTS)

    def _accept(self, now: float) -> None:
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            # out of file descriptors, say: the connection stays in the
            # backlog and would fail again at once, so wait before retrying
            logger.warning("flash policy server: accept failed (%s); retrying in %s s",
                           exc, ACCEPT_RETRY_SECONDS)
            self._accept_paused_until = now + ACCEPT_RETRY_SECONDS
            self._listen(False)
            return
        conn.setblocking(False)
        self._clients[conn] = _Client(conn, now + READ_TIMEOUT)
        self._selector.register(conn, selectors.EVENT_READ)

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(4096 if client.answered
                                    else len(POLICY_REQUEST) - len(client.received))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed (or failed)
            self._drop(client)
            return
        if client.answered:
            return  # what it sent after its request: read and dropped
        client.received += data
        if not POLICY_REQUEST.startswith(client.received):
            self._drop(client)  # anything else gets nothing
        elif client.received == POLICY_REQUEST:
            self._answer(client)

    def _answer(self, client: _Client) -> None:
        client.answered = True
        try:
            client.sock.send(self._policy)  # (a few hundred bytes: the buffer takes them)
            # end our side, then let the client end its own before closing:
            # closing with its extra bytes unread would reset the connection
            # and could destroy the answer before it is read
            client.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(client)
            return
        client.deadline = time.monotonic() + LINGER_SECONDS

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.sock, None) is None:
            return
        try:
            self._selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting, close every connection and wait (up to
        ``timeout`` s) for the thread to end."""
        self._stopped.set()
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass
        self._thread.join(timeout)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()

    def __enter__(self) -> PolicyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_policy(host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 origins: Iterable[str] = ("*:*",)) -> PolicyServer:
    """Start answering Flash policy requests on ``host:port``.

    Legacy: only for clients that use the ``flashsocket`` transport (Flash
    Player), and off unless called. The returned server runs on a daemon
    thread; call ``stop()`` (or use it as a context manager) to end it.

    :param host: the address to listen on; ``""`` for every interface.
    :param port: 10843 is what socket.io-client 0.9 asks; 843 is Flash's own
                 default and needs root on most systems; 0 picks a free port
                 (see ``PolicyServer.address``).
    :param origins: ``host:port`` patterns allowed to connect, as N's
                    ``origins`` setting; the default allows everyone.
    """
    policy = policy_xml(origins)
    listener = socket.create_server((host, port))
    return PolicyServer(listener, policy)
