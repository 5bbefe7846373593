"""sample_workbooks/: made by scripts/make_samples.py, faithful to the seed, each mistake deliberate."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from python_calamine import CalamineWorkbook

from disclosure_xlsx.formats import get_format, name_for

from .conftest import SAMPLES, SHARED

SEED_TEXT = SHARED / "seed" / "000_f10c6ced2bff11ee.txt"
MANIFEST = json.loads((SAMPLES / "manifest.json").read_text("utf-8"))


def _read(path: Path, format_id: str) -> dict[str, object]:
    """Every named value of a workbook the project wrote, located through the layout's names."""
    from disclosure_xlsx.layout import layout_for

    layout = layout_for(format_id)
    wb = CalamineWorkbook.from_path(str(path))
    sheets = {n: wb.get_sheet_by_name(n).to_python(skip_empty_area=False) for n in wb.sheet_names}
    out = {}
    for name in layout.format.names:
        sheet, slot = layout.slot(name)
        out[name] = sheets[sheet.name][slot.row][slot.col]
    return out


def test_manifest_lists_every_sample_and_a_chinese_name() -> None:
    files = {p.name for p in SAMPLES.glob("*.xlsx")}
    assert files == {entry["file"] for entry in MANIFEST}
    assert any(re.search(r"[\u4e00-\u9fff]", name) for name in files)


def test_seed_sample_holds_the_published_values_as_printed() -> None:
    if not SEED_TEXT.exists():
        pytest.skip("../shared/seed is not beside this checkout")
    entry = next(e for e in MANIFEST if e["office"] == "宁海县力洋镇人民政府")
    fmt = get_format(entry["format"])
    values = _read(SAMPLES / entry["file"], fmt.id)
    printed = [line[1:] for line in SEED_TEXT.read_text("utf-8").split("\n")
               if line.startswith("\t") and re.fullmatch(r"[\s\u00a0]*\d+(\.\d+)?[\s\u00a0]*(万元)?", line[1:])]
    assert len(printed) == len(fmt.cells)
    for cid, raw in zip(fmt.cells, printed, strict=True):
        got = values[name_for(cid)]
        assert (got == float(raw)) if re.fullmatch(r"\d+(\.\d+)?", raw) else (got == raw), cid
    assert values["s2_procurement_amount"] == "1207.5万元"
    assert values["s3_new_commercial"] == "0\u00a0" and values["s3_new_research"] == "\u00a00"
    assert values["s3_declined_confirm_other_org"] == 0  # the one plain zero among the 法人 columns
    assert values["meta_year"] == 2020 and values["meta_format"] == fmt.id
    assert str(values["text_other"]).startswith("本年度没有其他需要报告的事项")


@pytest.mark.parametrize("entry", [e for e in MANIFEST if e["errors"]], ids=lambda e: e["file"])
def test_each_mistake_sample_breaks_exactly_its_identity(entry: dict) -> None:
    fmt = get_format(entry["format"])
    raw = _read(SAMPLES / entry["file"], fmt.id)
    values = {cid: raw[name_for(cid)] for cid in fmt.cells}
    failing = [i for i in fmt.identities if not i.holds(values)]
    families = {i.family for i in failing}
    reported = [i for i in failing if i.defer_to not in families]  # spec I4
    (expected,) = entry["errors"]
    assert {i.family for i in reported} == {expected["identity"]}
    assert expected["anchor"] in {i.anchor for i in reported}
    assert all(r.holds(values) for r in fmt.rules)


def test_the_synthetic_clean_sample_balances_in_every_section() -> None:
    """The clean 2021 sample (the seed, with its text cells, is checked through validation elsewhere)."""
    (entry,) = [e for e in MANIFEST if not e["errors"] and e["office"] != "宁海县力洋镇人民政府"]
    fmt = get_format(entry["format"])
    raw = _read(SAMPLES / entry["file"], fmt.id)
    numbers = {cid: raw[name_for(cid)] for cid in fmt.cells}
    assert all(isinstance(v, float) for v in numbers.values())
    assert all(i.holds(numbers) for i in fmt.identities)
    for section in fmt.sections:
        assert any(numbers[c.id] for c in fmt.section_cells(section.key)), section.key


def test_the_script_reproduces_the_committed_samples(tmp_path: Path) -> None:
    if not SEED_TEXT.exists():
        pytest.skip("../shared/seed is not beside this checkout")
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES.parent / "scripts" / "make_samples.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.make_samples(SEED_TEXT, tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text("utf-8")) == MANIFEST
    for entry in MANIFEST:
        assert _read(tmp_path / entry["file"], entry["format"]) == _read(SAMPLES / entry["file"], entry["format"])
