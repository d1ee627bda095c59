"""Several server processes of one application on one real redis-server
(``message_queue``), with raw 0.9 clients.

Two servers on two ports stand for what a load balancer does to a client:
its handshake may reach one process and its transport another. Then a real
``gunicorn -w 2`` shares one port between two workers, as the kernel spreads
the connections.
"""

from __future__ import annotations

import os
import signal
import socket
from contextlib import contextmanager

import pytest
import requests

from flask_sio09 import SocketIO
from tests.conftest import wait_until
from tests.integration.helpers import (REQUEST_TIMEOUT, Background, SioPage, WsClient, XhrClient,
                                       event_packet, handshake, parse_event)

pytestmark = [pytest.mark.redis, pytest.mark.timeout(240)]

OPTIONS = dict(heartbeat_interval=5, heartbeat_timeout=30, close_timeout=30)
NOT_HANDSHAKEN = "7:::1+0"


@pytest.fixture(params=["hub", "thread"])
def two_processes(request, live_server, fresh_redis):
    """A gunicorn process and a ``sio.run`` process sharing one Redis."""
    url = fresh_redis().url
    mode = request.param
    one = live_server("gunicorn", fresh=True, message_queue=url, websocket_mode=mode, **OPTIONS)
    two = live_server("sio_run", fresh=True, message_queue=url, websocket_mode=mode, **OPTIONS)
    return one, two, url


def events_named(client: WsClient, name: str) -> list[list]:
    return [args for event, args in (parse_event(p) for p in client.received
                                     if p.startswith("5:")) if event == name]


def wait_event(client: WsClient, name: str, args: list) -> None:
    client.recv_until(lambda _: args in events_named(client, name))


def test_a_websocket_is_held_by_the_process_it_reached_not_the_handshake_one(two_processes):
    one, two, _ = two_processes
    client = WsClient(two, handshake_with=one)
    try:
        client.recv_until(lambda got: "1::" in got)
        assert client.call("echo", "hi", ack_id=1) == ["hi"]
        assert client.call("pid", ack_id=2) == [two.proc.pid]
        # the handshake's process let go of it: a poll there cannot use it
        answer = requests.get(f"{one.url}/socket.io/1/xhr-polling/{client.sid}",
                              timeout=REQUEST_TIMEOUT)
        assert answer.text == NOT_HANDSHAKEN
        two.wait_events(lambda found: any(e["event"] == "connect" for e in found),
                        sid=client.sid)
        assert one.events(client.sid) == []  # no handler ran there
    finally:
        client.close()


def test_a_client_held_elsewhere_is_disconnected_from_its_handshake_process(two_processes):
    """The handshake's process had a copy of the session; its transport went
    to the other process. A disconnect(sid=) from the first must reach it."""
    one, two, _ = two_processes
    target = WsClient(two, handshake_with=one)
    kicker = WsClient(one)
    try:
        target.recv_until(lambda got: "1::" in got)
        kicker.recv_until(lambda got: "1::" in got)
        assert kicker.call("kick", target.sid, ack_id=1) == ["kicked"]
        target.recv_until(lambda got: "0::" in got)
        two.wait_events(lambda evs: any(e["event"] == "disconnect" for e in evs),
                        sid=target.sid)
    finally:
        target.close()
        kicker.close()


def test_the_handshake_process_copy_never_erases_the_holder_record(two_processes):
    one, two, url = two_processes
    import redis

    client = WsClient(two, handshake_with=one)
    try:
        client.recv_until(lambda got: "1::" in got)
        # the copy in the first process is dropped when the claim is published;
        # the holder's record stays (a ?disconnect through the first still works)
        wait_until(lambda: requests.get(f"{one.url}/session_count",
                                        timeout=REQUEST_TIMEOUT).json() == 0, timeout=20,
                   message="the first process to drop its copy")
        key = f"flask_sio09:0:session:{client.sid}"
        assert redis.Redis.from_url(url).exists(key)
        requests.get(f"{one.url}/socket.io/1/xhr-polling/{client.sid}",
                     params={"disconnect": ""}, timeout=REQUEST_TIMEOUT)
        client.recv_until(lambda got: "0::" in got)
    finally:
        client.close()


def test_a_poll_on_a_kept_connection_adopts_with_the_whole_request(two_processes):
    """In hub mode the hub serves a kept connection's later requests itself;
    a session adopted there gets the request's environ all the same (its
    connect handler runs in a full request context), with the handshake's
    query, as in the handshake's own process."""
    one, two, _ = two_processes
    kept = XhrClient.open(two)  # its connection is kept open after the poll
    sid = handshake(one, token="hs")[0]
    adopted = XhrClient(two, sid=sid, session=kept.session)
    assert adopted.get(token="kept").text == "1::"
    found = two.wait_events(lambda evs: any(e["event"] == "connect" for e in evs), sid=sid)
    connect = next(e for e in found if e["event"] == "connect")
    assert connect["args"]["token"] == ["hs"] and connect["query"]["token"] == ["hs"]


def test_requests_for_sessions_held_elsewhere_never_stall_the_hub_on_a_slow_redis(
        live_server, fresh_redis):
    """In hub mode the hub serves a kept connection's polls itself. A poll for
    a sid this process does not hold asks Redis who does; while Redis is
    stopped (SIGSTOP) each such lookup waits for its timeout. Those requests
    go to a thread, so that the hub's other clients are served meanwhile."""
    redis = fresh_redis()
    server = live_server("gunicorn", fresh=True, message_queue=redis.url,
                         websocket_mode="hub", **OPTIONS)
    witness = WsClient(server)
    sid = handshake(server)[0]
    kept = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    try:
        witness.recv_until(lambda got: "1::" in got)
        assert witness.call("echo", "before", ack_id=1) == ["before"]
        # a poll that the WSGI server answers, after which the hub keeps the connection
        kept.sendall(f"GET /socket.io/1/xhr-polling/{sid} HTTP/1.1\r\n"
                     f"Host: 127.0.0.1:{server.port}\r\n\r\n".encode())
        first = b""
        while not first.endswith(b"1::"):
            chunk = kept.recv(65536)
            assert chunk and len(first) < 4096, first
            first += chunk
        assert first.startswith(b"HTTP/1.1 200"), first
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            unknown = [f"{n:020d}" for n in range(4)]
            kept.sendall(b"".join(
                f"GET /socket.io/1/xhr-polling/{other} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{server.port}\r\n\r\n".encode() for other in unknown))
            # each lookup waits up to 5 s on the stopped Redis; a hub doing
            # them itself would not answer the witness for 20 s or more
            witness.ws.send(event_packet("echo", "during", ack_id=2))
            witness.recv_until(lambda got: any(p.startswith("6:::2+") for p in got),
                               timeout=12)
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        answers = b""
        while answers.count(b"7:::1+0") < len(unknown):
            chunk = kept.recv(65536)
            assert chunk, answers
            answers += chunk
        assert witness.call("echo", "after", ack_id=3) == ["after"]
    finally:
        kept.close()
        witness.close()


@pytest.mark.parametrize("refusal", ["read-only replica", "maxmemory"])
def test_a_redis_that_refuses_writes_is_treated_as_one_out_of_reach(two_processes, refusal):
    """A failover that makes the Redis node a read-only replica, or a full
    ``maxmemory`` with ``noeviction``, answers writes with an error reply,
    not a dropped connection. As when Redis cannot be reached: handshakes
    go on, a process serves the sessions it handshook itself, and a
    transport that cannot be claimed gets ``7:::1+0``, never a 500 (or, in
    thread mode, a 500 written into the upgraded stream). A full Redis
    still runs the claim, which found no record of the handshake and once
    took the process's own client for another's."""
    import redis as redis_py

    from tests.conftest import free_port

    one, two, url = two_processes
    admin = redis_py.Redis.from_url(url)
    if refusal == "maxmemory":
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # less than Redis uses already
    else:
        admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))  # nobody there
    try:
        with pytest.raises(redis_py.exceptions.ResponseError):
            admin.set("probe", "1")
        local = WsClient(one)  # handshake and transport on one process
        try:
            local.recv_until(lambda got: "1::" in got)
            assert local.call("echo", "served", ack_id=1) == ["served"]
        finally:
            local.close()
        answer = requests.get(f"{one.url}/socket.io/1/", timeout=REQUEST_TIMEOUT)
        assert answer.status_code == 200, answer.text
        # handshaken on one, transport on two: two cannot claim it
        elsewhere = WsClient(two, handshake_with=one)
        try:
            elsewhere.recv_until(lambda got: NOT_HANDSHAKEN in got)
        finally:
            elsewhere.close()
        poll = requests.get(f"{two.url}/socket.io/1/xhr-polling/{answer.text.split(':')[0]}",
                            timeout=REQUEST_TIMEOUT)
        assert (poll.status_code, poll.text) == (200, NOT_HANDSHAKEN)
    finally:
        if refusal == "maxmemory":
            admin.config_set("maxmemory", "0")
        else:
            admin.execute_command("REPLICAOF", "NO", "ONE")
    after = WsClient(one)
    try:
        after.recv_until(lambda got: "1::" in got)
        assert after.call("echo", "after", ack_id=1) == ["after"]
    finally:
        after.close()


def test_a_handshake_disconnected_before_its_transport_stays_disconnected(two_processes):
    one, two, _ = two_processes
    kicker = WsClient(one)
    try:
        kicker.recv_until(lambda got: "1::" in got)
        sid = handshake(one)[0]
        assert kicker.call("kick", sid, ack_id=1) == ["kicked"]
        wait_until(lambda: requests.get(f"{one.url}/session_count",
                                        timeout=REQUEST_TIMEOUT).json() == 1, timeout=20,
                   message="the kicked handshake to be gone")
        assert XhrClient(two, sid=sid).get().text == NOT_HANDSHAKEN
    finally:
        kicker.close()


def test_a_session_is_held_once_when_two_processes_get_its_transport(two_processes):
    one, two, _ = two_processes
    sid = handshake(one)[0]
    first = XhrClient(one, sid=sid)
    assert first.get().text == "1::"  # claimed by the handshake's own process
    second = XhrClient(two, sid=sid)
    assert second.get().text == NOT_HANDSHAKEN


@contextmanager
def one_client_each(one, two):
    """A WebSocket client of each process, connected."""
    here, there = WsClient(one), WsClient(two)
    try:
        for client in (here, there):
            client.recv_until(lambda got: "1::" in got)
        yield here, there
    finally:
        here.close()
        there.close()


def test_rooms_broadcasts_and_server_emits_reach_both_processes(two_processes):
    one, two, _ = two_processes
    with one_client_each(one, two) as (here, there):
        assert "lobby" in here.call("join", "lobby", ack_id=1)[0]
        assert there.call("to_room", "lobby", "over here", ack_id=2) == ["sent"]
        wait_event(here, "room_msg", ["over here"])
        two.server_emit("news", "for all")
        wait_event(here, "news", ["for all"])
        wait_event(there, "news", ["for all"])
        assert there.call("enroll", here.sid, "den", ack_id=3) == ["enrolled"]
        # the second process published the room change, then this: once it has
        # arrived, the first process has applied the change (one channel, in order)
        two.server_emit("marker")
        wait_event(here, "marker", [])
        one.server_emit("den_news", 1, to="den")  # the room lives in the first process
        wait_event(here, "den_news", [1])


def test_a_client_of_another_process_can_be_disconnected_and_asked(two_processes):
    one, two, _ = two_processes
    with one_client_each(one, two) as (here, there):
        assert there.call("ask_sid", here.sid, "ready?", ack_id=1) == ["asked"]
        here.recv_until(lambda got: any(p.startswith("5:") and "question" in p for p in got))
        question = next(p for p in here.received if p.startswith("5:") and "question" in p)
        ack_id = question.split(":")[1].rstrip("+")
        here.send(f"6:::{ack_id}+[\"yes\",42]")
        found = two.wait_events(lambda evs: any(e["event"] == "sid_answer" for e in evs))
        answer = next(e for e in found if e["event"] == "sid_answer")
        assert answer["asked"] == here.sid and answer["answer"] == ["yes", 42]
        assert there.call("kick", here.sid, ack_id=2) == ["kicked"]
        here.recv_until(lambda got: "0::" in got)
        one.wait_events(lambda evs: any(e["event"] == "disconnect" for e in evs), sid=here.sid)


def test_a_post_that_reaches_another_process_is_forwarded(two_processes):
    one, two, _ = two_processes
    client = XhrClient.open(one)
    elsewhere = XhrClient(two, sid=client.sid)
    answer = elsewhere.post(event_packet("echo", "via two", ack_id=1))
    assert answer.status_code == 200 and answer.text == "1"
    client.collect(lambda _: client.ack_for(1) is not None)
    assert client.ack_for(1) == '6:::1+["via two"]'
    # a poll there cannot wait for the packets queued here: the client must start over
    assert elsewhere.get().text == NOT_HANDSHAKEN
    client.post(event_packet("echo", "still here", ack_id=2))
    client.collect(lambda _: client.ack_for(2) is not None)
    # ?disconnect reaching the other process ends the session where it is held
    requests.get(f"{two.url}/socket.io/1/xhr-polling/{client.sid}",
                 params={"disconnect": ""}, timeout=REQUEST_TIMEOUT)
    one.wait_events(lambda evs: any(e["event"] == "disconnect" for e in evs), sid=client.sid)


def test_a_forwarded_post_too_large_ends_the_session_where_it_is_held(two_processes):
    """...and its waiting poll fails, so that the client reconnects (told
    "0::", socket.io-client 0.9 would give up: reason "booted")."""
    one, two, _ = two_processes
    client = XhrClient.open(one)
    waiting = Background(client.get, timeout=60)
    one.wait_events(lambda evs: any(e["event"] == "connect" for e in evs), sid=client.sid)
    answer = XhrClient(two, sid=client.sid).post("x" * 1_100_000)  # over max_http_buffer_size
    assert answer.status_code == 413
    one.wait_events(lambda evs: any(e["event"] == "disconnect" for e in evs), sid=client.sid)
    waiting.join(timeout=60)
    assert waiting.result.status_code == 410


@pytest.mark.gunicorn
def test_a_worker_that_exits_forgets_its_session_records(live_server, fresh_redis):
    import redis

    url = fresh_redis().url
    server = live_server("gunicorn", fresh=True, message_queue=url, **OPTIONS)
    client = WsClient(server)
    client.recv_until(lambda got: "1::" in got)
    records = redis.Redis.from_url(url)
    assert records.exists(f"flask_sio09:0:session:{client.sid}")
    server.stop()  # TERM: gunicorn's worker exits gracefully
    assert not records.exists(f"flask_sio09:0:session:{client.sid}")
    client.close()


def test_a_write_only_emitter_reaches_the_clients_of_every_process(two_processes):
    one, two, url = two_processes
    with one_client_each(one, two) as (here, there):
        emitter = SocketIO(message_queue=url, write_only=True)
        emitter.emit("task_done", {"id": 7}, to=there.sid)
        emitter.send("to everyone")
        wait_event(there, "task_done", [{"id": 7}])
        here.recv_until(lambda got: "3:::to everyone" in got)
        there.recv_until(lambda got: "3:::to everyone" in got)
        assert events_named(here, "task_done") == []


@pytest.mark.gunicorn
def test_gunicorn_with_two_workers_serves_every_websocket_client(live_server, fresh_redis):
    url = fresh_redis().url
    server = live_server("gunicorn", fresh=True, message_queue=url, gunicorn_workers=2, **OPTIONS)
    clients = []
    try:
        for _ in range(16):  # each handshake and each upgrade is a new connection
            clients.append(WsClient(server))
        pids = set()
        for i, client in enumerate(clients):
            client.recv_until(lambda got: "1::" in got)
            assert client.call("echo", i, ack_id=1) == [i]
            pids.add(client.call("pid", ack_id=2)[0])
        for client in clients[1:]:
            assert client.call("join", "all", ack_id=3)
        assert clients[0].call("join", "all", ack_id=3)
        assert clients[0].call("to_room", "all", "hello all", ack_id=4) == ["sent"]
        for client in clients[1:]:
            wait_event(client, "room_msg", ["hello all"])
        server.server_emit("news", "everyone")  # reaches one worker; it publishes
        for client in clients:
            wait_event(client, "news", ["everyone"])
        print(f"sessions held by {len(pids)} worker(s)")
    finally:
        for client in clients:
            client.close()


# ---------------------------------------------------------------------------
# socket.io-client 0.9.16 in Chromium
# ---------------------------------------------------------------------------


def connect_page(new_page, server, transport: str) -> tuple[SioPage, str]:
    page = SioPage(new_page(server), server)
    page.connect("g", "/", [transport])
    sid = page.wait_connected("g")
    assert page.transport("g") == transport
    return page, sid


@pytest.mark.browser
@pytest.mark.parametrize("transport", ["websocket", "xhr-polling"])
def test_browsers_on_two_processes_share_rooms_and_broadcasts(live_server, fresh_redis,
                                                             new_page, transport):
    url = fresh_redis().url
    one = live_server("gunicorn", fresh=True, message_queue=url, **OPTIONS)
    two = live_server("sio_run", fresh=True, message_queue=url, **OPTIONS)
    a, sid_a = connect_page(new_page, one, transport)
    b, sid_b = connect_page(new_page, two, transport)
    assert "lobby" in a.emit_ack("g", "join", "lobby")[0]
    assert "lobby" in b.emit_ack("g", "join", "lobby")[0]
    assert a.emit_ack("g", "to_room", "lobby", {"from": "a"}, False) == ["sent"]
    assert b.wait_event("g", "room_msg")[0]["args"] == [{"from": "a"}]
    assert b.emit_ack("g", "broadcast", "to all") == ["sent"]
    assert a.wait_event("g", "broadcast_msg")[0]["args"] == ["to all"]
    b.wait_event("g", "broadcast_msg")
    # a server-asked ack across processes: the page on one answers two's question
    a.answer("g", "question", "answered by a")
    assert b.emit_ack("g", "ask_sid", sid_a, "who?") == ["asked"]
    found = two.wait_events(lambda evs: any(e["event"] == "sid_answer" for e in evs))
    assert next(e for e in found if e["event"] == "sid_answer")["answer"] == ["answered by a"]
    assert b.emit_ack("g", "kick", sid_a) == ["kicked"]
    a.wait_event("g", "disconnect")
    assert b.connected("g") and sid_b


@pytest.mark.browser
@pytest.mark.gunicorn
def test_browsers_on_gunicorn_with_two_workers(live_server, fresh_redis, new_page):
    url = fresh_redis().url
    server = live_server("gunicorn", fresh=True, message_queue=url, gunicorn_workers=2, **OPTIONS)
    pages = [connect_page(new_page, server, "websocket")[0] for _ in range(4)]
    for page in pages:
        assert "room" in page.emit_ack("g", "join", "room")[0]
    assert pages[0].emit_ack("g", "to_room", "room", "hi", True) == ["sent"]
    for page in pages:
        assert page.wait_event("g", "room_msg")[0]["args"] == ["hi"]


def test_a_handshake_whose_record_redis_lost_is_served_by_its_own_process(two_processes):
    """Redis restarted without persistence, evicted the record (a shared
    cache's ``volatile-ttl`` takes the shortest TTL first) or was flushed:
    the process that made the handshake serves its own client (it took the
    missing record for another process's claim, and refused it)."""
    import redis as redis_py

    one, two, url = two_processes
    admin = redis_py.Redis.from_url(url)
    sid = handshake(one)[0]
    lost = list(admin.scan_iter(match=f"*:handshake:{sid}"))
    assert len(lost) == 1 and admin.delete(*lost) == 1
    poll = requests.get(f"{one.url}/socket.io/1/xhr-polling/{sid}", timeout=REQUEST_TIMEOUT)
    assert (poll.status_code, poll.text) == (200, "1::")
    assert list(admin.scan_iter(match=f"*:session:{sid}"))  # held here, as any claim
    # a session another process claimed first is still not taken
    sid = handshake(one)[0]
    elsewhere = XhrClient(two, sid=sid)
    assert elsewhere.get().text == "1::"
    poll = requests.get(f"{one.url}/socket.io/1/xhr-polling/{sid}", timeout=REQUEST_TIMEOUT)
    assert poll.text != "1::"
