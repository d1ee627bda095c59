"""What socket.io-client 0.9.16 does on its own, in headless Chromium, against a
live server: choosing a transport, reconnecting after the server restarts or
drops the connection, disconnecting on unload, and talking across origins.

Every client here is the vendored client running its own code; the test page
(``tests/apps/e2e_page.html``) only records what it emits.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests import conftest
from tests.conftest import wait_until
from tests.integration.helpers import SioPage

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

TRANSPORTS = ["websocket", "htmlfile", "xhr-polling", "jsonp-polling"]

# Short timers so that a lost connection is noticed within seconds by the
# client (close timer, heartbeat timer) and by the server.
QUICK = dict(heartbeat_interval=1, heartbeat_timeout=5, close_timeout=5, polling_duration=2)
# Long timers: anything that happens within a few seconds was not a timeout.
PATIENT = dict(heartbeat_interval=2, heartbeat_timeout=60, close_timeout=60, polling_duration=20)
# The client retries every 0.2 s, doubling up to 1 s, for as long as a test needs.
RECONNECT = {"reconnect": True, "reconnection delay": 200, "reconnection limit": 1000,
             "max reconnection attempts": 200}


@pytest.fixture
def open_page(new_page):
    def factory(server) -> SioPage:
        return SioPage(new_page(server), server)

    return factory


def start(page: SioPage, key: str, path: str, transports, **extra) -> None:
    """Start connecting; ``transports`` None leaves the client its own list."""
    if transports and "htmlfile" in transports:
        page.js("() => T.installHtmlfileShim()")
    page.connect(key, path, transports, **extra)


def global_events(events, kind):
    return [e for e in events if e["event"] == kind and e["namespace"] in ("", "/")]


def close_and_time_disconnect(server, page: SioPage, sid: str, timeout: float) -> float:
    """Close the page as a user would (``beforeunload`` runs) and return the
    seconds until the server ran the global ``disconnect`` handler, once."""
    started = time.monotonic()
    page.page.close(run_before_unload=True)
    server.wait_events(lambda ev: global_events(ev, "disconnect"), sid=sid, timeout=timeout,
                       what="the disconnect handler after the page closed")
    elapsed = time.monotonic() - started
    assert len(global_events(server.events(sid), "disconnect")) == 1
    return elapsed


def restart_on_same_port(server, monkeypatch) -> None:
    """Stop the server's process, then start a new one on the same port."""
    port = server.port
    server.stop()
    monkeypatch.setattr(conftest, "free_port", lambda: port)
    server.start(attempts=1)


# ---------------------------------------------------------------------------
# transport choice
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("server_transports, client_transports, shim, chosen", [
    # websocket disabled by the server: the client's own list falls through to
    # the first transport that works here (htmlfile needs ActiveXObject)
    (["htmlfile", "xhr-polling", "jsonp-polling"], None, False, "xhr-polling"),
    # ... and with the ActiveXObject shim, htmlfile is that transport
    (["htmlfile", "xhr-polling", "jsonp-polling"], None, True, "htmlfile"),
    (["jsonp-polling"], None, False, "jsonp-polling"),
    # a client that prefers websocket gets its next choice
    (["xhr-polling", "jsonp-polling"], ["websocket", "jsonp-polling"], False, "jsonp-polling"),
])
def test_transport_fallback_when_the_server_disables_websocket(
        live_server, open_page, server_transports, client_transports, shim, chosen):
    server = live_server("sio_run", transports=server_transports, **QUICK)
    page = open_page(server)
    if shim:
        page.js("() => T.installHtmlfileShim()")
    page.connect("g", "/", client_transports)
    sid = page.wait_connected("g")
    assert page.transport("g") == chosen
    assert page.emit_ack("g", "echo", "via " + chosen) == ["via " + chosen]
    server.wait_events(lambda ev: global_events(ev, "connect"), sid=sid, what="the connect")
    assert f"/socket.io/1/websocket/{sid}" not in server.log_path.read_text()


def test_the_client_takes_the_first_transport_it_supports(live_server, open_page):
    """With every transport offered, Chromium's client picks websocket."""
    server = live_server("sio_run", **QUICK)
    page = open_page(server)
    page.connect("g", "/", None)
    page.wait_connected("g")
    assert page.transport("g") == "websocket"


# ---------------------------------------------------------------------------
# reconnection
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnects_after_the_server_restarts(live_server, open_page, transport, monkeypatch):
    server = live_server("sio_run", fresh=True, **QUICK)
    page = open_page(server)
    start(page, "p", "/private?token=ok", [transport], **RECONNECT)
    page.wait_event("p", "connect")
    old_sid = page.sid("p")
    assert page.emit_ack("p", "whoami") == [old_sid, "/private"]

    restart_on_same_port(server, monkeypatch)

    page.wait_event("p", "disconnect", timeout_ms=60_000)
    page.wait_event("p", "reconnect", timeout_ms=60_000)
    new_sid = page.sid("p")
    assert new_sid != old_sid
    assert page.transport("p") == transport
    # the namespace was joined again on the new session, and works
    assert page.emit_ack("p", "whoami", timeout_ms=30_000) == [new_sid, "/private"]
    # the restarted process saw a brand-new connect, on both namespaces
    events = server.wait_events(
        lambda ev: [e for e in ev if e["event"] == "connect" and e["namespace"] == "/private"],
        sid=new_sid, what="the connect handlers after the restart")
    assert global_events(events, "connect")
    assert not server.events(old_sid)  # a new process knows nothing of the old session


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reconnects_after_the_server_drops_the_connection(live_server, open_page, transport):
    # thread mode: the test route shuts down the sockets that the WSGI server
    # handed to the request threads (the hub would hold duplicates of them)
    server = live_server("sio_run", websocket_mode="thread", **QUICK)
    page = open_page(server)
    start(page, "g", "/", [transport], **RECONNECT)
    old_sid = page.wait_connected("g")
    assert page.emit_ack("g", "echo", "before") == ["before"]

    def drop() -> bool:
        # A polling client may be between two requests, or its last connection
        # may already be closed: drop what is open until the client notices.
        requests.post(server.url + "/kill_connections", json={"sid": old_sid}, timeout=30)
        return page.count("g", "disconnect") > 0

    wait_until(drop, timeout=60, interval=0.5, message="the client to see the drop")
    page.wait_event("g", "reconnect", timeout_ms=60_000)
    new_sid = page.sid("g")
    assert new_sid != old_sid
    assert page.emit_ack("g", "echo", "after") == ["after"]
    server.server_emit("pushed", "to the new session", to=new_sid)
    assert page.wait_event("g", "pushed")[0]["args"] == ["to the new session"]
    # the server ended the dropped session, once
    server.wait_events(lambda ev: global_events(ev, "disconnect"), sid=old_sid,
                       what="the dropped session's disconnect")
    assert len(global_events(server.events(old_sid), "disconnect")) == 1


# ---------------------------------------------------------------------------
# "sync disconnect on unload"
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_sync_disconnect_on_unload(live_server, open_page, transport):
    """The client's beforeunload handler sends its synchronous
    ``GET /socket.io/1//<sid>/?disconnect=1`` and the server runs ``disconnect``
    at once, not after close_timeout (60 s here).

    The event is dispatched by the test: Chromium (since version 80) refuses a
    synchronous XHR while a page is really being dismissed, so on a real close
    the client's request never leaves the browser (see the next tests).
    """
    server = live_server("sio_run", **PATIENT)
    page = open_page(server)
    start(page, "g", "/", [transport], **{"sync disconnect on unload": True})
    sid = page.wait_connected("g")
    page.js("() => window.dispatchEvent(new Event('beforeunload'))")
    assert page.wait_event("g", "disconnect")[0]["args"] == ["booted"]
    # the wait ends long before close_timeout (60 s) could end the session
    server.wait_events(lambda ev: global_events(ev, "disconnect"), sid=sid, timeout=30,
                       what="the disconnect handler")
    assert f"/socket.io/1//{sid}/?disconnect=1" in server.log_path.read_text()
    page.page.close(run_before_unload=True)
    assert len(global_events(server.events(sid), "disconnect")) == 1


@pytest.mark.parametrize("transport", ["websocket", "htmlfile"])
def test_closing_the_page_ends_a_persistent_transport_promptly(live_server, open_page, transport):
    """A closed page closes its WebSocket or htmlfile stream, which ends the
    session at once (websocket) or at the next heartbeat write (htmlfile,
    every 2 s here), well before close_timeout (60 s)."""
    server = live_server("sio_run", **PATIENT)
    page = open_page(server)
    start(page, "g", "/", [transport], **{"sync disconnect on unload": True})
    sid = page.wait_connected("g")
    # the wait's deadline is the check: it ends long before close_timeout (60 s)
    close_and_time_disconnect(server, page, sid, timeout=30)


@pytest.mark.parametrize("transport", ["xhr-polling", "jsonp-polling"])
def test_closing_a_polling_page_ends_the_session_at_close_timeout(live_server, open_page,
                                                                  transport):
    """What happens in Chromium when a polling page is really closed: the
    client's synchronous disconnect request is refused by the browser, so the
    server learns of it only when close_timeout (5 s) runs out."""
    server = live_server("sio_run", **QUICK)
    page = open_page(server)
    start(page, "g", "/", [transport], **{"sync disconnect on unload": True})
    sid = page.wait_connected("g")
    elapsed = close_and_time_disconnect(server, page, sid, timeout=40)
    assert elapsed >= QUICK["close_timeout"] - 1, f"ended after {elapsed:.1f} s"
    assert f"/socket.io/1//{sid}/?disconnect=1" not in server.log_path.read_text()


# ---------------------------------------------------------------------------
# cross-origin: the page at http://127.0.0.1:<port>, the server as localhost
# ---------------------------------------------------------------------------


def other_origin(server) -> str:
    return f"http://localhost:{server.port}"


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "jsonp-polling"])
def test_cross_origin_with_cors(live_server, open_page, transport):
    server = live_server("sio_run", cors_allowed_origins=["127.0.0.1:*"], **QUICK)
    page = open_page(server)
    page.connect("g", "/", [transport], origin=other_origin(server))
    sid = page.wait_connected("g")
    assert page.js("() => T.socks.g.socket.isXDomain()") is True
    assert page.transport("g") == transport
    assert page.emit_ack("g", "echo", "across") == ["across"]
    server.server_emit("pushed", "back across", to=sid)
    assert page.wait_event("g", "pushed")[0]["args"] == ["back across"]


def test_cross_origin_without_cors_uses_a_jsonp_handshake(live_server, open_page):
    """A browser without CORS (as old IE; simulated) handshakes with a
    ``<script>`` (``?jsonp=<n>``) and can only poll with jsonp-polling."""
    server = live_server("sio_run", cors_allowed_origins=["127.0.0.1:*"], **QUICK)
    page = open_page(server)
    page.js("() => T.disableCors()")
    page.connect("g", "/", ["xhr-polling", "jsonp-polling"], origin=other_origin(server))
    sid = page.wait_connected("g")
    assert page.js("() => T.socks.g.socket.isXDomain()") is True
    assert page.transport("g") == "jsonp-polling"  # xhr-polling cannot go cross-origin
    assert "/socket.io/1/?t=" in server.log_path.read_text()
    assert "&jsonp=" in server.log_path.read_text()
    assert page.emit_ack("g", "echo", "ö😀\n") == ["ö😀\n"]
    server.wait_events(lambda ev: global_events(ev, "connect"), sid=sid, what="the connect")


@pytest.mark.parametrize("cors", [True, False])
def test_cross_origin_refused(live_server, open_page, cors):
    server = live_server("sio_run", cors_allowed_origins=["http://example.com"], **QUICK)
    page = open_page(server)
    if not cors:
        page.js("() => T.disableCors()")
    page.connect("g", "/", None, origin=other_origin(server))
    page.wait_event("g", "error")
    if not cors:
        # the JSONP answer carries N's error text to the client
        assert page.events("g", "error")[0]["args"] == ["handshake bad origin"]
    assert not page.connected("g")
    assert [e for e in server.events() if e["event"] == "connect"] == []
