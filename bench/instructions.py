"""Instructions per message of flask_sio09's hub, counted by Valgrind's callgrind.

CPU seconds per message (``run.py``) move by 10 to 30% from one run to the next
on a shared machine; the instructions a server executes for the same client
actions hardly move (within 1 to 1.5% between runs here). This tool counts them, to
tell whether a code change made the hub's work per message larger or smaller:

    .venv/bin/python bench/instructions.py                    # this work tree
    .venv/bin/python bench/instructions.py --pythonpath ../old --label old

It runs the bench app (``apps/sio09_app.py``, hub mode) under ``gunicorn -k
gthread -w 1`` inside ``valgrind --tool=callgrind``, with counting off until
``loadgen.js``'s clients are connected and warmed up, then counts the user-space
instructions of the worker process over the timed messages only. Under Valgrind
the server runs some 50 times slower, so its rounds batch fewer messages than at
full speed: the figure compares code, not servers; CPU per message against Node
is ``run.py``'s job. Needs ``valgrind`` (Debian: ``apt install valgrind``), Node.js
and the ``ws`` package that ``run.py`` installs into ``bench/.peers``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NODE_MODULES = HERE / ".peers" / "node_modules"
#: workload name -> loadgen.js transport
WORKLOADS = {"poll": "xhr-polling", "ws": "websocket"}


def free_port() -> int:
    """A free loopback port (for the server under Valgrind)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def total_instructions(dump: Path) -> int:
    """The instruction count (``Ir``) of a callgrind dump: its ``totals:``
    line (the ``summary:`` line of a dump made with ``callgrind_control -d``
    after counting was switched on reads 0)."""
    for line in dump.read_text(errors="replace").splitlines():
        match = re.match(r"totals:\s+(\d+)", line)
        if match:
            return int(match.group(1))
    raise ValueError(f"{dump}: no totals line")


def worker_pid(master: int, deadline: float) -> int:
    """gunicorn's one worker: the child of ``master`` (Valgrind follows the fork)."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == master:
                    return int(entry.name)
        time.sleep(0.5)
    raise RuntimeError("gunicorn started no worker")


def wait_ready(server: subprocess.Popen[bytes], port: int, deadline: float) -> None:
    """Wait until the server answers a handshake; fail if it exits first."""
    url = f"http://127.0.0.1:{port}/socket.io/1/"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited ({server.returncode}); see its log")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"no answer on {url}")


def measure(worker: int, port: int, workload: str, clients: int, acks: int,
            out: Path, tag: str) -> int:
    """Drive one loadgen.js run; the instructions of its timed messages."""
    env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
    cmd = ["node", str(HERE / "loadgen.js"), "--port", str(port), "--transport",
           WORKLOADS[workload], "--clients", str(clients), "--total", str(acks),
           "--warmup", "200", "--max-seconds", "900", "--connect-seconds", "300"]
    loadgen = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                               env=env)
    try:
        done = _drive(loadgen, worker, tag)
    finally:
        if loadgen.poll() is None:  # (interrupted, or the server failed)
            loadgen.kill()
            loadgen.wait()
    if done.get("messages") != acks or any(done.get(k) for k in ("lost", "wrong", "extra")):
        raise RuntimeError(f"the load generator's run was not clean: {done or 'no result'}")
    dumps = sorted(out.glob(f"cg.{worker}.out.*"), key=lambda p: p.stat().st_mtime)
    if not dumps:
        raise RuntimeError("callgrind wrote no dump")
    return total_instructions(dumps[-1])


def _drive(loadgen: subprocess.Popen[str], worker: int, tag: str) -> dict[str, object]:
    """Answer loadgen.js's checkpoints, counting from "ready" to "done"; its
    "done" event."""
    assert loadgen.stdin is not None and loadgen.stdout is not None
    done: dict[str, object] = {}
    for line in loadgen.stdout:
        event = json.loads(line)
        if event.get("event") == "ready":
            subprocess.run(["callgrind_control", "-z", str(worker)], capture_output=True,
                           check=True)
            subprocess.run(["callgrind_control", "-i", "on", str(worker)], capture_output=True,
                           check=True)
        elif event.get("event") == "done":
            subprocess.run(["callgrind_control", "-i", "off", str(worker)], capture_output=True,
                           check=True)
            subprocess.run(["callgrind_control", "-d", tag, str(worker)], capture_output=True,
                           check=True)
            done = event
        if event.get("event") in ("ready", "done", "warmed"):
            loadgen.stdin.write("next\n")
            loadgen.stdin.flush()
    loadgen.wait(timeout=60)
    return done


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # (all gone already)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="poll,ws",
                        help="comma-separated: poll (xhr-polling), ws (websocket)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--acks", type=int, default=1000, help="timed acks per run")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--pythonpath", default=str(ROOT),
                        help="where flask_sio09 is imported from (another work tree)")
    parser.add_argument("--label", default="this tree")
    parser.add_argument("--port", type=int, default=0,
                        help="the server's loopback port (default: a free one)")
    args = parser.parse_args(argv)
    unknown = set(args.workloads.split(",")) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    for tool in ("valgrind", "callgrind_control", "node"):
        if shutil.which(tool) is None:
            print(f"instructions.py: {tool} not found", file=sys.stderr)
            return 2
    if not (NODE_MODULES / "ws").is_dir():
        print("instructions.py: run bench/run.py once to install the ws package",
              file=sys.stderr)
        return 2
    # a SIGTERM or SIGHUP (a closed terminal) ends the run as Ctrl-C does:
    # through the clean-up below, which stops the server under Valgrind (its
    # own process group) and the generator
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    import run as bench_run  # (bench/ is this script's directory)

    env = dict(os.environ, SIO09_BENCH_MODE="hub", PYTHONPATH=args.pythonpath)
    tree = bench_run.measured_tree(sys.executable, env)
    print(f"{args.label}: flask_sio09 at {bench_run.revision(tree)}", flush=True)
    port = args.port or free_port()
    out = Path(tempfile.mkdtemp(prefix="sio09-callgrind-"))
    cmd = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
           f"--callgrind-out-file={out}/cg.%p.out", sys.executable, "-m", "gunicorn",
           "-k", "gthread", "-w", "1", "--threads", "20", "-b", f"127.0.0.1:{port}",
           "--chdir", str(HERE / "apps"), "--log-level", "warning", "sio09_app:app"]
    log = open(out / "server.log", "w")
    # (from bench/apps: ``python -m`` puts the working directory first on
    # sys.path, where the repository root would shadow --pythonpath)
    server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                              stderr=subprocess.STDOUT, env=env, cwd=HERE / "apps",
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        wait_ready(server, port, deadline)
        worker = worker_pid(server.pid, deadline)
        for run in range(args.repeat):
            for workload in args.workloads.split(","):
                count = measure(worker, port, workload, args.clients, args.acks, out,
                                f"{workload}{run}")
                print(f"{args.label}: {workload}, {args.clients} clients: "
                      f"{count / args.acks:,.0f} instructions per ack", flush=True)
    finally:
        _signal_group(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        _signal_group(server.pid, signal.SIGKILL)  # (what is left of it: a worker)
        server.wait()
        log.close()
        if sys.exc_info()[0] not in (None, SystemExit, KeyboardInterrupt):
            sys.stderr.write((out / "server.log").read_text(errors="replace")[-2000:])
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # (cleaned up in main)
        sys.exit(130)
