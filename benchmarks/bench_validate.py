"""Measure `disclosure-xlsx validate` against the cost of just reading the files.

    python benchmarks/bench_validate.py --n 2000 [--rounds 3] [--workers N] [--json-out FILE] [--keep DIR]
                                        [--previous]

Generates N filled workbooks with the project's own template (both formats, ~5 % with a deliberate
error, messy cell values, Chinese file names), then measures in one run, several rounds, reporting
medians:

  (a) the floor: open each file and read all its cell values with python-calamine, nothing else;
  (b) `disclosure-xlsx validate DIR --json` end to end, as a subprocess (and its peak memory);
  (c) the same with `--out DIR` (annotated copies, summaries and the overview included);

and the start-up time of `disclosure-xlsx --help`. With `--previous` it also writes last year's report of
every office (X1–X3 hold, section 五 copied in ~10 %) beside the batch and measures

  (d) `disclosure-xlsx validate DIR --json --previous PREV` (pairing, cross-year rules, copied text).

It prints workbooks per second and the ratios (b)/(a), (c)/(a) and (d)/(b), and writes every figure to
a JSON file. No figure is asserted anywhere.
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

from disclosure_xlsx.formats import all_formats, format_for_year, get_format
from disclosure_xlsx.synthetic import balanced_report, balanced_successor
from disclosure_xlsx.template import write_template

TOWNS = ["城关镇", "东城街道", "西湖乡", "南山镇", "北塘镇", "新安街道", "石门乡", "白沙镇", "青山镇", "河口乡"]
OFFICES = ["人民政府", "审计局", "财政局", "教育局", "自然资源局", "卫生健康局", "住房和城乡建设局", "交通运输局"]
MESSY = ["{}\u00a0", "\u00a0{}", "{} ", "{}件"]  # as offices type or paste them (spec §9–§11)
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
# Sentences of section 五 as offices write them; each office's text is its own draw of some of them.
PROBLEMS = ["主动公开的深度和广度有待加强", "部分栏目更新不够及时", "政策解读形式较为单一", "图解、视频等解读方式运用不多",
            "依申请公开答复的规范性有待提高", "工作人员业务能力需要进一步提升", "基层政务公开标准化建设推进不平衡",
            "公开目录维护还停留在被动更新", "答复文书说理不够充分", "政务新媒体互动回应不够及时",
            "下一步将加强业务培训", "完善信息发布审核机制", "建立答复文书集体审核制度", "按月通报栏目更新情况",
            "把公开工作纳入年度考核", "丰富政策解读形式", "加强政务公开平台建设", "健全政府信息管理制度"]


def _problems(rng: random.Random, office: str) -> str:
    parts = rng.sample(PROBLEMS, rng.randint(6, 10))
    return f"{office}政府信息公开工作仍存在一些不足：" + "；".join(parts) + "。"


def make_workbook(job: tuple[int, str, str | None]) -> str:
    """One filled workbook of realistic variety (and, with a previous folder, the office's report for the
    year before, which the current one follows from); returns its path."""
    index, folder, previous = job
    rng = random.Random(index)
    format_id = list(all_formats())[index % 2]
    fmt = get_format(format_id)
    values: dict[str, object] = dict(balanced_report(format_id, rng, zero_share=0.6, maximum=30))
    office = f"{TOWNS[index % len(TOWNS)]}{OFFICES[(index // len(TOWNS)) % len(OFFICES)]}{index // 80 or ''}"
    if previous is not None:  # its own random source, so the batch without --previous stays as it was
        prng = random.Random(-1 - index)
        year = fmt.first_year + prng.randint(0, 1)
        last_fmt = format_for_year(year - 1) or fmt
        last: dict[str, object] = dict(balanced_report(last_fmt.id, prng, zero_share=0.6, maximum=30))
        last_text = _problems(prng, office)
        last.update(meta_office=office, meta_year=year - 1, meta_credit_code=f"1133{index:014d}",
                    text_problems=last_text)
        write_template(Path(previous) / f"{year - 1}年_{office}_{index:05d}.xlsx", last_fmt.id, values=last)
        values = dict(balanced_successor(last, last_fmt.id, format_id, year, prng,  # type: ignore[arg-type]
                                         zero_share=0.6, maximum=30))
        values["text_problems"] = last_text if prng.random() < 0.1 else _problems(prng, office)
    counts = [c for c in fmt.cells.values() if c.type.key == "count"]
    for cell in rng.sample(counts, rng.randint(0, 12)):  # messy but readable: still balanced
        number = values[cell.id]
        pick = rng.random()
        values[cell.id] = str(number).translate(FULLWIDTH) if pick < 0.2 else rng.choice(MESSY).format(number)
    if rng.random() < 0.05:  # a deliberate error
        identity = rng.choice(fmt.identities)
        values[identity.anchor] = (values[identity.anchor] if isinstance(values[identity.anchor], int) else 0) + 1
    if previous is None:
        year = fmt.first_year + rng.randint(0, 1)
    values.update(meta_office=office, meta_year=year, meta_credit_code=f"1133{index:014d}")
    path = Path(folder) / f"{year}年_{office}_政府信息公开年报_{index:05d}.xlsx"
    write_template(path, format_id, values=values)
    return str(path)


def generate(n: int, folder: Path, workers: int, previous: Path | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if previous is not None:
        previous.mkdir(parents=True, exist_ok=True)
    jobs = [(i, str(folder), str(previous) if previous else None) for i in range(n)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(make_workbook, jobs, chunksize=32))


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
    parser.add_argument("--previous", action="store_true",
                        help="also write last year's reports beside the batch and measure (d) with --previous")
    args = parser.parse_args()

    script = shutil.which("disclosure-xlsx")  # the installed command; else the same app through python -m
    tool = [script] if script else [sys.executable, "-m", "disclosure_xlsx"]
    base = Path(tempfile.mkdtemp(prefix="bench-"))
    folder = args.keep or base / "in"
    previous = folder.parent / f"{folder.name}-previous" if args.previous else None  # beside, not inside
    cores = os.cpu_count() or 1
    if not any(folder.glob("*.xlsx")) or (previous is not None and not any(previous.glob("*.xlsx"))):
        start = time.perf_counter()
        generate(args.n, folder, cores, previous)
        print(f"generated {args.n} workbooks in {time.perf_counter() - start:.1f} s", flush=True)
    n = len(list(folder.glob("*.xlsx")))
    extra = ["--workers", str(args.workers)] if args.workers else []
    results: dict[str, list[float]] = {"a": [], "b": [], "c": [], "d": [], "help": [], "memory_b_kib": []}
    for round_ in range(args.rounds):
        results["a"].append(floor(folder))
        seconds, memory = run([*tool, "validate", str(folder), "--json", *extra])
        results["b"].append(seconds)
        results["memory_b_kib"].append(memory)
        if not args.skip_out:
            out = base / f"out{round_}"
            results["c"].append(run([*tool, "validate", str(folder), "--json", "--out", str(out), *extra])[0])
            shutil.rmtree(out, ignore_errors=True)
        if previous is not None:
            results["d"].append(run([*tool, "validate", str(folder), "--json", "--previous", str(previous),
                                     *extra])[0])
        print(f"round {round_ + 1}: a {results['a'][-1]:.2f} s, b {results['b'][-1]:.2f} s"
              + (f", c {results['c'][-1]:.2f} s" if results["c"] else "")
              + (f", d {results['d'][-1]:.2f} s" if results["d"] else ""), flush=True)
    for _ in range(5):
        results["help"].append(run([*tool, "--help"])[0])

    median = {k: statistics.median(v) for k, v in results.items() if v}
    figures = {
        "n": n, "rounds": args.rounds, "cores": cores, "python": platform.python_version(),
        "median_seconds": {k: round(median[k], 3) for k in ("a", "b", "c", "d", "help") if k in median},
        "workbooks_per_second": {k: round(n / median[k], 1) for k in ("a", "b", "c", "d") if k in median},
        "ratio_b_a": round(median["b"] / median["a"], 2),
        "ratio_c_a": round(median["c"] / median["a"], 2) if "c" in median else None,
        "ratio_d_b": round(median["d"] / median["b"], 2) if "d" in median else None,
        "paired_rounds_d_minus_b": [round(d - b, 3) for b, d in zip(results["b"], results["d"])],
        "peak_memory_b_mib": round(max(results["memory_b_kib"]) / 1024, 1),
        "all_rounds": {k: [round(x, 3) for x in v] for k, v in results.items()},
    }
    print(json.dumps({k: v for k, v in figures.items() if k != "all_rounds"}, ensure_ascii=False, indent=1))
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(figures, ensure_ascii=False, indent=1) + "\n", "utf-8")
    shutil.rmtree(base, ignore_errors=True)
    if previous is not None and args.keep is None:
        shutil.rmtree(previous, ignore_errors=True)


if __name__ == "__main__":
    main()
