"""bench/run.py's report: the run that goes in the table when a message
workload runs several times (``--repeat``), what fails a run, the ratios and
verdicts a failed run may not feed, and the checks of the command line."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN_PY = Path(__file__).resolve().parents[2] / "bench" / "run.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", RUN_PY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["bench_run"]


def run(bench, cpu, rate=1000.0, status="ok", server="sio09-hub", workload="echo10",
        loadgen=50.0):
    metrics = {} if cpu is None else {"cpu_per_10k": cpu, "rate": rate, "messages": 5000,
                                      "lost": 0, "wrong": 0, "extra": 0,
                                      "loadgen_cpu_pct": loadgen}
    return bench.Result(server, workload, status, metrics=metrics)


def workload(bench, key, quick=True):
    return [w for w in bench.workloads(quick) if w.key == key]


def echo10(bench):
    return workload(bench, "echo10")


def test_the_median_run_is_kept_with_every_run_recorded(bench):
    runs = [run(bench, 0.40, 10), run(bench, 0.30, 20), run(bench, 0.35, 30)]
    chosen = bench.median_run(runs)
    assert chosen is runs[2]
    assert chosen.metrics["cpu_per_10k_runs"] == [0.40, 0.30, 0.35]
    assert chosen.metrics["rate_runs"] == [10, 20, 30]


def test_an_even_count_keeps_the_lower_middle_run(bench):
    runs = [run(bench, 0.40), run(bench, 0.30)]
    assert bench.median_run(runs) is runs[1]


def test_one_failed_run_fails_the_workload_and_says_which(bench):
    """A failed run that is not the median one must not vanish behind a good
    median: the workload's result for that server is failed, and says which run."""
    failed = run(bench, None, status="failed")
    failed.note = "server did not start: exited with status 3; Traceback ..."
    runs = [failed, run(bench, 0.5), run(bench, 0.7)]
    summary = bench.median_run(runs)
    assert summary.status == "failed"
    assert summary.note == "run 1 of 3: server did not start: exited with status 3"
    # the figures of the median good run stay in the record, each run's in order
    assert summary.metrics["cpu_per_10k"] == 0.5
    assert summary.metrics["cpu_per_10k_runs"] == [None, 0.5, 0.7]
    # the runs themselves are not rewritten: run.py writes each one to the JSON
    assert runs[1].status == "ok" and "failures" not in runs[1].metrics


def test_a_run_with_lost_or_wrong_acks_fails_the_workload_though_its_cpu_is_not_the_median(
        bench):
    bad = run(bench, 0.10)
    bad.metrics.update(lost=900, wrong=700)
    runs = [run(bench, 0.25), bad, run(bench, 0.28)]
    summary = bench.median_run(runs)
    assert summary.status == "failed"
    assert summary.metrics["failures"] == ["run 2 of 3: 900 lost, 700 wrong"]
    results = {("sio09-hub", "echo10"): summary,
               ("node", "echo10"): bench.median_run([run(bench, 0.3), run(bench, 0.31)])}
    table, _ = bench.render(results, [bench.NODE, bench.sio09_spec("hub")], echo10(bench))
    assert "failed: run 2 of 3: 900 lost, 700 wrong" in table
    assert "hub failed" in table and "✓" not in table
    assert bench.run_spread(results, [bench.sio09_spec("hub")], echo10(bench)) == [
        "- emit+ack, 10 clients: flask_sio09 hub 0.25, failed, 0.28"]


def test_when_every_run_failed_each_one_says_why(bench):
    first, second = run(bench, None, status="failed"), run(bench, None, status="failed")
    first.note, second.note = "load generator: hard time limit", "no result"
    summary = bench.median_run([first, second])
    assert summary.status == "failed"
    assert summary.note == ("run 1 of 2: load generator: hard time limit; "
                            "run 2 of 2: no result")


def test_a_single_run_is_itself(bench):
    only = run(bench, 0.3)
    assert bench.median_run([only]) is only
    assert bench.run_spread({("sio09-hub", "echo10"): only}, [bench.sio09_spec("hub")],
                            [w for w in bench.workloads(True) if w.key == "echo10"]) == []


def test_the_spread_lists_each_repeated_server_run_by_run(bench):
    runs = [run(bench, 0.40), run(bench, 0.30), run(bench, 0.35)]
    results = {("sio09-hub", "echo10"): bench.median_run(runs)}
    echo10 = [w for w in bench.workloads(True) if w.key == "echo10"]
    assert bench.run_spread(results, [bench.sio09_spec("hub")], echo10) == [
        "- emit+ack, 10 clients: flask_sio09 hub 0.40, 0.30, 0.35"]


def test_the_selector_echo_is_the_hub_modes_floor(bench):
    """The bare selector echo answers emit + ack only, and the table divides the
    hub mode's figures (not thread mode's) by its figures."""
    loads = bench.workloads(True)
    echo10 = [w for w in loads if w.key == "echo10"]
    for w in loads:
        planned = bench.plan(bench.SELECT, w, 1000, 65536, {})
        assert (planned is None) == (w.kind == "echo" and w.transport == "websocket"), w.key
    specs = [bench.SELECT, bench.sio09_spec("thread"), bench.sio09_spec("hub")]
    results = {
        ("select", "echo10"): bench.Result("select", "echo10",
                                           metrics={"cpu_per_10k": 0.10, "rate": 50_000}),
        ("sio09-hub", "echo10"): bench.Result("sio09-hub", "echo10",
                                              metrics={"cpu_per_10k": 0.25, "rate": 30_000}),
        ("sio09-thread", "echo10"): bench.Result("sio09-thread", "echo10",
                                                 metrics={"cpu_per_10k": 1.5, "rate": 5_000}),
    }
    table, _ = bench.render(results, specs, echo10)
    header = table.splitlines()[0]
    assert "hub / select" in header and "thread / select" not in header
    cpu_row = next(line for line in table.splitlines() if "server CPU" in line)
    assert "| 2.50 |" in cpu_row


def test_the_machine_line_says_how_the_interpreter_was_built(bench):
    shared_maps = ("7f0000000000-7f0000100000 r-xp 00000000 08:01 42 "
                   "/opt/python/lib/libpython3.11.so.1.0\n")
    static_maps = "00400000-00800000 r-xp 00000000 08:01 7 /usr/bin/python3.11\n"
    assert bench.interpreter_build(shared_maps).startswith("libpython shared")
    assert bench.interpreter_build(static_maps).startswith("libpython in the executable")
    # this interpreter's own line is one of the two, and is in the machine line
    own = bench.interpreter_build()
    assert own.split(",")[0] in ("libpython shared", "libpython in the executable")
    assert own in bench.machine()


def test_the_machine_line_says_how_frames_are_unmasked(bench, tmp_path):
    # this venv has the test extra, so websockets: the C unmasking
    assert bench.unmasking().startswith("WebSocket frames unmasked in C (websockets ")
    assert bench.unmasking() in bench.machine()
    # an interpreter where the import fails says so
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    assert bench.unmasking(str(fake)) == \
        "WebSocket frames unmasked in Python (no websockets package)"


def test_the_peers_venv_is_checked_for_the_interpreter_it_was_made_from(bench, tmp_path):
    """Flask-SocketIO's venv must follow the interpreter that runs the bench."""
    ours = sys._base_executable
    assert bench.venv_interpreter(tmp_path) is None  # no venv there
    (tmp_path / "pyvenv.cfg").write_text(
        f"home = /somewhere\nversion = 3.11.0\nexecutable = {ours}\ncommand = x\n")
    assert bench.venv_interpreter(tmp_path) == str(Path(ours).resolve())
    (tmp_path / "pyvenv.cfg").write_text("home = /other\nexecutable = /other/python3\n")
    assert bench.venv_interpreter(tmp_path) == "/other/python3"


# -- what fails a run ---------------------------------------------------------------

def measured(bench, load, **counts):
    """The metrics measure() keeps for a message run of ``load`` that went well,
    changed by ``counts``."""
    metrics = {"clients": load.clients, "connect_failed": 0, "dropped": 0, "messages": 5000,
               "rate": 9000.0, "cpu_per_10k": 0.3, "lost": 0, "wrong": 0, "extra": 0,
               "warmup": {"lost": 0, "wrong": 0, "extra": 0}}
    metrics.update(counts)
    return metrics


def test_lost_wrong_and_extra_messages_each_fail_a_run(bench):
    load = echo10(bench)[0]
    assert bench.failure_reasons(measured(bench, load), load) == []
    assert bench.failure_reasons(measured(bench, load, lost=10), load) == ["10 lost"]
    assert bench.failure_reasons(measured(bench, load, wrong=50), load) == ["50 wrong"]
    # duplicate deliveries are extra, never a negative loss
    bcast = workload(bench, "bcast500")[0]
    assert bench.failure_reasons(measured(bench, bcast, messages=5000, extra=540), bcast) == [
        "540 extra"]
    assert bench.failure_reasons(
        measured(bench, load, warmup={"lost": 4, "wrong": 0, "extra": 0}), load) == [
        "warm-up: 4 lost"]
    assert bench.failure_reasons(measured(bench, load, clients=9, dropped=2), load) == [
        "9 of 10 connected", "2 dropped"]
    assert bench.failure_reasons(measured(bench, load, messages=0), load) == [
        "no message went through"]


def test_a_failed_run_says_why_in_its_cell_and_feeds_no_ratio_and_no_verdict(bench):
    """The probe's server that sent each broadcast twice came out cheaper than
    Node per delivery, with a ✓: a failed run must show as failed instead."""
    load = workload(bench, "bcast500")
    dup = bench.Result("sio09-thread", "bcast500", "failed", "5,000 extra",
                       {"messages": 5000, "rate": 32000.0, "cpu_per_10k": 0.16,
                        "failures": ["5,000 extra"]})
    node = bench.Result("node", "bcast500", metrics={"rate": 9000.0, "cpu_per_10k": 0.62})
    table, _ = bench.render({("sio09-thread", "bcast500"): dup, ("node", "bcast500"): node},
                            [bench.NODE, bench.sio09_spec("thread")], load)
    rate_row, cpu_row = table.splitlines()[2:4]
    assert "| failed: 5,000 extra |" in rate_row
    assert cpu_row.split(" | ")[3:5] == ["failed", "—"]   # the cell, the ratio
    assert cpu_row.endswith("≤ 1.5× Node: thread failed |")


# -- idle workloads -------------------------------------------------------------------

@pytest.mark.parametrize("quick", [True, False])
def test_every_idle_hold_outlasts_the_heartbeat_timeout_plus_an_interval(bench, quick):
    """A server that ignores heartbeat answers drops its clients one timeout
    after the last answer (Node: after the next heartbeat's timeout): the hold
    must last longer, or such a server passes."""
    idle = [w for w in bench.workloads(quick) if w.kind == "idle"]
    assert idle
    for w in idle:
        interval, timeout = w.heartbeat
        assert w.hold > timeout + interval, w.key
        assert w.heartbeats_wanted >= 2, w.key
        args = w.loadgen_args()
        assert args[args.index("--min-heartbeats") + 1] == str(w.heartbeats_wanted)
    # every server of the bench gets the same values
    assert len({w.heartbeat for w in idle}) == 1


def test_an_idle_workload_whose_hold_ends_before_the_timeout_is_refused(bench):
    with pytest.raises(ValueError):
        bench.Workload("idle1000", "1,000 idle WebSockets", "idle", 1000,
                       heartbeat=(5.0, 15.0), hold=12.5)


def idle_metrics(clients, **changes):
    metrics = {"clients": clients, "clients_wanted": clients, "connected": clients,
               "alive": clients, "dropped": 0, "heartbeats_ok": True, "short_of_heartbeats": 0,
               "rss_per_conn_kib": 7.4, "threads": 104, "threads_setting": 100,
               "connects_per_s": 700.0}
    metrics.update(changes)
    return metrics


def test_an_idle_run_with_dropped_clients_or_missed_heartbeats_fails(bench):
    load = workload(bench, "idle1000")[0]
    assert bench.failure_reasons(idle_metrics(1000), load) == []
    # short_of_heartbeats counts the dropped clients too
    assert bench.failure_reasons(
        idle_metrics(1000, alive=988, dropped=12, heartbeats_ok=False, short_of_heartbeats=12),
        load) == ["12 dropped"]
    wanted = load.heartbeats_wanted
    assert bench.failure_reasons(
        idle_metrics(1000, heartbeats_ok=False, short_of_heartbeats=1000), load) == [
        f"1,000 short of {wanted} heartbeats in the hold"]


def test_the_10k_verdicts_want_every_connection_alive_at_the_end(bench):
    """Connected at "ready" is not held: the verdict and the table look at the end."""
    load = workload(bench, "idle10000", quick=False)
    node = bench.Result("node", "idle10000", metrics=idle_metrics(10_000, rss_per_conn_kib=13.0,
                                                                  threads=7))
    hub = bench.Result("sio09-hub", "idle10000", metrics=idle_metrics(
        10_000, alive=0, heartbeats_ok=False, short_of_heartbeats=10_000))
    specs = [bench.NODE, bench.sio09_spec("hub")]
    table, _ = bench.render({("node", "idle10000"): node, ("sio09-hub", "idle10000"): hub},
                            specs, load)
    rss_row, threads_row = table.splitlines()[2:4]
    assert rss_row.endswith(": hub ✗ |") and threads_row.endswith(": hub ✗ |")
    assert "| connections alive at the end | 10,000 of 10,000 | 0 of 10,000 |" in table
    hub.metrics.update(alive=10_000, heartbeats_ok=True, short_of_heartbeats=0)
    table, _ = bench.render({("node", "idle10000"): node, ("sio09-hub", "idle10000"): hub},
                            specs, load)
    assert table.splitlines()[2].endswith(": hub ✓ |")


# -- throughput -----------------------------------------------------------------------

def test_throughput_is_the_median_over_the_runs_not_the_median_cpu_runs(bench):
    """The figures of the probe's quick run: the hub's run with the median CPU
    had its lowest rate (1,959 acks/s); its median rate is 4,556, 5.9× FSIO's."""
    def runs(server, pairs):
        return [run(bench, cpu, rate, server=server, workload="poll20") for cpu, rate in pairs]
    results = {
        ("node", "poll20"): bench.median_run(runs("node", [(1.28, 4084.7), (1.12, 4991.4),
                                                           (0.96, 5092.4)])),
        ("fsio", "poll20"): bench.median_run(runs("fsio", [(11.56, 810.2), (11.84, 767.5),
                                                           (15.00, 632.8)])),
        ("sio09-hub", "poll20"): bench.median_run(runs("sio09-hub", [(1.64, 4555.7),
                                                                     (1.52, 1959.3),
                                                                     (1.40, 5310.1)])),
    }
    table, notes = bench.render(results, [bench.NODE, bench.FSIO, bench.sio09_spec("hub")],
                                workload(bench, "poll20"))
    rate_row, cpu_row = table.splitlines()[2:4]
    assert "| 4,556 |" in rate_row and "| 5.94 |" in rate_row
    assert "≥ 5× Flask-SocketIO: hub ✓" in rate_row
    assert "| 1.52 |" in cpu_row       # CPU: the median CPU run's
    assert any("median" in n and "throughput" in n for n in notes)


def test_a_saturated_load_generator_marks_throughput_not_cpu(bench):
    hub = [run(bench, 0.25, 30_000, loadgen=60.0), run(bench, 0.30, 31_000, loadgen=112.0),
           run(bench, 0.28, 29_000, loadgen=70.0)]
    node = [run(bench, 0.30, 20_000, server="node", loadgen=50.0),
            run(bench, 0.31, 21_000, server="node", loadgen=55.0)]
    results = {("sio09-hub", "echo10"): bench.median_run(hub),
               ("node", "echo10"): bench.median_run(node)}
    table, notes = bench.render(results, [bench.NODE, bench.sio09_spec("hub")], echo10(bench))
    mark = notes.index(bench.SATURATED_NOTE) + 1
    rate_row, cpu_row = table.splitlines()[2:4]
    # the hub's median run used 70%, but another of its runs 112%: the mark is on
    assert f"30,000 [{mark}]" in rate_row
    assert f"[{mark}]" not in rate_row.split(" | ")[2]     # Node's own cell
    assert f"[{mark}]" not in cpu_row
    # the summary under the table: the highest over every run, not the medians'
    assert bench.loadgen_peaks(hub + node) == (112.0, 0.0)


# -- the command line and the CPU counter ---------------------------------------------

@pytest.mark.parametrize("wanted", ["idle3000", "idle10000", "echo10,idle10000"])
def test_a_quick_run_refuses_the_workloads_only_a_full_run_has(bench, wanted, capsys):
    """It used to run nothing and say "hub did not run (no workload succeeded)"."""
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(["--quick", "--workloads", wanted])
    assert exit_.value.code == 2
    assert "not in a --quick run" in capsys.readouterr().err
    assert bench.parse_args(["--workloads", wanted]).workloads == wanted.split(",")


def test_the_server_cpu_is_read_finer_than_clock_ticks(bench):
    """utime + stime count in 10 ms ticks; the process CPU clock counts in ns and
    keeps the time of threads that have ended."""
    import os
    import threading
    import time

    def spin():
        end = time.process_time() + 0.03
        while time.process_time() < end:
            pass

    worker = threading.Thread(target=spin)
    worker.start()
    worker.join()
    before = time.process_time()
    seen = bench.process_cpu_clock(os.getpid())
    after = time.process_time()
    assert seen is not None and before <= seen <= after
    sample = bench.Sample.read(os.getpid())
    assert abs(sample.cpu_s - sample.cpu_ticks_s) <= 2 / bench.CLK_TCK + 0.01


def test_the_measured_code_is_the_one_pythonpath_names(bench, tmp_path):
    """A second work tree on PYTHONPATH is what the servers import (they run
    from bench/apps, where the repository root cannot shadow it), and the
    table names it."""
    import os

    (tmp_path / "flask_sio09").mkdir()
    (tmp_path / "flask_sio09" / "__init__.py").write_text("")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    assert bench.measured_tree(sys.executable, env) == tmp_path
    # (without it, wherever the venv's install points: a clone tested with
    # another clone's venv imports that one)
    plain = bench.measured_tree(sys.executable, {k: v for k, v in os.environ.items()
                                                 if k != "PYTHONPATH"})
    assert plain != tmp_path and (plain / "flask_sio09" / "__init__.py").is_file()
    assert str(tmp_path) in bench.revision(tmp_path)  # (not a git tree: "unknown", and where)
    assert "imported from" not in bench.revision(bench.ROOT)


def test_a_python_server_imports_the_package_pythonpath_names(bench, tmp_path, monkeypatch):
    """The bench's gunicorn starts where the repository root cannot shadow
    PYTHONPATH: a stand-in package there is the one the app imports."""
    marker = tmp_path / "imported"
    (tmp_path / "flask_sio09").mkdir()
    (tmp_path / "flask_sio09" / "__init__.py").write_text(
        f"open({str(marker)!r}, 'w').write(__file__)\nraise ImportError('a stand-in')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    workload = bench.Workload("w", "w", "echo", 1)
    with open(tmp_path / "server.log", "w") as log:
        try:
            server = bench.RunningServer(bench.sio09_spec("hub"), workload, sys.executable, log)
        except bench.ServerFailed:
            pass  # (the stand-in refuses to be imported further)
        else:
            server.stop()
            pytest.fail("the server started: it imported the repository's flask_sio09")
    assert marker.read_text().startswith(str(tmp_path))
