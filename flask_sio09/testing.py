"""An in-memory Socket.IO 0.9 client for unit-testing an application.

``sio.test_client(app, ...)`` returns a ``SocketIOTestClient`` connected to the
app's real ``Server``, with no network:

* The handshake is a real HTTP request through the app's WSGI stack, made with
  a Flask test client (the caller's, to share its cookie jar, or a new one), so
  cookies, headers, the query string and ``@sio.on_handshake`` apply as they
  do for a browser, and the Flask session flows into the handlers.
* The connection is an in-memory transport attached to that session. The
  client encodes its packets with ``packet.encode`` and feeds them to
  ``Server.receive``, as a POST or a WebSocket frame would. What the server
  queues for the client lands in the session's outbox; the client drains it
  whenever the session wakes its transport (and on every call), frames it as
  a polling transport does and reads it back with ``packet.decode_payload``.

Handlers run synchronously. Creating a test client switches the app's server to
run handler jobs on the thread that submits them (``Workers.synchronous``), the
trade Flask-SocketIO's test client makes too: ``emit`` returns after the
handler ran, so ``callback=True`` can return the ack. The switch is for the
whole app, so do not serve real clients from an app under such a test. A
handler that keeps its ``ack`` and answers later from another thread still
works, but ``callback=True`` then returns None; pass a callable instead.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from . import packet as codec
from .extension import ack_args, message_packet, normalize_namespace

if TYPE_CHECKING:
    import flask

    from .extension import SocketIO
    from .session import Session

Handler = Callable[..., Any]


class _MemoryTransport:
    """The session's transport: a wake-up just makes the client drain the outbox.

    Not persistent, so the monitor neither sends it heartbeats nor expires it
    (as a long-poll that is always attached)."""

    persistent = False

    def __init__(self, client: SocketIOTestClient) -> None:
        self._client = client

    def wake(self) -> None:
        self._client._pump()


def _public(endpoint: str) -> str:
    # the global namespace is reported as "/", as Flask-SocketIO does
    return endpoint or "/"


class SocketIOTestClient:
    """A Socket.IO 0.9 client of one Flask app, in memory.

    :param sio: the extension.
    :param app: a Flask app ``sio`` was initialised on.
    :param namespace: a namespace to connect besides the global one; it is
                      the default ``namespace`` of every method below.
    :param query_string: the connection's query string (``"token=ok"``); it
                         reaches the connect handlers' ``query``.
    :param headers: extra headers of the handshake request (a dict or a list
                    of pairs; a ``Cookie`` header included).
    :param flask_test_client: an ``app.test_client()`` whose cookie jar the
                              handshake uses (log in with it first); its jar
                              then replaces any ``Cookie`` header.
    """

    def __init__(self, sio: SocketIO, app: flask.Flask, namespace: str | None = None,
                 query_string: str | dict[str, Any] | None = None, headers: Any = None,
                 flask_test_client: Any = None) -> None:
        state = app.extensions.get("sio09")
        if state is None or state.sio is not sio:
            raise RuntimeError("test_client(app): call sio.init_app(app) first")
        self.sio = sio
        self.app = app
        self.server = state.server
        # handlers run on the test's thread (see the module docstring)
        self.server.workers.synchronous = True
        # no remote client to tell when the process stops (stopping.py)
        self.server.stop_with_process = False
        self.namespace = normalize_namespace(namespace)
        # without a cookie jar of its own, so that a Cookie header passes through
        # (Werkzeug's jar replaces that header with its own content)
        self.flask_client = flask_test_client if flask_test_client is not None \
            else app.test_client(use_cookies=False)
        #: the session id, once a handshake succeeded
        self.sid: str | None = None
        #: ``(status, body)`` of the last refused handshake, else None
        self.handshake_error: tuple[int, str] | None = None
        self._session: Session | None = None
        self._transport = _MemoryTransport(self)
        self._lock = threading.Lock()
        self._pumping = False
        self._received: list[dict[str, Any]] = []
        self._connected: set[str] = set()
        self._ack_ids = itertools.count(1)
        self._waiting: dict[tuple[str, int], Handler | None] = {}
        self._acks: dict[tuple[str, int], list[Any]] = {}
        self._handlers: dict[tuple[str, str], Handler] = {}
        self.connect(namespace, query_string, headers)

    # -- connecting --------------------------------------------------------

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else normalize_namespace(namespace)

    def _live(self) -> bool:
        return self._session is not None and not self._session.closed

    def connect(self, namespace: str | None = None,
                query_string: str | dict[str, Any] | None = None,
                headers: Any = None) -> None:
        """Connect ``namespace``; a handshake comes first when the client has
        no live session (then the global namespace is connected too).

        :param namespace: the namespace (None: the client's; ``""`` or
                          ``"/"``: the global one only).
        :param query_string: the handshake's query string (``"a=1"``,
                             ``"?a=1"`` or a dict); for a namespace joined
                             on a live session, its connect packet's.
        :param headers: extra handshake headers.
        """
        endpoint = self._ns(namespace)
        if query_string is not None and not isinstance(query_string, str):
            query_string = urlencode(query_string, doseq=True)  # a dict, as Werkzeug's takes
        if query_string and query_string.startswith("?"):
            query_string = query_string[1:]  # as Flask-SocketIO's client takes it
        if not self._live():
            if not self._handshake(query_string, headers):
                return
            if not self._live():
                return  # the global connect handler refused: nothing is connected
            query_string = None  # the namespace falls back to the handshake's
        if endpoint:
            qs = f"?{query_string}" if query_string else ""
            self._send({"type": "connect", "endpoint": endpoint, "qs": qs})

    def _handshake(self, query_string: str | None, headers: Any) -> bool:
        response = self.flask_client.get(f"/{self.server.options.resource}/1/",
                                         query_string=query_string, headers=headers)
        body = response.get_data(as_text=True)
        if response.status_code != 200:
            self.handshake_error = (response.status_code, body)
            return False
        self.handshake_error = None
        session = self.server.get_session(body.split(":", 1)[0])
        if session is None:
            raise RuntimeError(f"the handshake answered {body!r} but no such session exists")
        with self._lock:
            self._connected.clear()
        self._session, self.sid = session, session.sid
        # the first transport connects the global namespace (its handler runs now)
        self.server.attach(session, self._transport)
        self._pump()
        return True

    def disconnect(self, namespace: str | None = None) -> None:
        """Leave ``namespace``; leaving the global namespace ends the session."""
        endpoint = self._ns(namespace)
        if not self._live():
            return
        self._send({"type": "disconnect", "endpoint": endpoint})
        with self._lock:  # the server does not echo a namespace disconnect
            if endpoint:
                self._connected.discard(endpoint)
            else:
                self._connected.clear()

    def is_connected(self, namespace: str | None = None) -> bool:
        """True while ``namespace`` is joined and the session lives."""
        self._pump()
        with self._lock:
            return self._live() and self._ns(namespace) in self._connected

    # -- sending -----------------------------------------------------------

    def emit(self, event: str, *args: Any, callback: bool | Handler = False,
             namespace: str | None = None) -> list[Any] | None:
        """Emit ``event`` with ``args``.

        :param callback: True asks for a data ack and returns its args (None
                         if no ack came back while the handler ran); a
                         callable asks for one and is called with its args
                         whenever it comes.
        :param namespace: defaults to the client's namespace.
        """
        pkt = {"type": "event", "name": event, "args": list(args)}
        return self._send_acked(pkt, callback, namespace)

    def send(self, data: Any, json: bool = False, callback: bool | Handler = False,
             namespace: str | None = None) -> list[Any] | None:
        """Send a message (type 3), or a JSON message (type 4) with ``json``;
        ``callback`` as for ``emit``."""
        return self._send_acked(message_packet(data, json), callback, namespace)

    def _send_acked(self, pkt: dict[str, Any], callback: bool | Handler,
                    namespace: str | None) -> list[Any] | None:
        endpoint = self._ns(namespace)
        pkt["endpoint"] = endpoint
        key = None
        if callback:
            key = (endpoint, next(self._ack_ids))
            pkt["id"], pkt["ack"] = key[1], "data"
            with self._lock:
                self._waiting[key] = None if callback is True else callback
        self._send(pkt)
        if key is None or callback is not True:
            return None
        with self._lock:
            self._waiting.pop(key, None)
            return self._acks.pop(key, None)

    def send_packet(self, pkt: dict[str, Any]) -> None:
        """Send any packet dict of the packet module as is (an ``error``
        packet, say); ``endpoint`` defaults to the client's namespace."""
        pkt = dict(pkt)
        pkt.setdefault("endpoint", self.namespace)
        self._send(pkt)

    def _send(self, pkt: dict[str, Any]) -> None:
        if not self._live():
            raise RuntimeError("the test client is not connected")
        assert self._session is not None
        self.server.receive(self._session, codec.encode(pkt))
        self._pump()

    # -- receiving ---------------------------------------------------------

    def on(self, event: str, handler: Handler | None = None,
           namespace: str | None = None) -> Any:
        """Answer the server's ``callback=`` emits of ``event`` with
        ``handler(*args)`` (return value as for a server handler: None -> no
        args, a tuple -> several). Usable as a decorator."""
        def register(fn: Handler) -> Handler:
            self._handlers[(self._ns(namespace), event)] = fn
            return fn
        return register(handler) if handler is not None else register

    def get_received(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """What the server sent on ``namespace`` since the last call, oldest
        first, as ``{"name", "args", "namespace"}`` dicts; message packets
        have name ``"message"``, JSON ones ``"json"``, and args ``[data]``."""
        self._pump()
        wanted = _public(self._ns(namespace))
        with self._lock:
            mine = [r for r in self._received if r["namespace"] == wanted]
            self._received = [r for r in self._received if r["namespace"] != wanted]
        return mine

    def _pump(self) -> None:
        """Drain the outbox. Re-entrant calls (a handler run while answering
        an ack queues more) return at once; the running pump reads on, so
        packets are handled in the order the server queued them."""
        session = self._session
        if session is None:
            return
        while True:
            with self._lock:
                if self._pumping:
                    return
                self._pumping = True
            try:
                while True:
                    queued = session.take_outbox()
                    if not queued:
                        break
                    # the same framing a polling transport writes
                    for pkt in codec.decode_payload(codec.frame(queued)):
                        self._handle(pkt)
            finally:
                with self._lock:
                    self._pumping = False
            if not session.has_outbox():  # nothing arrived after the last take
                return

    def _handle(self, pkt: dict[str, Any]) -> None:
        kind, endpoint = pkt["type"], pkt.get("endpoint", "")
        if kind in ("event", "message", "json"):
            self._handle_incoming(pkt, endpoint)
        elif kind == "ack":
            self._handle_ack(pkt, endpoint)
        elif kind == "connect":
            with self._lock:
                self._connected.add(endpoint)
        elif kind in ("disconnect", "error"):
            # an error packet on a namespace is its refusal
            with self._lock:
                if endpoint:
                    self._connected.discard(endpoint)
                else:
                    self._connected.clear()

    def _handle_incoming(self, pkt: dict[str, Any], endpoint: str) -> None:
        if pkt["type"] == "event":
            name, args = pkt["name"], list(pkt.get("args", []))
        else:
            name, args = pkt["type"], [pkt.get("data")]
        with self._lock:
            self._received.append({"name": name, "args": args, "namespace": _public(endpoint)})
        if pkt.get("ack") == "data":
            handler = self._handlers.get((endpoint, name))
            answer = ack_args(handler(*args)) if handler is not None else ()
            self._reply({"type": "ack", "ackId": pkt["id"], "endpoint": endpoint,
                         "args": list(answer)})
        elif pkt.get("ack") is True and "id" in pkt:  # a plain ack, as a browser sends
            self._reply({"type": "ack", "ackId": pkt["id"], "endpoint": endpoint, "args": []})

    def _reply(self, pkt: dict[str, Any]) -> None:
        # an answer to a session that has just ended is dropped, as on a wire
        if self._live():
            self._send(pkt)

    def _handle_ack(self, pkt: dict[str, Any], endpoint: str) -> None:
        key = (endpoint, pkt["ackId"])
        args = list(pkt.get("args", []))
        with self._lock:
            if key not in self._waiting:
                return
            callback = self._waiting.pop(key)
            if callback is None:
                self._acks[key] = args
        if callback is not None:
            callback(*args)


__all__ = ["SocketIOTestClient"]
