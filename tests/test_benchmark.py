"""The benchmark script runs end to end on a small batch (its figures are reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # ~30 s of real subprocesses: CI runs it on its own (`pytest -m slow`) after the suite
def test_the_benchmark_runs_with_n_20(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_validate.py"), "--n", "20",
                             "--rounds", "1", "--json-out", str(out), "--keep", str(tmp_path / "batch")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text("utf-8"))
    assert figures["n"] == 20 == len(list((tmp_path / "batch").glob("*.xlsx")))
    cases = figures["cases"]
    assert {"floor_1", "floor_2", "validate_w1", "validate_w2", "out_w2", "previous_w2", "aggregate_w2",
            "convert_w2"} <= set(cases)
    for name in ("validate_w1", "validate_w2"):  # paired with the floor of the same parallelism
        assert cases[name]["paired_with"] == f"floor_{name[-1]}"
        assert {"ratio_wall", "ratio_cpu", "cpu_ms_per_workbook_beyond_floor"} <= set(cases[name])
        assert cases[name]["cpu_s"]["median"] > 0 and cases[name]["peak_tree_pss_mib"] > 0
    assert set(figures["startup"]) == {"help", "template", "validate_one"}
    assert figures["batch"]["summary"] and len(figures["load_average_1min"]) == 2
    names = [p.name for p in (tmp_path / "batch").glob("*.xlsx")]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names)  # Chinese file names
