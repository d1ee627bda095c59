"""flask_sio09.wsframe against real WebSocket clients: Python `websockets`, Node `ws`.

A test-only echo server (a socket accept loop in a thread on 127.0.0.1, one thread
per connection) does the handshake with ``handshake_response``, reads with
``FrameReader`` and writes with the ``encode_*`` functions. It echoes text and
binary messages, answers pings, echoes a client's close (code and reason), and
obeys three text commands: ``"server-ping"`` (it pings the client), ``"server-close"``
(it starts the close handshake with 4001 and a reason) and nothing else. What it
read is recorded per connection for the tests to inspect.

The Node client runs as ``node`` with ``vendor/node_modules`` (``make vendor``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flask_sio09.wsframe import (
    FrameReader,
    HandshakeError,
    UnsupportedVersion,
    WebSocketError,
    encode_binary,
    encode_close,
    encode_ping,
    encode_pong,
    encode_text,
    handshake_response,
)
from tests.conftest import REPO_ROOT, node_with, wait_until

import websockets.sync.client as websockets_sync  # noqa: E402
from websockets.exceptions import ConnectionClosedError  # noqa: E402

LIMIT = 1_000_000
IO_TIMEOUT = 30.0
NODE_MODULES = REPO_ROOT / "vendor" / "node_modules"
UNICODE = "héllo wörld ✓ 😀 𝄞 \U0010ffff"


# ---------------------------------------------------------------------------
# the test-only server
# ---------------------------------------------------------------------------


@dataclass
class Peer:
    """What the server saw on one connection."""

    events: list = field(default_factory=list)
    error: WebSocketError | None = None
    handshake: str = ""            # "101", "400" or "426"
    sent_close: tuple | None = None
    done: threading.Event = field(default_factory=threading.Event)


def read_request(conn: socket.socket) -> tuple[dict, bytes]:
    """Read an HTTP request head into a WSGI-style environ; return it and the rest."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > 65536:
            raise ConnectionError("no complete request head")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, _path, protocol = lines[0].split(" ", 2)
    environ = {"REQUEST_METHOD": method, "SERVER_PROTOCOL": protocol}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = "HTTP_" + name.strip().upper().replace("-", "_")
        value = value.strip()
        environ[key] = f"{environ[key]}, {value}" if key in environ else value
    return environ, rest


def _linger(conn: socket.socket) -> None:
    """Half-close, then discard what the client still sends until it closes."""
    try:
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    except OSError:
        pass


class EchoServer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}/echo"
        self.peers: list[Peer] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept_thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            peer = Peer()
            self.peers.append(peer)
            thread = threading.Thread(target=self._serve, args=(conn, peer), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, peer: Peer) -> None:
        conn.settimeout(IO_TIMEOUT)
        try:
            with conn:
                self._session(conn, peer)
        except OSError:
            pass
        finally:
            peer.done.set()

    def _session(self, conn: socket.socket, peer: Peer) -> None:
        environ, rest = read_request(conn)
        try:
            conn.sendall(handshake_response(environ))
            peer.handshake = "101"
        except UnsupportedVersion:
            peer.handshake = "426"
            conn.sendall(b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            return
        except HandshakeError:
            peer.handshake = "400"
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                         b"Connection: close\r\n\r\n")
            return
        reader = FrameReader(max_message_size=LIMIT)
        data = rest
        while True:
            try:
                events = reader.feed(data)
            except WebSocketError as exc:
                peer.error = exc
                peer.events += exc.events
                peer.sent_close = (exc.code, "protocol")
                conn.sendall(encode_close(exc.code, "protocol"))
                # fail the connection (§7.1.7), but as the hub does, let the
                # client read the close frame first: closing with its bytes
                # unread would reset the connection and could destroy the frame
                _linger(conn)
                return
            for event in events:
                peer.events.append(event)
                kind = event[0]
                if kind == "text" and event[1] == "server-ping":
                    conn.sendall(encode_ping(b"from-server"))
                elif kind == "text" and event[1] == "server-close":
                    peer.sent_close = (4001, "server says bye ✓")
                    conn.sendall(encode_close(4001, "server says bye ✓"))
                elif kind == "text":
                    conn.sendall(encode_text(event[1]))
                elif kind == "binary":
                    conn.sendall(encode_binary(event[1]))
                elif kind == "ping":
                    conn.sendall(encode_pong(event[1]))
                elif kind == "close":
                    if peer.sent_close is None:
                        # §5.5.1: answer with a close, echoing the status code.
                        peer.sent_close = (event[1], event[2])
                        conn.sendall(encode_close(event[1], event[2]))
                    # §7.1.1: the server closes the TCP connection first.
                    return
            data = conn.recv(65536)
            if not data:
                return

    def peer(self, index: int = -1) -> Peer:
        wait_until(lambda: len(self.peers) > (index if index >= 0 else -index - 1),
                   timeout=IO_TIMEOUT, message="a connection to the echo server")
        return self.peers[index]

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        self._accept_thread.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=IO_TIMEOUT)


@pytest.fixture
def server():
    echo = EchoServer()
    yield echo
    echo.stop()


# ---------------------------------------------------------------------------
# Python websockets (sync client)
# ---------------------------------------------------------------------------


def connect(server: EchoServer, **kwargs):
    # proxy=None: never route loopback through an environment proxy. Compression is
    # offered (the default) and must be declined by the server's handshake.
    options = {"proxy": None, "max_size": 2 * LIMIT, "open_timeout": IO_TIMEOUT,
               "close_timeout": IO_TIMEOUT, "ping_interval": None}
    options.update(kwargs)
    return websockets_sync.connect(server.url, **options)


def test_websockets_echo_text_binary_and_close(server):
    with connect(server) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None
        for message in ["hello", UNICODE, "", "x" * 126, "y" * 70_000]:
            ws.send(message)
            assert ws.recv(timeout=IO_TIMEOUT) == message
        for payload in [b"\x00\xff" * 3, b"", bytes(range(256)) * 300]:
            ws.send(payload)
            assert ws.recv(timeout=IO_TIMEOUT) == payload
        ws.close(4000, "done ✓")
        assert ws.close_code == 4000
        assert ws.close_reason == "done ✓"
    peer = server.peer()
    assert peer.done.wait(IO_TIMEOUT)
    assert peer.events[-1] == ("close", 4000, "done ✓")
    assert peer.error is None


def test_websockets_message_near_the_limit_and_over_it(server):
    text = ("é" * (LIMIT // 2 - 5))          # 999,990 bytes of UTF-8
    with connect(server) as ws:
        ws.send(text)
        assert ws.recv(timeout=IO_TIMEOUT) == text
        blob = os.urandom(LIMIT)
        ws.send(blob)
        assert ws.recv(timeout=IO_TIMEOUT) == blob
    with connect(server) as ws:
        ws.send(b"z" * (LIMIT + 1))
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=IO_TIMEOUT)
        assert ws.close_code == 1009
    peer = server.peer()
    assert peer.done.wait(IO_TIMEOUT)
    assert peer.error is not None and peer.error.code == 1009


def test_websockets_fragmented_messages(server):
    with connect(server) as ws:
        # An iterable is sent as one message in several frames.
        ws.send(["frag", "ment", "ed ✓", "😀"])
        assert ws.recv(timeout=IO_TIMEOUT) == "fragmented ✓😀"
        ws.send([b"\x01", b"", b"\x02\x03" * 1000])
        assert ws.recv(timeout=IO_TIMEOUT) == b"\x01" + b"\x02\x03" * 1000
    peer = server.peer()
    assert peer.done.wait(IO_TIMEOUT)
    assert peer.events[:2] == [("text", "fragmented ✓😀"),
                               ("binary", b"\x01" + b"\x02\x03" * 1000)]


def test_websockets_ping_pong_both_ways(server):
    with connect(server) as ws:
        pong = ws.ping(b"from-client")
        assert pong.wait(IO_TIMEOUT)
        ws.send("server-ping")        # the client answers the server's ping by itself
        ws.send("after")
        assert ws.recv(timeout=IO_TIMEOUT) == "after"
        peer = server.peer()
        wait_until(lambda: ("pong", b"from-server") in peer.events, timeout=IO_TIMEOUT,
                   message="the client's pong")
    assert ("ping", b"from-client") in peer.events


def test_websockets_server_initiated_close(server):
    with connect(server) as ws:
        ws.send("server-close")
        with pytest.raises(ConnectionClosedError) as info:  # any code but 1000, 1001
            ws.recv(timeout=IO_TIMEOUT)
        assert "4001" in str(info.value)
        assert ws.close_code == 4001
        assert ws.close_reason == "server says bye ✓"
    peer = server.peer()
    assert peer.done.wait(IO_TIMEOUT)
    assert peer.events[-1] == ("close", 4001, "server says bye ✓")


def test_handshake_refusals_over_the_wire(server):
    def request(version: str) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT) as s:
            s.sendall(("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       f"Sec-WebSocket-Version: {version}\r\n\r\n").encode())
            answer = b""
            while b"\r\n\r\n" not in answer and (chunk := s.recv(4096)):
                answer += chunk
            return answer
    assert request("8").startswith(b"HTTP/1.1 426 ")
    assert request("13").startswith(b"HTTP/1.1 101 ")


# ---------------------------------------------------------------------------
# Node ws
# ---------------------------------------------------------------------------

NODE_CLIENT = r"""
const WebSocket = require('ws');
const url = process.argv[2];
const LIMIT = Number(process.argv[3]);
const results = {};
const timer = setTimeout(() => { console.log(JSON.stringify({timeout: true, results})); process.exit(2); }, 60000);

function open(options) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options || {});
    ws.on('error', reject);
    ws.on('open', () => resolve(ws));
  });
}
function nextMessage(ws) {
  return new Promise((resolve) => ws.once('message', (data, isBinary) => resolve({data, isBinary})));
}
function closed(ws) {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve([code, reason.toString()])));
}

(async () => {
  let ws = await open({perMessageDeflate: true, maxPayload: 2 * LIMIT});
  results.extensions = ws.extensions;
  const unicode = process.argv[4];
  ws.send(unicode);
  let m = await nextMessage(ws);
  results.text = [m.isBinary, m.data.toString('utf8')];

  const big = Buffer.alloc(LIMIT - 10);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  ws.send(big);
  m = await nextMessage(ws);
  results.big = [m.isBinary, m.data.length, Buffer.compare(m.data, big) === 0];

  // A text message in three frames, split inside a 4-byte UTF-8 sequence.
  const bytes = Buffer.from('ab😀cd', 'utf8');
  ws.send(bytes.subarray(0, 3), {binary: false, fin: false});
  ws.send(bytes.subarray(3, 5), {binary: false, fin: false});
  ws.send(bytes.subarray(5), {binary: false, fin: true});
  m = await nextMessage(ws);
  results.fragmented = [m.isBinary, m.data.toString('utf8')];

  const pong = new Promise((resolve) => ws.once('pong', (data) => resolve(data.toString())));
  ws.ping(Buffer.from('from-node'));
  results.pong = await pong;

  const ping = new Promise((resolve) => ws.once('ping', (data) => resolve(data.toString())));
  ws.send('server-ping');
  results.server_ping = await ping;

  const done = closed(ws);
  ws.close(4002, 'node done ✓');
  results.close = await done;

  ws = await open({maxPayload: 2 * LIMIT});
  const refused = closed(ws);
  ws.send(Buffer.alloc(LIMIT + 1));
  results.too_big = await refused;

  ws = await open();
  const byServer = closed(ws);
  ws.send('server-close');
  results.server_close = await byServer;

  clearTimeout(timer);
  console.log(JSON.stringify({timeout: false, results}));
})().catch((err) => { console.log(JSON.stringify({error: String(err && err.stack || err)})); process.exit(1); });
"""


@pytest.fixture
def node_ws() -> dict:
    return node_with(NODE_MODULES, "ws")


def test_node_ws_client(server, node_ws, tmp_path: Path):
    script = tmp_path / "client.js"
    script.write_text(NODE_CLIENT, encoding="utf-8")
    result = subprocess.run(
        [node_ws["node"], str(script), server.url, str(LIMIT), UNICODE],
        capture_output=True, text=True, timeout=120, env=node_ws["env"], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["timeout"] is False
    r = report["results"]
    assert r["extensions"] == ""                    # permessage-deflate declined
    assert r["text"] == [False, UNICODE]
    assert r["big"] == [True, LIMIT - 10, True]
    assert r["fragmented"] == [False, "ab😀cd"]
    assert r["pong"] == "from-node"
    assert r["server_ping"] == "from-server"
    assert r["close"] == [4002, "node done ✓"]
    assert r["too_big"][0] == 1009
    assert r["server_close"] == [4001, "server says bye ✓"]

    first = server.peers[0]
    assert first.done.wait(IO_TIMEOUT)
    assert ("ping", b"from-node") in first.events
    assert ("pong", b"from-server") in first.events
    assert first.events[-1] == ("close", 4002, "node done ✓")
    assert server.peers[1].error is not None and server.peers[1].error.code == 1009
