"""The opt-in Flash policy server: its answer, and what it refuses."""

from __future__ import annotations

import errno
import logging
import socket
import threading
import time

import pytest

from flask_sio09 import flashpolicy
from tests.unit.doubles import wait_until

POLICY = (b'<?xml version="1.0"?><!DOCTYPE cross-domain-policy SYSTEM '
          b'"http://www.macromedia.com/xml/dtds/cross-domain-policy.dtd"><cross-domain-policy>'
          b'<allow-access-from domain="*" to-ports="*"/></cross-domain-policy>\0')


@pytest.fixture
def policy_server():
    servers = []

    def factory(**kwargs):
        server = flashpolicy.serve_policy("127.0.0.1", 0, **kwargs)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


def ask(server, *pieces: bytes) -> bytes:
    with socket.create_connection(server.address, timeout=10) as conn:
        for piece in pieces:
            conn.sendall(piece)
        received = b""
        while True:
            data = conn.recv(4096)
            if not data:
                return received
            received += data


def test_policy_xml_default_is_the_protocol_document():
    assert flashpolicy.policy_xml() == POLICY


def test_policy_xml_one_entry_per_origin():
    xml = flashpolicy.policy_xml(["example.com:80", "*:8080", "a-b.example:*"])
    assert xml.count(b"<allow-access-from ") == 3
    assert b'<allow-access-from domain="example.com" to-ports="80"/>' in xml
    assert b'<allow-access-from domain="*" to-ports="8080"/>' in xml
    assert b'<allow-access-from domain="a-b.example" to-ports="*"/>' in xml


@pytest.mark.parametrize("origin", ["example.com", 'x" onload="y:80', "http://a.b:80",
                                    "a:b", "a:123456", ""])
def test_policy_xml_refuses_what_is_not_host_port(origin):
    with pytest.raises(ValueError):
        flashpolicy.policy_xml([origin])


def test_answers_the_policy_request(policy_server):
    server = policy_server()
    assert ask(server, flashpolicy.POLICY_REQUEST) == POLICY


def test_a_request_after_a_long_quiet_time_is_answered(policy_server, monkeypatch):
    """The server waits for connections without a deadline when it has no
    client; the first one after that wait gets its full READ_TIMEOUT."""
    monkeypatch.setattr(flashpolicy, "READ_TIMEOUT", 0.5)
    server = policy_server()
    assert ask(server, flashpolicy.POLICY_REQUEST) == POLICY
    for _ in range(3):
        time.sleep(1.0)  # quiet for longer than READ_TIMEOUT (the input, not a wait)
        assert ask(server, flashpolicy.POLICY_REQUEST) == POLICY


def test_request_in_pieces(policy_server):
    server = policy_server()
    request = flashpolicy.POLICY_REQUEST
    assert ask(server, request[:5], request[5:17], request[17:]) == POLICY


@pytest.mark.parametrize("request_bytes", [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                           b"<policy-file-request/>X",
                                           b"<policy-file-request/>"])
def test_anything_else_gets_nothing(policy_server, request_bytes):
    server = policy_server()
    with socket.create_connection(server.address, timeout=10) as conn:
        conn.sendall(request_bytes)
        if len(request_bytes) < len(flashpolicy.POLICY_REQUEST):
            conn.shutdown(socket.SHUT_WR)  # a short request, then the client stops
        try:
            answer = conn.recv(4096)
        except ConnectionResetError:  # closed with our extra bytes unread
            answer = b""
        assert answer == b""


def test_origins_reach_the_answer(policy_server):
    server = policy_server(origins=["127.0.0.1:5000"])
    assert b'domain="127.0.0.1" to-ports="5000"' in ask(server, flashpolicy.POLICY_REQUEST)


def test_stop_closes_the_port(policy_server):
    server = flashpolicy.serve_policy("127.0.0.1", 0)
    address = server.address
    with server:
        assert ask(server, flashpolicy.POLICY_REQUEST) == POLICY
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=5).close()


def test_many_requests(policy_server):
    server = policy_server()
    for _ in range(20):
        assert ask(server, flashpolicy.POLICY_REQUEST) == POLICY


def test_silent_clients_hold_no_thread_and_others_are_answered(policy_server):
    server = policy_server()
    threads = threading.active_count()
    silent = [socket.create_connection(server.address, timeout=10) for _ in range(50)]
    try:
        assert ask(server, flashpolicy.POLICY_REQUEST) == POLICY
        assert threading.active_count() <= threads
    finally:
        for conn in silent:
            conn.close()


def test_a_request_sent_too_slowly_is_cut_off_as_a_whole(policy_server, monkeypatch):
    """READ_TIMEOUT bounds the whole request, not each read: a client that
    sends a byte now and then is closed all the same."""
    monkeypatch.setattr(flashpolicy, "READ_TIMEOUT", 1.0)
    server = policy_server()
    with socket.create_connection(server.address, timeout=10) as conn:
        conn.settimeout(0.25)
        closed = False
        for byte in flashpolicy.POLICY_REQUEST[:-1]:  # 22 bytes, 0.25 s apart: 5.5 s
            try:
                conn.send(bytes([byte]))
                closed = conn.recv(1) == b""
            except socket.timeout:
                continue
            except OSError:
                closed = True
            if closed:
                break
        assert closed, "the server waited for the dripping client past READ_TIMEOUT"


def test_bytes_after_the_request_do_not_destroy_the_answer(policy_server):
    server = policy_server()
    for _ in range(3):
        assert ask(server, flashpolicy.POLICY_REQUEST + b"junk" * 256) == POLICY


def test_past_max_clients_new_connections_wait_their_turn(policy_server, monkeypatch):
    monkeypatch.setattr(flashpolicy, "READ_TIMEOUT", 1.0)
    monkeypatch.setattr(flashpolicy, "MAX_CLIENTS", 5)
    server = policy_server()
    silent = [socket.create_connection(server.address, timeout=10) for _ in range(5)]
    try:
        # answered once a silent one's time is up (the server holds at most 5)
        assert ask(server, flashpolicy.POLICY_REQUEST) == POLICY
        assert len(server._clients) <= 5
    finally:
        for conn in silent:
            conn.close()


class _FailingListener(socket.socket):
    """A listener whose accept() fails while ``failing``, as one that has run
    out of file descriptors does."""

    failing = True
    calls = 0

    def accept(self):
        type(self).calls += 1
        if type(self).failing:
            raise OSError(errno.EMFILE, "Too many open files")
        return super().accept()


def test_a_failing_accept_is_retried_after_a_pause_not_in_a_busy_loop(caplog):
    _FailingListener.failing, _FailingListener.calls = True, 0
    listener = _FailingListener(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    caplog.set_level(logging.WARNING, logger="flask_sio09")
    server = flashpolicy.PolicyServer(listener, POLICY)
    try:
        with socket.create_connection(server.address, timeout=10) as conn:  # (in the backlog)
            assert wait_until(lambda: _FailingListener.calls >= 3)
            tries = _FailingListener.calls
            _FailingListener.failing = False
            conn.sendall(flashpolicy.POLICY_REQUEST)
            answer = b""
            while data := conn.recv(4096):
                answer += data
        assert answer == POLICY
        # a pause after each failure, not a retry (and a traceback) per microsecond
        assert tries <= 4
        assert sum("accept failed" in r.getMessage() for r in caplog.records) <= 4
    finally:
        server.stop()


def _read_until_eof(conn: socket.socket) -> bytes:
    """Everything the server sends until it ends its side (raises
    socket.timeout when it does not within the connection's timeout)."""
    received = b""
    while True:
        try:
            data = conn.recv(4096)
        except ConnectionResetError:  # closed with the client's bytes unread: an end too
            return received
        if not data:
            return received
        received += data


def test_the_answer_is_followed_by_the_servers_end_at_once(policy_server, monkeypatch):
    """Flash Player reads the policy up to the server's end of the stream:
    the server ends its side right after the answer, not only when it closes
    the connection once the client lingered. LINGER_SECONDS and READ_TIMEOUT
    are made far longer than the client's 30 s wait, so that only that early
    end can reach the client in time (the server closed at LINGER_SECONDS
    without it)."""
    monkeypatch.setattr(flashpolicy, "LINGER_SECONDS", 600.0)
    monkeypatch.setattr(flashpolicy, "READ_TIMEOUT", 600.0)
    server = policy_server()
    with socket.create_connection(server.address, timeout=30) as conn:
        conn.sendall(flashpolicy.POLICY_REQUEST)  # and the client keeps its side open
        try:
            answer = _read_until_eof(conn)
        except socket.timeout:
            pytest.fail("the server did not end its side after the answer")
    assert answer == POLICY


@pytest.mark.parametrize("request_bytes", [b"GET / HTTP/1.1\r\n",
                                           b"<policy-file-request/>X"])
def test_a_connection_that_sends_anything_else_is_closed_at_once(policy_server, monkeypatch,
                                                                  request_bytes):
    """A port scanner or a misdirected HTTP client is dropped as soon as its
    bytes cannot be the request, not held for READ_TIMEOUT (a slot of
    MAX_CLIENTS each). READ_TIMEOUT is made far longer than the client's 30 s
    wait, so that only the early drop reaches the client in time."""
    monkeypatch.setattr(flashpolicy, "READ_TIMEOUT", 600.0)
    server = policy_server()
    with socket.create_connection(server.address, timeout=30) as conn:
        conn.sendall(request_bytes)  # shorter than, or as long as, the request: no end sent
        try:
            answer = _read_until_eof(conn)
        except socket.timeout:
            pytest.fail(f"the server held a connection that sent {request_bytes!r}")
    assert answer == b""


def test_at_max_clients_the_server_stops_accepting_until_one_leaves(policy_server,
                                                                    monkeypatch):
    """The limit on connections held at once bounds the file descriptors a
    flood of silent connections can take: with MAX_CLIENTS held, the server
    stops accepting (the others wait in the listen backlog) and a newcomer is
    answered once one of them leaves. READ_TIMEOUT is made far longer than
    the test, so that no silent connection's time runs out meanwhile."""
    monkeypatch.setattr(flashpolicy, "READ_TIMEOUT", 600.0)
    monkeypatch.setattr(flashpolicy, "MAX_CLIENTS", 5)
    server = policy_server()
    silent = [socket.create_connection(server.address, timeout=30) for _ in range(5)]
    try:
        assert wait_until(lambda: len(server._clients) == 5 and not server._listening, 30), \
            "the server did not stop accepting with MAX_CLIENTS connections held"
        with socket.create_connection(server.address, timeout=30) as newcomer:  # (in the backlog)
            newcomer.sendall(flashpolicy.POLICY_REQUEST)
            silent.pop().close()
            assert _read_until_eof(newcomer) == POLICY
    finally:
        for conn in silent:
            conn.close()
