"""A bare selector echo: the hub's I/O design with nothing above it.

The floor for flask_sio09's hub mode, as ``bare_echo.py`` is for its thread mode.
One selector thread serves every WebSocket, as the hub does: the handshake is
answered in gunicorn's thread, the socket is taken over (flask_sio09's
``take_over_socket``) and that thread is free at once. Frames are read and
written with flask_sio09's own framer (``wsframe``), so what this server does is
what the hub does for a WebSocket message, minus everything between the socket
and the handler: no sessions, no packet codec, no worker hand-off, no Flask
context, no heartbeats. A data-ack emit is answered by slicing the string, as in
``bare_echo.py``.

So the ratio hub / this server is the CPU price of the 0.9 protocol and the
Flask glue on top of the hub's I/O, and this server against Node is how far a
Python process with this design is from Node at all.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from bare_echo import ack_for, answer_other

from flask_sio09 import wsframe
from flask_sio09.takeover import take_over_socket

#: bytes read per recv call (the hub's figure)
RECV_SIZE = 65536
#: largest message accepted (the hub's default)
MAX_MESSAGE = 1 << 20


class SelectorLoop:
    """One thread, one selector, every connection. New sockets arrive from
    gunicorn's threads through ``adopt``, which wakes the loop."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self._new: list[socket.socket] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        threading.Thread(target=self._run, daemon=True, name="select-echo").start()

    def adopt(self, sock: socket.socket) -> None:
        """Hand over a socket whose WebSocket handshake was already sent."""
        with self._lock:
            self._new.append(sock)
        try:
            self._wake_w.send(b"\0")
        except BlockingIOError:
            pass  # the loop is awake anyway

    def _run(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data is None:
                    self._take_new()
                else:
                    self._on_readable(key.fileobj, key.data)  # type: ignore[arg-type]

    def _take_new(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            new, self._new = self._new, []
        for sock in new:
            self.selector.register(sock, selectors.EVENT_READ, wsframe.FrameReader(MAX_MESSAGE))
            self._send(sock, wsframe.encode_text("1::"))

    def _on_readable(self, sock: socket.socket, reader: wsframe.FrameReader) -> None:
        try:
            data = sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(sock)
            return
        try:
            events = reader.feed(data)
        except wsframe.WebSocketError:
            self._drop(sock)
            return
        out = []
        for event in events:
            if event[0] == "text":
                ack = ack_for(event[1])
                if ack is not None:
                    out.append(wsframe.encode_text(ack))
            elif event[0] == "close":
                self._drop(sock)
                return
        if out:
            self._send(sock, b"".join(out))

    def _send(self, sock: socket.socket, data: bytes) -> None:
        # the load generator waits for each ack before the next emit: an ack
        # never finds the socket full, so a short write only means a dead peer
        try:
            if sock.send(data) == len(data):
                return
        except OSError:
            pass
        self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        self.selector.unregister(sock)
        sock.close()


_loop: SelectorLoop | None = None
_loop_lock = threading.Lock()


def _the_loop() -> SelectorLoop:
    """The loop, started in the worker process on first use (not before
    gunicorn forks)."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = SelectorLoop()
        return _loop


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path.startswith("/socket.io/1/websocket/"):
        try:
            handshake = wsframe.handshake_response(environ)
        except wsframe.HandshakeError as exc:
            start_response(exc.status, exc.headers)
            return [str(exc).encode()]
        sock = take_over_socket(environ)
        sock.setblocking(True)  # the 101 answer is small: written whole, then non-blocking
        sock.sendall(handshake)
        sock.setblocking(False)
        _the_loop().adopt(sock)
        # gunicorn reads StopIteration as "the socket was taken over, close quietly"
        raise StopIteration()
    return answer_other(path, "select", start_response)
