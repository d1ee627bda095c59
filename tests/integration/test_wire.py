"""Raw wire checks over real sockets (``requests`` and ``websocket-client``).

Each expectation is a line of PROTOCOL.md; a failure message shows the request, the
expected and the observed bytes.
"""

from __future__ import annotations

import json
import re
import time

import pytest
import requests
import websocket

from tests.conftest import wait_until
from tests.integration.helpers import (
    FRAME,
    SID_RE,
    Background,
    WsClient,
    XhrClient,
    decode_payload,
    encode_payload,
    event_packet,
    handshake,
    handshake_url,
    parse_event,
    utf16_len,
)

pytestmark = pytest.mark.timeout(180)

# polling_duration is short so that the noop test is quick; close_timeout leaves room
# between polls on a slow machine.
WIRE_OPTIONS = dict(
    transports=["websocket", "xhr-polling"],
    heartbeat_interval=2,
    heartbeat_timeout=20,
    close_timeout=20,
    polling_duration=3,
)


@pytest.fixture
def server(live_server):
    return live_server("sio_run", **WIRE_OPTIONS)


@pytest.fixture
def patient_server(live_server):
    """Long polls held 15 s: what a test does while one is parked has time to
    reach the server on a loaded machine before the poll ends by itself."""
    return live_server("sio_run", **dict(WIRE_OPTIONS, polling_duration=15))


@pytest.fixture
def long_poll_server(live_server):
    """Long polls held 60 s: a poll answered within a 30 s wait was answered
    for another reason than its end, however slow the machine."""
    return live_server("sio_run", **dict(WIRE_OPTIONS, polling_duration=60, close_timeout=90))


@pytest.fixture
def default_server(live_server):
    """No options at all: the defaults of API.md."""
    return live_server("sio_run")


def show(response) -> str:
    return (
        f"{response.request.method} {response.request.url} -> {response.status_code} "
        f"{response.headers.get('Content-Type')!r} {response.text!r}"
    )


# ---------------------------------------------------------------------------
# handshake and routing (PROTOCOL.md §1)
# ---------------------------------------------------------------------------


def test_handshake_defaults(default_server):
    response = requests.get(handshake_url(default_server), timeout=30)
    assert response.status_code == 200, show(response)
    assert response.headers["Content-Type"].startswith("text/plain"), show(response)
    sid, heartbeat, close, transports = response.text.split(":")
    assert SID_RE.match(sid), f"sid {sid!r} is not URL-safe with >= 20 chars"
    assert (heartbeat, close) == ("60", "60"), show(response)
    names = transports.split(",")
    assert names[0] == "websocket", show(response)
    assert "xhr-polling" in names, show(response)
    assert set(names) <= {"websocket", "flashsocket", "htmlfile", "xhr-polling", "jsonp-polling"}
    assert "xhr-multipart" not in names


def test_handshake_with_options_and_fresh_sids(server):
    sids = set()
    for _ in range(5):
        sid, heartbeat, close, transports = handshake(server, t=str(int(time.time() * 1000)))
        assert SID_RE.match(sid), sid
        assert (heartbeat, close, transports) == ("20", "20", ["websocket", "xhr-polling"])
        sids.add(sid)
    assert len(sids) == 5


def test_handshake_post(server):
    response = requests.post(handshake_url(server), timeout=30)
    assert response.status_code == 200, show(response)
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}:20:20:websocket,xhr-polling", response.text), show(response)


def test_handshake_t_is_ignored(server):
    for t in ("1369019846312", "abc", ""):
        response = requests.get(handshake_url(server), params={"t": t}, timeout=30)
        assert response.status_code == 200, show(response)
        assert response.text.split(":")[1:] == ["20", "20", "websocket,xhr-polling"], show(response)


def test_handshake_jsonp(server):
    response = requests.get(handshake_url(server), params={"jsonp": "3", "t": "1"}, timeout=30)
    assert response.status_code == 200, show(response)
    assert response.headers["Content-Type"].startswith("application/javascript"), show(response)
    match = re.fullmatch(r'io\.j\[3\]\("([A-Za-z0-9_-]{20,}):20:20:websocket,xhr-polling"\);', response.text)
    assert match, show(response)
    # A non-numeric jsonp value is ignored: the plain form comes back.
    response = requests.get(handshake_url(server), params={"jsonp": "x3"}, timeout=30)
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}:20:20:websocket,xhr-polling", response.text), show(response)


def test_wrong_protocol_version(server):
    response = requests.get(handshake_url(server, protocol=2), timeout=30)
    assert response.status_code == 500, show(response)
    assert response.text == "Protocol version not supported.", show(response)


def test_unknown_sid_get_and_post(server):
    url = f"{server.url}/socket.io/1/xhr-polling/notasessionidatall12345"
    response = requests.get(url, params={"t": "1"}, timeout=30)
    assert (response.status_code, response.text) == (200, "7:::1+0"), show(response)
    response = requests.post(url, data=b"5:::{\"name\":\"echo\"}", timeout=30)
    assert (response.status_code, response.text) == (200, "1"), show(response)


def test_unknown_sid_websocket(server):
    ws = websocket.create_connection(
        f"{server.ws_url}/socket.io/1/websocket/notasessionidatall12345", timeout=30
    )
    try:
        assert ws.recv() == "7:::1+0"
    finally:
        ws.close()


# ---------------------------------------------------------------------------
# xhr-polling (PROTOCOL.md §2.2)
# ---------------------------------------------------------------------------


def test_first_get_and_post_answers(server):
    client = XhrClient(server)
    client.sid = handshake(server)[0]
    first = client.get()
    assert (first.status_code, first.text) == (200, "1::"), show(first)
    assert first.headers["Content-Type"].lower().replace(" ", "") == "text/plain;charset=utf-8", show(first)
    post = client.post("2::")
    assert (post.status_code, post.text) == (200, "1"), show(post)
    assert post.headers["Content-Type"].lower().replace(" ", "").startswith("text/plain"), show(post)


def test_echo_ack_over_xhr(server):
    client = XhrClient.open(server)
    assert client.call("echo", "a", 1, {"b": [2]}, ack_id=1) == ["a", 1, {"b": [2]}]
    assert client.ack_for(1) == '6:::1+["a",1,{"b":[2]}]'
    # No args: "6:::<id>" with no data.
    assert client.call("echo_kw", ack_id=2) == []
    assert client.ack_for(2) == "6:::2"


def test_ack_json_escapes_line_separators(server):
    """U+2028 and U+2029 inside ack data must go out escaped (``\\u2028``).

    socket.io-client 0.9.16 splits an ack with ``/^([0-9]+)(\\+)?(.*)/`` and JavaScript's
    ``.`` stops at U+2028/U+2029 (line terminators), so a raw one truncates the JSON
    and the ack arrives with no args. Escaped, it is the same JSON value.
    """
    client = XhrClient.open(server)
    assert client.call("echo", "a\u2028b\u2029c", ack_id=1) == ["a\u2028b\u2029c"]
    assert client.ack_for(1) == '6:::1+["a\\u2028b\\u2029c"]', client.ack_for(1)


def test_framed_post_dispatches_every_packet(server):
    client = XhrClient.open(server)
    body = encode_payload([event_packet("echo", "first", ack_id=1), event_packet("echo", "second😀", ack_id=2)])
    assert body.startswith(FRAME)
    response = client.post(body)
    assert (response.status_code, response.text) == (200, "1"), show(response)
    client.collect(lambda _: client.ack_for(1) and client.ack_for(2))
    assert client.ack_for(1) == '6:::1+["first"]'
    assert client.ack_for(2) == '6:::2+["second😀"]'
    # Handled in order.
    acks = [p for p in client.received if p.startswith("6:::")]
    assert acks.index(client.ack_for(1)) < acks.index(client.ack_for(2))


def test_framed_answer_counts_utf16_units(server):
    client = XhrClient(server)
    client.sid = handshake(server)[0]
    assert client.get().text == "1::"
    texts = ["😀", "a😀b", "plain"]
    client.post(event_packet("emit_texts", texts, ack_id=1))
    raw = []

    def done():
        response = client.get()
        raw.append(response.text)
        client.received.extend(decode_payload(response.text))
        return len(client.events("text")) == len(texts) and client.ack_for(1)

    wait_until(done, message=lambda: f"the text events; raw answers {raw!r}")
    assert [args for _, args in client.events("text")] == [[t] for t in texts]
    for answer in raw:
        if answer.startswith(FRAME):
            # Every declared length is the UTF-16 length of the packet that follows.
            for packet in decode_payload(answer):
                assert f"{FRAME}{utf16_len(packet)}{FRAME}{packet}" in answer, answer


def test_forced_disconnect_ends_the_session(server):
    client = XhrClient.open(server)
    response = client.get(disconnect="1")
    assert response.status_code == 200, show(response)
    later = client.get()
    assert (later.status_code, later.text) == (200, "7:::1+0"), show(later)
    events = server.wait_events(
        lambda ev: any(e["event"] == "disconnect" for e in ev), sid=client.sid, what="the disconnect handler"
    )
    assert len([e for e in events if e["event"] == "disconnect"]) == 1


def test_forced_disconnect_answers_the_open_poll(patient_server):
    server = patient_server
    client = XhrClient.open(server)
    # Two concurrent polls: once one of them is superseded ("8::"), the other is
    # known to be parked on the server, whatever order they arrived in.
    polls = [Background(client.get, timeout=60), Background(XhrClient(server, sid=client.sid).get, timeout=60)]
    first_done = wait_until(lambda: [p for p in polls if p.done], timeout=30, message="a poll to end")[0]
    assert first_done.join().text == "8::", show(first_done.join())
    parked = next(p for p in polls if p is not first_done)
    # Python's socketIO-client form: GET ...?t=..&disconnect=True (on another connection).
    other = XhrClient(server, sid=client.sid)
    response = other.get(disconnect="True")
    assert response.status_code == 200, show(response)
    answer = parked.join(timeout=30)
    assert answer.text == "0::", show(answer)
    assert other.get().text == "7:::1+0"


def test_server_disconnect_between_polls_reaches_the_next_poll(server):
    client = XhrClient.open(server)
    # the e2e app's server_disconnect handler calls disconnect(); no poll is open
    response = client.post('5:::{"name":"server_disconnect"}')
    assert response.text == "1", show(response)
    answer = client.get()
    assert answer.text == "0::", show(answer)
    assert client.get().text == "7:::1+0"


def test_sync_disconnect_url(server):
    """socket.io-client's ``disconnectSync``: ``/socket.io/1//<sid>/?disconnect=1``."""
    client = XhrClient.open(server)
    response = requests.get(f"{server.url}/socket.io/1//{client.sid}/", params={"disconnect": "1"}, timeout=30)
    assert response.status_code == 200, show(response)
    later = client.get()
    assert later.text == "7:::1+0", show(later)


def test_second_concurrent_get_answers_the_first_with_noop(long_poll_server):
    server = long_poll_server
    client = XhrClient.open(server)
    second = XhrClient(server, sid=client.sid)
    polls = [Background(client.get, timeout=90), Background(second.get, timeout=90)]
    # Whichever GET reached the server first is superseded by the other and answered
    # "8::" at once: within the wait, which ends long before polling_duration (60 s).
    first_done = wait_until(lambda: [p for p in polls if p.done], timeout=30,
                            message="the superseded poll's answer (before polling_duration)")
    superseded = first_done[0].join()
    assert superseded.text == "8::", show(superseded)
    # The newest one is still the session's poll: it gets what is emitted now.
    still_open = next(p for p in polls if p is not first_done[0])
    server.server_emit("pushed", "to the newest poll", to=client.sid)
    answer = still_open.join(timeout=30)
    assert answer.text in ('5:::{"name":"pushed","args":["to the newest poll"]}',), show(answer)


def test_poll_answered_with_noop_after_polling_duration(server):
    client = XhrClient.open(server)
    duration = WIRE_OPTIONS["polling_duration"]
    started = time.monotonic()
    # the request's timeout is the deadline: the noop must come when polling_duration
    # ends, not when the client gives up (generous, for a loaded machine)
    response = client.get(timeout=duration + 30)
    elapsed = time.monotonic() - started
    assert (response.status_code, response.text) == (200, "8::"), show(response)
    assert elapsed >= duration - 0.5, f"noop after {elapsed:.1f} s, before polling_duration {duration}"


def test_packets_emitted_while_no_poll_is_open_are_buffered(server):
    client = XhrClient.open(server)
    # 50 emits from another HTTP request while no GET is open ...
    server.server_emit("seq", "http", to=client.sid, count=50)
    # ... and 50 from a handler (the POST answers before the GET below).
    assert client.post(event_packet("emit_many", 50)).text == "1"
    client.collect(lambda _: len(client.events("seq")) >= 100)
    seq = client.events("seq")
    assert [args for _, args in seq[:50]] == [["http", i] for i in range(50)]
    assert [args for _, args in seq[50:]] == [[i] for i in range(50)]
    assert len(seq) == 100


def test_background_emits_spread_over_several_polls(server):
    client = XhrClient.open(server)
    # a poll waits before the emits start (its request goes first), so the
    # first emit answers it and the others, 50 ms apart, need more polls;
    # polling only after the POST, a test thread slower than the emits saw
    # all 50 in one poll
    first = Background(client.poll, timeout=60)
    XhrClient(server, sid=client.sid).post(event_packet("emit_many_background", 50, 0.05))
    first.join(90)
    polls = 1

    def enough():
        nonlocal polls
        polls += 1
        client.poll()
        return len(client.events("seq")) >= 50

    wait_until(enough, message=lambda: f"50 seq events; got {client.events('seq')}")
    assert [args for _, args in client.events("seq")] == [[i] for i in range(50)]
    assert polls >= 2, "all 50 arrived in one poll; the test did not cross poll boundaries"


MALFORMED = [
    "garbage",
    "",
    ":::",
    "5:::{not json",
    "5:::",
    "99::",
    "6:::abc+[",
    "6:::1+{\"++]",
    "1::/private:?token=",  # a refused connect, harmless
    "4:::{bad",
    FRAME + "5" + FRAME + "3:::x",  # frame length past the end
    FRAME + "x" + FRAME + "3:::x",  # frame length not a number
    FRAME,
    "5:99999999999999999999999999+::{\"name\":\"echo\"}",
]


def test_malformed_posts_are_dropped(server):
    client = XhrClient.open(server)
    for ack_id, body in enumerate(MALFORMED, start=1):
        response = client.post(body)
        assert response.status_code < 500, show(response)
        # The session still works after each one.
        assert client.call("echo", body, ack_id=ack_id) == [body], body
    assert "7:::1+0" not in client.received


def test_plain_auto_ack(server):
    client = XhrClient.open(server)
    client.post('5:3::{"name":"x"}')
    client.collect(lambda _: "6:::3" in client.received)
    # An event without a handler on a plain id: the server acks it itself, no args.
    assert client.call("echo", "next", ack_id=4) == ["next"]
    assert client.received.count("6:::3") == 1


def test_client_event_named_disconnect_is_dropped(server):
    client = XhrClient.open(server)
    client.post('5:6+::{"name":"disconnect"}')
    assert client.call("echo", "alive", ack_id=7) == ["alive"]
    assert client.ack_for(6) is None, client.received
    events = server.events(client.sid)
    assert [e for e in events if e["event"] == "disconnect"] == []


def test_namespace_connect_both_query_forms(server):
    client = XhrClient.open(server)
    client.post("1::/private:?token=ok")
    client.collect(lambda _: "1::/private" in client.received)
    assert client.call("whoami", ack_id=1, endpoint="/private") == [client.sid, "/private"]
    other = XhrClient.open(server)
    other.post("1::/private?token=ok")
    other.collect(lambda _: "1::/private" in other.received)
    refused = XhrClient.open(server)
    refused.post("1::/private:?token=no")
    refused.collect(lambda _: "7::/private:2" in refused.received)
    assert "1::/private" not in refused.received


# ---------------------------------------------------------------------------
# websocket (PROTOCOL.md §2.2)
# ---------------------------------------------------------------------------


@pytest.fixture
def ws_client(server):
    clients = []

    def factory():
        client = WsClient(server)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


def test_websocket_open_echo_and_heartbeat(server, ws_client):
    client = ws_client()
    assert client.ws.recv() == "1::"
    assert client.call("echo", "ws", "😀", ack_id=1) == ["ws", "😀"]
    # heartbeat_interval is 2 s: a "2::" comes on its own.
    client.recv_until(lambda got: "2::" in got, timeout=30)


def test_websocket_one_packet_per_frame(server, ws_client):
    client = ws_client()
    client.recv_until(lambda got: "1::" in got)
    client.ws.send(event_packet("emit_many", 20, ack_id=1))
    client.recv_until(lambda got: sum(p.startswith("5:") for p in got) >= 20)
    seq = [parse_event(p) for p in client.received if p.startswith("5:")]
    assert [args for _, args in seq] == [[i] for i in range(20)]
    assert not any(p.startswith(FRAME) for p in client.received)


def test_websocket_malformed_frames_are_dropped(server, ws_client):
    client = ws_client()
    client.recv_until(lambda got: "1::" in got)
    for ack_id, body in enumerate(MALFORMED, start=1):
        client.ws.send(body)
        assert client.call("echo", body, ack_id=ack_id) == [body], body
    assert "7:::1+0" not in client.received


def test_websocket_framed_payload_is_accepted(server, ws_client):
    client = ws_client()
    client.recv_until(lambda got: "1::" in got)
    client.ws.send(encode_payload([event_packet("echo", "one", ack_id=1), event_packet("echo", "two", ack_id=2)]))
    client.recv_until(lambda got: '6:::2+["two"]' in got)
    assert '6:::1+["one"]' in client.received


def test_websocket_plain_ack_and_disconnect_event(server, ws_client):
    client = ws_client()
    client.recv_until(lambda got: "1::" in got)
    client.ws.send('5:3::{"name":"x"}')
    client.ws.send('5:6+::{"name":"disconnect"}')
    assert client.call("echo", "alive", ack_id=7) == ["alive"]
    assert "6:::3" in client.received
    assert not any(p.startswith("6:::6") for p in client.received), client.received


def test_websocket_client_disconnect_packet(server, ws_client):
    client = ws_client()
    client.recv_until(lambda got: "1::" in got)
    client.ws.send("0::")
    events = server.wait_events(
        lambda ev: any(e["event"] == "disconnect" for e in ev), sid=client.sid, what="the disconnect handler"
    )
    assert len([e for e in events if e["event"] == "disconnect"]) == 1
    response = requests.get(f"{server.url}/socket.io/1/xhr-polling/{client.sid}", timeout=30)
    assert response.text == "7:::1+0", show(response)


def test_websocket_close_ends_the_session(server, ws_client):
    client = ws_client()
    client.recv_until(lambda got: "1::" in got)
    client.ws.close()
    events = server.wait_events(
        lambda ev: any(e["event"] == "disconnect" for e in ev), sid=client.sid, what="the disconnect handler"
    )
    assert len([e for e in events if e["event"] == "disconnect"]) == 1


# ---------------------------------------------------------------------------
# flashsocket: the WebSocket transport under another name (PROTOCOL.md §2.2)
# ---------------------------------------------------------------------------

# The same suite runs over both names; only a server that lists flashsocket
# accepts it.
SOCKET_OPTIONS = dict(WIRE_OPTIONS, transports=["websocket", "flashsocket", "xhr-polling"])
BIG = ("0123456789abcdef" * 6400)[:100_000]
UNICODE = "héllo wörld 中文 😀 \"quoted\" \\ </script> <!-- \n\t end"


@pytest.fixture
def socket_server(live_server):
    return live_server("sio_run", **SOCKET_OPTIONS)


@pytest.fixture(params=["websocket", "flashsocket"])
def socket_client(request, socket_server):
    """Factory: an open, connected client on the parametrised transport."""
    clients = []

    def factory() -> WsClient:
        client = WsClient(socket_server, request.param)
        clients.append(client)
        client.recv_until(lambda got: "1::" in got)
        assert client.received[0] == "1::"
        return client

    yield factory
    for client in clients:
        client.close()


def test_socket_handshake_lists_flashsocket(socket_server):
    assert handshake(socket_server)[3] == ["websocket", "flashsocket", "xhr-polling"]


def test_flashsocket_refused_when_not_listed(server):
    sid = handshake(server)[0]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(f"{server.ws_url}/socket.io/1/flashsocket/{sid}", timeout=30)
    assert refused.value.status_code == 400


def test_socket_acks_both_ways_unicode_and_100kb(socket_server, socket_client):
    client = socket_client()
    assert client.call("echo", UNICODE, "😀🎉𝄞", ack_id=1) == [UNICODE, "😀🎉𝄞"]
    assert client.call("echo", BIG, ack_id=2) == [BIG]
    assert client.call("ack_many", ack_id=3) == ["woot", 2, {"three": [3, "drei"]}, None, True, "😀"]
    # server -> client: the server asks with a data ack, the client answers it
    client.ws.send(event_packet("ask_client", "ready?", ack_id=4))
    client.recv_until(lambda got: any(p.startswith("5:") and '"question"' in p for p in got))
    question = next(p for p in client.received if p.startswith("5:") and '"question"' in p)
    ident = question.split(":")[1]
    assert ident.endswith("+"), question
    assert parse_event(question) == ("question", ["ready?"])
    client.ws.send(f"6:::{ident}" + json.dumps(["yes", 42]))
    client.recv_until(lambda got: any('"client_answered"' in p for p in got))
    answered = next(p for p in client.received if '"client_answered"' in p)
    assert parse_event(answered) == ("client_answered", [["yes", 42]])
    server_events = socket_server.wait_events(
        lambda ev: any(e["event"] == "client_answer" for e in ev), sid=client.sid, what="the callback")
    assert [e["answer"] for e in server_events if e["event"] == "client_answer"] == [["yes", 42]]


def test_socket_rooms_and_broadcast(socket_client):
    a, b, c = socket_client(), socket_client(), socket_client()
    assert "lobby" in a.call("join", "lobby", ack_id=1)[0]
    assert "lobby" in b.call("join", "lobby", ack_id=1)[0]
    assert a.call("to_room", "lobby", {"n": 1}, False, ack_id=2) == ["sent"]
    b.recv_until(lambda got: any('"room_msg"' in p for p in got))
    # barriers: an ack queued after the room emit proves nothing else is coming
    a.call("echo", "barrier", ack_id=3)
    c.call("echo", "barrier", ack_id=3)
    assert not any('"room_msg"' in p for p in a.received + c.received)
    assert b.call("broadcast", "hello all", True, ack_id=4) == ["sent"]
    for client in (a, b, c):
        client.recv_until(lambda got: any('"broadcast_msg"' in p for p in got))
        message = next(p for p in client.received if '"broadcast_msg"' in p)
        assert parse_event(message) == ("broadcast_msg", ["hello all"])


def test_socket_namespaces_and_refusal(socket_client):
    client = socket_client()
    client.ws.send("1::/private:?token=ok")
    client.recv_until(lambda got: "1::/private" in got)
    client.ws.send(event_packet("whoami", ack_id=1, endpoint="/private"))
    client.recv_until(lambda got: any(p.startswith("6::/private:1+") for p in got))
    ack = next(p for p in client.received if p.startswith("6::/private:1+"))
    assert json.loads(ack.split("+", 1)[1]) == [client.sid, "/private"]
    refused = socket_client()
    refused.ws.send("1::/private:?token=no")
    refused.recv_until(lambda got: "7::/private:2" in got)
    assert "1::/private" not in refused.received
    # the global namespace of the refused client still works
    assert refused.call("echo", "still here", ack_id=2) == ["still here"]


def test_socket_heartbeats(socket_client):
    client = socket_client()
    # heartbeat_interval is 2 s: two "2::" come on their own, and recv_until
    # answers each, which keeps the session alive past them
    client.recv_until(lambda got: got.count("2::") >= 2, timeout=30)
    assert client.call("echo", "alive", ack_id=1) == ["alive"]


def test_socket_client_disconnect(socket_server, socket_client):
    client = socket_client()
    client.ws.send("0::")
    events = socket_server.wait_events(
        lambda ev: any(e["event"] == "disconnect" for e in ev), sid=client.sid, what="the disconnect")
    assert len([e for e in events if e["event"] == "disconnect"]) == 1


def test_socket_server_disconnect(socket_server, socket_client):
    client = socket_client()
    client.ws.send(event_packet("server_disconnect"))
    client.recv_until(lambda got: "0::" in got)
    # then the server closes the connection
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
        for _ in range(100):
            if client.ws.recv() in ("", None):
                raise websocket.WebSocketConnectionClosedException("closed")
    events = socket_server.wait_events(
        lambda ev: any(e["event"] == "disconnect" for e in ev), sid=client.sid, what="the disconnect")
    assert len([e for e in events if e["event"] == "disconnect"]) == 1


@pytest.mark.gunicorn
@pytest.mark.parametrize("websocket_mode", ["hub", "thread"])
def test_heartbeats_and_acks_under_gunicorn_preload(live_server, websocket_mode):
    """With --preload the app (and its server) is made before gunicorn forks:
    the monitor, the handler pool and the hub must start in the worker."""
    server = live_server("gunicorn_preload", websocket_mode=websocket_mode,
                         heartbeat_interval=1, heartbeat_timeout=5)
    client = WsClient(server)
    try:
        client.recv_until(lambda got: "1::" in got)
        client.send(event_packet("echo", "after fork", ack_id=1))
        client.recv_until(lambda got: any(p.startswith("6:::1+") for p in got))
        assert '6:::1+["after fork"]' in client.received
        # heartbeats come from the worker's own monitor thread
        client.recv_until(lambda got: got.count("2::") >= 2, timeout=20)
    finally:
        client.close()
