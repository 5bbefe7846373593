"""Fuzz `disclosure-xlsx validate` with damaged and hostile workbooks made from the project's own template.

    python scripts/fuzz.py --files 3000 [--batch 50] [--seed 1] [--workers 2] [--keep DIR] [--json-out FILE]

Each file starts as a filled template (`template.write_template`, both formats) and gets one to three
mutations, chosen at random (seeded, so a run can be repeated exactly):

  flip      random bytes of the zip changed;        truncate  the zip cut short;
  swap      two parts' contents exchanged;          duplicate a part stored twice (a second copy, changed);
  drop      a part left out;                        flags     zip flag, method or size fields changed;
  cells     random cells given random contents (long and control-character text, formulas, huge,
            negative and odd numbers, booleans, errors, a million digits);
  xml       random XML put into a part (far references, repeated attributes, cells without r, DTDs and
            entities, deep nesting, cut tags, other encodings), or a slice of a part cut or repeated.

The files go to `validate DIR --json` as a subprocess, `--batch` at a time (a batch crash is an exit code
other than 0 or 1, output that is not the JSON report, or a report without every file), and every file
is also read alone through the worker pool with a clock on it (the slowest file). Printed and written as
JSON: files, batches, batch crashes, internal errors (with the mutations that made them), timeouts,
finding codes, and the slowest file. Goal: no batch crash, no internal error, no file over 10 s.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from disclosure_xlsx.formats import all_formats  # noqa: E402
from disclosure_xlsx.pipeline import check_file  # noqa: E402
from disclosure_xlsx.synthetic import balanced_report  # noqa: E402
from disclosure_xlsx.template import write_template  # noqa: E402
from disclosure_xlsx.workers import run_isolated  # noqa: E402

MUTATIONS = ("flip", "truncate", "swap", "duplicate", "drop", "flags", "cells", "xml")
WEIGHTS = (2, 1, 1, 1, 1, 1, 4, 5)
TEXTS = ["", " ", "\u00a0", "0\u00a0", "１２", "3件", "1,234", "-5", "+7", "4.0", "4.5", "1e309", "NaN", "inf",
         "-0", "/", "—", "无", "=1+1", "=cmd|' /C calc'!A0", "@SUM(A1)", "\t=2", "\x00\x01\x1f", "\ufffe",
         "\ud7ff", "1207.5万元", "251000元", "3亿元", "9" * 40, "1" * 1_000_000, "x" * 40_000, "<t>", "&amp;",
         "]]>", "\u202e反向", "🙂" * 100]
NUMBERS = ["0", "-1", "1e308", "-1e308", "1e-320", "4.5", "123456789012345678901234567890", "NaN", "INF", "0x10",
           "", "1.7976931348623157e309", "99999999999999999999"]
FAR = ["XFD1048576", "A1048576", "XFD1", "IW1", "A5001", "ZZZZ1", "A0", "A-1", "A99999999999", "", "&#88;FD1",
       "\u0031", "A1 ", " A1"]
SNIPPETS = [
    '<row r="{row}"><c r="{ref}"><v>1</v></c></row>', '<c r="{ref}" t="s"><v>999999</v></c>',
    '<c><v>1</v></c>' * 300, '<c r="A1" r="{ref}"><v>1</v></c>', "<c r='{ref}'><v>2</v></c>",
    '<x:c xmlns:x="urn:x" r="{ref}"><v>3</v></x:c>', '<dimension ref="A1:{ref}"/>', '<row r="{row}"/>',
    '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>',
    '<!ENTITY e SYSTEM "file:///etc/passwd">', "&e;", "<a>" * 2000 + "</a>" * 2000, "<c r=", '"', "<",
    "\x00", "\ufeff", '<?xml version="1.0" encoding="UTF-16"?>', "<![CDATA[<c r=\"XFD1\">]]>",
    "<!-- <c r=\"XFD1\"> -->",
    '<mergeCell ref="A1:{ref}"/>', '<definedName name="x">Sheet1!$A$1:${ref}</definedName>', '<f>SUM(A1:{ref})</f>',
    '<c r="B2" t="inlineStr"><is><t>{text}</t></is></c>', '<si><t>{text}</t></si>', '<v>{number}</v>',
    '<table:table-row table:number-rows-repeated="1048576"><table:table-cell office:value-type="float" '
    'office:value="1" table:number-columns-repeated="16384"/></table:table-row>',
]


@dataclass
class Report:
    """What one fuzz run found."""

    files: int = 0
    batches: int = 0
    batch_crashes: list[dict[str, object]] = field(default_factory=list)
    internal_errors: list[dict[str, object]] = field(default_factory=list)
    timeouts: list[str] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    slowest_file: str = ""
    slowest_seconds: float = 0.0
    seconds: float = 0.0


def base_workbooks(folder: Path, seed: int) -> list[bytes]:
    """A few filled templates of each format, as bytes."""
    rng = random.Random(seed)
    out = []
    for i, format_id in enumerate(list(all_formats()) * 2):
        values: dict[str, object] = dict(balanced_report(format_id, rng))
        values["meta_office"] = f"某镇人民政府{i}"
        values["meta_year"] = 2024 if format_id == list(all_formats())[-1] else 2020
        path = write_template(folder / f"base{i}.xlsx", format_id, values=values)
        out.append(path.read_bytes())
    return out


def _parts(data: bytes) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return [(info, archive.read(info)) for info in archive.infolist()]


def _zip(parts: list[tuple[str, bytes]]) -> bytes:
    warnings.filterwarnings("ignore", "Duplicate name", UserWarning)  # duplicates are a mutation here
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts:
            archive.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), content, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _snippet(rng: random.Random) -> str:
    rows = ["1048576", "5001", "0", "-3", "x", "70000"]
    return rng.choice(SNIPPETS).format(ref=rng.choice(FAR), row=rng.choice(rows),
                                       text=rng.choice(TEXTS)[:50_000].replace("<", "&lt;"), number=rng.choice(NUMBERS))


def mutate(data: bytes, rng: random.Random, kind: str) -> bytes:
    """One mutation of a workbook's bytes (some need it still to be a readable zip, else they pass it on)."""
    if kind == "flip":
        out = bytearray(data)
        for _ in range(rng.randint(1, 16)):
            out[rng.randrange(len(out))] = rng.randrange(256)
        return bytes(out)
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "flags":
        out = bytearray(data)
        headers = [m.start() for m in re.finditer(b"PK\x01\x02|PK\x03\x04", data)]
        for _ in range(rng.randint(1, 3)):
            at = rng.choice(headers) if headers else 0
            field_at = at + rng.choice([6, 7, 8, 9, 10, 20, 22, 24, 26, 28])
            if field_at < len(out):
                out[field_at] = rng.randrange(256)
        return bytes(out)
    try:
        parts = [(info.filename, content) for info, content in _parts(data)]
    except Exception:  # already no readable zip: damage it a little more instead
        return mutate(data, rng, "flip")
    if not parts:
        return data
    i = rng.randrange(len(parts))
    if kind == "swap" and len(parts) > 1:
        j = rng.randrange(len(parts))
        parts[i], parts[j] = (parts[i][0], parts[j][1]), (parts[j][0], parts[i][1])
    elif kind == "duplicate":
        name, content = parts[i]
        parts.insert(rng.randrange(len(parts) + 1), (name, _xml_mutation(content, rng)))
    elif kind == "drop":
        parts.pop(i)
    elif kind == "cells":
        sheets = [k for k, (name, _) in enumerate(parts) if "worksheets/" in name or name.endswith("sharedStrings.xml")]
        for k in rng.sample(sheets, min(len(sheets), rng.randint(1, 3))):
            parts[k] = (parts[k][0], _cell_mutation(parts[k][1], rng))
    elif kind == "xml":
        parts[i] = (parts[i][0], _xml_mutation(parts[i][1], rng))
    return _zip(parts)


def _cell_mutation(xml: bytes, rng: random.Random) -> bytes:
    """Random contents for random cells (or shared strings)."""
    text = xml.decode("utf-8", "replace")
    values = list(re.finditer(r"<v>[^<]*</v>|<t[^>]*>[^<]*</t>", text))
    for match in rng.sample(values, min(len(values), rng.randint(1, 20))):
        content = rng.choice(TEXTS + NUMBERS)
        content = "".join(ch for ch in content if ch not in "\x00\ufffe") if rng.random() < 0.5 else content
        escaped = content.replace("&", "&amp;").replace("<", "&lt;")
        new = f"<v>{escaped}</v>" if match.group(0).startswith("<v>") else f"<t>{escaped}</t>"
        text = text.replace(match.group(0), new, 1)
    if rng.random() < 0.1:  # a cell typed as a string, a boolean or an error (calamine refuses many)
        text = re.sub(r'<c r="([A-Z]+\d+)"', lambda m: f'<c r="{m.group(1)}" t="{rng.choice("sbe")}"'
                      if rng.random() < 0.1 else m.group(0), text)
    return text.encode("utf-8", "surrogatepass")


def _xml_mutation(xml: bytes, rng: random.Random) -> bytes:
    """Random XML into a part, or a slice of it cut, repeated or replaced by random bytes."""
    choice = rng.random()
    ends = [m.end() for m in re.finditer(rb">", xml[:200_000])]
    at = rng.choice(ends) if ends and rng.random() < 0.8 else rng.randrange(len(xml) + 1)  # mostly between tags
    if choice < 0.55:
        snippets = "".join(_snippet(rng) for _ in range(rng.randint(1, 3)))
        return xml[:at] + snippets.encode("utf-8", "surrogatepass") + xml[at:]
    if choice < 0.7:
        return xml[:at] + xml[at + rng.randint(1, 500):]
    if choice < 0.8:
        piece = xml[at:at + rng.randint(1, 2000)]
        return xml[:at] + piece * rng.randint(2, 50) + xml[at:]
    if choice < 0.9:
        return xml[:at] + os.urandom(rng.randint(1, 64)) + xml[at:]
    return _snippet(rng).encode("utf-8", "surrogatepass") + xml


def make_files(folder: Path, count: int, seed: int) -> dict[str, list[str]]:
    """`count` mutants in `folder`; returns file name → the mutations applied."""
    rng = random.Random(seed)
    bases = base_workbooks(folder / ".bases", seed)
    applied: dict[str, list[str]] = {}
    for n in range(count):
        data = rng.choice(bases)
        kinds = rng.choices(MUTATIONS, WEIGHTS, k=rng.choices((1, 2, 3), (6, 3, 1))[0])
        for kind in kinds:
            data = mutate(data, rng, kind)
        name = f"{n:05d}_{'-'.join(kinds)}.xlsx"
        (folder / name).write_bytes(data)
        applied[name] = kinds
    shutil.rmtree(folder / ".bases")
    return applied


def timed_check(path: str) -> tuple[float, str]:
    """Read one file as the pipeline does, with a clock on it (run in a worker)."""
    start = time.perf_counter()
    finding = check_file(path).problem
    return time.perf_counter() - start, finding.code if finding else ""


def run(count: int, *, batch: int = 50, seed: int = 1, workers: int = 2, keep: Path | None = None) -> Report:
    """Make `count` mutants, validate them `batch` at a time through the command line, and time each."""
    report = Report(files=count)
    started = time.perf_counter()
    root = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="fuzz-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        applied = make_files(root / "all", count, seed)
        names = sorted(applied)
        codes: Counter[str] = Counter()
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
        for start in range(0, len(names), batch):
            folder = root / f"batch{start // batch:04d}"
            folder.mkdir()
            for name in names[start:start + batch]:
                os.link(root / "all" / name, folder / name)
            report.batches += 1
            done = subprocess.run([sys.executable, "-m", "disclosure_xlsx", "validate", str(folder), "--json",
                                   "--workers", str(workers)], capture_output=True, env=env, timeout=1800)
            try:
                result = json.loads(done.stdout)
                complete = len(result["workbooks"]) == len(names[start:start + batch])
            except (ValueError, KeyError, TypeError):
                result, complete = None, False
            if done.returncode not in (0, 1) or not complete or result is None:
                report.batch_crashes.append({"batch": folder.name, "exit": done.returncode,
                                             "stderr": done.stderr.decode("utf-8", "replace")[-2000:]})
                continue
            for workbook in result["workbooks"]:
                for finding in workbook["findings"]:
                    codes[finding["code"]] += 1
                    if finding["code"] == "internal-error":
                        name = Path(workbook["file"]).name
                        report.internal_errors.append({"file": name, "mutations": applied.get(name),
                                                       "message": finding["message"]["en"]})
        report.codes = dict(codes.most_common())
        files = [str(root / "all" / name) for name in names]
        for outcome in run_isolated(timed_check, files, workers=workers):
            if outcome.value is None:
                report.timeouts.append(Path(files[outcome.index]).name)
                continue
            seconds, _ = outcome.value
            if seconds > report.slowest_seconds:
                report.slowest_seconds, report.slowest_file = round(seconds, 3), Path(files[outcome.index]).name
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report.seconds = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="generate into (and keep) this folder")
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    report = run(args.files, batch=args.batch, seed=args.seed, workers=args.workers, keep=args.keep)
    text = json.dumps(asdict(report), ensure_ascii=False, indent=1)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", "utf-8")
    sys.exit(1 if report.batch_crashes or report.internal_errors else 0)


if __name__ == "__main__":
    main()
