"""Measure `disclosure-xlsx validate` against the cost of just reading the files.

    python benchmarks/bench_validate.py --n 2000 [--rounds 3] [--workers N] [--json-out FILE] [--keep DIR]

Generates N filled workbooks with the project's own template (both formats, ~5 % with a deliberate
error, messy cell values, Chinese file names), then measures in one run, several rounds, reporting
medians:

  (a) the floor: open each file and read all its cell values with python-calamine, nothing else;
  (b) `disclosure-xlsx validate DIR --json` end to end, as a subprocess (and its peak memory);
  (c) the same with `--out DIR` (annotated copies, summaries and the overview included);

and the start-up time of `disclosure-xlsx --help`. It prints workbooks per second and the ratios
(b)/(a) and (c)/(a), and writes every figure to a JSON file. No figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from python_calamine import CalamineWorkbook

from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

TOWNS = ["城关镇", "东城街道", "西湖乡", "南山镇", "北塘镇", "新安街道", "石门乡", "白沙镇", "青山镇", "河口乡"]
OFFICES = ["人民政府", "审计局", "财政局", "教育局", "自然资源局", "卫生健康局", "住房和城乡建设局", "交通运输局"]
MESSY = ["{}\u00a0", "\u00a0{}", "{} ", "{}件"]  # as offices type or paste them (spec §9–§11)
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


def make_workbook(job: tuple[int, str]) -> str:
    """One filled workbook of realistic variety; returns its path."""
    index, folder = job
    rng = random.Random(index)
    format_id = list(all_formats())[index % 2]
    fmt = get_format(format_id)
    values: dict[str, object] = dict(balanced_report(format_id, rng, zero_share=0.6, maximum=30))
    counts = [c for c in fmt.cells.values() if c.type.key == "count"]
    for cell in rng.sample(counts, rng.randint(0, 12)):  # messy but readable: still balanced
        number = values[cell.id]
        pick = rng.random()
        values[cell.id] = str(number).translate(FULLWIDTH) if pick < 0.2 else rng.choice(MESSY).format(number)
    if rng.random() < 0.05:  # a deliberate error
        identity = rng.choice(fmt.identities)
        values[identity.anchor] = (values[identity.anchor] if isinstance(values[identity.anchor], int) else 0) + 1
    office = f"{TOWNS[index % len(TOWNS)]}{OFFICES[(index // len(TOWNS)) % len(OFFICES)]}{index // 80 or ''}"
    year = fmt.first_year + rng.randint(0, 1)
    values.update(meta_office=office, meta_year=year, meta_credit_code=f"1133{index:014d}")
    path = Path(folder) / f"{year}年_{office}_政府信息公开年报_{index:05d}.xlsx"
    write_template(path, format_id, values=values)
    return str(path)


def generate(n: int, folder: Path, workers: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(make_workbook, [(i, str(folder)) for i in range(n)], chunksize=32))


def floor(folder: Path) -> float:
    """(a): open every file and read all cell values with python-calamine, nothing else."""
    files = sorted(folder.glob("*.xlsx"))
    start = time.perf_counter()
    for path in files:
        workbook = CalamineWorkbook.from_path(str(path))
        for name in workbook.sheet_names:
            workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
    return time.perf_counter() - start


def run(args: list[str]) -> tuple[float, int]:
    """Wall time and peak resident memory (KiB; the largest of the process and its workers)."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(args)} failed")
    return elapsed, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="workbooks to generate")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="passed to validate (default: all cores)")
    parser.add_argument("--json-out", type=Path, default=Path("benchmarks") / "results.json")
    parser.add_argument("--keep", type=Path, default=None, help="generate into (and keep) this folder")
    parser.add_argument("--skip-out", action="store_true", help="do not measure (c)")
    args = parser.parse_args()

    script = shutil.which("disclosure-xlsx")  # the installed command; else the same app through python -m
    tool = [script] if script else [sys.executable, "-m", "disclosure_xlsx"]
    base = Path(tempfile.mkdtemp(prefix="bench-"))
    folder = args.keep or base / "in"
    cores = os.cpu_count() or 1
    if not any(folder.glob("*.xlsx")):
        start = time.perf_counter()
        generate(args.n, folder, cores)
        print(f"generated {args.n} workbooks in {time.perf_counter() - start:.1f} s", flush=True)
    n = len(list(folder.glob("*.xlsx")))
    extra = ["--workers", str(args.workers)] if args.workers else []
    results: dict[str, list[float]] = {"a": [], "b": [], "c": [], "help": [], "memory_b_kib": []}
    for round_ in range(args.rounds):
        results["a"].append(floor(folder))
        seconds, memory = run([*tool, "validate", str(folder), "--json", *extra])
        results["b"].append(seconds)
        results["memory_b_kib"].append(memory)
        if not args.skip_out:
            out = base / f"out{round_}"
            results["c"].append(run([*tool, "validate", str(folder), "--json", "--out", str(out), *extra])[0])
            shutil.rmtree(out, ignore_errors=True)
        print(f"round {round_ + 1}: a {results['a'][-1]:.2f} s, b {results['b'][-1]:.2f} s"
              + (f", c {results['c'][-1]:.2f} s" if results["c"] else ""), flush=True)
    for _ in range(5):
        results["help"].append(run([*tool, "--help"])[0])

    median = {k: statistics.median(v) for k, v in results.items() if v}
    figures = {
        "n": n, "rounds": args.rounds, "cores": cores, "python": platform.python_version(),
        "median_seconds": {k: round(median[k], 3) for k in ("a", "b", "c", "help") if k in median},
        "workbooks_per_second": {k: round(n / median[k], 1) for k in ("a", "b", "c") if k in median},
        "ratio_b_a": round(median["b"] / median["a"], 2),
        "ratio_c_a": round(median["c"] / median["a"], 2) if "c" in median else None,
        "peak_memory_b_mib": round(max(results["memory_b_kib"]) / 1024, 1),
        "all_rounds": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "all_rounds"}, ensure_ascii=False, indent=1))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", "utf-8")
    shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
