"""Micro-benchmarks of the packet codec (flask_sio09.packet), in operations per second.

    .venv/bin/python bench/codec.py [--quick] [--save FILE] [--baseline FILE]

Every message the server handles goes through ``decode`` or ``encode`` once, and
every polling response through ``frame``; a slow change to packet.py shows here
first, without servers or sockets. Each case is timed with ``timeit``: the loop
count comes from ``autorange`` (at least 0.2 s), and the best of several repeats
is kept, the one least disturbed by other processes on the machine.

``--save`` writes the figures as JSON; ``--baseline`` reads such a file and adds a
column "vs baseline" (above 1.00 is faster), which is how to check a change to
packet.py: save on the old code, run on the new.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without the package installed
    sys.path.insert(0, str(ROOT))

from flask_sio09 import packet  # noqa: E402  (after the path fix above)

TEXT = "abcdefghijklmnopqrstuvwxyz0123456789" * 2          # 72 ASCII characters
WIDE = "h\u00e9llo w\u00f6rld \u2603 \U0001f600 " * 4       # non-ASCII, astral included

EVENT = {"type": "event", "name": "echo", "args": [TEXT], "id": 12, "ack": "data",
         "endpoint": ""}
ACK = {"type": "ack", "ackId": 12, "args": [TEXT], "endpoint": ""}
OBJECT_EVENT = {"type": "event", "name": "chat", "endpoint": "/chat",
                "args": [{"user": "ann", "text": TEXT, "n": 42, "tags": ["a", "b"]}]}
HEARTBEAT = {"type": "heartbeat", "endpoint": ""}
WIDE_EVENT = {"type": "event", "name": "echo", "args": [WIDE], "endpoint": ""}


def cases() -> list[tuple[str, Callable[[], Any]]]:
    """(name, zero-argument callable) for each measured operation."""
    event_wire = packet.encode(EVENT)
    ack_wire = packet.encode(ACK)
    object_wire = packet.encode(OBJECT_EVENT)
    ten = [EVENT, ACK, HEARTBEAT, OBJECT_EVENT, EVENT] * 2
    ten_wire = [packet.encode(p) for p in ten]
    payload = packet.frame(ten_wire)
    wide_wire = [packet.encode(WIDE_EVENT)] * 10
    wide_payload = packet.frame(wide_wire)
    return [
        ("encode event + data ack", lambda: packet.encode(EVENT)),
        ("encode ack", lambda: packet.encode(ACK)),
        ("encode event, object arg", lambda: packet.encode(OBJECT_EVENT)),
        ("encode heartbeat", lambda: packet.encode(HEARTBEAT)),
        ("decode event + data ack", lambda: packet.decode(event_wire)),
        ("decode ack", lambda: packet.decode(ack_wire)),
        ("decode event, object arg", lambda: packet.decode(object_wire)),
        ("decode heartbeat", lambda: packet.decode("2::")),
        ("encode_payload, 10 packets", lambda: packet.encode_payload(ten)),
        ("decode_payload, 10 packets", lambda: packet.decode_payload(payload)),
        ("frame, 10 packets", lambda: packet.frame(ten_wire)),
        ("split_payload, 10 packets", lambda: packet.split_payload(payload)),
        ("frame, 10 non-ASCII packets", lambda: packet.frame(wide_wire)),
        ("split_payload, 10 non-ASCII", lambda: packet.split_payload(wide_payload)),
        ("frame, 1 packet", lambda: packet.frame([event_wire])),
    ]


def measure(fn: Callable[[], Any], repeats: int, min_time: float) -> float:
    """Best operations per second of ``repeats`` runs of at least ``min_time`` s."""
    timer = timeit.Timer(fn)
    loops, elapsed = timer.autorange()
    if elapsed < min_time:  # autorange stops at 0.2 s; make each run long enough
        loops = max(loops, int(loops * min_time / max(elapsed, 1e-9)))
    best = min(timer.repeat(repeat=repeats, number=loops))
    return loops / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter repeats")
    parser.add_argument("--save", type=Path, help="write the figures as JSON to this file")
    parser.add_argument("--baseline", type=Path, help="compare with a file written by --save")
    args = parser.parse_args(argv)
    repeats, min_time = (3, 0.1) if args.quick else (5, 0.2)
    baseline: dict[str, float] = {}
    if args.baseline:
        baseline = json.loads(args.baseline.read_text())["ops_per_s"]

    figures: dict[str, float] = {}
    width = max(len(name) for name, _ in cases())
    header = f"| {'operation':<{width}} | {'ops/s':>12} | {'µs/op':>8} |"
    rule = f"|{'-' * (width + 2)}|{'-' * 14}|{'-' * 10}|"
    if baseline:
        header += " vs baseline |"
        rule += "-------------|"
    print(header)
    print(rule)
    for name, fn in cases():
        rate = measure(fn, repeats, min_time)
        figures[name] = rate
        line = f"| {name:<{width}} | {rate:>12,.0f} | {1e6 / rate:>8.2f} |"
        if baseline:
            old = baseline.get(name)
            line += f" {rate / old:>11.2f} |" if old else f" {'—':>11} |"
        print(line, flush=True)
    print(f"\nPython {sys.version.split()[0]}; best of {repeats} runs per operation.")
    if args.save:
        args.save.write_text(json.dumps({"python": sys.version, "ops_per_s": figures},
                                        indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
