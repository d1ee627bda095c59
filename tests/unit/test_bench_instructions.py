"""bench/instructions.py: reading a callgrind dump's instruction count."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

INSTRUCTIONS_PY = Path(__file__).resolve().parents[2] / "bench" / "instructions.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("bench_instructions", INSTRUCTIONS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_count_is_the_totals_line_not_the_summary(tool, tmp_path):
    dump = tmp_path / "cg.1.out.1"
    # (the shape callgrind 3.19 writes for a dump on demand: summary 0)
    dump.write_text("# callgrind format\nversion: 1\ncreator: callgrind-3.19.0\n"
                    "events: Ir\nsummary: 0\n\nfn=(1) main\n0 12\ntotals: 384969393\n")
    assert tool.total_instructions(dump) == 384969393


def test_a_dump_without_totals_is_an_error(tool, tmp_path):
    dump = tmp_path / "cg.1.out.1"
    dump.write_text("events: Ir\nsummary: 5\n")
    with pytest.raises(ValueError):
        tool.total_instructions(dump)
