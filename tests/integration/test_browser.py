"""End-to-end: socket.io-client 0.9.16 in headless Chromium against a live server.

Every test runs once per forced transport (``TRANSPORTS``). Chromium has no
``ActiveXObject``, which socket.io-client needs before it uses htmlfile, so the
htmlfile runs install the test page's small shim for it first
(``T.installHtmlfileShim`` in ``tests/apps/e2e_page.html``); the transport code
that runs is the client's own.
"""

from __future__ import annotations

import pytest

from tests.integration.helpers import SioPage, wait_for_ms

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# The transports forced on the client, one per parametrised run.
TRANSPORTS = ["websocket", "htmlfile", "xhr-polling", "jsonp-polling"]
# Transports that stay open: the server sends heartbeats over them.
PERSISTENT = {"websocket", "htmlfile"}

# Timeouts for most tests: short enough to keep the suite quick, long enough for a
# slow shared machine (polling_duration < close_timeout, interval < timeout).
DEFAULT_OPTIONS = dict(heartbeat_interval=2, heartbeat_timeout=15, close_timeout=10, polling_duration=2)
# The liveness test: heartbeats every second and timeouts six times that, so a
# session outlives the timeouts only if heartbeats flow, and a stall of 2 s on the
# shared machine does not end it.
SHORT_OPTIONS = dict(heartbeat_interval=1, heartbeat_timeout=6, close_timeout=6, polling_duration=1)

UNICODE = "héllo wörld 中文 😀 \u2028 \u2029 \"quoted\" \\ </script> \n\t end"
ASTRAL = "😀🎉𝄞"


@pytest.fixture(params=TRANSPORTS)
def transport(request) -> str:
    return request.param


@pytest.fixture(params=["hub", "thread"])
def websocket_mode(request) -> str:
    """Both ways of serving connections run the whole suite: the I/O hub (one
    selector thread) and a thread per connection (simple-websocket)."""
    return request.param


@pytest.fixture
def server(live_server, websocket_mode):
    return live_server("sio_run", websocket_mode=websocket_mode, **DEFAULT_OPTIONS)


@pytest.fixture
def open_page(new_page):
    def factory(server) -> SioPage:
        return SioPage(new_page(server), server)

    return factory


def start(page: SioPage, transport: str, key: str, path: str) -> None:
    """Start connecting ``key`` on ``path`` with only ``transport`` allowed."""
    if transport == "htmlfile":
        page.js("() => T.installHtmlfileShim()")
    page.connect(key, path, [transport])


def connect(page: SioPage, transport: str, key: str = "g", path: str = "/") -> str:
    """Connect ``key`` on ``path`` with the forced transport; return the session id."""
    start(page, transport, key, path)
    sid = page.wait_connected(key)
    assert page.transport(key) == transport
    assert sid
    return sid


def disconnects(events, namespace):
    return [e for e in events if e["event"] == "disconnect" and e["namespace"] == namespace]


# ---------------------------------------------------------------------------
# connect, acks, payloads
# ---------------------------------------------------------------------------


def test_connect_records_server_connect(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    events = server.wait_events(
        lambda ev: any(e["event"] == "connect" for e in ev), sid=sid, what="the connect handler"
    )
    connects = [e for e in events if e["event"] == "connect"]
    assert len(connects) == 1
    assert connects[0]["namespace"] in ("/", "")
    # The first packet the client decoded is the server's "1::".
    assert page.wire_recv()[0] == "1::"


def test_ack_with_several_args(server, open_page, transport):
    page = open_page(server)
    connect(page, transport)
    assert page.emit_ack("g", "ack_many") == ["woot", 2, {"three": [3, "drei"]}, None, True, "😀"]


def test_return_value_ack_and_injected_ack(server, open_page, transport):
    page = open_page(server)
    connect(page, transport)
    args = [1, "two", {"three": [3.5, None, False]}, ["x", "y"]]
    # echo answers with its return value (a tuple: several args) ...
    assert page.emit_ack("g", "echo", *args) == args
    # ... echo_kw through the injected `ack` keyword.
    assert page.emit_ack("g", "echo_kw", *args) == args
    # No args: the ack has none either.
    assert page.emit_ack("g", "echo") == []
    # The client sent data acks ("+") for both.
    sent = page.wire_sent()
    assert any(p.startswith("5:1+::") and '"echo"' in p for p in sent), sent


def test_unicode_round_trip(server, open_page, transport):
    page = open_page(server)
    connect(page, transport)
    assert page.emit_ack("g", "echo", UNICODE, ASTRAL) == [UNICODE, ASTRAL]
    assert page.emit_ack("g", "echo_kw", {"k\u2028": ASTRAL}) == [{"k\u2028": ASTRAL}]


def test_astral_characters_in_batched_packets(server, open_page, transport):
    """Several packets in one answer: on polling they are U+FFFD framed, and the
    frame lengths must count UTF-16 units or the browser cuts the packets apart."""
    page = open_page(server)
    connect(page, transport)
    texts = [ASTRAL * 3, "a😀b", UNICODE, "plain", "😀"]
    assert page.emit_ack("g", "emit_texts", texts) == [len(texts)]
    events = page.wait_event("g", "text", count=len(texts))
    assert [e["args"] for e in events] == [[t] for t in texts]


def test_100kb_string(server, open_page, transport):
    page = open_page(server)
    connect(page, transport)
    big = ("0123456789abcdef" * 6400)[:100_000]
    assert len(big) == 100_000
    assert page.emit_ack("g", "echo", big) == [big]
    big_unicode = ("ö😀" * 34_000)[:100_000]
    assert page.emit_ack("g", "echo_kw", big_unicode) == [big_unicode]


def test_send_message_with_automatic_ack(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    page.js("([k, t, s]) => T.send(k, t, s)", "g", "plain message ✓", "m1")
    page.page.wait_for_function("() => T.acks.m1 !== undefined", polling=50)
    # socket.send(msg, fn) asks for an automatic ack: the server answers "6:::<id>"
    # itself, with no args.
    assert page.acks()["m1"] == []
    assert any(p.startswith("3:1::") for p in page.wire_sent())
    server.wait_events(
        lambda ev: any(e["event"] == "message" and e["data"] == "plain message ✓" for e in ev),
        sid=sid,
        what="the message handler",
    )


def test_server_emit_with_callback_answered_by_client(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    page.answer("g", "question", "yes", 42, {"emoji": "😀"})
    assert page.emit_ack("g", "ask_client", "ready?") == ["asked"]
    questions = page.wait_event("g", "question")
    assert questions[0]["args"][0] == "ready?"
    assert questions[0]["args"][-1] == "<ack fn>"  # the server asked for a data ack
    answered = page.wait_event("g", "client_answered")
    assert answered[0]["args"] == [["yes", 42, {"emoji": "😀"}]]
    events = server.wait_events(
        lambda ev: any(e["event"] == "client_answer" for e in ev), sid=sid, what="the callback"
    )
    assert [e["answer"] for e in events if e["event"] == "client_answer"] == [["yes", 42, {"emoji": "😀"}]]


def test_server_emit_from_outside_a_handler(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    server.server_emit("pushed", "from", "http", to=sid)
    assert page.wait_event("g", "pushed")[0]["args"] == ["from", "http"]


# ---------------------------------------------------------------------------
# rooms and broadcast between pages
# ---------------------------------------------------------------------------


def _rooms_and_broadcast(server, open_page, transport):
    a, b, c = open_page(server), open_page(server), open_page(server)
    sid_a = connect(a, transport)
    sid_b = connect(b, transport)
    connect(c, transport)

    assert "lobby" in a.emit_ack("g", "join", "lobby")[0]
    rooms_b = b.emit_ack("g", "join", "lobby")[0]
    assert "lobby" in rooms_b and sid_b in rooms_b and sid_a not in rooms_b

    # include_self=False: b gets it, a does not, c (not in the room) does not.
    assert a.emit_ack("g", "to_room", "lobby", {"n": 1}, False) == ["sent"]
    assert b.wait_event("g", "room_msg")[0]["args"] == [{"n": 1}]
    # Barriers: an ack queued after the room emit proves nothing else is on its way.
    a.emit_ack("g", "echo", "barrier")
    c.emit_ack("g", "echo", "barrier")
    assert a.count("g", "room_msg") == 0
    assert c.count("g", "room_msg") == 0

    # include_self=True: both members.
    assert a.emit_ack("g", "to_room", "lobby", {"n": 2}, True) == ["sent"]
    assert a.wait_event("g", "room_msg")[0]["args"] == [{"n": 2}]
    assert b.wait_event("g", "room_msg", count=2)[1]["args"] == [{"n": 2}]

    # Leaving: b no longer receives room emits.
    assert "lobby" not in b.emit_ack("g", "leave", "lobby")[0]
    assert a.emit_ack("g", "to_room", "lobby", {"n": 3}, True) == ["sent"]
    a.wait_event("g", "room_msg", count=2)
    b.emit_ack("g", "echo", "barrier")
    assert b.count("g", "room_msg") == 2

    # Broadcast reaches everyone, the sender too unless include_self=False.
    assert b.emit_ack("g", "broadcast", "hello all", True) == ["sent"]
    for page in (a, b, c):
        assert page.wait_event("g", "broadcast_msg")[0]["args"] == ["hello all"]
    assert b.emit_ack("g", "broadcast", "not me", False) == ["sent"]
    for page in (a, c):
        assert page.wait_event("g", "broadcast_msg", count=2)[1]["args"] == ["not me"]
    b.emit_ack("g", "echo", "barrier")
    assert b.count("g", "broadcast_msg") == 1


def test_rooms_and_broadcast(server, open_page, transport):
    _rooms_and_broadcast(server, open_page, transport)


# ---------------------------------------------------------------------------
# namespaces
# ---------------------------------------------------------------------------


def test_namespace_connect_query_in_connect_packet(server, open_page, transport):
    """A connect packet carrying a query (``1::/private:?token=ok``) reaches the
    connect handler's ``query``; the client gets the ``1::/private`` echo."""
    page = open_page(server)
    sid = connect(page, transport)
    page.of_with_query("p", "g", "/private", "?token=ok")
    page.wait_event("p", "connect")
    assert "1::/private:?token=ok" in page.wire_sent()
    assert "1::/private" in page.wire_recv()
    assert page.emit_ack("p", "whoami") == [sid, "/private"]
    events = server.wait_events(
        lambda ev: any(e["event"] == "connect" and e["namespace"] == "/private" for e in ev),
        sid=sid,
        what="the /private connect handler",
    )
    private = [e for e in events if e["event"] == "connect" and e["namespace"] == "/private"]
    assert len(private) == 1
    assert private[0]["allowed"] is True
    assert private[0]["query"] == {"token": ["ok"]}


def test_namespace_query_through_io_connect(server, open_page, transport):
    """``io.connect('/private?token=ok')``, the way a browser app writes it.

    socket.io-client 0.9.16 puts that query on the handshake and transport URLs and
    sends a bare ``1::/private`` (PROTOCOL.md §3.4). Node's namespace authorization
    sees the handshake query, so this connect is accepted there; the connect
    handler's ``query`` must see ``token=ok`` for the browser to be able to
    authenticate a namespace at all.
    """
    page = open_page(server)
    start(page, transport, "p", "/private?token=ok")
    outcome = page.wait_any("p", ["connect", "connect_failed", "error"])
    sent = page.wire_sent()
    assert "1::/private" in sent, sent
    assert not any(p.startswith("1::/private:") or p.startswith("1::/private?") for p in sent), sent
    sid = page.sid("p")
    events = server.wait_events(
        lambda ev: any(e["event"] == "connect" and e["namespace"] == "/private" for e in ev),
        sid=sid,
        what="the /private connect handler",
    )
    private = [e for e in events if e["event"] == "connect" and e["namespace"] == "/private"]
    # The transport request carried the query ...
    assert private[0]["args"].get("token") == ["ok"], private
    # ... and the connect handler saw it.
    assert private[0]["query"].get("token") == ["ok"], private
    assert outcome == "connect"
    assert page.emit_ack("p", "whoami") == [sid, "/private"]


@pytest.mark.parametrize("how", ["bad_token", "no_query"])
def test_namespace_refused(server, open_page, transport, how):
    page = open_page(server)
    sid = connect(page, transport)
    if how == "bad_token":
        page.of_with_query("p", "g", "/private", "?token=bad")
    else:
        page.of("p", "g", "/private")
    outcome = page.wait_any("p", ["connect_failed", "error", "connect"])
    assert outcome == "connect_failed", page.events("p")
    assert page.events("p", "connect_failed")[0]["args"] == ["unauthorized"]
    assert "7::/private:2" in page.wire_recv()

    # Handlers of the refused namespace never run: no ack comes back for it, while
    # the global namespace (same session, handled in order) still answers.
    page.emit_record_ack("p", "echo", "should not run", slot="refused_echo")
    assert page.emit_ack("g", "echo", "after refusal") == ["after refusal"]
    assert "refused_echo" not in page.acks()
    assert page.connected("g")

    # After the whole session ends, no /private disconnect handler ran either.
    page.disconnect("g")
    events = server.wait_events(
        lambda ev: disconnects(ev, "/") or disconnects(ev, ""), sid=sid, what="the global disconnect"
    )
    assert disconnects(events, "/private") == []
    connects = [e for e in events if e["event"] == "connect" and e["namespace"] == "/private"]
    assert [e["allowed"] for e in connects] == [False]


# ---------------------------------------------------------------------------
# disconnects
# ---------------------------------------------------------------------------


def _session_gone(server, sid):
    """True once an xhr GET on ``sid`` says the session is unknown."""
    import requests

    response = requests.get(f"{server.url}/socket.io/1/xhr-polling/{sid}", timeout=30)
    return response.text == "7:::1+0"


def test_client_disconnect_runs_each_disconnect_handler_once(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    page.of_with_query("p", "g", "/private", "?token=ok")
    page.wait_event("p", "connect")
    page.disconnect("g")
    assert page.wait_event("g", "disconnect")[0]["args"] == ["booted"]
    server.wait_events(
        lambda ev: disconnects(ev, "/private") and (disconnects(ev, "/") or disconnects(ev, "")),
        sid=sid,
        what="disconnect on both namespaces",
    )
    from tests.conftest import wait_until

    wait_until(lambda: _session_gone(server, sid), message="the session to be gone")
    events = server.events(sid)
    assert len(disconnects(events, "/private")) == 1, events
    assert len(disconnects(events, "/")) + len(disconnects(events, "")) == 1, events


def test_client_leaves_a_namespace(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    page.of_with_query("p", "g", "/private", "?token=ok")
    page.wait_event("p", "connect")
    page.disconnect("p")  # sends 0::/private
    server.wait_events(lambda ev: disconnects(ev, "/private"), sid=sid, what="the /private disconnect")
    assert "0::/private" in page.wire_sent()
    # The global namespace is still connected.
    assert page.emit_ack("g", "echo", "still here") == ["still here"]
    assert disconnects(server.events(sid), "/") == [] and disconnects(server.events(sid), "") == []


def test_server_disconnect(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    page.of_with_query("p", "g", "/private", "?token=ok")
    page.wait_event("p", "connect")
    page.emit("g", "server_disconnect")
    assert page.wait_event("g", "disconnect")[0]["args"] == ["booted"]
    # "0::" reaches the client on every transport: if no poll was open at that
    # moment, the next poll collects it (a "7:::1+0" would make it reconnect)
    assert "0::" in page.wire_recv()
    assert "7:::1+0" not in page.wire_recv()
    server.wait_events(
        lambda ev: disconnects(ev, "/private") and (disconnects(ev, "/") or disconnects(ev, "")),
        sid=sid,
        what="disconnect on both namespaces",
    )
    from tests.conftest import wait_until

    wait_until(lambda: _session_gone(server, sid), message="the session to be gone")
    events = server.events(sid)
    assert len(disconnects(events, "/private")) == 1, events
    assert len(disconnects(events, "/")) + len(disconnects(events, "")) == 1, events


def test_server_disconnects_a_namespace_only(server, open_page, transport):
    page = open_page(server)
    sid = connect(page, transport)
    page.of_with_query("p", "g", "/private", "?token=ok")
    page.wait_event("p", "connect")
    page.emit("p", "server_disconnect")
    page.wait_event("p", "disconnect")
    assert "0::/private" in page.wire_recv()
    server.wait_events(lambda ev: disconnects(ev, "/private"), sid=sid, what="the /private disconnect")
    assert page.emit_ack("g", "echo", "global lives") == ["global lives"]
    assert page.count("g", "disconnect") == 0
    assert len(disconnects(server.events(sid), "/private")) == 1


# ---------------------------------------------------------------------------
# liveness
# ---------------------------------------------------------------------------


def test_survives_longer_than_the_heartbeat_timeout(live_server, open_page, transport,
                                                    websocket_mode):
    server = live_server("sio_run", websocket_mode=websocket_mode, **SHORT_OPTIONS)
    page = open_page(server)
    sid = connect(page, transport)
    assert page.emit_ack("g", "echo", "before") == ["before"]
    # 7.5 heartbeat intervals, longer than heartbeat_timeout and close_timeout:
    # without heartbeats (or answered polls) either side would end the session
    wait_for_ms(page.page, 7500)
    assert page.count("g", "disconnect") == 0, page.names("g")
    assert page.connected("g")
    assert page.sid("g") == sid
    assert page.emit_ack("g", "echo", "after") == ["after"]
    if transport in PERSISTENT:
        # Persistent transport: the server sent heartbeats and the client answered.
        assert page.wire_recv().count("2::") >= 3, page.wire_recv()
        assert page.wire_sent().count("2::") >= 3, page.wire_sent()
    else:
        # Polling: each poll was answered within polling_duration (noops or data).
        assert page.wire_recv().count("8::") >= 3, page.wire_recv()
    events = server.events(sid)
    assert disconnects(events, "/") == [] and disconnects(events, "") == []


# ---------------------------------------------------------------------------
# other ways to run the server
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["sio_run", "flask", pytest.param("gunicorn", marks=pytest.mark.gunicorn)]
)
def test_smoke_on_each_server_kind(live_server, open_page, transport, kind, websocket_mode):
    server = live_server(kind, websocket_mode=websocket_mode, **DEFAULT_OPTIONS)
    page = open_page(server)
    sid = connect(page, transport)
    # (U+2028 and friends are covered by test_unicode_round_trip.)
    assert page.emit_ack("g", "echo", "héllo 中文 😀", 1) == ["héllo 中文 😀", 1]
    assert page.emit_ack("g", "ack_many")[-1] == "😀"
    page.answer("g", "question", "gunicorn?", kind)
    page.emit("g", "ask_client", "which server?")
    assert page.wait_event("g", "client_answered")[0]["args"] == [["gunicorn?", kind]]
    page.emit("g", "server_disconnect")
    page.wait_event("g", "disconnect")
    server.wait_events(lambda ev: disconnects(ev, "/") or disconnects(ev, ""), sid=sid, what="disconnect")


@pytest.mark.gunicorn
def test_rooms_and_broadcast_on_gunicorn(live_server, open_page, transport, websocket_mode):
    server = live_server("gunicorn", websocket_mode=websocket_mode, **DEFAULT_OPTIONS)
    _rooms_and_broadcast(server, open_page, transport)
