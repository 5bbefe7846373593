"""Time the output writers per workbook: convert's cleaned workbooks and validate --out's folder.

    python benchmarks/bench_outputs.py [--n 200] [--rounds 3] [--workers 2] [--json-out FILE]

`--n` filled templates of both formats (every fourth with a wrong total, so that it gets an annotated
copy, every tenth an old-format template for its year, so that it gets a pre-filled new template) are
validated once; then each round times `write_outputs` on that batch, and `convert_paths` minus a
`validate_paths` of the same files (the reading convert does itself), interleaved so that a busy machine
slows both alike. Reported: the median over rounds of milliseconds per workbook, wall and CPU of this
process and its children. No figure is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from disclosure_xlsx.convert import convert_paths
from disclosure_xlsx.feedback import write_outputs
from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template


def batch(folder: Path, count: int) -> list[Path]:
    ids = list(all_formats())
    out = []
    for index in range(count):
        format_id = ids[index % len(ids)]
        fmt = get_format(format_id)
        values: dict[str, object] = dict(balanced_report(format_id, random.Random(index)))
        year = fmt.first_year
        if index % 10 == 0 and fmt.last_year is not None:
            year = fmt.last_year + 1  # an old template for its year: a pre-filled new one is written
        values.update({fmt.field("office").name: f"示例镇{index}", fmt.field("year").name: year})
        if index % 4 == 0:
            identity = fmt.identities[index % len(fmt.identities)]
            anchor = values[identity.anchor]
            values[identity.anchor] = (anchor if isinstance(anchor, int) else 0) + 1
        out.append(write_template(folder / f"b{index}.xlsx", format_id, values=values))
    return out


def clock() -> tuple[float, float]:
    times = os.times()
    return time.perf_counter(), times.user + times.system + times.children_user + times.children_system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {"write_outputs": [], "convert_writes": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = batch(root / "in", args.n)
        checked = validate_paths(files, workers=args.workers)
        for r in range(args.rounds):
            wall, cpu = clock()
            write_outputs(checked, root / f"out{r}", workers=args.workers)
            wall2, cpu2 = clock()
            figures["write_outputs"].append((wall2 - wall, cpu2 - cpu))
            shutil.rmtree(root / f"out{r}")
            wall, cpu = clock()
            validate_paths(files, workers=args.workers)
            wall2, cpu2 = clock()
            convert_paths(files, root / f"conv{r}", workers=args.workers)
            wall3, cpu3 = clock()
            figures["convert_writes"].append(((wall3 - wall2) - (wall2 - wall), (cpu3 - cpu2) - (cpu2 - cpu)))
            shutil.rmtree(root / f"conv{r}")
    result = {"n": args.n, "rounds": args.rounds, "workers": args.workers, "python": platform.python_version(),
              "cpus": os.cpu_count()}
    for key, values in figures.items():
        result[key] = {"wall_ms_per_workbook": round(statistics.median(w for w, _ in values) * 1000 / args.n, 2),
                       "cpu_ms_per_workbook": round(statistics.median(c for _, c in values) * 1000 / args.n, 2)}
    text = json.dumps(result, indent=1)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", "utf-8")


if __name__ == "__main__":
    sys.exit(main())
