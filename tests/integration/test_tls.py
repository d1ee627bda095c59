"""Over TLS: the WSGI servers do the TLS themselves (``sio.run(ssl_context=...)``,
``flask run --cert``, gunicorn ``--certfile``), so the hub cannot take their
sockets and every connection is served in thread mode, whatever
``websocket_mode`` says. socket.io-client 0.9.16 in Node.js, trusting the run's
own CA, over wss:// and https:// long-polling.

No timing is asserted; every wait has a generous deadline.
"""

from __future__ import annotations

import os

import pytest
import requests

from tests.conftest import wait_until
from tests.integration.helpers import XhrClient
from tests.integration.test_node_client import node_client, run_client  # noqa: F401

pytestmark = pytest.mark.timeout(300)

#: what node_client.js reports of a whole run (see test_node_client.py)
WHOLE_RUN = {
    "connected": True, "ack": ["from node", 7], "room": {"n": 1},
    "answered": ["node says", "ready?"], "message": "a message for node",
    "sendAnswered": [], "errors": [],
}


def request_threads(server) -> int:
    """Werkzeug's threads that serve a request now (``Thread-N
    (process_request_thread)``, named ``Thread-N (proce`` by Linux)."""
    count = 0
    for task in os.listdir(f"/proc/{server.proc.pid}/task"):
        try:
            with open(f"/proc/{server.proc.pid}/task/{task}/comm") as f:
                count += "(proce" in f.read()
        except OSError:  # the thread ended meanwhile
            pass
    return count


def assert_quiet_log(server) -> None:
    """Nothing logged but the usual: no traceback, no error."""
    if server.kind != "gunicorn":
        # the request threads end after the disconnect handlers: then they have
        # said whatever they had to say
        wait_until(lambda: request_threads(server) == 0, timeout=30,
                   message="Werkzeug's request threads to end")
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Error on request" not in log, log[-3000:]
    assert requests.get(server.url + "/healthz", verify=server.verify, timeout=10).text == "ok"


@pytest.mark.parametrize("kind", ["sio_run", "flask", "gunicorn"])
def test_node_client_over_wss_and_a_quiet_log(live_server, node_client, tls_files, kind):
    """A whole run of the client, twice; the server logs no error. (Werkzeug
    logged an "Error on request" traceback for most WebSocket closes: its
    status line, written after the call, met a TLS session the client had
    closed.)"""
    server = live_server(kind, fresh=True, tls=tls_files)
    client = dict(node_client, env={**node_client["env"], "NODE_EXTRA_CA_CERTS": tls_files.ca})
    for run in range(1, 3):
        assert run_client(client, server, "websocket") == {**WHOLE_RUN, "transport": "websocket"}
        # a namespace's socket disconnected, then the program's exit: the
        # client closes the TLS session before the server's end of the call
        assert run_client(client, server, "websocket", "namespace") == {
            "seen": ["ack in private"]}
        server.wait_events(
            lambda events: sum(e["event"] == "disconnect" and e["namespace"] == ""
                               for e in events) == 2 * run,
            what=f"the disconnect handlers of run {run}")
    assert_quiet_log(server)


@pytest.mark.parametrize("kind", ["sio_run", "flask", "gunicorn"])
def test_xhr_polling_over_https(live_server, tls_files, kind):
    """Polls, an upload, an ack and a server-side emit over https (socket.io-client
    in Node picks websocket whatever it is asked: it follows the server's order)."""
    server = live_server(kind, fresh=True, tls=tls_files)
    client = XhrClient.open(server)
    assert client.call("echo", "over tls", {"é": "😀"}, ack_id=1) == ["over tls", {"é": "😀"}]
    server.server_emit("pushed", 5, to=client.sid)
    client.collect(lambda got: any(p.startswith('5:::{"name":"pushed"') for p in got))
    assert client.post("0::").status_code == 200
    server.wait_events(lambda events: any(e["event"] == "disconnect" for e in events),
                       sid=client.sid, what="the disconnect handler")
    assert_quiet_log(server)


def test_a_client_that_never_starts_tls_blocks_no_one_on_sio_run(live_server, tls_files):
    """Werkzeug accepts on one thread; with TLS set up on the listening socket,
    it shook hands inside accept(): one connection that sent nothing kept every
    other client from connecting, for as long as it stayed. ``sio.run`` has
    the handshake done in the request's own thread."""
    import socket

    server = live_server("sio_run", fresh=True, tls=tls_files)
    silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
    try:
        client = XhrClient.open(server)
        assert client.call("echo", "past the silent ones", ack_id=1) == ["past the silent ones"]
    finally:
        for sock in silent:
            sock.close()
    assert_quiet_log(server)
