"""Micro-benchmark: flask_sio09.wsframe against wsproto on the same byte streams.

Usage (from the repository root)::

    .venv/bin/python bench/wsframe_bench.py [--seconds 0.5] [--repeat 5]

Each workload is one fixed byte stream (client frames, masked) or one list of
outgoing messages, prepared once and given to both libraries. The figure is frames
per second of this process's CPU time, the best of ``--repeat`` runs of at least
``--seconds`` each, the libraries' runs alternating (see :func:`best_rates`: CPU
time and best-of because the machine is shared).
Every workload first checks that both libraries produce the same messages, so
the numbers compare equal work.

Readers: ``FrameReader.feed`` against wsproto's ``FrameProtocol(client=False)``
(the framing layer alone) and against a server ``wsproto.Connection`` (what a hub
built on wsproto would call: it adds event objects and the close state machine).
Writers: ``encode_text`` against ``FrameProtocol.send_data`` and
``Connection.send(Message(...))``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import wsproto  # noqa: E402
from wsproto.connection import Connection, ConnectionType  # noqa: E402
from wsproto.events import BytesMessage, Message, TextMessage  # noqa: E402
from wsproto.frame_protocol import FrameProtocol  # noqa: E402

from flask_sio09 import wsframe  # noqa: E402

# A typical Socket.IO 0.9 event packet, and one with an ack and some unicode.
SMALL = '5:::{"name":"echo","args":["hello world",1,2,3]}'
MEDIUM = '5:1+::{"name":"chat","args":["' + "héllo wörld ✓ " * 40 + '"]}'


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 §5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
    key = (mask * (n // 4 + 1))[:n]
    body = bytes(a ^ b for a, b in zip(payload, key)) if n < 4096 else (
        (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big"))
    return head + mask + body


# ---------------------------------------------------------------------------
# reader workloads: a list of chunks (one recv() each) and the frame count
# ---------------------------------------------------------------------------


def small_text_per_recv(count: int = 2000) -> tuple[list[bytes], int]:
    """The hub's common case: one small complete text frame per recv()."""
    return [client_frame(1, SMALL.encode()) for _ in range(count)], count


def medium_text_batched(count: int = 400) -> tuple[list[bytes], int]:
    """~700-byte text frames, 8 of them per recv()."""
    frames = [client_frame(1, MEDIUM.encode()) for _ in range(count)]
    return [b"".join(frames[i:i + 8]) for i in range(0, count, 8)], count


def fragmented_with_pings(count: int = 300) -> tuple[list[bytes], int]:
    """Text messages in 3 fragments with a ping between, in 100-byte reads."""
    stream = b""
    for _ in range(count // 4):
        stream += client_frame(1, SMALL[:10].encode(), fin=False)
        stream += client_frame(9, b"hb")
        stream += client_frame(0, SMALL[10:30].encode(), fin=False)
        stream += client_frame(0, SMALL[30:].encode(), fin=True)
    return [stream[i:i + 100] for i in range(0, len(stream), 100)], count // 4 * 4


def large_binary_chunked(count: int = 4) -> tuple[list[bytes], int]:
    """256 KiB binary messages arriving in 64 KiB reads."""
    payload = os.urandom(256 * 1024)
    stream = b"".join(client_frame(2, payload) for _ in range(count))
    return [stream[i:i + 65536] for i in range(0, len(stream), 65536)], count


READ_WORKLOADS = {
    "small text, 1 frame per recv": small_text_per_recv,
    "700 B text, 8 frames per recv": medium_text_batched,
    "fragmented text + ping, 100 B recvs": fragmented_with_pings,
    "256 KiB binary, 64 KiB recvs": large_binary_chunked,
}


def ours_read(chunks: list[bytes]) -> list:
    reader = wsframe.FrameReader(max_message_size=1 << 30)
    feed = reader.feed
    out: list = []
    for chunk in chunks:
        out += feed(chunk)
    return out


def wsproto_frames_read(chunks: list[bytes]) -> list:
    """Framing layer: join partial data frames into messages, as a hub would."""
    proto = FrameProtocol(client=False, extensions=[])
    out: list = []
    parts: list = []
    for chunk in chunks:
        proto.receive_bytes(chunk)
        for frame in proto.received_frames():
            op = frame.opcode
            if op == 9:
                out.append(("ping", frame.payload))
            elif op == 10:
                out.append(("pong", frame.payload))
            elif op == 8:
                out.append(("close",) + tuple(frame.payload))
            else:
                parts.append(frame.payload)
                if frame.message_finished:
                    data = parts[0][:0].join(parts)
                    out.append(("text" if isinstance(data, str) else "binary", data))
                    parts = []
    return out


def _server_connection() -> Connection:
    return Connection(ConnectionType.SERVER)


def wsproto_connection_read(chunks: list[bytes]) -> list:
    conn = _server_connection()
    out: list = []
    parts: list = []
    for chunk in chunks:
        conn.receive_data(chunk)
        for event in conn.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                parts.append(event.data)
                if event.message_finished:
                    data = parts[0][:0].join(parts)
                    out.append(("text" if isinstance(data, str) else "binary", data))
                    parts = []
            else:
                out.append((type(event).__name__.lower(), getattr(event, "payload", None)))
    return out


# ---------------------------------------------------------------------------
# writer workloads
# ---------------------------------------------------------------------------

WRITE_WORKLOADS = {
    "encode small text": [SMALL] * 2000,
    "encode 700 B text": [MEDIUM] * 1000,
    "encode 70 KiB text": ["x" * 70_000] * 50,
}


def ours_write(messages: list[str]) -> list[bytes]:
    encode = wsframe.encode_text
    return [encode(m) for m in messages]


def wsproto_frames_write(messages: list[str]) -> list[bytes]:
    proto = FrameProtocol(client=False, extensions=[])
    return [bytes(proto.send_data(m)) for m in messages]


def wsproto_connection_write(messages: list[str]) -> list[bytes]:
    conn = _server_connection()
    return [conn.send(Message(data=m)) for m in messages]


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


def best_rates(funcs: list[Callable], arg, frames: int, seconds: float,
               repeat: int) -> list[float]:
    """Frames per CPU second for each of ``funcs``: best of ``repeat`` runs each.

    A run calls one function for at least ``seconds`` of CPU time. The runs of the
    functions alternate, so a burst of load elsewhere hits all of them alike, and
    the time is this process's CPU time (``time.process_time``), which other
    processes on a shared machine disturb far less than the wall clock.
    """
    best = [0.0] * len(funcs)
    for _ in range(repeat):
        for index, func in enumerate(funcs):
            loops = 0
            start = time.process_time()
            while True:
                func(arg)
                loops += 1
                elapsed = time.process_time() - start
                if elapsed >= seconds:
                    break
            best[index] = max(best[index], loops * frames / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    print(f"Python {sys.version.split()[0]}, wsproto {wsproto.__version__}; "
          f"best of {args.repeat} x {args.seconds} CPU s; frames per CPU second "
          "(higher is better)")
    header = f"{'workload':40} {'wsframe':>12} {'wsproto frm':>12} {'wsproto conn':>12}" \
             f" {'x frm':>7} {'x conn':>7}"
    print(header)
    print("-" * len(header))
    for name, make in READ_WORKLOADS.items():
        chunks, frames = make()
        expected = ours_read(chunks)
        assert wsproto_frames_read(chunks) == expected, name
        conn_events = wsproto_connection_read(chunks)
        assert [e for e in conn_events if e[0] in ("text", "binary")] == [
            e for e in expected if e[0] in ("text", "binary")], name
        ours, frm, conn = best_rates(
            [ours_read, wsproto_frames_read, wsproto_connection_read], chunks, frames,
            args.seconds, args.repeat)
        print(f"{'read: ' + name:40} {ours:12,.0f} {frm:12,.0f} {conn:12,.0f}"
              f" {ours / frm:7.1f} {ours / conn:7.1f}")
    for name, messages in WRITE_WORKLOADS.items():
        expected = ours_write(messages)
        assert wsproto_frames_write(messages) == expected, name
        assert wsproto_connection_write(messages) == expected, name
        ours, frm, conn = best_rates(
            [ours_write, wsproto_frames_write, wsproto_connection_write], messages,
            len(messages), args.seconds, args.repeat)
        print(f"{name:40} {ours:12,.0f} {frm:12,.0f} {conn:12,.0f}"
              f" {ours / frm:7.1f} {ours / conn:7.1f}")


if __name__ == "__main__":
    main()
