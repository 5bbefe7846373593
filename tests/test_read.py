"""Reading real workbook files: by defined names, by labels when names are gone, and bad files."""

from __future__ import annotations

import random
import zipfile
from pathlib import Path

import openpyxl
import pytest

from disclosure_xlsx.formats import get_format
from disclosure_xlsx.layout import layout_for
from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.read import read_workbook
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES


def _filled(tmp_path: Path, format_id: str, seed: int = 5) -> tuple[Path, dict]:
    values = {**balanced_report(format_id, random.Random(seed)), "meta_office": "某镇人民政府",
              "meta_year": get_format(format_id).first_year}
    return write_template(tmp_path / "filled.xlsx", format_id, values=values), values


def _without_names(src: Path, dst: Path, relabel: dict[str, str] | None = None) -> Path:
    """The workbook as rebuilt by copy and paste: no defined names, optionally some labels retyped."""
    wb = openpyxl.load_workbook(src)
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and cell.value in (relabel or {}):
                    cell.value = relabel[cell.value]
    wb.save(dst)
    return dst


def test_names_locate_every_cell_of_the_layout(tmp_path: Path, format_id: str) -> None:
    path, values = _filled(tmp_path, format_id)
    raw = read_workbook(path)
    layout = layout_for(format_id)
    assert (raw.format.id, raw.located_by, raw.findings) == (format_id, "names", [])
    for cid in get_format(format_id).cells:
        assert raw.raw[cid] == values[cid]
        sheet, slot = layout.slot(cid)
        assert (raw.where[cid].sheet, raw.where[cid].ref) == (sheet.name, layout.ref(cid).split("!")[1])
    assert raw.raw["meta_office"] == "某镇人民政府"


def test_labels_find_the_same_values_as_names(tmp_path: Path, format_id: str) -> None:
    path, _ = _filled(tmp_path, format_id)
    by_names = read_workbook(path)
    by_labels = read_workbook(_without_names(path, tmp_path / "copied.xlsx"))
    assert by_labels.located_by == "labels" and by_labels.format.id == format_id
    assert by_labels.findings == []
    assert by_labels.raw == by_names.raw
    assert by_labels.where == by_names.where


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.glob("*.xlsx")))
def test_samples_read_the_same_by_labels(tmp_path: Path, sample: str) -> None:
    by_names = read_workbook(SAMPLES / sample)
    by_labels = read_workbook(_without_names(SAMPLES / sample, tmp_path / sample))
    assert by_labels.raw == by_names.raw


def test_names_follow_an_inserted_row_and_a_renamed_sheet(tmp_path: Path, format_id: str) -> None:
    path, values = _filled(tmp_path, format_id)
    wb = openpyxl.load_workbook(path)
    fmt = get_format(format_id)
    sheet = wb[fmt.section("s3").sheet]
    sheet.title = "依申请"  # Excel updates every name; openpyxl does not, so do what Excel does
    for name, dn in wb.defined_names.items():
        dn.attr_text = dn.attr_text.replace(f"'{fmt.section('s3').sheet}'", "依申请")
    wb.save(path)
    raw = read_workbook(path)
    assert raw.located_by == "names"
    assert raw.where["s3.new.total"].sheet == "依申请"
    assert raw.raw["s3.new.total"] == values["s3.new.total"]


def test_label_variants_are_read_and_reported(tmp_path: Path) -> None:
    """Spec §11.2 E3–E7: variants match; whitespace and bracket forms pass silently, others warn."""
    path, values = _filled(tmp_path, "2021")
    relabel = {
        "行政规范性文件": "规范性文件",  # E3: the 2019 label in a 2021 table
        "（二）部分公开（区分处理的，只计这一情形，不计其他情形）": "（二）部分公开（区分处理的，只计这一情况，不计其他情形）",  # E4
        "5.属于三类内部事务信息": "5.属于三类内容事务信息",  # E4
        "行政事业性收费": "行政事业型收费",  # E5
        "第二十条第（一）项": "第二十条 第(一)项",  # E6: spaces and half-width brackets
        "商业企业": "商业 企业",  # E6
        "本年制发件数": "本年制发\n件数",  # E6: in-cell line break
        "现行有效件数": "现行有效件数 (历史累计)",  # E7: a gloss added to the header
    }
    raw = read_workbook(_without_names(path, tmp_path / "variants.xlsx", relabel))
    cells = get_format("2021").cells
    assert {cid: raw.raw[cid] for cid in cells} == {cid: values[cid] for cid in cells}
    variants = {f.params["found"] for f in raw.findings if f.code == "label-variant"}
    assert variants == {"规范性文件", "（二）部分公开（区分处理的，只计这一情况，不计其他情形）", "5.属于三类内容事务信息",
                        "行政事业型收费", "现行有效件数 (历史累计)"}
    assert all(f.severity == "warning" for f in raw.findings)


def test_a_missing_label_is_a_precise_finding(tmp_path: Path) -> None:
    path, _ = _filled(tmp_path, "2019")
    raw = read_workbook(_without_names(path, tmp_path / "cut.xlsx", {"4.保护第三方合法权益": "（此行已删）"}))
    (finding,) = [f for f in raw.findings if f.code == "cell-not-found"]
    assert finding.severity == "error"
    message = finding.message()
    assert "4.保护第三方合法权益" in message and "3.危及“三安全一稳定”" in message and "7 个" in message
    assert "s3.denied_third_party.total" not in raw.raw
    assert "s3.denied_internal.total" in raw.raw


def test_format_is_detected_from_labels_when_the_cover_is_gone(tmp_path: Path, format_id: str) -> None:
    path, _ = _filled(tmp_path, format_id)
    copied = _without_names(path, tmp_path / "nocover.xlsx")
    wb = openpyxl.load_workbook(copied)
    del wb[get_format(format_id).words.cover_sheet]
    wb.save(copied)
    raw = read_workbook(copied)
    assert (raw.format.id, raw.located_by) == (format_id, "labels")


@pytest.mark.parametrize("content, code", [
    (b"", "file-unreadable"),
    (b"this is a text file renamed to .xlsx\n", "file-unreadable"),
    (b"PK\x03\x04truncated", "file-unreadable"),
])
def test_broken_files_are_findings(tmp_path: Path, content: bytes, code: str) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(content)
    with pytest.raises(DisclosureError) as caught:
        read_workbook(path)
    assert caught.value.finding.code == code
    assert caught.value.finding.severity == "error"


def test_a_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "archive.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(DisclosureError) as caught:
        read_workbook(path)
    assert caught.value.finding.code == "file-unreadable"


def test_a_workbook_of_another_form_is_not_a_report(tmp_path: Path) -> None:
    path = tmp_path / "budget.xlsx"
    wb = openpyxl.Workbook()
    wb.active.append(["项目", "预算", "决算"])
    wb.active.append(["办公费", 12, 11])
    wb.save(path)
    with pytest.raises(DisclosureError) as caught:
        read_workbook(path)
    assert caught.value.finding.code == "not-a-report"
