"""Server-side RFC 6455 WebSocket framing, sans-IO.

This module turns the bytes a WebSocket client sends into events, and the server's
messages into frames. It does no I/O at all: no sockets, no threads, no clocks,
standard library only (but see :func:`_unmask`). The caller (the I/O hub) reads from the socket, hands the
bytes to :meth:`FrameReader.feed`, acts on the events it gets back, and writes the
bytes the ``encode_*`` functions return.

Public names:

* :func:`accept_key` and :func:`handshake_response`: the opening handshake
  (RFC 6455 §4.2). An invalid request raises :class:`HandshakeError` (a
  :class:`ValueError`, answer ``400 Bad Request``); an unsupported
  ``Sec-WebSocket-Version`` raises its subclass :class:`UnsupportedVersion` (answer
  ``426 Upgrade Required`` with ``Sec-WebSocket-Version: 13``). Both carry the WSGI
  ``status`` and ``headers`` to answer with. No subprotocol and no extension is ever
  negotiated, so every RSV bit on the wire is an error (§5.2).
* :class:`FrameReader`: client frames in, events out. A protocol violation raises
  :class:`WebSocketError`, whose ``code`` is the close code to send before closing
  the TCP connection: 1002 protocol error, 1007 invalid UTF-8, 1009 too big.
* :func:`encode_text`, :func:`encode_binary`, :func:`encode_close`,
  :func:`encode_ping`, :func:`encode_pong`: unmasked (§5.1, server to client),
  unfragmented frames with FIN set.

Events returned by :meth:`FrameReader.feed`, in wire order::

    ("text", str)        ("binary", bytes)
    ("ping", bytes)      ("pong", bytes)
    ("close", code, reason)     # code: int, or None for an empty close payload

The reader does not answer anything itself: on ``ping`` the caller sends
``encode_pong(payload)``; on ``close`` it echoes ``encode_close(code, reason)`` (if
it has not sent a close already; ``code`` None gives an empty close frame) and then
closes the TCP connection (§5.5.1, §7.1.1); on :class:`WebSocketError` it sends
``encode_close(error.code)`` and closes the TCP connection at once (§7.1.7).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import struct
from collections.abc import Callable
from typing import ClassVar

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "GUID",
    "FrameReader",
    "HandshakeError",
    "UnsupportedVersion",
    "WebSocketError",
    "accept_key",
    "encode_binary",
    "encode_close",
    "encode_ping",
    "encode_pong",
    "encode_text",
    "handshake_response",
    "is_valid_close_code",
]

#: The magic string of RFC 6455 §1.3, appended to the client's key.
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Default for ``FrameReader(max_message_size=...)``, in payload bytes.
DEFAULT_MAX_MESSAGE_SIZE = 1_000_000

# Close codes (§7.4.1).
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009

# Opcodes (§5.2, §11.8).
_CONT = 0x0
_TEXT = 0x1
_BINARY = 0x2
_CLOSE = 0x8
_PING = 0x9
_PONG = 0xA

_FIN = 0x80
_RSV = 0x70
_MASK = 0x80

# §5.5: every control frame carries at most 125 payload bytes.
_MAX_CONTROL_PAYLOAD = 125

_utf8_decoder = codecs.getincrementaldecoder("utf-8")


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


class WebSocketError(Exception):
    """The client broke RFC 6455; send a close frame with :attr:`code`, then hang up.

    ``code`` is 1002 (protocol error), 1007 (a text message or close reason that is
    not UTF-8) or 1009 (a message larger than the reader's limit). ``events`` holds
    the events that the failing :meth:`FrameReader.feed` call had completed before
    the violation, in order (an empty list when raised elsewhere); the caller may
    still deliver them.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code: int = code
        self.events: list[tuple] = []

    def __repr__(self) -> str:
        return f"WebSocketError({self.code}, {str(self)!r})"


class HandshakeError(ValueError):
    """The request is not a valid WebSocket opening handshake (§4.2.1).

    :attr:`status` and :attr:`headers` are the WSGI answer: ``400 Bad Request``.
    """

    status: ClassVar[str] = "400 Bad Request"

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Response headers to send with :attr:`status`."""
        return [("Content-Type", "text/plain; charset=utf-8")]


class UnsupportedVersion(HandshakeError):
    """The client asked for a WebSocket version other than 13 (§4.2.2 item 4).

    Answer ``426 Upgrade Required`` with ``Sec-WebSocket-Version: 13``, which
    :attr:`status` and :attr:`headers` spell out.
    """

    status: ClassVar[str] = "426 Upgrade Required"

    @property
    def headers(self) -> list[tuple[str, str]]:
        return [("Content-Type", "text/plain; charset=utf-8"),
                ("Sec-WebSocket-Version", "13")]


# ---------------------------------------------------------------------------
# opening handshake (§4.2)
# ---------------------------------------------------------------------------


def accept_key(key: str) -> str:
    """Return ``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (§4.2.2 item 5.4).

    It is the base64 of the SHA-1 of the key followed by :data:`GUID`.
    """
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def _tokens(value: str) -> list[str]:
    """Split a comma-separated header value into lower-case tokens."""
    return [token.strip().lower() for token in value.split(",")]


def names_websocket(upgrade: str) -> bool:
    """Whether an ``Upgrade`` header's value (a comma-separated list, RFC 9110
    §7.8) names websocket."""
    return "websocket" in _tokens(upgrade)


def handshake_response(environ: dict) -> bytes:
    """Validate the upgrade request in a WSGI ``environ``; return the 101 response.

    The checks follow §4.2.1: method GET on HTTP/1.1 or later, an ``Upgrade``
    header listing ``websocket`` and a ``Connection`` header listing ``upgrade``
    (both case-insensitive), ``Sec-WebSocket-Version: 13``, and a
    ``Sec-WebSocket-Key`` that is the base64 of exactly 16 bytes, and a
    ``Host`` header (its value and ``Origin`` are left to the caller). The
    answer names no subprotocol and no extension.

    Raises :class:`UnsupportedVersion` when the version header is present but is
    not 13, and :class:`HandshakeError` for anything else that is wrong (a missing
    version header included).
    """
    method = environ.get("REQUEST_METHOD", "")
    if method != "GET":
        raise HandshakeError(f"a WebSocket upgrade must be a GET, not {method!r}")
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    if protocol in ("HTTP/1.0", "HTTP/0.9"):
        raise HandshakeError(f"a WebSocket upgrade needs HTTP/1.1, not {protocol}")
    if not names_websocket(environ.get("HTTP_UPGRADE", "")):
        raise HandshakeError("the Upgrade header does not name websocket")
    if "upgrade" not in _tokens(environ.get("HTTP_CONNECTION", "")):
        raise HandshakeError("the Connection header does not name upgrade")
    if not environ.get("HTTP_HOST", "").strip():
        # (§4.2.1 item 2; wsproto, which thread mode's upgrades go through too,
        # refuses such a request, and both modes must answer alike)
        raise HandshakeError("the Host header is missing")
    version = environ.get("HTTP_SEC_WEBSOCKET_VERSION")
    if version is None:
        raise HandshakeError("the Sec-WebSocket-Version header is missing")
    if version.strip() != "13":
        raise UnsupportedVersion(f"unsupported Sec-WebSocket-Version {version!r}")
    if environ.get("CONTENT_LENGTH", "0") not in ("", "0") or environ.get("HTTP_TRANSFER_ENCODING"):
        # (what follows the head is the WebSocket's, as frames)
        raise HandshakeError("a body on an upgrade request")
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise HandshakeError("Sec-WebSocket-Key is not the base64 of 16 bytes")
    return (
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept_key(key)}\r\n"
        "\r\n"
    ).encode("ascii")


# ---------------------------------------------------------------------------
# close codes (§7.4)
# ---------------------------------------------------------------------------


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame on the wire (§7.4.1, §7.4.2).

    Allowed: 1000-1003, 1007-1014 (1012-1014 are IANA-registered) and 3000-4999.
    Refused: below 1000; 1004 (reserved); 1005, 1006 and 1015 (local-only, "MUST
    NOT be set as a status code in a Close control frame"); the unassigned rest of
    1016-2999; 5000 and above.
    """
    return 1000 <= code <= 1014 and not 1004 <= code <= 1006 or 3000 <= code <= 4999


# ---------------------------------------------------------------------------
# unmasking (§5.3)
# ---------------------------------------------------------------------------


# Below this many bytes one big-integer XOR is the fastest unmasking; from it on,
# four strided bytes.translate calls through per-key-byte XOR tables win (they
# break even near 400 bytes and take 2/3 of the time from 2 KiB on: timeit, CPU
# time, CPython 3.11).
_SMALL_PAYLOAD = 512

# _XOR_TABLES[k][b] == b ^ k, made with one integer XOR per table.
_IDENTITY = int.from_bytes(bytes(range(256)), "little")
_XOR_TABLES = [(_IDENTITY ^ int.from_bytes(bytes((k,)) * 256, "little")).to_bytes(256, "little")
               for k in range(256)]
del _IDENTITY


def _unmask_python(payload: bytes, mask: bytes) -> bytes | bytearray:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (§5.3).

    No Python loop over the bytes: a short payload is XORed as one big integer; a
    long one byte-lane by byte-lane (every 4th byte shares a key byte) with
    ``bytes.translate``. Returns a bytearray for a long payload.
    """
    n = len(payload)
    if n < _SMALL_PAYLOAD:
        if not n:
            return b""
        key = mask * ((n + 3) >> 2)
        if len(key) != n:
            key = key[:n]
        return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
            n, "little")
    out = bytearray(payload)
    out[0::4] = out[0::4].translate(_XOR_TABLES[mask[0]])
    out[1::4] = out[1::4].translate(_XOR_TABLES[mask[1]])
    out[2::4] = out[2::4].translate(_XOR_TABLES[mask[2]])
    out[3::4] = out[3::4].translate(_XOR_TABLES[mask[3]])
    return out


def _c_unmask() -> Callable[[bytes, bytes], bytes | bytearray] | None:
    """The C unmasking of the ``websockets`` package, if it is installed
    (``pip install flask_sio09[speedups]``) and works: the same XOR, five to
    six times faster on a short payload, more on a long one."""
    try:
        from websockets.speedups import apply_mask  # type: ignore[import-not-found]
    except Exception:  # not installed (ImportError), or an install that does not load
        return None
    try:  # a build that loads but computes otherwise must not garble every message
        if apply_mask(b"\x00\x01\x02\x03\xff", b"\x0f\xf0\x55\xaa") != b"\x0f\xf1\x57\xa9\xf0":
            return None
    except Exception:
        return None
    return apply_mask  # type: ignore[no-any-return]


def choose_unmask() -> None:
    """Bind ``_unmask``: to the C unmasking when ``websockets`` provides it,
    else to :func:`_unmask_python`. The hub calls this as it starts, so that
    the import (40 to 50 ms, most of it ``websockets``' version lookup) is not
    paid by the hub thread at its first frame, nor by a process that never
    reads a frame; otherwise the first unmasking calls it."""
    global _unmask
    _unmask = _c_unmask() or _unmask_python


def _unmask_first(payload: bytes, mask: bytes) -> bytes | bytearray:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (§5.3), after
    :func:`choose_unmask` has bound ``_unmask`` for the calls to come."""
    choose_unmask()
    return _unmask(payload, mask)


_unmask = _unmask_first


# ---------------------------------------------------------------------------
# the reader
# ---------------------------------------------------------------------------


class FrameReader:
    """Parse what a WebSocket client sends (server side of RFC 6455).

    Feed it bytes as they come off the socket, in chunks of any size; it returns
    the complete events in wire order and keeps any partial frame for the next
    call. Text and binary messages come out whole, however many frames
    (§5.4 fragmentation) and reads they took; control frames interleaved between
    the fragments of a message come out as they arrive, before that message.

    A data frame's payload is unmasked and (for text) decoded as it arrives, so a
    large frame is never held twice and invalid UTF-8 fails at the first bad byte.

    Limits: ``max_message_size`` bounds the payload of one message, fragments
    summed. It is checked against the length a frame header declares, before any
    of that payload is buffered.

    After a close event the reader is done: the rest of that call's bytes and
    every later :meth:`feed` are ignored (``feed`` returns ``[]``, §5.5.1: nothing
    may follow a close frame). After a :class:`WebSocketError` the reader is
    failed: every later :meth:`feed` raises a new :class:`WebSocketError` with the
    same code. :attr:`closed` and :attr:`failed` tell which.
    """

    __slots__ = (
        "max_message_size",
        "_pending",
        "_msg_op",
        "_msg_len",
        "_buffer",
        "_decoder",
        "_frame_left",
        "_frame_fin",
        "_frame_mask",
        "_frame_pos",
        "_closed",
        "_error",
    )

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        if max_message_size < 0:
            raise ValueError("max_message_size must not be negative")
        self.max_message_size: int = max_message_size
        # Bytes of an incomplete frame header, or of an incomplete control frame.
        # Never more than 14 + 125 bytes: data payload is consumed as it arrives.
        self._pending: bytes = b""
        # The message being assembled: opcode (0 when none is open), payload bytes
        # announced so far, the payload received, and the UTF-8 decoder that
        # checks a text message as it comes.
        self._msg_op: int = 0
        self._msg_len: int = 0
        self._buffer = bytearray()
        self._decoder: codecs.IncrementalDecoder | None = None
        # The data frame whose payload is still arriving: bytes left, its FIN bit,
        # its mask, and how many of its payload bytes came already (mask phase).
        self._frame_left: int = 0
        self._frame_fin: bool = False
        self._frame_mask: bytes = b""
        self._frame_pos: int = 0
        self._closed: bool = False
        self._error: WebSocketError | None = None

    @property
    def closed(self) -> bool:
        """True once a close frame has been read."""
        return self._closed

    @property
    def failed(self) -> WebSocketError | None:
        """The error that failed the reader, or None."""
        return self._error

    # -- errors ---------------------------------------------------------------

    def _fail(self, code: int, message: str, events: list[tuple]) -> WebSocketError:
        error = WebSocketError(code, message)
        error.events = events
        self._error = error
        return error

    def _not_utf8(self, message: str, events: list[tuple]) -> WebSocketError:
        """``_fail`` for bytes that do not decode, as ``raise ... from None``
        leaves it (compiled, by flask_sio09.native, ``from`` keeps nothing:
        logs would show the UnicodeDecodeError as a second error)."""
        error = self._fail(INVALID_DATA, message, events)
        error.__cause__ = None  # (which also sets __suppress_context__)
        return error

    # -- the parser -----------------------------------------------------------

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple]:
        """Take the next bytes from the client; return the events they complete.

        Raises :class:`WebSocketError` on the first violation of RFC 6455, with the
        events completed before it in ``error.events``.
        """
        if self._error is not None:
            raise WebSocketError(self._error.code, f"the reader failed earlier: {self._error}")
        if self._closed:
            return []
        if type(data) is not bytes:
            data = bytes(data)  # bytearray, memoryview: slices must be bytes
        n = len(data) - 6
        if 0 <= n < 126 and data[0] == _FIN | _TEXT and data[1] == _MASK | n and \
                not (self._pending or self._frame_left or self._msg_op) and \
                n <= self.max_message_size:
            # The most common read of all: exactly one small, whole text frame.
            # (Invalid UTF-8 falls through to the full parser, which fails it.)
            try:
                return [("text", _unmask(data[6:], data[2:6]).decode("utf-8"))]
            except UnicodeDecodeError:
                pass
        if self._pending:
            data = self._pending + data
            self._pending = b""
        events: list[tuple] = []
        end = len(data)
        pos = 0

        # The rest of a data frame whose payload did not all arrive last time.
        if self._frame_left:
            pos = self._payload_chunk(data, 0, events)

        while pos < end:
            # §5.2 base framing: 2 bytes, then 0, 2 or 8 bytes of length, then the
            # 4-byte masking key, then the payload.
            if end - pos < 2:
                break
            b0 = data[pos]
            b1 = data[pos + 1]
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            if b0 & _RSV:
                # §5.2: RSV1-3 MUST be 0 unless an extension was negotiated (none is).
                raise self._fail(PROTOCOL_ERROR, "reserved bits set", events)
            if not b1 & _MASK:
                # §5.1: a server MUST close on an unmasked client frame.
                raise self._fail(PROTOCOL_ERROR, "unmasked client frame", events)

            if opcode >= _CLOSE:
                # Control frames (§5.5).
                if opcode > _PONG:
                    raise self._fail(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}", events)
                if not b0 & _FIN:
                    raise self._fail(PROTOCOL_ERROR, "fragmented control frame", events)
                if length > _MAX_CONTROL_PAYLOAD:
                    raise self._fail(
                        PROTOCOL_ERROR, "control frame payload over 125 bytes", events)
                stop = pos + 6 + length
                if stop > end:
                    break
                payload = _unmask(data[pos + 6:stop], data[pos + 2:pos + 6])
                pos = stop
                if opcode == _PING:
                    events.append(("ping", payload))
                elif opcode == _PONG:
                    events.append(("pong", payload))
                else:
                    events.append(self._close_event(payload, events))
                    self._closed = True
                    return events
                continue

            # Data frames (§5.6) and fragmentation rules (§5.4).
            if opcode == _CONT:
                if not self._msg_op:
                    raise self._fail(
                        PROTOCOL_ERROR, "continuation frame without a message", events)
            elif opcode > _BINARY:
                raise self._fail(PROTOCOL_ERROR, f"unknown opcode {opcode:#x}", events)
            elif self._msg_op:
                raise self._fail(
                    PROTOCOL_ERROR, "new data frame inside a fragmented message", events)

            # The payload length is known before the masking key has arrived.
            if length < 126:
                start = pos + 6
            elif length == 126:
                if end - pos < 4:
                    break
                length = (data[pos + 2] << 8) | data[pos + 3]
                if length < 126:
                    # §5.2: "the minimal number of bytes MUST be used".
                    raise self._fail(PROTOCOL_ERROR, "non-minimal payload length", events)
                start = pos + 8
            else:
                if end - pos < 10:
                    break
                start = pos + 14
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                if length >> 63:
                    # §5.2: the most significant bit MUST be 0.
                    raise self._fail(PROTOCOL_ERROR, "payload length over 2**63-1", events)
                if length < 65536:
                    raise self._fail(PROTOCOL_ERROR, "non-minimal payload length", events)
            # The size limit, before a byte of that payload is kept.
            if self._msg_len + length > self.max_message_size:
                raise self._fail(
                    MESSAGE_TOO_BIG,
                    f"message over {self.max_message_size} bytes", events)
            if start > end:
                break
            mask = data[start - 4:start]
            stop = start + length
            fin = b0 & _FIN

            if stop <= end and opcode == _TEXT and fin:
                # The common case: a whole unfragmented text frame.
                payload = _unmask(data[start:stop], mask)
                pos = stop
                try:
                    events.append(("text", payload.decode("utf-8")))
                except UnicodeDecodeError:
                    raise self._not_utf8("text message is not valid UTF-8", events)
                continue

            if opcode:
                self._msg_op = opcode
                if opcode == _TEXT:
                    self._decoder = _utf8_decoder()
            self._msg_len += length
            self._frame_left = length
            self._frame_fin = bool(fin)
            self._frame_mask = mask
            self._frame_pos = 0
            pos = self._payload_chunk(data, start, events)

        if pos < end:
            self._pending = data[pos:]
        return events

    def _payload_chunk(self, data: bytes, pos: int, events: list[tuple]) -> int:
        """Consume what ``data`` holds of the current data frame's payload.

        Returns the position after it. Emits the message when its last byte came.
        """
        left = self._frame_left
        stop = min(len(data), pos + left)
        mask = self._frame_mask
        phase = self._frame_pos & 3
        if phase:
            mask = mask[phase:] + mask[:phase]
        chunk = _unmask(data[pos:stop], mask)
        taken = stop - pos
        left -= taken
        self._frame_left = left
        self._frame_pos += taken
        done = not left and self._frame_fin
        decoder = self._decoder
        if decoder is not None:
            # Text: checked incrementally (§8.1), so that a bad byte fails now,
            # even when the sequence it breaks straddles two fragments.
            try:
                decoder.decode(chunk, done)
            except UnicodeDecodeError:
                raise self._not_utf8("text message is not valid UTF-8", events)
        # The bytes are kept in one buffer, not a piece per chunk: a client
        # sending a message in one-byte fragments would otherwise make it take
        # some thirty times its size (an object per piece), past what
        # max_message_size means to bound.
        self._buffer += chunk
        if done:
            message = self._buffer
            self._buffer = bytearray()
            if decoder is not None:
                events.append(("text", message.decode("utf-8")))
            else:
                events.append(("binary", bytes(message)))
            self._decoder = None
            self._msg_op = 0
            self._msg_len = 0
        return stop

    def _close_event(self, payload: bytes | bytearray, events: list[tuple]) -> tuple:
        """Validate a close frame's payload (§5.5.1, §7.4) into a close event."""
        if not payload:
            return ("close", None, "")
        if len(payload) == 1:
            raise self._fail(PROTOCOL_ERROR, "close payload of one byte", events)
        code = (payload[0] << 8) | payload[1]
        if not is_valid_close_code(code):
            raise self._fail(PROTOCOL_ERROR, f"invalid close code {code}", events)
        try:
            reason = payload[2:].decode("utf-8")
        except UnicodeDecodeError:
            raise self._not_utf8("close reason is not valid UTF-8", events)
        return ("close", code, reason)


# ---------------------------------------------------------------------------
# encoders (server to client: unmasked, FIN set, §5.2)
# ---------------------------------------------------------------------------

# Headers for payloads under 126 bytes, precomputed per opcode: one list index.
_TEXT_HEADERS = [bytes((_FIN | _TEXT, n)) for n in range(126)]
_BINARY_HEADERS = [bytes((_FIN | _BINARY, n)) for n in range(126)]
_pack16 = struct.Struct("!BBH").pack
_pack64 = struct.Struct("!BBQ").pack


def encode_text(text: str) -> bytes:
    """One text frame holding ``text``.

    Raises :class:`UnicodeEncodeError` (a :class:`ValueError`) for a lone surrogate,
    which UTF-8 cannot carry.
    """
    payload = text.encode("utf-8")
    n = len(payload)
    if n < 126:
        return _TEXT_HEADERS[n] + payload
    if n < 65536:
        return _pack16(0x81, 126, n) + payload
    return _pack64(0x81, 127, n) + payload


def encode_texts(texts: list[str] | tuple[str, ...]) -> bytes:
    """One text frame per string, concatenated: how the 0.9 protocol sends
    several packets over a WebSocket (each packet is its own message).

    Raises :class:`UnicodeEncodeError` as :func:`encode_text` does.
    """
    if len(texts) == 1:  # the common case: one packet per write
        # (what encode_text does for a short one, inline)
        payload = texts[0].encode("utf-8")
        n = len(payload)
        return _TEXT_HEADERS[n] + payload if n < 126 else encode_text(texts[0])
    return b"".join([encode_text(text) for text in texts])


def encode_binary(data: bytes) -> bytes:
    """One binary frame holding ``data``."""
    n = len(data)
    if n < 126:
        return _BINARY_HEADERS[n] + data
    if n < 65536:
        return _pack16(0x82, 126, n) + data
    return _pack64(0x82, 127, n) + data


def _control(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n > _MAX_CONTROL_PAYLOAD:
        raise ValueError(f"a control frame carries at most 125 bytes, not {n}")
    return bytes((_FIN | opcode, n)) + payload


def encode_close(code: int | None = 1000, reason: str = "") -> bytes:
    """A close frame (§5.5.1) with ``code`` and ``reason``.

    ``code=None`` gives an empty payload (no status code), which needs
    ``reason=""``. Raises :class:`ValueError` for a code that may not be sent
    (see :func:`is_valid_close_code`) or a reason over 123 UTF-8 bytes.
    """
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return _control(_CLOSE, b"")
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent")
    return _control(_CLOSE, code.to_bytes(2, "big") + reason.encode("utf-8"))


def encode_ping(payload: bytes = b"") -> bytes:
    """A ping frame (§5.5.2); ``payload`` is at most 125 bytes."""
    return _control(_PING, payload)


def encode_pong(payload: bytes) -> bytes:
    """A pong frame (§5.5.3), echoing the ping's ``payload``."""
    return _control(_PONG, payload)
