"""Measure how well and how fast `suggest.suggest_fix` names the wrong cells, in-process.

    python benchmarks/bench_suggest.py [--n-one 1000] [--n-blanks 100] [--n-two 300] [--batch 2000]

On synthetic balanced reports of every format (as bench_validate.py makes them):

  one cell changed    (a random identity cell set to a random other whole number ≥ 0): the share where
                      the suggestion is unique and names exactly that cell with its original value, per
                      section; the share where the original is at least among the sets listed;
  blanks              the same with a third of the zeros left blank, for blank_weight 1 (the default)
                      and 0.01 (blanks filled first);
  two cells changed   the share where the suggested set is valid (every identity holds, counts whole and
                      ≥ 0) and minimal (at most two cells, and no single cell would do, by brute force);
  cost                seconds per failing workbook (median, 95th percentile, max), by method;
  batch               N workbooks with 5 % failing (an identity's total one too large, as bench_validate
                      makes them): suggest_fix called on every workbook, and on the failing ones only.

Figures go to a JSON file; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from disclosure_xlsx.formats import Format, all_formats
from disclosure_xlsx.suggest import FOUND, Suggestion, suggest_fix
from disclosure_xlsx.synthetic import balanced_report

ZERO_SHARE, MAXIMUM = 0.6, 30  # as bench_validate.py


def identity_cells(fmt: Format) -> list[str]:
    used = {c for i in fmt.identities for c in i.cells}
    return [c for c in fmt.cells if c in used]


def holds(fmt: Format, values: dict[str, Any]) -> bool:
    counted = {c: (0 if v is None else v) for c, v in values.items()}
    return all(i.holds(counted) for i in fmt.identities)


def valid(fmt: Format, values: dict[str, Any], s: Suggestion) -> bool:
    ok = all(isinstance(c.suggested, int) and (fmt.cells[c.id].type.min is None or c.suggested >= fmt.cells[c.id].type.min)
             for c in s.changes)
    return s.outcome == FOUND and ok and holds(fmt, s.applied(values))


def one_cell_fix_exists(fmt: Format, values: dict[str, Any]) -> bool:
    """Brute force, sharing no code with the module: does any single cell fix every identity?"""
    counted = {c: (0 if v is None else v) for c, v in values.items()}
    diffs = [(i, i.difference(counted)) for i in fmt.identities]
    for cid in identity_cells(fmt):
        asks = {(-d if cid in i.lhs else d) if cid in i.cells else (None if d else "ok") for i, d in diffs}
        asks.discard("ok")
        if len(asks) == 1 and None not in asks:
            new = counted[cid] + asks.pop()
            if new != counted[cid] and new >= (fmt.cells[cid].type.min or 0):
                return True
    return False


def sets(s: Suggestion) -> list[dict[str, Any]]:
    return [{c.id: c.suggested for c in found} for found in (s.changes, *s.alternatives)]


def timed(fmt: Format, values: dict[str, Any], **kw: Any) -> tuple[Suggestion | None, float]:
    start = time.perf_counter()
    s = suggest_fix(fmt, values, **kw)
    return s, time.perf_counter() - start


def pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def quantiles(seconds: list[float]) -> dict[str, float | int | None]:
    if not seconds:
        return {"n": 0, "median_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return {"n": len(ordered), "median_ms": round(1000 * statistics.median(ordered), 3),
            "p95_ms": round(1000 * p95, 3), "max_ms": round(1000 * ordered[-1], 3)}


def one_cell(fmt: Format, n: int, seed: int, costs: dict[str, list[float]], *, blank_share: float = 0.0,
             blank_weight: float = 1.0) -> dict[str, Any]:
    """One random identity cell changed to a random other value."""
    by_section: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # cases, unique+exact, listed
    not_found = 0
    cells = identity_cells(fmt)
    for index in range(n):
        rng = random.Random(seed * 1_000_003 + index)
        original: dict[str, Any] = dict(balanced_report(fmt.id, rng, zero_share=ZERO_SHARE, maximum=MAXIMUM))
        for cid, value in list(original.items()):
            if value == 0 and rng.random() < blank_share:
                original[cid] = None
        cid = rng.choice(cells)
        old = original[cid] or 0
        new = rng.choice([v for v in range(max(2 * old, 10) + 1) if v != old])
        values = {**original, cid: new}
        s, seconds = timed(fmt, values, blank_weight=blank_weight)
        assert s is not None, "a changed identity cell always breaks an identity"
        costs[s.method].append(seconds)
        not_found += s.outcome != FOUND
        truth = {cid: old}
        tally = by_section[fmt.cells[cid].section]
        tally[0] += 1
        tally[1] += s.unique and sets(s) == [truth]
        tally[2] += truth in sets(s)
    total = [sum(t[k] for t in by_section.values()) for k in range(3)]
    return {"cases": total[0], "unique_exact_pct": pct(total[1], total[0]), "listed_pct": pct(total[2], total[0]),
            "not_found_in_limit": not_found,
            "by_section": {sec: {"cases": t[0], "unique_exact_pct": pct(t[1], t[0]), "listed_pct": pct(t[2], t[0])}
                           for sec, t in sorted(by_section.items())}}


def two_cells(fmt: Format, n: int, seed: int, costs: dict[str, list[float]]) -> dict[str, Any]:
    """Two random identity cells changed; the suggestion must be valid and minimal."""
    cells = identity_cells(fmt)
    cases = valid_minimal = unique_exact = not_found = size_one = 0
    for index in range(n):
        rng = random.Random(seed * 1_000_003 + index)
        original: dict[str, Any] = dict(balanced_report(fmt.id, rng, zero_share=ZERO_SHARE, maximum=MAXIMUM))
        pair = rng.sample(cells, 2)
        values = dict(original)
        for cid in pair:
            values[cid] = rng.choice([v for v in range(max(2 * original[cid], 10) + 1) if v != original[cid]])
        if holds(fmt, values):
            continue  # the two changes cancel out
        s, seconds = timed(fmt, values, time_limit=10.0)
        assert s is not None
        costs[s.method].append(seconds)
        cases += 1
        if s.outcome != FOUND:
            not_found += 1
            continue
        minimal = len(s.changes) == 1 or (len(s.changes) == 2 and not one_cell_fix_exists(fmt, values))
        valid_minimal += valid(fmt, values, s) and minimal
        size_one += len(s.changes) == 1
        unique_exact += s.unique and sets(s) == [{c: original[c] for c in pair}]
    return {"cases": cases, "valid_minimal_pct": pct(valid_minimal, cases), "not_found": not_found,
            "one_cell_suffices_pct": pct(size_one, cases), "unique_exact_pct": pct(unique_exact, cases)}


def batch(formats: list[Format], n: int, share: float, seed: int) -> dict[str, Any]:
    """N reports, `share` of them with an identity's total one too large (as bench_validate.py)."""
    rng = random.Random(seed)
    reports = []
    for index in range(n):
        fmt = formats[index % len(formats)]
        values: dict[str, Any] = dict(balanced_report(fmt.id, rng, zero_share=ZERO_SHARE, maximum=MAXIMUM))
        if rng.random() < share:
            values[rng.choice(fmt.identities).anchor] += 1
        reports.append((fmt, values))
    start = time.perf_counter()
    results = [suggest_fix(fmt, values) for fmt, values in reports]
    every = time.perf_counter() - start
    failing = [(fmt, values) for (fmt, values), s in zip(reports, results, strict=True) if s is not None]
    start = time.perf_counter()
    for fmt, values in failing:
        suggest_fix(fmt, values)
    only = time.perf_counter() - start
    return {"workbooks": n, "failing": len(failing), "seconds_calling_on_every_workbook": round(every, 3),
            "seconds_calling_on_failing_only": round(only, 4),
            "unique": sum(1 for s in results if s is not None and s.unique)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-one", type=int, default=1000, help="one-cell cases per format")
    parser.add_argument("--n-blanks", type=int, default=100, help="one-cell cases with blanks per format and weight")
    parser.add_argument("--n-two", type=int, default=300, help="two-cell cases per format")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json-out", type=Path, default=Path("benchmarks") / "results-suggest.json")
    args = parser.parse_args()
    formats = list(all_formats().values())

    start = time.perf_counter()
    import scipy.optimize  # noqa: F401  (imported by the module at its first solver call)
    scipy_import = time.perf_counter() - start

    figures: dict[str, Any] = {"python": sys.version.split()[0], "machine": platform.machine(),
                               "scipy_import_seconds": round(scipy_import, 3), "formats": {}}
    costs: dict[str, list[float]] = defaultdict(list)
    blank_costs: dict[float, dict[str, list[float]]] = {w: defaultdict(list) for w in (1.0, 0.01)}
    for fmt in formats:
        print(f"format {fmt.id} …", file=sys.stderr)
        figures["formats"][fmt.id] = {
            "one_cell": one_cell(fmt, args.n_one, args.seed, costs),
            "one_cell_blanks": {str(w): one_cell(fmt, args.n_blanks, args.seed + 1, blank_costs[w], blank_share=1 / 3,
                                                 blank_weight=w) for w in blank_costs},
            "two_cells": two_cells(fmt, args.n_two, args.seed + 2, costs)}
    figures["cost_per_failing_workbook"] = {
        "all": quantiles([t for ts in costs.values() for t in ts]),
        **{method: quantiles(ts) for method, ts in sorted(costs.items())},
        **{f"blanks, blank_weight {w}": quantiles([t for ts in c.values() for t in ts])
           for w, c in blank_costs.items()}}
    print("batch …", file=sys.stderr)
    figures["batch"] = batch(formats, args.batch, 0.05, args.seed + 3)
    text = json.dumps(figures, ensure_ascii=False, indent=1)
    print(text)
    args.json_out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    main()
