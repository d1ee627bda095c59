"""A lean, strict parser of HTTP/1.1 request heads, for connections the hub owns.

Once the hub keeps a polling connection alive (``hub_http.py``), it reads the
client's next requests itself. This module turns the bytes of one request head
into a ``RequestHead``, or says that more bytes are needed, or refuses the
input with the status to answer. It accepts only what a conforming client
sends (RFC 9112): CRLF line ends, no folded or whitespace-prefixed header
lines, one Host, one Content-Length, no Content-Length beside a
Transfer-Encoding. Anything else is refused rather than guessed at, so a
request is never read with framing other than the client's.

No I/O and no socket here: the caller owns the buffer. (``date_line`` is for
the heads of the answers the hub and its pool write.)
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass, field

#: bytes of a request head (request line and headers) we hold at most
MAX_HEAD_BYTES = 16384
#: header lines in one request at most
MAX_HEADERS = 100
#: bytes of the request line, and of one header line (its CRLF not counted),
#: at most: gunicorn's defaults (``limit_request_line``,
#: ``limit_request_field_size``, which counts the CRLF), so that a kept
#: connection takes nothing that a fresh one to gunicorn would refuse
MAX_REQUEST_LINE = 4094
MAX_HEADER_LINE = 8188
#: decimal digits of a Content-Length at most (larger is refused, not parsed)
MAX_LENGTH_DIGITS = 15
#: empty lines skipped before a request line (RFC 9112 §2.2: a client may send
#: one after a body; more than these are refused as a bad request line)
MAX_EMPTY_LINES = 4

_TOKEN_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN = re.compile(_TOKEN_CHARS)
_REQUEST_LINE = re.compile("(" + _TOKEN_CHARS + r") ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])")
# control characters a head may not hold (HTAB is allowed; CR and LF are
# checked apart, as they end lines)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# what gunicorn refuses in a method: lower case, and "#"
_METHOD_REFUSED = re.compile("[a-z#]")
# an absolute-form target (RFC 9112 §3.2.2, as a client sends to a proxy):
# what follows the authority is the origin-form target
_ABSOLUTE_FORM = re.compile(r"[Hh][Tt][Tt][Pp][Ss]?://[^/?#]*([^#]*)")


class HTTPError(Exception):
    """Input we refuse: answer ``status`` and close the connection."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(slots=True)
class RequestHead:
    """One parsed request head. Header names are lower-cased; values are
    latin-1 text, as WSGI wants them."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    #: bytes the head took in the buffer, its blank line included
    size: int
    #: the declared body length (0 when none was declared and not chunked)
    content_length: int = 0
    chunked: bool = False
    #: whether the client lets the connection live after this request
    keep_alive: bool = True
    expect_continue: bool = False
    #: the target as sent (``target`` is its origin form, without a fragment)
    raw_target: str = ""
    _index: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        """The value of header ``name`` (lower case); repeated headers joined by ``,``."""
        return self._index.get(name)

    @property
    def path(self) -> str:
        """The target's path, still percent-encoded."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        """The target's query string (after ``?``), or ``""``."""
        return self.target.partition("?")[2]


def parse_head(buf: bytes | bytearray, max_head: int = MAX_HEAD_BYTES,
               max_headers: int = MAX_HEADERS, max_line: int = MAX_REQUEST_LINE,
               max_field: int = MAX_HEADER_LINE) -> RequestHead | None:
    """Parse the request head at the start of ``buf``.

    :return: the head, or None when ``buf`` does not hold a whole head yet.
    :raises HTTPError: the bytes are not a request we accept (the status to
                       answer is in the exception), or the head is too large.
    """
    start = 0
    while start < 2 * MAX_EMPTY_LINES and buf.startswith(b"\r\n", start):
        start += 2
    if start == len(buf):
        return None  # empty lines so far: the request line is still to come
    if buf.find(b"\r\n", start, start + max_line + 2) < 0:
        # no line end yet: too long once a byte past the limit is not its CR
        past = buf[start + max_line:start + max_line + 2]
        if past and past != b"\r":
            raise HTTPError("414 URI Too Long", "request line too long")
    end = buf.find(b"\r\n\r\n", start, start + max_head)
    if end < 0:
        if len(buf) >= max_head:
            raise HTTPError("431 Request Header Fields Too Large", "request head too long")
        if buf.count(b"\n") != buf.count(b"\r\n"):
            # a bare LF would never end the head: refuse now, not at the timeout
            raise HTTPError("400 Bad Request", "bare LF in the request head")
        return None
    raw = bytes(buf[start:end])
    # CR and LF only as line ends, no other control character but HTAB: then
    # no line or value below can hold one
    if _CONTROL.search(raw) or raw.count(b"\r") != raw.count(b"\r\n") \
            or raw.count(b"\n") != raw.count(b"\r\n"):
        raise HTTPError("400 Bad Request", "control character in the request head")
    lines = raw.decode("latin-1").split("\r\n")
    if len(lines) - 1 > max_headers:
        raise HTTPError("431 Request Header Fields Too Large", "too many headers")
    if any(len(line) > max_field for line in lines[1:]):
        raise HTTPError("431 Request Header Fields Too Large", "header line too long")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        raise HTTPError("400 Bad Request", "bad request line")
    method, target, version = match.groups()
    if _METHOD_REFUSED.search(method) or not 3 <= len(method) <= 20:
        # (methods are case-sensitive: "get" is not GET; gunicorn refuses it)
        raise HTTPError("400 Bad Request", "bad request method")
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise HTTPError("505 HTTP Version Not Supported", "unsupported version")
    raw_target = target
    target = target.partition("#")[0]  # (a fragment is no part of the path)
    absolute = _ABSOLUTE_FORM.fullmatch(target)
    if absolute is not None:  # a server must accept it; routing wants the path
        rest = absolute.group(1)
        target = rest if rest.startswith("/") else "/" + rest
    elif not (target.startswith("/") or (target == "*" and method == "OPTIONS")):
        raise HTTPError("400 Bad Request", "request target not in origin form")
    headers: list[tuple[str, str]] = []
    index: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise HTTPError("400 Bad Request", "bad header line")
        name = name.lower()
        value = value.strip(" \t")
        headers.append((name, value))
        index[name] = f"{index[name]},{value}" if name in index else value
    head = RequestHead(method, target, version, headers, end + 4, raw_target=raw_target,
                       _index=index)
    _frame(head)
    return head


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


def _frame(head: RequestHead) -> None:
    """Work out the body's framing and the connection's fate, refusing what
    could be read two ways (request smuggling lives in such gaps)."""
    names = [name for name, _ in head.headers]
    if names.count("content-type") > 1:  # (one value by its nature: gunicorn refuses two)
        raise HTTPError("400 Bad Request", "several Content-Type headers")
    hosts = names.count("host")
    if hosts > 1 or (head.version == "HTTP/1.1" and hosts != 1):
        raise HTTPError("400 Bad Request", "one Host at most, and HTTP/1.1 needs one")
    if names.count("content-length") > 1:
        raise HTTPError("400 Bad Request", "several Content-Length headers")
    declared = head.get("content-length")
    coding = head.get("transfer-encoding")
    if coding is not None:
        if declared is not None or head.version == "HTTP/1.0":
            raise HTTPError("400 Bad Request", "Transfer-Encoding beside Content-Length")
        codings = [c.strip().lower() for c in coding.split(",")]
        if codings[-1] != "chunked":
            raise HTTPError("400 Bad Request", "Transfer-Encoding does not end in chunked")
        if codings != ["chunked"]:
            raise HTTPError("501 Not Implemented", "transfer coding not supported")
        head.chunked = True
    elif declared is not None:
        if not (declared.isascii() and declared.isdigit()) or \
                len(declared) > MAX_LENGTH_DIGITS:
            raise HTTPError("400 Bad Request", "invalid Content-Length")
        head.content_length = int(declared)
    connection = _tokens(head.get("connection"))
    head.keep_alive = head.version == "HTTP/1.1" and "close" not in connection
    expect = head.get("expect")
    if expect is not None:
        if expect.strip().lower() != "100-continue":
            raise HTTPError("417 Expectation Failed", "unknown expectation")
        head.expect_continue = head.version == "HTTP/1.1"


_date: tuple[int, str] = (0, "")


def date_line() -> str:
    """A ``Date`` header line for a response written now (RFC 9110 §6.6.1:
    an origin server with a clock sends one), made once per second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, f"Date: {email.utils.formatdate(now, usegmt=True)}\r\n")
    return _date[1]
