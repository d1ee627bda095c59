"""Tests of the packet codec: wire vectors, round trips and fuzzing.

The vectors come from PROTOCOL.md §3 and §4 and the gevent-socketio packet
module document; where N and G differ, N wins.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flask_sio09 import packet
from flask_sio09.packet import PacketError

FUZZ = settings(max_examples=400, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUND = settings(max_examples=300, deadline=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# (canonical dict, exact wire): drives both encode and decode.
VECTORS = [
    ({"type": "disconnect", "endpoint": ""}, "0::"),
    ({"type": "disconnect", "endpoint": "/woot"}, "0::/woot"),
    ({"type": "connect", "endpoint": "", "qs": ""}, "1::"),
    ({"type": "connect", "endpoint": "/tobi", "qs": ""}, "1::/tobi"),
    ({"type": "connect", "endpoint": "/test", "qs": "?test=1"}, "1::/test:?test=1"),
    ({"type": "heartbeat", "endpoint": ""}, "2::"),
    ({"type": "message", "endpoint": "", "data": "woot"}, "3:::woot"),
    ({"type": "message", "endpoint": "/tobi", "id": 5, "ack": True, "data": ""}, "3:5:/tobi"),
    ({"type": "message", "endpoint": "", "id": 1, "ack": "data", "data": "hi"}, "3:1+::hi"),
    ({"type": "message", "endpoint": "", "data": "\n"}, "3:::\n"),
    ({"type": "message", "endpoint": "/chat", "data": "a:b:c+d"}, "3::/chat:a:b:c+d"),
    ({"type": "json", "endpoint": "", "data": "2"}, '4:::"2"'),
    ({"type": "json", "endpoint": "", "id": 1, "ack": "data", "data": {"a": "b"}},
     '4:1+::{"a":"b"}'),
    ({"type": "json", "endpoint": "", "data": None}, "4:::null"),
    ({"type": "event", "endpoint": "", "name": "woot", "args": []}, '5:::{"name":"woot"}'),
    ({"type": "event", "endpoint": "", "id": 1, "ack": True, "name": "tobi", "args": []},
     '5:1::{"name":"tobi"}'),
    ({"type": "event", "endpoint": "", "id": 1, "ack": "data", "name": "tobi", "args": []},
     '5:1+::{"name":"tobi"}'),
    ({"type": "event", "endpoint": "", "name": "edwald", "args": [{"a": "b"}, 2, "3"]},
     '5:::{"name":"edwald","args":[{"a":"b"},2,"3"]}'),
    ({"type": "event", "endpoint": "", "name": "hello", "args": ["wörld", 1, {"a": [1, 2]}]},
     '5:::{"name":"hello","args":["wörld",1,{"a":[1,2]}]}'),
    ({"type": "event", "endpoint": "/chat", "id": 3, "ack": True, "name": "x", "args": [None]},
     '5:3:/chat:{"name":"x","args":[null]}'),
    ({"type": "ack", "endpoint": "", "ackId": 140, "args": []}, "6:::140"),
    ({"type": "ack", "endpoint": "/chat", "ackId": 140, "args": []}, "6::/chat:140"),
    ({"type": "ack", "endpoint": "", "ackId": 12, "args": ["woot", "wa"]},
     '6:::12+["woot","wa"]'),
    ({"type": "ack", "endpoint": "/chat", "ackId": 12, "args": ["woot", "wa"]},
     '6::/chat:12+["woot","wa"]'),
    ({"type": "ack", "endpoint": "", "ackId": 1, "args": ["😀"]}, '6:::1+["😀"]'),
    ({"type": "ack", "endpoint": "", "ackId": 2, "args": ["a+b", "c+"]}, '6:::2+["a+b","c+"]'),
    ({"type": "error", "endpoint": "", "reason": "", "advice": ""}, "7::"),
    ({"type": "error", "endpoint": "/woot", "reason": "", "advice": ""}, "7::/woot"),
    ({"type": "error", "endpoint": "", "reason": "transport not supported", "advice": ""},
     "7:::0"),
    ({"type": "error", "endpoint": "", "reason": "client not handshaken", "advice": "reconnect"},
     "7:::1+0"),
    ({"type": "error", "endpoint": "", "reason": "unauthorized", "advice": "reconnect"},
     "7:::2+0"),
    ({"type": "error", "endpoint": "/chat", "reason": "unauthorized", "advice": ""},
     "7::/chat:2"),
    ({"type": "error", "endpoint": "", "reason": "", "advice": "reconnect"}, "7:::+0"),
    ({"type": "noop", "endpoint": ""}, "8::"),
]


@pytest.mark.parametrize(("pkt", "wire"), VECTORS, ids=[w for _, w in VECTORS])
def test_encode_vectors(pkt, wire):
    assert packet.encode(pkt) == wire


@pytest.mark.parametrize(("pkt", "wire"), VECTORS, ids=[w for _, w in VECTORS])
def test_decode_vectors(pkt, wire):
    decoded = packet.decode(wire)
    assert decoded == pkt
    for key in ("id", "ackId"):
        if key in decoded:
            assert type(decoded[key]) is int


# Dicts that are not in canonical form still encode the N way.
ENCODE_ONLY = [
    # G vectors: no endpoint key, a stray data key, ack without id.
    ({"type": "event", "name": "tobi", "id": 1, "ack": True, "data": ""}, '5:1::{"name":"tobi"}'),
    ({"type": "event", "name": "tobi", "id": 1, "ack": "data", "data": ""},
     '5:1+::{"name":"tobi"}'),
    ({"type": "event", "name": "edwald", "ack": True, "endpoint": "", "args": [{"a": "b"}, 2, "3"]},
     '5:::{"name":"edwald","args":[{"a":"b"},2,"3"]}'),
    ({"type": "noop", "endpoint": "", "data": ""}, "8::"),
    # API.md's example; PROTOCOL.md §3.2 and §4 say args is left out when empty.
    ({"type": "event", "name": "tobi", "args": [], "endpoint": "", "id": 1, "ack": "data"},
     '5:1+::{"name":"tobi"}'),
    ({"type": "message"}, "3::"),
    ({"type": "message", "endpoint": None, "data": None}, "3::"),
    ({"type": "json"}, "4:::null"),
    ({"type": "event", "name": "t", "args": (1, 2)}, '5:::{"name":"t","args":[1,2]}'),
    ({"type": "event", "name": "t", "args": None}, '5:::{"name":"t"}'),
    ({"type": "ack", "ackId": 7}, "6:::7"),
    ({"type": "ack", "ackId": 7, "args": ("x",)}, '6:::7+["x"]'),
    ({"type": "heartbeat", "id": 4, "ack": True}, "2::"),  # ids only on message/json/event
    ({"type": "connect", "endpoint": "/c", "qs": None}, "1::/c"),
    ({"type": "error", "reason": None, "advice": None}, "7::"),
    ({"type": "message", "id": 123456789012345, "data": "x"}, "3:123456789012345::x"),
    ({"type": "message", "id": 0, "ack": False, "data": "x"}, "3:0::x"),
    # U+2028 is written as its escape (see test_line_separators_are_escaped...)
    ({"type": "json", "data": {"k": "é\u2028😀"}}, '4:::{"k":"é\\u2028😀"}'),
    ({"type": "json", "data": 0.5}, "4:::0.5"),
    # gevent-socketio's test vector (PROTOCOL.md): a Decimal is written as a number
    ({"type": "json", "id": 1, "ack": "data", "endpoint": "", "data": {"a": Decimal("0.5")}},
     '4:1+::{"a":0.5}'),
    ({"type": "event", "name": "d", "args": [Decimal("2"), [Decimal("-1.25")]]},
     '5:::{"name":"d","args":[2.0,[-1.25]]}'),
    # a lone surrogate cannot be sent as UTF-8; its JSON escape decodes the same
    ({"type": "json", "data": ["\ud800x"]}, '4:::["\\ud800x"]'),
]


@pytest.mark.parametrize(("pkt", "wire"), ENCODE_ONLY, ids=[w for _, w in ENCODE_ONLY])
def test_encode_only_vectors(pkt, wire):
    assert packet.encode(pkt) == wire


def test_lone_surrogate_round_trips_and_is_utf8_safe():
    wire = packet.encode({"type": "event", "name": "\udc00", "args": ["a\ud83d"]})
    wire.encode("utf-8")
    assert packet.decode(wire) == {"type": "event", "endpoint": "", "name": "\udc00",
                                   "args": ["a\ud83d"]}


# Wire forms that N, C, P or G send and that decode without being canonical.
DECODE_ONLY = [
    ("2:::", {"type": "heartbeat", "endpoint": ""}),
    ("8:::", {"type": "noop", "endpoint": ""}),
    ("0::/chat:", {"type": "disconnect", "endpoint": "/chat"}),
    ("1::/chat:", {"type": "connect", "endpoint": "/chat", "qs": ""}),
    ("1::/chat?a=b", {"type": "connect", "endpoint": "/chat", "qs": "?a=b"}),
    ("1::/chat:?a=b", {"type": "connect", "endpoint": "/chat", "qs": "?a=b"}),
    # both forms at once: the data field's query wins (it is where N and C put it)
    ("1::/chat?a=1:?b=2", {"type": "connect", "endpoint": "/chat", "qs": "?b=2"}),
    ("1::?a=b", {"type": "connect", "endpoint": "", "qs": "?a=b"}),
    ("3::/chat:hi", {"type": "message", "endpoint": "/chat", "data": "hi"}),
    ("3::", {"type": "message", "endpoint": "", "data": ""}),
    ("3:::", {"type": "message", "endpoint": "", "data": ""}),
    ("3:007::x", {"type": "message", "endpoint": "", "id": 7, "ack": True, "data": "x"}),
    ("2:5::", {"type": "heartbeat", "endpoint": ""}),
    ("5:+::{\"name\":\"x\"}", {"type": "event", "endpoint": "", "name": "x", "args": []}),
    ('5:::{"name":"woot", "args": ["foo"]}',
     {"type": "event", "endpoint": "", "name": "woot", "args": ["foo"]}),
    ('5:1+::{"name":"x","args":[1]}',
     {"type": "event", "endpoint": "", "id": 1, "ack": "data", "name": "x", "args": [1]}),
    ('5:::{"name":"x","args":[],"extra":1}',
     {"type": "event", "endpoint": "", "name": "x", "args": []}),
    # bad event JSON: no name, args [] (N, C)
    ("5:::", {"type": "event", "endpoint": "", "args": []}),
    ("5:::{", {"type": "event", "endpoint": "", "args": []}),
    ("5:::[1]", {"type": "event", "endpoint": "", "args": []}),
    ('5:::{"name":1}', {"type": "event", "endpoint": "", "args": []}),
    ('5:::{"args":[1]}', {"type": "event", "endpoint": "", "args": []}),
    ('5:::{"name":"x","args":{}}', {"type": "event", "endpoint": "", "args": []}),
    ('5:::{"name":"x","args":NaN}', {"type": "event", "endpoint": "", "args": []}),
    ('5:2::{"name', {"type": "event", "endpoint": "", "id": 2, "ack": True, "args": []}),
    ('6::/chat:140+["bob", "bob2"]',
     {"type": "ack", "endpoint": "/chat", "ackId": 140, "args": ["bob", "bob2"]}),
    ("6::/chat:1", {"type": "ack", "endpoint": "/chat", "ackId": 1, "args": []}),
    ('6:::1+{"++]', {"type": "ack", "endpoint": "", "ackId": 1, "args": []}),
    ('6:::12+{"a":1}', {"type": "ack", "endpoint": "", "ackId": 12, "args": []}),
    ("6:::12+", {"type": "ack", "endpoint": "", "ackId": 12, "args": []}),
    ('6:::12+["a+b"]', {"type": "ack", "endpoint": "", "ackId": 12, "args": ["a+b"]}),
    ('6:9+::3', {"type": "ack", "endpoint": "", "ackId": 3, "args": []}),
    ("7:::", {"type": "error", "endpoint": "", "reason": "", "advice": ""}),
    ("7:::5+3", {"type": "error", "endpoint": "", "reason": "", "advice": ""}),
    ("7:::undefined+0", {"type": "error", "endpoint": "", "reason": "", "advice": "reconnect"}),
    ("7::/chat:2", {"type": "error", "endpoint": "/chat", "reason": "unauthorized", "advice": ""}),
    ("7:::1+0+9", {"type": "error", "endpoint": "", "reason": "client not handshaken",
                   "advice": "reconnect"}),
    ("4:::" + "9" * 100, {"type": "json", "endpoint": "", "data": int("9" * 100)}),
    ("4:::-" + "9" * 100, {"type": "json", "endpoint": "", "data": -int("9" * 100)}),
    ("4::: [1] ", {"type": "json", "endpoint": "", "data": [1]}),
]


@pytest.mark.parametrize(("wire", "pkt"), DECODE_ONLY, ids=[w[:40] for w, _ in DECODE_ONLY])
def test_decode_only_vectors(wire, pkt):
    assert packet.decode(wire) == pkt


MALFORMED = [
    "", ":", "::", ":::", "3", "3:", "x::", "9::", "99::", "10::", "-1::", " 3::", "3 ::",
    "\u0663::", "\uff13::", "3:a:", "3:1a:", "3:+1:", "3:1++:", "3:-1:", "3:1 :",
    "3:\u00b2::x", "3:\u0663::x", "3:1234567890123456::x", "4::", "4:::", "4:::{",
    "4:::[1,", "4:::NaN", "4:::Infinity", "4:::-Infinity", '4:::{"a":1}x', "4:::" + "1" * 101,
    "4:::[" + "1" * 101 + "]", "4:::" + "[" * 50000, "5:::" + "[" * 50000,
    '5:::{"name":"x","args":[' + "9" * 200 + "]}", "6:::", "6:::abc", "6:::+[]",
    "6:::1234567890123456", "6:::1 ", "6::/c:x+[]", "6:::12+[" + "9" * 101 + "]",
    "6:::12+" + "[" * 50000, "\ufffd", "\ufffd3\ufffd2::",
]


@pytest.mark.parametrize("wire", MALFORMED, ids=[repr(w[:30]) for w in MALFORMED])
def test_decode_malformed(wire):
    with pytest.raises(PacketError):
        packet.decode(wire)


@pytest.mark.parametrize("value", [None, b"3:::x", 3, ["3:::"], bytearray(b"2::")])
def test_decode_rejects_non_str(value):
    with pytest.raises(PacketError):
        packet.decode(value)


def test_packet_error_is_value_error():
    assert issubclass(PacketError, ValueError)


def _circular():
    loop = []
    loop.append(loop)
    return loop


BAD_PACKETS = [
    None, "2::", [("type", "noop")], {}, {"type": "bogus"}, {"type": 3}, {"type": ["x"]},
    {"type": None}, {"type": "message", "endpoint": "/a:b"}, {"type": "noop", "endpoint": 1},
    {"type": "message", "id": "1"}, {"type": "message", "id": True}, {"type": "message", "id": -1},
    {"type": "message", "id": 10 ** 15}, {"type": "message", "id": 1.0},
    {"type": "ack"}, {"type": "ack", "ackId": 1.0}, {"type": "ack", "ackId": 10 ** 15},
    {"type": "ack", "ackId": 1, "args": "abc"}, {"type": "ack", "ackId": 1, "args": [object()]},
    {"type": "message", "data": 1}, {"type": "message", "data": b"x"},
    {"type": "json", "data": object()}, {"type": "json", "data": {1, 2}},
    {"type": "json", "data": float("nan")}, {"type": "json", "data": float("inf")},
    {"type": "json", "data": Decimal("NaN")}, {"type": "json", "data": Decimal("1e400")},
    {"type": "json", "data": _circular()}, {"type": "json", "data": {(1, 2): 3}},
    {"type": "json", "data": [[]], "endpoint": ":"},
    {"type": "event"}, {"type": "event", "name": 1}, {"type": "event", "name": "x", "args": "a"},
    {"type": "event", "name": "x", "args": {"a": 1}},
    {"type": "error", "reason": "bogus"}, {"type": "error", "advice": "later"},
    {"type": "error", "reason": 1}, {"type": "error", "reason": ["unauthorized"]},
    {"type": "connect", "qs": 1},
]


@pytest.mark.parametrize("pkt", BAD_PACKETS)
def test_encode_rejects(pkt):
    with pytest.raises(PacketError):
        packet.encode(pkt)


def test_encode_rejects_deep_nesting():
    deep: list = []
    for _ in range(100000):
        deep = [deep]
    with pytest.raises(PacketError):
        packet.encode({"type": "json", "data": deep})


def test_id_digit_limits():
    assert packet.decode("3:" + "9" * 15 + "::x")["id"] == 10 ** 15 - 1
    assert packet.decode("6:::" + "9" * 15)["ackId"] == 10 ** 15 - 1
    assert packet.MAX_ID_DIGITS == 15
    assert packet.MAX_INT_DIGITS == 100


# --- payloads -----------------------------------------------------------------

def test_n_payload_vector():
    assert packet.decode_payload("\ufffd5\ufffd3:::5\ufffd7\ufffd3:::53d\ufffd3\ufffd0::") == [
        {"type": "message", "endpoint": "", "data": "5"},
        {"type": "message", "endpoint": "", "data": "53d"},
        {"type": "disconnect", "endpoint": ""},
    ]


def test_observed_post_answer_vector():
    wire = '\ufffd5\ufffd6:::1\ufffd12\ufffd6:::2+["p1"]\ufffd8\ufffd1::/chat'
    pkts = [{"type": "ack", "endpoint": "", "ackId": 1, "args": []},
            {"type": "ack", "endpoint": "", "ackId": 2, "args": ["p1"]},
            {"type": "connect", "endpoint": "/chat", "qs": ""}]
    assert packet.decode_payload(wire) == pkts
    assert packet.encode_payload(pkts) == wire


def test_astral_length_is_utf16_units():
    # PROTOCOL.md §2.1, observed: 6:::1+["😀"] is framed with length 12.
    pkts = [{"type": "ack", "endpoint": "", "ackId": 1, "args": ["😀"]},
            {"type": "noop", "endpoint": ""}]
    wire = packet.encode_payload(pkts)
    assert wire == '\ufffd12\ufffd6:::1+["😀"]\ufffd3\ufffd8::'
    assert packet.decode_payload(wire) == pkts
    assert packet.utf16_len('6:::1+["😀"]') == 12


@pytest.mark.parametrize(("text", "units"), [
    ("", 0), ("abc", 3), ("é", 1), ("\ufffd", 1), ("😀", 2), ("a😀b𝄞", 6), ("\ud800", 1),
])
def test_utf16_len(text, units):
    assert packet.utf16_len(text) == units


def test_single_packet_is_bare_and_empty_list_is_empty():
    assert packet.encode_payload([{"type": "noop", "endpoint": ""}]) == "8::"
    assert packet.encode_payload([]) == ""
    assert packet.frame([]) == ""
    assert packet.frame(["3:::x"]) == "3:::x"
    assert packet.decode_payload("3:::a\ufffdb") == [
        {"type": "message", "endpoint": "", "data": "a\ufffdb"}]
    assert packet.split_payload("") == []
    assert packet.decode_payload("") == []


def test_frame_keeps_ambiguous_single_packets_framed():
    assert packet.frame([""]) == "\ufffd0\ufffd"
    assert packet.frame(["\ufffdx"]) == "\ufffd2\ufffd\ufffdx"
    assert packet.split_payload("\ufffd0\ufffd") == [""]


def test_frame_with_unicode():
    assert packet.frame(["3:::é", "3:::😀", "2::"]) == (
        "\ufffd5\ufffd3:::é\ufffd6\ufffd3:::😀\ufffd3\ufffd2::")


def test_a_u_ffff_in_the_units_an_astral_frame_overreaches_counts_as_one_unit():
    """A frame of astral characters is read as more code points than its
    length says; the extra ones, trimmed off, hold a U+FFFF (one UTF-16
    unit, not two): the packets must come out as sent, not torn apart."""
    first = '5:1+::{"name":"echo","args":["' + "\U0001F600" * 9 + '"]}'
    second = "3:::\uffff"
    third = '5:3+::{"name":"echo","args":[3]}'
    wire = packet.frame([first, second, third])
    assert wire.startswith(f"\ufffd{len(first) + 9}\ufffd")
    assert packet.split_payload(wire) == [first, second, third]
    assert packet.decode_payload(wire)[1] == {"type": "message", "endpoint": "",
                                              "data": "\uffff"}


def test_max_packets():
    wire = packet.frame(["2::"] * 3)
    assert packet.split_payload(wire, max_packets=3) == ["2::"] * 3
    with pytest.raises(PacketError):
        packet.split_payload(wire, max_packets=2)
    with pytest.raises(PacketError):
        packet.decode_payload(wire, max_packets=2)
    big = packet.frame(["8::"] * (packet.DEFAULT_MAX_PACKETS + 1))
    with pytest.raises(PacketError):
        packet.split_payload(big)
    assert len(packet.split_payload(big[: -len("\ufffd3\ufffd8::")])) == packet.DEFAULT_MAX_PACKETS
    assert len(packet.split_payload(big, None)) == packet.DEFAULT_MAX_PACKETS + 1
    assert len(packet.decode_payload(big, max_packets=None)) == packet.DEFAULT_MAX_PACKETS + 1


BAD_PAYLOADS = [
    "\ufffd", "\ufffd\ufffd", "\ufffd\ufffd2::", "\ufffdx\ufffd2::", "\ufffd-1\ufffd2::",
    "\ufffd+3\ufffd2::", "\ufffd 3\ufffd2::", "\ufffd3 \ufffd2::", "\ufffd3", "\ufffd3\ufffd",
    "\ufffd4\ufffd2::", "\ufffd2\ufffd2::", "\ufffd3\ufffd2::x", "\ufffd3\ufffd2::\ufffd",
    "\ufffd3\ufffd2::\ufffd3", "\ufffd\u0663\ufffd2::", "\ufffd\u00b2\ufffd2::",
    "\ufffd12345678901\ufffd2::", "\ufffd" + "9" * 40 + "\ufffd2::", "\ufffd1\ufffd😀",
    "\ufffd3\ufffd6:😀", '\ufffd13\ufffd6:::1+["😀"]', '\ufffd11\ufffd6:::1+["😀"]',
    '\ufffd9\ufffd6:::1+["😀', "\ufffd3\ufffd2::\ufffd3\ufffd2:", "\ufffd3\ufffd2::3\ufffd2::",
]


@pytest.mark.parametrize("wire", BAD_PAYLOADS, ids=[repr(w[:30]) for w in BAD_PAYLOADS])
def test_split_payload_malformed(wire):
    with pytest.raises(PacketError):
        packet.split_payload(wire)
    with pytest.raises(PacketError):
        packet.decode_payload(wire)


def test_a_frame_length_of_eleven_digits_is_refused_even_when_its_value_is_small():
    # else leading zeros let a payload past the 10-digit limit of PROTOCOL.md
    # be read as packets (a client would see its payload acted on)
    assert packet.split_payload("\ufffd0000000003\ufffd2::") == ["2::"]  # 10 digits
    with pytest.raises(PacketError):
        packet.split_payload("\ufffd00000000003\ufffd2::")
    with pytest.raises(PacketError):
        packet.split_payload("\ufffd3\ufffd2::\ufffd00000000003\ufffd2::")


def test_decode_payload_propagates_packet_errors():
    with pytest.raises(PacketError):
        packet.decode_payload(packet.frame(["2::", "99::"]))


@pytest.mark.parametrize("value", [None, b"\xef\xbf\xbd1\xef\xbf\xbd1", 5])
def test_payload_rejects_non_str(value):
    with pytest.raises(PacketError):
        packet.split_payload(value)
    with pytest.raises(PacketError):
        packet.decode_payload(value)


@pytest.mark.parametrize("value", [None, "2::", {"type": "noop"}, [{"type": "bogus"}], [None]])
def test_encode_payload_rejects(value):
    with pytest.raises(PacketError):
        packet.encode_payload(value)


@pytest.mark.parametrize("value", [[None], [b"2::"], ["2::", 3]])
def test_frame_rejects_non_str(value):
    with pytest.raises(PacketError):
        packet.frame(value)


# --- properties ---------------------------------------------------------------

SPECIAL = list(":+?\ufffd😀𝄞\n\r\\\"/é\u2028\u2029\x00{}[]0123456789")
wild_chars = st.one_of(st.sampled_from(SPECIAL), st.characters(codec="utf-8"))  # no surrogates
wild_text = st.text(wild_chars, max_size=16)
endpoints = st.one_of(st.just(""), wild_text.map(lambda s: "/" + s.replace(":", "")))
ids = st.integers(0, 10 ** 15 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10 ** 30), 10 ** 30)
    | st.floats(allow_nan=False, allow_infinity=False) | wild_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(wild_text, inner, max_size=4),
    max_leaves=8,
)
json_lists = st.lists(json_values, max_size=4)


@st.composite
def packets(draw):
    kind = draw(st.sampled_from(packet.PACKET_TYPES))
    pkt = {"type": kind, "endpoint": draw(endpoints)}
    if kind in ("message", "json", "event") and draw(st.booleans()):
        pkt["id"] = draw(ids)
        pkt["ack"] = draw(st.sampled_from([True, "data"]))
    if kind == "connect":
        pkt["endpoint"] = pkt["endpoint"].replace("?", "")
        pkt["qs"] = draw(wild_text)
    elif kind == "message":
        pkt["data"] = draw(wild_text)
    elif kind == "json":
        pkt["data"] = draw(json_values)
    elif kind == "event":
        pkt["name"] = draw(wild_text)
        pkt["args"] = draw(json_lists)
    elif kind == "ack":
        pkt["ackId"] = draw(ids)
        pkt["args"] = draw(json_lists)
    elif kind == "error":
        pkt["reason"] = draw(st.sampled_from(("",) + packet.ERROR_REASONS))
        pkt["advice"] = draw(st.sampled_from(("",) + packet.ERROR_ADVICE))
    return pkt


@ROUND
@given(packets())
def test_round_trip(pkt):
    wire = packet.encode(pkt)
    assert packet.decode(wire) == pkt
    assert packet.encode(packet.decode(wire)) == wire
    wire.encode("utf-8")


@ROUND
@given(st.lists(packets(), max_size=5))
def test_payload_round_trip(pkts):
    assert packet.decode_payload(packet.encode_payload(pkts)) == pkts


def _reference_units(text):
    return sum(2 if ord(c) > 0xFFFF else 1 for c in text)


any_chars = st.integers(0, 0x10FFFF).map(chr)


@ROUND
@given(st.lists(st.text(st.one_of(wild_chars, any_chars), max_size=12), max_size=5))
def test_frame_split_round_trip(items):
    wire = packet.frame(items)
    assert packet.split_payload(wire) == items
    if len(items) >= 2:
        assert wire == "".join(f"\ufffd{_reference_units(i)}\ufffd{i}" for i in items)


@ROUND
@given(st.text(st.one_of(wild_chars, any_chars)))
def test_utf16_len_matches_reference(text):
    assert packet.utf16_len(text) == _reference_units(text)


def _check_shape(pkt):
    assert pkt["type"] in packet.PACKET_TYPES
    assert type(pkt["endpoint"]) is str and ":" not in pkt["endpoint"]
    for key in ("id", "ackId"):
        if key in pkt:
            assert type(pkt[key]) is int and 0 <= pkt[key] < 10 ** 15
    if "id" in pkt:
        assert pkt["ack"] in (True, "data")
    if pkt["type"] in ("event", "ack"):
        assert type(pkt["args"]) is list


def _try_all(text):
    for func in (packet.decode, packet.decode_payload, packet.split_payload):
        try:
            result = func(text)
        except PacketError:
            continue
        if func is packet.decode:
            _check_shape(result)
        elif func is packet.decode_payload:
            for pkt in result:
                _check_shape(pkt)
        else:
            assert all(type(item) is str for item in result)


@FUZZ
@given(st.text(st.one_of(wild_chars, any_chars), max_size=60))
def test_fuzz_arbitrary_text(text):
    _try_all(text)


@FUZZ
@given(st.lists(st.one_of(st.sampled_from(["", "1", "12+", "+", "/ns", "?q", "{", "[", "\ufffd"]),
                          wild_text), min_size=1, max_size=5),
       st.sampled_from(list("0123456789x\ufffd")))
def test_fuzz_packet_shaped_text(fields, head):
    _try_all(head + ":" + ":".join(fields))


@st.composite
def mutated(draw):
    pkts = draw(st.lists(packets(), min_size=1, max_size=3))
    text = packet.encode_payload(pkts)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "duplicate"]))
        pos = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:pos] + draw(st.text(wild_chars, min_size=1, max_size=3)) + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 4)):]
        elif op == "replace" and pos < len(text):
            text = text[:pos] + draw(wild_chars) + text[pos + 1:]
        elif op == "truncate":
            text = text[:pos]
        elif op == "duplicate":
            end = draw(st.integers(pos, len(text)))
            text = text[:end] + text[pos:end] + text[end:]
    return text


@FUZZ
@given(mutated())
def test_fuzz_mutations_of_valid_packets(text):
    _try_all(text)


junk = st.one_of(st.none(), st.booleans(), st.integers(-5, 10 ** 16), st.floats(), wild_text,
                 st.lists(st.integers(), max_size=2), st.dictionaries(wild_text, st.integers(),
                                                                      max_size=2))


@FUZZ
@given(st.dictionaries(
    st.sampled_from(["type", "endpoint", "id", "ack", "data", "name", "args", "ackId",
                     "reason", "advice", "qs"]),
    junk, max_size=8),
    st.sampled_from(packet.PACKET_TYPES + ("bogus",)))
def test_fuzz_encode(pkt, kind):
    pkt.setdefault("type", kind)
    try:
        wire = packet.encode(pkt)
    except PacketError:
        return
    assert type(wire) is str
    _check_shape(packet.decode(wire))


def test_json_round_trip_matches_stdlib():
    value = {"a": [1, 2.5, None, True, "x/y"], "é": {"😀": []}}
    assert json.loads(packet.encode({"type": "json", "data": value})[4:]) == value


def test_line_separators_are_escaped_in_every_json_field():
    # socket.io-client 0.9.16 reads ack data with a JavaScript "." regex, which
    # stops at U+2028/U+2029: they must never appear raw in JSON we write.
    text = "a\u2028b\u2029c"
    for pkt in (
        {"type": "ack", "ackId": 1, "endpoint": "", "args": [text]},
        {"type": "event", "name": "e", "endpoint": "", "args": [{"k": text}]},
        {"type": "json", "endpoint": "/x", "data": [text]},
    ):
        wire = packet.encode(pkt)
        assert "\u2028" not in wire and "\u2029" not in wire
        assert "\\u2028" in wire and "\\u2029" in wire
        decoded = packet.decode(wire)  # every field given comes back unchanged
        assert {key: decoded.get(key) for key in pkt} == pkt


# -- encode_ack: the server's fast path for data acks must equal encode() --------

def _outcome(fn, *args):
    try:
        return fn(*args)
    except PacketError:
        return PacketError


@given(ack_id=st.one_of(ids, st.integers(-3, 10 ** 16), junk), args=st.one_of(json_lists, junk),
       endpoint=st.one_of(endpoints, st.just("/a:b"), any_chars.map(lambda c: "/" + c)))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_encode_ack_equals_encode(ack_id, args, endpoint):
    expected = _outcome(packet.encode, {"type": "ack", "ackId": ack_id, "args": args,
                                        "endpoint": endpoint})
    assert _outcome(packet.encode_ack, ack_id, args, endpoint) == expected


@pytest.mark.parametrize("ack_id,args,endpoint,wire", [
    (5, [], "", "6:::5"),
    (5, ["x"], "", '6:::5+["x"]'),
    (5, (), "/c", "6::/c:5"),
    (12, [1, {"a": None}], "/chat", '6::/chat:12+[1,{"a":null}]'),
    (1, ["\u2028"], "", '6:::1+["\\u2028"]'),
])
def test_encode_ack_table(ack_id, args, endpoint, wire):
    assert packet.encode_ack(ack_id, args, endpoint) == wire


# -- the codec calls json's C scanner and encoder directly: same results as json --

_stdlib_decoder = json.JSONDecoder()


def _json_outcome(fn, value):
    try:
        return ("ok", fn(value))
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and PacketError are ValueErrors
        return ("error", type(exc).__name__ if not isinstance(exc, json.JSONDecodeError)
                else "JSONDecodeError")


@given(st.one_of(json_values.map(json.dumps), st.text(st.sampled_from(' \t\n\r[]{}",:0123456789.eE-+truefalsnul\\xé'), max_size=24),
                 json_values.map(lambda v: " " + json.dumps(v) + "\n")))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_json_text_decodes_as_the_stdlib_does(text):
    ours = _json_outcome(packet._loads, text)
    theirs = _json_outcome(_stdlib_decoder.decode, text)
    if theirs[0] == "ok":
        # the codec refuses what the stdlib takes only past its own limits
        assert ours == theirs or ours == ("error", "PacketError")
    else:
        assert ours[0] == "error"


@given(st.one_of(json_values, json_lists, st.dictionaries(st.text(max_size=4), json_values, max_size=3)))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_json_values_encode_as_the_stdlib_does(value):
    expected = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert packet._print_json(value) == expected


# --- decode_event: the server's tuple form of an event packet ------------------

def _event_tuple_by_decode(text):
    """What decode_event must give for ``text``, read off decode()'s dict."""
    try:
        pkt = packet.decode(text)
    except PacketError:
        return None
    if pkt["type"] != "event":
        return None
    pid = pkt.get("id")
    return pkt["endpoint"], pid, None if pid is None else pkt["ack"], pkt.get("name"), pkt["args"]


def _assert_decode_event_agrees(text):
    got = packet.decode_event(text)
    assert got == _event_tuple_by_decode(text)
    if got is not None:  # (== would let an ack of 1 pass for True)
        assert type(got[1]) in (int, type(None)) and got[2] in (None, True, "data")


@st.composite
def event_texts(draw):
    """Event packets as clients write them, then mutated at random."""
    body = draw(st.one_of(
        st.builds(lambda n, a: json.dumps({"name": n, "args": a}), wild_text, json_lists),
        st.builds(lambda n: json.dumps({"name": n}), wild_text),
        json_values.map(json.dumps),
        st.text(st.one_of(wild_chars, st.sampled_from(list('{}[]":,'))), max_size=20),
        st.sampled_from(["", "{", '{"name":"a","args":[1e400]}', '{"name":"a","args":[' +
                         "9" * 101 + "]}", "[" * 200 + "]" * 200, '{"name":"a","args":[NaN]}'])))
    head = draw(st.sampled_from(["", "1", "12+", "+", "007", "1" * 16, "-1", "1 ", "١"]))
    text = f"5:{head}:{draw(endpoints)}:{body}" if draw(st.booleans()) else \
        f"5:{head}:{draw(endpoints)}"
    if draw(st.booleans()):
        pos = draw(st.integers(0, len(text)))
        text = text[:pos] + draw(st.text(wild_chars, max_size=2)) + \
            text[pos + draw(st.integers(0, 2)):]
    return text


@FUZZ
@given(st.one_of(event_texts(), mutated(), st.text(st.one_of(wild_chars, any_chars),
                                                   max_size=30)))
def test_decode_event_gives_what_decode_gives_for_every_text(text):
    _assert_decode_event_agrees(text)


@pytest.mark.parametrize("text", [
    '5:::{"name":"a","args":[1]}', '5:1::{"name":"a"}', '5:1+:/c:{"name":"a","args":[]}',
    "5:::", "5::", "5:", "5", "5:::x", '5:+::{"name":"a"}', '5:1+::[]', '5:::{"name":1}',
    '5:::{"name":"a","args":{}}', "5:::" + "[" * 50000, '5:::{"name":"a","args":[1e400]}',
    '5:x::{"name":"a"}', '5:' + "1" * 16 + '::{"name":"a"}', '3:::x', '6:::1+[]', "",
])
def test_decode_event_known_texts(text):
    _assert_decode_event_agrees(text)


@pytest.mark.parametrize("text", ['"a\x01"', '["\x1f"]', '{"a\n":1}', '"\x00"'])
def test_a_raw_control_character_in_a_json_string_is_refused_short_or_long(text):
    # (strict, as the stdlib is, on both scanners: the short one too)
    long_text = "[" + text + "," + ",".join(["1"] * 60) + "]"
    assert len(text) <= packet.MAX_INT_DIGITS < len(long_text)
    for each in (text, long_text):
        with pytest.raises(ValueError):
            packet._loads(each)
        with pytest.raises(PacketError):
            packet.decode("4:::" + each)


def _packet_from_source():
    """packet.py loaded from its source as a module of its own: a compiled
    packet module (flask_sio09.native) has no Python frames to profile."""
    path = Path(packet.__file__).with_name("packet.py")
    spec = importlib.util.spec_from_file_location("packet_from_source", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parse_int_calls(text):
    source = _packet_from_source()
    calls = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code is source._parse_int.__code__:
            calls.append(1)

    sys.setprofile(profile)
    try:
        source._loads(text)
    finally:
        sys.setprofile(None)
    return len(calls)


def test_only_texts_long_enough_to_pass_the_digit_limit_call_parse_int():
    # the point of _scan_short: no Python call per integer where none can be too long
    assert _parse_int_calls("[1,2,3]") == 0
    assert _parse_int_calls("1" * packet.MAX_INT_DIGITS) == 0  # 100 characters: still short
    assert _parse_int_calls("[" + "1," * 50 + "1]") == 51  # 103 characters
