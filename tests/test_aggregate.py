"""The roll-up: properties on real files (hypothesis), provenance, refusals, roster, and the CLI."""

from __future__ import annotations

import random
import tempfile
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook
from typer.testing import CliRunner

from disclosure_xlsx.aggregate import aggregate_paths, read_roster, roll_up
from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.cli import app
from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.layout import detail_layout
from disclosure_xlsx.pipeline import BatchResult, validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import batch_of

ROLLUP_SETTINGS = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _offices(folder: Path, format_id: str, seeds: list[int], year: int | None = None) -> list[Path]:
    year = year or get_format(format_id).first_year
    folder.mkdir(parents=True, exist_ok=True)
    return [write_template(folder / f"office{i}.xlsx", format_id, values={
        **balanced_report(format_id, random.Random(seed)), "meta_office": f"第{i}镇", "meta_year": year,
        "meta_credit_code": f"CODE{i:014d}"}) for i, seed in enumerate(seeds)]


def _values(paths: list[Path]) -> list[dict]:
    """The values each workbook is read back as, in one run through the pool (one fork, not one a file)."""
    results = validate_paths(paths, workers=1).workbooks
    assert [Path(w.file).name for w in results] == [p.name for p in paths]
    return [w.report.values for w in results]


reports = st.tuples(st.sampled_from(list(all_formats())), st.lists(st.integers(0, 10**6), min_size=1, max_size=5,
                                                                   unique=True))


@ROLLUP_SETTINGS
@given(case=reports)
def test_the_total_of_valid_reports_is_valid_and_is_their_sum(case) -> None:
    format_id, seeds = case
    fmt = get_format(format_id)
    with tempfile.TemporaryDirectory() as tmp:
        files = _offices(Path(tmp) / "in", format_id, seeds)
        result = aggregate_paths([Path(tmp) / "in"], Path(tmp) / "total.xlsx", office="某县", year=fmt.first_year)
        *parts, written = _values([*files, Path(tmp) / "total.xlsx"])
    assert result.check.status == "ok", [f.message() for f in result.check.findings]
    for cid in fmt.cells:
        assert written[cid] == pytest.approx(sum(p[cid] for p in parts)), cid


@settings(max_examples=10, deadline=None)  # the roll-up has no order-dependent path to find by many more
@given(case=st.tuples(st.sampled_from(list(all_formats())), st.lists(st.integers(0, 10**6), min_size=1, max_size=8,
                                                                     unique=True)),
       order=st.randoms(), cut=st.integers(1, 7))
def test_order_and_hierarchy_do_not_change_the_total(case, order, cut) -> None:
    """In memory: the roll-up is the same whatever the order, and township totals added up again give the
    county total (the file round trip of a total is proved by the property above). The offices are
    validated once (findings do not depend on the order: test_validate proves it); each ordering and each
    part is the same validated workbooks in another list."""
    format_id, seeds = case
    year = get_format(format_id).first_year
    offices = [({**balanced_report(format_id, random.Random(s))}, f"第{i}镇") for i, s in enumerate(seeds)]
    validated = batch_of(format_id, offices, year).workbooks
    whole = roll_up(BatchResult(validated[:]), office="某县", year=year).totals
    shuffled = validated[:]
    order.shuffle(shuffled)
    assert roll_up(BatchResult(shuffled), office="某县", year=year).totals == whole
    cut = min(cut, len(offices))
    parts = [validated[:cut], validated[cut:]] if cut < len(offices) else [validated]
    subtotals = [(roll_up(BatchResult(part), office=f"片区{i}", year=year).totals, f"片区{i}")
                 for i, part in enumerate(parts)]
    upper = roll_up(batch_of(format_id, subtotals, year), office="某县", year=year)
    assert upper.totals == whole
    assert all(w.status == "ok" for w in batch_of(format_id, [(upper.totals, "某县")], year).workbooks)


def test_invalid_offices_are_left_out_and_listed(tmp_path: Path) -> None:
    files = _offices(tmp_path / "in", "2021", [1, 2, 3])
    wb = openpyxl.load_workbook(files[1])
    names = {n: d.attr_text.split("!") for n, d in wb.defined_names.items()}
    sheet, ref = names["s4_review_total"]
    wb[sheet.strip("'")][ref.replace("$", "")].value += 1
    wb.save(files[1])
    result = aggregate_paths([tmp_path / "in"], tmp_path / "total.xlsx", office="某县", year=2021)
    assert [Path(w.file).name for w in result.left_out] == ["office1.xlsx"]
    assert len(result.included) == 2 and result.invalid_included == []
    assert result.check.status == "ok"
    detail = openpyxl.load_workbook(tmp_path / "total.xlsx")["汇总明细"]
    texts = [str(c.value) for row in detail.iter_rows() for c in row if c.value is not None]
    assert any("第1镇" in t and "I5[review]" not in t and "行政复议" in t for t in texts)


def test_include_invalid_says_so_plainly(tmp_path: Path) -> None:
    files = _offices(tmp_path / "in", "2021", [1, 2])
    wb = openpyxl.load_workbook(files[0])
    (sheet, ref), = [d.attr_text.split("!") for n, d in wb.defined_names.items() if n == "s3_granted_total"]
    wb[sheet.strip("'")][ref.replace("$", "")].value += 1
    wb.save(files[0])
    result = aggregate_paths([tmp_path / "in"], tmp_path / "total.xlsx", office="某县", year=2021,
                             include_invalid=True)
    assert [Path(w.file).name for w in result.invalid_included] == ["office0.xlsx"]
    assert result.check.status == "errors"  # the invalid office's mistake is in the total, and found again
    cover = openpyxl.load_workbook(tmp_path / "total.xlsx")[get_format("2021").words.cover_sheet]
    marks = [c.value for row in cover.iter_rows() for c in row if isinstance(c.value, str) and "未通过校验" in c.value]
    assert marks and "第0镇" in marks[0]


def test_blanks_count_as_zero_and_are_listed(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    values = {**balanced_report("2019", random.Random(1)), "meta_office": "甲镇", "meta_year": 2020}
    values["s4.review.upheld"], values["s4.review.total"] = None, values["s4.review.total"] - values["s4.review.upheld"]
    write_template(folder / "a.xlsx", "2019", values=values)
    _offices(tmp_path / "in", "2019", [5])
    result = aggregate_paths([folder], tmp_path / "total.xlsx", office="某县", year=2020)
    assert [(w.report.office, cid) for w, cid in result.blanks] == [("甲镇", "s4.review.upheld")]
    assert result.check.status == "ok"


def test_the_detail_sheet_has_every_office_and_a_totals_row_equal_to_the_total(tmp_path: Path) -> None:
    _offices(tmp_path / "in", "2021", [7, 8, 9])
    result = aggregate_paths([tmp_path / "in"], tmp_path / "total.xlsx", office="某县", year=2021)
    fmt = get_format("2021")
    rows = CalamineWorkbook.from_path(str(tmp_path / "total.xlsx")).get_sheet_by_name(
        fmt.words.detail_sheet).to_python(skip_empty_area=False)
    layout = detail_layout("2021")
    ids = rows[layout.id_row]
    assert ids[layout.first:] == list(fmt.cells)  # the cell ids in the row under the labels
    offices = [r for r in rows[layout.header_rows:] if r[0] in ("第0镇", "第1镇", "第2镇")]
    assert len(offices) == 3
    totals = next(r for r in rows if r[0] == fmt.words.total_label)
    for col, cid in enumerate(ids[layout.first:], layout.first):
        assert totals[col] == result.totals[cid] == sum(r[col] for r in offices), cid
    with zipfile.ZipFile(tmp_path / "total.xlsx") as archive:
        assert any(n.startswith("xl/charts/chart") for n in archive.namelist())  # a native Excel chart
    compare = openpyxl.load_workbook(tmp_path / "total.xlsx")[fmt.words.compare_sheet]
    assert [c.value for c in compare[1]][1:] == [f.label for f in fmt.key_figures]
    rate = next(i for i, f in enumerate(fmt.key_figures, 1) if f.is_ratio)
    last = compare.max_row
    while compare.cell(last, 1).value != fmt.words.total_label:
        last -= 1
    t = result.totals
    assert compare.cell(last, rate + 1).value == pytest.approx(
        (t["s3.granted.total"] + t["s3.partial.total"]) / t["s3.total.total"])


def test_mixed_formats_are_refused_naming_the_files(tmp_path: Path) -> None:
    _offices(tmp_path / "in" / "a", "2019", [1])
    _offices(tmp_path / "in" / "b", "2021", [2])
    with pytest.raises(DisclosureError) as refused:  # only workbooks of other years can bring another format in
        aggregate_paths([tmp_path / "in"], tmp_path / "total.xlsx", office="某县", year=2021, include_other_years=True)
    message = refused.value.finding.message("zh")
    assert refused.value.finding.code == "rollup-mixed-formats"
    assert "2019年版格式" in message and "2021年版格式" in message and "office0.xlsx" in message
    assert "office0.xlsx" in refused.value.finding.message("en") and "the 2019 format" in refused.value.finding.message("en")
    assert not (tmp_path / "total.xlsx").exists()


def test_one_office_twice_is_left_out_unless_the_codes_differ(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _offices(folder, "2021", [5])
    for name, code in (("x.xlsx", "A"), ("y.xlsx", "A")):
        write_template(folder / name, "2021", values={**balanced_report("2021", random.Random(1)),
                                                      "meta_office": "同名镇", "meta_year": 2021, "meta_credit_code": code})
    result = aggregate_paths([folder], tmp_path / "total.xlsx", office="某县", year=2021)
    assert [(Path(e.workbook.file).name, e.reason) for e in result.excluded] == [("x.xlsx", "duplicate"),
                                                                                ("y.xlsx", "duplicate")]
    assert "x.xlsx" in result.excluded[0].message() and "y.xlsx" in result.excluded[0].message()
    assert [w.report.office for w in result.included] == ["第0镇"]
    write_template(folder / "y.xlsx", "2021", values={**balanced_report("2021", random.Random(1)),
                                                      "meta_office": "同名镇", "meta_year": 2021, "meta_credit_code": "B"})
    assert len(aggregate_paths([folder], tmp_path / "total.xlsx", office="某县", year=2021).included) == 3


@pytest.mark.parametrize("bom", [True, False])
def test_the_roster_lists_who_is_missing_and_who_is_extra(tmp_path: Path, bom: bool) -> None:
    _offices(tmp_path / "in", "2021", [1, 2])
    roster = tmp_path / "名单.csv"
    text = "单位名称,统一社会信用代码,上级单位\n第0镇,,某县\n第9镇,,某县\n"
    roster.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    assert [e.office for e in read_roster(roster)] == ["第0镇", "第9镇"]
    result = aggregate_paths([tmp_path / "in"], tmp_path / "total.xlsx", office="某县", year=2021, roster=roster)
    assert [e.office for e in result.missing] == ["第9镇"]
    assert [w.report.office for w in result.unexpected] == ["第1镇"]
    detail = openpyxl.load_workbook(tmp_path / "total.xlsx")["汇总明细"]
    texts = [str(c.value) for row in detail.iter_rows() for c in row if c.value is not None]
    assert "第9镇" in texts and any(t.startswith("第1镇（") for t in texts)


def test_cli_aggregate(tmp_path: Path) -> None:
    runner = CliRunner()
    _offices(tmp_path / "in", "2021", [1, 2])
    args = ["aggregate", str(tmp_path / "in"), "-o", str(tmp_path / "total.xlsx"), "--office", "某县", "--year", "2021"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2 个工作簿相加" in result.stdout
    assert runner.invoke(app, args).exit_code == 2  # never overwrites without --force
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    _offices(tmp_path / "in" / "old", "2019", [3])
    refused = runner.invoke(app, [*args, "--force", "--include-other-years"])
    assert refused.exit_code == 1 and "不同格式" in refused.stderr


def test_cli_aggregate_speaks_english_when_asked(tmp_path: Path) -> None:
    """--lang en holds in everything the roll-up prints: its summary, its lists and a refusal."""
    runner = CliRunner()
    _offices(tmp_path / "in", "2021", [1, 2])
    args = ["aggregate", str(tmp_path / "in"), "-o", str(tmp_path / "total.xlsx"), "--office", "某县", "--year", "2021",
            "--lang", "en"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2 workbooks added" in result.stdout and "Blank cells counted as 0" in result.stdout
    assert "个工作簿相加" not in result.stdout and "按 0 计入" not in result.stdout
    _offices(tmp_path / "in" / "old", "2019", [3], year=2021)
    left = runner.invoke(app, [*args, "--force"], env={"COLUMNS": "200"})
    assert left.exit_code == 1 and "It uses the 2019 format, but reports for 2021 use the 2021 format" in left.stdout
    assert "未汇总" not in left.stdout
