"""Time the annotated copy per workbook: patching the package vs the former openpyxl load-and-save.

    python benchmarks/bench_annotate.py [--synthetic 24] [--rounds 5] [--json-out FILE]

Inputs are template-sized: the sample workbooks that have findings, plus `--synthetic` filled templates
of both formats with messy values ("3件", full-width digits, "1,234") and one wrong total each. Each
round annotates every workbook once with each method, interleaved (A, B, A, B …) so that a busy machine
slows both alike, and writes the copy to disk as `--out` does (atomically). Reported: median and p95
milliseconds per copy, wall and CPU (CPU time is much less disturbed by a shared machine), and the patch
step alone. The openpyxl method is the module as it was before the
patcher (read from git), run only when git and openpyxl are available. No figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from disclosure_xlsx.annotate import AnnotationJob, _marks, _result_sheet, annotate
from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template
from disclosure_xlsx.xlsxpatch import patch_workbook

ROOT = Path(__file__).resolve().parent.parent
OPENPYXL_REVISION = "9b76969"  # the last commit whose annotate.py loaded and saved with openpyxl
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def synthetic(folder: Path, count: int) -> list[Path]:
    out = []
    for index in range(count):
        rng = random.Random(index)
        format_id = list(all_formats())[index % 2]
        fmt = get_format(format_id)
        values: dict[str, object] = dict(balanced_report(format_id, rng, zero_share=0.5, maximum=300))
        counts = [c for c in fmt.cells.values() if c.type.key == "count"]
        for cell in rng.sample(counts, 6):
            number = values[cell.id]
            values[cell.id] = rng.choice([f"{number}件", str(number).translate(FULLWIDTH), f"{number:,}"])
        identity = rng.choice(fmt.identities)
        anchor = values[identity.anchor]
        values[identity.anchor] = (anchor if isinstance(anchor, int) else 0) + 1
        values.update({"meta_office": f"示例镇{index}", "meta_year": fmt.first_year})
        out.append(write_template(folder / f"synthetic-{index}.xlsx", format_id, values=values))
    return out


def openpyxl_module() -> ModuleType | None:
    """The former annotate.py, loaded as a module of the package (its relative imports still resolve)."""
    try:
        import openpyxl  # noqa: F401

        source = subprocess.run(["git", "show", f"{OPENPYXL_REVISION}:disclosure_xlsx/annotate.py"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout
    except (ImportError, OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "annotate_openpyxl.py"
    path.write_text(source, "utf-8")
    spec = importlib.util.spec_from_file_location("disclosure_xlsx._annotate_openpyxl", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "disclosure_xlsx"
    spec.loader.exec_module(module)
    return module


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {"median_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 2),
            "min_ms": round(ordered[0] * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2), "copies": len(ordered)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json-out", type=Path, default=ROOT / "benchmarks" / "results-annotate.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = sorted((ROOT / "sample_workbooks").glob("*.xlsx")) + synthetic(work / "in", args.synthetic)
        batch = validate_paths(inputs, workers=1)
        workbooks = [w for w in batch.workbooks if w.findings and w.report is not None]
        old = openpyxl_module()
        times: dict[str, list[float]] = {"patched": [], "patched_cpu": [], "patch_step": [], "openpyxl": [],
                                         "openpyxl_cpu": []}
        for round_ in range(args.rounds):
            for i, w in enumerate(workbooks):
                job = AnnotationJob(w.report, tuple(w.findings), work / "out" / f"{round_}-{i}.xlsx")
                start, cpu = time.perf_counter(), time.process_time()
                outcome = annotate(job)
                times["patched"].append(time.perf_counter() - start)
                times["patched_cpu"].append(time.process_time() - cpu)
                assert outcome.ok, outcome.problem
                fmt = get_format(w.report.format_id)
                marks = _marks(fmt, w.findings, w.report.cleaning, (), None, "zh")
                sheet = _result_sheet(fmt, w.findings, w.report.cleaning, (), None, None, "zh")
                start = time.perf_counter()
                patch_workbook(w.file, work / "out" / f"{round_}-{i}-step.xlsx", marks, sheet)
                times["patch_step"].append(time.perf_counter() - start)
                if old is not None:
                    start, cpu = time.perf_counter(), time.process_time()
                    old.annotate_workbook(w.file, w.report.format_id, w.findings, w.cleaning,
                                          work / "out" / f"{round_}-{i}-openpyxl.xlsx")
                    times["openpyxl"].append(time.perf_counter() - start)
                    times["openpyxl_cpu"].append(time.process_time() - cpu)
    result = {"workbooks": len(workbooks), "rounds": args.rounds, "python": platform.python_version(),
              "machine": platform.machine(), "cpus": __import__("os").cpu_count(),
              **{k: summary(v) for k, v in times.items() if v}}
    if times["openpyxl"]:
        for kind in ("", "_cpu"):
            result[f"speedup{kind or '_wall'}"] = round(
                statistics.median(times[f"openpyxl{kind}"]) / statistics.median(times[f"patched{kind}"]), 1)
    print(json.dumps(result, indent=1))
    args.json_out.write_text(json.dumps(result, indent=1) + "\n", "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
