"""End to end: the classic gevent-socketio chat, ported with ``flask_sio09.compat``
(``example_app/classic.py``, page ``/classic``), in headless Chromium with
socket.io-client 0.9.16.

Two users, each forcing a transport; every run puts them on different transports
so that the namespace's broadcasts and room emits cross from one to the other.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

# (alice's transport, bob's transport)
PAIRS = [("websocket", "xhr-polling"), ("xhr-polling", "websocket")]

LINES_JS = """() => Array.from(document.querySelectorAll('#lines li')).map(li => [
    li.querySelector('.nick') ? li.querySelector('.nick').textContent : null,
    li.querySelector('.text').textContent])"""


@pytest.fixture
def server(live_server):
    return live_server("sio_run", app="example_app")


@pytest.fixture
def open_chat(browser, vendor_client):
    """Factory: ``open_chat(server, transport)`` opens /classic in a fresh context."""
    contexts = []

    def factory(server, transport: str):
        context = browser.new_context()
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(f"{server.url}/classic?transports={transport}")
        page.wait_for_function(
            "() => document.getElementById('status').className.indexOf('connected') >= 0",
            polling=50,
        )
        assert page.evaluate("() => classicSocket.socket.transport.name") == transport
        return page

    yield factory
    for context in contexts:
        context.close()


def lines(page) -> list[list]:
    return page.evaluate(LINES_JS)


def wait_line(page, nick, text) -> None:
    try:
        page.wait_for_function(
            f"([n, t]) => ({LINES_JS})().some(l => l[0] === n && l[1] === t)",
            arg=[nick, text],
            polling=50,
        )
    except Exception as exc:
        raise AssertionError(f"no line {[nick, text]}; the page shows {lines(page)}") from exc


def online(page) -> list[str]:
    return page.eval_on_selector_all("#nicknames b.online", "els => els.map(e => e.textContent)")


def wait_online(page, names: list[str]) -> None:
    try:
        page.wait_for_function(
            "names => JSON.stringify(Array.from(document.querySelectorAll('#nicknames b.online'))"
            ".map(e => e.textContent)) === JSON.stringify(names)",
            arg=names,
            polling=50,
        )
    except Exception as exc:
        raise AssertionError(f"online list is {online(page)}, expected {names}") from exc


def choose_nick(page, nick: str) -> None:
    page.fill("#nick", nick)
    page.click("#set-nickname button[type=submit]")


@pytest.mark.parametrize("alice_transport,bob_transport", PAIRS)
def test_classic_chat(server, open_chat, alice_transport, bob_transport):
    alice = open_chat(server, alice_transport)
    bob = open_chat(server, bob_transport)

    # The ACL keeps everything but the nickname closed: an early message is refused.
    alice.evaluate("() => classicSocket.emit('user message', 'too early')")
    wait_line(alice, "System",
              'method_access_denied: You do not have access to method "on_user_message"')

    choose_nick(alice, "alice")
    alice.wait_for_selector("#chat:not([hidden])")
    wait_online(alice, ["alice"])
    wait_line(alice, None, "alice has connected")

    # A nickname in use is refused through the ack (appended to on_nickname's args).
    choose_nick(bob, "alice")
    bob.wait_for_selector("#nickname-err:not([hidden])")
    assert bob.is_hidden("#chat")
    choose_nick(bob, "bob")
    bob.wait_for_selector("#chat:not([hidden])")
    wait_online(bob, ["alice", "bob"])
    wait_online(alice, ["alice", "bob"])
    wait_line(alice, None, "bob has connected")

    # A message goes to the others in the room (emit_to_room); the sender shows its own.
    text = "hello 😀 \u2028 </script> \"quoted\""
    alice.fill("#message", text)
    alice.click("#send-message button[type=submit]")
    wait_line(bob, "alice", text)
    wait_line(alice, "me", text)
    bob.fill("#message", "hi alice")
    bob.press("#message", "Enter")
    wait_line(alice, "bob", "hi alice")
    assert ["bob", "hi alice"] not in lines(bob)  # not echoed to the sender

    # A plain message reaches recv_message, which answers with a message.
    bob.click("#ping")
    wait_line(bob, "System", "pong: ping")

    # Bob leaves the namespace: recv_disconnect updates everyone else.
    bob.evaluate("() => classicSocket.disconnect()")
    wait_line(alice, None, "bob has disconnected")
    wait_online(alice, ["alice"])


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "jsonp-polling"])
@pytest.mark.parametrize("path", ["/", "/classic"])
def test_the_chat_pages_connect_on_the_transport_the_url_forces(server, browser,
                                                                vendor_client, path,
                                                                transport):
    """``?transports=`` (docs/quickstart.md) puts the page on that transport,
    whatever its place in the client's default list."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        # (not until "load": a JSONP poll is a script tag, which the load event
        # may wait for as long as the poll waits for packets)
        page.goto(f"{server.url}{path}?transports={transport}", wait_until="domcontentloaded")
        page.wait_for_function(  # (both pages say so in #status)
            "() => document.getElementById('status').textContent.indexOf('connected (') === 0",
            polling=50,
        )
        assert page.evaluate("() => io.sockets[Object.keys(io.sockets)[0]].transport.name") \
            == transport
    finally:
        context.close()
