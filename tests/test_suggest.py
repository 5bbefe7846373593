"""suggest.py: the Fellegi–Holt suggestion is a valid, minimal fix, and says honestly when it is not the only one."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure_xlsx.clean import clean_report
from disclosure_xlsx.formats import Format, get_format
from disclosure_xlsx.layout import standard_where
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.read import read_workbook
from disclosure_xlsx.suggest import FOUND, NOT_FOUND_IN_LIMIT, Suggestion, suggest_fix, suggestion_text
from disclosure_xlsx.synthetic import balanced_report

from .conftest import ROOT, SAMPLES

FAST = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SLOW = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _identity_cells(fmt: Format) -> list[str]:
    used = {c for i in fmt.identities for c in i.cells}
    return [c for c in fmt.cells if c in used]


def _holds(fmt: Format, values: Mapping[str, object], skip: frozenset[str] = frozenset()) -> bool:
    counted = {c: (v if v is not None else 0) for c, v in values.items()}
    return all(i.holds(counted) for i in fmt.identities if not set(i.cells) & skip)


def _one_cell_fixes(fmt: Format, values: Mapping[str, int | None]) -> list[tuple[str, int]]:
    """Every single cell whose change makes every identity hold, by brute force (an oracle that shares
    no code with the module): the change each identity asks of the cell must agree and keep it ≥ min."""
    counted = {c: (v if v is not None else 0) for c, v in values.items()}
    out = []
    for cid in _identity_cells(fmt):
        asks = set()
        for identity in fmt.identities:
            diff = identity.difference(counted)
            if cid in identity.lhs:
                asks.add(-diff)
            elif cid in identity.rhs:
                asks.add(diff)
            elif diff:
                asks.add(None)  # an identity that fails without this cell
        bound = fmt.cells[cid].type.min
        if len(asks) == 1 and None not in asks and (new := counted[cid] + asks.pop()) != counted[cid] \
                and (bound is None or new >= bound):
            out.append((cid, new))
    return out


def _valid(fmt: Format, values: Mapping[str, int | None], suggestion: Suggestion) -> bool:
    applied = suggestion.applied(values)
    types_ok = all(isinstance(c.suggested, int) and (fmt.cells[c.id].type.min is None
                                                       or c.suggested >= fmt.cells[c.id].type.min)
                   for c in suggestion.changes)
    return types_ok and _holds(fmt, applied)


def _sets(suggestion: Suggestion) -> list[dict[str, int | float]]:
    return [{c.id: c.suggested for c in s} for s in (suggestion.changes, *suggestion.alternatives)]


def _alone(fmt: Format, cid: str) -> bool:
    """Whether `cid` is the only cell common to every identity it is in (then a change to it is unique)."""
    common = set.intersection(*(set(i.cells) for i in fmt.identities if cid in i.cells))
    return common == {cid}


# ----------------------------------------------------------------------------------------------
# Properties


@FAST
@given(seed=st.integers(0, 10**6), data=st.data())
def test_one_changed_cell_gives_a_valid_one_cell_suggestion(format_id: str, seed: int, data: st.DataObject) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(seed))
    cid = data.draw(st.sampled_from(_identity_cells(fmt)), label="cell")
    new = data.draw(st.integers(0, 60).filter(lambda v: v != original[cid]), label="new value")
    values = {**original, cid: new}
    assert not _holds(fmt, values)  # every identity cell is in some identity, with coefficient ±1
    suggestion = suggest_fix(fmt, values)
    assert suggestion is not None and suggestion.outcome == FOUND
    assert len(suggestion.changes) == 1 and _valid(fmt, values, suggestion)
    assert all(len(s) == 1 and _holds(fmt, {**values, **s}) for s in _sets(suggestion))
    assert {cid: original[cid]} in _sets(suggestion) or suggestion.more
    oracle = _one_cell_fixes(fmt, values)
    assert len(oracle) == len(_sets(suggestion)) or suggestion.more and len(oracle) > 4
    if _alone(fmt, cid):  # a cell of section 三: no other cell explains the same failures
        assert suggestion.unique and suggestion.changes[0].id == cid
        assert suggestion.changes[0].suggested == original[cid] and suggestion.changes[0].value == new


@FAST
@given(seed=st.integers(0, 10**6), blanks=st.floats(0, 1))
def test_no_suggestion_without_identity_errors(format_id: str, seed: int, blanks: float) -> None:
    fmt = get_format(format_id)
    rng = random.Random(seed)
    values: dict[str, int | float | None] = dict(balanced_report(format_id, rng))
    for cid, value in list(values.items()):  # zeros left blank count as 0 (ruling 2)
        if value == 0 and rng.random() < blanks:
            values[cid] = None
    assert suggest_fix(fmt, values) is None
    unusable = frozenset(rng.sample(sorted(values), 3))
    assert suggest_fix(fmt, {**values, **dict.fromkeys(unusable)}, unusable=unusable) is None


@SLOW
@given(seed=st.integers(0, 10**6), data=st.data())
def test_two_changed_cells_give_a_valid_minimal_set(format_id: str, seed: int, data: st.DataObject) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(seed))
    first, second = data.draw(st.lists(st.sampled_from(_identity_cells(fmt)), min_size=2, max_size=2, unique=True))
    values = dict(original)
    for cid in (first, second):
        values[cid] = data.draw(st.integers(0, 60).filter(lambda v, c=cid: v != original[c]))
    if _holds(fmt, values):
        return  # the two changes cancel out (e.g. a part and its total by the same amount)
    suggestion = suggest_fix(fmt, values, time_limit=30)
    assert suggestion is not None and suggestion.outcome == FOUND and _valid(fmt, values, suggestion)
    assert 1 <= len(suggestion.changes) <= 2  # the true change is a fix of two cells
    assert all(len(s) == len(suggestion.changes) and _holds(fmt, {**values, **s}) for s in _sets(suggestion))
    if len(suggestion.changes) == 2:
        assert not _one_cell_fixes(fmt, values)  # minimal: no single cell would do
        if suggestion.unique:
            assert _sets(suggestion) == [{first: original[first], second: original[second]}]


# ----------------------------------------------------------------------------------------------
# Limits, blanks, unreadable values, large numbers


def _two_cell_case(format_id: str) -> tuple[Format, dict[str, int], dict[str, int]]:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(7), zero_share=0.0)
    values = dict(original)
    values["s3.granted.natural_person"] += 1
    values["s3.partial.commercial"] += 2
    return fmt, original, values


def test_time_limit_gives_an_honest_not_found(format_id: str) -> None:
    fmt, original, two = _two_cell_case(format_id)
    values = {**two, "s3.denied_law.research": original["s3.denied_law.research"] + 3}  # three cells: the solver
    suggestion = suggest_fix(fmt, values, time_limit=0)
    assert suggestion is not None and suggestion.outcome == NOT_FOUND_IN_LIMIT
    assert suggestion.changes == () and not suggestion.unique and suggestion.rules
    where = standard_where(format_id)
    assert suggestion.to_dict(where)["cells"] == [] and suggestion.to_dict(where)["unique"] is False
    assert suggestion_text(suggestion, where) == "未能在计算限度内找出使所有勾稽关系成立的最少改动，请逐项核对标出的单元格。"
    assert "search limit" in suggestion_text(suggestion, where, "en")
    found = suggest_fix(fmt, values, time_limit=30)
    assert found is not None and found.unique and found.method == "milp" and _sets(found) == [
        {cid: original[cid] for cid in ("s3.granted.natural_person", "s3.partial.commercial", "s3.denied_law.research")}]
    # the numpy passes need no solver time: one cell, and two cells when no single cell does it
    one = {**original, "s3.granted.total": original["s3.granted.total"] + 1}
    fast = suggest_fix(fmt, one, time_limit=0)
    assert fast is not None and fast.unique and fast.method == "one-cell"
    pair = suggest_fix(fmt, two, time_limit=0)
    assert pair is not None and pair.unique and pair.method == "two-cell" and _sets(pair) == [
        {cid: original[cid] for cid in ("s3.granted.natural_person", "s3.partial.commercial")}]


@pytest.mark.parametrize("pair", [("s3.granted.natural_person", "s3.granted.commercial"),
                                  ("s3.granted.natural_person", "s3.partial.natural_person")],
                         ids=["one-row", "one-column"])
def test_two_wrong_cells_of_one_total_are_found_without_the_solver(format_id: str, pair: tuple[str, str]) -> None:
    """Two mistyped parts of the same total (a row's, or a column's) are each also in a total of their
    own: the two-cell pass must pair cells within the first failing identity too, with no solver time."""
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(11), zero_share=0.0)
    values = {**original, pair[0]: original[pair[0]] + 1, pair[1]: original[pair[1]] + 2}
    assert not _one_cell_fixes(fmt, values)
    found = suggest_fix(fmt, values, time_limit=0)
    assert found is not None and found.outcome == FOUND and found.method == "two-cell" and found.unique
    assert _sets(found) == [{cid: original[cid] for cid in pair}]


@SLOW
@given(seed=st.integers(0, 10**6), data=st.data())
def test_the_two_cell_pass_gives_what_the_solver_gives(format_id: str, seed: int, data: st.DataObject,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Where no single cell fixes a workbook, the numpy pass lists every pair of cells that does; the
    solver, which shares no code with it, must find the same minimal sets (as many as it lists)."""
    import numpy as np

    from disclosure_xlsx import suggest

    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(seed), zero_share=data.draw(st.sampled_from([0.0, 0.4])))
    cells = data.draw(st.lists(st.sampled_from(_identity_cells(fmt)), min_size=2, max_size=2, unique=True))
    values: dict[str, int | None] = dict(original)
    for cid in cells:
        values[cid] = data.draw(st.integers(0, 60).filter(lambda v, c=cid: v != original[c]))
    if _holds(fmt, values) or _one_cell_fixes(fmt, values):
        return
    fast = suggest_fix(fmt, values)
    assert fast is not None and fast.method == "two-cell" and _valid(fmt, values, fast)
    problem = suggest._problem(fmt)
    every = suggest._two_cells(problem, np.array([float(values[c] or 0) for c in problem.ids]),
                               np.ones(len(problem.ids)))
    assert every is not None and {(problem.ids[a], problem.ids[b]) for (a, _), (b, _) in every} >= {
        (cid, other) for cid, other in [tuple(sorted(cells, key=problem.ids.index))]}  # the true pair is listed
    with monkeypatch.context() as patched:  # within this example only
        patched.setattr(suggest, "_two_cells", lambda *args: None)
        solved = suggest_fix(fmt, values, time_limit=30)
    assert solved is not None and solved.method == "milp" and solved.outcome == FOUND
    listed = [{(problem.ids[a], va), (problem.ids[b], vb)} for (a, va), (b, vb) in every]
    assert all({(c.id, c.suggested) for c in s} in listed for s in (solved.changes, *solved.alternatives))
    if not solved.more:  # the solver found them all: the same sets, in the same order
        assert (fast.changes, fast.alternatives, fast.more) == (solved.changes, solved.alternatives, False)


def test_a_blank_left_for_a_number_is_filled(format_id: str) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(3), zero_share=0.0)
    values: dict[str, int | None] = {**original, "s3.granted.commercial": None}
    suggestion = suggest_fix(fmt, values)
    assert suggestion is not None and suggestion.unique
    (change,) = suggestion.changes
    assert (change.id, change.value, change.suggested) == ("s3.granted.commercial", None,
                                                           original["s3.granted.commercial"])
    where = standard_where(format_id)
    ref = where["s3.granted.commercial"].ref
    assert suggestion_text(suggestion, where) == f"最可能填错的是 {ref}：填入 {change.suggested}，所有勾稽关系即可成立。"
    assert suggestion.to_dict(where)["cells"][0]["value"] is None


def test_blank_weight_fills_blanks_first(format_id: str) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(5), zero_share=0.0)
    # 行政复议: upheld left blank and the total one too large: with equal weights either cell fixes it
    values: dict[str, int | None] = {**original, "s4.review.upheld": None}
    equal = suggest_fix(fmt, values)
    assert equal is not None and not equal.unique
    assert {"s4.review.upheld": original["s4.review.upheld"]} in _sets(equal)
    cheap = suggest_fix(fmt, values, blank_weight=0.5)
    assert cheap is not None and cheap.unique and _sets(cheap) == [{"s4.review.upheld": original["s4.review.upheld"]}]
    with pytest.raises(ValueError):
        suggest_fix(fmt, values, blank_weight=0)


def test_unusable_cells_are_unknowns_never_named(format_id: str) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(11), zero_share=0.0)
    # only an identity that uses the unreadable cell fails: nothing to suggest
    review = frozenset({"s4.review.total"})
    assert suggest_fix(fmt, {**original, "s4.review.total": None, "s4.review.upheld": 99}, unusable=review) is None
    unusable = frozenset({"s3.granted.total"})
    values: dict[str, int | None] = {**original, "s3.granted.total": None}
    for cid in ("s3.granted.natural_person", "s3.partial.natural_person"):  # in that cell's row, and not
        changed = {**values, cid: original[cid] + 4}
        suggestion = suggest_fix(fmt, changed, unusable=unusable)
        assert suggestion is not None and suggestion.method == "milp" and suggestion.unique
        assert _sets(suggestion) == [{cid: original[cid]}]
        assert _holds(fmt, suggestion.applied(changed), skip=unusable)


def test_a_negative_count_must_change(format_id: str) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(13), zero_share=0.0)
    row_total = original["s3.granted.total"] - original["s3.granted.natural_person"] - 3
    values = {**original, "s3.granted.natural_person": -3, "s3.granted.total": row_total}
    suggestion = suggest_fix(fmt, values, time_limit=30)
    assert suggestion is not None and _valid(fmt, values, suggestion)
    assert "s3.granted.natural_person" in suggestion.cells


def test_large_numbers_are_not_lost_to_solver_tolerance(format_id: str) -> None:
    fmt = get_format(format_id)
    scale = 10**5  # a big M of ~10^8 against a change of 1: at HiGHS's default tolerances this fails
    original = {c: v * scale for c, v in balanced_report(format_id, random.Random(17), zero_share=0.0).items()}
    values = dict(original)
    values["s3.granted.natural_person"] += 1
    values["s3.partial.commercial"] -= 1
    suggestion = suggest_fix(fmt, values, time_limit=30)
    assert suggestion is not None and suggestion.unique and _valid(fmt, values, suggestion)
    assert _sets(suggestion) == [{"s3.granted.natural_person": original["s3.granted.natural_person"],
                                  "s3.partial.commercial": original["s3.partial.commercial"]}]


# ----------------------------------------------------------------------------------------------
# The sample workbooks, read from disk


def _mistakes() -> dict[str, tuple[dict[str, int], str, str]]:
    spec = importlib.util.spec_from_file_location("make_samples", ROOT / "scripts" / "make_samples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MISTAKES


MANIFEST = json.loads((SAMPLES / "manifest.json").read_text("utf-8"))


@pytest.mark.parametrize("entry", MANIFEST, ids=[e["file"] for e in MANIFEST])
def test_sample_workbooks(entry: dict) -> None:
    report = clean_report(read_workbook(SAMPLES / entry["file"]))
    fmt = get_format(report.format_id)
    suggestion = suggest_fix(fmt, report.values, unusable=report.unusable, time_limit=30)
    if not entry["errors"]:
        assert suggestion is None
        return
    identity = entry["errors"][0]["identity"]
    changed = _mistakes()[identity][0]
    truth = {cid: report.values[cid] - delta for cid, delta in changed.items()}
    assert suggestion is not None and _valid(fmt, report.values, suggestion)
    assert len(suggestion.changes) == len(truth)  # the deliberate mistake is a minimal set
    sets = _sets(suggestion)
    if identity == "I2":  # the total alone disagrees with its row and with its column's total
        assert suggestion.unique and sets == [truth]
        (cid, new), = truth.items()
        assert suggestion_text(suggestion, report.where) == (
            f"最可能填错的是 {report.where[cid].ref}：把 {new + 1} 改为 {new}，所有勾稽关系即可成立。")
    elif identity == "I5":  # any of the five cells of 行政复议 fixes it: never unique; the total is listed first
        assert not suggestion.unique and sets[0] == truth and suggestion.more
    elif identity == "I1":  # new, carried in or carried over of one column with its total: three sets, all listed
        assert not suggestion.unique and truth in sets and len(sets) == 3 and not suggestion.more
    else:  # I3: any result row of the column with its total: more than can be listed
        assert not suggestion.unique and suggestion.more and (truth in sets or len(sets) == 4)
    assert identity in {r.split("[")[0] for r in suggestion.rules}
    assert {r.split("[")[0] for r in suggestion.rules} <= {identity, "I1", "I3"}  # I1, I3 on 总计 deferred to I2
    text = suggestion_text(suggestion, report.where)
    assert text.startswith("最可能填错的是" if suggestion.unique else "以下任一处改动都可使勾稽关系成立：")
    assert all(report.where[c.id].ref in text for c in suggestion.changes)


# ----------------------------------------------------------------------------------------------
# The record as data, and its words


def test_to_dict_has_the_report_shape(format_id: str) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(19), zero_share=0.0)
    values = {**original, "s4.review.total": original["s4.review.total"] + 2}
    suggestion = suggest_fix(fmt, values)
    assert suggestion is not None
    where = standard_where(format_id)
    out = json.loads(json.dumps(suggestion.to_dict(where)))
    assert set(out) == {"outcome", "cells", "unique", "alternatives", "alternative_sets", "more_alternatives",
                        "rules", "method"}
    ref = where["s4.review.total"]
    assert out["cells"] == [{"id": "s4.review.total", "sheet": ref.sheet, "ref": ref.ref,
                             "value": original["s4.review.total"] + 2, "suggested": original["s4.review.total"]}]
    assert out["unique"] is False and out["alternatives"] == len(out["alternative_sets"]) >= 1
    keys = {"id", "sheet", "ref", "value", "suggested"}
    assert all(len(s) == 1 and set(s[0]) == keys for s in out["alternative_sets"])
    assert out["rules"] == ["I5[review]"]
    en = suggestion_text(suggestion, where, "en")
    assert en.startswith("Any one of these changes makes every identity hold: ") and ref.ref in en


def test_cells_on_two_sheets_are_named_with_their_sheet(format_id: str) -> None:
    fmt = get_format(format_id)
    original = balanced_report(format_id, random.Random(23), zero_share=0.0)
    values = {**original, "s3.granted.total": original["s3.granted.total"] + 1,
              "s4.review.total": original["s4.review.total"] + 1}
    suggestion = suggest_fix(fmt, values, time_limit=30)
    assert suggestion is not None and _valid(fmt, values, suggestion) and not suggestion.unique
    where = standard_where(format_id)
    text = suggestion_text(suggestion, where)
    for cid in ("s3.granted.total", "s4.review.total"):
        assert f"{where[cid].sheet} {where[cid].ref}" in text


# ------------------------------------------------------------------------------------------------
# Wired into the batch: report.json, 反馈, the annotated copy, 校验汇总 and convert --apply-suggestions


def test_the_batch_carries_suggestions_to_every_output(tmp_path: Path) -> None:
    import json
    import shutil

    import openpyxl

    from disclosure_xlsx.convert import convert_paths
    from disclosure_xlsx.feedback import FEEDBACK_DIR, OVERVIEW, write_outputs
    from disclosure_xlsx.pipeline import validate_paths

    from .conftest import SAMPLES

    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("2024_2021格式_I2错误.xlsx", "2024_2021格式_I5错误.xlsx", "2024_示例县审计局.xlsx"):
        shutil.copy(SAMPLES / name, inputs / name)
    batch = validate_paths([inputs], workers=1)
    write_outputs(batch, tmp_path / "out", workers=1)
    report = {Path(w["file"]).name: w for w in json.loads((tmp_path / "out" / "report.json").read_text("utf-8"))["workbooks"]}
    unique = report["2024_2021格式_I2错误.xlsx"]["suggestion"]
    assert unique["unique"] and unique["cells"] == [{"id": "s3.granted.total", "sheet": "三、依申请公开", "ref": "J8",
                                                     "value": 44, "suggested": 43}]
    assert any(f.get("explained_by_suggestion") for f in report["2024_2021格式_I2错误.xlsx"]["findings"])
    assert report["2024_2021格式_I5错误.xlsx"]["suggestion"]["unique"] is False
    assert report["2024_示例县审计局.xlsx"]["suggestion"] is None  # nothing fails: no suggestion
    folder = tmp_path / "out" / FEEDBACK_DIR / "示例镇（I2 错误）_2024"
    assert "最可能填错的是 J8：把 44 改为 43" in (folder / "反馈.txt").read_text("utf-8-sig")
    assert "最可能填错的是 J8" in (folder / "反馈.html").read_text("utf-8")
    (copy,) = folder.glob("*_校验标注.xlsx")
    cell = openpyxl.load_workbook(copy)["三、依申请公开"]["J8"]
    assert cell.fill.fgColor.rgb == "FF8E6FC8" and "建议首先核对" in cell.comment.text  # the suspect's own mark
    summary = openpyxl.load_workbook(tmp_path / "out" / OVERVIEW).worksheets[0]
    header = [c.value for c in summary[1]]
    column = header.index("最可能的改法")
    shown = {row[1].value: row[column].value for row in summary.iter_rows(min_row=2)}
    assert "把 44 改为 43" in shown["2024_2021格式_I2错误.xlsx"] and not shown["2024_示例县审计局.xlsx"]
    _, done = convert_paths([inputs], tmp_path / "cleaned", workers=1, apply_suggestions=True)
    by_name = {Path(c.source.file).name: c for c in done}
    assert [c.id for c in by_name["2024_2021格式_I2错误.xlsx"].applied] == ["s3.granted.total"]
    assert by_name["2024_2021格式_I5错误.xlsx"].applied == ()  # ambiguous: never applied
    fixed = validate_paths([by_name["2024_2021格式_I2错误.xlsx"].output], workers=1).workbooks[0]
    assert fixed.report.values["s3.granted.total"] == 43 and fixed.errors == 0
    wb = openpyxl.load_workbook(by_name["2024_2021格式_I2错误.xlsx"].output)
    log = [[c.value for c in row] for row in wb["清洗记录"].iter_rows(min_row=2)]
    assert ["s3.granted.total", "三、依申请公开", "J8", 44, 43] in [row[:5] for row in log]
    cover = [c.value for row in wb["封面"].iter_rows() for c in row if isinstance(c.value, str)]
    assert any("唯一建议改正 1 个单元格" in t for t in cover)
    # its report sheet is not marked as failing: with the fix, it passes (the cover says the fix was applied)
    sheet = [c.value for row in wb["年报表格"].iter_rows() for c in row if isinstance(c.value, str)]
    assert not any("未通过校验" in t for t in sheet)
    ambiguous = openpyxl.load_workbook(by_name["2024_2021格式_I5错误.xlsx"].output)  # no fix applied: still failing
    assert any("未通过校验" in c.value for row in ambiguous["年报表格"].iter_rows() for c in row if isinstance(c.value, str))
    assert by_name["2024_2021格式_I2错误.xlsx"].fixed and not by_name["2024_2021格式_I5错误.xlsx"].fixed
    from typer.testing import CliRunner

    from disclosure_xlsx.cli import app

    printed = CliRunner().invoke(app, ["convert", str(inputs), "--out", str(tmp_path / "cli"), "--apply-suggestions",
                                       "--workers", "1"], env={"COLUMNS": "300"}).stdout
    lines = {line.split(" → ")[0].split("/")[-1]: line for line in printed.splitlines() if " → " in line}
    assert lines["2024_2021格式_I2错误.xlsx"].endswith("[原有错误，按唯一建议改正后通过]")
    assert lines["2024_2021格式_I5错误.xlsx"].endswith("[有错误]")
    after_i5 = printed.split(lines["2024_2021格式_I5错误.xlsx"])[1].splitlines()[1]
    assert "有不止一种同样少的改法，没有自动改正" in after_i5  # why its fix was not applied
    assert "没有自动改正" not in printed.split(lines["2024_2021格式_I2错误.xlsx"])[1].splitlines()[1]


def _marked(path: Path) -> bool:
    import openpyxl

    sheet = openpyxl.load_workbook(path)["年报表格"]
    return any("未通过校验" in c.value for row in sheet.iter_rows() for c in row if isinstance(c.value, str))


def test_a_fixed_workbook_keeps_its_mark_for_any_error_the_fix_does_not_make_hold(tmp_path: Path) -> None:
    """The mark 未通过校验 goes only when the fix's identities were the workbook's only errors: a negative
    count beside them keeps it, and so does a workbook written in another format (checked afterwards for
    what its office must still fill); the fix goes into the values before they are mapped."""
    import shutil

    import openpyxl

    from disclosure_xlsx.convert import convert_paths

    from .conftest import SAMPLES

    negative = tmp_path / "negative"
    negative.mkdir()
    wb = openpyxl.load_workbook(SAMPLES / "2024_2021格式_I2错误.xlsx")
    wb["二、主动公开"]["B5"].value = -1  # a count outside every identity, negative: an error the fix does not touch
    wb.save(negative / "负数.xlsx")
    _, (item,) = convert_paths([negative], tmp_path / "out1", workers=1, apply_suggestions=True)
    assert {f.code for f in item.source.findings} == {"count-negative", "identity-mismatch"}
    assert [c.id for c in item.applied] == ["s3.granted.total"] and not item.fixed and _marked(item.output)
    mapped = tmp_path / "mapped"
    mapped.mkdir()
    shutil.copy(SAMPLES / "2020_2019格式_I2错误.xlsx", mapped)
    _, (item,) = convert_paths([mapped], tmp_path / "out2", workers=1, apply_suggestions=True, format_to="2021")
    assert item.applied and item.check is not None and item.check.errors and not item.fixed and _marked(item.output)
    (change,) = item.applied
    assert openpyxl.load_workbook(item.output, data_only=True)["三、依申请公开"]["J8"].value == change.suggested


def _stdout_of(*lines: str) -> str:
    """What a real Python subprocess with this project on its path writes to standard output (a pipe, so
    C's stdio buffers fully, as it does for a county's script reading `validate --json`)."""
    done = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_what_the_solver_prints_in_c_never_reaches_standard_output() -> None:
    """HiGHS prints a debug line to C's stdout in some solves (HiGHS issue 2783): inside the solve's guard,
    C-level output is dropped and `validate --json`'s stdout stays JSON."""
    assert _stdout_of(
        "import ctypes",
        "from disclosure_xlsx.suggest import native_stdout_silenced",
        "print('before', flush=True)",
        "with native_stdout_silenced():",
        "    ctypes.CDLL(None).printf(b'HighsMipSolverData::transformNewIntegerFeasibleSolution\\n')",
        "print('after')",
    ) == "before\nafter\n"


def test_overlapping_solves_in_threads_give_standard_output_back() -> None:
    """The clerk's page may solve for two uploads at once: however the guarded blocks of two threads
    overlap, file descriptor 1 is the terminal (here: a pipe) again when all have left."""
    assert _stdout_of(
        "import threading, time",
        "from disclosure_xlsx.suggest import native_stdout_silenced",
        "def solve(pause):",
        "    with native_stdout_silenced():",
        "        time.sleep(pause)",
        "threads = [threading.Thread(target=solve, args=(p,)) for p in (0.05, 0.2, 0.1)]",
        "for t in threads: t.start(); time.sleep(0.01)",
        "for t in threads: t.join()",
        "print('back', flush=True)",
    ) == "back\n"


def _spying_suggest_fix(*args: Any, **kwargs: Any) -> Any:
    """suggest_fix, noting which process called it (the workers are forked with it in place)."""
    with open(os.environ["SUGGEST_CALLS"], "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()}\n")
    return suggest_fix(*args, **kwargs)


def test_the_fix_is_worked_out_in_the_worker_that_read_the_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-file work in the pool: each failing workbook's suggestion comes from the worker that read it,
    never from the parent, and is the one suggest_fix gives for its report."""
    import disclosure_xlsx.suggest

    failing = [SAMPLES / e["file"] for e in json.loads((SAMPLES / "manifest.json").read_text("utf-8")) if e["errors"]]
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("SUGGEST_CALLS", str(calls))
    monkeypatch.setattr(disclosure_xlsx.suggest, "suggest_fix", _spying_suggest_fix)
    workbooks = validate_paths(failing, workers=2).workbooks
    callers = calls.read_text("utf-8").split()
    assert len(callers) == len(failing) and str(os.getpid()) not in callers
    for workbook in workbooks:
        report = workbook.report
        assert workbook.suggestion is not None
        assert workbook.suggestion == suggest_fix(report.format, report.values, unusable=report.unusable)
