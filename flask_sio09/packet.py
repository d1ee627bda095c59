"""Socket.IO 0.9 (protocol revision 1) packet codec.

This module turns the packet dicts of gevent-socketio's ``socketio.packet``
module into wire strings and back (:func:`encode`, :func:`decode`), and frames
several packets into one polling payload with the ``\\ufffd<len>\\ufffd``
framing (:func:`encode_payload`, :func:`decode_payload`, and the string-level
:func:`frame` / :func:`split_payload`).

It is pure: no I/O, no threads, standard library only. Every public function
raises :class:`PacketError` (a :class:`ValueError`) on bad input, and nothing
else.

Where the anchors disagree, the Node.js 0.9.19 server wins (PROTOCOL.md §3, §4):
``args`` is left out of an event with no arguments, the data field and its
colon are left out when there is no data (``7::``), a trailing colon is
accepted on input (``2:::``), and ids are ints.

Limits on what a peer controls:

* :data:`MAX_ID_DIGITS`: a packet id or ack id has at most 15 digits.
* :data:`MAX_INT_DIGITS`: an integer inside JSON data has at most 100 digits.
* :data:`MAX_JSON_DEPTH`: JSON data nests at most 100 arrays/objects deep (so
  that whatever decodes can be encoded again from any thread's stack).
* A JSON number too large for a float (``1e400``) is refused: it would
  decode to infinity, which JSON cannot carry back.
* :data:`MAX_FRAME_LENGTH_DIGITS`: a frame length has at most 10 digits.
* ``max_packets`` (default :data:`DEFAULT_MAX_PACKETS`) bounds a payload;
  ``None`` leaves the payload's size as its only bound (what the server does:
  see ``Server.receive``).

An endpoint may not contain ``:``: the encoder refuses one, and the grammar
cannot decode one.

A lone surrogate (say from a client's JSON ``"\\ud800"``) cannot travel as
UTF-8: inside JSON the encoder writes its ``\\u`` escape; in the raw text of
an endpoint, a message or a connect query it writes U+FFFD instead (one
UTF-16 unit, like the surrogate, so payload framing is unchanged).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from itertools import accumulate
from typing import Any, TypeVar

__all__ = [
    "DEFAULT_MAX_PACKETS",
    "ERROR_ADVICE",
    "ERROR_REASONS",
    "FRAME_MARK",
    "MAX_FRAME_LENGTH_DIGITS",
    "MAX_ID_DIGITS",
    "MAX_INT_DIGITS",
    "MAX_JSON_DEPTH",
    "PACKET_TYPES",
    "PacketError",
    "decode",
    "decode_event",
    "decode_payload",
    "encode",
    "encode_ack",
    "encode_payload",
    "frame",
    "split_payload",
    "utf16_len",
    "without_lone_surrogates",
]

#: Packet type names; the index is the wire digit.
PACKET_TYPES = ("disconnect", "connect", "heartbeat", "message", "json",
                "event", "ack", "error", "noop")
#: Error reasons; the index is what goes on the wire (PROTOCOL.md §3.3).
ERROR_REASONS = ("transport not supported", "client not handshaken", "unauthorized")
#: Error advice; the index is what goes on the wire.
ERROR_ADVICE = ("reconnect",)

#: Most digits in a packet id or an ack id.
MAX_ID_DIGITS = 15
#: Most digits in an integer inside JSON data (as engineio's ``_safe_int``).
MAX_INT_DIGITS = 100
#: Most arrays/objects nested inside one another in JSON data.
MAX_JSON_DEPTH = 100
#: Most digits in a payload frame length.
MAX_FRAME_LENGTH_DIGITS = 10
#: Default bound on the number of packets in one payload.
DEFAULT_MAX_PACKETS = 10000
#: The payload frame separator.
FRAME_MARK = "\ufffd"

_ID_LIMIT = 10 ** MAX_ID_DIGITS
_REASON_CODES = {name: str(i) for i, name in enumerate(ERROR_REASONS)}
_ADVICE_CODES = {name: str(i) for i, name in enumerate(ERROR_ADVICE)}
_REASON_NAMES = {code: name for name, code in _REASON_CODES.items()}
_ADVICE_NAMES = {code: name for name, code in _ADVICE_CODES.items()}
_SURROGATE = re.compile(r"[\ud800-\udfff]")

Packet = dict[str, Any]


class PacketError(ValueError):
    """Raised for a malformed packet or payload, or one that cannot be encoded."""


_Raised = TypeVar("_Raised", bound=BaseException)


def _caused_by(error: _Raised, cause: BaseException | None) -> _Raised:
    """``error`` as ``raise error from cause`` leaves it. (Compiled, by
    flask_sio09.native, ``raise ... from`` keeps no cause: logs would say
    "during handling of" where the error is what the cause became.)"""
    error.__cause__ = cause  # (which also sets __suppress_context__)
    return error


# --- JSON -------------------------------------------------------------------

def _parse_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS + (digits[0] == "-"):
        raise PacketError(f"JSON integer longer than {MAX_INT_DIGITS} digits")
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in _INFINITIES:
        raise PacketError("JSON number out of range")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_INFINITIES = (float("inf"), float("-inf"))
#: JSON text this long or shorter cannot nest past MAX_JSON_DEPTH
_DEPTH_CHECK_LENGTH = 2 * MAX_JSON_DEPTH
_CONTAINERS = (list, dict)
_decoder = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float,
                            parse_constant=_reject_constant)


def json_default(value: Any) -> Any:
    """What JSON has no type for: a ``Decimal`` is written as a number, as
    gevent-socketio's codec wrote it (PROTOCOL.md's test vector
    ``{'a': Decimal('0.5')}`` gives ``{"a":0.5}``); anything else is refused."""
    if isinstance(value, Decimal):
        return float(value)  # (NaN and infinities are then refused as floats are)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                            default=json_default)


#: a JSON string with its escapes (in a text that parsed: each one is well formed)
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
#: the bytes that are not brackets, and each byte's step in nesting depth
_NOT_BRACKETS = bytes([b for b in range(256) if b not in b"[]{}"])
_NESTING_STEP = [0] * 256
for _byte in b"[{":
    _NESTING_STEP[_byte] = 1
for _byte in b"]}":
    _NESTING_STEP[_byte] = -1


def _nesting_depth(text: str) -> int:
    """How deep the arrays and objects of a valid JSON text nest.

    Counted on the text, by its brackets outside strings, with the C loops of
    ``re``, ``bytes.translate`` and ``itertools``: a walk of the parsed value
    in Python took a quarter of a second for a megabyte of small arrays (on
    the hub's thread, where every client waited for it), this about 20 ms.
    """
    # (what is left once the strings are out is ASCII: numbers, literals,
    # punctuation and JSON's whitespace)
    brackets = _JSON_STRING.sub("", text).encode("ascii").translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_NESTING_STEP.__getitem__, brackets)), default=0)


# JSONDecoder.decode and JSONEncoder.encode spend as long in Python around the C
# scanner and encoder as the C code takes for a small packet; these call the C
# parts directly, with the same results (the tests hold them to the stdlib's).
_scan_once = _decoder.scan_once  # type: ignore[attr-defined]
# The same without the Python call per integer (_parse_int), which costs as
# much as the C scanner's whole work on a small packet's number: for texts too
# short to hold an integer of more than MAX_INT_DIGITS digits.
_scan_short = json.JSONDecoder(parse_float=_parse_float,  # type: ignore[attr-defined]
                               parse_constant=_reject_constant).scan_once
_JSON_SPACE = " \t\n\r"
_c_make_encoder = json.encoder.c_make_encoder  # type: ignore[attr-defined]
_c_iterencode = None if _c_make_encoder is None else _c_make_encoder(
    None, json_default, json.encoder.encode_basestring, None, ":", ",",
    False, False, False)


def _print_json(value: Any) -> str:
    if _c_iterencode is None or type(value) is str:
        return _encoder.encode(value)
    # no circular-reference check: a cycle ends in RecursionError instead,
    # which encode() reports as a PacketError all the same
    return "".join(_c_iterencode(value, 0))


def _loads(text: str) -> Any:
    if not text or text[0] in _JSON_SPACE or text[-1] in _JSON_SPACE:
        value = _decoder.decode(text)  # the stdlib's whitespace and error rules
    else:
        try:
            # (a text of MAX_INT_DIGITS characters or fewer holds no integer
            # past the limit: its integers are parsed without _parse_int)
            value, end = (_scan_short if len(text) <= MAX_INT_DIGITS else _scan_once)(text, 0)
        except StopIteration as exc:
            raise _caused_by(json.JSONDecodeError("Expecting value", text, exc.value), None)
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
    # Nesting past the limit takes more than MAX_JSON_DEPTH opening brackets,
    # and as many closing ones in valid JSON: a shorter text is never looked
    # at, a longer one costs two counts, and only a bracket-heavy one is measured.
    if len(text) > _DEPTH_CHECK_LENGTH and \
            text.count("[") + text.count("{") > MAX_JSON_DEPTH and \
            type(value) in _CONTAINERS and _nesting_depth(text) > MAX_JSON_DEPTH:
        raise PacketError(f"JSON nested deeper than {MAX_JSON_DEPTH}")
    return value


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def without_lone_surrogates(text: str) -> str:
    """``text`` with any lone UTF-16 surrogate made U+FFFD (one UTF-16 unit
    too, so payload framing is unchanged): raw wire text, which a handler
    must be able to write as UTF-8."""
    if not text.isascii() and _SURROGATE.search(text):
        return _SURROGATE.sub("\ufffd", text)
    return text


def _dumps(value: Any) -> str:
    text = _print_json(value)
    return text if text.isascii() else _js_safe(text)


def _js_safe(text: str) -> str:
    """Non-ASCII JSON ``text`` as a JavaScript client parses it whole, and as
    UTF-8 can carry it."""
    # A lone surrogate (say from a client's "\ud800") cannot be written as
    # UTF-8; inside a JSON string its escape decodes to the same value.
    if _SURROGATE.search(text):
        text = _SURROGATE.sub(_escape_surrogate, text)
    # U+2028/U+2029 end a "." match in JavaScript regexes: socket.io-client
    # 0.9.16 parses ack data with /^([0-9]+)(\+)?(.*)/ and would cut the
    # JSON there. Their escapes are the same JSON value.
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text


def _loads_lenient(text: str) -> Any:
    """JSON value, or None for a syntax error; limit violations still raise."""
    if not text:
        return None
    try:
        return _loads(text)
    except PacketError:
        raise
    except ValueError:
        return None


def _digits(text: str, what: str) -> int:
    if not (0 < len(text) <= MAX_ID_DIGITS and text.isascii() and text.isdigit()):
        raise PacketError(f"bad {what}: {text[:20]!r}")
    return int(text)


# --- decode -----------------------------------------------------------------

def _with_id(packet: Packet, pid: int | None, ack: bool | str) -> Packet:
    if pid is not None:
        packet["id"] = pid
        packet["ack"] = ack
    return packet


def _decode_bare(name: str) -> Callable[..., Packet]:
    def decoder(endpoint: str, pid: int | None, ack: bool | str, data: str) -> Packet:
        return {"type": name, "endpoint": endpoint}
    return decoder


def _decode_connect(endpoint: str, pid: int | None, ack: bool | str, data: str) -> Packet:
    # N and C put the query in the data field (1::/chat:?a=b); S glues it to
    # the endpoint (1::/chat?a=b). Accept both (PROTOCOL.md §3.4).
    q = endpoint.find("?")
    if q >= 0:
        data = data or endpoint[q:]
        endpoint = endpoint[:q]
    return {"type": "connect", "endpoint": endpoint, "qs": data}


def _decode_message(endpoint: str, pid: int | None, ack: bool | str, data: str) -> Packet:
    return _with_id({"type": "message", "endpoint": endpoint, "data": data}, pid, ack)


def _decode_json(endpoint: str, pid: int | None, ack: bool | str, data: str) -> Packet:
    return _with_id({"type": "json", "endpoint": endpoint, "data": _loads(data)}, pid, ack)


def _decode_event(endpoint: str, pid: int | None, ack: bool | str, data: str) -> Packet:
    # (what _with_id does, inline: every event a client emits comes here)
    packet: Packet = {"type": "event", "endpoint": endpoint} if pid is None else \
        {"type": "event", "endpoint": endpoint, "id": pid, "ack": ack}
    obj = None
    if data:  # (what _loads_lenient does, inline)
        try:
            obj = _loads(data)
        except PacketError:
            raise
        except ValueError:
            pass
    if type(obj) is dict:
        name = obj.get("name")
        args = obj.get("args", [])
        if type(name) is str and type(args) is list:
            packet["name"] = name
            packet["args"] = args
            return packet
    # Bad JSON, or not {"name": str, "args": list}: no name (N, C).
    packet["args"] = []
    return packet


def _decode_ack(endpoint: str, pid: int | None, ack: bool | str, data: str) -> Packet:
    ack_id, plus, raw = data.partition("+")  # the FIRST '+' only
    args = _loads_lenient(raw) if plus else None
    return {"type": "ack", "endpoint": endpoint, "ackId": _digits(ack_id, "ack id"),
            "args": args if type(args) is list else []}


def _decode_error(endpoint: str, pid: int | None, ack: bool | str, data: str) -> Packet:
    reason, _, rest = data.partition("+")
    return {"type": "error", "endpoint": endpoint,
            "reason": _REASON_NAMES.get(reason, ""),
            "advice": _ADVICE_NAMES.get(rest.partition("+")[0], "")}


_DECODERS: dict[str, Callable[[str, int | None, bool | str, str], Packet]] = {
    "0": _decode_bare("disconnect"),
    "1": _decode_connect,
    "2": _decode_bare("heartbeat"),
    "3": _decode_message,
    "4": _decode_json,
    "5": _decode_event,
    "6": _decode_ack,
    "7": _decode_error,
    "8": _decode_bare("noop"),
}


def _decode(data: str) -> Packet:
    # type ":" [id ["+"]] ":" [endpoint] [":" data]; the data may hold ':'
    fields = data.split(":", 3)
    decoder = _DECODERS.get(fields[0]) if len(fields) > 1 else None
    if decoder is None:
        raise PacketError(f"unknown packet type: {data[:10]!r}")
    if len(fields) < 3:
        raise PacketError("missing ':' after the packet id")
    pid: int | None = None
    ack: bool | str = True
    field = fields[1]
    if field:
        if field[-1] == "+":
            field = field[:-1]
            ack = "data"
        if field:  # a lone '+' is ignored, as N does
            # (what _digits does, inline: every event with an ack has an id)
            if not (len(field) <= MAX_ID_DIGITS and field.isascii() and field.isdigit()):
                raise PacketError(f"bad packet id: {field[:20]!r}")
            pid = int(field)
    return decoder(fields[2], pid, ack, fields[3] if len(fields) == 4 else "")


# The public functions take ``object`` where they reject a wrong type with a
# PacketError: compiled (flask_sio09.native), an argument is checked against
# its annotation before the body runs, which would raise a TypeError instead.
def decode(data: object) -> dict[str, Any]:
    """Decode one packet from its wire string.

    :param data: one packet, for example ``'5:1+::{"name":"tobi"}'``.
    :returns: the packet dict, shaped as in the gevent-socketio packet module.
    :raises PacketError: the string is not a packet of a known type.
    """
    if not isinstance(data, str):
        raise PacketError(f"a packet is a str, not {type(data).__name__}")
    try:
        return _decode(data)
    except PacketError:
        raise
    except Exception as exc:  # RecursionError, bad JSON...: one exception type out
        raise _caused_by(PacketError(f"malformed packet: {exc.__class__.__name__}: {exc}"), exc)


def decode_event(data: str) -> tuple[str, int | None, bool | str | None, str | None,
                                     list[Any]] | None:
    """``decode(data)`` of an event packet as a tuple, for the server's hot
    path (no dict to build and read back): its ``endpoint``, ``id`` (None
    when it has none), ``ack`` (True or ``"data"``; None without an id),
    ``name`` (None when its JSON is not ``{"name": str, "args": list}``)
    and ``args``.

    :returns: None when ``data`` is not a well-formed event packet: then
              ``decode`` tells what it is, or raises what is wrong with it.
    """
    # (the event branch of _decode and _decode_event, inline; the tests hold
    # the two to the same results for any text)
    if data[:2] != "5:":
        return None
    fields = data.split(":", 3)
    if len(fields) < 3:
        return None
    pid: int | None = None
    ack: bool | str = True
    field = fields[1]
    if field:
        if field[-1] == "+":
            field = field[:-1]
            ack = "data"
        if field:
            if not (len(field) <= MAX_ID_DIGITS and field.isascii() and field.isdigit()):
                return None
            pid = int(field)
    obj = None
    if len(fields) == 4 and fields[3]:
        try:
            obj = _loads(fields[3])
        except PacketError:  # past a limit: decode raises it
            return None
        except ValueError:  # bad JSON: an event with no name (N, C)
            pass
        except Exception:  # (RecursionError...: decode raises a PacketError)
            return None
    if type(obj) is dict:
        name = obj.get("name")
        args = obj.get("args", [])
        if type(name) is str and type(args) is list:
            return fields[2], pid, (None if pid is None else ack), name, args
    return fields[2], pid, (None if pid is None else ack), None, []


# --- encode -----------------------------------------------------------------

def _check_id(value: Any, what: str) -> int:
    if type(value) is not int or not 0 <= value < _ID_LIMIT:
        raise PacketError(f"{what} must be an int of at most {MAX_ID_DIGITS} digits")
    return value


def _head(code: str, packet: Packet, with_id: bool) -> str:
    endpoint = packet.get("endpoint")
    if endpoint is None:
        endpoint = ""
    elif type(endpoint) is not str or ":" in endpoint:
        raise PacketError(f"bad endpoint: {endpoint!r}")
    else:
        endpoint = without_lone_surrogates(endpoint)
    pid = packet.get("id") if with_id else None
    if pid is None:
        return f"{code}::{endpoint}"
    plus = "+" if packet.get("ack") == "data" else ""
    return f"{code}:{_check_id(pid, 'id')}{plus}:{endpoint}"


def _join(head: str, data: str) -> str:
    return f"{head}:{data}" if data else head


def _text(packet: Packet, key: str) -> str:
    value = packet.get(key)
    if value is None:
        return ""
    if type(value) is not str:
        raise PacketError(f"{key} must be a str")
    return without_lone_surrogates(value)


def _args(packet: Packet) -> list[Any] | tuple[Any, ...]:
    args = packet.get("args")
    if args is None:
        return []
    if not isinstance(args, (list, tuple)):
        raise PacketError("args must be a list")
    return args


def _encode_bare(code: str) -> Callable[[Packet], str]:
    def encoder(packet: Packet) -> str:
        return _head(code, packet, False)
    return encoder


def _encode_connect(packet: Packet) -> str:
    return _join(_head("1", packet, False), _text(packet, "qs"))


def _encode_message(packet: Packet) -> str:
    return _join(_head("3", packet, True), _text(packet, "data"))


def _encode_json(packet: Packet) -> str:
    return f"{_head('4', packet, True)}:{_dumps(packet.get('data'))}"


def _encode_event(packet: Packet) -> str:
    name = packet.get("name")
    if type(name) is not str:
        raise PacketError("an event needs a str name")
    args = _args(packet)
    body = {"name": name, "args": args} if args else {"name": name}
    return f"{_head('5', packet, True)}:{_dumps(body)}"


def _encode_ack(packet: Packet) -> str:
    data = str(_check_id(packet.get("ackId"), "ackId"))
    args = _args(packet)
    if args:
        data = f"{data}+{_dumps(args)}"
    return f"{_head('6', packet, False)}:{data}"


def encode_ack(ack_id: object, args: object, endpoint: object = "") -> str:
    """``encode({"type": "ack", "ackId": ack_id, "args": args, "endpoint": endpoint})``
    without the dict: the server answers every data ack through here.

    :raises PacketError: as ``encode`` would for the same packet.
    """
    if type(ack_id) is not int or not 0 <= ack_id < _ID_LIMIT:
        raise PacketError(f"ackId must be an int of at most {MAX_ID_DIGITS} digits")
    if endpoint:
        if type(endpoint) is not str or ":" in endpoint:
            raise PacketError(f"bad endpoint: {endpoint!r}")
        endpoint = without_lone_surrogates(endpoint)
    if args is not None and not isinstance(args, (list, tuple)):
        raise PacketError("args must be a list")
    if not args:
        return f"6::{endpoint}:{ack_id}"
    try:
        # (what _dumps and _print_json do, inline: every data ack comes here)
        data = "".join(_c_iterencode(args, 0)) if _c_iterencode is not None \
            else _encoder.encode(args)
    except Exception as exc:  # TypeError, ValueError, RecursionError from json
        raise _caused_by(PacketError(f"cannot encode packet: {exc.__class__.__name__}: {exc}"), exc)
    if not data.isascii():
        data = _js_safe(data)
    return f"6::{endpoint}:{ack_id}+{data}"


def _encode_error(packet: Packet) -> str:
    reason = packet.get("reason") or ""
    advice = packet.get("advice") or ""
    try:
        data = _REASON_CODES[reason] if reason else ""
        if advice:
            data = f"{data}+{_ADVICE_CODES[advice]}"
    except (KeyError, TypeError):
        # N would write 'undefined' here; never send that (PROTOCOL.md §3.3).
        raise _caused_by(PacketError(f"unknown error reason/advice: {reason!r}/{advice!r}"),
                        None)
    return _join(_head("7", packet, False), data)


_ENCODERS: dict[str, Callable[[Packet], str]] = {
    "disconnect": _encode_bare("0"),
    "connect": _encode_connect,
    "heartbeat": _encode_bare("2"),
    "message": _encode_message,
    "json": _encode_json,
    "event": _encode_event,
    "ack": _encode_ack,
    "error": _encode_error,
    "noop": _encode_bare("8"),
}


def encode(packet: object) -> str:
    """Encode one packet dict to its wire string.

    :param packet: a dict shaped as in the gevent-socketio packet module, for
                   example ``{"type": "ack", "ackId": 12, "args": ["a"]}``.
                   ``endpoint`` defaults to ``''``.
    :returns: the wire string, for example ``'6:::12+["a"]'``.
    :raises PacketError: unknown type, bad field, or data that JSON cannot encode.
    """
    if not isinstance(packet, dict):
        raise PacketError(f"a packet is a dict, not {type(packet).__name__}")
    try:
        encoder = _ENCODERS[packet.get("type")]  # type: ignore[index]
    except (KeyError, TypeError):
        raise _caused_by(PacketError(f"unknown packet type: {packet.get('type')!r}"), None)
    try:
        return encoder(packet)
    except PacketError:
        raise
    except Exception as exc:  # TypeError, ValueError, RecursionError from json
        raise _caused_by(PacketError(f"cannot encode packet: {exc.__class__.__name__}: {exc}"), exc)


# --- payloads -----------------------------------------------------------------

def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units (JavaScript's ``String.length``).

    An astral character such as U+1F600 counts 2; a lone surrogate counts 1.
    """
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) >> 1


def frame(encoded: list[Any] | tuple[Any, ...]) -> str:
    """Join already-encoded packets into one payload.

    One packet is returned bare; two or more are framed as
    ``\\ufffd<len>\\ufffd<packet>...`` with ``len`` in UTF-16 code units. An
    empty list gives ``''``. A lone packet that is empty or starts with U+FFFD
    is framed too, so that :func:`split_payload` always inverts this function.

    :raises PacketError: an item is not a str.
    """
    if len(encoded) == 1:
        only = encoded[0]
        if type(only) is str and only and only[0] != FRAME_MARK:
            return only
    parts = []
    for item in encoded:
        if type(item) is not str:
            raise PacketError(f"an encoded packet is a str, not {type(item).__name__}")
        parts.append(f"{FRAME_MARK}{utf16_len(item)}{FRAME_MARK}{item}")
    return "".join(parts)


def split_payload(data: object, max_packets: int | None = DEFAULT_MAX_PACKETS) -> list[str]:
    """Split a payload into its encoded packets (the inverse of :func:`frame`).

    The data is framed if and only if it starts with U+FFFD; otherwise it is
    one packet. An empty string holds no packet and gives ``[]``.

    :param data: the payload, for example a POST body.
    :param max_packets: the most packets accepted in one payload; None for
                        no limit.
    :raises PacketError: bad length digits, a length past the end or splitting
                         a surrogate pair, a missing separator, or too many packets.
    """
    if not isinstance(data, str):
        raise PacketError(f"a payload is a str, not {type(data).__name__}")
    if not data or data[0] != FRAME_MARK:
        return [data] if data else []
    packets: list[str] = []
    pos, size = 0, len(data)
    while pos < size:
        if data[pos] != FRAME_MARK:
            raise PacketError(f"expected U+FFFD at offset {pos}")
        mark = data.find(FRAME_MARK, pos + 1, pos + 2 + MAX_FRAME_LENGTH_DIGITS)
        digits = data[pos + 1:mark]
        if mark < 0 or not (digits.isascii() and digits.isdigit()):
            raise PacketError(f"bad frame length at offset {pos}")
        length = int(digits)
        start = mark + 1
        chunk = data[start:start + length]
        if chunk.isascii():
            if len(chunk) < length:
                raise PacketError("frame length past the end of the payload")
        else:
            # Code points >= length units; drop astral characters' extra units.
            over = utf16_len(chunk) - length
            if over < 0:
                raise PacketError("frame length past the end of the payload")
            keep = len(chunk)
            while over > 0:
                keep -= 1
                over -= 2 if chunk[keep] > "\uffff" else 1
            if over:
                raise PacketError("frame length splits a surrogate pair")
            chunk = chunk[:keep]
        if max_packets is not None and len(packets) >= max_packets:
            raise PacketError(f"more than {max_packets} packets in one payload")
        packets.append(chunk)
        pos = start + len(chunk)
    return packets


def encode_payload(packets: object) -> str:
    """Encode packet dicts into one payload (see :func:`frame`).

    :raises PacketError: ``packets`` is not a list, or a packet cannot be encoded.
    """
    if not isinstance(packets, (list, tuple)):
        raise PacketError("a payload is a list of packets")
    return frame([encode(packet) for packet in packets])


def decode_payload(data: object, max_packets: int | None = DEFAULT_MAX_PACKETS
                   ) -> list[dict[str, Any]]:
    """Decode a payload into packet dicts (see :func:`split_payload`).

    :raises PacketError: bad framing, too many packets, or a malformed packet.
    """
    return [decode(item) for item in split_payload(data, max_packets)]
