"""Hostile input at the codec, dispatch and request-body level (no sockets).

Each case is something a client can send that used to decode but could not be
written back (so a handler's ack or emit raised, with a traceback in the server
log and the client's ack lost), or that is a size the peer controls.
"""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_sio09 import packet
from flask_sio09.packet import MAX_JSON_DEPTH, PacketError
from flask_sio09.server import Options, Server
from tests.unit.doubles import EchoApp



class Transport:
    persistent = True

    def wake(self):
        pass


def nested(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


# --- numbers that decode to infinity ------------------------------------------

@pytest.mark.parametrize("wire", [
    "4:::1e400",
    "4:::[-1e400]",
    '4:::{"a":[1.5,2e999]}',
    '5:1+::{"name":"echo","args":[1e400]}',
    "4:::" + "9" * 400 + ".0",  # no exponent, still past the largest float
])
def test_numbers_past_float_range_are_refused(wire):
    with pytest.raises(PacketError):
        packet.decode(wire)


def test_ack_args_past_float_range_are_refused():
    with pytest.raises(PacketError):
        packet.decode('6:::3+["x",1e400]')


def test_large_but_finite_floats_still_decode_and_encode():
    pkt = packet.decode("4:::[1e308,-1.7976931348623157e308,5e-324]")
    assert pkt["data"] == [1e308, -1.7976931348623157e308, 5e-324]
    assert packet.decode(packet.encode(pkt)) == pkt


# --- nesting ------------------------------------------------------------------

@pytest.mark.parametrize("make", [nested, nested_objects])
def test_json_nested_to_the_limit_decodes_and_deeper_is_refused(make):
    ok = packet.decode("4:::" + make(MAX_JSON_DEPTH))
    assert packet.decode(packet.encode(ok)) == ok
    with pytest.raises(PacketError):
        packet.decode("4:::" + make(MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize("template", [
    '5:1+::{{"name":"echo","args":[{}]}}',  # the args list adds one level
    "6:::1+[{}]",
])
def test_nesting_limit_applies_to_event_and_ack_args(template):
    packet.decode(template.format(nested(MAX_JSON_DEPTH - 2)))
    with pytest.raises(PacketError):
        packet.decode(template.format(nested(MAX_JSON_DEPTH)))


def test_nesting_far_past_the_recursion_limit_is_one_packet_error():
    with pytest.raises(PacketError):
        packet.decode('5:::{"name":"x","args":' + nested(100_000) + "}")


def test_wide_but_shallow_json_is_not_refused():
    wide = "[" + ",".join(["[[1]]"] * 5000) + "]"
    assert len(packet.decode("4:::" + wide)["data"]) == 5000
    brackets_in_strings = '["' + "[" * 1000 + '"]'
    assert packet.decode("4:::" + brackets_in_strings)["data"] == ["[" * 1000]


def _walked_depth(value) -> int:
    """The nesting depth of a decoded value, by a plain recursive walk (the
    reference for the codec's count on the text)."""
    if isinstance(value, dict):
        return 1 + max(map(_walked_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_walked_depth, value), default=0)
    return 0


_tricky_strings = st.text(st.sampled_from(list('[]{}"\\/ab\u00e9\n')), max_size=6)
_json_trees = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                         allow_infinity=False)
    | _tricky_strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_strings, inner,
                                                                max_size=3),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(_json_trees, st.booleans(), st.sampled_from([(",", ":"), (", ", ": "), (",\n", " : ")]))
def test_the_nesting_count_on_the_text_is_the_depth_of_the_value(value, ascii_only, separators):
    text = json.dumps(value, ensure_ascii=ascii_only, separators=separators)
    assert packet._nesting_depth(text) == _walked_depth(value)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
def test_nesting_is_measured_across_strings_escapes_and_mixed_brackets(depth):
    # every opening level mixes arrays and objects, strings that hold brackets,
    # quotes and backslashes; only the real containers count
    levels = ['{"a\\"":"]}[{\\\\","b":' if i % 2 else '["[[\\"]",' for i in range(depth)]
    closing = "".join("}" if i % 2 else "]" for i in reversed(range(depth)))
    text = "".join(levels) + "1" + closing
    assert _walked_depth(json.loads(text)) == depth
    if depth <= MAX_JSON_DEPTH:
        packet.decode("4:::" + text)
    else:
        with pytest.raises(PacketError):
            packet.decode("4:::" + text)


def test_a_megabyte_of_small_arrays_decodes():
    """A large bracket-heavy text is measured (on its text: walking the
    decoded value in Python took the hub's thread half a second for this)."""
    text = '5:1+::{"name":"echo","args":[' + ",".join(["[[1]]"] * 150_000) + "]}"
    event = packet.decode_event(text)
    assert event is not None and event[4] == [[[1]]] * 150_000
    assert packet._nesting_depth(text[6:]) == 4


def _at_depth(frames: int, fn):
    """Call ``fn`` with ``frames`` extra Python frames on the stack."""
    if frames == 0:
        return fn()
    return _at_depth(frames - 1, fn)


def test_anything_decoded_can_be_encoded_from_a_deep_stack():
    # A handler runs some way down its worker's stack; whatever a client
    # managed to send must still be encodable there.
    pkt = packet.decode('5:1+::{"name":"echo","args":[' + nested(MAX_JSON_DEPTH - 2) + "]}")
    frames = sys.getrecursionlimit() - MAX_JSON_DEPTH - 200
    wire = _at_depth(frames, lambda: packet.encode(
        {"type": "ack", "ackId": 1, "args": pkt["args"]}))
    assert wire.startswith("6:::1+[")


# --- lone surrogates in raw text ------------------------------------------------

@pytest.mark.parametrize(("pkt", "wire"), [
    ({"type": "message", "data": "a\ud800b"}, "3:::a\ufffdb"),
    ({"type": "message", "endpoint": "/x\udfff", "data": "y"}, "3::/x\ufffd:y"),
    ({"type": "connect", "endpoint": "/c", "qs": "?q=\udc00"}, "1::/c:?q=\ufffd"),
    ({"type": "connect", "endpoint": "/\ud83d"}, "1::/\ufffd"),
    ({"type": "disconnect", "endpoint": "/\ud800"}, "0::/\ufffd"),
    ({"type": "ack", "ackId": 2, "endpoint": "/\ud800", "args": ["\ud800"]},
     '6::/\ufffd:2+["\\ud800"]'),
    ({"type": "error", "reason": "unauthorized", "endpoint": "/\ud800"}, "7::/\ufffd:2"),
])
def test_lone_surrogates_in_raw_text_become_replacement_characters(pkt, wire):
    encoded = packet.encode(pkt)
    assert encoded == wire
    encoded.encode("utf-8")  # what every transport does with it
    # one UTF-16 unit each way: payload framing is unchanged
    assert packet.utf16_len(encoded) == packet.utf16_len(wire)


def test_proper_surrogate_pairs_are_left_alone():
    assert packet.encode({"type": "message", "data": "😀"}) == "3:::😀"


# --- dispatch: what a client can make the server write ------------------------

@pytest.fixture
def server():
    srv = Server(Options(), EchoApp(), monitor=False, synchronous=True)
    yield srv
    srv.shutdown()


def open_session(server):
    session = server.new_session({"QUERY_STRING": ""})
    server.attach(session, Transport())
    session.take_outbox()
    return session


def test_refused_namespace_with_a_lone_surrogate_is_writable(server):
    server.app.refuse.add("/\ud800")
    session = open_session(server)
    server.handle_packet(session, {"type": "connect", "endpoint": "/\ud800", "qs": ""})
    out = session.take_outbox()
    assert out == ["7::/\ufffd:2"]
    out[0].encode("utf-8")


def test_namespace_limit_refusal_is_writable(server):
    from flask_sio09.server import MAX_NAMESPACES_PER_SESSION

    session = open_session(server)
    for i in range(MAX_NAMESPACES_PER_SESSION + 5):
        server.handle_packet(session, {"type": "connect", "endpoint": f"/n{i}\udc00", "qs": ""})
    out = session.take_outbox()
    refused = [p for p in out if p.startswith("7::")]
    assert len(refused) == 5 + 1  # the global namespace counts as one
    assert all(p.endswith("\ufffd:2") for p in refused)
    assert len(session.namespaces) == MAX_NAMESPACES_PER_SESSION
    for p in out:
        p.encode("utf-8")


def test_malformed_packets_from_a_client_are_dropped_and_logged_once_each(server, caplog):
    session = open_session(server)
    caplog.set_level("INFO", logger="flask_sio09")
    server.receive(session, "4:::1e400")
    server.receive(session, "4:::" + nested(MAX_JSON_DEPTH + 1))
    server.receive(session, '5:::{"name":"ev","args":[1')  # an event whose JSON is cut
    server.receive(session, '5:::/chat:{"name":"ev","args":[1]}')  # not JSON at all
    assert not session.closed
    assert session.take_outbox() == []
    assert [r.levelname for r in caplog.records if r.levelno >= 20] == ["INFO"] * 4
    assert "an event without a name (bad JSON) dropped" in caplog.text
    assert not any(r.exc_info for r in caplog.records)


# --- request bodies -------------------------------------------------------------

class _Options:
    max_http_buffer_size = 100


class _Server:
    options = _Options()


class _Input:
    """A wsgi.input that records how much was asked of it."""

    def __init__(self, data: bytes):
        self.data = data
        self.asked: list[int] = []

    def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        out, self.data = self.data[:size], self.data[size:]
        return out


def _environ(body: bytes, length: str | None = None, chunked: bool = False) -> dict:
    env = {"wsgi.input": _Input(body)}
    if length is not None:
        env["CONTENT_LENGTH"] = length
    if chunked:
        env["wsgi.input_terminated"] = True
    return env


def test_body_of_the_announced_length_is_read():
    from flask_sio09.transports import read_body

    assert read_body(_Server(), _environ(b"3:::x", "5")) == b"3:::x"
    assert read_body(_Server(), _environ(b"x" * 100, "100")) == b"x" * 100


@pytest.mark.parametrize("length", ["201", "1" + "0" * 30, "9" * 10_000])
def test_announced_length_far_over_the_limit_is_refused_unread(length):
    from flask_sio09.transports import read_body

    env = _environ(b"x" * 300, length)
    assert read_body(_Server(), env) is None
    assert env["wsgi.input"].asked == []


def test_body_somewhat_over_the_limit_is_read_and_dropped():
    # up to twice the limit is drained, so that the client can read the 413
    from flask_sio09.transports import read_body

    env = _environ(b"x" * 150, "150")
    assert read_body(_Server(), env) is None
    assert env["wsgi.input"].data == b""


@pytest.mark.parametrize("length", ["-5", "+5", "5.0", "0x5", "1e3", "\u0665", "5 5"])
def test_invalid_content_length_is_a_bad_body(length):
    from flask_sio09.transports import BadBody, read_body

    with pytest.raises(BadBody):
        read_body(_Server(), _environ(b"3:::x", length))


def test_body_shorter_than_announced_is_a_bad_body():
    from flask_sio09.transports import BadBody, read_body

    with pytest.raises(BadBody):
        read_body(_Server(), _environ(b"3:::x", "50"))


def test_no_length_and_not_chunked_is_an_empty_body_and_nothing_is_read():
    from flask_sio09.transports import read_body

    env = _environ(b"3:::never")
    assert read_body(_Server(), env) == b""
    assert env["wsgi.input"].asked == []


def test_chunked_body_is_read_up_to_the_limit():
    from flask_sio09.transports import read_body

    assert read_body(_Server(), _environ(b"x" * 100, chunked=True)) == b"x" * 100
    env = _environ(b"x" * 5000, chunked=True)
    assert read_body(_Server(), env) is None
    assert env["wsgi.input"].asked == [101]


# --- a transport stuck writing to a client that stopped reading ------------------

class _StuckTransport:
    persistent = True

    def __init__(self):
        self.aborted = 0

    def wake(self):
        pass

    def abort(self):
        self.aborted += 1


@pytest.mark.parametrize("reason,grace", [("server disconnect", 5.0), ("outbox overflow", 0.0)])
def test_transport_of_a_closed_session_is_aborted_once_after_its_grace(reason, grace):
    # a thread stuck writing to a closed session's client is freed after
    # close_timeout; at once (the monitor's next step) when that client had
    # stopped reading (outbox overflow)
    now = [1000.0]
    srv = Server(Options(close_timeout=5), EchoApp(), clock=lambda: now[0],
                 monitor=False, synchronous=True)
    try:
        session = srv.new_session({"QUERY_STRING": ""})
        stuck = _StuckTransport()
        srv.attach(session, stuck)
        srv.close_session(session, reason)
        if grace:
            srv.monitor_step(now[0] + grace - 0.1)
            assert stuck.aborted == 0  # it may still finish on its own
        srv.monitor_step(now[0] + grace)
        assert stuck.aborted == 1
        srv.monitor_step(now[0] + 60)
        assert stuck.aborted == 1
    finally:
        srv.shutdown()


def test_hub_mode_without_a_socket_warns_once_per_server(caplog):
    from flask_sio09.transports import use_hub

    caplog.set_level("DEBUG", logger="flask_sio09")
    servers = [Server(Options(websocket_mode="hub"), EchoApp(), monitor=False)
               for _ in range(2)]
    try:
        for server in servers:
            for _ in range(50):  # say, every long-poll of a TLS server
                assert use_hub(server, {"wsgi.url_scheme": "https"}) is False
        warnings = [r for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 2
        assert "does not expose a plain socket" in warnings[0].getMessage()
    finally:
        for server in servers:
            server.shutdown()
