"""Reading and checking the extension's options.

Each option (the table in docs/quickstart.md, "Options") may be given as a
keyword argument or as ``SIO09_<NAME>`` in the app's config; the argument
wins. Invalid values fail here, at ``init_app``, with a message that names
the option.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from .server import KNOWN_TRANSPORTS, Options

#: option name -> default (``Options`` holds the server's share of them)
DEFAULTS: dict[str, Any] = {
    "resource": "socket.io",
    "transports": ("websocket", "htmlfile", "xhr-polling", "jsonp-polling"),
    "heartbeat_timeout": 60,
    "heartbeat_interval": 25,
    "close_timeout": 60,
    "polling_duration": 20,
    "cors_allowed_origins": None,
    "max_http_buffer_size": 1_000_000,
    "max_outbox_bytes": 16_000_000,
    "message_queue": None,
    "logger": False,
    "websocket_mode": "auto",
    "handler_threads": 16,
    "write_only": False,
}

WEBSOCKET_MODES = ("auto", "hub", "thread")
#: the URLs ``message_queue`` takes (handed to ``redis.Redis.from_url``)
QUEUE_SCHEMES = ("redis://", "rediss://", "unix://")


class OptionError(ValueError):
    """An option has an invalid value."""


def _positive_number(name: str, value: Any) -> float:
    # (NaN and infinity too: a NaN deadline never comes, and the handshake
    # would tell clients "inf", which none reads as a number)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or value <= 0:
        raise OptionError(f"option {name!r} must be a positive number of seconds, got {value!r}")
    return value


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"option {name!r} must be a positive integer, got {value!r}")
    return value


def _transports(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [t.strip() for t in value.split(",") if t.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise OptionError("option 'transports' must be a non-empty list of transport names")
    unknown = [t for t in value if t not in KNOWN_TRANSPORTS]
    if unknown:
        raise OptionError(f"option 'transports' has unknown transports {unknown!r}; "
                          f"known: {sorted(KNOWN_TRANSPORTS)}")
    if len(set(value)) != len(value):
        raise OptionError(f"option 'transports' names a transport twice: {list(value)!r}")
    return tuple(value)


def _origins(value: Any) -> str | list[str] | None:
    if value is None or value == "*":
        return value
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise OptionError("option 'cors_allowed_origins' must be None, '*' or a list of origins")


def configure_logger(value: Any) -> None:
    """``logger=True`` logs the library's INFO lines; a ``logging.Logger``
    becomes the parent the library logs through (the library's own
    ``flask_sio09`` logger: left as the application set it up); False
    leaves logging alone."""
    library = logging.getLogger("flask_sio09")
    if value is True:
        if library.level == logging.NOTSET or library.level > logging.INFO:
            library.setLevel(logging.INFO)
        if not logging.getLogger().handlers and not library.handlers:
            library.addHandler(logging.StreamHandler())
    elif value is library:
        pass  # the library's logger already: configured by the application
    elif isinstance(value, logging.Logger):
        if value.name.startswith(library.name + "."):
            # its records go up to the library's logger, whose handler would
            # hand them back to it: a loop, RecursionError in the hub thread
            raise OptionError(f"option 'logger' must not be a child of the {library.name!r} "
                              f"logger ({value.name!r}): the library's records would come "
                              "back to it; pass the 'flask_sio09' logger itself, or another")
        library.handlers = [_Forward(value)]
        library.propagate = False
        library.setLevel(value.getEffectiveLevel())
    elif value is not False and value is not None:
        raise OptionError(f"option 'logger' must be True, False or a logging.Logger, got {value!r}")


class _Forward(logging.Handler):
    """Hands the library's records to the application's logger."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def _message_queue(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(QUEUE_SCHEMES):
        from .redis_manager import without_password  # (its password stays out of logs)

        shown = without_password(value) if isinstance(value, str) else value
        raise OptionError("option 'message_queue' must be None or a Redis URL "
                          f"({', '.join(s + '...' for s in QUEUE_SCHEMES)}), got {shown!r}")
    return value


def emitter_url(values: Mapping[str, Any]) -> str | None:
    """Check ``write_only`` against ``message_queue``: the Redis URL a
    write-only emitter publishes to, or None when ``write_only`` is off."""
    write_only = values.get("write_only", False)
    if not isinstance(write_only, bool):
        raise OptionError(f"option 'write_only' must be True or False, got {write_only!r}")
    url = _message_queue(values.get("message_queue"))
    if write_only and url is None:
        raise OptionError("option 'write_only' needs 'message_queue': an emitter "
                          "publishes to the servers through it")
    return url if write_only else None


def resolve_options(config: Mapping[str, Any], explicit: Mapping[str, Any]) -> Options:
    """Merge arguments over ``SIO09_*`` config over defaults, check them and
    return the server's ``Options``."""
    unknown = set(explicit) - set(DEFAULTS)
    if unknown:
        raise OptionError(f"unknown option(s): {sorted(unknown)}")
    values = {name: explicit.get(name, config.get(f"SIO09_{name.upper()}", default))
              for name, default in DEFAULTS.items()}
    resource = values["resource"]
    if not isinstance(resource, str) or not resource.strip("/") or "?" in resource:
        raise OptionError(f"option 'resource' must be a URL path segment, got {resource!r}")
    for name in ("heartbeat_timeout", "heartbeat_interval", "close_timeout", "polling_duration"):
        _positive_number(name, values[name])
    if values["heartbeat_interval"] >= values["heartbeat_timeout"]:
        raise OptionError("option 'heartbeat_interval' must be below 'heartbeat_timeout' "
                          "(clients drop the connection otherwise)")
    if values["polling_duration"] >= values["close_timeout"]:
        raise OptionError("option 'polling_duration' must be below 'close_timeout' "
                          "(clients drop the connection otherwise)")
    for name in ("max_http_buffer_size", "max_outbox_bytes"):
        _positive_int(name, values[name])
    threads = values["handler_threads"]
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise OptionError("option 'handler_threads' must be 0 (run handlers on the thread "
                          f"that read the packet) or a positive integer, got {threads!r}")
    if values["websocket_mode"] not in WEBSOCKET_MODES:
        raise OptionError(f"option 'websocket_mode' must be one of {WEBSOCKET_MODES}, "
                          f"got {values['websocket_mode']!r}")
    if emitter_url(values) is not None:
        raise OptionError("option 'write_only' makes an emitter without an app "
                          "(SocketIO(message_queue=url, write_only=True)); an app's "
                          "server cannot be write-only")
    configure_logger(values["logger"])
    return Options(
        resource=resource.strip("/"),
        transports=_transports(values["transports"]),
        heartbeat_timeout=values["heartbeat_timeout"],
        heartbeat_interval=values["heartbeat_interval"],
        close_timeout=values["close_timeout"],
        polling_duration=values["polling_duration"],
        cors_allowed_origins=_origins(values["cors_allowed_origins"]),
        max_http_buffer_size=values["max_http_buffer_size"],
        max_outbox_bytes=values["max_outbox_bytes"],
        websocket_mode=values["websocket_mode"],
        handler_threads=values["handler_threads"],
        message_queue=_message_queue(values["message_queue"]),
    )
