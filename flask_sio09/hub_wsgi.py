"""Running the whole WSGI app for a request on a connection the hub keeps.

A browser sends any request on a keep-alive connection it has: a page, a
static file, a handshake. When such a request arrives on a connection the hub
owns (``hub_wsgi`` is called by ``hub_http.HubHTTP``), a thread of a small
pool takes the socket in blocking mode and does what a WSGI server does:
build the environ, stream the body to the app, write its response (with its
Content-Length, or chunked, or delimited by the close), then hand the socket
back to the hub if the connection may live on.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_to_bytes

from .http11 import MAX_HEAD_BYTES, HTTPError, RequestHead, date_line

logger = logging.getLogger("flask_sio09")

#: threads that serve such requests at most (more wait their turn), unless
#: the WSGI server has more threads of its own (``size_pool``)
THREADS = 16
#: seconds a blocking read or write may wait for the client
IO_TIMEOUT_SECONDS = 30.0
#: unread body bytes we read and drop after the answer to keep the
#: connection; past this, the connection is closed instead
DRAIN_LIMIT = 65536

#: of those, how many may at once serve a request whose body the hub did not
#: read first (one over ``max_http_buffer_size``, read as the app asks for it):
#: such a body comes at the client's pace, and a client that sends it slowly
#: must not take every thread from the pages and handshakes of the others
#: (half of the pool)
LARGE_BODY_SHARE = 2

_pool: ThreadPoolExecutor | None = None
_pool_size = THREADS
_pool_lock = threading.Lock()
_large_bodies = 0


def pool_size(server_threads: int | None) -> int:
    """The pool's threads beside a WSGI server with ``server_threads``."""
    return max(THREADS, server_threads or 0)


def large_body_threads() -> int:
    """How many of the pool's threads may read large bodies at once."""
    return _pool_size // LARGE_BODY_SHARE


def size_pool(server_threads: int) -> None:
    """Give the pool as many threads as the WSGI server has (gunicorn's
    ``--threads``), if more than ``THREADS``, before its first use. A client
    that reads its answer slowly holds a thread while it is written, as it
    would hold one of the server's: with a fixed 16, that many such clients
    kept every other kept connection's pages and handshakes waiting."""
    global _pool_size
    with _pool_lock:
        if _pool is None:
            _pool_size = pool_size(server_threads)

Done = Callable[[bool, bytes], None]


def serve(app: Callable[..., Any], sock: socket.socket, template: dict[str, Any],
          head: RequestHead, buffered: bytes, done: Done, large_body: bool = False) -> bool:
    """Serve one request on a pool thread; ``done(keep_alive, leftover)`` is
    called when the socket is the caller's again (``leftover``: bytes read
    past this request).

    :param large_body: the body is still to be read from the client.
    :return: False, and nothing done, when half of the pool serves such
             requests already.
    """
    global _large_bodies
    if large_body:
        with _pool_lock:
            if _large_bodies >= large_body_threads():
                return False
            _large_bodies += 1

    def job() -> None:
        global _large_bodies
        try:
            _serve(app, sock, template, head, buffered, done)
        finally:
            if large_body:
                with _pool_lock:
                    _large_bodies -= 1

    run_blocking(job)
    return True


def run_blocking(job: Callable[[], None]) -> None:
    """Run ``job``, which may block (on the client, on Redis), on a pool
    thread rather than on the hub's."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="sio09-http")
    _pool.submit(_guarded, job)


def _guarded(job: Callable[[], None]) -> None:
    try:
        job()
    except Exception:  # (a pool thread's error would otherwise vanish with its future)
        logger.exception("kept connection: a request failed")


class Body:
    """``wsgi.input``: the request body, from what was already read, then
    the socket; it ends at the declared length."""

    def __init__(self, sock: socket.socket, buffered: bytes, length: int,
                 send_continue: bool) -> None:
        self.sock = sock
        self.pending = buffered[:length]
        #: bytes read past the body (the next request's), for the hub
        self.leftover = buffered[length:]
        self.left_on_socket = length - len(self.pending)
        self.send_continue = send_continue and self.left_on_socket > 0
        #: set once the response head is out: a 100 Continue may no longer follow
        self.answered = False
        #: why the body could not be read (the connection cannot go on), or None
        self.broken: str | None = None

    @property
    def remaining(self) -> int:
        return len(self.pending) + self.left_on_socket

    def _broken(self, why: str) -> Exception:
        """What the app gets when the body cannot be read: Werkzeug's own
        exception for it, which Flask answers 400 without a traceback (the
        client's fault, not the app's); the connection then ends."""
        from werkzeug.exceptions import ClientDisconnected

        self.broken = why
        return ClientDisconnected(why)

    def _fill(self, wanted: int) -> None:
        while len(self.pending) < wanted and self.left_on_socket > 0:
            if self.send_continue:
                self.send_continue = False
                if not self.answered:
                    self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                chunk = self.sock.recv(min(self.left_on_socket, 65536))
            except OSError as exc:  # (a timeout too: the client stopped sending)
                raise self._broken(f"body not received: {exc.__class__.__name__}") from None
            if not chunk:
                raise self._broken("the client ended the body early")
            self.left_on_socket -= len(chunk)
            self.pending += chunk

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            size = self.remaining
        self._fill(min(size, self.remaining))
        data, self.pending = self.pending[:size], self.pending[size:]
        return data

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.remaining if size is None or size < 0 else min(size, self.remaining)
        while b"\n" not in self.pending and len(self.pending) < limit:
            self._fill(min(len(self.pending) + 8192, limit))
        end = self.pending.find(b"\n")
        cut = limit if end < 0 else min(end + 1, limit)
        data, self.pending = self.pending[:cut], self.pending[cut:]
        return data

    def readlines(self, hint: int = -1) -> list[bytes]:
        return list(iter(self.readline, b""))

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


def path_info(path: str, script_name: str) -> str:
    """The ``PATH_INFO`` of a request path, as gunicorn makes it (PEP 3333):
    without the ``SCRIPT_NAME`` prefix, which it matches on the path as
    sent, then percent-decoded and read as latin-1."""
    if script_name and path.startswith(script_name):
        path = path[len(script_name):]
    return unquote_to_bytes(path).decode("latin-1")


#: the template's keys for ``forwarding_policy``'s and ``head_limits``' answers
FORWARDING = "sio09.forwarding"
LIMITS = "sio09.limits"


@dataclass(frozen=True)
class Forwarding:
    """The proxy headers gunicorn honours from a connection's peer (its
    ``forwarded_allow_ips``): each of the connection's requests may set its
    own scheme and ``SCRIPT_NAME`` with them, as gunicorn reads them anew for
    each request (a proxy may send many clients' requests on one connection)."""

    #: header name (upper case) -> the value that means https
    secure_scheme_headers: dict[str, str]
    #: headers with ``_`` that the proxy may set (upper case; ``*``: any)
    forwarder_headers: frozenset[str]
    #: the scheme when no such header says otherwise
    scheme: str
    #: the ``SCRIPT_NAME`` when no header sets it (gunicorn's is the process's)
    script_name: str
    #: the lower-case header names that can match ``secure_scheme_headers``
    #: (a key matches a name it equals upper-cased), so that a request
    #: with none of them costs one set operation
    scheme_header_names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme_header_names", frozenset(
            name.lower() for name in self.secure_scheme_headers if name.upper() == name))


def head_limits(cfg: Any) -> tuple[int, int, int, str] | None:
    """gunicorn's limits in config ``cfg``, as ``parse_head``'s
    ``(max_line, max_field, max_headers)``, and its ``header_map``; None for
    another server. gunicorn counts a header line's CRLF in its limit and
    takes a field limit of 0 for its default; a request line limit of 0 means
    none (the head's own bound then holds)."""
    if cfg is None or not hasattr(cfg, "limit_request_line"):
        return None
    line, field, fields = (getattr(cfg, name, 0) or 0 for name in (
        "limit_request_line", "limit_request_field_size", "limit_request_fields"))
    line = line if 0 < line < 8190 else 8190 if line >= 8190 else MAX_HEAD_BYTES
    field = field if field > 2 else 8190
    return (line, field - 2, fields if 0 < fields <= 32768 else 32768,
            str(getattr(cfg, "header_map", "drop")))


def forwarding_policy(cfg: Any, peer: str) -> Forwarding | None:
    """How gunicorn's config ``cfg`` treats proxy headers from the connection's
    ``peer`` address (the socket's: with the PROXY protocol, ``REMOTE_ADDR``
    is the client's); None when they mean nothing (an untrusted peer, another
    server), and the first request's scheme and ``SCRIPT_NAME`` hold for
    every request."""
    if cfg is None or not hasattr(cfg, "secure_scheme_headers"):
        return None
    allowed = getattr(cfg, "forwarded_allow_ips", None) or []
    trusted = "*" in allowed or peer in allowed or not peer
    networks = getattr(cfg, "forwarded_allow_networks", None)
    if not trusted and callable(networks):  # (gunicorn 23 and later: CIDR ranges too)
        try:
            address = ipaddress.ip_address(peer)
            trusted = any(address in network for network in networks())
        except ValueError:
            pass
    if not trusted:
        return None
    return Forwarding(
        # (keys as written: gunicorn matches upper-cased names against them)
        dict(cfg.secure_scheme_headers),
        frozenset(name.upper() for name in getattr(cfg, "forwarder_headers", None) or []),
        "https" if getattr(cfg, "is_ssl", False) else "http",
        os.environ.get("SCRIPT_NAME", ""))


def _forwarded_scheme(forwarding: Forwarding, head: RequestHead) -> str:
    """The scheme ``head``'s proxy headers give (gunicorn's rule)."""
    if not head.has_any(forwarding.scheme_header_names):
        return forwarding.scheme  # (the usual: runs for every request of a kept connection)
    scheme = None
    for name, value in head.headers:
        expected = forwarding.secure_scheme_headers.get(name.upper())
        if expected is None:
            continue
        said = "https" if value == expected else "http"
        if scheme is not None and said != scheme:
            raise HTTPError("400 Bad Request", "contradictory scheme headers")
        scheme = said
    return scheme or forwarding.scheme


def check_forwarding(template: dict[str, Any], head: RequestHead) -> str:
    """Refuse (``HTTPError``) what gunicorn refuses in a request's headers:
    proxy headers that contradict each other, a ``SCRIPT_NAME`` (its header,
    or the process's) that does not begin the path as sent, and with
    ``--header-map refuse`` a header with ``_`` that is not a proxy's.

    :return: the request's ``SCRIPT_NAME`` (``script_name_of``).
    """
    script_name = check_forwarding_headers(template, head)
    check_script_name(script_name, head.path)
    return script_name


def check_forwarding_headers(template: dict[str, Any], head: RequestHead) -> str:
    """``check_forwarding``'s checks that read the headers alone (the same
    for every request that repeats them); the ``SCRIPT_NAME`` they give."""
    forwarding = template.get(FORWARDING)
    if forwarding is not None:
        _forwarded_scheme(forwarding, head)
    limits = template.get(LIMITS)
    if limits is not None and limits[3] == "refuse":
        for name, _ in head.headers:
            if "_" in name and (forwarding is None or not _forwarded(forwarding, name)):
                raise HTTPError("400 Bad Request", f"header name with _: {name}")
    return script_name_of(template, head)


def check_script_name(script_name: str, path: str) -> None:
    """``check_forwarding``'s check of the path: ``SCRIPT_NAME`` begins it."""
    if script_name and not path.startswith(script_name):
        raise HTTPError("500 Internal Server Error",
                        f"the path {path!r} does not start with SCRIPT_NAME "
                        f"{script_name!r}")


def script_name_of(template: dict[str, Any], head: RequestHead) -> str:
    """The ``SCRIPT_NAME`` of ``head`` on a kept connection: its own header,
    the last one, where gunicorn honours it; else the connection's."""
    forwarding: Forwarding | None = template.get(FORWARDING)
    if forwarding is None:
        return template.get("SCRIPT_NAME", "")
    if head.get("script_name") is not None and _forwarded(forwarding, "SCRIPT_NAME"):
        # (the last one: ``get`` joins repeated headers; looked for only when
        # there is one, as it runs for every request of a kept connection)
        return [value for name, value in head.headers if name == "script_name"][-1]
    return forwarding.script_name


def _forwarded(forwarding: Forwarding, name: str) -> bool:
    return name.upper() in forwarding.forwarder_headers or "*" in forwarding.forwarder_headers


def build_environ(template: dict[str, Any], head: RequestHead,
                  body: Body | None) -> dict[str, Any]:
    """A WSGI environ for ``head``, as gunicorn builds one (PEP 3333);
    ``body`` is its ``wsgi.input`` (None: an empty one)."""
    environ = dict(template)
    forwarding: Forwarding | None = environ.pop(FORWARDING, None)
    environ.pop(LIMITS, None)
    if forwarding is not None:
        environ["wsgi.url_scheme"] = _forwarded_scheme(forwarding, head)
        environ["SCRIPT_NAME"] = script_name_of(template, head)
    path = path_info(head.path, environ.get("SCRIPT_NAME", ""))
    environ.update({
        "REQUEST_METHOD": head.method,
        "PATH_INFO": path,
        "QUERY_STRING": head.query,
        "RAW_URI": head.raw_target or head.target,
        "REQUEST_URI": head.raw_target or head.target,
        "SERVER_PROTOCOL": head.version,
        "wsgi.input": body if body is not None else io.BytesIO(b""),
        "wsgi.input_terminated": True,
        "wsgi.errors": template.get("wsgi.errors", sys.stderr),
        # tells transports.use_hub that this socket is the hub's already
        "sio09.kept": True,
    })
    limits = template.get(LIMITS)
    dangerous = limits is not None and limits[3] == "dangerous"
    for name in dict.fromkeys(name for name, _ in head.headers):
        if "_" in name and not dangerous and \
                (forwarding is None or not _forwarded(forwarding, name)):
            continue  # X_Forwarded_For must not pass for X-Forwarded-For
        key = name.upper().replace("-", "_")
        value = head.get(name) or ""
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = value
        else:
            environ["HTTP_" + key] = value
    return environ


#: response headers the connection, not the app, decides
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                        "upgrade", "proxy-connection"})


class _Writer:
    """The response side of one WSGI call: the head goes out with the first
    body bytes, framed by Content-Length, chunks, or the connection's end."""

    def __init__(self, sock: socket.socket, head: RequestHead, body: Body) -> None:
        self.sock = sock
        self.request = head
        self.body = body
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.sent = False
        self.unsent_head = b""
        self.chunked = False
        self.no_body = False
        self.length: int | None = None
        self.written = 0
        # an Upgrade the app could not perform (it has no socket to take) is
        # answered, and the connection then ends: the client is in no state
        # to reuse it
        self.keep_alive = head.keep_alive and head.get("upgrade") is None

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and self.sent:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, list(headers)
        return self.write

    def send_head(self, known_length: int | None = None) -> None:
        assert self.status is not None, "the app did not call start_response"
        code = self.status[:3]
        self.no_body = self.request.method == "HEAD" or code in ("204", "304") \
            or code.startswith("1")
        lines = [f"HTTP/1.1 {self.status}\r\n"]
        if not any(name.lower() == "date" for name, _ in self.headers):
            lines.append(date_line())  # as gunicorn and Werkzeug add it
        for name, value in self.headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP:
                if lowered == "connection" and "close" in value.lower():
                    self.keep_alive = False
                continue
            if lowered == "content-length":
                self.length = int(value) if value.strip().isdigit() else None
            lines.append(f"{name}: {value}\r\n")
        if self.length is None and not self.no_body:
            if known_length is not None:
                self.length = known_length
                lines.append(f"Content-Length: {known_length}\r\n")
            elif self.request.version == "HTTP/1.1":
                self.chunked = True
                lines.append("Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False
        if self.body.send_continue and self.body.left_on_socket:
            # answered before the client sent the body it offered: it may
            # never send it, so the connection cannot carry another request
            self.keep_alive = False
        lines.append("\r\n" if self.keep_alive else "Connection: close\r\n\r\n")
        self.body.answered = True
        # sent with the first body bytes: one segment, not a small one that
        # waits for the client's delayed ACK before the next may leave
        self.unsent_head = "".join(lines).encode("latin-1")
        self.sent = True

    def _send(self, data: bytes) -> None:
        if self.unsent_head:
            data, self.unsent_head = self.unsent_head + data, b""
        if data:
            self.sock.sendall(data)

    def write(self, data: bytes) -> None:
        if not self.sent:
            self.send_head()
        if not data or self.no_body:
            return
        if self.length is not None and self.written + len(data) > self.length:
            # never past the app's own Content-Length: the rest would read as
            # the next response to a proxy that reuses the connection
            data = data[:max(0, self.length - self.written)]
            self.keep_alive = False  # (the app's framing is wrong)
        self.written += len(data)
        if self.chunked:
            self._send(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            self._send(data)

    def end(self) -> None:
        if not self.sent:
            self.send_head(0)
        if self.chunked:
            self._send(b"0\r\n\r\n")
        else:
            self._send(b"")
            if self.length is not None and self.written != self.length and not self.no_body:
                self.keep_alive = False  # the app's length was wrong: the framing is lost


def _run_app(app: Callable[..., Any], environ: dict[str, Any], writer: _Writer) -> None:
    result: Iterable[bytes] = app(environ, writer.start_response)
    try:
        if isinstance(result, (list, tuple)) and not writer.sent and writer.status:
            writer.send_head(sum(len(part) for part in result))
        for part in result:
            writer.write(part)
        writer.end()
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _serve(app: Callable[..., Any], sock: socket.socket, template: dict[str, Any],
           head: RequestHead, buffered: bytes, done: Done) -> None:
    keep_alive = False
    body = Body(sock, buffered, head.content_length, head.expect_continue)
    try:
        sock.settimeout(IO_TIMEOUT_SECONDS)
        writer = _Writer(sock, head, body)
        try:
            _run_app(app, build_environ(template, head, body), writer)
        except OSError:
            raise
        except Exception:
            logger.exception("error serving %s %s on a kept connection", head.method,
                             head.path)
            if not writer.sent or writer.unsent_head:  # nothing of the answer left yet
                sock.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            writer.keep_alive = False
        keep_alive = writer.keep_alive and body.broken is None
        if keep_alive and body.remaining:
            if body.remaining > DRAIN_LIMIT:
                keep_alive = False
            else:
                try:
                    body.read()
                except Exception:  # (ClientDisconnected: logged below)
                    keep_alive = False
        if body.broken is not None:
            logger.info("kept connection: the body of %s %s: %s; closed", head.method,
                        head.path, body.broken)
    except OSError as exc:  # the client went away or stalled past the timeout
        logger.debug("kept connection lost while serving %s: %s", head.path, exc)
        keep_alive = False
    finally:
        try:
            sock.setblocking(False)  # the hub's again: it never blocks on it
        except OSError:
            keep_alive = False
        done(keep_alive, body.leftover if keep_alive else b"")
