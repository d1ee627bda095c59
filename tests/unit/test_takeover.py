"""takeover.take_over_socket: the hub gets the request's TCP connection, with
Nagle's algorithm off, and the WSGI server's descriptor is left pointing at a
dead socket."""

from __future__ import annotations

import socket

import pytest

from flask_sio09.takeover import client_socket, peer_closed, take_over_socket


@pytest.fixture
def tcp_pair():
    """A loopback TCP connection: (the server's accepted socket, the client's)."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    listener.close()
    yield accepted, client
    accepted.close()
    client.close()


@pytest.mark.parametrize("key", ["gunicorn.socket", "werkzeug.socket"])
def test_the_adopted_socket_carries_the_connection_without_nagle(tcp_pair, key):
    accepted, client = tcp_pair
    accepted.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # as Werkzeug leaves it
    adopted = take_over_socket({key: accepted})
    try:
        assert adopted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert not adopted.getblocking()
        adopted.send(b"from the hub")
        assert client.recv(100) == b"from the hub"
        # what the WSGI server writes on its descriptor goes nowhere
        try:
            accepted.send(b"stray response")
        except OSError:
            pass
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.recv(100)
    finally:
        adopted.close()


def test_a_unix_socket_is_adopted_as_it_is():
    ours, theirs = socket.socketpair()
    adopted = take_over_socket({"werkzeug.socket": ours})
    try:
        adopted.send(b"x")
        assert theirs.recv(1) == b"x"
    finally:
        adopted.close()
        ours.close()
        theirs.close()


@pytest.mark.parametrize("timeout", [None, 0.0, 30.0], ids=["blocking", "non-blocking", "timeout"])
def test_peer_closed_tells_a_hung_up_peer_without_reading_or_waiting(timeout):
    ours, theirs = socket.socketpair()
    try:
        ours.settimeout(timeout)
        assert peer_closed(ours) is False  # nothing to read: open (a timeout is not an end)
        theirs.sendall(b"GET")
        assert peer_closed(ours) is False  # a pipelined request: open, and left unread
        theirs.close()
        assert peer_closed(ours) is False  # its bytes come before the end of stream
        assert ours.recv(16) == b"GET"
        assert peer_closed(ours) is True
    finally:
        ours.close()


def test_client_socket_is_the_wsgi_servers_socket():
    sock = socket.socket()
    try:
        assert client_socket({"gunicorn.socket": sock}) is sock
        assert client_socket({"werkzeug.socket": sock}) is sock
        assert client_socket({"werkzeug.socket": "not a socket"}) is None
        assert client_socket({}) is None
    finally:
        sock.close()
