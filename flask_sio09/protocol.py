"""Pure rules of the Socket.IO 0.9 HTTP surface.

URL routing (:func:`parse_path`), the handshake body, the JSONP and htmlfile
framing with their escaping, the JSONP POST body, and the origin check. The
transports call these helpers and only move bytes.

Like :mod:`flask_sio09.packet`, this module does no I/O, starts no threads and
imports only the packet module and the standard library.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .packet import PacketError, utf16_len, without_lone_surrogates

__all__ = [
    "HTMLFILE_PREAMBLE",
    "Route",
    "decode_jsonp_body",
    "handshake_body",
    "htmlfile_chunk",
    "jsonp_error",
    "jsonp_index",
    "jsonp_wrap",
    "origin_allowed",
    "parse_path",
    "parse_query",
    "utf16_len",
]

#: The first chunk of an htmlfile stream: the callback, then 173 spaces that
#: make IE start parsing (PROTOCOL.md §2.2).
HTMLFILE_PREAMBLE = ("<html><body><script>var _ = function (msg) "
                     "{ parent.s._(msg, document); };</script>" + " " * 173)

#: Most digits accepted in a ``jsonp=`` or ``i=`` index.
MAX_JSONP_DIGITS = 10
#: Most fields accepted in a JSONP POST form.
MAX_FORM_FIELDS = 64

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Valid JSON, but not safe raw in old JS engines (U+2028/9) or in UTF-8 (lone
# surrogates); their \\u escapes decode to the same string.
_JS_UNSAFE = re.compile(r"[\u2028\u2029\ud800-\udfff]")


@dataclass(frozen=True)
class Route:
    """A request path under the resource: ``/<protocol>[/<transport>[/<sid>]]``.

    ``transport`` and ``sid`` are None when their segment is absent, and may be
    ``''`` when present but empty (C's disconnect URL ``/1//<sid>/``).
    """

    protocol: str
    transport: str | None
    sid: str | None


def parse_path(path: str, resource: str = "socket.io") -> Route | None:
    """Match a request path the way N does, or return None if it is not ours.

    The part after ``/<resource>`` must be ``/<a>[/<b>[/<c>]][/]`` (empty
    segments allowed). ``/socket.io`` and ``/socket.io/`` give
    ``Route('', None, None)``.

    :param path: the URL path without the query string (``PATH_INFO``).
    :param resource: the resource prefix, with or without slashes.
    :returns: the route, or None for a path outside the resource or with
              more than three segments.
    """
    prefix = resource.strip("/")
    prefix = f"/{prefix}" if prefix else ""
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix):]
    if rest in ("", "/"):
        return Route("", None, None)
    if rest[0] != "/":
        return None  # /socket.iox/... is not under /socket.io
    rest = rest[1:-1] if rest[-1] == "/" else rest[1:]
    segments = rest.split("/", 3)
    if len(segments) > 3:
        return None
    segments += [None] * (3 - len(segments))  # type: ignore[list-item]
    return Route(segments[0], segments[1], segments[2])


def parse_query(query: str) -> dict[str, list[str]]:
    """A request's query string as ``parse_qs(query, keep_blank_values=True)``
    reads it: each name's values in order, blank ones kept. A query with
    nothing to decode (the ``t=<timestamp>`` of every poll) is split here
    without ``parse_qs``' work per field."""
    if "%" in query or "+" in query:
        return parse_qs(query, keep_blank_values=True)
    fields: dict[str, list[str]] = {}
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            if name in fields:
                fields[name].append(value)
            else:
                fields[name] = [value]
    return fields


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def handshake_body(sid: str, heartbeat_timeout: float | int | None,
                   close_timeout: float | int | None, transports: Iterable[str]) -> str:
    """The handshake answer: ``<sid>:<heartbeat>:<close>:<transports>``.

    Integral numbers are written as ints (``60.0`` gives ``60``); None gives
    an empty field, which N sends for a disabled timeout (avoid it: P crashes).

    :raises ValueError: the sid contains ``:``.
    """
    if ":" in sid:
        raise ValueError("a session id may not contain ':'")
    return f"{sid}:{_number(heartbeat_timeout)}:{_number(close_timeout)}:{','.join(transports)}"


def jsonp_index(value: str | None) -> int | None:
    """The ``jsonp=`` / ``i=`` query value as an int, or None unless it is
    1 to 10 ASCII digits."""
    if value and len(value) <= MAX_JSONP_DIGITS and value.isascii() and value.isdigit():
        return int(value)
    return None


def _escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _js_string(text: str) -> str:
    """A JSON string literal for ``text`` on one line, safe for any JS engine."""
    out = json.dumps(text, ensure_ascii=False)
    if not out.isascii():
        out = _JS_UNSAFE.sub(_escape, out)
    return out


def _check_index(index: int) -> int:
    if type(index) is not int or index < 0:
        raise ValueError(f"a JSONP index is an int >= 0, not {index!r}")
    return index


def jsonp_wrap(index: int, payload: str) -> str:
    """A JSONP polling or handshake answer: ``io.j[<index>]("<payload>");``.

    The payload is a JSON string literal (non-ASCII left raw, U+2028/U+2029 and
    lone surrogates escaped), on a single line as P's regex needs.
    """
    return f"io.j[{_check_index(index)}]({_js_string(payload)});"


def jsonp_error(index: int, message: str) -> str:
    """A JSONP handshake error: ``io.j[<index>](new Error("<message>"));``."""
    return f"io.j[{_check_index(index)}](new Error({_js_string(message)}));"


def decode_jsonp_body(body: bytes) -> str:
    """The payload of a jsonp-polling POST.

    The body is ``application/x-www-form-urlencoded`` with a field ``d``. C and
    P send ``d`` as a JSON string literal; a value that does not start with
    ``"`` is taken raw (tolerance, PROTOCOL.md §2.2).

    :raises PacketError: not UTF-8, too many fields, no ``d``, or bad JSON.
    """
    try:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8")
        fields = parse_qs(text, keep_blank_values=True, errors="strict",
                          max_num_fields=MAX_FORM_FIELDS)
    except (TypeError, ValueError) as exc:
        raise PacketError(f"bad JSONP form body: {exc}") from exc
    values = fields.get("d")
    if not values:
        raise PacketError("JSONP form body has no 'd' field")
    value = values[0]
    if not value.startswith('"'):
        return value
    try:
        decoded = json.loads(value, strict=False)
    except ValueError as exc:
        raise PacketError("JSONP 'd' field is not a JSON string") from exc
    if type(decoded) is not str:
        raise PacketError("JSONP 'd' field is not a JSON string")
    # the client's JSON escapes a lone surrogate of its raw text (a message's
    # data), which decodes to one here; the other transports' bytes cannot
    # carry one (the browser or the UTF-8 check replaced it)
    return without_lone_surrogates(decoded)


def htmlfile_chunk(payload: str) -> str:
    """One htmlfile write: ``<script>_("<payload>");</script>``.

    The argument is the JSON string literal of :func:`jsonp_wrap` with every
    ``/`` written ``\\/`` (so ``</script`` cannot appear) and ``<!--`` written
    ``\\u003c!--`` (so the HTML parser never enters its escaped script state).
    It still decodes to ``payload`` in JS and in JSON.
    """
    literal = _js_string(payload).replace("/", "\\/")
    if "<!--" in literal:
        literal = literal.replace("<!--", "\\u003c!--")
    return f"<script>_({literal});</script>"


# --- origins ------------------------------------------------------------------

def _split_origin(url: str) -> tuple[str, str, int | None, bool] | None:
    """(scheme, host, port with the default filled in, port was explicit)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    explicit = port is not None
    return parts.scheme, host, port if explicit else _DEFAULT_PORTS.get(parts.scheme), explicit


def _pattern_matches(pattern: str, origin: tuple[str, str, int | None, bool]) -> bool:
    scheme, host, port, explicit = origin
    if "://" in pattern:  # a full origin: scheme, host and port must all match
        wanted = _split_origin(pattern)
        return wanted is not None and wanted[:3] == (scheme, host, port)
    # N-style host:port, host:* or *:port (a bare host means host:*).
    if pattern.endswith("]") or ":" not in pattern:
        host_pat, port_pat = pattern, "*"
    else:
        host_pat, _, port_pat = pattern.rpartition(":")
    host_pat = host_pat.strip("[]").lower()
    if host_pat != "*" and host_pat != host:
        return False
    if port_pat == "*":
        return True
    # N counts a missing port as 80 even for https (PROTOCOL.md §1.4); accept
    # that and the scheme's real default.
    ports = {port} if explicit else {port, 80}
    return port_pat.isascii() and port_pat.isdigit() and int(port_pat) in ports


def _same_origin(origin: str | None, host: str | None) -> bool:
    if not origin:
        return True
    if "://" not in origin and origin != "null":
        # socket.io-client 0.9 under Node (its ws 0.4) sends the server's
        # host:port, without a scheme, as the Origin of its upgrade. Browsers
        # always send a scheme, so only that client's own Host matches here.
        return host is not None and origin.lower() == host.lower()
    parsed = _split_origin(origin) if host else None
    if parsed is None:
        return False
    scheme, name, port, _ = parsed
    try:
        own = urlsplit(f"//{host}")
        own_name, own_port = own.hostname, own.port
    except ValueError:
        return False
    if own_port is None:
        own_port = _DEFAULT_PORTS.get(scheme)
    return name == own_name and port == own_port


def origin_allowed(origin: str | None, referer: str | None,
                   allowed: str | Iterable[str] | None, *, host: str | None = None,
                   fetch_site: str | None = None, credentialed_script: bool = False) -> bool:
    """Whether a request's origin may use the server.

    :param origin: the ``Origin`` header, or None.
    :param referer: the ``Referer`` header, or None (pass None for a WebSocket
                    upgrade: N checks only Origin there).
    :param allowed: the ``cors_allowed_origins`` option:

        * ``None``: same origin only. The Origin, or else the Referer, must
          name ``host``'s host and port (scheme-less, default port of its
          scheme filled in); a request with neither is allowed (non-browser
          clients). An Origin without a scheme (socket.io-client 0.9 under
          Node sends one) must equal ``host``.
        * ``"*"``: everything, the Origin ``null`` included. A list holding
          ``"*"`` means the same.
        * a list (or a space/comma separated string) of full origins such as
          ``"http://example.com:8000"`` or ``"https://a.b"`` (scheme, host and
          port must match, with 80/443 filled in), or N-style ``host:port``,
          ``host:*`` and ``*:port`` patterns.

        With a list, the Origin falls back to the Referer. A request with
        neither is **allowed**, unlike N: only browsers send them, and
        non-browser clients (socketIO-client, scripts) would otherwise be
        locked out while gaining nothing, as they can forge any header. The
        Origin ``null`` is refused. The server's own origin (the one ``host``
        names) is always allowed, so a list never locks out the app's own
        pages, whose same-origin requests carry only a Referer.
    :param host: the request's ``Host`` header.
    :param fetch_site: the ``Sec-Fetch-Site`` header, which browsers since
        2020 send and no page can set: ``same-origin`` is allowed whatever
        the other two say (a page whose referrer policy is ``no-referrer``
        sends ``Origin: null`` on a form POST); a request with neither Origin
        nor Referer that a browser marks ``same-site`` or ``cross-site`` is
        refused (that policy also hides a page elsewhere).
    :param credentialed_script: the request is a JSONP script (its answer is
        readable by the page that loads it, whatever its origin) that carries
        the user's credentials (cookies, HTTP authentication). With neither Origin, Referer nor ``Sec-Fetch-Site``
        it is refused unless everything is allowed: over plain HTTP browsers
        send no ``Sec-Fetch-Site``, and a page elsewhere that hides its
        Referer would otherwise read the user's packets.
    """
    if allowed == "*" or fetch_site == "same-origin":
        return True
    patterns = None if allowed is None else \
        allowed.replace(",", " ").split() if isinstance(allowed, str) else list(allowed)
    if patterns is not None and "*" in patterns:
        return True
    candidate = origin or referer
    if not candidate:
        if credentialed_script and fetch_site is None:
            return False
        # a non-browser client, an old browser, or a page that hides its origin
        return fetch_site is None or fetch_site == "none"
    if patterns is None:
        # (the Referer counts too: a JSONP script tag, a form POST of an old
        # browser send no Origin, and a page elsewhere must not pass for one
        # of the server's own)
        return _same_origin(candidate, host)
    if host and candidate != "null" and _same_origin(candidate, host):
        return True
    parsed = None if candidate == "null" else _split_origin(candidate)
    if parsed is None:
        return False
    return any(isinstance(p, str) and _pattern_matches(p, parsed) for p in patterns)
