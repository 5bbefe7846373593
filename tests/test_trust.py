"""Issue 12: a county's real year without dead ends, item by item, on real files written to disk.

1 wrong magnitudes · 2 the roll-up adds only what belongs · 4 the tool's own outputs are no submissions ·
5 the old-template office · 6 duplicates told apart · 7 a shifted row · 8 this machine's problems ·
9 interrupted runs. (Item 3, rosters, has its own tests.)
"""

from __future__ import annotations

import csv
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from typer.testing import CliRunner

from disclosure_xlsx.aggregate import aggregate_paths
from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.clean import clean_report
from disclosure_xlsx.cli import app
from disclosure_xlsx.convert import DATA_CSV, convert_paths
from disclosure_xlsx.feedback import FEEDBACK_DIR, write_outputs
from disclosure_xlsx.formats import ANY_LEVEL, get_format
from disclosure_xlsx.layout import layout_for
from disclosure_xlsx.marks import (
    MARKER,
    ROLLUP_PROPERTY,
    custom_properties,
    rollup_counts,
    workbook_mark,
)
from disclosure_xlsx.pipeline import discover, validate_paths
from disclosure_xlsx.read import RawReport
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template
from disclosure_xlsx.validate import validate_reports

from .conftest import ROOT

runner = CliRunner(env={"COLUMNS": "300"})  # no wrapped lines in what is compared


def _office(folder: Path, name: str, format_id: str = "2021", seed: int = 1, year: int | None = None,
            office: str | None = None, **values: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    filled = {**balanced_report(format_id, random.Random(seed)), "meta_office": office or Path(name).stem,
              "meta_year": year or (2024 if format_id == "2021" else 2020)}
    filled.update({k.replace("__", "."): v for k, v in values.items()})
    return write_template(folder / name, format_id, values=filled)


def _only(path: Path):
    (result,) = validate_paths([path], workers=1).workbooks
    return result


def _codes(result) -> list[str]:
    return [f.code for f in result.findings]


def _cell(path: Path, cell_id: str, format_id: str = "2021") -> tuple[openpyxl.Workbook, Any, int, int]:
    """The workbook, sheet and 1-based position of a cell of the standard layout."""
    wb = openpyxl.load_workbook(path)
    sheet, slot = layout_for(format_id).slot(cell_id)
    return wb, wb[sheet.name], slot.row + 1, slot.col + 1


# ------------------------------------------------------------------------------------------------
# 1. Wrong magnitudes never pass silently


MONEY = {"2019": "s2.procurement.amount", "2021": "s2.fees.amount"}


def test_an_amount_in_yuan_in_a_wanyuan_cell_says_what_was_meant(tmp_path: Path, format_id: str) -> None:
    extra = {"s2__procurement__projects": 3} if format_id == "2019" else {}
    path = _office(tmp_path, "x.xlsx", format_id, **{MONEY[format_id].replace(".", "__"): 125000}, **extra)
    result = _only(path)
    (finding,) = [f for f in result.findings if f.code == "money-magnitude"]
    assert finding.severity == "warning" and result.status == "warnings"
    assert "可能按元填写：125000 元 = 12.5 万元" in finding.message("zh")
    assert "12.5 亿元" in finding.message("zh") and "125000 yuan = 12.5" in finding.message("en")
    assert finding.expected == 12.5 and finding.cells[0].id == MONEY[format_id]


def test_real_amounts_in_wanyuan_pass(tmp_path: Path) -> None:
    """The amounts of the real reports (shared/examples, the seed) and anything below the conservative
    threshold, or not whole, are not flagged while the office's level is unknown."""
    amounts = [0, 75.926, 1207.5, 1767.06, 7.9001, 99999, 125000.5, 3000]
    for format_id, cell in MONEY.items():
        for i, amount in enumerate(amounts):
            extra = {"s2__procurement__projects": 3 if amount else 0} if format_id == "2019" else {}
            _office(tmp_path, f"{format_id}_{i}.xlsx", format_id, **{cell.replace(".", "__"): amount}, **extra)
    batch = validate_paths([tmp_path], workers=1)
    assert len(batch.workbooks) == 2 * len(amounts)
    assert [w.file for w in batch.workbooks if "money-magnitude" in _codes(w)] == []
    assert all(w.status == "ok" for w in batch.workbooks)


def test_the_threshold_follows_the_office_level_when_the_cover_states_it() -> None:
    """With the 单位层级 stated on the cover, a township's 12500 is flagged and a city's is not; without it,
    only the conservative threshold applies."""
    fmt = get_format("2021")
    (rule,) = [r for r in fmt.rules if r.kind == "magnitude"]
    assert rule.threshold(None) == 100000 and rule.threshold(ANY_LEVEL) == 10000
    assert rule.threshold(" 乡镇(街道) ") == 10000 and rule.threshold("设区的市级") > 10**11
    reports = []
    for level in ("乡镇（街道）", "设区的市级", ""):
        values = {**balanced_report("2021", random.Random(2)), "s2.fees.amount": 12500.0}
        raw = {cid: float(v) for cid, v in values.items()}
        raw.update({"meta_office": f"某{level}", "meta_year": 2024.0, "meta_level": level,
                    fmt.words.version_name: fmt.template_version})
        from disclosure_xlsx.layout import standard_where

        reports.append(clean_report(RawReport(f"memory/{level}.xlsx", fmt, "names", raw, standard_where("2021"))))
    found = validate_reports(reports).findings
    flagged = [[f for f in fs if f.code == "money-magnitude"] for fs in found]
    assert [len(f) for f in flagged] == [1, 0, 0]
    assert "乡镇（街道）单位一年" in flagged[0][0].message("zh")


# ------------------------------------------------------------------------------------------------
# 2. The roll-up adds only what belongs


def _county(folder: Path, offices: int, year: int = 2024, seed: int = 0) -> list[Path]:
    return [_office(folder, f"office{i}.xlsx", seed=seed + i, year=year, office=f"第{seed + i}镇",
                    meta_credit_code=f"C{seed + i:017d}") for i in range(offices)]


def test_other_years_are_left_out_unless_asked(tmp_path: Path) -> None:
    _county(tmp_path / "in", 2)
    _office(tmp_path / "in", "去年.xlsx", seed=7, year=2023, office="第9镇")
    result = aggregate_paths([tmp_path / "in"], tmp_path / "t.xlsx", office="某县", year=2024)
    assert [(Path(e.workbook.file).name, e.reason) for e in result.excluded] == [("去年.xlsx", "other_year")]
    assert "2023" in result.excluded[0].message() and "--include-other-years" in result.excluded[0].message()
    assert len(result.included) == 2
    both = aggregate_paths([tmp_path / "in"], tmp_path / "t.xlsx", office="某县", year=2024, include_other_years=True)
    assert len(both.included) == 3 and [w.report.year for w in both.other_years] == [2023]


def test_a_year_no_input_has_is_a_usage_error_naming_the_years_found(tmp_path: Path) -> None:
    _county(tmp_path / "in", 2, year=2023)
    out = tmp_path / "t.xlsx"
    result = runner.invoke(app, ["aggregate", str(tmp_path / "in"), "-o", str(out), "--office", "某县",
                                 "--year", "2024"])
    assert result.exit_code == 2, result.output
    assert "2024" in result.stderr and "2023 年 2 个" in result.stderr
    assert not out.exists()
    with pytest.raises(DisclosureError) as refused:
        aggregate_paths([tmp_path / "in"], out, office="某县", year=2024)
    assert refused.value.finding.code == "rollup-year-not-found"


def test_the_total_records_and_a_city_roll_up_carries_the_counts(tmp_path: Path) -> None:
    """County A: 3 added, 1 left out (errors), 1 other year, 1 missing from the roster. County B: 2 added.
    The city adds both totals and says what was left out one level down."""
    a = tmp_path / "A"
    _county(a, 3)
    _office(a, "错.xlsx", seed=11, office="错镇", s3__granted__total=10**6)
    _office(a, "旧.xlsx", seed=12, year=2023, office="旧镇")
    roster = tmp_path / "名单.csv"
    roster.write_text("单位名称\n第0镇\n第1镇\n第2镇\n错镇\n旧镇\n缺报镇\n", "utf-8")
    totals = tmp_path / "各县汇总"
    county = aggregate_paths([a], totals / "A县.xlsx", office="A县人民政府", year=2024, roster=roster)
    assert county.counts() == {"version": 1, "added": 3, "left_out": 2, "missing": 1, "invalid_included": 0, "roster": True,
                               "reasons": {"other_year": 1, "errors": 1}}
    assert json.loads(custom_properties(totals / "A县.xlsx")[ROLLUP_PROPERTY]) == county.counts()
    fmt = get_format("2021")
    wb = openpyxl.load_workbook(totals / "A县.xlsx")
    cover = [str(c.value) for row in wb[fmt.words.cover_sheet].iter_rows() for c in row if c.value]
    assert "相加的工作簿：3 个" in cover and "未汇总的工作簿：2 个（年度不符 1 个、有错误 1 个）" in cover
    assert "名单中未报送的单位：1 个" in cover
    block = next(c for row in wb[fmt.words.cover_sheet].iter_rows() for c in row if c.value == "相加的工作簿：3 个")
    assert block.protection.locked and wb[fmt.words.cover_sheet].protection.sheet
    detail = [str(c.value) for row in wb[fmt.words.detail_sheet].iter_rows() for c in row if c.value]
    assert "相加的工作簿：3 个" in detail and any(t.startswith("错镇（错.xlsx）：") for t in detail)
    _county(tmp_path / "B", 2, seed=20)
    aggregate_paths([tmp_path / "B"], totals / "B县.xlsx", office="B县人民政府", year=2024)
    city_out = tmp_path / "市.xlsx"
    printed = runner.invoke(app, ["aggregate", str(totals), "-o", str(city_out), "--office", "某市", "--year", "2024"],
                            env={"COLUMNS": "200"})
    assert printed.exit_code == 0, printed.output
    assert "所汇总的 2 份下级汇总表记录（各级合计）：相加 5 个，未汇总 2 个，名单中未报送 1 个" in printed.stdout
    assert "A县人民政府（A县.xlsx）：相加 3 个，未汇总 2 个，名单中未报送 1 个" in printed.stdout
    city = rollup_counts(city_out)
    assert city is not None and city["added"] == 2 and city["below"] == {"added": 5, "left_out": 2, "missing": 1}
    province = aggregate_paths([city_out], tmp_path / "省.xlsx", office="某省", year=2024)
    assert province.below == {"added": 7, "left_out": 2, "missing": 1}  # every level below, summed


# ------------------------------------------------------------------------------------------------
# 4. The tool's own outputs are never taken for submissions


def _names(files) -> list[str]:
    return sorted(Path(f).name for f in files)


def test_the_in_folder_rerun_sequence_sees_exactly_the_offices_files(tmp_path: Path) -> None:
    x = tmp_path / "交回的报表"
    own = _county(x, 2) + [_office(x, "有错.xlsx", seed=5, office="有错镇", s3__granted__total=999)]
    own.append(_office(x / "乡镇", "旧格式.xlsx", "2019", seed=6, year=2024, office="旧格式镇"))
    first = runner.invoke(app, ["validate", str(x), "--out", str(x / "校验结果")])
    assert first.exit_code == 1, first.output
    second = runner.invoke(app, ["convert", str(x), "--out", str(x / "清洗结果")])
    assert "跳过了" in second.stderr  # the feedback tree was found and left out
    assert len(list((x / "清洗结果").glob("*.xlsx"))) == 4, second.output
    third = runner.invoke(app, ["validate", str(x), "--json"], env={"COLUMNS": "300"})
    report = json.loads(third.stdout)
    assert _names(w["file"] for w in report["workbooks"]) == _names(own)
    from disclosure_xlsx.pipeline import FOLDER_EXTENSIONS

    written = [p for p in x.rglob("*") if p.suffix.lower() in FOLDER_EXTENSIONS and p not in own
               and not any(part.startswith(".") for part in p.relative_to(x).parts)]
    assert len(written) >= 7 + 4  # 2 marked copies, 1 new template, the overview, 4 cleaned workbooks, 4 反馈.html
    assert f"跳过了 {len(written)} 个本工具自己写出的文件" in third.stderr.replace("\n", "")
    assert _names(s["file"] for s in report["skipped"]) == _names(written)  # each named in the JSON, and why
    assert {s["finding"]["code"] for s in report["skipped"]} == {"own-output"}
    assert all("不是单位报送的报表" in s["finding"]["message"]["zh"] for s in report["skipped"])
    assert (x / "校验结果" / MARKER).is_file() and (x / "清洗结果" / MARKER).is_file()
    assert (x / "校验结果" / FEEDBACK_DIR / MARKER).is_file()


def test_outputs_given_on_purpose_are_read(tmp_path: Path) -> None:
    """A folder the user names is read as asked (cleaned workbooks, a city's totals); an annotated copy or
    an overview is read only when named as a file, or when an office saved the marked copy again."""
    x = tmp_path / "in"
    _county(x, 1)
    _office(x, "错.xlsx", seed=3, office="错镇", s3__granted__total=999)
    write_outputs(validate_paths([x], workers=1), tmp_path / "out")
    convert_paths([x], tmp_path / "cleaned", workers=1)
    assert len(discover([tmp_path / "cleaned"])) == 2  # the user names the cleaned folder: read
    (copy_,) = (tmp_path / "out" / FEEDBACK_DIR).rglob("*_校验标注.xlsx")
    assert workbook_mark(copy_) == ("annotated", False)
    stray = x / "错_校验标注.xlsx"
    shutil.copy(copy_, stray)  # the county copied the feedback back into the submissions
    skipped: list[Path] = []
    assert _names(discover([x], skipped=skipped)) == ["office0.xlsx", "错.xlsx"] and skipped == [stray]
    assert discover([stray]) == [stray]  # named on the command line: read
    _resave(stray, "2099-01-01T00:00:00Z")  # the office corrected its marked copy and sent it back
    assert workbook_mark(stray) == ("annotated", True)
    assert "错_校验标注.xlsx" in _names(discover([x]))


@pytest.mark.parametrize("workers", [1, 2])
def test_the_readers_recognise_the_tools_own_workbooks_a_search_found(tmp_path: Path, workers: int) -> None:
    """validate leaves the marks to the workers that read each file anyway (one opening per file): the
    same files are left out as by `discover`, a file named is read, and a folder of outputs only is
    "nothing found"."""
    x = tmp_path / "in"
    _county(x, 3)
    wrong = _office(x, "错.xlsx", seed=3, office="错镇", s3__granted__total=999)
    write_outputs(validate_paths([wrong], workers=1), tmp_path / "out")
    (copy_,) = (tmp_path / "out" / FEEDBACK_DIR).rglob("*_校验标注.xlsx")
    stray = x / "乡镇" / copy_.name
    stray.parent.mkdir()
    shutil.copy(copy_, stray)
    shutil.copy(tmp_path / "out" / "校验汇总.xlsx", x / "校验汇总.xlsx")
    batch = validate_paths([x], workers=workers)
    assert _names(w.file for w in batch.workbooks) == _names(discover([x]))
    assert _names(s.file for s in batch.skipped) == sorted([copy_.name, "校验汇总.xlsx"])
    assert [w.status for w in validate_paths([stray], workers=workers).workbooks] == ["errors"]  # named: read
    both = validate_paths([x, stray], workers=workers)  # found by the search and named too: read as asked
    assert stray.name in _names(w.file for w in both.workbooks) and _names(s.file for s in both.skipped) == [
        "校验汇总.xlsx"]
    named = validate_paths([stray, x / "office0.xlsx"], previous=[x], workers=workers)  # last year's search too
    assert stray.name in _names(w.file for w in named.workbooks) and not named.skipped
    overlapping = validate_paths([tmp_path / "out", copy_], workers=workers)  # in a marked folder, and named
    assert [w.status for w in overlapping.workbooks if w.file == str(copy_)] == ["errors"]
    assert copy_.name not in _names(s.file for s in overlapping.skipped)
    only = tmp_path / "only"
    only.mkdir()
    shutil.copy(copy_, only / copy_.name)
    result = runner.invoke(app, ["validate", str(only), "--out", str(tmp_path / "结果")])
    assert result.exit_code == 2 and "跳过了 1 个本工具自己写出的文件" in result.stderr.replace("\n", "")
    assert not (tmp_path / "结果").exists()  # nothing to write: no folder left behind


def test_anything_odd_in_a_marked_folder_is_still_reported(tmp_path: Path) -> None:
    x = tmp_path / "in"
    _county(x, 1)
    write_outputs(validate_paths([x], workers=1), x / "校验结果")
    os.mkfifo(x / "校验结果" / "管道.xlsx")
    batch = validate_paths([x], workers=1)
    assert [w.status for w in batch.workbooks if w.file.endswith("管道.xlsx")] == ["unreadable"]
    assert "管道.xlsx" not in _names(s.file for s in batch.skipped) and batch.skipped  # its other files: left out


def test_files_that_are_not_the_tools_carry_no_mark_and_are_read(tmp_path: Path) -> None:
    good = _office(tmp_path, "good.xlsx")
    (tmp_path / "empty.xlsx").write_bytes(b"")
    (tmp_path / "text.xlsx").write_text("单位名称,年度\n", "utf-8")
    (tmp_path / "cut.xlsx").write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with zipfile.ZipFile(tmp_path / "plain.xlsx", "w") as archive:
        archive.writestr("hello.txt", "no properties")
    for name in ("empty.xlsx", "text.xlsx", "cut.xlsx", "plain.xlsx"):
        assert workbook_mark(tmp_path / name) == (None, False) and custom_properties(tmp_path / name) == {}, name
    assert workbook_mark(good) == ("template", False)
    assert len(discover([tmp_path])) == 5  # every one is read, and reported for what it is


def _understated(path: Path, member: str, padding: int) -> None:
    """`member` of the zip at `path` grown by `padding` spaces while its zip entries still give its old
    size: a small part on paper that inflates to many megabytes (a zip bomb's shape)."""
    with zipfile.ZipFile(path) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
        for info, data in members:
            new.writestr(info.filename, data + b" " * padding if info.filename == member else data)
    raw = bytearray(path.read_bytes())
    name = member.encode()
    size = len(next(data for info, data in members if info.filename == member))
    for signature, at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local header, directory entry
        start = raw.find(signature)
        while start >= 0:
            name_at = start + (30 if signature == b"PK\x03\x04" else 46)
            if raw[name_at:name_at + len(name)] == name:
                raw[start + at:start + at + 4] = size.to_bytes(4, "little")
            start = raw.find(signature, start + 4)
    path.write_bytes(bytes(raw))


def test_a_mark_that_would_inflate_beyond_its_stated_size_is_never_inflated(tmp_path: Path) -> None:
    """Every workbook a search finds is looked at for the tool's mark in the main process (`discover`, for
    convert and aggregate): a properties part that inflates far beyond its stated size must not be
    inflated there. It is no mark, and the file is read by a worker like any other (and refused there)."""
    import tracemalloc

    good = _office(tmp_path / "in", "bomb.xlsx")
    _office(tmp_path / "in", "good.xlsx")
    _understated(good, "docProps/custom.xml", 40 * 2**20)
    tracemalloc.start()
    try:
        mark = workbook_mark(good)
        found = discover([tmp_path / "in"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert mark == (None, False) and custom_properties(good) == {}
    assert peak < 4 * 2**20, peak  # 40 MiB, were it inflated
    assert sorted(p.name for p in found) == ["bomb.xlsx", "good.xlsx"]
    statuses = {Path(w.file).name: w.status for w in validate_paths(found, workers=2).workbooks}
    assert statuses == {"bomb.xlsx": "unreadable", "good.xlsx": "ok"}


def _resave(path: Path, modified: str) -> None:
    """What saving in an office suite does to the document properties: a later `modified` time."""
    with zipfile.ZipFile(path) as old:
        members = [(info, old.read(info)) for info in old.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as new:
        for info, data in members:
            if info.filename == "docProps/core.xml":
                text = data.decode("utf-8")
                start = text.index(">", text.index("<dcterms:modified")) + 1
                data = (text[:start] + modified + text[text.index("</dcterms:modified>"):]).encode("utf-8")
            new.writestr(info, data)


# ------------------------------------------------------------------------------------------------
# 5. The old-template office gets a way forward


def test_an_old_template_office_gets_the_current_template_pre_filled(tmp_path: Path) -> None:
    old = _office(tmp_path / "in", "力洋镇年报.xlsx", "2019", seed=8, year=2024, office="力洋镇人民政府",
                  text_overview="本年度公开工作概况", meta_contact="张三", s4__review__upheld="三")
    source = _only(old).report
    write_outputs(validate_paths([tmp_path / "in"], workers=1), tmp_path / "out")
    folder = tmp_path / "out" / FEEDBACK_DIR / "力洋镇人民政府_2024"
    feedback = (folder / "反馈.txt").read_text("utf-8-sig")
    assert "必须使用2021年版格式，请改用现行模板重新填写" in feedback
    assert "下一步：请打开随附的“力洋镇年报_新模板.xlsx”" in feedback
    refill = folder / "力洋镇年报_新模板.xlsx"
    result = _only(refill)
    new, old_fmt = get_format("2021"), get_format("2019")
    assert result.report.format is new and result.report.office == "力洋镇人民政府" and result.report.year == 2024
    assert result.report.texts["text_overview"] == "本年度公开工作概况" and result.report.texts["meta_contact"] == "张三"
    for cid in new.cells:
        if cid in old_fmt.cells and cid not in source.unusable:
            assert result.report.values[cid] == source.values[cid], cid  # 三, 四 and the shared cells of 二
    assert result.report.values["s2.licensing.decisions"] == source.values["s2.licensing.decisions"]
    assert workbook_mark(refill)[0] == "template"  # sent back filled, it is read as a submission
    layout = layout_for("2021")
    wb = openpyxl.load_workbook(refill)
    to_fill = [cid for cid in new.cells if result.report.values[cid] is None]
    assert "s2.fees.amount" in to_fill and "s2.licensing.decisions" not in to_fill
    assert "s4.review.upheld" in to_fill  # typed as text in the old workbook: to be filled again, and listed
    for cid in to_fill:
        where = layout.where(cid)
        assert f"{where.sheet}!{where.ref}（" in feedback, cid  # listed
        rules = wb[where.sheet].conditional_formatting
        assert any(where.ref in str(r.sqref) and rule.type == "containsBlanks" for r in rules for rule in r.rules), cid


def test_convert_to_the_current_format_fails_while_the_office_must_still_fill(tmp_path: Path) -> None:
    values = {**balanced_report("2019", random.Random(4), zero_share=0.0), "meta_office": "乙镇", "meta_year": 2020}
    assert values["s3.other.total"] > 0  # must be split into the current format's three rows
    (tmp_path / "in").mkdir()
    write_template(tmp_path / "in" / "x.xlsx", "2019", values=values)
    assert _only(tmp_path / "in" / "x.xlsx").status == "ok"
    args = ["convert", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--format-to", "2021"]
    result = runner.invoke(app, args, env={"COLUMNS": "5000"})
    assert result.exit_code == 1, result.output  # the source has no error: the converted workbook has
    assert "转换后的工作簿仍未通过校验" in result.stdout and "该单位还需要补填" in result.stdout
    assert "（3.其他 / 总计）" in result.stdout
    (out,) = (tmp_path / "out").glob("*.xlsx")
    mapping = openpyxl.load_workbook(out)[get_format("2021").words.mapping_sheet]
    rows = list(mapping.iter_rows(min_row=2, values_only=True))
    sheets = {get_format("2021").section(s).sheet for s in ("s2", "s3")}
    assert {r[1] for r in rows} <= sheets and not any("'" in r[1] for r in rows)  # plain sheet names
    listed = {r[0] for r in rows}
    assert not listed & {"s2.licensing.decisions", "s2.penalty.decisions", "s2.coercion.decisions"}
    notes = {r[0]: r[4] for r in rows}  # each cell says why it has no value: the sheet's last column
    assert all(notes.values()) and "无法拆分" in notes["s3.other_misc.total"]


# ------------------------------------------------------------------------------------------------
# 6. Duplicates that can be told apart


def _pair(tmp_path: Path) -> tuple[Path, Path]:
    first = _office(tmp_path / "in" / "第一次报送", "青石乡年报.xlsx", seed=1, office="青石乡")
    second = _office(tmp_path / "in" / "第二次报送", "青石乡年报.xlsx", seed=2, office="青 石 乡")  # same office
    os.utime(first, (1_700_000_000, 1_700_000_000))
    os.utime(second, (1_700_090_000, 1_700_090_000))
    _county(tmp_path / "in", 1, seed=40)
    return first, second


def test_duplicates_are_named_by_their_path_in_the_batch_and_their_time(tmp_path: Path) -> None:
    first, _ = _pair(tmp_path)
    batch = validate_paths([tmp_path / "in"], workers=1)
    finding = next(f for w in batch.workbooks if w.file == str(first) for f in w.findings
                   if f.code == "duplicate-submission")
    assert "第二次报送/青石乡年报.xlsx（修改于 2023-11-" in finding.message("zh")
    assert str(tmp_path) not in finding.message("zh")


def test_a_duplicate_pair_leaves_that_office_out_and_prefer_newest_takes_the_newer(tmp_path: Path) -> None:
    first, second = _pair(tmp_path)
    result = aggregate_paths([tmp_path / "in"], tmp_path / "t.xlsx", office="某县", year=2024)
    assert [w.report.office for w in result.included] == ["第40镇"]  # the county is not refused
    assert [(e.workbook.file, e.reason) for e in result.excluded] == [(str(first), "duplicate"),
                                                                      (str(second), "duplicate")]
    message = result.excluded[0].message()
    assert "第一次报送/青石乡年报.xlsx" in message and "第二次报送/青石乡年报.xlsx" in message
    newest = runner.invoke(app, ["aggregate", str(tmp_path / "in"), "-o", str(tmp_path / "t.xlsx"), "--force",
                                 "--office", "某县", "--year", "2024", "--prefer", "newest"], env={"COLUMNS": "300"})
    assert newest.exit_code == 1  # one copy was still left out, and says why
    assert "选用了最新的 第二次报送/青石乡年报.xlsx" in newest.stdout
    total = validate_paths([tmp_path / "t.xlsx"], workers=1).workbooks[0].report
    assert total.values["s3.new.total"] == _only(second).report.values["s3.new.total"] + _only(
        tmp_path / "in" / "office0.xlsx").report.values["s3.new.total"]


# ------------------------------------------------------------------------------------------------
# 7. A shifted row is diagnosed


def _shift_right(path: Path, cell_id: str, format_id: str) -> int:
    """Move one row of section 三 one column to the right, as a slip of the mouse does; returns its row."""
    wb, ws, row, col = _cell(path, cell_id, format_id)
    values = [ws.cell(row, c).value for c in range(col, col + 7)]
    ws.cell(row, col).value = None
    for k, value in enumerate(values):
        ws.cell(row, col + 1 + k).value = value
    wb.save(path)
    return row


def test_a_row_shifted_one_column_right_is_named(tmp_path: Path, format_id: str) -> None:
    path = _office(tmp_path, "x.xlsx", format_id, seed=3)
    row = _shift_right(path, "s3.partial.natural_person", format_id)
    result = _only(path)
    (finding,) = [f for f in result.findings if f.code == "value-outside-table"]
    assert [c.ref for c in finding.cells] == [f"K{row}"]
    assert f"第 {row} 行的数字似乎整体右移了一列" in finding.message("zh")
    assert finding.severity == "warning"
    # the identities the shift breaks get no suggested fix: one worked out from the misread row named six
    # cells, none of them the shift
    assert "identity-mismatch" in _codes(result) and result.suggestion is None
    # every other finding follows from the shift (each holds once the row is read one column over), and
    # each says so, so the office moves the row back instead of chasing six totals
    others = [f for f in result.findings if f is not finding]
    assert {f.code for f in others} == {"identity-mismatch", "blank-cell"} and len(others) >= 6
    for other in others:
        assert f"这一条很可能是第 {row} 行右移一列造成的" in other.message("zh"), other.message("zh")
        assert f"row {row} being shifted one column right" in other.message("en")
    assert "右移" not in finding.message("zh").split("请把整行左移一格")[1]  # the shift itself is told once


def test_a_failure_the_shift_does_not_explain_is_not_blamed_on_it(tmp_path: Path, format_id: str) -> None:
    """Beside a shifted row, a total off by one elsewhere: its row and its column still fail once the row
    is read one column over, so neither is said to come from the shift."""
    values = balanced_report(format_id, random.Random(3))
    path = _office(tmp_path, "x.xlsx", format_id, seed=3, s3__new__commercial=values["s3.new.commercial"] + 1)
    row = _shift_right(path, "s3.partial.natural_person", format_id)
    result = _only(path)
    own = [f for f in result.findings if f.code == "identity-mismatch" and "s3.new.commercial" in {c.id for c in f.cells}]
    assert len(own) == 2  # the 本年新收 row's total and the 商业企业 column's
    assert all(f.cause is None and "右移" not in f.message("zh") for f in own)
    assert any(f.cause is not None and f"第 {row} 行" in f.message("zh") for f in result.findings)


def test_a_stray_total_beside_the_table_is_named_without_a_shift(tmp_path: Path) -> None:
    path = _office(tmp_path, "x.xlsx", seed=3)
    wb = openpyxl.load_workbook(path)
    ws = wb[get_format("2021").section("s3").sheet]
    ws["K9"] = 42
    ws["K10"] = "备注"  # text beside a table is not a number typed in the wrong place
    wb.save(path)
    (finding,) = [f for f in _only(path).findings if f.code == "value-outside-table"]
    assert [c.ref for c in finding.cells] == ["K9"] and "42" in finding.message("zh")
    assert "右移" not in finding.message("zh")
    assert "value-outside-table" not in _codes(_only(_office(tmp_path / "clean", "y.xlsx", seed=3)))


# ------------------------------------------------------------------------------------------------
# 8. Environment problems are not blamed on the office; no path of this machine in an office's feedback


def test_a_file_gone_during_the_run_is_the_countys_problem(tmp_path: Path) -> None:
    _county(tmp_path / "in", 1)
    gone = _office(tmp_path / "in", "gone.xlsx", seed=2)
    files = discover([tmp_path / "in"])
    gone.unlink()  # moved away between the search and the reading
    result = next(w for w in validate_paths(files, workers=1).workbooks if w.file == str(gone))
    assert _codes(result) == ["file-inaccessible"] and result.status == "unreadable"
    message = result.findings[0].message("zh")
    assert message.startswith("本机无法读取") and "另存为" not in message and "不是报送单位的问题" in message


@pytest.mark.parametrize("error, words", [
    (PermissionError(errno.EACCES, "Permission denied"), "没有读取这个文件的权限"),
    (OSError(errno.EBUSY, "Device or resource busy"), "正被其他程序占用")])
def test_permission_denied_and_locked_are_the_countys_problem(tmp_path: Path, monkeypatch, error, words) -> None:
    """Running as root, this machine can read any file: the refusal the OS gives on opening it is simulated."""
    path = _office(tmp_path / "in", "x.xlsx")
    real = os.open

    def refuse(file, *args, **kwargs):  # the reader opens the file once (limits.read_regular)
        if Path(file).name == path.name:
            raise type(error)(error.errno, error.strerror, str(Path(file).absolute()))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    (result,) = validate_paths([path], workers=1).workbooks
    assert _codes(result) == ["file-inaccessible"] and words in result.findings[0].message("zh")
    assert str(tmp_path) not in result.findings[0].message("zh")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads every file")
def test_a_file_without_read_permission_is_the_countys_problem(tmp_path: Path) -> None:
    path = _office(tmp_path / "in", "x.xlsx")
    path.chmod(0)
    try:
        assert _codes(_only(path)) == ["file-inaccessible"]
    finally:
        path.chmod(0o644)


def test_no_absolute_path_of_this_machine_in_any_office_feedback(tmp_path: Path, monkeypatch) -> None:
    # a folder long enough that a crash message naming it is cut inside it, wherever pytest's tmp_path is
    root = (tmp_path / "县里的电脑" / Path(*["各乡镇和部门第一次报送的年报"] * 6) / "交回的报表").absolute()
    _pair(tmp_path)  # duplicates in two folders
    root.parent.mkdir(parents=True)
    shutil.move(str(tmp_path / "in"), str(root))
    _office(root, "旧.xlsx", "2019", seed=9, year=2024, office="旧镇")
    _office(root, "错.xlsx", seed=10, office="错镇", s3__granted__total=999)
    (root / "坏.xlsx").write_bytes(b"PK\x03\x04 not really a zip")
    boom = _office(root, "崩溃.xlsx", seed=11, office="崩溃镇")
    gone = _office(root, "消失.xlsx", seed=12, office="消失镇")
    files = discover([root])
    gone.unlink()
    from disclosure_xlsx import pipeline

    real = pipeline.read_workbook

    def crash(path, **options):
        if Path(path).name == boom.name:
            raise RuntimeError(f"cannot parse {Path(path).absolute()} (in {Path(path).absolute().parent})")
        return real(path, **options)

    monkeypatch.setattr(pipeline, "read_workbook", crash)
    batch = validate_paths(files, workers=1)
    assert {w.status for w in batch.workbooks} >= {"unreadable", "errors", "warnings"}
    write_outputs(batch, tmp_path / "out", workers=1)
    shown = []
    for path in (tmp_path / "out" / FEEDBACK_DIR).rglob("*"):
        if path.suffix in (".txt", ".html"):
            shown.append(path.read_text("utf-8-sig"))
        elif path.suffix == ".xlsx":
            with zipfile.ZipFile(path) as archive:
                shown += [archive.read(n).decode("utf-8", "replace") for n in archive.namelist()]
    assert len(shown) > 10
    for text in shown:
        assert str(root) not in text and str(tmp_path) not in text and "县里的电脑" not in text
    joined = "".join(shown)
    assert "第一次报送/青石乡年报.xlsx" in joined and "cannot parse 崩溃.xlsx" in joined


# ------------------------------------------------------------------------------------------------
# 9. Interrupted runs leave nothing half-done


def _csv_rows(folder: Path) -> list[list[str]]:
    with (folder / DATA_CSV).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


def test_a_second_convert_replaces_the_first_only_when_asked(tmp_path: Path) -> None:
    _county(tmp_path / "big", 3)
    convert_paths([tmp_path / "big"], tmp_path / "out", workers=1)
    assert len(list((tmp_path / "out").glob("*.xlsx"))) == 3
    _county(tmp_path / "small", 1, seed=30)
    args = ["convert", str(tmp_path / "small"), "--out", str(tmp_path / "out")]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "--force" in refused.stderr
    assert len(list((tmp_path / "out").glob("*.xlsx"))) == 3  # nothing touched
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert _names((tmp_path / "out").glob("*.xlsx")) == ["第30镇_2024.xlsx"]  # no stale workbook of the first run
    assert len(_csv_rows(tmp_path / "out")) == 1 + len(get_format("2021").cells)
    foreign = tmp_path / "桌面"
    foreign.mkdir()
    (foreign / "我的文件.docx").write_bytes(b"mine")
    for extra in ([], ["--force"]):  # a folder the tool did not write is never written to
        result = runner.invoke(app, ["convert", str(tmp_path / "small"), "--out", str(foreign), *extra])
        assert result.exit_code == 2 and "不是空文件夹" in result.stderr
    assert [p.name for p in foreign.iterdir()] == ["我的文件.docx"]


def test_an_interrupted_convert_leaves_the_previous_output_whole(tmp_path: Path) -> None:
    """A real subprocess gets Ctrl-C (SIGINT) while it writes the cleaned workbooks (SIGTERM takes the same
    path: cli._terminate raises KeyboardInterrupt)."""
    _county(tmp_path / "first", 2)
    convert_paths([tmp_path / "first"], tmp_path / "out", workers=1)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    many = tmp_path / "many"
    for i, path in enumerate(_county(many, 2, seed=50)):
        for k in range(150):  # 302 workbooks: seconds of writing even stamped (~8 ms each), so that a loaded
            shutil.copy(path, many / f"copy{i}_{k}.xlsx")  # machine's delay before the signal cannot outlast it
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # Ctrl-C as a terminal delivers it: a suite started in the background (SIGINT ignored) must not pass that on
    proc = subprocess.Popen([sys.executable, "-m", "disclosure_xlsx", "convert", str(many), "--out",
                             str(tmp_path / "out"), "--force", "--workers", "1"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not any(any(s.glob("*.xlsx")) for s in tmp_path.glob(".out.new-*")):  # mid-convert: writing into staging
        assert proc.poll() is None and time.monotonic() < deadline, "convert finished before it could be interrupted"
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "已中断，未写入新结果" in err.decode("utf-8")
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # the previous output, whole
    assert not list(tmp_path.glob(".out.*"))  # no staging left behind
