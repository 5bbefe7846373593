"""Measure one Pandera call per format: the checked frame and the schema's validate, for a batch of N reports.

    PYTHONPATH=$PWD python benchmarks/bench_schema.py [--n 1 1000 20000] [--rounds 5] [--json-out FILE]

Balanced synthetic reports (every check passes, so the figure is the fixed cost a batch pays, not the cost
of reporting failures); the median and min–max of `rounds` timings, in one process, after one warm-up call.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

from disclosure_xlsx._pandera import SchemaErrors
from disclosure_xlsx.clean import CellValues, CleanReport
from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.layout import standard_where
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.validate import checked_frame, schema_for


def _reports(format_id: str, n: int) -> list[CleanReport]:
    """N reports as a batch's workers hand them back: their values packed (`CellValues`)."""
    fmt = get_format(format_id)
    where = standard_where(format_id)
    rows = [balanced_report(format_id, random.Random(i % 500)) for i in range(n)]
    return [CleanReport(f"{i}.xlsx", fmt, "names", f"第{i}镇", None, fmt.first_year,
                        CellValues.packed(fmt, {c: r.get(c) for c in fmt.cells}) or {c: r.get(c) for c in fmt.cells},
                        frozenset(), where, {}, [], []) for i, r in enumerate(rows)]


def _once(format_id: str, reports: list[CleanReport]) -> float:
    fmt = get_format(format_id)
    start = time.perf_counter()
    try:
        schema_for(fmt).validate(checked_frame(reports, fmt), lazy=True)
    except SchemaErrors as exc:  # a balanced report passes: a failure here is a bug, not a figure
        raise SystemExit(f"format {format_id}: the balanced batch failed:\n{exc.failure_cases.head()}") from exc
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1, 1000, 20000], help="batch sizes")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json-out", help="also write the figures here")
    args = parser.parse_args()
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for format_id in all_formats():
        for n in args.n:
            reports = _reports(format_id, n)
            _once(format_id, reports)  # warm-up: the schema is built once per format
            ms = [1000 * _once(format_id, reports) for _ in range(args.rounds)]
            figures.setdefault(format_id, {})[str(n)] = {"median_ms": round(statistics.median(ms), 1),
                                                         "min_ms": round(min(ms), 1), "max_ms": round(max(ms), 1)}
            print(f"format {format_id}, {n:>6} reports: {statistics.median(ms):7.1f} ms "
                  f"({min(ms):.1f}–{max(ms):.1f})", flush=True)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump({"rounds": args.rounds, "formats": figures}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
