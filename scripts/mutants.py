"""Deliberate small breakages of the package, each of which the test suite must catch.

    python scripts/mutants.py            # every mutant; prints one line each and a summary
    python scripts/mutants.py --list     # what each mutant breaks
    python scripts/mutants.py NAME ...   # only these

Each mutant replaces one snippet of one module (the snippet must still be there: a mutant that no longer
applies is reported, not skipped). The package and tests are copied to a temporary folder, the mutant is
applied there, and the tests named for it run first (they are the ones expected to catch it); if they
all pass, the whole suite runs. A mutant "survives" when the whole suite passes with it: a gap in the
tests. The tests named for the mutants must pass on an unbroken copy first (exit code 2 if not), so
that a failure is the mutant's. Exit code 1 if any mutant survives or no longer applies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    module: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant("ranges-uncompressed", "identity ranges are no longer compressed to D8:I8", "validate.py",
           "return [xl_rowcol_to_cell(*g[0]) if len(g) == 1 else", "return [xl_rowcol_to_cell(*c) for g in groups for c in g] or [xl_rowcol_to_cell(*g[0]) if len(g) == 1 else",
           ("tests/test_validate.py", "tests/test_golden.py")),
    Mutant("mapping-notes-empty", "the 格式转换 sheet's notes column is emptied", "convert.py",
           'fmt.cells[note.id].label, note.message["zh"]]', 'fmt.cells[note.id].label, ""]',
           ("tests/test_convert.py", "tests/test_trust.py")),
    Mutant("year-invalid-silent", "year-invalid is never emitted", "clean.py",
           "if year is None and value not in (None, \"\"):", "if False:",
           ("tests/test_codes.py", "tests/test_validate.py")),
    Mutant("next-step-dropped", "the 下一步 line is dropped from 反馈.txt", "feedback.py",
           'lines += ["", text("feedback.next_label", lang) + _next_step(workbook, lang), ""]',
           'lines += [""]', ("tests/test_feedback.py",)),
    Mutant("bare-amount-unwarned", "a whole-number amount without a unit is no longer warned", "clean.py",
           'return Parsed(raw, problem=None if unit_stated or cell.unit_in_header else "money-unit-assumed")',
           "return Parsed(raw)", ("tests/test_clean.py", "tests/test_codes.py", "tests/test_realworld.py")),
    Mutant("sum-off-by-one", "the 汇总明细 SUM formula stops one row short", "aggregate.py",
           'f"=SUM({letter}{first_row + 1}:{letter}{total_row})"', 'f"=SUM({letter}{first_row + 1}:{letter}{total_row - 1})"',
           ("tests/test_golden.py", "tests/test_aggregate.py")),
    Mutant("pool-positions", "a labels-read workbook from a worker is given the standard positions", "clean.py",
           "known = (where, where == standard_where(format_id))", "known = (where, True)",
           ("tests/test_codes.py",)),
    Mutant("blank-silent", "a blank becomes 0 without a warning", "clean.py",
           'return Parsed(None, tuple(rules), "blank-cell")', "return Parsed(0, tuple(rules))",
           ("tests/test_clean.py", "tests/test_codes.py")),
    Mutant("i4-ignored", "I3/I1 on the 总计 column are reported although I2 fails (I4)", "formats.py",
           "if i.defer_to not in families and not set(i.cells) & unusable]", "if not set(i.cells) & unusable]",
           ("tests/test_validate.py",)),
    Mutant("duplicates-unflagged", "the same office and year twice is no longer flagged", "pipeline.py",
           "if len(group) > 1 and not (all(codes) and len(set(codes)) == len(codes)):", "if False:",
           ("tests/test_codes.py", "tests/test_realworld.py")),
    Mutant("fullwidth-unread", "full-width digits are no longer read", "clean.py",
           'stripped = unicodedata.normalize("NFKC", visible)', "stripped = visible",
           ("tests/test_clean.py",)),
    Mutant("stale-names-trusted", "names that no longer point at the table are trusted", "read.py",
           "if _plan_agrees(plan, sheets):", "if True:",
           ("tests/test_codes.py", "tests/test_realworld.py")),
    Mutant("failures-not-first", "the overview no longer lists failures first", "feedback.py",
           "key=lambda w: (_STATUS_ORDER[w.status], _office(w), w.file))", "key=lambda w: w.file)",
           ("tests/test_feedback.py",)),
    # (turning on xlsxwriter's strings_to_formulas alone changes nothing: `put` writes text with write_string)
    Mutant("formulas-live", "text from a workbook that starts with = is written as a formula", "_xlsx.py",
           "code = sheet.write_string(row, col, str(value), cell_format)",
           'code = (sheet.write_formula if str(value).startswith("=") else sheet.write_string)(row, col, str(value), cell_format)',
           ("tests/test_outputs.py", "tests/test_feedback.py")),
    Mutant("json-float-ids", "report.json writes 43.0 for a whole expected value", "catalog.py",
           "if isinstance(value, float) and value.is_integer():\n        return int(value)\n    return value",
           "return value", ("tests/test_validate.py", "tests/test_cli.py")),
    Mutant("invalid-added", "the roll-up adds workbooks with errors by default", "aggregate.py",
           'w.status == "errors" and not include_invalid:',
           'w.status == "errors" and False:', ("tests/test_aggregate.py",)),
    Mutant("dotdot-kept", "a file name made from an office name keeps '..'", "feedback.py",
           're.sub(r"\\.{2,}", "_", cleaned)', "cleaned", ("tests/test_feedback.py",)),
    Mutant("no-bom", "反馈.txt is written without BOM and CRLF", "feedback.py",
           '.replace("\\n", "\\r\\n").encode("utf-8-sig", "replace")', '.encode("utf-8", "replace")', ("tests/test_feedback.py",)),
    Mutant("involved-comments-empty", "the comment on a cell an identity involves is emptied", "annotate.py",
           'involved = _involved_text(fmt, finding, lang) if len(finding.cells) > 1 else ""', 'involved = ""',
           ("tests/test_annotate.py",)),
    Mutant("suggestion-dropped", "report.json no longer carries the suggested fix", "pipeline.py",
           'out["suggestion"] = self.suggestion.to_dict(r.where) if self.suggestion is not None and r else None',
           'out["suggestion"] = None', ("tests/test_suggest.py",)),
    Mutant("accepted-counted", "an accepted warning still counts toward the status", "pipeline.py",
           'return sum(f.severity == "warning" and getattr(f, "accepted", None) is None for f in self.findings)',
           'return sum(f.severity == "warning" for f in self.findings)', ("tests/test_accept.py",)),
    Mutant("lang-ignored", "aggregate prints Chinese whatever --lang says", "cli.py",
           "for title, lines in provenance(result, language):", 'for title, lines in provenance(result, "zh"):',
           ("tests/test_aggregate.py",)),
    Mutant("csv-formula-live", "a text field of 数据.csv beginning with = is written as it is", "outputs.py",
           "        return f\"'{value}\"\n    return value", "        return value\n    return value",
           ("tests/test_outputs.py",)),
    Mutant("lock-ignored", "a second run into the same output is not refused", "outputs.py",
           "                if holder is not None and _alive(holder):", "                if False:",
           ("tests/test_outputs.py",)),
    Mutant("not-own-replaced", "a folder the tool did not write is replaced by its output", "outputs.py",
           "if (staging / name).is_dir() and target.exists() and not (target.is_dir() and own(target)):",
           "if False:", ("tests/test_outputs.py",)),
    Mutant("identities-unchecked", "the batch's identity check lets every row pass", "validate.py",
           '@ weights == 0).all(axis=1)', '@ weights == 0).all(axis=1) | True', ("tests/test_validate.py",)),
    Mutant("range-unchecked", "the batch's range check lets every row pass", "validate.py",
           "return frame[minimum.index].ge(minimum).all(axis=1)", "return frame[minimum.index].ge(minimum).all(axis=1) | True",
           ("tests/test_validate.py",)),
    Mutant("column-types-unchecked", "the batch's frame is taken whatever its columns and types", "validate.py",
           "return list(frame.columns) == cells and frame.dtypes.equals(dtypes)", "return True or list(frame.columns) == cells and frame.dtypes.equals(dtypes)",
           ("tests/test_validate.py",)),
    Mutant("narrative-in-parent", "the narrative is checked in the parent, one workbook after another", "pipeline.py",
           "narrative=check_report(report))", "narrative=None)", ("tests/test_narrative.py",)),
    Mutant("suggestion-in-parent", "the suggested fixes are worked out in the parent, one after another", "pipeline.py",
           "return check_file(job.path, suggest=job.suggest, own_outputs=job.searched)",
           "return check_file(job.path, suggest=False, own_outputs=job.searched)", ("tests/test_suggest.py",)),
    Mutant("pairs-in-a-row-missed", "the two-cell pass never pairs two cells of the same failing identity",
           "suggest.py", "keep = (a != b) & ~((matrix[first, b] != 0) & (b < a))",
           "keep = (a != b) & (matrix[first, b] == 0)", ("tests/test_suggest.py",)),
    Mutant("pairs-unbounded", "the two-cell pass suggests a negative count", "suggest.py",
           "solvable &= (new_a >= problem.lower[a]) & (new_b >= problem.lower[b])", "solvable &= True",
           ("tests/test_suggest.py",)),
    Mutant("packed-ints-as-floats", "packed values read a whole count back as a float (3.0 in report.json)",
           "clean.py", "return None if kind == _BLANK_KIND else int(number) if kind == _INT_KIND else number",
           "return None if kind == _BLANK_KIND else number", ("tests/test_clean.py",)),
    Mutant("streamed-json-misindented", "report.json written workbook by workbook at the wrong depth",
           "pipeline.py", 'inner = "\\n  " if lines else ""', 'inner = "\\n " if lines else ""',
           ("tests/test_cli.py", "tests/test_outputs.py")),
    Mutant("page-unescaped", "the clerk's page shows office text as live HTML", "web.py",
           "autoescape=True,", "autoescape=False,", ("tests/test_web.py",)),
    Mutant("stamp-numbers-as-text", "a stamped cleaned workbook holds its numbers as text", "stencil.py",
           """return f'<c r="{ref}"{attrs}><v>{value:.16G}</v></c>'""",
           """return f'<c r="{ref}"{attrs} t="inlineStr"><is><t>{value:.16G}</t></is></c>'""",
           ("tests/test_stencil.py",)),
    Mutant("stamp-filter-one-short", "a stamped log's filter stops one row short", "stencil.py",
           "last = self.first - 1 + (max(count, 1) if self.at_least_one else count)",
           "last = self.first - 2 + (max(count, 1) if self.at_least_one else count)", ("tests/test_stencil.py",)),
    Mutant("stamp-stale-checks", "a stamped workbook keeps the template's self-check results", "convert.py",
           "fields, results=check_results(target.id, page.fields),", "fields, results=check_results(target.id, {}),",
           ("tests/test_stencil.py",)),
    Mutant("quiet-offices-unsummarised", "offices with no workbook to write get no 反馈 when others have copies",
           "feedback.py", "    for i in alone:\n        summarize(i, _OfficeWritten())\n", "",
           ("tests/test_feedback.py", "tests/test_outputs.py")),
    Mutant("digest-ignores-values", "the round's digest no longer looks at the values, only at the blanks",
           "rounds.py", "packed.float64_bytes() + blank", "blank", ("tests/test_accept.py",)),
    Mutant("input-check-by-prefix", "an input beside the output whose name begins with the output's counts as inside it",
           "outputs.py", "path.startswith(inside)", "path.startswith(target)", ("tests/test_outputs.py",)),
    Mutant("chunk-fails-whole", "a chunk of jobs in which one hangs or crashes gives every job of it that failure",
           "workers.py", "if len(head.jobs) > 1 and error is not None:", "if False:",
           ("tests/test_isolation.py::test_run_isolated_gives_one_outcome_per_job_in_order",)),
    Mutant("never-chunked", "every job is sent to the pool on its own, however large the run",
           "workers.py", "min(_CHUNK, total // (workers * _CHUNKS_PER_WORKER))", "1",
           ("tests/test_isolation.py::test_a_large_run_goes_to_the_workers_in_chunks",)),
    Mutant("blame-beside-the-breaker", "a job in flight in two broken pools is counted as crashed without being run alone",
           "workers.py", "elif not head.alone:", "elif False:",
           ("tests/test_isolation.py::test_a_job_that_breaks_the_pool_or_hangs_in_a_chunk_costs_only_itself",)),
    Mutant("no-wait-after-a-death", "a run whose worker died ends without waiting for the worker pebble starts in its place",
           "workers.py", "pool.close(wait=finished < total or pool.replaced)", "pool.close(wait=finished < total)",
           ("tests/test_isolation.py::test_a_run_whose_last_worker_died_ends_cleanly_and_leaves_no_folder",)),
    Mutant("chunk-timeout-of-one-job", "a chunk of slow jobs gets only one job's timeout and is stopped and redone",
           "workers.py", "(_run_chunk, (func, jobs), timeout=allowed)", "(_run_chunk, (func, jobs), timeout=timeout)",
           ("tests/test_isolation.py::test_slow_jobs_together_in_a_chunk_are_not_stopped_for_it",)),
    Mutant("own-marks-unread", "the workers no longer look at the marks of the workbooks a search found", "pipeline.py",
           "return check_file(job.path, suggest=job.suggest, own_outputs=job.searched)",
           "return check_file(job.path, suggest=job.suggest)", ("tests/test_trust.py", "tests/test_codes.py")),
    Mutant("last-years-search-on-this-year",
           "a file named this year is looked at for marks because last year's search found it",
           "pipeline.py", "searched=found.searched, unsuggested_searched=before.searched",
           "searched=found.searched | before.searched, unsuggested_searched=found.searched | before.searched",
           ("tests/test_trust.py",)),
    Mutant("named-and-marked-folder", "a named file in a marked folder is read and listed as skipped too",
           "pipeline.py",
           "left_out = [p for p in dict.fromkeys(in_output_folders) if p not in found]", "left_out = in_output_folders",
           ("tests/test_trust.py",)),
    Mutant("odd-in-marked-folder", "a pipe in a marked output folder is skipped instead of reported", "pipeline.py",
           "if marked(item) and item.is_file():", "if marked(item):", ("tests/test_trust.py",)),
    Mutant("empty-out-left", "validate --out of only the tool's outputs leaves an empty output folder", "cli.py",
           "made.rmdir()", "pass", ("tests/test_trust.py",)),
    Mutant("named-own-skipped", "a tool's output named on the command line is left out like one a search found",
           "pipeline.py", "searched.discard(path)  # named", "pass  # named", ("tests/test_trust.py",)),
    Mutant("skeleton-keeps-inline-text", "a sheet's skeleton keeps its inline texts: every stamped workbook is scanned anew",
           "limits.py", """_VALUES = re.compile(rb'<v>[^<]*</v>|<is><t(?: xml:space="preserve")?>[^<]*</t></is>')""",
           """_VALUES = re.compile(rb'<v>[^<]*</v>')""", ("tests/test_isolation.py",)),
    Mutant("rules-per-worker", "the narrative rules are compiled in every worker of every run", "pipeline.py",
           "    if f\"{__package__}.validate\" in sys.modules:\n        prepare_narrative()",
           "    if False:\n        prepare_narrative()", ("tests/test_isolation.py",)),
    Mutant("template-stamp-values-dropped", "a stamped template leaves its values out", "template.py",
           "_stencil(fmt.id).stamp({**dict.fromkeys(fmt.names), **values},",
           "_stencil(fmt.id).stamp(dict.fromkeys(fmt.names),", ("tests/test_stencil.py",)),
    Mutant("chunk-findings-misplaced", "a batch checked in several Pandera calls gives each call's findings to the first reports",
           "validate.py", "out[part[position]] = findings", "out[position] = findings", ("tests/test_validate.py",)),
    Mutant("packed-as-float64", "every report's whole numbers are packed as float64s", "clean.py",
           "        typecode = next((t for t, bound in _WHOLE", "        typecode = \"d\" or next((t for t, bound in _WHOLE",
           ("tests/test_validate.py", "tests/test_clean.py")),
    Mutant("packed-byte-too-narrow", "whole numbers up to 255 are packed into signed bytes", "clean.py",
           '_WHOLE = (("b", 2**7),', '_WHOLE = (("b", 2**8),', ("tests/test_clean.py",)),
    Mutant("packed-amounts-lost", "the float64 form of packed values leaves the amounts in 万元 out", "clean.py",
           "        if self.decimals:\n            at = -1", "        if False:\n            at = -1",
           ("tests/test_clean.py",)),
    Mutant("bomb-mark-inflated", "a properties part is inflated whole, whatever size its zip entry gives",
           "marks.py", "inflate.decompress(data, unpacked + 1)", "inflate.decompress(data)", ("tests/test_trust.py",)),
    Mutant("received-records-not-shared", "each workbook's cleaning records are held as they came, none shared",
           "catalog.py", "    known = _RECEIVED.get(key)\n", "    known = None\n",
           ("tests/test_validate.py", "tests/test_clean.py")),
    Mutant("received-records-loosely-shared", "a whole number's record is shared with its float's",
           "catalog.py", "type(value) not in (int, str)", "type(value) not in (int, float, str)",
           ("tests/test_clean.py",)),
]


def _copy() -> Path:
    """A copy of the project in a temporary folder, with ../shared (the seed, the real examples) linked beside it."""
    parent = Path(tempfile.mkdtemp(prefix="mutant-"))
    if (ROOT.parent / "shared").is_dir():
        (parent / "shared").symlink_to(ROOT.parent / "shared")
    folder = parent / "repo"
    folder.mkdir()
    for part in ("disclosure_xlsx", "tests", "scripts", "sample_workbooks", "benchmarks", "docs"):
        shutil.copytree(ROOT / part, folder / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / part, folder / part)
    return folder


def _pytest(folder: Path, args: list[str], *, say: bool = False) -> bool:
    env = {**os.environ, "PYTHONPATH": str(folder)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args],
                          cwd=folder, env=env, capture_output=True, text=True)
    if say and done.returncode:
        print(done.stdout[-4000:], file=sys.stderr)
    return done.returncode == 0


def run(mutant: Mutant) -> str:
    folder = _copy()
    try:
        path = folder / "disclosure_xlsx" / mutant.module
        source = path.read_text("utf-8")
        if mutant.old not in source:
            return "no longer applies"
        path.write_text(source.replace(mutant.old, mutant.new, 1), "utf-8")
        if not _pytest(folder, list(mutant.tests)):
            return "caught"
        return "caught" if not _pytest(folder, ["tests"]) else "SURVIVED"
    finally:
        shutil.rmtree(folder.parent, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.names or m.name in args.names]
    if args.list:
        for m in chosen:
            print(f"{m.name:24} {m.module:14} {m.what}")
        return 0
    baseline = _copy()  # a mutant is "caught" only if the tests named for it pass without it
    try:
        if not _pytest(baseline, sorted({t for m in chosen for t in m.tests}), say=True):
            print("the named tests fail without any mutant: fix them first", file=sys.stderr)
            return 2
    finally:
        shutil.rmtree(baseline.parent, ignore_errors=True)
    outcomes = {}
    for mutant in chosen:
        outcomes[mutant.name] = run(mutant)
        print(f"{outcomes[mutant.name]:18} {mutant.name:24} {mutant.what}", flush=True)
    bad = [n for n, o in outcomes.items() if o != "caught"]
    print(f"\n{len(chosen) - len(bad)} of {len(chosen)} mutants caught" + (f"; not caught: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
