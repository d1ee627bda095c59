"""A server that stops ends its sessions so that their clients reconnect
elsewhere (stopping.py): gunicorn's graceful stop (TERM to the master, which
stops its worker), and ``sio.run`` told TERM or INT. Real processes, raw
clients; what the stopped process did is read from the e2e app's journal file
(``SIO09_TEST_JOURNAL``), which outlives it."""

from __future__ import annotations

import json
import os
import signal

import pytest
import requests

from tests.conftest import wait_until
from tests.integration.helpers import Background, XhrClient
from tests.integration.test_hostile import BASE, open_ws

pytestmark = pytest.mark.timeout(300)

MODES = ["hub", "thread"]
#: how long the stopped process may take to exit
EXIT_DEADLINE = 30


def journal_of(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def open_blocked_ws(server):
    """A WebSocket client whose handler never returns (its session's
    disconnect handler waits behind it, and with it the process's exit,
    up to its limit): its sid and connection."""
    from tests.integration.helpers import event_packet

    sid, ws = open_ws(server)
    ws.send_text(event_packet("wait_gate", "never", ack_id=1))
    wait_until(lambda: requests.get(f"{server.url}/gates/never", timeout=10).json()["waiting"],
               timeout=30, message="the handler blocked")
    return sid, ws


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kind,stop_signal", [("gunicorn", signal.SIGTERM),
                                              ("sio_run", signal.SIGTERM),
                                              ("sio_run", signal.SIGINT)],
                         ids=["gunicorn-TERM", "sio_run-TERM", "sio_run-INT"])
def test_a_stopping_server_ends_its_sessions_so_that_clients_come_back(
        live_server, tmp_path, kind, stop_signal, mode):
    journal = tmp_path / "journal.jsonl"
    options = {**BASE, "polling_duration": 15, "close_timeout": 30}
    options.pop("log_levels")
    server = live_server(kind, fresh=True, websocket_mode=mode, journal=str(journal), **options)
    ws_sid, ws = open_ws(server)
    xhr = XhrClient.open(server)
    # a poll that waits for packets when the server stops
    waiting = Background(lambda: xhr.get(timeout=60))
    wait_until(lambda: requests.get(f"{server.url}/attached", params={"sid": xhr.sid},
                                    timeout=10).json(),
               timeout=30, message="the poll waiting in the server")
    os.kill(server.proc.pid, stop_signal)

    # the WebSocket ends with "going away", and nothing said "0::" (a 0.9
    # client told "0::" would not reconnect)
    texts, code = ws.until_close()
    ws.close()
    assert code == 1001, (code, texts)
    assert "0::" not in texts
    # the waiting poll failed: socket.io-client 0.9 handshakes again at once
    try:
        answer = waiting.join(timeout=60)
        assert answer.status_code == 410 or (answer.status_code == 200 and "0::" not in answer.text), \
            (answer.status_code, answer.text)
    except requests.ConnectionError:
        raise AssertionError("the waiting poll got no answer")

    # both sessions' disconnect handlers ran before the process ended (under
    # gunicorn, before its master would kill the worker: --graceful-timeout 5)
    assert wait_until(lambda: server.proc.poll() is not None, timeout=EXIT_DEADLINE,
                      message="the server process to exit")
    gone = {e["sid"] for e in journal_of(journal) if e["event"] == "disconnect"}
    assert {ws_sid, xhr.sid} <= gone, (ws_sid, xhr.sid, journal_of(journal))
    assert "SIGKILL" not in server.log_tail(200)
    server.stop()


def test_a_second_term_while_sio_run_stops_is_ignored(live_server, tmp_path):
    """A supervisor or an operator that sends TERM again while the sessions
    end: the exit goes on as the first TERM began it, the disconnect
    handlers run, and no traceback (a SystemExit raised in the exit hook)."""
    journal = tmp_path / "journal.jsonl"
    options = {**BASE, "polling_duration": 15, "close_timeout": 30}
    options.pop("log_levels")
    server = live_server("sio_run", fresh=True, websocket_mode="hub", journal=str(journal),
                         **options)
    # a handler that never returns holds the exit (up to its limit), so the
    # second TERM surely comes while the sessions end
    blocked_sid, blocked = open_blocked_ws(server)
    ws_sid, ws = open_ws(server)
    os.kill(server.proc.pid, signal.SIGTERM)
    texts, code = ws.until_close()  # the exit has begun
    ws.close()
    assert code == 1001, (code, texts)
    os.kill(server.proc.pid, signal.SIGTERM)
    assert wait_until(lambda: server.proc.poll() is not None, timeout=EXIT_DEADLINE,
                      message="the server process to exit")
    blocked.close()
    assert server.proc.returncode == 0
    log = server.log_tail(200)
    assert "TERM while the server stops: ignored" in log, log
    assert "Traceback" not in log and "SystemExit" not in log, log
    gone = {e["sid"] for e in journal_of(journal) if e["event"] == "disconnect"}
    assert ws_sid in gone, journal_of(journal)
    server.stop()


def test_a_stopping_hub_takes_no_new_session_and_says_what_it_left(live_server, tmp_path):
    from tests.integration.test_kept_connections import open_kept, poll_path

    options = {**BASE, "polling_duration": 15, "close_timeout": 30}
    options.pop("log_levels")
    server = live_server("gunicorn", fresh=True, websocket_mode="hub", **options)
    # a handler that never returns: the session's disconnect handler waits
    # behind it, and with it the process's exit, up to its limit
    ws_sid, ws = open_blocked_ws(server)
    conn, sid = open_kept(server)  # a polling client on a connection the hub keeps
    conn.send(conn.request("GET", poll_path(sid)))
    wait_until(lambda: requests.get(f"{server.url}/attached", params={"sid": sid},
                                    timeout=10).json(),
               timeout=30, message="the poll waiting in the server")
    os.kill(server.proc.pid, signal.SIGTERM)
    status, _, _ = conn.response()
    assert status == 410  # the poll failed: the client handshakes again...
    # ...on the same connection: not here (a session made here would end with
    # the process); closed unanswered, so that the browser asks again elsewhere
    conn.send(conn.request("GET", "/socket.io/1/?t=1"))
    try:
        data = conn.sock.recv(1000)
    except ConnectionResetError:
        data = b""
    assert data == b"", data
    conn.close()
    ws.close()
    assert wait_until(lambda: server.proc.poll() is not None, timeout=EXIT_DEADLINE,
                      message="the server process to exit")
    assert "1 sessions still had disconnect handlers running" in server.log_tail(200), \
        server.log_tail(40)
    server.stop()


@pytest.mark.parametrize("mode", MODES)
def test_a_websocket_busy_in_a_handler_gets_its_going_away_at_once(live_server, tmp_path, mode):
    """A WebSocket whose handler never returns when the worker stops: it gets
    its 1001 at once, as the others do, and the worker exits before gunicorn's
    master kills it (--graceful-timeout 5). In thread mode the handler runs on
    the connection's reader thread; the request thread used to wait for it,
    which held the exit until the master's SIGKILL, and the client got no
    close frame at all."""
    options = {**BASE, "polling_duration": 15, "close_timeout": 30}
    options.pop("log_levels")
    server = live_server("gunicorn", fresh=True, websocket_mode=mode, **options)
    _, busy = open_blocked_ws(server)
    _, idle = open_ws(server)
    os.kill(server.proc.pid, signal.SIGTERM)
    for ws in (idle, busy):
        texts, code = ws.until_close()
        ws.close()
        assert code == 1001, (code, texts)
    assert wait_until(lambda: server.proc.poll() is not None, timeout=EXIT_DEADLINE,
                      message="the server process to exit")
    log = server.log_tail(200)
    assert "SIGKILL" not in log and "1 sessions still had disconnect handlers running" in log, log
    server.stop()
