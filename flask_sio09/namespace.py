"""Class-based namespaces: one object serves one namespace through its methods.

``sio.on_namespace(Chat("/chat"))`` registers the object; from then on every
packet that reaches the application on ``/chat`` is handed to its
``process_packet`` as a dict of the packet module (the seed document), inside
the connection's request context, exactly where a decorated handler would run.
The default ``process_packet`` dispatches:

=============== ============================================================
packet           method called
=============== ============================================================
``connect``      ``on_connect(query)`` (``query`` optional); False refuses
``disconnect``   ``on_disconnect()``
``message``      ``on_message(data)``
``json``         ``on_json(data)``
``event``        ``on_<name>(*args)``, spaces in the name read as ``_``
``error``        ``on_error(reason, advice)``: an error packet of the client
=============== ============================================================

A data ack works as for decorated handlers: a method that declares ``ack``
(or ``**kwargs``) gets it as a keyword; otherwise its return value answers.
Exceptions go to ``sio.on_error(namespace)`` / ``sio.on_error_default``.

One object serves every client of its namespace, on several threads at once:
keep per-client state in ``flask.session`` or keyed by ``request.sid``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import flask
from werkzeug.datastructures import MultiDict

from . import extension as helpers
from .extension import _Registered, current_pending_ack, invoke, normalize_namespace

if TYPE_CHECKING:
    from .extension import SocketIO
    from .server import Server

logger = logging.getLogger("flask_sio09")

#: event names that never reach ``on_<name>``: they name the lifecycle methods
LIFECYCLE_EVENTS = frozenset({"connect", "disconnect", "error"})


def method_name(event: str) -> str | None:
    """The ``on_`` method serving ``event``, or None if no method can
    (``"user message"`` -> ``"on_user_message"``)."""
    name = "on_" + event.replace(" ", "_")
    return name if name.isidentifier() else None


def _in_handler() -> bool:
    return flask.has_request_context() and getattr(flask.request, "sid", None) is not None


class Namespace:
    """Base class of class-based namespaces.

    :param namespace: the namespace it serves (``"/chat"``; None, ``""`` or
                      ``"/"`` for the global one).
    """

    def __init__(self, namespace: str | None = None) -> None:
        self.namespace = normalize_namespace(namespace)
        #: the ``SocketIO`` it is registered on (set by ``on_namespace``)
        self.socketio: SocketIO | None = None
        self._methods: dict[str, _Registered | None] = {}

    # -- incoming ----------------------------------------------------------

    def process_packet(self, packet: dict[str, Any]) -> Any:
        """Act on one packet of this namespace; override to see every packet.

        :param packet: the packet dict (``type``, ``endpoint`` and the fields
                       of that type; ``id`` and ``ack`` when a data ack is due).
        :return: for ``connect``, False refuses the client; for a packet that
                 asked for a data ack that no method took, the ack's payload.
        """
        kind = packet["type"]
        if kind == "event":
            if packet["name"] in LIFECYCLE_EVENTS:
                logger.debug("event %r is not dispatched to a method", packet["name"])
                return None
            return self.trigger_event(packet["name"], *packet.get("args", []))
        if kind in ("message", "json"):
            return self.trigger_event(kind, packet.get("data"))
        if kind == "connect":
            query = MultiDict(parse_qsl(packet.get("qs", "").lstrip("?"), keep_blank_values=True))
            registered = self._method("on_connect")
            if registered is None:
                return True
            return registered.fn(*(query,)[:registered.positional])
        if kind == "disconnect":
            return self.trigger_event("disconnect")
        if kind == "error":
            return self.trigger_event("error", packet.get("reason", ""), packet.get("advice", ""))
        logger.debug("namespace %r: packet type %r not dispatched", self.namespace, kind)
        return None

    def trigger_event(self, event: str, *args: Any) -> Any:
        """Call the ``on_<event>`` method with ``args`` (nothing if there is
        none), injecting the pending data ack as ``ack=`` when it declares one.

        :return: the method's return value.
        """
        name = method_name(event)
        registered = self._method(name) if name else None
        if registered is None:
            logger.debug("namespace %r: no method for event %r", self.namespace, event)
            return None
        return invoke(registered, list(args), current_pending_ack())

    def take_ack(self) -> Callable[..., None] | None:
        """The ack callable of the packet being processed, if it asked for a
        data ack. Once taken, the return value of ``process_packet`` no longer
        answers it: the caller must (an override of ``process_packet`` uses this).
        """
        pending = current_pending_ack()
        return pending.take() if pending is not None else None

    def _method(self, name: str) -> _Registered | None:
        # signatures are read once per method name
        if name not in self._methods:
            fn = getattr(self, name, None)
            self._methods[name] = _Registered.of(fn) if callable(fn) else None
        return self._methods[name]

    # -- outgoing ----------------------------------------------------------
    # Inside a handler these behave as the module helpers (the current client
    # by default); elsewhere, as the SocketIO methods (everyone by default).

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else normalize_namespace(namespace)

    def _sio(self) -> SocketIO:
        if self.socketio is None:
            raise RuntimeError("this Namespace is not registered: call sio.on_namespace() first")
        return self.socketio

    def _server(self) -> Server:
        if flask.has_app_context():
            state = flask.current_app.extensions.get("sio09")
            if state is not None:
                return state.server  # type: ignore[no-any-return]
        return self._sio()._server()

    def emit(self, event: str, *args: Any, to: str | Iterable[str] | None = None,
             broadcast: bool = False, include_self: bool = True, namespace: str | None = None,
             callback: Callable[..., Any] | None = None, room: str | Iterable[str] | None = None,
             skip_sid: str | Iterable[str] | None = None) -> None:
        """Emit ``event`` on this namespace (see ``flask_sio09.emit``).

        Outside a handler it reaches ``to`` (a sid or room), or everyone."""
        ns = self._ns(namespace)
        if _in_handler():
            helpers.emit(event, *args, to=to, broadcast=broadcast, include_self=include_self,
                         namespace=ns, callback=callback, room=room, skip_sid=skip_sid)
        else:
            # (no client sent anything here: include_self has no one to skip)
            self._sio().emit(event, *args, to=to, namespace=ns, callback=callback, room=room,
                             skip_sid=skip_sid)

    def send(self, data: Any, json: bool = False, to: str | Iterable[str] | None = None,
             broadcast: bool = False, include_self: bool = True, namespace: str | None = None,
             callback: Callable[..., Any] | None = None, room: str | Iterable[str] | None = None,
             skip_sid: str | Iterable[str] | None = None) -> None:
        """Send a message (a JSON message with ``json=True``) on this namespace."""
        ns = self._ns(namespace)
        if _in_handler():
            helpers.send(data, json=json, to=to, broadcast=broadcast, include_self=include_self,
                         namespace=ns, callback=callback, room=room, skip_sid=skip_sid)
        else:
            self._sio().send(data, json=json, to=to, namespace=ns, callback=callback, room=room,
                             skip_sid=skip_sid)

    def _sid(self, sid: str | None) -> str:
        if sid is not None:
            return sid
        if _in_handler():
            return flask.request.sid  # type: ignore[attr-defined,no-any-return]
        raise RuntimeError("outside a handler, give the sid")

    def join_room(self, room: str, sid: str | None = None, namespace: str | None = None) -> None:
        """Put a client (the current one by default) in ``room``."""
        self._server().manager.enter_room(self._sid(sid), self._ns(namespace), room)

    def leave_room(self, room: str, sid: str | None = None, namespace: str | None = None) -> None:
        """Take a client (the current one by default) out of ``room``."""
        self._server().manager.leave_room(self._sid(sid), self._ns(namespace), room)

    def close_room(self, room: str, namespace: str | None = None) -> None:
        """Empty ``room``."""
        self._server().manager.close_room(room, self._ns(namespace))

    def rooms(self, sid: str | None = None, namespace: str | None = None) -> list[str]:
        """The rooms a client (the current one by default) is in."""
        return self._server().manager.get_rooms(self._sid(sid), self._ns(namespace))

    def disconnect(self, sid: str | None = None, namespace: str | None = None) -> None:
        """Disconnect a client (the current one by default) from this
        namespace; on the global namespace this ends its session."""
        self._server().disconnect(self._sid(sid), self._ns(namespace))


__all__ = ["LIFECYCLE_EVENTS", "Namespace", "method_name"]
