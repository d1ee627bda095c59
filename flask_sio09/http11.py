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
from collections.abc import Callable
from typing import Any

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
#: one after a body; a server should ignore at least one). More are refused as
#: a bad request line, as gunicorn refuses them on a connection of its own.
MAX_EMPTY_LINES = 1
#: header blocks a ``HeadMemo`` holds at most (a browser alternates its polls
#: and uploads, two blocks, on each of its connections)
MEMO_BLOCKS = 4
#: the longest header block a ``HeadMemo`` holds, in characters: a browser's
#: are under 1,000; what a kept connection holds stays small
MEMO_BLOCK_CHARS = 4096

_TOKEN_CHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile("(" + _TOKEN_CHARS + r") ([\x21-\x7e]+) (HTTP/[0-9]\.[0-9])")
# the header lines, each CRLF-ended: a token, a colon, a value. A value holds
# no control character but HTAB, and no CR or LF: the request line's pattern
# allows none either, so these two checks refuse every stray one in a head.
# The block is checked with one match and split with one ``findall``, so that
# the work per header line stays in the regular-expression engine.
_HEADER_BLOCK = re.compile("(?:" + _TOKEN_CHARS + r":[^\x00-\x08\x0a-\x1f\x7f]*\r\n)*")
_HEADER_LINE = re.compile("(" + _TOKEN_CHARS + r"):[ \t]*([^\r\n]*)\r\n")
# control characters a head may not hold (HTAB is allowed; CR and LF are
# checked apart, as they end lines): to name the fault of a refused head
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
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


class RequestHead:
    """One parsed request head. Header names are lower-cased; values are
    latin-1 text, as WSGI wants them.

    ``head.get(name)`` is the value of header ``name`` (lower case), repeated
    headers joined by ``,``; None when it did not come. (The index's own
    ``dict.get``: the hub asks a dozen times per request.)
    """

    __slots__ = ("method", "target", "version", "headers", "size", "content_length",
                 "chunked", "keep_alive", "expect_continue", "raw_target", "path", "query",
                 "_index", "get", "block")

    def __init__(self, method: str, target: str, version: str,
                 headers: list[tuple[str, str]], size: int, raw_target: str = "",
                 index: dict[str, str] | None = None) -> None:
        self.method = method
        #: the origin-form target, without a fragment
        self.target = target
        self.version = version
        self.headers = headers
        #: bytes the head took in the buffer, its blank line included
        self.size = size
        #: the declared body length (0 when none was declared and not chunked)
        self.content_length = 0
        self.chunked = False
        #: whether the client lets the connection live after this request
        self.keep_alive = True
        self.expect_continue = False
        #: the target as sent
        self.raw_target = raw_target or target
        #: the target's path, still percent-encoded, and its query string
        #: (after ``?``, or ``""``)
        self.path, _, self.query = target.partition("?")
        self._index = dict(headers) if index is None else index
        self.get: Callable[[str], str | None] = self._index.get
        #: the ``KnownBlock`` its headers came from or went into (a
        #: ``HeadMemo``'s), else None
        self.block: KnownBlock | None = None

    def has_any(self, names: frozenset[str]) -> bool:
        """Whether a header of one of ``names`` (lower case) came."""
        return not names.isdisjoint(self._index)

    def __repr__(self) -> str:
        return f"RequestHead({self.method} {self.raw_target} {self.version}, {self.headers})"


class KnownBlock:
    """A header block that was parsed and accepted once, with what its
    headers say (for one HTTP version). Shared by every head that repeats
    it: nothing here is changed after it is made, but ``derived``."""

    __slots__ = ("version", "headers", "index", "content_length", "chunked", "keep_alive",
                 "expect_continue", "derived")

    def __init__(self, head: RequestHead) -> None:
        self.version = head.version
        self.headers = head.headers
        self.index = head._index
        self.content_length = head.content_length
        self.chunked = head.chunked
        self.keep_alive = head.keep_alive
        self.expect_continue = head.expect_continue
        #: what the memo's owner worked out from these headers alone, to
        #: reuse for the next head with the same block (None until it does)
        self.derived: Any = None


class HeadMemo:
    """The header blocks one connection sent lately, parsed and accepted.

    A client on a kept connection sends the same header lines with each of
    its polls and uploads; only the request line (with its ``t=`` timestamp)
    changes, and an upload's ``Content-Length`` now and then. A head whose
    block is known is parsed without checking and splitting the block again:
    the checks of the request line still run, and nothing about the answer
    differs. One memo per connection, used with the same limits each time
    (they are part of what "accepted" meant).
    """

    __slots__ = ("blocks",)

    def __init__(self) -> None:
        self.blocks: dict[str, KnownBlock] = {}

    def remember(self, block: str, head: RequestHead) -> None:
        if len(block) > MEMO_BLOCK_CHARS:
            return
        if len(self.blocks) >= MEMO_BLOCKS:
            self.blocks.clear()  # (a client whose headers keep changing)
        head.block = self.blocks[block] = KnownBlock(head)


def parse_head(buf: bytes | bytearray, max_head: int = MAX_HEAD_BYTES,
               max_headers: int = MAX_HEADERS, max_line: int = MAX_REQUEST_LINE,
               max_field: int = MAX_HEADER_LINE, memo: HeadMemo | None = None,
               ) -> RequestHead | None:
    """Parse the request head at the start of ``buf``.

    :param memo: the connection's ``HeadMemo``: a known header block is
                 taken from it, a new one accepted goes into it.
    :return: the head, or None when ``buf`` does not hold a whole head yet.
    :raises HTTPError: the bytes are not a request we accept (the status to
                       answer is in the exception), or the head is too large.
    """
    if memo is not None and memo.blocks:
        # a whole head, a request line within its limit and a known block:
        # what the checks below would find first is then only what the
        # request line holds (each a refusal ``_known_head`` makes too), so
        # it is read from the memo without them. (An empty line before the
        # request line leaves none here to match.)
        end = buf.find(b"\r\n\r\n", 0, max_head)
        if end > 0:
            request_line, _, block = buf[:end].decode("latin-1").partition("\r\n")
            known = memo.blocks.get(block)
            if known is not None and len(request_line) <= max_line:
                match = _REQUEST_LINE.fullmatch(request_line)
                if match is not None and known.version == match.group(3):
                    return _known_head(match, known, end + 4)
    start = 0
    while start < 2 * MAX_EMPTY_LINES and buf.startswith(b"\r\n", start):
        start += 2
    if start == len(buf):
        return None  # empty lines so far: the request line is still to come
    if buf.startswith(b"\r\n", start):  # one more empty line than allowed
        raise HTTPError("400 Bad Request", "bad request line")
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
        line_end = buf.find(b"\r\n", start)
        if line_end >= 0 and _REQUEST_LINE.fullmatch(
                buf[start:line_end].decode("latin-1")) is None:
            # a bad request line is refused once it is whole, as gunicorn
            # does, not when the rest of the head has come
            raise HTTPError("400 Bad Request", "bad request line")
        return None
    text = buf[start:end].decode("latin-1")
    request_line, _, block = text.partition("\r\n")
    # the faults are looked for in the order that names the first one:
    # control characters, sizes, the request line, the header lines
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None and _has_control(request_line):
        raise HTTPError("400 Bad Request", "control character in the request head")
    bad_header_line = False
    sent_block = block  # (the memo's key: what a known head's partition gives)
    if block:
        block += "\r\n"
        if _HEADER_BLOCK.fullmatch(block) is None:
            if _has_control(block.replace("\r\n", "")):
                raise HTTPError("400 Bad Request", "control character in the request head")
            bad_header_line = True
        # (a line takes 3 characters at least, one and its CRLF: a shorter
        # block has no more lines than the limit, uncounted)
        if len(block) > 3 * max_headers and block.count("\r\n") > max_headers:
            raise HTTPError("431 Request Header Fields Too Large", "too many headers")
        if len(block) > max_field and \
                max(len(line) for line in block.split("\r\n")) > max_field:
            raise HTTPError("431 Request Header Fields Too Large", "header line too long")
    if match is None:
        raise HTTPError("400 Bad Request", "bad request line")
    method, target, version = match.groups()
    target = _origin_form(method, target, version)
    if bad_header_line:
        raise HTTPError("400 Bad Request", "bad header line")
    headers = [(name.lower(), value.rstrip(" \t"))
               for name, value in _HEADER_LINE.findall(block)] if block else []
    index = dict(headers)
    repeated = len(index) != len(headers)
    if repeated:  # (rare) the values of a repeated header, joined by ","
        index = {}
        for name, value in headers:
            index[name] = f"{index[name]},{value}" if name in index else value
    head = RequestHead(method, target, version, headers, end + 4, match.group(2), index)
    _frame(head, repeated)
    if memo is not None:
        memo.remember(sent_block, head)
    return head


def _origin_form(method: str, target: str, version: str) -> str:
    """Check a request line's method and version, and give its target in
    origin form, without a fragment."""
    if _METHOD_REFUSED.search(method) or not 3 <= len(method) <= 20:
        # (methods are case-sensitive: "get" is not GET; gunicorn refuses it)
        raise HTTPError("400 Bad Request", "bad request method")
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        raise HTTPError("505 HTTP Version Not Supported", "unsupported version")
    if "#" in target:
        target = target.partition("#")[0]  # (a fragment is no part of the path)
    if not target.startswith("/"):
        absolute = _ABSOLUTE_FORM.fullmatch(target)
        if absolute is not None:  # a server must accept it; routing wants the path
            rest = absolute.group(1)
            target = rest if rest.startswith("/") else "/" + rest
        elif not (target == "*" and method == "OPTIONS"):
            raise HTTPError("400 Bad Request", "request target not in origin form")
    return target


def _known_head(match: re.Match[str], known: KnownBlock, size: int) -> RequestHead:
    """The head of a request line (matched) whose header block is ``known``
    (accepted with this line's version)."""
    method, raw_target, version = match.groups()
    if (method == "GET" or method == "POST") and raw_target[0] == "/" and "#" not in raw_target:
        target = raw_target  # (a poll's, an upload's: in origin form already)
    else:
        target = _origin_form(method, raw_target, version)
    head = RequestHead(method, target, version, known.headers, size, raw_target, known.index)
    head.content_length = known.content_length
    head.chunked = known.chunked
    head.keep_alive = known.keep_alive
    head.expect_continue = known.expect_continue
    head.block = known
    return head


def _has_control(text: str) -> bool:
    """Whether ``text`` (a head's lines, their CRLFs taken out) holds a
    control character other than HTAB, or a CR or LF."""
    return _CONTROL.search(text) is not None or "\r" in text or "\n" in text


def _tokens(value: str | None) -> set[str]:
    return {t.strip().lower() for t in value.split(",")} if value else set()


def _frame(head: RequestHead, repeated: bool = True) -> None:
    """Work out the body's framing and the connection's fate, refusing what
    could be read two ways (request smuggling lives in such gaps).
    ``repeated``: whether a header name came more than once."""
    index = head._index
    names = [name for name, _ in head.headers] if repeated else []
    if repeated and names.count("content-type") > 1:
        # (one value by its nature: gunicorn refuses two)
        raise HTTPError("400 Bad Request", "several Content-Type headers")
    hosts = names.count("host") if repeated else int("host" in index)
    if hosts > 1 or (head.version == "HTTP/1.1" and hosts != 1):
        raise HTTPError("400 Bad Request", "one Host at most, and HTTP/1.1 needs one")
    if repeated and names.count("content-length") > 1:
        raise HTTPError("400 Bad Request", "several Content-Length headers")
    declared = index.get("content-length")
    coding = index.get("transfer-encoding")
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
    connection = index.get("connection")
    head.keep_alive = head.version == "HTTP/1.1" and (
        connection is None or "close" not in connection.lower()  # (the usual, at once)
        or "close" not in _tokens(connection))
    expect = index.get("expect")
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
