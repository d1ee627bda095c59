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
import socket
import threading
from collections.abc import Iterable

logger = logging.getLogger("flask_sio09")

__all__ = ["DEFAULT_PORT", "POLICY_REQUEST", "PolicyServer", "policy_xml", "serve_policy"]

#: the port socket.io-client 0.9 asks by default (``flash policy port``)
DEFAULT_PORT = 10843
#: the exact request Flash Player sends (23 bytes)
POLICY_REQUEST = b"<policy-file-request/>\0"
#: how long a connection may take to send its request
READ_TIMEOUT = 5.0

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


class PolicyServer:
    """A TCP server answering policy requests on its own thread.

    :param listener: a bound, listening socket.
    :param policy: the bytes sent in answer to :data:`POLICY_REQUEST`.
    """

    def __init__(self, listener: socket.socket, policy: bytes) -> None:
        self._listener = listener
        self._policy = policy
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name="sio09-flash-policy")
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the server listens on."""
        host, port = self._listener.getsockname()[:2]
        return host, port

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                if self._stopped.is_set():
                    return
                logger.exception("flash policy server: accept failed")
                continue
            # one short-lived thread per request: a silent client cannot
            # hold up the others
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(READ_TIMEOUT)
                received = b""
                while len(received) < len(POLICY_REQUEST):
                    data = conn.recv(len(POLICY_REQUEST) - len(received))
                    if not data:
                        return
                    received += data
                if received == POLICY_REQUEST:
                    conn.sendall(self._policy)
            except OSError:  # a client that went away or stayed silent
                return

    def stop(self, timeout: float = 5.0) -> None:
        """Stop accepting and wait (up to ``timeout`` s) for the thread to end."""
        self._stopped.set()
        try:
            # wake the blocked accept(); shutdown fails on some platforms for
            # listening sockets, closing alone then does it
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join(timeout)

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
