"""The benchmark script runs end to end on a small batch (its figures are reported, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_with_n_20(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_validate.py"), "--n", "20",
                             "--rounds", "1", "--json-out", str(out), "--keep", str(tmp_path / "batch")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    figures = json.loads(out.read_text("utf-8"))
    assert figures["n"] == 20 == len(list((tmp_path / "batch").glob("*.xlsx")))
    assert set(figures["median_seconds"]) == {"a", "b", "c", "help"}
    assert {"ratio_b_a", "ratio_c_a", "peak_memory_b_mib", "workbooks_per_second"} <= set(figures)
    names = [p.name for p in (tmp_path / "batch").glob("*.xlsx")]
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names)  # Chinese file names
