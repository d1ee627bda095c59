"""Run the bench: every server, every workload, one table with ratio columns.

    .venv/bin/python bench/run.py [--quick] [--modes thread,hub] [--servers ...]
                                  [--workloads ...] [--thread-cap 1000] [--no-install]

What it does, in order:

1. Installs the peers when missing, into bench/.peers/ (git-ignored): the npm
   packages ``socket.io@0.9.19`` (the Node reference) and ``ws`` (for the load
   generator) into bench/.peers/node_modules, and ``flask-socketio`` 5 with
   simple-websocket and the same gunicorn into the venv bench/.peers/venv.
2. For each workload and each server: starts the server on 127.0.0.1 (a fresh
   process each time, so that memory readings start clean), runs
   bench/loadgen.js against it, reads the server's CPU time (its process CPU
   clock), RSS and thread count (/proc) at the load generator's checkpoints, and
   stops the server. Each run's server log is kept, in
   bench/.peers/logs/<date-time>/.
3. Prints one Markdown table: each server's figures, the ratios of flask_sio09
   (each mode) to Node and to Flask-SocketIO, and the issue's targets with a
   verdict. The raw numbers (each server's result and every single run) go to
   bench/.peers/results/ as JSON, the table beside them as Markdown.

Servers: Node socket.io 0.9.19 (a plain node process), Flask-SocketIO 5 in
threading mode, a bare simple-websocket echo (thread mode's floor), a bare
selector echo (the hub's floor), and flask_sio09 in each
``websocket_mode`` given by ``--modes``; the Python ones under
``gunicorn -k gthread -w 1``. Server CPU is the worker process's CPU time (every
thread, read from its process CPU clock in nanoseconds; utime + stime from
/proc/<pid>/stat, in clock ticks, is kept beside it as a cross-check), between the
load generator's "ready" and "done".

A run in which any message was lost, wrong or extra (a duplicate, an ack for no
emit), a client failed to connect or was dropped, or an idle client missed a
heartbeat during the hold, is a failed run: it shows as failed, feeds no ratio and
no verdict, and with ``--repeat`` one failed run fails that server's workload.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = HERE / "apps"
PEERS = HERE / ".peers"
NODE_MODULES = PEERS / "node_modules"
PEER_VENV = PEERS / "venv"
LOGS = PEERS / "logs"
RESULTS = PEERS / "results"

#: the Node peers, pinned so that two runs compare the same code
NPM_PACKAGES = {"socket.io": "0.9.19", "ws": "8.23.0"}
FSIO_REQUIREMENT = "flask-socketio>=5,<6"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: the load generator's share of one core (%) from which it, not the server, may
#: be what limits throughput
LOADGEN_SATURATED_PCT = 90.0
#: threads of a server that holds no connection in a thread (hub, Node aside)
THREADS = 100
#: extra gunicorn threads for a thread-per-connection server, beyond one per client
THREAD_MARGIN = 50
#: open files wanted by the servers and the load generator (10,000 sockets each)
NOFILE_WANTED = 65536


# -- servers ------------------------------------------------------------------

@dataclass(frozen=True)
class ServerSpec:
    """One server of the comparison."""

    key: str
    label: str
    proto: str                          # what loadgen.js speaks to it: "09" or "eio4"
    thread_per_connection: bool         # holds each WebSocket in a thread of its own
    module: str = ""                    # gunicorn app module in bench/apps ("" for Node)
    mode: str = ""                      # flask_sio09's websocket_mode
    polling: bool = True                # serves the xhr-polling workload

    @property
    def is_sio09(self) -> bool:
        return bool(self.mode)


NODE = ServerSpec("node", "Node socket.io 0.9.19", "09", False)
FSIO = ServerSpec("fsio", "Flask-SocketIO 5 (threading)", "eio4", True, module="fsio_app")
BARE = ServerSpec("bare", "bare simple-websocket echo", "09", True, module="bare_echo",
                  polling=False)
SELECT = ServerSpec("select", "bare selector echo", "09", False, module="select_echo",
                    polling=False)
#: the bare echoes answer emit + ack only
ECHO_ONLY = frozenset({"bare", "select"})


def sio09_spec(mode: str) -> ServerSpec:
    return ServerSpec(f"sio09-{mode}", f"flask_sio09 {mode}", "09", mode == "thread",
                      module="sio09_app", mode=mode)


# -- workloads ------------------------------------------------------------------

@dataclass(frozen=True)
class Workload:
    """One workload: what loadgen.js does and how the server is set up for it."""

    key: str
    title: str
    kind: str                           # loadgen.js --workload: echo, bcast or idle
    clients: int
    transport: str = "websocket"
    total: int = 0                      # acks or deliveries to aim for
    max_seconds: float = 15
    heartbeat: tuple[float, float] | None = None    # (interval, timeout) seconds
    hold: float = 0
    only: frozenset[str] = frozenset()  # server keys it runs on ("" = every one)

    def __post_init__(self) -> None:
        if self.kind == "idle":
            interval, timeout = self.heartbeat or (0.0, 0.0)
            # A server that never reads the answers drops a client one timeout after
            # its last answer (flask_sio09), or after the next heartbeat (Node): a
            # shorter hold would end before that and pass such a server.
            if not 0 < interval < timeout or self.hold <= timeout + interval:
                raise ValueError(f"{self.key}: the hold ({self.hold} s) must be longer than "
                                 f"the heartbeat timeout plus one interval {self.heartbeat}")

    @property
    def heartbeats_wanted(self) -> int:
        """Heartbeats every client must receive and answer during the hold: one
        interval fewer than fit in it, since the first may come late and each
        server counts its interval from its own clock (Node from the last answer)."""
        if self.heartbeat is None:
            return 0
        return max(1, int(self.hold // self.heartbeat[0]) - 1)

    def loadgen_args(self) -> list[str]:
        args = ["--workload", self.kind, "--clients", str(self.clients),
                "--transport", self.transport, "--max-seconds", str(self.max_seconds)]
        if self.total:
            args += ["--total", str(self.total)]
        if self.kind == "idle":
            args += ["--hold", str(self.hold), "--min-heartbeats", str(self.heartbeats_wanted)]
        return args


def workloads(quick: bool) -> list[Workload]:
    """The workloads of issue 5, with counts for a full or a quick run."""
    # Every server of the bench gets the same heartbeat interval and timeout; the
    # hold outlasts the timeout plus an interval, so that a server that ignores the
    # answers has dropped its clients before the end (Workload checks it).
    if quick:
        acks, seconds, deliveries, idle_sizes = 5_000, 5.0, 50_000, (1_000,)
        heartbeat, hold = (2.0, 5.0), 9.0
    else:
        # (60,000 acks: a fast server's timed run lasts about 2 s; at 20,000 it
        # lasted 0.6 s, and one burst of other work moved a run's CPU by a third)
        acks, seconds, deliveries, idle_sizes = 60_000, 15.0, 200_000, (1_000, 3_000, 10_000)
        heartbeat, hold = (4.0, 10.0), 16.0
    found = [
        Workload("echo10", "emit+ack, 10 clients", "echo", 10, total=acks, max_seconds=seconds),
        Workload("echo200", "emit+ack, 200 clients", "echo", 200, total=acks,
                 max_seconds=seconds),
        Workload("bcast500", "broadcast to 500", "bcast", 500, total=deliveries,
                 max_seconds=seconds),
        Workload("poll20", "20 xhr-polling clients", "echo", 20, transport="xhr-polling",
                 total=acks // 2, max_seconds=seconds),
    ]
    found += [Workload(f"idle{n}", f"{n:,} idle WebSockets", "idle", n, heartbeat=heartbeat,
                       hold=hold, max_seconds=hold) for n in idle_sizes]
    return found


ALL_WORKLOADS = ("echo10", "echo200", "bcast500", "poll20", "idle1000", "idle3000", "idle10000")


# -- /proc readings -----------------------------------------------------------------

def process_cpu_clock(pid: int) -> float | None:
    """Seconds of CPU used so far by process ``pid``, every thread, those that
    have ended included, in nanoseconds; None where the OS does not offer it.

    This is ``clock_getcpuclockid(pid)``'s clock, which Python does not wrap:
    glibc makes the id as ``(~pid << 3) | CPUCLOCK_SCHED`` and Linux lets any
    process read it. /proc/<pid>/stat's utime + stime count in clock ticks
    (10 ms), which made a quick run's figures multiples of 0.02 s per 10k; the
    per-thread /proc/<pid>/task/*/schedstat lose the threads that end.
    """
    try:
        return time.clock_gettime((~pid << 3) | 2)
    except (OSError, OverflowError):
        return None


@dataclass
class Sample:
    """A server process at one moment."""

    cpu_s: float                        # the process CPU clock, or cpu_ticks_s without one
    rss_kib: int
    threads: int
    cpu_ticks_s: float = 0.0            # utime + stime from /proc/<pid>/stat (10 ms ticks)

    @classmethod
    def read(cls, pid: int) -> Sample:
        with open(f"/proc/{pid}/stat") as f:
            # the command name may hold spaces: fields are counted after its ")"
            fields = f.read().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        precise = process_cpu_clock(pid)
        rss = threads = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("Threads:"):
                    threads = int(line.split()[1])
        ticks = (utime + stime) / CLK_TCK
        return cls(ticks if precise is None else precise, rss, threads, ticks)


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


# -- processes ------------------------------------------------------------------------

def raise_nofile() -> None:
    """In a child before exec: as many open files as the hard limit allows, so
    that 10,000 sockets fit in the server and in the load generator."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def nofile_available() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return NOFILE_WANTED if hard == resource.RLIM_INFINITY else min(NOFILE_WANTED, hard)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_env() -> dict[str, str]:
    env = os.environ.copy()
    env["NODE_PATH"] = str(NODE_MODULES)
    return env


class ServerFailed(RuntimeError):
    """The server did not start or died."""


class RunningServer:
    """A server process started for one workload, stopped by its own PIDs."""

    def __init__(self, spec: ServerSpec, workload: Workload, python: str, log: TextIO) -> None:
        self.spec = spec
        self.port = free_port()
        env = node_env() if not spec.module else os.environ.copy()
        interval, timeout = workload.heartbeat or (25.0, 60.0)
        env.update(PORT=str(self.port), HEARTBEAT_INTERVAL=str(interval),
                   HEARTBEAT_TIMEOUT=str(timeout), SIO09_BENCH_MODE=spec.mode or "thread",
                   PYTHONUNBUFFERED="1")
        self.threads = THREADS
        if not spec.module:
            cmd = ["node", str(APPS / "node09.js")]
        else:
            if spec.thread_per_connection:
                self.threads = max(THREADS, workload.clients + THREAD_MARGIN)
            cmd = [python, "-m", "gunicorn", "-k", "gthread", "-w", "1",
                   "--threads", str(self.threads),
                   # gthread stops accepting past worker_connections (default 1,000)
                   "--worker-connections", str(max(1000, workload.clients * 2 + 100)),
                   "-b", f"127.0.0.1:{self.port}", "--chdir", str(APPS),
                   "--log-level", "warning", "--graceful-timeout", "3", f"{spec.module}:app"]
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, env=env,
                                     # (a Python server from bench/apps: ``-m`` puts the
                                     # working directory first on sys.path, ahead of a
                                     # PYTHONPATH naming another work tree to measure)
                                     cwd=APPS if spec.module else ROOT,
                                     preexec_fn=raise_nofile, start_new_session=True)
        self.pid = self.proc.pid     # the process measured: Node, or gunicorn's worker
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _probe_path(self) -> str:
        return "/socket.io/?EIO=4&transport=polling" if self.spec.proto == "eio4" \
            else "/socket.io/1/"

    def _wait_ready(self, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        url = f"http://127.0.0.1:{self.port}{self._probe_path()}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(f"exited with status {self.proc.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                time.sleep(0.2)
        else:
            raise ServerFailed(f"no answer on {url} within {seconds:.0f} s")
        if self.spec.module:
            workers = children(self.proc.pid)
            if len(workers) != 1:
                raise ServerFailed(f"expected one gunicorn worker, found {workers}")
            self.pid = workers[0]

    def stop(self) -> None:
        pids = [self.proc.pid] + ([self.pid] if self.pid != self.proc.pid else [])
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(timeout=10)
        # a worker left behind by a killed arbiter goes too (it is ours, by PID)
        for pid in pids[1:]:
            deadline = time.monotonic() + 5
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if Path(f"/proc/{pid}").exists():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def run_loadgen(server: RunningServer, workload: Workload, log: TextIO
                ) -> tuple[dict[str, dict[str, Any]], dict[str, Sample]]:
    """Drive loadgen.js through its checkpoints, reading the server at each."""
    cmd = ["node", str(HERE / "loadgen.js"), "--port", str(server.port),
           "--proto", server.spec.proto, *workload.loadgen_args()]
    log.write(f"# loadgen: {' '.join(cmd)}\n")
    log.flush()
    events: dict[str, dict[str, Any]] = {}
    samples = {"start": Sample.read(server.pid)}
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                            text=True, env=node_env(), cwd=ROOT, preexec_fn=raise_nofile)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                log.write(f"# loadgen said: {line}")
                continue
            name = event.get("event", "")
            events[name] = event
            if server.proc.poll() is None and Path(f"/proc/{server.pid}").exists():
                samples[name] = Sample.read(server.pid)
            if name in ("warmed", "ready", "done"):
                proc.stdin.write("next\n")
                proc.stdin.flush()
            elif name in ("closed", "abort"):
                break
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.write(f"# loadgen events: {json.dumps(events)}\n")
    return events, samples


# -- one measurement ----------------------------------------------------------------

@dataclass
class Result:
    """What one server did in one workload (or why it did not run)."""

    server: str
    workload: str
    status: str = "ok"                  # ok, failed, not run, n/a
    note: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    run: int = 0                        # which of the --repeat runs (1, 2, ...); 0: the only one
    log: str = ""                       # the server's log of this run, from the repository root


def failure_reasons(metrics: dict[str, Any], workload: Workload) -> list[str]:
    """Why a measured run does not count, in short words ("10 lost", "3 dropped");
    empty when it does. Any lost, wrong or extra message, any client that did not
    connect or was dropped, and for idle workloads any client that did not
    receive and answer the wanted heartbeats during the hold fails the run: a
    server that gets the protocol wrong must not come out with a cheap figure."""
    reasons = []
    clients = metrics.get("clients", 0)
    if clients < workload.clients:
        reasons.append(f"{clients:,} of {workload.clients:,} connected")
    dropped = metrics.get("dropped", 0)
    if dropped:
        reasons.append(f"{dropped:,} dropped")
    if workload.kind == "idle":
        # short_of_heartbeats counts the dropped clients too
        short = metrics.get("short_of_heartbeats", 0) - dropped
        if short > 0:
            reasons.append(f"{short:,} short of {workload.heartbeats_wanted} heartbeats "
                           "in the hold")
        elif not metrics.get("heartbeats_ok") and not reasons:
            reasons.append("heartbeats not checked")
        return reasons
    for phase, counts in (("", metrics), ("warm-up: ", metrics.get("warmup") or {})):
        for kind in ("lost", "wrong", "extra"):
            if counts.get(kind):
                reasons.append(f"{phase}{counts[kind]:,} {kind}")
    if not metrics.get("messages"):
        reasons.append("no message went through")
    return reasons


def measure(spec: ServerSpec, workload: Workload, python: str, log_path: Path | None = None,
            run: int = 0) -> Result:
    """One run of ``workload`` on a fresh ``spec`` server; its log goes to
    ``log_path`` (default: bench/.peers/logs/<server>-<workload>.log)."""
    log_path = log_path or LOGS / f"{spec.key}-{workload.key}.log"
    shown_log = str(log_path.relative_to(ROOT)) if log_path.is_relative_to(ROOT) \
        else str(log_path)
    result = Result(spec.key, workload.key, run=run, log=shown_log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        try:
            server = RunningServer(spec, workload, python, log)
        except ServerFailed as exc:
            log.flush()
            return Result(spec.key, workload.key, "failed",
                          f"server did not start: {exc}; {last_line(log.name)}",
                          run=run, log=shown_log)
        try:
            events, samples = run_loadgen(server, workload, log)
        finally:
            server.stop()
    done, ready = events.get("done"), events.get("ready", {})
    if done is None or "ready" not in samples or "done" not in samples:
        reason = events.get("abort", {}).get("reason", "no result")
        return Result(spec.key, workload.key, "failed",
                      f"load generator: {str(reason).splitlines()[0][:160]}",
                      run=run, log=shown_log)
    m = result.metrics
    m["threads_setting"] = server.threads
    m["threads"] = samples["done"].threads
    m["clients"] = done.get("clients", 0)
    m["connect_failed"] = ready.get("failed", 0)
    m["loadgen_cpu_pct"] = done.get("loadgen_cpu_pct", 0.0)
    m["loadgen_connect_cpu_pct"] = ready.get("loadgen_connect_cpu_pct", 0.0)
    m["errors"] = done.get("errors", {})
    m["dropped"] = done.get("closed", 0)
    m["server_cpu_s"] = samples["done"].cpu_s - samples["ready"].cpu_s
    m["server_cpu_ticks_s"] = samples["done"].cpu_ticks_s - samples["ready"].cpu_ticks_s
    cpu = m["server_cpu_s"]
    if workload.kind == "idle":
        base = samples.get("warmed", samples["start"])
        fresh = ready.get("new_connections", 0)
        m["clients_wanted"] = workload.clients
        m["connected"] = ready.get("connected", 0)
        m["rss_before_kib"], m["rss_after_kib"] = base.rss_kib, samples["done"].rss_kib
        m["rss_per_conn_kib"] = (samples["done"].rss_kib - base.rss_kib) / fresh if fresh else None
        m["connects_per_s"] = ready.get("connects_per_s", 0.0)
        m["heartbeats_ok"] = bool(done.get("heartbeats_ok"))
        m["heartbeats_wanted"] = workload.heartbeats_wanted
        m["heartbeats_min"] = done.get("heartbeats_min", 0)
        m["heartbeats_in_hold_min"] = done.get("heartbeats_in_hold_min", 0)
        m["answered_in_hold_min"] = done.get("answered_in_hold_min", 0)
        m["short_of_heartbeats"] = done.get("short_of_heartbeats", 0)
        m["alive"] = done.get("alive", 0)
    else:
        messages = done.get("messages", 0)
        m["messages"] = messages
        m["rate"] = done.get("rate", 0.0)
        m["cpu_per_10k"] = cpu / messages * 10_000 if messages else None
        m["lost"] = done.get("lost", 0)
        m["wrong"] = done.get("wrong", 0)
        m["extra"] = done.get("extra", 0)
        m["warmup"] = ready.get("warmup") or {}
        m["latency_ms_p50"] = done.get("latency_ms_p50")
        m["latency_ms_p99"] = done.get("latency_ms_p99")
    failures = failure_reasons(m, workload)
    if failures:
        m["failures"] = failures
        result.status, result.note = "failed", ", ".join(failures)
    return result


def last_line(path: str) -> str:
    """The line of a server log that best says why it stopped: the last one that is
    not gunicorn's own timestamped chatter (an exception or an app's exit message)."""
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()
                 and not line.startswith("#")]
    except OSError:
        return ""
    plain = [line for line in lines if not line.startswith("[")]
    return (plain or lines or [""])[-1][:200]


# -- the table -----------------------------------------------------------------------

def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


#: the footnote on the throughput rows
THROUGHPUT_NOTE = ("throughput: the median of each server's runs; CPU per message: the run "
                   "with the median CPU per message (its other figures are that run's)")
#: the footnote on a throughput figure the load generator may have bounded
SATURATED_NOTE = (f"load generator saturated (≥ {LOADGEN_SATURATED_PCT:.0f}% of a core in a "
                  "run): throughput measures it, not the server (CPU per message stays valid)")


def figure(r: Result | None, key: str) -> float | None:
    """``r``'s metric ``key`` when ``r`` is a successful run, else None: a failed
    run's figures feed no ratio and no verdict."""
    if r is None or r.status != "ok":
        return None
    v = r.metrics.get(key)
    return float(v) if isinstance(v, (int, float)) else None


def throughput(r: Result | None) -> float | None:
    """The throughput shown and compared for ``r``: the median over its runs
    (``rate_median``), not the rate of the run chosen for its median CPU."""
    return figure(r, "rate_median") if r is not None and "rate_median" in r.metrics \
        else figure(r, "rate")


def loadgen_peak(r: Result) -> float:
    """The load generator's highest share of one core (%) in the runs behind ``r``."""
    peak = r.metrics.get("loadgen_cpu_pct_max", r.metrics.get("loadgen_cpu_pct"))
    return float(peak) if isinstance(peak, (int, float)) else 0.0


def held_all(r: Result, clients: int) -> bool:
    """Every one of ``clients`` idle connections alive at the end of the hold, and
    every heartbeat of the hold received and answered."""
    return r.metrics.get("alive") == clients and bool(r.metrics.get("heartbeats_ok"))


@dataclass
class Row:
    workload: str
    metric: str
    value: Callable[[Result], float | None]
    shown: Callable[[Result], str]
    #: the load generator's share of a core (%) that may bound this figure
    loadgen_pct: Callable[[Result], float] | None = None
    #: shown for a failed run too (it says what failed)
    shown_when_failed: bool = False
    #: a footnote on the metric's name
    note: str = ""


def metric_rows(loads: list[Workload]) -> list[Row]:
    def num(key: str, digits: int = 2) -> tuple[Callable[[Result], float | None],
                                                 Callable[[Result], str]]:
        def value(r: Result) -> float | None:
            return figure(r, key)
        return value, lambda r: fmt(value(r), digits)

    def alive_of(clients: int) -> Callable[[Result], str]:
        return lambda r: f"{r.metrics.get('alive', 0):,} of {clients:,}"

    def heartbeats(r: Result) -> str:
        if r.metrics.get("heartbeats_ok"):
            return "yes"
        return f"no ({r.metrics.get('short_of_heartbeats', 0):,} short)"

    rows: list[Row] = []
    for w in loads:
        if w.kind == "idle":
            rows.append(Row(w.key, "RSS KiB per connection", *num("rss_per_conn_kib", 1)))
            rows.append(Row(w.key, "server threads", *num("threads", 0)))
            rows.append(Row(w.key, "connects/s", *num("connects_per_s", 0),
                            loadgen_pct=lambda r: float(
                                r.metrics.get("loadgen_connect_cpu_pct") or 0.0)))
            rows.append(Row(w.key, "connections alive at the end", lambda r: None,
                            alive_of(w.clients), shown_when_failed=True))
            rows.append(Row(w.key, "every heartbeat answered", lambda r: None, heartbeats,
                            shown_when_failed=True))
        else:
            unit = "deliveries" if w.kind == "bcast" else "acks"
            rows.append(Row(w.key, f"{unit}/s", throughput, lambda r: fmt(throughput(r), 0),
                            loadgen_pct=loadgen_peak, note=THROUGHPUT_NOTE))
            rows.append(Row(w.key, f"server CPU s per 10k {unit}", *num("cpu_per_10k", 2)))
    return rows


@dataclass
class Target:
    """A target of issue 5 item 5, checked for each flask_sio09 mode."""

    workload: str
    metric: str                          # the Row.metric it sits on
    text: str
    check: Callable[[Result, dict[str, Result]], bool | None]   # (sio09, peers) -> verdict
    modes: tuple[str, ...] = ()          # () = every mode


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(loads: list[Workload]) -> list[Target]:
    """Issue 5's targets on these workloads. Each check is given a successful run
    of flask_sio09 (render() marks a failed one "failed" without asking) and the
    peers' results, and answers None when a peer has no successful figure."""
    def cpu_vs(peer: str, bound: float) -> Callable[[Result, dict[str, Result]], bool | None]:
        def check(r: Result, peers: dict[str, Result]) -> bool | None:
            q = ratio(figure(r, "cpu_per_10k"), figure(peers[peer], "cpu_per_10k"))
            return None if q is None else q <= bound
        return check

    def rate_vs_fsio(r: Result, peers: dict[str, Result]) -> bool | None:
        q = ratio(throughput(r), throughput(peers["fsio"]))
        return None if q is None else q >= 5

    def rss_vs_node(clients: int) -> Callable[[Result, dict[str, Result]], bool | None]:
        def check(r: Result, peers: dict[str, Result]) -> bool | None:
            q = ratio(figure(r, "rss_per_conn_kib"), figure(peers["node"], "rss_per_conn_kib"))
            if q is None:
                return None
            return q <= 1 and held_all(r, clients)
        return check

    def idle_holds(clients: int) -> Callable[[Result, dict[str, Result]], bool | None]:
        def check(r: Result, peers: dict[str, Result]) -> bool | None:
            if r.status != "ok":
                return None
            # the bound is on gunicorn's --threads; the measured count is in the row
            return held_all(r, clients) and r.metrics.get("threads_setting", 1 << 30) <= THREADS
        return check

    found: list[Target] = []
    for w in loads:
        if w.key in ("echo10", "echo200"):
            found.append(Target(w.key, "server CPU s per 10k acks", "≤ 1.00× Node",
                                cpu_vs("node", 1.0)))
            found.append(Target(w.key, "server CPU s per 10k acks", "thread ≤ 1.25× bare",
                                cpu_vs("bare", 1.25), modes=("thread",)))
        elif w.key == "bcast500":
            found.append(Target(w.key, "server CPU s per 10k deliveries", "≤ 1.5× Node",
                                cpu_vs("node", 1.5)))
        elif w.key == "poll20":
            found.append(Target(w.key, "server CPU s per 10k acks", "≤ 1.5× Node",
                                cpu_vs("node", 1.5)))
            found.append(Target(w.key, "acks/s", "≥ 5× Flask-SocketIO", rate_vs_fsio))
        elif w.key == "idle10000":
            found.append(Target(w.key, "RSS KiB per connection",
                                "≤ Node, all 10k alive at the end", rss_vs_node(w.clients)))
            found.append(Target(w.key, "server threads",
                                "all held on --threads ≤ 100, heartbeats answered",
                                idle_holds(w.clients)))
    return found


def verdict_mark(t: Target, mine: Result | None, peers: dict[str, Result]) -> str:
    """✓, ✗, "failed" (flask_sio09's run failed) or — (not measured)."""
    if mine is None or mine.status in ("n/a", "not run"):
        return "—"
    if mine.status != "ok":
        return "failed"
    verdict = t.check(mine, peers)
    return "—" if verdict is None else "✓" if verdict else "✗"


def render(results: dict[tuple[str, str], Result], specs: list[ServerSpec],
           loads: list[Workload]) -> tuple[str, list[str]]:
    """The Markdown table and its footnotes."""
    sio09 = [s for s in specs if s.is_sio09]
    peers = [s for s in specs if not s.is_sio09]
    keys = {s.key for s in specs}
    ratio_cols: list[tuple[str, ServerSpec, str]] = []
    for s in sio09:
        if "node" in keys:
            ratio_cols.append((f"{s.mode} / Node", s, "node"))
        if "fsio" in keys:
            ratio_cols.append((f"{s.mode} / FSIO", s, "fsio"))
        if "bare" in keys and s.thread_per_connection:
            ratio_cols.append((f"{s.mode} / bare", s, "bare"))
        if "select" in keys and not s.thread_per_connection:
            ratio_cols.append((f"{s.mode} / select", s, "select"))
    header = ["workload", "metric"] + [s.label for s in peers + sio09] + \
             [c[0] for c in ratio_cols] + ["target (issue 5)"]
    titles = {w.key: w.title for w in loads}
    labels = {s.key: s.label for s in specs}
    notes: list[str] = []
    note_ids: dict[str, int] = {}

    def footnote(text: str) -> str:
        if text not in note_ids:
            notes.append(text)
            note_ids[text] = len(notes)
        return f" [{note_ids[text]}]"

    def saturated(row: Row, *runs: Result) -> bool:
        return row.loadgen_pct is not None and \
            any(row.loadgen_pct(r) >= LOADGEN_SATURATED_PCT for r in runs)

    def cell(row: Row, r: Result | None) -> str:
        if r is None:
            return "—"
        if r.status == "n/a":
            return "—"
        if r.status == "not run" or r.note.startswith("server did not start"):
            # the same reason on every row: one footnote
            return r.status + footnote(f"{labels[r.server]}: {r.note}")
        if r.status != "ok":
            failures = r.metrics.get("failures")
            if not failures:
                return r.status + footnote(f"{labels[r.server]}, {titles[r.workload]}: {r.note}")
            if row.shown_when_failed:
                return row.shown(r)
            # what failed, once per workload; the run's other figures do not count
            return f"failed: {r.note}" if row is first_row[r.workload] else "failed"
        shown = row.shown(r)
        if saturated(row, r):
            shown += footnote(SATURATED_NOTE)
        if r.note and row is first_row.get(r.workload):
            shown += footnote(f"{labels[r.server]}, {titles[r.workload]}: {r.note}")
        return shown

    rows = metric_rows(loads)
    first_row: dict[str, Row] = {}
    for row in rows:
        first_row.setdefault(row.workload, row)
    goal = targets(loads)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        metric = row.metric + (footnote(row.note) if row.note else "")
        cells = [titles[row.workload] if first_row[row.workload] is row else "", metric]
        for s in peers + sio09:
            cells.append(cell(row, results.get((s.key, row.workload))))
        for _, s, peer in ratio_cols:
            mine, theirs = results.get((s.key, row.workload)), results.get((peer, row.workload))
            ok = mine is not None and theirs is not None and \
                mine.status == "ok" and theirs.status == "ok"
            shown = fmt(ratio(row.value(mine), row.value(theirs)), 2) if ok else "—"
            if ok and shown != "—" and saturated(row, mine, theirs):  # type: ignore[arg-type]
                shown += footnote(SATURATED_NOTE)
            cells.append(shown)
        verdicts = []
        for t in goal:
            if t.workload != row.workload or t.metric != row.metric:
                continue
            marks = []
            for s in sio09:
                if t.modes and s.mode not in t.modes:
                    continue
                peer_results = {p.key: results.get((p.key, row.workload), Result(p.key, ""))
                                for p in peers}
                for k in ("node", "fsio", "bare"):
                    peer_results.setdefault(k, Result(k, ""))
                marks.append(f"{s.mode} "
                             f"{verdict_mark(t, results.get((s.key, row.workload)), peer_results)}")
            if marks:
                verdicts.append(f"{t.text}: {', '.join(marks)}")
        cells.append("; ".join(verdicts))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), notes


# -- peers -------------------------------------------------------------------------------

def node_peers_ok() -> bool:
    for name, version in NPM_PACKAGES.items():
        manifest = NODE_MODULES / name / "package.json"
        try:
            if json.loads(manifest.read_text()).get("version") != version:
                return False
        except (OSError, ValueError):
            return False
    return True


def gunicorn_requirement() -> str:
    """The same gunicorn as ours in the peers' venv, so that only the app differs."""
    try:
        from importlib.metadata import version
        return f"gunicorn=={version('gunicorn')}"
    except Exception:
        return "gunicorn"


def python_peers_stamp() -> Path:
    return PEER_VENV / ".bench-installed"


def python_peers_wanted() -> str:
    return " ".join([FSIO_REQUIREMENT, "simple-websocket", gunicorn_requirement()])


def venv_interpreter(venv: Path) -> str | None:
    """The interpreter ``venv`` was made from (its ``pyvenv.cfg``), or None."""
    try:
        for line in (venv / "pyvenv.cfg").read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "executable":
                return os.path.realpath(value.strip())
    except OSError:
        pass
    return None


def peers_share_our_interpreter() -> bool:
    """Flask-SocketIO must run on the interpreter that runs flask_sio09's
    servers: how an interpreter was built changes the CPU per message by
    10 to 15% (docs/performance.md)."""
    return venv_interpreter(PEER_VENV) == os.path.realpath(sys._base_executable)


def python_peers_ok() -> bool:
    try:
        return python_peers_stamp().read_text().strip() == python_peers_wanted() and \
            peers_share_our_interpreter()
    except OSError:
        return False


def install_peers() -> None:
    """npm and PyPI peers into bench/.peers/, each only when missing."""
    PEERS.mkdir(parents=True, exist_ok=True)
    if not node_peers_ok():
        if shutil.which("npm") is None:
            sys.exit("bench: npm is needed to install socket.io 0.9.19 and ws")
        print(f"bench: installing {', '.join(f'{n}@{v}' for n, v in NPM_PACKAGES.items())} "
              f"into {NODE_MODULES.relative_to(ROOT)}", file=sys.stderr)
        manifest = {"name": "sio09-bench-peers", "private": True,
                    "description": "written by bench/run.py; not part of the project",
                    "dependencies": NPM_PACKAGES}
        (PEERS / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
        # no install scripts: socket.io-client 0.9's optional native ws build is not needed
        subprocess.run(["npm", "install", "--prefix", str(PEERS), "--ignore-scripts",
                        "--no-audit", "--no-fund", "--loglevel", "error"], check=True)
        if not node_peers_ok():
            sys.exit("bench: npm install did not give the pinned versions")
    if not python_peers_ok():
        print(f"bench: installing {python_peers_wanted()} into "
              f"{PEER_VENV.relative_to(ROOT)}", file=sys.stderr)
        if (PEER_VENV / "bin" / "python").exists() and not peers_share_our_interpreter():
            print(f"bench: {PEER_VENV.relative_to(ROOT)} was made from another interpreter; "
                  "making it again", file=sys.stderr)
            shutil.rmtree(PEER_VENV)
        if not (PEER_VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        *python_peers_wanted().split()], check=True)
        python_peers_stamp().write_text(python_peers_wanted() + "\n")


# -- main --------------------------------------------------------------------------------

def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"{os.cpu_count()} cores ({model or platform.machine()}), Linux "
            f"{platform.release()}, Python {platform.python_version()} "
            f"({interpreter_build()}; {unmasking()}; {hot_path()}), Node {node}")


def hot_path(python: str = sys.executable) -> str:
    """Whether the Python servers run flask_sio09's hot-path modules compiled
    with mypyc (flask_sio09.native; ``make native``) or as Python, asked the
    way a server imports the package (from bench/apps)."""
    found = subprocess.run([python, "-W", "ignore", "-c",
                            "import flask_sio09.native as n; print(n.status())"],
                           cwd=APPS, capture_output=True, text=True)
    return "hot path " + (found.stdout.strip() or "unknown: flask_sio09 does not import")


def unmasking(python: str = sys.executable) -> str:
    """How flask_sio09's hub unmasks WebSocket frames under ``python``: in C
    when the ``websockets`` package is installed (the ``speedups`` extra),
    else in Python, which costs about 7% more instructions per emit + ack."""
    found = subprocess.run(
        [python, "-c", "from websockets.speedups import apply_mask; import websockets; "
                       "print(websockets.__version__)"],
        capture_output=True, text=True)
    version = found.stdout.strip()
    if found.returncode == 0 and version:
        return f"WebSocket frames unmasked in C (websockets {version})"
    return "WebSocket frames unmasked in Python (no websockets package)"


def interpreter_build(maps: str | None = None) -> str:
    """How this Python (the one that runs flask_sio09's servers) was built,
    as far as it shows: the same code costs about 15% more CPU on an
    interpreter that calls into a shared libpython and was built without
    profile-guided optimisation (pyenv's default) than on Debian's python3,
    whose interpreter is in the executable (docs/performance.md).

    :param maps: the text of ``/proc/self/maps`` (read when not given).
    """
    if maps is None:
        try:
            maps = Path("/proc/self/maps").read_text()
        except OSError:  # not Linux: what configure was told
            maps = "libpython" if sysconfig.get_config_var("Py_ENABLE_SHARED") else ""
    shared = "libpython" in maps
    optimized = "--enable-optimizations" in (sysconfig.get_config_var("CONFIG_ARGS") or "")
    return ("libpython shared" if shared else "libpython in the executable") + \
        (", --enable-optimizations" if optimized else "")


def measured_tree(python: str = sys.executable, env: dict[str, str] | None = None) -> Path:
    """The directory whose ``flask_sio09`` the Python servers import (with
    ``env``, this process's environment by default): this
    repository's, or the one ``PYTHONPATH`` names first (a second work tree,
    to measure other code). Asked the way a server imports it, from
    ``bench/apps`` (``python -m`` puts the working directory first on the
    path, so a server started from the repository root would import the
    root's package whatever ``PYTHONPATH`` says)."""
    found = subprocess.run(
        [python, "-c", "import os, flask_sio09; "
                       "print(os.path.dirname(os.path.dirname(os.path.abspath(flask_sio09.__file__))))"],
        cwd=APPS, capture_output=True, text=True, env=env)
    where = found.stdout.strip()
    return Path(where) if found.returncode == 0 and where else ROOT


def revision(tree: Path = ROOT) -> str:
    """The commit of the work tree ``tree`` (where flask_sio09 is imported
    from), with a note of uncommitted changes to the package, and the tree
    itself when it is not this repository."""
    where = "" if tree.resolve() == ROOT.resolve() else f" (imported from {tree})"
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown" + where
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "flask_sio09"], cwd=tree,
                           capture_output=True, text=True).stdout.strip()
    return head + (" + uncommitted changes in flask_sio09/" if dirty else "") + where


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--workloads`` becomes a list of keys, each one that this
    kind of run (full or ``--quick``) has."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller counts, 5 s bounds, only 1,000 idle connections (3-4 min)")
    parser.add_argument("--modes", default="thread,hub",
                        help="flask_sio09 websocket_mode values to run, comma-separated "
                             "(thread, hub, auto; default thread,hub)")
    parser.add_argument("--servers", default="node,fsio,bare,select,sio09",
                        help="which servers to run (default node,fsio,bare,select,sio09)")
    parser.add_argument("--workloads", default="",
                        help=f"comma-separated subset of {','.join(ALL_WORKLOADS)} "
                             "(idle3000 and idle10000 are not in a --quick run)")
    parser.add_argument("--thread-cap", type=int, default=1000,
                        help="most idle connections tried on a thread-per-connection server "
                             "(default 1000)")
    parser.add_argument("--no-install", action="store_true",
                        help="do not install missing peers; leave out the servers that need them")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each message workload, the servers taking turns; the "
                             "table shows each server's median run (default 3; idle "
                             "workloads run once)")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    available = [w.key for w in workloads(args.quick)]
    if args.workloads:
        chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
        unknown = [w for w in chosen if w not in ALL_WORKLOADS]
        if unknown or not chosen:
            parser.error(f"--workloads: unknown workload(s) {unknown}; "
                         f"choose from {','.join(ALL_WORKLOADS)}")
        # without this, such a run ran nothing and blamed the servers for it
        full_only = [w for w in chosen if w not in available]
        if full_only:
            parser.error(f"--workloads {','.join(full_only)}: not in a --quick run "
                         f"(its idle workload is {','.join(k for k in available if 'idle' in k)}); "
                         "leave out --quick to run them")
        args.workloads = [w for w in available if w in chosen]
    else:
        args.workloads = available
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted_servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("thread", "hub", "auto")]
    if bad:
        sys.exit(f"bench: unknown mode(s) {bad}")
    if shutil.which("node") is None:
        sys.exit("bench: Node.js is needed for the load generator")
    if not args.no_install:
        install_peers()
    elif not node_peers_ok():
        sys.exit("bench: the load generator needs bench/.peers/node_modules (run without "
                 "--no-install)")

    specs: list[ServerSpec] = []
    for key in wanted_servers:
        if key == "node":
            specs.append(NODE)
        elif key == "fsio":
            if python_peers_ok():
                specs.append(FSIO)
            else:
                print("bench: Flask-SocketIO is not installed; left out", file=sys.stderr)
        elif key == "bare":
            specs.append(BARE)
        elif key == "select":
            specs.append(SELECT)
        elif key == "sio09":
            specs += [sio09_spec(m) for m in modes]
        else:
            sys.exit(f"bench: unknown server {key!r}")
    loads = [w for w in workloads(args.quick) if w.key in args.workloads]

    started = datetime.datetime.now().astimezone()
    stamp = f"{started:%Y%m%d-%H%M%S}"
    # every run's server log is kept, one file per run, one folder per bench
    run_logs = LOGS / stamp
    load_before = os.getloadavg()[0]
    # read once: in a shared working tree the code may change while the bench runs
    rev = revision(measured_tree())
    command = "python bench/run.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"bench: {started:%Y-%m-%d %H:%M %Z}; {machine()}; flask_sio09 at {rev}",
          file=sys.stderr)
    fd_limit = nofile_available()
    results: dict[tuple[str, str], Result] = {}
    every_run: list[Result] = []        # each measured run, for the JSON and the maxima
    dead: dict[str, str] = {}           # server key -> why it is not tried again
    for workload in loads:
        # The machine's noise moves one run's CPU figures by 10 to 30%: the servers
        # take turns, run after run, and each one's median run goes in the table.
        rounds = 1 if workload.kind == "idle" else args.repeat
        runs: dict[str, list[Result]] = {spec.key: [] for spec in specs}
        for turn in range(rounds):
            for spec in specs:
                result = plan(spec, workload, args.thread_cap, fd_limit, dead)
                if result is None:
                    python = str(PEER_VENV / "bin" / "python") if spec.key == "fsio" \
                        else sys.executable
                    which = f" (run {turn + 1} of {rounds})" if rounds > 1 else ""
                    print(f"bench: {workload.title} on {spec.label}{which} ...",
                          file=sys.stderr, end="", flush=True)
                    t0 = time.monotonic()
                    run_name = f"-run{turn + 1}" if rounds > 1 else ""
                    result = measure(spec, workload, python,
                                     run_logs / f"{spec.key}-{workload.key}{run_name}.log",
                                     run=turn + 1 if rounds > 1 else 0)
                    every_run.append(result)
                    print(f" {result.status} ({time.monotonic() - t0:.0f} s){summary(result)}",
                          file=sys.stderr)
                    if result.status == "failed" and \
                            result.note.startswith("server did not start"):
                        dead[spec.key] = result.note
                elif turn:
                    continue  # not run: once is enough to say why
                runs[spec.key].append(result)
        for spec in specs:
            results[(spec.key, workload.key)] = median_run(runs[spec.key])

    table, notes = render(results, specs, loads)
    ran = [s.mode for s in specs if s.is_sio09 and any(
        r.status == "ok" for (k, _), r in results.items() if k == s.key)]
    not_ran = {s.mode: why_not_ran(s, results, dead) for s in specs
               if s.is_sio09 and s.mode not in ran}
    minutes = (datetime.datetime.now().astimezone() - started).total_seconds() / 60
    loadgen_max, loadgen_connect_max = loadgen_peaks(every_run)
    lines = [f"Bench of {started:%Y-%m-%d %H:%M %Z}, {minutes:.1f} min; machine: {machine()}; "
             f"flask_sio09 at {rev} when it started.",
             f"Command: `{command.strip()}`",
             "",
             f"flask_sio09 modes that ran: {', '.join(ran) or 'none'}" +
             "".join(f"; {m} did not run ({why})" for m, why in not_ran.items()),
             "", table, ""]
    lines += [f"[{i}] {text}" for i, text in enumerate(notes, 1)]
    spread = run_spread(results, specs, loads)
    if spread:
        lines += ["", f"Message workloads: {args.repeat} runs of each, the servers taking "
                  "turns; throughput is each server's median, CPU per message its median "
                  "run. Server CPU s per 10k messages, run by run:"]
        lines += spread
        lines += [""]
    lines += [f"Load generator CPU: at most {loadgen_max:.0f}% of one core in any run, "
              f"{loadgen_connect_max:.0f}% while connecting. "
              f"Machine load average (1 min): {load_before:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after.",
              "Python servers: gunicorn -k gthread -w 1, --threads "
              f"{THREADS} (thread-per-connection servers: clients + {THREAD_MARGIN}); "
              "CPU (process CPU clock), RSS and threads of the worker process.",
              f"Server logs, one per run: {run_logs.relative_to(ROOT)}/"]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"bench-{stamp}.md").write_text(text + "\n")
    (RESULTS / f"bench-{stamp}.json").write_text(json.dumps(
        {"started": started.isoformat(), "command": command, "machine": machine(),
         "revision": rev, "results": [vars(r) for r in results.values()],
         "runs": [vars(r) for r in every_run]},
        indent=2) + "\n")
    print(f"\nbench: raw results in {(RESULTS / f'bench-{stamp}.json').relative_to(ROOT)}",
          file=sys.stderr)
    return 0


def why_not_ran(spec: ServerSpec, results: dict[tuple[str, str], Result],
                dead: dict[str, str]) -> str:
    """Why a flask_sio09 mode has no successful workload, in a few words."""
    if spec.key in dead:
        return dead[spec.key]
    statuses = {r.status for (key, _), r in results.items() if key == spec.key}
    if "failed" in statuses:
        return "every workload it ran failed"
    if statuses - {"n/a"}:
        return "not run: " + ", ".join(sorted(statuses - {"n/a"}))
    return "no workload of this run applies to it"


def loadgen_peaks(runs: list[Result]) -> tuple[float, float]:
    """The load generator's highest share of one core (%) over every run given,
    in the workloads and while connecting; not only over the runs in the table."""
    return (max((float(r.metrics.get("loadgen_cpu_pct") or 0) for r in runs), default=0.0),
            max((float(r.metrics.get("loadgen_connect_cpu_pct") or 0) for r in runs),
                default=0.0))


def failure_of(r: Result) -> str:
    """One failed run's reason in a few words, for the note of its workload."""
    failures = r.metrics.get("failures") or [
        f"{r.metrics[kind]:,} {kind}" for kind in ("lost", "wrong", "extra") if r.metrics.get(kind)]
    if failures:
        return ", ".join(failures)
    # "server did not start: exited with status 3; <log line>": the first part
    return (r.note.split(";")[0] or r.status)[:100]


def median_run(runs: list[Result]) -> Result:
    """The result of one server in one workload over its runs (``--repeat``).

    When every run succeeded: the run with the median server CPU per message
    (the lower of the two middle ones for an even count), holding every run's CPU
    per message and rate in ``cpu_per_10k_runs`` and ``rate_runs`` (run order),
    the median rate in ``rate_median`` (what the table shows and compares as
    throughput) and the load generator's highest CPU in ``loadgen_cpu_pct_max``.

    When any run failed (lost, wrong or extra messages, dropped clients, no
    result): a new failed result, whose note and ``failures`` name each failed
    run and why, with the figures of the median successful run for the record; a
    bad run must not vanish behind a good median. The runs themselves are left
    as they were (run.py writes each one to the JSON).
    """
    if len(runs) == 1:
        return runs[0]
    # measure() already fails a run with lost, wrong or extra messages; a result
    # made elsewhere (an older JSON, a test) is held to the same rule here
    ok = [r for r in runs if r.status == "ok" and r.metrics.get("cpu_per_10k") is not None
          and not any(r.metrics.get(kind) for kind in ("lost", "wrong", "extra"))]
    succeeded = {id(r) for r in ok}
    per_run = {
        "cpu_per_10k_runs": [r.metrics["cpu_per_10k"] if id(r) in succeeded else None
                             for r in runs],
        "rate_runs": [r.metrics.get("rate") if id(r) in succeeded else None for r in runs],
    }
    if ok:
        per_run["rate_median"] = statistics.median(r.metrics["rate"] for r in ok)
        per_run["loadgen_cpu_pct_max"] = max(r.metrics.get("loadgen_cpu_pct", 0.0) for r in ok)
        chosen = sorted(ok, key=lambda r: r.metrics["cpu_per_10k"])[(len(ok) - 1) // 2]
    if len(ok) == len(runs):
        chosen.metrics.update(per_run)
        return chosen
    failures = [f"run {i} of {len(runs)}: {failure_of(r)}"
                for i, r in enumerate(runs, 1) if id(r) not in succeeded]
    base = chosen if ok else runs[0]
    return Result(base.server, base.workload, "failed", "; ".join(failures),
                  {**base.metrics, **per_run, "failures": failures})


def run_spread(results: dict[tuple[str, str], Result], specs: list[ServerSpec],
               loads: list[Workload]) -> list[str]:
    """One line per repeated workload: each server's CPU per message, run by run
    ("failed" for a failed run)."""
    lines = []
    for workload in loads:
        cells = []
        for spec in specs:
            r = results.get((spec.key, workload.key))
            values = r.metrics.get("cpu_per_10k_runs", []) if r is not None else []
            if len(values) > 1:
                cells.append(f"{spec.label} "
                             f"{', '.join('failed' if v is None else fmt(v) for v in values)}")
        if cells:
            lines.append(f"- {workload.title}: " + "; ".join(cells))
    return lines


def plan(spec: ServerSpec, workload: Workload, thread_cap: int, fd_limit: int,
         dead: dict[str, str]) -> Result | None:
    """A Result when the pair is not run, None when it should be."""
    if spec.key in ECHO_ONLY and workload.kind != "echo":
        return Result(spec.key, workload.key, "n/a")
    if workload.transport != "websocket" and not spec.polling:
        return Result(spec.key, workload.key, "n/a")
    if spec.key in dead:
        return Result(spec.key, workload.key, "failed", dead[spec.key])
    if workload.kind == "idle":
        if spec.thread_per_connection and workload.clients > thread_cap:
            return Result(spec.key, workload.key, "not run",
                          f"a thread per connection: capped at {thread_cap:,} connections "
                          "(--thread-cap)")
        if workload.clients + 500 > fd_limit:
            return Result(spec.key, workload.key, "not run",
                          f"open-file limit {fd_limit} is too low")
    return None


def summary(r: Result) -> str:
    """The end of a run's progress line on stderr."""
    m = r.metrics
    if not m:
        return f": {r.note}"
    failed = f" (FAILED: {r.note})" if r.status != "ok" else ""
    if "rss_per_conn_kib" in m:
        rss = m["rss_per_conn_kib"]
        return (f": {m['alive']:,} of {m.get('clients_wanted', 0):,} alive at the end, "
                f"{fmt(rss, 1)} KiB/conn, {m['threads']} threads, heartbeats "
                f"{'ok' if m['heartbeats_ok'] else 'SHORT'} (at least "
                f"{m.get('heartbeats_in_hold_min')} in the hold, "
                f"{m.get('heartbeats_wanted')} wanted), "
                f"loadgen {m['loadgen_cpu_pct']:.0f}%{failed}")
    return (f": {m['messages']} in {fmt(m['rate'], 0)}/s, {fmt(m['cpu_per_10k'])} CPU s/10k, "
            f"{m['threads']} threads, loadgen {m['loadgen_cpu_pct']:.0f}%{failed}")


if __name__ == "__main__":
    sys.exit(main())
