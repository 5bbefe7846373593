"""Real-world inputs: office suites, copies without names, pasted reports, damaged, wrong and hostile files."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import random
import shutil
import zipfile
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msoffcrypto.format.ooxml import OOXMLFile

from disclosure_xlsx.convert import convert_paths
from disclosure_xlsx.feedback import write_outputs
from disclosure_xlsx.formats import get_format
from disclosure_xlsx.layout import layout_for, report_layout
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES, SHARED

SEED_TEXT = SHARED / "seed" / "000_f10c6ced2bff11ee.txt"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text("utf-8"))


def _filled(folder: Path, format_id: str = "2021", seed: int = 1, name: str = "filled.xlsx", **extra) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    values = {**balanced_report(format_id, random.Random(seed)), "meta_office": "某镇人民政府",
              "meta_year": get_format(format_id).first_year, **extra}
    return write_template(folder / name, format_id, values=values)


def _only(path: Path):
    (result,) = validate_paths([path], workers=1).workbooks
    return result


def _findings(result) -> list[tuple]:
    return [(f.code, f.rule, tuple((c.id, c.sheet, c.ref) for c in f.cells)) for f in result.findings]


# ------------------------------------------------------------------------------------------------
# 1. A real office suite


def test_a_messy_filled_template_saved_by_libreoffice_gives_the_same_findings(tmp_path: Path, soffice) -> None:
    messy = {"s3.new.commercial": "0\u00a0", "s3.new.research": "２", "s3.granted.research": "2件",
             "s4.review.upheld": "/", "s2.fees.amount": "75.9260", "s3.carried_in.other_org": "",
             "s3.partial.legal_service": "三"}
    original = _filled(tmp_path / "in", seed=3, **messy)
    before = _only(original)
    assert {f.code for f in before.findings} >= {"blank-cell", "value-unparseable"}
    for target in ("xlsx", "xls", "ods"):
        (copy,) = soffice([original], target, tmp_path / target)
        after = _only(copy)
        assert _findings(after) == _findings(before), target
        assert [c.to_dict() for c in after.cleaning] == [c.to_dict() for c in before.cleaning], target


# ------------------------------------------------------------------------------------------------
# 2. Label fallback


def _strip_names(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    wb.save(path)


def test_sheets_renamed_and_names_removed(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    expected = _only(path).report.values
    wb = openpyxl.load_workbook(path)
    for i, ws in enumerate(wb.worksheets):
        ws.title = f"表{i}"
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    wb.save(path)
    result = _only(path)
    assert result.report.located_by == "labels" and result.report.values == expected
    assert result.status == "ok"


@pytest.mark.parametrize("names_follow", [True, False], ids=["names-updated-like-excel", "names-left-stale"])
def test_a_blank_row_inserted_above_section_3(tmp_path: Path, names_follow: bool) -> None:
    path = _filled(tmp_path)
    expected = _only(path).report.values
    fmt = get_format("2021")
    sheet_name = fmt.section("s3").sheet
    top = min(s.row for s in layout_for("2021").sheet("s3").slots)  # 0-based first data row
    wb = openpyxl.load_workbook(path)
    wb[sheet_name].insert_rows(3)  # above the header of the table
    if names_follow:  # what Excel does when a row is inserted: every name below moves down
        for dn in wb.defined_names.values():
            sheet, ref = dn.attr_text.split("!")
            if sheet.strip("'") == sheet_name:
                col, row = ref.replace("$", " ").split()
                dn.attr_text = f"{sheet}!${col}${int(row) + 1}"
    wb.save(path)
    result = _only(path)
    assert result.report.values == expected
    assert result.report.where["s3.new.natural_person"].ref.endswith(str(top + 2))  # one row lower
    if names_follow:
        assert result.report.located_by == "names" and result.findings == []
    else:  # stale names are noticed, never trusted
        assert result.report.located_by == "labels"
        assert [f.code for f in result.findings] == ["names-stale"]


def _seed_values() -> dict:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES.parent / "scripts" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.seed_values(SEED_TEXT)


@pytest.mark.skipif(not SEED_TEXT.exists(), reason="../shared/seed is not beside this checkout")
def test_the_seed_tables_pasted_into_a_plain_sheet(tmp_path: Path) -> None:
    """The published tables as a plain sheet: printed labels (typo and line breaks included), printed
    values (NBSP, 万元), the printed title, no cover, no names, laid out like the published report."""
    seed = next(SAMPLES.glob("2020_宁海县*.xlsx"))
    _, (converted,) = convert_paths([seed], tmp_path / "c", workers=1)
    wb = openpyxl.load_workbook(converted.output)
    fmt = get_format("2019")
    for name in wb.sheetnames:
        if name != fmt.words.report_sheet:
            del wb[name]
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    ws = wb[fmt.words.report_sheet]
    ws.title = "Sheet1"
    printed = {"行政事业性收费": "行政事业型收费", "本年新制作数量": "本年新\n制作数量", "本年新公开数量": "本年新\n公开数量"}
    for row in ws.iter_rows():
        for cell in row:
            if cell.value in printed:
                cell.value = printed[cell.value]
    raw = _seed_values()
    ws["A1"] = SEED_TEXT.read_text("utf-8").split("\n")[0]  # 宁海县力洋镇人民政府2020年政府信息  公开工作年度报告
    for slot in report_layout("2019").slots:
        ws.cell(slot.row + 1, slot.col + 1).value = raw[slot.key]
    pasted = tmp_path / "pasted.xlsx"
    wb.save(pasted)

    result = _only(pasted)
    original = _only(seed)
    assert result.report.located_by == "labels" and result.report.format_id == "2019"
    assert result.report.values == original.report.values
    assert (result.report.office, result.report.year) == ("宁海县力洋镇人民政府", 2020)
    assert [f.params["found"] for f in result.findings if f.code == "label-variant"] == ["行政事业型收费"]
    assert not [f for f in result.findings if f.severity == "error"]


def test_the_other_formats_labels_are_a_precise_finding(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    wb = openpyxl.load_workbook(path)
    swap = {"本年制发件数": "本年新制作数量", "本年废止件数": "本年新公开数量", "现行有效件数": "对外公开总数量"}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if cell.value in swap:
                    cell.value = swap[cell.value]
    wb.save(path)
    named = _only(path)  # names say 2021: read by them, but the 2019 labels are reported
    (mismatch,) = [f for f in named.findings if f.code == "format-labels-mismatch"]
    assert "本年新制作数量" in mismatch.message()
    _strip_names(path)
    labelled = _only(path)  # without names, the labels decide; what does not fit is named
    missing = [f.params["label"] for f in labelled.findings if f.code == "cell-not-found"]
    assert missing == ["第二十条第（一）项"] and labelled.status == "errors"


# ------------------------------------------------------------------------------------------------
# 3. Damaged and wrong files: one clear finding each, and the batch goes on


def _bad_files(folder: Path, good: Path) -> dict[str, str]:
    """file name → the code its one finding must have."""
    folder.mkdir(parents=True, exist_ok=True)
    data = good.read_bytes()
    (folder / "截断.xlsx").write_bytes(data[: len(data) // 2])
    with zipfile.ZipFile(folder / "压缩包.xlsx", "w") as archive:
        archive.writestr("说明.txt", "不是工作簿")
    (folder / "文本.xlsx").write_text("单位名称,年度\n某镇,2024\n", "utf-8")
    (folder / "空文件.xlsx").write_bytes(b"")
    with good.open("rb") as src, (folder / "有密码.xlsx").open("wb") as out:
        OOXMLFile(src).encrypt("secret", out)
    other = openpyxl.Workbook()
    other.active.append(["项目", "预算数", "决算数"])
    other.save(folder / "其他表格.xlsx")
    (folder / "~$锁定.xlsx").write_bytes(b"\x00lock")
    return {"截断.xlsx": "file-unreadable", "压缩包.xlsx": "file-unreadable", "文本.xlsx": "file-unreadable",
            "空文件.xlsx": "file-unreadable", "有密码.xlsx": "file-unreadable", "其他表格.xlsx": "not-a-report"}


def test_damaged_and_wrong_files_each_give_one_finding(tmp_path: Path) -> None:
    good = _filled(tmp_path / "in", name="好的.xlsx")
    expected = _bad_files(tmp_path / "in", good)
    batch = validate_paths([tmp_path / "in"], workers=1)
    by_name = {Path(w.file).name: w for w in batch.workbooks}
    assert "~$锁定.xlsx" not in by_name  # lock files are skipped silently
    assert by_name.pop("好的.xlsx").status == "ok"
    assert {name: [f.code for f in w.findings] for name, w in by_name.items()} == {
        name: [code] for name, code in expected.items()}
    assert all(w.status == "unreadable" for w in by_name.values())
    assert "密码" in by_name["有密码.xlsx"].findings[0].message()
    write_outputs(batch, tmp_path / "out")  # and the outputs are written for every file
    assert len([p for p in (tmp_path / "out" / "feedback").iterdir() if p.is_dir()]) == len(batch.workbooks)


def test_a_macro_enabled_workbook_is_read_and_annotated_as_xlsm(tmp_path: Path, soffice) -> None:
    source = next(SAMPLES.glob("2024_2021格式_I5*.xlsx"))
    (xlsm,) = soffice([source], "xlsm", tmp_path / "in")
    result = _only(xlsm)
    assert _findings(result) == _findings(_only(source))
    batch = validate_paths([xlsm], workers=1)
    write_outputs(batch, tmp_path / "out")
    (copy,) = [p for p in (tmp_path / "out" / "feedback").rglob("*") if p.suffix in (".xlsx", ".xlsm")]
    assert copy.suffix == ".xlsm"
    assert openpyxl.load_workbook(copy, keep_vba=True)["校验结果"]


# ------------------------------------------------------------------------------------------------
# 4. Hostile files


def test_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    bomb = tmp_path / "炸弹.xlsx"
    good = _filled(tmp_path / "src")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            out.writestr(item, src.read(item))
        with out.open("xl/worksheets/sheet99.xml", "w") as stream:  # 120 MiB of nothing, ~120 KB on disk
            chunk = b" " * 2**20
            for _ in range(120):
                stream.write(chunk)
    assert bomb.stat().st_size < 2 * 2**20
    (finding,) = _only(bomb).findings
    assert finding.code == "file-too-large" and "解压后" in finding.message()


@pytest.mark.parametrize("row", [b'<row r="%d"><c r="A%d"><v>1</v></c></row>', b'<row r="%d"/>'],
                         ids=["million-rows-of-values", "million-empty-rows"])
def test_a_sheet_with_a_million_rows_is_refused(tmp_path: Path, row: bytes) -> None:
    path = tmp_path / "百万行.xlsx"
    good = _filled(tmp_path / "src")
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for item in src.infolist():
            if item.filename != "xl/worksheets/sheet1.xml":
                out.writestr(item, src.read(item))
        with out.open("xl/worksheets/sheet1.xml", "w") as stream:
            stream.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="http://schemas'
                         b'.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            for start in range(1, 1_000_001, 10_000):
                stream.write(b"".join(row % ((i, i) if row.count(b"%d") == 2 else i)
                                      for i in range(start, start + 10_000)))
            stream.write(b"</sheetData></worksheet>")
    assert path.stat().st_size < 10 * 2**20  # small on disk, huge once inflated
    (finding,) = _only(path).findings
    assert finding.code == "file-too-large" and "MiB" in finding.message()


def test_hostile_names_and_text_never_escape_or_execute(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    _filled(inputs, name="控制\x07字符\t.xlsx", seed=2, meta_office="../../逃逸/..\\镇")
    _filled(inputs, name="链接..副本.xlsx", seed=3, meta_office="http://evil.example/钓鱼", text_other='=cmd|"/c calc"!A1')
    before = {p for p in tmp_path.rglob("*")}
    batch = validate_paths([inputs], workers=1)
    write_outputs(batch, tmp_path / "out")
    convert_paths([inputs], tmp_path / "conv", workers=1)
    created = {p for p in tmp_path.rglob("*")} - before
    for path in created:
        resolved = path.resolve()
        assert resolved.is_relative_to((tmp_path / "out").resolve()) or resolved.is_relative_to(
            (tmp_path / "conv").resolve()), path
        assert not any(ord(c) < 32 for c in path.name), path
    overview = openpyxl.load_workbook(tmp_path / "out" / "校验汇总.xlsx")
    for ws in overview.worksheets:
        assert not ws._hyperlinks  # a URL from a workbook is text, not a link
        assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)
    assert len(batch.workbooks) == 2
    texts = [c for path in (tmp_path / "conv").glob("*.xlsx") for ws in openpyxl.load_workbook(path).worksheets
             for row in ws.iter_rows() for c in row if c.value == '=cmd|"/c calc"!A1']
    assert texts and all(c.data_type == "s" for c in texts)  # written back as text, never as a formula


# ------------------------------------------------------------------------------------------------
# 5. Duplicates


def test_the_same_office_and_year_twice_is_a_finding_on_both(tmp_path: Path) -> None:
    _filled(tmp_path / "in", name="第一次.xlsx", seed=1)
    _filled(tmp_path / "in", name="第二次.xlsx", seed=2)
    _filled(tmp_path / "in", name="别的单位.xlsx", seed=3, meta_office="别的镇")
    batch = validate_paths([tmp_path / "in"], workers=1)
    dup = {Path(w.file).name: [f for f in w.findings if f.code == "duplicate-submission"] for w in batch.workbooks}
    assert "第二次.xlsx" in dup["第一次.xlsx"][0].message() and "第一次.xlsx" in dup["第二次.xlsx"][0].message()
    assert dup["别的单位.xlsx"] == []


def test_many_copies_of_one_report_name_a_few_and_count_the_rest(tmp_path: Path) -> None:
    """k copies of one office's report: each names the first `DUPLICATES_NAMED` others by name and counts
    them all (naming every other copy was k² names: a folder of 5,000 copies filled the parent's memory)."""
    from disclosure_xlsx.pipeline import DUPLICATES_NAMED, file_labels

    first = _filled(tmp_path / "in", name="副本00.xlsx", seed=1)
    for i in range(1, DUPLICATES_NAMED + 4):
        (tmp_path / "in" / f"副本{i:02}.xlsx").write_bytes(first.read_bytes())
    batch = validate_paths([tmp_path / "in"])
    labels = {lang: file_labels(batch.workbooks, lang) for lang in ("zh", "en")}  # each name with its time
    assert len(batch.workbooks) == DUPLICATES_NAMED + 4
    for workbook in batch.workbooks:
        (finding,) = [f for f in workbook.findings if f.code == "duplicate-submission"]
        shown = {lang: sorted(labels[lang][id(w)] for w in batch.workbooks if w is not workbook)[:DUPLICATES_NAMED]
                 for lang in labels}
        assert finding.params["others"]["zh"] == "、".join(shown["zh"]) + f"等，共 {DUPLICATES_NAMED + 3} 份"
        assert finding.params["others"]["en"] == ", ".join(shown["en"]) + " and 3 more"
        assert Path(workbook.file).name not in finding.message()


# ------------------------------------------------------------------------------------------------
# 6. Fuzz: any content in any input cell never crashes, and every odd value is accounted for

ODD = st.one_of(
    st.integers(-10**15, 10**15),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),  # openpyxl refuses control chars
    st.sampled_from(["#DIV/0!", "#N/A", "#REF!", "#VALUE!", "#NAME?"]),  # error cells
    st.sampled_from(["=1/0", "=SUM(A1:A3)", '=HYPERLINK("http://x","y")', "=NOW()"]),  # formulas
    st.dates(min_value=dt.date(1900, 3, 1)), st.datetimes(min_value=dt.datetime(1900, 3, 1)), st.booleans(),
    st.sampled_from(["NaN", "nan", "inf", "-inf", "1e400", "None", "null", "\u00a0", "１２", "1,2,3", "4.0", "－3"]),
)
_BASES: dict[str, Path] = {}


def _base(format_id: str, folder: Path) -> Path:
    if format_id not in _BASES:
        _BASES[format_id] = _filled(folder, format_id, seed=99, name=f"base{format_id}.xlsx")
    return _BASES[format_id]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_cells_never_crash_and_are_always_accounted_for(tmp_path_factory, data) -> None:
    """Each example is a batch of up to six fuzzed workbooks of either format, validated together as a
    county's folder is (one pool, one Pandera call per format): ~25 workbooks in all."""
    folder = tmp_path_factory.getbasetemp() / f"fuzz-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    written: dict[Path, tuple[str, dict[str, object]]] = {}
    for k in range(data.draw(st.integers(1, 6))):
        format_id = data.draw(st.sampled_from(["2019", "2021"]))
        fmt = get_format(format_id)
        cells = data.draw(st.lists(st.sampled_from(sorted(fmt.cells)), min_size=1, max_size=4, unique=True))
        wb = openpyxl.load_workbook(_base(format_id, tmp_path_factory.getbasetemp() / "fuzz-bases"))
        layout = layout_for(format_id)
        values = {}
        for cid in cells:
            value = data.draw(ODD)
            sheet, slot = layout.slot(cid)
            wb[sheet.name].cell(slot.row + 1, slot.col + 1).value = value
            values[cid] = value
        path = folder / f"fuzz{k}.xlsx"
        wb.save(path)
        written[path] = (format_id, values)
    results = {Path(w.file): w for w in validate_paths([folder]).workbooks}
    for path, (format_id, values) in written.items():
        result, fmt = results[path], get_format(format_id)
        assert result.status != "unreadable", [f.message() for f in result.findings]
        flagged = {c.id for f in result.findings for c in f.cells} | {c.id for c in result.cleaning}
        for cid, value in values.items():
            cell = fmt.cells[cid]
            # a number within range is clean: whole for a count, any for an amount in 万元 (the template
            # states the unit beside it), at or above the cell's minimum
            clean = isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= 10**12 \
                and (float(value).is_integer() or not cell.type.integer) and (value >= 0 or cell.type.min is None)
            if not clean:
                assert cid in flagged, (path.name, cid, value)
