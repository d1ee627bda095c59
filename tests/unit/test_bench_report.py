"""bench/run.py's choice of the run that goes in the table when a message
workload runs several times (``--repeat``)."""

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


def run(bench, cpu, rate=1000.0, status="ok"):
    metrics = {} if cpu is None else {"cpu_per_10k": cpu, "rate": rate}
    return bench.Result("sio09-hub", "echo10", status, metrics=metrics)


def test_the_median_run_is_kept_with_every_run_recorded(bench):
    runs = [run(bench, 0.40, 10), run(bench, 0.30, 20), run(bench, 0.35, 30)]
    chosen = bench.median_run(runs)
    assert chosen is runs[2]
    assert chosen.metrics["cpu_per_10k_runs"] == [0.40, 0.30, 0.35]
    assert chosen.metrics["rate_runs"] == [10, 20, 30]


def test_an_even_count_keeps_the_lower_middle_run(bench):
    runs = [run(bench, 0.40), run(bench, 0.30)]
    assert bench.median_run(runs) is runs[1]


def test_failed_runs_are_left_out_and_counted(bench):
    runs = [run(bench, None, status="failed"), run(bench, 0.5), run(bench, 0.7)]
    chosen = bench.median_run(runs)
    assert chosen is runs[1]
    assert chosen.metrics["cpu_per_10k_runs"] == [0.5, 0.7]
    assert "1 of 3 runs failed" in chosen.note


def test_when_every_run_failed_the_first_says_why(bench):
    runs = [run(bench, None, status="failed"), run(bench, None, status="failed")]
    assert bench.median_run(runs) is runs[0]


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


def test_the_peers_venv_is_checked_for_the_interpreter_it_was_made_from(bench, tmp_path):
    """Flask-SocketIO's venv must follow the interpreter that runs the bench."""
    ours = sys._base_executable
    assert bench.venv_interpreter(tmp_path) is None  # no venv there
    (tmp_path / "pyvenv.cfg").write_text(
        f"home = /somewhere\nversion = 3.11.0\nexecutable = {ours}\ncommand = x\n")
    assert bench.venv_interpreter(tmp_path) == str(Path(ours).resolve())
    (tmp_path / "pyvenv.cfg").write_text("home = /other\nexecutable = /other/python3\n")
    assert bench.venv_interpreter(tmp_path) == "/other/python3"
