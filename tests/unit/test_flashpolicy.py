"""The opt-in Flash policy server: its answer, and what it refuses."""

from __future__ import annotations

import socket

import pytest

from flask_sio09 import flashpolicy

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
