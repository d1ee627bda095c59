"""The example chat (``example_app``) served the documented ways (issue 2, item 7):
``gunicorn -k gthread --threads 50 -w 1 example_app:app``, ``flask --app example_app
run`` and ``sio.run``, driven over the raw wire by two clients, one on websocket and
one on xhr-polling, so that messages cross transports.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import WsClient, XhrClient, event_packet

pytestmark = pytest.mark.timeout(180)

CHAT = "/chat"


class WsChat(WsClient):
    """The chat's websocket client: ``until`` reads frames like XhrChat polls."""

    until = WsClient.recv_until


class XhrChat:
    def __init__(self, server):
        self.client = XhrClient.open(server)
        self.sid = self.client.sid
        self.received = self.client.received

    def send(self, packet: str) -> None:
        response = self.client.post(packet)
        assert (response.status_code, response.text) == (200, "1"), response.text

    def until(self, predicate, timeout: float = 30.0) -> list[str]:
        return self.client.collect(predicate, timeout=timeout)

    def close(self) -> None:
        self.client.get(disconnect="1")


def chat_events(received: list[str], name: str) -> list[list]:
    found = []
    for packet in received:
        if packet.startswith(f"5::{CHAT}:"):
            body = json.loads(packet.split(":", 3)[3])
            if body["name"] == name:
                found.append(body.get("args", []))
    return found


def join_chat(client, nick: str) -> None:
    client.send(f"1::{CHAT}")
    client.until(lambda got: f"1::{CHAT}" in got)
    client.send(event_packet("nickname", nick, ack_id=1, endpoint=CHAT))
    client.until(lambda got: f"6::{CHAT}:1+[true]" in got)


@pytest.mark.parametrize(
    "kind", [pytest.param("gunicorn", marks=pytest.mark.gunicorn), "flask", "sio_run"]
)
def test_chat_across_transports(live_server, kind):
    server = live_server(kind, app="example_app")
    alice, bob = WsChat(server), XhrChat(server)
    try:
        alice.until(lambda got: "1::" in got)
        join_chat(alice, "alice")
        join_chat(bob, "bob")
        # Alice hears that bob arrived.
        alice.until(lambda got: ["lobby", ["alice", "bob"]] in chat_events(got, "nicknames"))
        # A nickname that is taken is refused through the ack.
        bob.send(event_packet("nickname", "alice", ack_id=2, endpoint=CHAT))
        bob.until(lambda got: f"6::{CHAT}:2+[false]" in got)
        # A message reaches the whole room, the sender included.
        bob.send(event_packet("user message", "hi 😀 from xhr", ack_id=3, endpoint=CHAT))
        alice.until(lambda got: ["bob", "hi 😀 from xhr"] in chat_events(got, "user message"))
        bob.until(lambda got: ["bob", "hi 😀 from xhr"] in chat_events(got, "user message"))
        alice.send(event_packet("user message", "hello from websocket", endpoint=CHAT))
        bob.until(lambda got: ["alice", "hello from websocket"] in chat_events(got, "user message"))
        # Typing goes to the rest of the room only.
        alice.send(event_packet("typing", True, endpoint=CHAT))
        bob.until(lambda got: ["alice", True] in chat_events(got, "typing"))
        # Alice leaving is announced to bob.
        alice.close()
        bob.until(lambda got: ["alice left"] in chat_events(got, "announcement"))
    finally:
        alice.close()
        bob.close()


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling", "jsonp-polling"])
def test_the_chat_page_in_a_browser_says_when_an_action_is_refused(live_server, browser,
                                                                    transport):
    """The page itself, in Chromium: a message is shown to its sender, and a
    message the server refuses (longer than the page's limit, as a client
    that bypasses it sends) or a bad room name gets a visible error instead
    of vanishing. (``goto`` waits for the page's load event, which a
    jsonp-polling client started before it would hold back.)"""
    server = live_server("sio_run", app="example_app")
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        # a new user checks the console first: nothing there (a missing
        # favicon's 404 was the one line)
        console_errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))
        page.on("pageerror", lambda exc: console_errors.append(str(exc)))
        page.goto(f"{server.url}/?transports={transport}")
        page.wait_for_selector("#status:has-text('connected (')")
        assert transport in page.inner_text("#status")
        # a nickname of its own: the server is shared with the other
        # transports' runs, whose polling sessions outlive their pages by
        # close_timeout and keep their nicknames until then
        page.fill("#nick", f"alice {transport}")
        page.press("#nick", "Enter")
        page.wait_for_selector("#chat-panel", state="visible")
        page.fill("#message", "hello 😀")
        page.press("#message", "Enter")
        page.wait_for_selector("#messages li:has-text('hello 😀')")
        page.evaluate("document.getElementById('message').removeAttribute('maxlength')")
        page.fill("#message", "x" * 2001)
        page.press("#message", "Enter")
        page.wait_for_selector("#messages li.error:has-text('was not sent')")
        assert page.input_value("#message") == "x" * 2001  # given back to edit
        page.fill("#room", "bad/room!")
        page.press("#room", "Enter")
        page.wait_for_selector("#messages li.error:has-text('Cannot join')")
        assert "connected" in page.inner_text("#status")
        assert console_errors == []
    finally:
        context.close()


def test_the_example_command_line():
    """``python -m example_app`` (what ``make run`` starts): ``--help`` lists
    its options, and a bad ``PORT`` is a clear error, not a traceback."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    command = [sys.executable, "-m", "example_app"]
    shown = subprocess.run(command + ["--help"], capture_output=True, text=True,
                           cwd=REPO_ROOT, timeout=60, check=False)
    assert shown.returncode == 0 and "--port" in shown.stdout, shown
    refused = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT,
                             timeout=60, check=False, env={**os.environ, "PORT": "abc"})
    assert refused.returncode == 2, refused
    assert "PORT must be a number" in refused.stderr and "Traceback" not in refused.stderr
