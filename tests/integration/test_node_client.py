"""socket.io-client 0.9.16 as Node.js programs use it (its own ``ws`` 0.4 for
WebSocket), against the end-to-end app in both WebSocket modes.

Old Node services still speak 0.9 to their servers. Their client differs from
the browser's: its WebSocket library sends ``Origin: host:port`` without a
scheme, which the default same-origin check must take as the server's own.
The client runs as ``node tests/apps/node_client.js`` with
``vendor/sio-node/node_modules`` (``make vendor``).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO_ROOT, node_with

pytestmark = pytest.mark.timeout(300)

NODE_MODULES = REPO_ROOT / "vendor" / "sio-node" / "node_modules"
SCRIPT = REPO_ROOT / "tests" / "apps" / "node_client.js"


@pytest.fixture
def node_client() -> dict:
    return node_with(NODE_MODULES, "socket.io-client")


def run_client(node_client: dict, server, transport: str, *mode: str) -> dict:
    """Run node_client.js against ``server``; its JSON line, parsed."""
    run = subprocess.run([node_client["node"], str(SCRIPT), server.url, transport, *mode],
                         capture_output=True, text=True, timeout=120,
                         env=node_client["env"], check=False)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
@pytest.mark.parametrize("mode", ["hub", "thread"])
@pytest.mark.parametrize("kind", ["sio_run", "gunicorn"])
def test_node_client(live_server, node_client, kind, mode, transport):
    """Connect with the default origin rule, an emit with a data ack, a room
    message, a server's question answered through the client's callback."""
    server = live_server(kind, websocket_mode=mode)
    for _ in range(2):
        assert run_client(node_client, server, transport) == {
            "connected": True, "transport": transport, "ack": ["from node", 7],
            "room": {"n": 1}, "answered": ["node says", "ready?"],
            "message": "a message for node", "sendAnswered": [], "errors": [],
        }


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
@pytest.mark.parametrize("mode", ["hub", "thread"])
def test_disconnect_in_the_global_connect_handler(live_server, node_client, mode, transport):
    """``disconnect()`` in the global connect handler: the client is accepted,
    gets what the handler emitted, then is disconnected by the server ("booted",
    so it does not reconnect), as with Node's server."""
    server = live_server("gunicorn", websocket_mode=mode)
    assert run_client(node_client, server, transport, "boot") == {
        "seen": [f"connect over {transport}", "before_boot 1", "disconnect booted"]}


@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
def test_a_namespace_left_and_taken_again(live_server, node_client, transport):
    """socket.io-client 0.9.16 keeps a namespace it left: ``io.connect`` gives
    the same object back and sends no ``1::/ns``. Its events must still be
    answered (Node's server went on serving the namespace): the server joins
    the client again through the connect handler."""
    server = live_server("gunicorn", websocket_mode="hub")
    assert run_client(node_client, server, transport, "rejoin") == {
        "seen": [f"over {transport}", "ack before", "same object", "ack after"]}
