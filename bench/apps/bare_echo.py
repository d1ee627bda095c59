"""A bare simple-websocket echo, the floor for flask_sio09's thread mode.

No Flask, no sessions, no packet codec: a WSGI function that answers just enough
of Socket.IO 0.9 for bench/loadgen.js to drive it like the real servers. The
handshake GET ``/socket.io/1/`` gets a made-up sid; the WebSocket
``/socket.io/1/websocket/<sid>`` gets ``1::``, then every data-ack emit
``5:<id>+::{"name":...,"args":<args>}`` is answered ``6:::<id>+<args>`` by
slicing the string (the args are never decoded). Heartbeats are not sent.

Each connection has the thread gunicorn gave its request, plus simple-websocket's
reader thread: the same thread-per-connection cost as flask_sio09's thread mode,
so the ratio between the two is the price of the protocol and the library.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from typing import Any

import simple_websocket

_sids = itertools.count(1)
ARGS_KEY = '"args":'


def ack_for(message: str) -> str | None:
    """The ack string for a data-ack event, or None for anything else."""
    if not message.startswith("5:"):
        return None
    plus = message.find("+", 2)
    start = message.find(ARGS_KEY)
    if plus < 0 or start < 0:
        return None
    return f"6:::{message[2:plus]}+{message[start + len(ARGS_KEY):message.rindex('}')]}"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path.startswith("/socket.io/1/websocket/"):
        ws = simple_websocket.Server(environ)
        try:
            ws.send("1::")
            while True:
                message = ws.receive()
                if message is None:
                    break
                if isinstance(message, bytes):
                    message = message.decode("utf-8")
                ack = ack_for(message)
                if ack is not None:
                    ws.send(ack)
        except simple_websocket.ConnectionClosed:
            pass
        finally:
            try:
                ws.close()
            except simple_websocket.ConnectionClosed:  # the client closed first
                pass
        # gunicorn reads StopIteration as "the socket was taken over, close quietly"
        raise StopIteration()
    return answer_other(path, "bare", start_response)


def answer_other(path: str, sid_prefix: str, start_response: Callable[..., Any]) -> list[bytes]:
    """Any request but the WebSocket: the 0.9 handshake with a made-up sid
    (WebSocket only, 60 s heartbeat and close timeouts), or a 404."""
    if path.rstrip("/") == "/socket.io/1":
        body = f"{sid_prefix}{next(_sids)}:60:60:websocket".encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Length", "0")])
    return []
