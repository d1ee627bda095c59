"""The Flask glue: ``SocketIO``, its options, and the handler helpers.

This is the only module that imports Flask. It builds one ``Server`` per Flask
app (kept in ``app.extensions["sio09"]``), wraps ``app.wsgi_app`` so requests
under ``/<resource>/`` reach the server before Flask's router, and runs every
handler inside the request context of the request that opened the connection,
with ``request.sid``, ``request.namespace`` and ``request.event`` set and the
connection's own copy of the Flask session.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import flask
from flask.ctx import RequestContext
from flask.globals import _cv_app, _cv_request
from flask.signals import (appcontext_popped, appcontext_pushed, appcontext_tearing_down,
                           request_tearing_down)
from werkzeug.datastructures import MultiDict

from . import packet as packet_codec
from . import protocol, transports
from .droplog import log_dropped
from .manager import listed_names
from .options import OptionError, emitter_url, resolve_options
from .server import Ack, Server
from .session import Session

if TYPE_CHECKING:
    from flask.sessions import SessionMixin

    from .namespace import Namespace
    from .testing import SocketIOTestClient

logger = logging.getLogger("flask_sio09")

Handler = Callable[..., Any]
#: "no exception given" for ``_EventContext.pop`` (None means "there was none")
_NO_EXCEPTION: Any = object()


def normalize_namespace(namespace: str | None) -> str:
    """The wire endpoint of a namespace: ``None``, ``""`` and ``"/"`` are the
    global namespace (endpoint ``""``); others must start with ``/``."""
    if namespace is None or namespace in ("", "/"):
        return ""
    if not namespace.startswith("/") or ":" in namespace:
        raise ValueError(f"namespace {namespace!r} must start with '/' and contain no ':'")
    return namespace


@dataclass
class _Registered:
    """A handler with what its signature accepts."""

    fn: Handler
    wants_ack: bool
    positional: int

    @classmethod
    def of(cls, fn: Handler) -> _Registered:
        try:
            params = inspect.signature(fn).parameters.values()
        except (TypeError, ValueError):  # builtins without a signature
            return cls(fn, False, 1)
        wants_ack = any(p.name == "ack" or p.kind is p.VAR_KEYWORD for p in params)
        positional = sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                         and p.name != "ack")
        if any(p.kind is p.VAR_POSITIONAL for p in params):
            positional = 1 << 30
        return cls(fn, wants_ack, positional)


def ack_args(value: Any) -> tuple[Any, ...]:
    """A handler's return value as ack arguments: None -> none, a tuple ->
    several, anything else -> one."""
    if value is None:
        return ()
    if isinstance(value, tuple):
        return value
    return (value,)


#: what a handler "returned" when it raised and no error handler answered
#: for it: its data ack is left unanswered, as Flask-SocketIO (which re-raises)
#: and Node (where the exception ends the dispatch) leave it
UNHANDLED: Any = object()

#: event names a client may not emit: they name the connect handler
#: (``disconnect`` is already dropped by the server)
RESERVED_EVENTS = frozenset({"connect"})


class ConnectionRefusedError(Exception):  # noqa: A001 (Flask-SocketIO 5's name)
    """Raised in a connect handler: the client is refused, as when the handler
    returns False, without the error handler or a traceback (Flask-SocketIO 5's
    way to refuse). The message is logged at INFO; a 0.9 client cannot be told
    it: the protocol's error packet carries one of a few fixed reasons, and a
    refused client gets ``unauthorized``, as for ``return False``."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        #: what Flask-SocketIO 5 would have sent the client (kept for a port's
        #: own code; the 0.9 protocol has no place for it)
        self.error_args: dict[str, Any] = {"message": str(args[0]) if args else
                                           "Connection rejected by server"}
        if len(args) > 1:
            self.error_args["data"] = args[1] if len(args) == 2 else list(args[1:])


class PendingAck:
    """The data ack an incoming packet asked for, handed to at most one handler.

    When no handler took it, the bridge answers it with the return value of
    the handler (or of ``process_packet``), through ``ack_args``; so it does
    with an error handler's when the handler that took it raised before it
    answered (``failed``).
    """

    __slots__ = ("ack", "taken", "failed")

    def __init__(self, ack: Callable[..., None] | None) -> None:
        self.ack = ack
        self.taken = False
        #: the handler raised (the bridge's ``_call`` sets it)
        self.failed = False

    def unanswered(self) -> bool:
        """Whether the bridge answers the ack with what the handler's call
        returned: no handler took it, or the one that did raised first."""
        if not self.taken:
            return self.ack is not None
        return self.failed and not getattr(self.ack, "used", True)

    def take(self) -> Callable[..., None] | None:
        """Hand the ack callable to the code that will answer it."""
        self.taken = self.ack is not None
        return self.ack


def invoke(registered: _Registered, args: list[Any], pending: PendingAck | None) -> Any:
    """Call a handler with an event's arguments; ``ack=`` is injected when the
    packet asked for a data ack and the handler declares ``ack`` (or ``**kwargs``).

    :param registered: the handler and what its signature accepts.
    :param args: the event's arguments, passed positionally.
    :param pending: the packet's data ack, or None.
    :return: the handler's return value.
    """
    if pending is not None and pending.ack is not None and registered.wants_ack:
        return registered.fn(*args, ack=pending.take())
    return registered.fn(*args)


def _raise(exc: Exception) -> None:
    """Raise ``exc`` where a handler would (see ``_AppBridge._answer_failed``)."""
    raise exc


def current_pending_ack() -> PendingAck | None:
    """The data ack of the packet the running handler serves (None outside a
    handler, or when the packet asked for none)."""
    if not flask.has_request_context():
        return None
    return getattr(flask.request, "_sio09_ack", None)


def current_session() -> Session | None:
    """The server-side session of the running handler (None outside one)."""
    if not flask.has_request_context():
        return None
    return getattr(flask.request, "_sio09_session", None)


def incoming_packet(namespace: str, name: str, args: list[Any],
                    ack: Callable[..., None] | None, packet: bool = False) -> dict[str, Any]:
    """The packet-module dict of what the server dispatched.

    The server passes ``message`` and ``json`` packets as events of those
    names with one argument (``packet`` True); they are rebuilt as such. An
    event the client named ``message`` stays an event: a ``Namespace``
    dispatches both to ``on_message``, the gevent-socketio layer the packet
    to ``recv_message`` and the event to ``on_message``, as gevent-socketio
    did. ``id`` and ``ack`` are present when the client asked for a data ack
    (a plain ack was answered before dispatch).
    """
    pkt: dict[str, Any]
    if packet and name == "message":
        pkt = {"type": "message", "data": args[0]}
    elif packet and name == "json":
        pkt = {"type": "json", "data": args[0]}
    else:
        pkt = {"type": "event", "name": name, "args": list(args)}
    pkt["endpoint"] = namespace
    ack_id = getattr(ack, "id", None)
    if ack_id is not None:
        pkt["id"] = ack_id
        pkt["ack"] = "data"
    return pkt


#: the event whose error handler this thread ran last (its ``event`` dict):
#: ``_answer_failed``, on the same thread right after, asks whether the value
#: it could not send was that handler's (an identity, not an ``id()``: the
#: dict of a later event may get the same address; so one event's dict per
#: thread may stay referenced here until that thread's next failure)
_error_handled = threading.local()
#: what the bridge sets on a connection's request, kept by ``_EventContext.copy``
_EVENT_ATTRIBUTES = ("sid", "namespace", "event", "_sio09_session")


class _EventContext(RequestContext):
    """The request context handlers run in: the request that opened the
    connection, made once per connection and in effect for each event
    (``run``: in a ``contextvars.Context`` of the event's own).

    Pushing and popping has the effects of Flask's own, minus the work that
    would do nothing here, which is most of its cost (8 µs of an event's
    30): the URL (the handshake's) routes to no view, so it is not matched;
    the app context is made once per connection, with a fresh ``flask.g``
    per event; signals are sent and teardown functions run only when some
    are registered.
    """

    def __init__(self, app: flask.Flask, environ: dict[str, Any],
                 request: flask.Request | None = None,
                 session: SessionMixin | None = None) -> None:
        # (``request`` and ``session``: ``RequestContext.copy`` passes them,
        # which ``flask.copy_current_request_context`` calls in a handler)
        super().__init__(app, environ, request, session)
        self._event_app_context = app.app_context()
        #: the ``contextvars.Context`` that ``run`` copies for each event, in
        #: which this context and its app context are pushed (made at the first)
        self._pushed_vars: contextvars.Context | None = None
        #: the exception of the running handler that no error handler took
        self.unhandled: Exception | None = None

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with this context pushed, in a ``contextvars.Context``
        of the event's own: a context variable the handler sets, or a Flask
        context it pushes and leaves, ends with the event (it is seen by no
        later event, of this connection or another, and freed at once).

        Without any signal receiver or teardown function registered (the
        common case) this context is not pushed and popped: the event's
        Context is a copy of one in which it is pushed for good, and only
        ``flask.g`` is made new. Setting and resetting the two context
        variables for each event cost a tenth of an event's CPU in the hub.
        With receivers or teardown functions, it is pushed and popped in
        an empty Context. A receiver connected or a teardown function
        registered while ``fn`` runs takes effect from the next event on.
        """
        app = self.app
        if appcontext_pushed.receivers or \
                app.teardown_request_funcs.get(None) or request_tearing_down.receivers or \
                app.teardown_appcontext_funcs or appcontext_tearing_down.receivers or \
                appcontext_popped.receivers or "files" in self.request.__dict__:
            return contextvars.Context().run(self._run_pushed, fn, args)
        pushed = self._pushed_vars
        if pushed is None:
            pushed = contextvars.Context()
            pushed.run(self._push_for_good)
            self._pushed_vars = pushed
        self._event_app_context.g = app.app_ctx_globals_class()  # flask.g lives for one event
        try:
            return pushed.copy().run(fn, *args)
        finally:
            self.unhandled = None  # (no teardown function to hand it to)
            if "files" in self.request.__dict__:  # uploads a handler parsed
                self.request.close()

    def _push_for_good(self) -> None:
        # (in the Context that run() copies: never reset, so no tokens kept)
        _cv_app.set(self._event_app_context)
        _cv_request.set(self)  # type: ignore[arg-type]
        if self._session is None:  # (as push() does, with the contexts pushed)
            self._open_session()

    def _run_pushed(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        self.push()
        self.unhandled = None
        try:
            return fn(*args)
        finally:
            # the teardown functions get a handler's exception that no error
            # handler took, as when it leaves Flask-SocketIO's ``with`` block
            exc, self.unhandled = self.unhandled, None
            if exc is None:
                self.pop()
            else:
                self.pop(exc)

    def match_request(self) -> None:
        pass

    def copy(self) -> _EventContext:
        """The context ``flask.copy_current_request_context`` gives a
        background task: with a request of its own that keeps this event's
        ``sid``, ``namespace`` and ``event``, since this context's request,
        the connection's, is rewritten for each event (the task's emits
        would go to the namespace of whichever event came last), and without
        the event's ack."""
        ctx = self.__class__(self.app, self.request.environ, None, self._session)
        for name in _EVENT_ATTRIBUTES:
            if name in self.request.__dict__:
                setattr(ctx.request, name, self.request.__dict__[name])
        return ctx

    def push(self) -> None:
        app = self.app
        app_ctx = self._event_app_context
        app_ctx.g = app.app_ctx_globals_class()  # flask.g lives for one event
        app_ctx._cv_tokens.append(_cv_app.set(app_ctx))
        if appcontext_pushed.receivers:
            appcontext_pushed.send(app, _async_wrapper=app.ensure_sync)
        self._cv_tokens.append((_cv_request.set(self), app_ctx))  # type: ignore[arg-type]
        if self._session is None:
            self._open_session()

    def _open_session(self) -> None:
        """Open the connection's copy of the Flask session (once)."""
        app = self.app
        interface = app.session_interface
        opened = interface.open_session(app, self.request)  # an empty one is falsy
        self._session = interface.make_null_session(app) if opened is None else opened

    def pop(self, exc: BaseException | None = _NO_EXCEPTION) -> None:  # type: ignore[assignment]
        app = self.app
        if not (app.teardown_request_funcs.get(None) or request_tearing_down.receivers
                or app.teardown_appcontext_funcs or appcontext_tearing_down.receivers
                or appcontext_popped.receivers or "files" in self.request.__dict__):
            # the common case: nothing to run or close, only the context to leave
            token, app_ctx = self._cv_tokens.pop()
            _cv_request.reset(token)
            _cv_app.reset(app_ctx._cv_tokens.pop())
            return
        outermost = len(self._cv_tokens) == 1
        if exc is _NO_EXCEPTION:
            exc = sys.exc_info()[1]
        try:
            if outermost:
                if app.teardown_request_funcs.get(None) or request_tearing_down.receivers:
                    app.do_teardown_request(exc)
                if "files" in self.request.__dict__:  # uploads a handler parsed
                    self.request.close()
        finally:
            token, app_ctx = self._cv_tokens.pop()
            _cv_request.reset(token)
            try:
                if len(app_ctx._cv_tokens) == 1 and (
                        app.teardown_appcontext_funcs or appcontext_tearing_down.receivers):
                    app.do_teardown_appcontext(exc)
            finally:
                _cv_app.reset(app_ctx._cv_tokens.pop())
            if appcontext_popped.receivers:
                appcontext_popped.send(app, _async_wrapper=app.ensure_sync)


class _AppBridge:
    """Runs the handlers of one ``SocketIO`` for one Flask app (the server's
    ``Application``)."""

    def __init__(self, sio: SocketIO, app: flask.Flask) -> None:
        self.sio = sio
        self.app = app
        self._routes_checked = False

    def _call(self, session: Session, namespace: str, event: dict[str, Any], fn: Handler,
              args: tuple[Any, ...] | list[Any] = (), pending: PendingAck | None = None) -> Any:
        # One request context per connection, pushed for each event: its
        # Request, URL adapter and Flask session are built once (the session
        # is the connection's own copy, kept between events), while flask.g
        # and the teardown functions are per event as in a normal request.
        ctx = session.app_data.get("flask_context")
        if ctx is None:
            ctx = _EventContext(self.app, session.environ)
            session.app_data["flask_context"] = ctx
            ctx.request.sid = session.sid  # type: ignore[attr-defined]
            # for Namespace classes and the compat layer (current_session)
            ctx.request._sio09_session = session  # type: ignore[attr-defined]
        request = ctx.request
        request.namespace = namespace  # type: ignore[attr-defined]
        request.event = event  # type: ignore[attr-defined]
        request._sio09_ack = pending  # type: ignore[attr-defined]
        return ctx.run(self._run_handler, ctx, session, namespace, event, fn, args, pending)

    def _run_handler(self, ctx: _EventContext, session: Session, namespace: str,
                     event: dict[str, Any], fn: Handler, args: tuple[Any, ...] | list[Any],
                     pending: PendingAck | None) -> Any:
        """``fn(*args)`` in the event's context; an exception goes to the
        error handler, whose value is returned."""
        try:
            return fn(*args)
        except ConnectionRefusedError as exc:
            if event["name"] != "connect":  # (a refusal only where there is a client to refuse)
                return self._handler_failed(ctx, session, namespace, event, pending, exc)
            logger.info("session %s: %s refused by its connect handler: %s", session.sid,
                        f"namespace {namespace!r}" if namespace else "the connection",
                        exc.error_args["message"])
            return False
        except Exception as exc:
            return self._handler_failed(ctx, session, namespace, event, pending, exc)

    def _handler_failed(self, ctx: _EventContext, session: Session, namespace: str,
                        event: dict[str, Any], pending: PendingAck | None,
                        exc: Exception) -> Any:
        """A handler raised ``exc`` (being handled): the error handler's value."""
        if pending is not None:
            pending.failed = True
        result = self._handle_error(namespace, exc, session)
        if result is UNHANDLED:
            ctx.unhandled = exc  # (for the teardown functions)
        # (after the error handler ran: that value is its, see _answer_failed)
        _error_handled.event = event
        # a connect handler that failed must not let the client in
        return False if event["name"] == "connect" else result

    def _handle_error(self, namespace: str, exc: Exception,
                      session: Session | None = None) -> Any:
        """Hand a handler's exception to its error handler: its return value,
        or ``UNHANDLED`` when there is none or it raised too. Logged with its
        traceback, at most a few per session in a while (``droplog``): a
        client can make a handler raise with every packet it sends."""
        handler = self.sio.error_handlers.get(namespace, self.sio.default_error_handler)
        if handler is None:
            _log_error(session, "error in a handler of namespace %r", namespace)
            return UNHANDLED
        try:
            return handler(exc)
        except Exception:
            _log_error(session, "error in the error handler of namespace %r", namespace)
            return UNHANDLED

    def authorize_handshake(self, environ: dict[str, Any]) -> bool:
        if not self._routes_checked:  # (at the first handshake: the routes are declared)
            self._routes_checked = True
            self._warn_of_unreachable_routes()
        handler = self.sio.handshake_handler
        if handler is None:
            return True
        with self.app.request_context(environ):
            return handler() is not False

    def _warn_of_unreachable_routes(self) -> None:
        """Say which of the app's routes lie under the resource, which the
        server answers before Flask routes anything: their views never run.
        A port from gevent-socketio that keeps its ``socketio_manage`` view
        there otherwise serves clients whose events reach no handler, silently."""
        resource = self.app.extensions["sio09"].server.options.resource
        for rule in self.app.url_map.iter_rules():
            static_part = rule.rule.split("<", 1)[0]
            if protocol.parse_path(static_part, resource) is not None:
                logger.warning("the route %s (view %r) is never reached: flask_sio09 answers "
                               "every path under /%s/ itself (a gevent-socketio "
                               "socketio_manage view? see docs/porting-gevent-socketio.md)",
                               rule.rule, rule.endpoint, resource.strip("/"))

    def connect(self, session: Session, namespace: str, query: str) -> bool:
        event: dict[str, Any] = {"name": "connect", "args": []}
        handler = self.sio.namespace_handlers.get(namespace)
        if handler is not None:
            pkt = {"type": "connect", "endpoint": namespace, "qs": f"?{query}" if query else ""}
            return self._call(session, namespace, event, handler.process_packet,
                              (pkt,)) is not False
        registered = self.sio.handlers.get(namespace, {}).get("connect")
        if registered is None:
            return True
        args = (MultiDict(parse_qsl(query, keep_blank_values=True)),)[:registered.positional]
        return self._call(session, namespace, event, registered.fn, args) is not False

    def has_connect_handler(self, namespace: str) -> bool:
        """Whether joining ``namespace`` runs a handler (else the server joins
        the client without waiting for a handler thread)."""
        return namespace in self.sio.namespace_handlers or \
            "connect" in self.sio.handlers.get(namespace, {})

    def event(self, session: Session, namespace: str, name: str, args: list[Any],
              ack: Ack | None, packet: bool = False) -> None:
        if name in RESERVED_EVENTS:
            logger.debug("session %s: reserved event name %r dropped", session.sid, name)
            return
        event = {"name": name, "args": args}
        handler = self.sio.namespace_handlers.get(namespace)
        if handler is not None:
            # a Namespace class may take the ack (take_ack, ack=) deep inside
            pending = PendingAck(ack)
            result = self._call(session, namespace, event, handler.process_packet,
                                (incoming_packet(namespace, name, args, ack, packet),), pending)
            if result is not UNHANDLED and pending.unanswered():
                self._answer(session, namespace, event, pending, result)
            return
        registered = self.sio.handlers.get(namespace, {}).get(name)
        if registered is None:
            logger.debug("session %s: no handler for %r on %r", session.sid, name, namespace)
            return
        if ack is not None and registered.wants_ack:
            pending = PendingAck(ack)
            result = self._call(session, namespace, event, invoke, (registered, args, pending),
                                pending)
            # the handler took the ack: it answers, now or later; unless it
            # raised first, when the error handler's value does
            if result is not UNHANDLED and pending.unanswered():
                self._answer(session, namespace, event, pending, result)
            return
        # the common case: a function that cannot take the ack, whose return
        # value answers it (no PendingAck needed: nothing can take it)
        result = self._call(session, namespace, event, registered.fn, args)
        if ack is not None and result is not UNHANDLED:
            try:  # (ack(*ack_args(result)), inline: every event with an ack)
                ack.answer(() if result is None else result if isinstance(result, tuple)
                           else (result,))
            except Exception as exc:  # a value JSON cannot carry
                self._answer_failed(session, namespace, event, ack, exc)

    def _answer(self, session: Session, namespace: str, event: dict[str, Any],
                pending: PendingAck, result: Any) -> None:
        """Answer ``pending``'s ack with a handler's (or error handler's) value."""
        assert pending.ack is not None
        try:
            pending.ack(*ack_args(result))
        except Exception as exc:  # a value JSON cannot carry
            self._answer_failed(session, namespace, event, pending.ack, exc)

    def _answer_failed(self, session: Session, namespace: str, event: dict[str, Any],
                       ack: Callable[..., None], exc: Exception) -> None:
        """A handler returned what its data ack cannot carry (a set, a
        datetime): the error handler gets the exception, as when the handler
        calls ``ack`` with it itself, and its return value answers. When
        that value was the error handler's already, it is only logged (the
        error handler runs once per event)."""
        handled, _error_handled.event = getattr(_error_handled, "event", None), None
        if handled is not event:
            result = self._call(session, namespace, event, _raise, (exc,))
            if result is UNHANDLED:
                return
            try:
                ack(*ack_args(result))
                return
            except Exception:
                pass
        _log_error(session, "the error handler of namespace %r answered an ack with "
                   "what JSON cannot carry", namespace)

    def disconnect(self, session: Session, namespace: str) -> None:
        event: dict[str, Any] = {"name": "disconnect", "args": []}
        handler = self.sio.namespace_handlers.get(namespace)
        if handler is not None:
            pkt = {"type": "disconnect", "endpoint": namespace}
            self._call(session, namespace, event, handler.process_packet, (pkt,))
            return
        registered = self.sio.handlers.get(namespace, {}).get("disconnect")
        if registered is not None:
            self._call(session, namespace, event, registered.fn)

    def callback(self, session: Session, namespace: str, callback: Callable[..., Any],
                 args: list[Any]) -> None:
        self._call(session, namespace, {"name": "callback", "args": args}, callback, tuple(args))

    def remote_callback(self, namespace: str, callback: Callable[..., Any],
                        args: list[Any]) -> None:
        # the client is another process's: there is no request of its here,
        # only the app (flask.current_app, flask.g)
        with self.app.app_context():
            try:
                callback(*args)
            except Exception as exc:
                self._handle_error(namespace, exc)

    def error(self, session: Session, namespace: str, reason: str, advice: str) -> None:
        event: dict[str, Any] = {"name": "error", "args": [reason, advice]}
        handler = self.sio.namespace_handlers.get(namespace)
        if handler is not None:
            pkt = {"type": "error", "endpoint": namespace, "reason": reason, "advice": advice}
            self._call(session, namespace, event, handler.process_packet, (pkt,))
            return
        registered = self.sio.handlers.get(namespace, {}).get("error")
        if registered is None:
            log_dropped(session, "session %s: client error packet on %r: %s %s",
                        session.sid, namespace, reason, advice)
            return
        self._call(session, namespace, event, registered.fn, (reason, advice))


def _log_error(session: Session | None, message: str, *args: Any) -> None:
    """Log the exception being handled, with its traceback, at ERROR."""
    if session is None:
        logger.exception(message, *args)
    else:
        log_dropped(session, message, *args, level=logging.ERROR, exc_info=True)


class _Middleware:
    """Sends ``/<resource>/...`` to the server before Flask's router sees it
    (Werkzeug's router would refuse a WebSocket upgrade)."""

    def __init__(self, wsgi_app: Callable[..., Any], server: Server) -> None:
        self.wsgi_app = wsgi_app
        self.server = server

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        route = protocol.parse_path(environ.get("PATH_INFO", ""), self.server.options.resource)
        if route is None:
            return self.wsgi_app(environ, start_response)
        return transports.handle_request(self.server, route, environ, start_response)


@dataclass
class _State:
    """What ``init_app`` keeps per Flask app."""

    sio: SocketIO
    server: Server


class SocketIO:
    """The Socket.IO 0.9 extension.

    :param app: the Flask app, or None to call ``init_app`` later.
    :param options: the options of docs/quickstart.md ("Options"):
                    ``resource``, ``transports``, ``heartbeat_timeout``,
                    ``heartbeat_interval``, ``close_timeout``,
                    ``polling_duration``, ``cors_allowed_origins``,
                    ``max_http_buffer_size``, ``max_outbox_bytes``,
                    ``message_queue``, ``logger``, ``websocket_mode``,
                    ``handler_threads``, ``write_only``; each may also come
                    from ``app.config["SIO09_<NAME>"]``, an argument wins.
    """

    def __init__(self, app: flask.Flask | None = None, **options: Any) -> None:
        self._options = options
        #: with ``write_only``: the message queue this emitter publishes to
        self._emitter: Any = None
        url = emitter_url(options)
        if url is not None:
            if app is not None:
                raise OptionError("option 'write_only' makes an emitter without an app: "
                                  "SocketIO(message_queue=url, write_only=True)")
            resolve_options({}, {**options, "write_only": False})  # the others' checks
            from .redis_manager import RedisManager  # (imports redis: optional)

            self._emitter = RedisManager(None, url, write_only=True)
        #: namespace endpoint -> event name -> handler
        self.handlers: dict[str, dict[str, _Registered]] = {}
        #: namespace endpoint -> class-based namespace object (wins over ``handlers``)
        self.namespace_handlers: dict[str, Namespace] = {}
        self.error_handlers: dict[str, Handler] = {}
        self.default_error_handler: Handler | None = None
        self.handshake_handler: Handler | None = None
        #: the app initialised last: what serves outside an app context (as
        #: Flask-SocketIO's ``server``). Only it is held here: an app made
        #: before it and let go of (a test's, made by a factory) goes, with
        #: its server and its monitor thread
        self._latest: _State | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: flask.Flask, **options: Any) -> None:
        """Attach the extension to ``app`` (the factory pattern)."""
        if "sio09" in app.extensions:
            raise RuntimeError("SocketIO.init_app was already called on this app")
        if self._emitter is not None:
            raise RuntimeError("a write_only SocketIO is an emitter: it serves no app")
        opts = resolve_options(app.config, {**self._options, **options})
        server = Server(opts, _AppBridge(self, app))
        state = _State(self, server)
        app.extensions["sio09"] = state
        app.wsgi_app = _Middleware(app.wsgi_app, server)  # type: ignore[method-assign]
        self._latest = state

    # -- registering handlers --------------------------------------------

    def on(self, event: str, namespace: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: register a handler for ``event`` on ``namespace``."""
        if not isinstance(event, str):
            # ``@sio.on`` without its parentheses would register nothing
            raise TypeError("sio.on() takes the event name: write @sio.on('my_event'), "
                            f"not @sio.on (got {type(event).__name__})")
        normalize_namespace(namespace)  # (a bad one is refused here, not at the def below)

        def decorator(fn: Handler) -> Handler:
            self.on_event(event, fn, namespace)
            return fn
        return decorator

    def on_event(self, event: str, handler: Handler, namespace: str | None = None) -> None:
        """Register ``handler`` for ``event`` on ``namespace`` (no decorator)."""
        if not isinstance(event, str):
            raise TypeError(f"the event name is a str, not {type(event).__name__}")
        if not callable(handler):
            raise TypeError(f"the handler of {event!r} is not callable")
        ns = normalize_namespace(namespace)
        if event == "*":
            # Flask-SocketIO 5's catch-all: here only an event named "*" would
            # call it, which a port would never see happen
            logger.warning("a handler for the event '*' is a catch-all in Flask-SocketIO 5; "
                           "flask_sio09 has no catch-all: it runs only for an event named "
                           "'*' (give each event its handler)")
        self.handlers.setdefault(ns, {})[event] = _Registered.of(handler)

    def on_namespace(self, namespace_handler: Namespace) -> None:
        """Register a class-based namespace object (a ``flask_sio09.Namespace``).

        It serves its namespace instead of any handlers registered there with
        ``on``; other namespaces of the app keep their decorated handlers.
        """
        from .namespace import Namespace

        if not isinstance(namespace_handler, Namespace):
            raise TypeError("on_namespace() takes a flask_sio09.Namespace instance, "
                            f"not {type(namespace_handler).__name__}")
        namespace_handler.socketio = self
        self.namespace_handlers[namespace_handler.namespace] = namespace_handler

    def event(self, fn: Handler | None = None, *, namespace: str | None = None) -> Any:
        """Decorator: register ``fn`` for the event named after it, as
        Flask-SocketIO's ``@sio.event``; ``@sio.event(namespace="/chat")``
        chooses the namespace."""
        if fn is None:
            def decorator(handler: Handler) -> Handler:
                return self.event(handler, namespace=namespace)
            return decorator
        if not callable(fn) or not hasattr(fn, "__name__"):
            raise TypeError("sio.event decorates a function named after its event, "
                            f"not {type(fn).__name__}; write @sio.on('name') to choose one")
        self.on_event(fn.__name__, fn, namespace)
        return fn

    def on_error(self, namespace: str | None = None) -> Callable[[Handler], Handler]:
        """Decorator: handle exceptions raised by ``namespace``'s handlers."""
        if namespace is not None and not isinstance(namespace, str):
            # ``@sio.on_error`` without its parentheses would register nothing
            raise TypeError("sio.on_error() takes the namespace: write @sio.on_error() or "
                            "@sio.on_error('/chat'), not @sio.on_error "
                            f"(got {type(namespace).__name__})")

        def decorator(fn: Handler) -> Handler:
            self.error_handlers[normalize_namespace(namespace)] = fn
            return fn
        return decorator

    def on_error_default(self, fn: Handler) -> Handler:
        """Decorator: handle exceptions of namespaces without their own handler."""
        self.default_error_handler = fn
        return fn

    def on_handshake(self, fn: Handler) -> Handler:
        """Decorator: authorize handshakes; returning False answers 403."""
        self.handshake_handler = fn
        return fn

    def test_client(self, app: flask.Flask, namespace: str | None = None,
                    query_string: str | None = None, headers: Any = None,
                    flask_test_client: Any = None) -> SocketIOTestClient:
        """An in-memory client of ``app`` for unit tests (see ``flask_sio09.testing``).

        :param app: a Flask app this extension was initialised on.
        :param namespace: a namespace to connect besides the global one.
        :param query_string: the connection's query string (``"a=1&b=2"``).
        :param headers: extra request headers of the handshake (cookies included).
        :param flask_test_client: a ``app.test_client()`` whose cookie jar (the
                                  Flask session, say) the connection uses.
        """
        from .testing import SocketIOTestClient

        return SocketIOTestClient(self, app, namespace=namespace, query_string=query_string,
                                  headers=headers, flask_test_client=flask_test_client)

    # -- emitting from anywhere --------------------------------------------

    def _server(self) -> Server:
        if self._emitter is not None:
            raise RuntimeError("a write_only SocketIO is an emitter: it can emit, send "
                               "and close_room, and has no server for anything else")
        if flask.has_app_context():
            state = flask.current_app.extensions.get("sio09")
            if state is not None and state.sio is self:
                return state.server
        # outside an app context: the app initialised last, as Flask-SocketIO
        # does (a test suite that makes an app per test emits to the newest)
        if self._latest is None:
            raise RuntimeError("SocketIO has no app: call init_app(app) first")
        return self._latest.server

    def emit(self, event: str, *args: Any, to: str | Iterable[str] | None = None,
             skip_sid: str | Iterable[str] | None = None, namespace: str | None = "",
             callback: Callable[..., Any] | None = None, room: str | Iterable[str] | None = None,
             include_self: bool = True) -> None:
        """Emit ``event`` to a sid or room (``to``), or to everyone in ``namespace``.

        As in Flask-SocketIO 5, ``room`` is ``to``'s older name, and
        ``include_self=False`` (in a handler) skips the client that sent the
        event being handled."""
        to, skip_sid = _recipients(to, room, skip_sid, include_self)
        pkt = {"type": "event", "name": event, "args": list(args)}
        if self._emitter is not None:
            self._publish(pkt, normalize_namespace(namespace), to, skip_sid, callback)
            return
        self._server().emit_packet(pkt, normalize_namespace(namespace), to, skip_sid, callback)

    def send(self, data: Any, json: bool = False, to: str | Iterable[str] | None = None,
             skip_sid: str | Iterable[str] | None = None, namespace: str | None = "",
             callback: Callable[..., Any] | None = None, room: str | Iterable[str] | None = None,
             include_self: bool = True) -> None:
        """Send a message (type 3), or a JSON message (type 4) with ``json=True``
        (``room`` and ``include_self`` as for ``emit``)."""
        to, skip_sid = _recipients(to, room, skip_sid, include_self)
        if self._emitter is not None:
            self._publish(message_packet(data, json), normalize_namespace(namespace), to,
                          skip_sid, callback)
            return
        self._server().emit_packet(message_packet(data, json),
                                   normalize_namespace(namespace), to, skip_sid, callback)

    def _publish(self, pkt: dict[str, Any], namespace: str, to: Any, skip_sid: Any,
                 callback: Callable[..., Any] | None) -> None:
        """A write-only emitter's emit: every server process delivers it."""
        if callback is not None:
            raise ValueError("callback= needs a server to receive the ack: a write_only "
                             "emitter has none")
        pkt["endpoint"] = namespace
        self._emitter.emit_encoded(packet_codec.encode(pkt), namespace, to, skip_sid)

    def close_room(self, room: str, namespace: str | None = "") -> None:
        """Empty ``room``."""
        manager = self._emitter if self._emitter is not None else self._server().manager
        manager.close_room(room, normalize_namespace(namespace))

    def start_background_task(self, target: Callable[..., Any], *args: Any,
                              **kwargs: Any) -> threading.Thread:
        """Run ``target`` in a daemon thread; returns the started thread."""
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, daemon=True)
        thread.start()
        return thread

    @staticmethod
    def sleep(seconds: float) -> None:
        """Sleep (threads: ``time.sleep``)."""
        time.sleep(seconds)

    def run(self, app: flask.Flask, host: str | None = "127.0.0.1", port: int | None = 5000,
            debug: bool = False, **kwargs: Any) -> None:
        """Serve ``app`` with Werkzeug's threaded server (WebSocket included).

        ``debug=True`` does what it does for ``app.run``: ``app.debug`` is set
        (so that errors reach Werkzeug's debugger), with the reloader and the
        debugger on unless ``use_reloader``/``use_debugger`` say otherwise.
        Flask-SocketIO 5's ``log_output`` (False: no line per request),
        ``reloader_options`` (passed to the reloader) and
        ``allow_unsafe_werkzeug`` (nothing to allow) are accepted, and
        ``host=None``, ``port=None`` mean the defaults, as there.
        """
        from werkzeug.serving import run_simple

        host = "127.0.0.1" if host is None else host
        port = 5000 if port is None else port
        # (Flask-SocketIO 5 refuses Werkzeug in production unless told so: a
        # ported call passes this; Werkzeug's run_simple would refuse it)
        kwargs.pop("allow_unsafe_werkzeug", None)
        kwargs.update(kwargs.pop("reloader_options", None) or {})
        if kwargs.pop("log_output", True) is False:
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        if debug:
            app.debug = True
        kwargs.setdefault("use_reloader", debug)
        kwargs.setdefault("use_debugger", debug)
        if not kwargs["use_reloader"] and threading.current_thread() is threading.main_thread() \
                and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            # a plain TERM would end the process on the spot; exiting instead
            # lets the sessions end first (stopping.py), as Werkzeug's
            # reloader does for its own processes
            signal.signal(signal.SIGTERM, _exit_on_first_term)
        if kwargs.get("ssl_context") is not None:
            kwargs["ssl_context"] = _HandshakeInRequestThread(kwargs["ssl_context"])
        run_simple(host, port, app, threaded=True, **kwargs)


class _HandshakeInRequestThread:
    """``sio.run``'s ``ssl_context``: its server sockets do the TLS handshake
    on their first read, in the request's thread, not in ``accept()``.
    Werkzeug accepts on its one serving thread, where a client that opened a
    connection and sent nothing (or a byte at a time) kept every other client
    from connecting, for as long as it liked.

    :param context: what ``run_simple`` takes: an ``ssl.SSLContext``, a
                    ``(cert, key)`` tuple or ``"adhoc"``.
    """

    def __init__(self, context: Any) -> None:
        from werkzeug.serving import generate_adhoc_ssl_context, load_ssl_context

        if isinstance(context, tuple):
            context = load_ssl_context(*context)
        elif context == "adhoc":
            context = generate_adhoc_ssl_context()
        self.context = context

    def wrap_socket(self, sock: socket.socket, server_side: bool = False,
                    **kwargs: Any) -> ssl.SSLSocket:
        """Wrap the listening socket; the sockets it accepts inherit
        ``do_handshake_on_connect=False`` (OpenSSL then shakes hands in the
        first read)."""
        kwargs["do_handshake_on_connect"] = False
        return self.context.wrap_socket(sock, server_side=server_side, **kwargs)  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.context, name)


#: set once ``sio.run`` began to exit on a TERM
_terminating = threading.Event()


def _exit_on_first_term(signum: int, frame: Any) -> None:
    """``sio.run``'s TERM: exit, so that the sessions end first. A TERM
    that comes while they end (an impatient supervisor, a second ``kill``)
    is ignored: raised in the middle of the exit, it would cut the
    disconnect handlers short with a traceback. The exit waits for them a
    bounded time (``stopping.EXIT_WAIT_SECONDS``); KILL still ends it at once."""
    if _terminating.is_set():
        logger.info("TERM while the server stops: ignored (the sessions are ending)")
        return
    _terminating.set()
    sys.exit(0)


def message_packet(data: Any, json: bool) -> dict[str, Any]:
    """The packet dict of ``send``: type 3 for a str, else type 4 (JSON).

    ``json=True`` sends even a str as JSON. Data that is not a str goes as
    JSON whatever ``json`` says: a 0.9 client hands a JSON message's decoded
    value to its ``message`` listeners, which is what a Flask-SocketIO user
    sending a dict expects, where a type 3 could carry only Python's repr.
    """
    if json or not isinstance(data, str):
        return {"type": "json", "data": data}
    return {"type": "message", "data": data}


# -- helpers for use inside handlers ---------------------------------------

def _context() -> tuple[Server, str, str]:
    """The server, sid and namespace of the handler that is running."""
    # (checked before reading flask.request, whose own error outside any
    # request speaks of Flask's testing docs, not of the mistake made here)
    sid = getattr(flask.request, "sid", None) if flask.has_request_context() else None
    if sid is None:
        raise RuntimeError(
            "emit() and send() work only inside a Socket.IO handler; elsewhere use the "
            "SocketIO object's methods, e.g. sio.emit(event, data, to=sid, namespace='/chat')")
    return flask.current_app.extensions["sio09"].server, sid, flask.request.namespace


def _client_context(sid: str | None, what: str) -> tuple[Server, str, str]:
    """The server, client and default namespace for a room or disconnect
    helper: the running handler's, or outside one (a background thread, a
    view), those of the current app, the client named by ``sid`` and the
    global namespace, as Flask-SocketIO allows with an app context."""
    if flask.has_request_context() and getattr(flask.request, "sid", None) is not None:
        server, current_sid, namespace = _context()
        return server, sid or current_sid, namespace
    state = flask.current_app.extensions.get("sio09") if flask.has_app_context() else None
    if sid is None or state is None:
        raise RuntimeError(
            f"{what}() outside a Socket.IO handler needs the client's sid and the app's "
            "context, e.g. with app.app_context(): "
            f"{what}(..., sid=sid, namespace='/chat')")
    return state.server, sid, ""


def _server_context(what: str) -> tuple[Server, str]:
    """The server and default namespace for ``close_room``: the running
    handler's, or outside one the current app's and the global namespace."""
    if flask.has_request_context() and getattr(flask.request, "sid", None) is not None:
        server, _, namespace = _context()
        return server, namespace
    state = flask.current_app.extensions.get("sio09") if flask.has_app_context() else None
    if state is None:
        raise RuntimeError(f"{what}() outside a Socket.IO handler needs the app's context "
                           f"(with app.app_context(): ...), or use sio.{what}()")
    return state.server, ""


def _to_or_room(to: Any, room: Any) -> Any:
    """``to``, or ``room``: Flask-SocketIO's older name for it, which its
    version 5 still takes (a port keeps working without the rename)."""
    if room is None:
        return to
    if to is not None and to != room:
        raise TypeError("give to= or room= (its older name), not both")
    return room


def _with_skipped(skip_sid: Any, sid: str) -> Any:
    """``skip_sid`` with ``sid`` added."""
    if skip_sid is None or skip_sid == sid:
        return sid
    if isinstance(skip_sid, str):
        return [skip_sid, sid]
    return [*listed_names(skip_sid, "skip_sid"), sid]


def _recipients(to: Any, room: Any, skip_sid: Any, include_self: bool) -> tuple[Any, Any]:
    """``SocketIO.emit``'s ``to`` and ``skip_sid`` from its Flask-SocketIO 5
    arguments: ``include_self=False`` skips the client whose event is being
    handled, as there (outside a handler there is none: an error)."""
    if room is not None:  # (the call only then: every emit comes here)
        to = _to_or_room(to, room)
    if not include_self:
        sid = getattr(flask.request, "sid", None) if flask.has_request_context() else None
        if sid is None:
            raise RuntimeError("include_self=False skips the client whose event is being "
                               "handled: outside a Socket.IO handler, give skip_sid=sid")
        skip_sid = _with_skipped(skip_sid, sid)
    return to, skip_sid


def _targets(sid: str, to: Any, room: Any, broadcast: bool, include_self: bool,
             skip_sid: Any) -> tuple[Any, Any]:
    if room is not None:  # (the call only then: a handler's every emit comes here)
        to = _to_or_room(to, room)
    if to is None and not broadcast:
        to = sid
    if not include_self:
        skip_sid = _with_skipped(skip_sid, sid)
    return to, skip_sid


def emit(event: str, *args: Any, to: str | Iterable[str] | None = None, broadcast: bool = False,
         include_self: bool = True, namespace: str | None = None,
         callback: Callable[..., Any] | None = None, room: str | Iterable[str] | None = None,
         skip_sid: str | Iterable[str] | None = None) -> None:
    """Emit from a handler: to the current client by default; ``to`` a room or
    sid; ``broadcast`` to the whole namespace; ``include_self=False`` skips
    the sender, ``skip_sid`` other clients (a sid or a list of them).
    ``room`` is ``to``'s older name, as Flask-SocketIO 5 still takes it."""
    server, sid, current = _context()
    ns = current if namespace is None else normalize_namespace(namespace)
    target, skip = _targets(sid, to, room, broadcast, include_self, skip_sid)
    server.emit_packet({"type": "event", "name": event, "args": list(args)}, ns, target, skip,
                       callback)


def send(data: Any, json: bool = False, to: str | Iterable[str] | None = None,
         broadcast: bool = False, include_self: bool = True, namespace: str | None = None,
         callback: Callable[..., Any] | None = None, room: str | Iterable[str] | None = None,
         skip_sid: str | Iterable[str] | None = None) -> None:
    """``emit`` for message (type 3) or JSON (type 4) packets."""
    server, sid, current = _context()
    ns = current if namespace is None else normalize_namespace(namespace)
    target, skip = _targets(sid, to, room, broadcast, include_self, skip_sid)
    server.emit_packet(message_packet(data, json), ns, target, skip, callback)


def join_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    """Put a client (the current one by default) in ``room``. Outside a
    handler, give the ``sid`` (and the namespace: the global one by default)."""
    server, sid, current = _client_context(sid, "join_room")
    ns = current if namespace is None else normalize_namespace(namespace)
    server.manager.enter_room(sid, ns, room)


def leave_room(room: str, sid: str | None = None, namespace: str | None = None) -> None:
    """Take a client (the current one by default) out of ``room``. Outside a
    handler, give the ``sid`` (and the namespace: the global one by default)."""
    server, sid, current = _client_context(sid, "leave_room")
    ns = current if namespace is None else normalize_namespace(namespace)
    server.manager.leave_room(sid, ns, room)


def close_room(room: str, namespace: str | None = None) -> None:
    """Empty ``room`` (outside a handler: of the global namespace by default)."""
    server, current = _server_context("close_room")
    ns = current if namespace is None else normalize_namespace(namespace)
    server.manager.close_room(room, ns)


def rooms(sid: str | None = None, namespace: str | None = None) -> list[str]:
    """The rooms a client (the current one by default) is in. Outside a
    handler, give the ``sid`` (and the namespace: the global one by default)."""
    server, sid, current = _client_context(sid, "rooms")
    ns = current if namespace is None else normalize_namespace(namespace)
    return server.manager.get_rooms(sid, ns)


def disconnect(sid: str | None = None, namespace: str | None = None) -> None:
    """Disconnect a client (the current one by default) from a namespace; the
    global namespace ends its whole session. Outside a handler (a background
    thread with the app's context, a view), give the ``sid``; the namespace is
    then the global one unless given."""
    server, sid, current = _client_context(sid, "disconnect")
    ns = current if namespace is None else normalize_namespace(namespace)
    server.disconnect(sid, ns)
