"""gevent-socketio's namespace API on flask_sio09, for porting such applications.

A gevent-socketio application maps namespaces to ``BaseNamespace`` subclasses
in ``socketio_manage(environ, {"/chat": ChatNamespace}, request)``, called from
its Socket.IO view. Here the mapping is registered once, at set-up::

    socketio_manage(sio, {"/chat": ChatNamespace, "": GlobalNamespace})

and the view goes away. As in gevent-socketio:

* one instance of the class serves one connection on one namespace; it is made
  at the first packet of that namespace (the connect packet), and its
  ``initialize`` methods run then;
* ``self.session`` is a dict per connection, shared by its namespaces;
  ``self.environ`` is the handshake's WSGI environ (with ``"socketio"``: the
  ``Socket``); ``self.request`` is the object given to ``socketio_manage``,
  or else the connection's Flask request;
* ``process_packet`` dispatches to ``recv_connect`` (not for the global
  namespace, whose connect the client never sends), ``recv_message``,
  ``recv_json``, ``recv_error``, ``recv_disconnect`` and ``on_<event>``, each
  checked against the ACL; a refused or unknown method is reported with
  ``self.error``, which sends an ``error`` event to the client and logs;
* a packet that asked for a data ack: the ack callable is appended to the
  method's arguments when its next positional parameter is named ``ack``,
  ``callback``, ``cb`` or ``fn``; otherwise the return value answers (a tuple
  as several args, anything else as one).

Methods run in the connection's Flask request context, one at a time per
connection, on the server's handler threads; exceptions go to
``sio.on_error(namespace)`` / ``sio.on_error_default``.
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import flask

from . import packet as codec
from .droplog import log_dropped
from .extension import (SocketIO, current_pending_ack, current_session, message_packet,
                        normalize_namespace)
from .namespace import Namespace

if TYPE_CHECKING:
    from .server import Server
    from .session import Session

logger = logging.getLogger("flask_sio09")

#: in a thread ``BaseNamespace.spawn`` started: ``owner`` (the namespace
#: object) and ``generation`` (its ``kill_local_jobs`` count at the spawn)
_job = threading.local()

#: event names gevent-socketio dispatches (others get ``unallowed_event_name``)
EVENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*$")

ErrorHandler = Callable[..., Any]


def default_error_handler(socket: Socket, error_name: str, error_message: str,
                          endpoint: str, msg_id: int | None, quiet: bool) -> None:
    """gevent-socketio's default: log, and unless ``quiet`` send the client an
    ``error`` event with ``[error_name, error_message]``.

    The INFO line names the error only; the message (which may quote what the
    client sent) is logged at DEBUG.
    """
    log_dropped(socket._session, "session %s on %r: %s", socket.sessid, endpoint, error_name)
    logger.debug("session %s on %r: %s: %s", socket.sessid, endpoint, error_name, error_message)
    if quiet:
        return
    pkt: dict[str, Any] = {"type": "event", "name": "error",
                           "args": [error_name, error_message], "endpoint": endpoint}
    if msg_id:
        pkt["id"] = msg_id
    socket.send_packet(pkt)


class Socket:
    """What gevent-socketio calls the virtual socket: one per connection,
    shared by its namespace objects (``BaseNamespace.socket``).

    :param sio: the extension.
    :param server: the server holding the session.
    :param session: the connection's session.
    :param error_handler: ``handler(socket, error_name, error_message,
                          endpoint, msg_id, quiet)``.
    """

    def __init__(self, sio: SocketIO, server: Server, session: Session,
                 error_handler: ErrorHandler) -> None:
        self.sio = sio
        #: flask_sio09's server (not gevent-socketio's: it has no ``sockets``)
        self.server = server
        self.sessid = session.sid
        #: the per-connection dict of gevent-socketio
        self.session: dict[str, Any] = {}
        #: endpoint -> the namespace object serving it on this connection
        self.active_ns: dict[str, BaseNamespace] = {}
        self.environ: dict[str, Any] = {**session.environ, "socketio": self}
        self.error_handler = error_handler
        self.app = flask.current_app._get_current_object()  # type: ignore[attr-defined]
        self._session = session

    def __getitem__(self, endpoint: str) -> BaseNamespace:
        return self.active_ns[endpoint]

    def disconnect(self, silent: bool = False) -> None:
        """End the whole connection, as gevent-socketio's user-facing
        ``Socket.disconnect``: every namespace's ``recv_disconnect`` runs (as
        when the client goes) and the spawned jobs are asked to stop. The
        client is told (``0::``) even with ``silent``, which is accepted for
        gevent-socketio's signature: a connection cannot end unannounced."""
        self.server.disconnect(self.sessid)

    def kill(self, detach: bool = False) -> None:
        """The same as ``disconnect()`` (gevent-socketio's lower-level end of
        the connection; ``detach`` is accepted for its signature)."""
        self.disconnect()

    @property
    def connected(self) -> bool:
        """True until the connection ends (a spawned loop may watch this)."""
        return not self._session.closed

    def send_packet(self, pkt: dict[str, Any], joined: bool = False) -> None:
        """Queue a packet dict for this client; with ``joined``, only while the
        client is in the packet's namespace (what a namespace object sends:
        never after the server's ``0::/ns``, which a spawned loop could race)."""
        self.server.send_to_session(self._session, codec.encode(pkt), pkt.get("endpoint", ""),
                                    joined)

    def send_with_ack(self, pkt: dict[str, Any], callback: Callable[..., Any],
                      kind: bool | str, joined: bool = False) -> None:
        """Queue a packet that asks the client for an ack: ``kind`` ``"data"``
        for the client code's answer, True for the client's automatic one."""
        endpoint = pkt.get("endpoint", "")
        if joined and endpoint not in self._session.namespaces:
            return  # (its callback would wait for an answer that cannot come)
        pkt["id"] = self._session.add_callback(endpoint, callback)
        pkt["ack"] = kind
        try:
            self.send_packet(pkt, joined)
        except codec.PacketError:
            self._session.unsent_callback(endpoint, pkt["id"])
            raise

    def error(self, error_name: str, error_message: str, endpoint: str | None = None,
              msg_id: int | None = None, quiet: bool = False) -> Any:
        """Report an error through the error handler."""
        return self.error_handler(self, error_name, error_message, endpoint or "", msg_id, quiet)

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``fn`` in a background thread, inside an app context."""
        app = self.app

        def run() -> None:
            with app.app_context():
                fn(*args, **kwargs)

        return self.sio.start_background_task(run)


#: names of an optional parameter that takes the ack callable (see call_method)
#: (``fn`` and ``cb`` as socket.io's own examples name it: ``function (data, fn)``)
ACK_PARAMETER_NAMES = frozenset({"ack", "callback", "cb", "fn"})


def _positional_params(method: Callable[..., Any]) -> list[inspect.Parameter]:
    """``method``'s positional parameters (none known: an empty list)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _takes_ack_after(params: list[inspect.Parameter], count: int) -> bool:
    """Whether a method with positional ``params``, called with ``count``
    args, takes the ack callable as the next one: that parameter is named as
    an ack. Not any other parameter, required or not: a client that sends
    too few args would have the ack land in one of the method's data
    parameters (``on_nickname(self, nickname)`` given none), and from there
    in what the app stores and broadcasts. Never a ``*args``
    (gevent-socketio's handlers took the event's args there)."""
    return count < len(params) and params[count].name in ACK_PARAMETER_NAMES


class BaseNamespace:
    """gevent-socketio's ``BaseNamespace``: subclass it and define ``on_<event>``
    and ``recv_*`` methods.

    :param environ: the handshake's environ, with ``"socketio"`` set to the
                    connection's ``Socket``.
    :param ns_name: the namespace (``""`` for the global one).
    :param request: the object given to ``socketio_manage``, or the Flask
                    request of the connection.
    """

    def __init__(self, environ: dict[str, Any], ns_name: str, request: Any = None) -> None:
        self.environ = environ
        self.socket: Socket = environ["socketio"]
        self.session = self.socket.session
        self.request = request
        self.ns_name = ns_name
        #: the ACL: None allows every method, a set only the methods named
        self.allowed_methods: set[str] | None = None
        #: the threads started with ``spawn``
        self.jobs: list[threading.Thread] = []
        # kill_local_jobs counts up: a job spawned before the latest call is
        # stopped (its ``self.active`` turns False), one spawned after runs
        self._jobs_generation = 0
        # True while ``initialize`` runs: a job it spawns is active (the object
        # serves its client once every initialize has returned)
        self._initializing = False
        # the data ack of the packet being processed, until a method takes it
        self._ack: Callable[..., None] | None = None
        self.reset_acl()
        super().__init__()  # the mixins' __init__

    # -- ACL ---------------------------------------------------------------

    def get_initial_acl(self) -> set[str] | None:
        """Override to return the method names open at first (None: all)."""
        return None

    def reset_acl(self) -> None:
        """Go back to ``get_initial_acl()``."""
        initial = self.get_initial_acl()
        self.allowed_methods = None if initial is None else set(initial)

    def lift_acl_restrictions(self) -> None:
        """Open every method."""
        self.allowed_methods = None

    def add_acl_method(self, method_name: str) -> None:
        """Open ``method_name``."""
        if self.allowed_methods is None:
            self.allowed_methods = set()
        self.allowed_methods.add(method_name)

    def del_acl_method(self, method_name: str) -> None:
        """Close ``method_name``.

        :raises ValueError: there is no ACL yet (everything is open).
        """
        if self.allowed_methods is None:
            raise ValueError("no ACL restrictions yet: call reset_acl() or "
                             "add_acl_method() before del_acl_method()")
        self.allowed_methods.discard(method_name)

    def is_method_allowed(self, method_name: str) -> bool:
        """True when the ACL lets the client reach ``method_name``."""
        return self.allowed_methods is None or method_name in self.allowed_methods

    # -- incoming ----------------------------------------------------------

    def initialize(self) -> None:
        """Override for set-up; runs once when the object is made (the
        ``initialize`` of every class in the MRO that defines one runs)."""

    def process_packet(self, packet: dict[str, Any]) -> Any:
        """Dispatch one packet dict; override to take over (``call_method_with_acl``
        keeps the ACL)."""
        kind = packet["type"]
        if kind == "event":
            return self.process_event(packet)
        if kind == "message":
            return self.call_method_with_acl("recv_message", packet, packet["data"])
        if kind == "json":
            return self.call_method_with_acl("recv_json", packet, packet["data"])
        if kind == "connect":
            return self.call_method_with_acl("recv_connect", packet)
        if kind == "error":
            return self.call_method_with_acl("recv_error", packet)
        if kind == "disconnect":
            return self.call_method_with_acl("recv_disconnect", packet)
        logger.debug("namespace %r: packet type %r not dispatched", self.ns_name, kind)
        return None

    def process_event(self, packet: dict[str, Any]) -> Any:
        """Call ``on_<name>`` (spaces read as ``_``) with the event's args."""
        name = packet["name"]
        if not EVENT_NAME.match(name):
            self.error("unallowed_event_name",
                       "name must only contains alpha numerical characters")
            return None
        return self.call_method_with_acl("on_" + name.replace(" ", "_"), packet,
                                         *packet.get("args", []))

    def call_method_with_acl(self, method_name: str, packet: dict[str, Any], *args: Any) -> Any:
        """``call_method`` if the ACL allows ``method_name``, else report
        ``method_access_denied``."""
        if not self.is_method_allowed(method_name):
            self.error("method_access_denied",
                       f'You do not have access to method "{method_name}"')
            return None
        return self.call_method(method_name, packet, *args)

    def call_method(self, method_name: str, packet: dict[str, Any], *args: Any) -> Any:
        """Call a method: with the packet alone if its one parameter is named
        ``packet``; else with ``args``, plus the ack callable when the packet
        asked for a data ack and the method's next positional parameter is
        named ``ack``, ``callback``, ``cb`` or ``fn`` (a flask_sio09 addition: gevent-socketio
        passed ``args`` alone, so a ported method gets ``args`` alone, and
        too few args from a client raise ``TypeError`` as they did there)."""
        method = getattr(self, method_name, None)
        if not callable(method):
            self.error("no_such_method", f'The method "{method_name}" was not found')
            return None
        params = _positional_params(method)
        decorate = getattr(self, "exception_handler_decorator", None)
        if decorate is not None:
            method = decorate(method)
        if len(params) == 1 and params[0].name == "packet":
            return method(packet)
        if packet.get("ack") == "data" and self._ack is not None and \
                _takes_ack_after(params, len(args)):
            ack, self._ack = self._ack, None
            return method(*args, ack)
        return method(*args)

    def recv_connect(self) -> Any:
        """A client joined this namespace (never called for the global one).
        Returning False refuses it (a flask_sio09 addition)."""

    def recv_message(self, data: str) -> Any:
        """A message packet (``socket.send`` in the browser)."""
        return data

    def recv_json(self, data: Any) -> Any:
        """A JSON packet (``socket.json.send`` in the browser)."""
        return data

    def recv_error(self, packet: dict[str, Any]) -> None:
        """An error packet from the client."""

    def recv_disconnect(self) -> None:
        """The client left this namespace, or the connection ended. The
        default forgets this object; call ``self.disconnect(silent=True)``
        from an override too."""
        self.disconnect(silent=True)

    # -- outgoing ----------------------------------------------------------

    def error(self, error_name: str, error_message: str, msg_id: int | None = None,
              quiet: bool = False) -> Any:
        """Report an error (by default: an ``error`` event to the client, and a log line)."""
        return self.socket.error(error_name, error_message, endpoint=self.ns_name,
                                 msg_id=msg_id, quiet=quiet)

    def emit(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Send ``event`` with ``args`` to this client; ``callback=`` asks
        the client code for an ack and is called with its args.

        :raises ValueError: another keyword argument was given.
        """
        callback = kwargs.pop("callback", None)
        if kwargs:
            raise ValueError("emit() takes its arguments positionally (and callback=); "
                             f"got {sorted(kwargs)}")
        pkt = {"type": "event", "name": event, "args": list(args), "endpoint": self.ns_name}
        if callback is None:
            self.socket.send_packet(pkt, joined=True)
        else:
            self.socket.send_with_ack(pkt, callback, "data", joined=True)

    def send(self, message: Any, json: bool = False,
             callback: Callable[..., Any] | None = None) -> None:
        """Send a message (a JSON message with ``json``); ``callback`` is called
        with no args when the client's automatic ack arrives."""
        pkt = message_packet(message, json)
        pkt["endpoint"] = self.ns_name
        if callback is None:
            self.socket.send_packet(pkt, joined=True)
        else:
            self.socket.send_with_ack(pkt, callback, True, joined=True)

    def spawn(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> threading.Thread:
        """Run ``fn`` in a background thread (in an app context). Threads
        cannot be killed: a loop should run ``while self.active:``, which
        turns False when the client leaves this namespace or the connection
        ends (gevent-socketio killed the greenlets then)."""
        decorate = getattr(self, "exception_handler_decorator", None)
        if decorate is not None:
            fn = decorate(fn)
        # a job spawned by a job of this object belongs to that job's
        # generation: one that kill_local_jobs stopped starts none that run
        # (gevent-socketio killed the greenlet before it could spawn)
        generation = _job.generation if getattr(_job, "owner", None) is self \
            else self._jobs_generation

        def job(*args: Any, **kwargs: Any) -> Any:
            # (what ``active`` asks: which object's job this thread runs, and
            # whether kill_local_jobs ran since it was spawned)
            _job.owner, _job.generation = self, generation
            return fn(*args, **kwargs)

        thread = self.socket.spawn(job, *args, **kwargs)
        # (the threads that ended go: a long-lived object keeps no list of
        # every thread it ever started)
        self.jobs = [t for t in self.jobs if t.is_alive()]
        self.jobs.append(thread)
        return thread

    @property
    def active(self) -> bool:
        """Whether this object still serves its client: False once it was let
        go (``disconnect()``, which the default ``recv_disconnect`` calls when
        the client leaves the namespace: an override should call it too, as
        gevent-socketio asked) or the connection ended; and, in a job that
        ``spawn`` started, once ``kill_local_jobs`` ran after the spawn. What
        a loop started with ``spawn`` should watch."""
        if getattr(_job, "owner", None) is self and _job.generation != self._jobs_generation:
            return False  # a job of this object that kill_local_jobs stopped
        return self.socket.connected and (
            self.socket.active_ns.get(self.ns_name) is self or self._initializing)

    def kill_local_jobs(self) -> None:
        """Ask the threads ``spawn`` started so far to stop: in them,
        ``self.active`` turns False (threads cannot be killed as
        gevent-socketio killed greenlets). Jobs spawned later run, as in
        gevent-socketio (the usual "stop the old stream, start a new one").
        ``self.jobs`` is emptied, as gevent-socketio emptied it."""
        self._jobs_generation += 1
        self.jobs = []

    def disconnect(self, silent: bool = False) -> None:
        """Forget this object and stop its spawned jobs (``kill_local_jobs``);
        unless ``silent``, also disconnect the client from this namespace (from
        everything, on the global namespace). ``recv_disconnect`` does not run
        afterwards, as in gevent-socketio."""
        self.kill_local_jobs()
        if self.socket.active_ns.get(self.ns_name) is self:
            del self.socket.active_ns[self.ns_name]
        if not silent:
            self.socket.server.disconnect(self.socket.sessid, self.ns_name)


class RoomsMixin:
    """gevent-socketio's rooms: ``join``, ``leave``, ``emit_to_room``.

    Membership is kept in flask_sio09's room index (so an emit reaches the
    room without scanning every connection) and, as in gevent-socketio, in
    ``self.session["rooms"]`` as ``"<namespace>_<room>"`` names.
    """

    session: dict[str, Any]
    socket: Socket
    ns_name: str

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.session.setdefault("rooms", set())

    def _get_room_name(self, room: str) -> str:
        return f"{self.ns_name}_{room}"

    def _restore_rooms(self) -> None:
        """The client (re)joins this namespace: it is in the rooms its
        ``session["rooms"]`` names for it, as gevent-socketio, which looked
        rooms up there, saw it (leaving the namespace had taken it out of
        flask_sio09's room index)."""
        prefix = f"{self.ns_name}_"
        manager = self.socket.server.manager
        for name in list(self.session.get("rooms", ())):
            if name.startswith(prefix):
                manager.enter_room(self.socket.sessid, self.ns_name, name)

    def join(self, room: str) -> None:
        """Enter ``room`` of this namespace."""
        name = self._get_room_name(room)
        self.session.setdefault("rooms", set()).add(name)
        self.socket.server.manager.enter_room(self.socket.sessid, self.ns_name, name)

    def leave(self, room: str) -> None:
        """Leave ``room`` of this namespace."""
        name = self._get_room_name(room)
        self.session.setdefault("rooms", set()).discard(name)
        self.socket.server.manager.leave_room(self.socket.sessid, self.ns_name, name)

    def emit_to_room(self, room: str, event: str, *args: Any) -> None:
        """Send ``event`` to everyone else in ``room`` (not to this client)."""
        pkt = {"type": "event", "name": event, "args": list(args)}
        self.socket.server.emit_packet(pkt, self.ns_name, to=self._get_room_name(room),
                                       skip_sid=self.socket.sessid)


class BroadcastMixin:
    """gevent-socketio's broadcasts to every client of this namespace."""

    socket: Socket
    ns_name: str

    def broadcast_event(self, event: str, *args: Any) -> None:
        """Send ``event`` to every client of this namespace, this one included."""
        self.socket.server.emit_packet({"type": "event", "name": event, "args": list(args)},
                                       self.ns_name)

    def broadcast_event_not_me(self, event: str, *args: Any) -> None:
        """Send ``event`` to every client of this namespace but this one."""
        self.socket.server.emit_packet({"type": "event", "name": event, "args": list(args)},
                                       self.ns_name, skip_sid=self.socket.sessid)


class _ClassNamespace(Namespace):
    """Serves one namespace with a ``BaseNamespace`` subclass: an object per connection."""

    def __init__(self, namespace: str, cls: type[BaseNamespace], request: Any,
                 error_handler: ErrorHandler) -> None:
        super().__init__(namespace)
        self.cls = cls
        self.manage_request = request
        self.error_handler = error_handler

    def _socket(self) -> Socket:
        session = current_session()
        if session is None:
            raise RuntimeError("a compat namespace runs inside the server's handlers only")
        socket = session.app_data.get("compat.socket")
        if socket is None:
            server = flask.current_app.extensions["sio09"].server
            socket = Socket(self._sio(), server, session, self.error_handler)
            session.app_data["compat.socket"] = socket
        return socket  # type: ignore[no-any-return]

    def _create(self, socket: Socket) -> BaseNamespace:
        request = self.manage_request if self.manage_request is not None \
            else flask.request._get_current_object()  # type: ignore[attr-defined]
        instance = self.cls(socket.environ, self.namespace, request=request)
        instance._initializing = True  # (a job initialize spawns is active)
        try:
            for klass in type(instance).__mro__:
                if "initialize" in vars(klass):
                    klass.initialize(instance)  # type: ignore[attr-defined]
            # kept only once every initialize has returned, as gevent-socketio
            # did: one that raises (a check that refuses the client) runs again
            # for the next packet, instead of leaving a half-made object in use
            socket.active_ns[self.namespace] = instance
        finally:
            instance._initializing = False
        return instance

    def process_packet(self, packet: dict[str, Any]) -> Any:
        socket = self._socket()
        kind = packet["type"]
        instance = socket.active_ns.get(self.namespace)
        if instance is None:
            if kind == "disconnect":
                return None  # already forgotten (self.disconnect())
            instance = self._create(socket)
            if kind == "connect" and self.namespace == "":
                return True  # gevent-socketio never sees a global connect packet
        if kind == "disconnect" and socket._session.closed:
            # the connection ended: gevent-socketio's Socket.disconnect calls
            # recv_disconnect itself, not through process_packet and the ACL
            # (whose usual ["recv_connect"] would skip the cleanup)
            return instance.call_method("recv_disconnect", packet)
        if kind == "connect":
            restore = getattr(instance, "_restore_rooms", None)
            if restore is not None:  # (RoomsMixin: a namespace joined again)
                restore()
        pending = current_pending_ack()
        ack = self.take_ack()
        instance._ack = ack
        try:
            result = instance.process_packet(packet)
        except Exception:
            if ack is not None and instance._ack is not None and pending is not None:
                # the method raised without taking the ack: the error
                # handler's answer answers it, as for other handlers
                pending.taken = False
            raise
        finally:
            handed = ack is not None and instance._ack is None
            instance._ack = None
        if ack is not None and not handed:
            ack(*(result if isinstance(result, tuple) else (result,)))
        if kind == "connect" and result is False:
            socket.active_ns.pop(self.namespace, None)
        return result


def socketio_manage(sio: SocketIO, namespaces: Mapping[str, type[BaseNamespace]],
                    request: Any = None, error_handler: ErrorHandler | None = None) -> None:
    """Serve namespaces with ``BaseNamespace`` subclasses (call once, at set-up).

    :param sio: the extension.
    :param namespaces: namespace (``""`` for the global one) -> class.
    :param request: the object the instances get as ``self.request``
                    (default: the connection's Flask request).
    :param error_handler: replaces ``default_error_handler``.
    :raises TypeError: ``sio`` is not the extension (gevent-socketio's
                       ``socketio_manage(environ, namespaces, request)``, called
                       in a view), or a value is not a ``BaseNamespace`` subclass.
    """
    if not isinstance(sio, SocketIO):
        raise TypeError("socketio_manage() takes the SocketIO object first and is called "
                        "once at set-up, not in a view: socketio_manage(sio, {'/chat': "
                        f"ChatNamespace}}); got {type(sio).__name__} (gevent-socketio's "
                        "socketio_manage(environ, ...) view is not needed: delete it)")
    for name, cls in namespaces.items():
        if not (isinstance(cls, type) and issubclass(cls, BaseNamespace)):
            raise TypeError(f"namespace {name!r}: expected a BaseNamespace subclass, got {cls!r}")
        sio.on_namespace(_ClassNamespace(normalize_namespace(name), cls, request,
                                         error_handler or default_error_handler))


__all__ = ["BaseNamespace", "BroadcastMixin", "RoomsMixin", "Socket", "default_error_handler",
           "socketio_manage"]
