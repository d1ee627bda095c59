"""takeover.take_over_socket: the hub gets the request's TCP connection, with
Nagle's algorithm off, and the WSGI server's descriptor is left pointing at a
dead socket."""

from __future__ import annotations

import socket
import ssl

import pytest

from flask_sio09.takeover import can_take_over, client_socket, peer_closed, take_over_socket


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


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_plain_socket_is_taken_over_whatever_the_scheme_says(tcp_pair, scheme):
    """``wsgi.url_scheme`` follows X-Forwarded-Proto behind a TLS-ending proxy:
    the connection itself is plain, and the hub may have it."""
    server_side, _ = tcp_pair
    assert can_take_over({"gunicorn.socket": server_side, "wsgi.url_scheme": scheme})


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_tls_socket_is_never_taken_over_whatever_the_scheme_says(tcp_pair, scheme):
    """An X-Forwarded-Proto: http (trusted by gunicorn from local addresses,
    by ProxyFix from anyone) must not hand TLS records to the hub."""
    server_side, _ = tcp_pair
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls = context.wrap_socket(server_side, server_hostname="localhost",
                              do_handshake_on_connect=False)
    try:
        for key in ("gunicorn.socket", "werkzeug.socket"):
            assert not can_take_over({key: tls, "wsgi.url_scheme": scheme})
    finally:
        tls.close()


def test_peer_closed_tells_a_peer_that_reset_the_connection(tcp_pair):
    """A client that resets its connection (RST: a browser tab killed, a
    proxy timing out) has gone as surely as one that closed it: a poll must
    not write its packets to it, they would be lost."""
    import select
    import struct

    accepted, client = tcp_pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    poller = select.poll()
    poller.register(accepted, select.POLLIN)
    assert poller.poll(10_000), "the reset never arrived"
    # asked once: the first look at a reset connection reads its error
    assert peer_closed(accepted) is True
