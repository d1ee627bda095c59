"""Helpers for the integration suites: raw wire access and a browser page driver.

The payload decoder here is written independently of ``flask_sio09.packet`` on
purpose: the wire tests check the library's bytes, not its own codec against itself.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field

import requests
import websocket

from tests.conftest import LiveServer, wait_until

FRAME = "\ufffd"
SID_RE = re.compile(r"^[A-Za-z0-9_-]{20,}$")
REQUEST_TIMEOUT = 30


# ---------------------------------------------------------------------------
# payload framing (PROTOCOL.md §2.1: lengths are UTF-16 code units)
# ---------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def encode_payload(packets: list[str]) -> str:
    if len(packets) == 1:
        return packets[0]
    return "".join(f"{FRAME}{utf16_len(p)}{FRAME}{p}" for p in packets)


def decode_payload(data: str) -> list[str]:
    """Split a server answer into packets; raise ``ValueError`` on bad framing."""
    if not data.startswith(FRAME):
        return [data]
    units = data.encode("utf-16-le")
    packets = []
    i = 0
    frame = FRAME.encode("utf-16-le")
    while i < len(units):
        if units[i:i + 2] != frame:
            raise ValueError(f"expected U+FFFD at unit {i // 2} of {data!r}")
        end = units.index(frame, i + 2)
        length = int(units[i + 2:end].decode("utf-16-le"))
        start = end + 2
        packet = units[start:start + 2 * length]
        if len(packet) != 2 * length:
            raise ValueError(f"frame of {length} units runs past the end of {data!r}")
        packets.append(packet.decode("utf-16-le"))
        i = start + 2 * length
    return packets


def event_packet(name: str, *args, ack_id=None, data_ack=True, endpoint: str = "") -> str:
    body = {"name": name}
    if args:
        body["args"] = list(args)
    ident = "" if ack_id is None else f"{ack_id}{'+' if data_ack else ''}"
    return f"5:{ident}:{endpoint}:{json.dumps(body, separators=(',', ':'), ensure_ascii=False)}"


def parse_event(packet: str) -> tuple[str, list]:
    """``5:...:{"name":..,"args":[..]}`` -> (name, args)."""
    kind, _ident, _endpoint, data = packet.split(":", 3)
    assert kind == "5", packet
    body = json.loads(data)
    return body["name"], body.get("args", [])


# ---------------------------------------------------------------------------
# a raw xhr-polling client
# ---------------------------------------------------------------------------


def handshake_url(server: LiveServer, protocol: int = 1) -> str:
    return f"{server.url}/socket.io/{protocol}/"


def handshake(server: LiveServer, method: str = "GET", **params) -> tuple[str, str, str, list[str]]:
    response = requests.request(
        method, handshake_url(server), params=params or None, timeout=REQUEST_TIMEOUT,
        verify=server.verify,
    )
    assert response.status_code == 200, (response.status_code, response.text)
    sid, heartbeat, close, transports = response.text.split(":")
    return sid, heartbeat, close, transports.split(",")


@dataclass
class XhrClient:
    """A hand-driven xhr-polling session: every request is explicit."""

    server: LiveServer
    sid: str = ""
    session: requests.Session = field(default_factory=requests.Session)
    received: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, server: LiveServer) -> "XhrClient":
        """Handshake and the first GET, which must answer exactly ``1::``."""
        client = cls(server)
        client.sid = handshake(server)[0]
        first = client.get()
        assert first.status_code == 200
        assert first.text == "1::", f"first poll answered {first.text!r}, expected '1::'"
        return client

    @property
    def url(self) -> str:
        return f"{self.server.url}/socket.io/1/xhr-polling/{self.sid}"

    def get(self, timeout: float = REQUEST_TIMEOUT, **params) -> requests.Response:
        params.setdefault("t", str(int(time.time() * 1000)))
        response = self.session.get(self.url, params=params, timeout=timeout,
                                    verify=self.server.verify)
        response.encoding = "utf-8"
        return response

    def post(self, body: str, timeout: float = REQUEST_TIMEOUT, **params) -> requests.Response:
        params.setdefault("t", str(int(time.time() * 1000)))
        response = self.session.post(
            self.url,
            params=params,
            data=body.encode("utf-8"),
            headers={"Content-Type": "text/plain;charset=UTF-8"},
            timeout=timeout,
            verify=self.server.verify,
        )
        response.encoding = "utf-8"
        return response

    def poll(self, timeout: float = REQUEST_TIMEOUT) -> list[str]:
        response = self.get(timeout=timeout)
        assert response.status_code == 200, (response.status_code, response.text)
        packets = decode_payload(response.text)
        self.received.extend(packets)
        return packets

    def collect(self, predicate, timeout: float = 30.0) -> list[str]:
        """Poll until ``predicate(all packets received so far)`` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; received so far {self.received!r}")
            self.poll(timeout=max(remaining, 1.0) + 5)
        return self.received

    def ack_for(self, ack_id: int, endpoint: str = "") -> str | None:
        prefix = f"6::{endpoint}:{ack_id}"
        for packet in self.received:
            if packet == prefix or packet.startswith(prefix + "+"):
                return packet
        return None

    def call(self, name: str, *args, ack_id: int, endpoint: str = "", timeout: float = 30.0) -> list:
        """POST an event with a data ack and poll until the ack arrives; return its args."""
        response = self.post(event_packet(name, *args, ack_id=ack_id, endpoint=endpoint))
        assert response.status_code == 200 and response.text == "1", (response.status_code, response.text)
        self.collect(lambda _: self.ack_for(ack_id, endpoint) is not None, timeout=timeout)
        packet = self.ack_for(ack_id, endpoint)
        data = packet.split(":", 3)[3]
        _, _, payload = data.partition("+")
        return json.loads(payload) if payload else []

    def events(self, name: str | None = None) -> list[tuple[str, list]]:
        found = [parse_event(p) for p in self.received if p.startswith("5:")]
        return [e for e in found if name is None or e[0] == name]


class Background:
    """Run one blocking call in a thread and keep its result or exception."""

    def __init__(self, fn, *args, **kwargs):
        self.result = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args, kwargs), daemon=True)
        self._thread.start()

    def _run(self, fn, args, kwargs):
        try:
            self.result = fn(*args, **kwargs)
        except BaseException as exc:  # reported to the test by join()
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float = 30.0):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"background call still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


# ---------------------------------------------------------------------------
# the browser page
# ---------------------------------------------------------------------------


class SioPage:
    """Drive ``window.T`` of ``tests/apps/e2e_page.html`` in one Playwright page."""

    def __init__(self, page, server: LiveServer):
        self.page = page
        self.server = server

    def js(self, expression: str, *args):
        return self.page.evaluate(expression, list(args))

    def connect(self, key: str, path: str, transports: list[str], **extra) -> None:
        self.js("([k, p, t, e]) => T.connect(k, p, t, e)", key, path, transports, extra)

    def of(self, key: str, base_key: str, namespace: str) -> None:
        self.js("([k, b, n]) => T.of(k, b, n)", key, base_key, namespace)

    def of_with_query(self, key: str, base_key: str, namespace: str, qs: str) -> None:
        self.js("([k, b, n, q]) => T.ofWithQuery(k, b, n, q)", key, base_key, namespace, qs)

    def answer(self, key: str, event: str, *args) -> None:
        self.js("([k, e, a]) => T.answer(k, e, a)", key, event, list(args))

    def emit(self, key: str, name: str, *args) -> None:
        self.js("([k, n, a]) => T.emit(k, n, a)", key, name, list(args))

    def emit_ack(self, key: str, name: str, *args, timeout_ms: int = 30_000) -> list:
        return self.js(
            "([k, n, a, t]) => T.emitAck(k, n, a, t)", key, name, list(args), timeout_ms
        )

    def emit_record_ack(self, key: str, name: str, *args, slot: str) -> None:
        self.js("([k, n, a, s]) => T.emitRecordAck(k, n, a, s)", key, name, list(args), slot)

    def acks(self) -> dict:
        return self.js("() => T.acks")

    def events(self, key: str, name: str | None = None) -> list[dict]:
        if name is None:
            return self.js("([k]) => T.events(k)", key)
        return self.js("([k, n]) => T.events(k, n)", key, name)

    def names(self, key: str) -> list[str]:
        return self.js("([k]) => T.names(k)", key)

    def count(self, key: str, name: str) -> int:
        return self.js("([k, n]) => T.count(k, n)", key, name)

    def wait_event(self, key: str, name: str, count: int = 1, timeout_ms: int = 30_000) -> list[dict]:
        try:
            self.page.wait_for_function(
                "([k, n, c]) => T.count(k, n) >= c",
                arg=[key, name, count],
                polling=50,
                timeout=timeout_ms,
            )
        except Exception as exc:
            raise AssertionError(
                f"{key!r} did not see {count} x {name!r} within {timeout_ms} ms; "
                f"it saw {self.names(key)}; wire in {self.wire_recv()[-20:]}; "
                f"wire out {self.wire_sent()[-20:]}"
            ) from exc
        return self.events(key, name)

    def wait_any(self, key: str, names: list[str], timeout_ms: int = 30_000) -> str:
        """Wait until one of ``names`` is seen on ``key``; return the first one seen."""
        try:
            self.page.wait_for_function(
                "([k, ns]) => T.names(k).some(n => ns.includes(n))",
                arg=[key, names],
                polling=50,
                timeout=timeout_ms,
            )
        except Exception as exc:
            raise AssertionError(
                f"{key!r} saw none of {names} within {timeout_ms} ms; it saw {self.names(key)}; "
                f"wire in {self.wire_recv()[-20:]}; wire out {self.wire_sent()[-20:]}"
            ) from exc
        return next(n for n in self.names(key) if n in names)

    def wait_connected(self, key: str, timeout_ms: int = 30_000) -> str:
        self.wait_event(key, "connect", timeout_ms=timeout_ms)
        return self.sid(key)

    def sid(self, key: str) -> str:
        return self.js("([k]) => T.sid(k)", key)

    def transport(self, key: str) -> str | None:
        return self.js("([k]) => T.transport(k)", key)

    def connected(self, key: str) -> bool:
        return self.js("([k]) => T.connected(k)", key)

    def disconnect(self, key: str) -> None:
        self.js("([k]) => T.disconnect(k)", key)

    def wire_sent(self) -> list[str]:
        return self.js("() => T.wireSent")

    def wire_recv(self) -> list[str]:
        return self.js("() => T.wireRecv")


def wait_for_ms(page, milliseconds: int) -> None:
    """Let ``milliseconds`` of wall time pass inside the page (for liveness tests)."""
    page.wait_for_function(
        "([start, ms]) => Date.now() - start >= ms",
        arg=[page.evaluate("() => Date.now()"), milliseconds],
        polling=50,
        timeout=milliseconds + 30_000,
    )


class WsClient:
    """A raw 0.9 client over a WebSocket (or flashsocket) URL: it answers
    heartbeats and keeps every frame it received."""

    def __init__(self, server, transport: str = "websocket", handshake_with=None):
        """:param handshake_with: the server to handshake with, when not
        ``server`` (a load balancer that sends the two elsewhere)."""
        self.sid = handshake(handshake_with or server)[0]
        self.ws = websocket.create_connection(f"{server.ws_url}/socket.io/1/{transport}/{self.sid}", timeout=30)
        self.received: list[str] = []

    def send(self, packet: str) -> None:
        self.ws.send(packet)

    def recv_until(self, predicate, timeout: float = 30.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out; received {self.received!r}")
            self.ws.settimeout(remaining)
            frame = self.ws.recv()
            if frame == "2::":
                self.ws.send("2::")
            self.received.append(frame)
        return self.received

    def call(self, name, *args, ack_id):
        self.ws.send(event_packet(name, *args, ack_id=ack_id))
        prefix = f"6:::{ack_id}"
        self.recv_until(lambda got: any(p == prefix or p.startswith(prefix + "+") for p in got))
        packet = next(p for p in self.received if p == prefix or p.startswith(prefix + "+"))
        payload = packet[len(prefix) + 1:]
        return json.loads(payload) if payload else []

    def close(self):
        self.ws.close()
