"""Cross-year checks (issue 14): pairing, X1–X3, copied narratives, and templates made from last year's report.

Every report is a real workbook written with the project's template and read back; chains of balanced
reports come from `synthetic.balanced_successor`, so X1–X3 hold by construction.
"""

from __future__ import annotations

import dataclasses
import json
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_calamine import CalamineWorkbook
from typer.testing import CliRunner

from disclosure_xlsx import crossyear
from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.cli import app
from disclosure_xlsx.clean import CleanReport
from disclosure_xlsx.crossyear import (CrossYearFinding, check_batch, last_year_template, overview_text,
                                       pairing_lines, read_aliases)
from disclosure_xlsx.formats import format_for_year, get_format, name_for
from disclosure_xlsx.layout import last_year_layout
from disclosure_xlsx.pipeline import check_file, validate_paths
from disclosure_xlsx.read import read_workbook
from disclosure_xlsx.synthetic import balanced_report, balanced_successor
from disclosure_xlsx.template import write_template

from .conftest import defined_cells

runner = CliRunner()
CROSS = ("cross-year-mismatch", "text-copied")
PROBLEMS = ("本镇政府信息公开工作仍存在一些不足：一是主动公开的深度和广度有待加强，部分栏目更新不够及时；"
            "二是政策解读形式较为单一，图解、视频等解读方式运用不多；三是工作人员业务能力有待提升。下一步，"
            "我们将加强业务培训，完善发布审核机制，丰富政策解读形式，切实提升政府信息公开工作水平。")
OTHER_PROBLEMS = ("去年以来，依申请公开的答复期限管理仍显薄弱，个别答复文书说理不够充分；基层站所对公开目录的维护"
                  "还停留在被动更新。今后将建立答复文书集体审核制度，按月通报栏目更新情况，并把公开工作纳入年度考核。")


def _write(folder: Path, name: str, format_id: str, values: dict[str, object]) -> Path:
    return write_template(folder / f"{name}.xlsx", format_id, values=values)


def _read(path: Path) -> CleanReport:
    checked = check_file(path)
    report, problem = checked.report, checked.problem
    assert report is not None, problem
    return report


def _chain(format_ids: Sequence[str], first_year: int, seed: int) -> list[tuple[str, int, dict[str, object]]]:
    """Balanced reports of one office for consecutive years: (format, year, values with its cover)."""
    rng = random.Random(seed)
    values: dict[str, object] = dict(balanced_report(format_ids[0], rng))
    out = []
    for k, format_id in enumerate(format_ids):
        year = first_year + k
        if k:
            values = dict(balanced_successor(out[-1][2], out[-1][0], format_id, year, rng))  # type: ignore[arg-type]
        values.update(meta_office="示例镇人民政府", meta_credit_code="11330200MB0000001X", meta_year=year)
        out.append((format_id, year, values))
    return out


def _write_chain(folder: Path, chain: list[tuple[str, int, dict[str, object]]]) -> list[Path]:
    return [_write(folder, f"{year}_示例镇", fid, values) for fid, year, values in chain]


def _cross(reports: Sequence[CleanReport | None], previous: Sequence[CleanReport], **kw: object):
    return check_batch(reports, previous, **kw)  # type: ignore[arg-type]


def _mismatches(found) -> list[tuple[int, CrossYearFinding]]:
    return [(i, f) for i, c in enumerate(found) for f in c.findings if f.code == "cross-year-mismatch"]


# ----------------------------------------------------------------------------------------------
# X1–X3 over chains of balanced reports


def _chain_formats(format_id: str, n: int) -> list[str]:
    return [format_id] * n


def _stock_cells(format_id: str) -> list[str]:
    """The cells the cross-year rules of a format read (carry-over and stock cells)."""
    fmt = get_format(format_id)
    return sorted({t.cell for r in fmt.cross_year for t in r.terms})


def _readers(format_id: str, years: int) -> list[tuple[int, str]]:
    """(year index, cell) pairs some cross-year rule reads in a chain of `years` reports."""
    fmt = get_format(format_id)
    out = []
    for k in range(years):
        for cell in _stock_cells(format_id):
            if any((k > 0 and cell in r.current_cells) or (k + 1 < years and cell in r.previous_cells)
                   for r in fmt.cross_year):
                out.append((k, cell))
    return out


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), years=st.integers(3, 4), data=st.data())
def test_a_balanced_chain_holds_and_one_broken_cell_is_caught_there_only(format_id: str, seed: int, years: int,
                                                                          data: st.DataObject) -> None:
    fmt = get_format(format_id)
    chain = _chain(_chain_formats(format_id, years), fmt.first_year, seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_chain(Path(tmp), chain)
        reports = [_read(p) for p in paths]
        clean = _cross(reports, reports)
        assert _mismatches(clean) == []
        assert [c.pairing.status for c in clean] == ["not-found", *["paired"] * (years - 1)]  # type: ignore[union-attr]
        assert all(not c.pairing.unchecked for c in clean)  # type: ignore[union-attr]
        # break one carry-over or stock cell of one year
        k, cell = data.draw(st.sampled_from(_readers(format_id, years)), label="year and cell")
        format_k, year_k, values = chain[k]
        broken = {**values, cell: values[cell] + 1}  # type: ignore[operator]
        paths[k] = _write(Path(tmp), f"{year_k}_broken", format_k, broken)
        reports[k] = _read(paths[k])
        found = _mismatches(_cross(reports, reports))
    # which rule instances read the broken cell, in its own year (as this year's cell) and the next (as last year's)
    expected = {(k, r.rule) for r in fmt.cross_year if r.applies(format_id, year_k) and k > 0
                and cell in r.current_cells}
    expected |= {(k + 1, r.rule) for r in fmt.cross_year if k + 1 < years and cell in r.previous_cells
                 and r.applies(format_id, chain[k + 1][1])}
    assert expected and {(i, f.rule) for i, f in found} == expected
    for i, finding in found:
        if i == k:  # caught at the broken cell of this year…
            assert cell in [c.id for c in finding.cells]
        else:  # …or, the year after, at the cell that should have followed from it
            named = {(Path(c.file).name, c.id): c.value for c in finding.previous}
            assert named[(paths[k].name, cell)] == values[cell] + 1  # type: ignore[operator]
        assert finding.severity == "warning"


def test_a_format_change_keeps_x1_and_skips_x2(tmp_path: Path) -> None:
    """2020 (older format) → 2021 (current format): the carry-over rows are the same cells (ruling 1)."""
    old, new = format_for_year(2020), format_for_year(2021)
    assert old is not None and new is not None and old.id != new.id
    chain = _chain([old.id, new.id, new.id], 2020, seed=4)
    chain[1][2]["s3.carried_in.commercial"] += 2  # type: ignore[operator]
    chain[1][2]["s2.normative_docs.in_force"] += 5  # type: ignore[operator]  # no X2 across the change
    reports = [_read(p) for p in _write_chain(tmp_path, chain)]
    found = _cross(reports, reports)
    rules = {(i, f.rule) for i, f in _mismatches(found)}
    assert rules == {(1, "X1[commercial]"), (2, "X2[normative_docs]")}  # the next year's X2 sees the +5
    x1 = next(f for i, f in _mismatches(found) if i == 1)
    assert x1.level == "strong" and x1.expected == chain[0][2]["s3.carried_out.commercial"]
    assert x1.actual == chain[1][2]["s3.carried_in.commercial"]
    assert x1.previous[0].id == "s3.carried_out.commercial" and x1.previous[0].ref == reports[0].where[
        "s3.carried_out.commercial"].ref
    message = x1.message("zh")
    assert f"上年报告结转下年度 {x1.expected} 件，本年上年结转填 {x1.actual} 件" in message
    assert "2020_示例镇.xlsx" in message and x1.previous[0].ref in message
    assert "{" not in x1.message("en") and str(x1.expected) in x1.message("en")


def test_x3_follows_the_item_counts_of_the_older_format(tmp_path: Path) -> None:
    old = format_for_year(2019)
    assert old is not None
    chain = _chain([old.id, old.id], 2019, seed=9)
    chain[1][2]["s2.penalty.prev_items"] += 3  # type: ignore[operator]
    reports = [_read(p) for p in _write_chain(tmp_path, chain)]
    (i, finding), = _mismatches(_cross(reports, reports))
    first = chain[0][2]
    assert (i, finding.rule) == (1, "X3[penalty]")
    assert finding.expected == first["s2.penalty.prev_items"] + first["s2.penalty.delta_items"]  # type: ignore[operator]
    assert [c.id for c in finding.previous] == ["s2.penalty.prev_items", "s2.penalty.delta_items"]


def test_a_blank_on_either_side_cannot_be_checked_and_is_not_a_mismatch(tmp_path: Path, format_id: str) -> None:
    fmt = get_format(format_id)
    chain = _chain([format_id, format_id], fmt.first_year + 1, seed=2)
    del chain[0][2]["s3.carried_out.research"]  # blank last year
    chain[1][2]["s3.carried_in.social_welfare"] = "/"  # a placeholder this year: missing
    chain[1][2]["s3.carried_in.total"] = 999  # a real mismatch in the same row is still reported
    reports = [_read(p) for p in _write_chain(tmp_path, chain)]
    found = _cross(reports[1:], reports[:1])
    assert {f.rule for _, f in _mismatches(found)} == {"X1[total]"}
    assert set(found[0].pairing.unchecked) == {"X1[research]", "X1[social_welfare]"}  # type: ignore[union-attr]
    text = overview_text(found[0].pairing, found[0].findings)
    assert text.startswith("1 处不衔接；2 项因空白无法核对；上年：")


# ----------------------------------------------------------------------------------------------
# Pairing


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[CleanReport, CleanReport]:
    """One office's reports for two consecutive years (current format), read from disk."""
    folder = tmp_path_factory.mktemp("pairing")
    fmt = format_for_year(2023)
    assert fmt is not None
    chain = _chain([fmt.id, fmt.id], 2023, seed=1)
    last, this = (_read(p) for p in _write_chain(folder, chain))
    return last, this


def _as(report: CleanReport, *, office: str | None, code: str | None, year: int | None = None,
        file: str | None = None) -> CleanReport:
    return dataclasses.replace(report, office=office, credit_code=code, year=year or report.year,
                               file=file or f"{office}_{year or report.year}.xlsx")


def test_pairs_by_credit_code_even_when_the_name_changed(base) -> None:
    last, this = base
    previous = [_as(last, office="甲县审计局", code="11330200MB0000001X"),
                _as(last, office="乙县审计局", code="11330200MB0000002X")]
    (found,) = _cross([_as(this, office="甲县审计监督局", code="11330200 MB0000001x")], previous)
    assert found.pairing.status == "paired"  # type: ignore[union-attr]
    assert [(p.office, p.matched_by) for p in found.pairing.previous] == [("甲县审计局", "credit_code")]  # type: ignore[union-attr]


def test_pairs_by_normalised_name_when_a_code_is_missing(base) -> None:
    last, this = base
    previous = [_as(last, office="示例镇（街道）人民政府", code=None), _as(last, office="别的镇人民政府", code=None)]
    (found,) = _cross([_as(this, office=" 示例镇(街道) 人民政府", code="11330200MB0000001X")], previous)
    assert [(p.office, p.matched_by) for p in found.pairing.previous] == [("示例镇（街道）人民政府", "name")]  # type: ignore[union-attr]


def test_two_different_credit_codes_are_two_offices_whatever_the_names(base) -> None:
    last, this = base
    (found,) = _cross([_as(this, office="示例镇人民政府", code="11330200MB0000001X")],
                      [_as(last, office="示例镇人民政府", code="11330200MB0000009X")])
    assert found.pairing.status == "not-found"  # type: ignore[union-attr]


def test_pairs_by_alias_and_a_renamed_office_without_one_is_listed_unpaired(base, tmp_path: Path) -> None:
    last, this = base
    previous = [_as(last, office="某县环境保护局", code=None)]
    current = [_as(this, office="某县生态环境局", code=None)]
    (unpaired,) = _cross(current, previous)
    assert unpaired.pairing.status == "not-found"  # type: ignore[union-attr]
    csv = tmp_path / "更名.csv"
    csv.write_text("\ufeff旧名称,新名称\n某县环境保护局 , 某县生态环境局\n", "utf-8")
    (paired,) = _cross(current, previous, aliases=read_aliases(csv))
    assert [(p.office, p.matched_by) for p in paired.pairing.previous] == [("某县环境保护局", "alias")]  # type: ignore[union-attr]
    lines = pairing_lines([("某县生态环境局", unpaired.pairing, unpaired.findings)])
    assert lines == ["与上年报告核对：配对 0 个，未配对 1 个。", "  某县生态环境局：未找到上年报告"]


def test_a_merged_body_is_checked_against_the_sum_of_its_predecessors(base, tmp_path: Path) -> None:
    last, this = base
    a = _as(last, office="甲乡人民政府", code=None)
    b = _as(last, office="乙乡人民政府", code=None)
    merged_values = {**this.values, "s3.carried_in.total": 2 * last.values["s3.carried_out.total"]}  # type: ignore[operator]
    merged = dataclasses.replace(_as(this, office="甲乙镇人民政府", code=None), values=merged_values)
    csv = tmp_path / "合并.csv"
    csv.write_text("甲乡人民政府,甲乙镇人民政府\n乙乡人民政府,甲乙镇人民政府\n", "utf-8")
    (found,) = _cross([merged], [a, b], aliases=read_aliases(csv))
    assert found.pairing.status == "paired" and len(found.pairing.previous) == 2  # type: ignore[union-attr]
    rules = {f.rule for _, f in _mismatches([found])}
    assert "X1[total]" not in rules  # 2 × last year's carry-over, as two offices carried it over
    assert "X1[natural_person]" in rules or last.values["s3.carried_out.natural_person"] == 0


def test_a_previous_report_of_another_year_is_not_paired(base) -> None:
    last, this = base
    (found,) = _cross([this], [_as(last, office=this.office, code=this.credit_code, year=this.year - 2)])  # type: ignore[operator]
    assert found.pairing.status == "not-previous-year"  # type: ignore[union-attr]
    assert [p.year for p in found.pairing.found] == [this.year - 2]  # type: ignore[union-attr, operator]
    assert _mismatches([found]) == []
    assert overview_text(found.pairing, found.findings) == f"未找到 {this.year - 1} 年度报告（只有 {this.year - 2} 年度的）"  # type: ignore[operator]


def test_two_candidate_reports_are_ambiguous_not_guessed(base) -> None:
    last, this = base
    twins = [_as(last, office=this.office, code=None, file="a.xlsx"), _as(last, office=this.office, code=None,
                                                                            file="b.xlsx")]
    (found,) = _cross([_as(this, office=this.office, code=None)], twins)
    assert found.pairing.status == "ambiguous" and not found.pairing.previous  # type: ignore[union-attr]
    assert "a.xlsx" in overview_text(found.pairing, found.findings)
    (none,) = _cross([_as(this, office=None, code=None)], twins)
    assert none.pairing.status == "no-office"  # type: ignore[union-attr]


def test_a_bad_renaming_table_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("甲,乙,丙\n", "utf-8")
    with pytest.raises(DisclosureError) as caught:
        read_aliases(bad)
    assert "第 1 行应为两列" in caught.value.finding.message("zh")
    bad.write_bytes("旧名称,新名称\n".encode("gbk"))
    with pytest.raises(DisclosureError):
        read_aliases(bad)


# ----------------------------------------------------------------------------------------------
# Copied text


def test_section_five_copied_from_last_year_is_flagged_quoting_the_sentence(base) -> None:
    last, this = base
    old = dataclasses.replace(last, texts={**last.texts, "text_problems": "2023年，" + PROBLEMS, "text_overview": "无"})
    new = dataclasses.replace(this, texts={**this.texts, "text_problems": "2024年，" + PROBLEMS.replace("不足", "问题"),
                                           "text_overview": "无"})
    (found,) = _cross([new], [old])
    (copied,) = [f for f in found.findings if f.code == "text-copied"]
    assert copied.rule == "C1" and copied.cells[0].id == "text_problems"
    assert copied.previous[0].file == old.file  # type: ignore[attr-defined]
    message = copied.message("zh")
    assert "与上年报告" in message and "二是政策解读形式较为单一" in message and "相似度 9" in message
    rewritten = dataclasses.replace(new, texts={**new.texts, "text_problems": OTHER_PROBLEMS})
    (fresh,) = _cross([rewritten], [old])
    assert [f for f in fresh.findings if f.code == "text-copied"] == []


def test_short_texts_never_count_as_copied(base) -> None:
    last, this = base
    old = dataclasses.replace(last, texts={**last.texts, "text_problems": "无", "text_overview": "本年度无。"})
    new = dataclasses.replace(this, texts={**this.texts, "text_problems": "无", "text_overview": "本年度无。"})
    (found,) = _cross([new, dataclasses.replace(new, office="另一单位", credit_code=None, file="x.xlsx")], [old])[:1]
    assert [f for f in found.findings if f.code == "text-copied"] == []


def test_two_offices_with_the_same_section_five_are_flagged_on_both(base) -> None:
    _, this = base
    a = dataclasses.replace(this, office="甲镇人民政府", credit_code=None, file="甲.xlsx",
                            texts={**this.texts, "text_problems": PROBLEMS})
    b = dataclasses.replace(a, office="乙镇人民政府", file="乙.xlsx",
                            texts={**this.texts, "text_problems": PROBLEMS.replace("本镇", "我镇")})
    c = dataclasses.replace(a, office="丙镇人民政府", file="丙.xlsx", texts={**this.texts, "text_problems": OTHER_PROBLEMS})
    dup = dataclasses.replace(a, file="甲_重报.xlsx")  # the same office twice is a duplicate, not a copy
    found = _cross([a, b, c, dup], [])
    flagged = [[f.params["source"]["zh"] for f in x.findings if f.rule == "C2"] for x in found]
    assert flagged[0] == ["本批其他单位“乙镇人民政府”的报告"] and flagged[3] == flagged[0]
    assert flagged[1] == ["本批其他单位“甲镇人民政府”的报告"]
    assert flagged[2] == []


def test_copies_among_many_offices_are_found_without_comparing_every_pair(monkeypatch: pytest.MonkeyPatch,
                                                                           base) -> None:
    """400 distinct texts and three near-copies: the copies are found, and the exact measure runs on a
    few candidate pairs, not on the 80,000 pairs of the batch."""
    _, this = base
    rng = random.Random(5)
    alphabet = PROBLEMS + OTHER_PROBLEMS
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(120, 400))) for _ in range(400)]
    texts[10] = texts[200][:-10] + "今后将持续改进。"
    texts[300] = texts[200].replace(texts[200][50:56], "切实加强工作")
    reports = [dataclasses.replace(this, office=f"第{i}单位", credit_code=None, file=f"{i}.xlsx",
                                   texts={**this.texts, "text_problems": t}) for i, t in enumerate(texts)]
    calls = []
    measure = crossyear.similarity
    monkeypatch.setattr(crossyear, "similarity", lambda a, b, cutoff=0.0: calls.append(1) or measure(a, b, cutoff))
    found = _cross(reports, [])
    assert {i for i, x in enumerate(found) if any(f.rule == "C2" for f in x.findings)} == {10, 200, 300}
    assert len(calls) < 400


# ----------------------------------------------------------------------------------------------
# The batch: validate_paths, report.json, the command line, the roll-up


@pytest.fixture(scope="module")
def two_years(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Folders 2023/ and 2024/: one office paired by code with an X1 mismatch, one unpaired (renamed)."""
    root = tmp_path_factory.mktemp("years")
    fmt = format_for_year(2024)
    assert fmt is not None
    for folder in ("2023", "2024"):
        (root / folder).mkdir()
    chain = _chain([fmt.id, fmt.id], 2023, seed=6)
    chain[1][2]["s3.carried_in.natural_person"] += 1  # type: ignore[operator]
    chain[1][2]["s3.carried_out.natural_person"] += 1  # type: ignore[operator]  # keeps I1 balanced
    chain[1][2]["s3.carried_in.total"] += 1  # type: ignore[operator]
    chain[1][2]["s3.carried_out.total"] += 1  # type: ignore[operator]
    for (fid, year, values) in chain:
        _write(root / str(year), "示例镇", fid, {**values, "text_problems": f"{year}年，{PROBLEMS}"})
    renamed = _chain([fmt.id, fmt.id], 2023, seed=7)
    renamed[0][2].update(meta_office="某县环境保护局", meta_credit_code="")
    renamed[1][2].update(meta_office="某县生态环境局", meta_credit_code="")
    for (fid, year, values) in renamed:
        _write(root / str(year), "环境", fid, values)
    return root / "2023", root / "2024"


def test_validate_paths_pairs_the_batch_and_reports_it(two_years, tmp_path: Path) -> None:
    last, this = two_years
    plain = validate_paths([this], workers=1)
    assert all(w.previous is None for w in plain.workbooks)
    batch = validate_paths([this], previous=[last], workers=1)
    by_office = {w.report.office: w for w in batch.workbooks}  # type: ignore[union-attr]
    town = by_office["示例镇人民政府"]
    assert town.status == "warnings"  # cross-year findings are warnings (ruling 3)
    assert [f.rule for f in town.findings if f.code == "cross-year-mismatch"] == ["X1[natural_person]", "X1[total]"]
    record = town.to_dict()
    assert record["previous"]["status"] == "paired" and record["previous"]["matched_by"] == "credit_code"
    assert record["previous"]["year"] == 2023 and record["previous"]["file"].endswith("示例镇.xlsx")
    finding = next(f for f in record["findings"] if f["code"] == "cross-year-mismatch")
    assert finding["level"] == "strong" and finding["cells"][0]["id"] == "s3.carried_in.natural_person"
    assert finding["previous"][0]["id"] == "s3.carried_out.natural_person" and finding["previous"][0]["year"] == 2023
    json.dumps(batch.to_dict(), ensure_ascii=False)
    assert by_office["某县生态环境局"].to_dict()["previous"]["status"] == "not-found"
    csv = tmp_path / "更名.csv"
    csv.write_text("某县环境保护局,某县生态环境局\n", "utf-8")
    renamed = validate_paths([this], previous=[last], aliases=csv, workers=1)
    env = next(w for w in renamed.workbooks if w.report.office == "某县生态环境局")  # type: ignore[union-attr]
    assert env.previous.status == "paired" and env.previous.previous[0].matched_by == "alias"  # type: ignore[union-attr]


def test_feedback_and_the_annotated_copy_show_the_cross_year_findings(two_years, tmp_path: Path) -> None:
    from disclosure_xlsx.feedback import write_outputs

    last, this = two_years
    out = write_outputs(validate_paths([this], previous=[last], workers=1), tmp_path / "out", workers=1)
    folder = out / "feedback" / "示例镇人民政府_2024"
    summary = (folder / "反馈.txt").read_text("utf-8")
    assert "与上年报告不衔接：上年报告结转下年度" in summary and "与上年报告“示例镇.xlsx”的同一部分几乎相同" in summary
    (copy,) = folder.glob("*_校验标注.xlsx")
    wb = openpyxl.load_workbook(copy)
    report = json.loads((out / "report.json").read_text("utf-8"))
    town = next(w for w in report["workbooks"] if w["office"] == "示例镇人民政府")
    x1 = next(f for f in town["findings"] if f["rule"] == "X1[natural_person]")
    cell = wb[x1["cells"][0]["sheet"]][x1["cells"][0]["ref"]]
    assert cell.comment is not None and f"上年报告结转下年度 {x1['previous'][0]['value']} 件" in cell.comment.text
    copied = next(f for f in town["findings"] if f["code"] == "text-copied")
    assert wb[copied["cells"][0]["sheet"]][copied["cells"][0]["ref"]].comment is not None


def test_an_unreadable_previous_file_is_said(two_years, tmp_path: Path) -> None:
    last, this = two_years
    broken = tmp_path / "2023_损坏.xlsx"
    broken.write_bytes(b"PK\x03\x04 not a workbook")
    batch = validate_paths([this], previous=[last, broken], workers=1)
    assert batch.previous_unreadable == [str(broken)] == batch.to_dict()["previous_unreadable"]
    assert "previous_unreadable" not in validate_paths([this], workers=1).to_dict()
    items = [(w.name, w.previous, w.findings) for w in batch.workbooks]
    assert pairing_lines(items, unreadable=batch.previous_unreadable)[-1] == (
        "上年报告中有 1 个文件无法读取，其单位无法配对：2023_损坏.xlsx")


def test_a_series_in_one_folder_checks_itself(two_years) -> None:
    last, this = two_years
    batch = validate_paths([last, this], previous=[last, this], workers=1)
    statuses = sorted((w.report.year, w.previous.status) for w in batch.workbooks)  # type: ignore[union-attr]
    assert statuses == [(2023, "not-found"), (2023, "not-found"), (2024, "not-found"), (2024, "paired")]


def test_the_command_line_takes_previous_and_aliases(two_years, tmp_path: Path) -> None:
    last, this = two_years
    result = runner.invoke(app, ["validate", str(this), "--previous", str(last), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert sorted(w["previous"]["status"] for w in report["workbooks"]) == ["not-found", "paired"]
    shown = runner.invoke(app, ["validate", str(this), "--previous", str(last)])
    assert "与上年报告核对：配对 1 个，未配对 1 个。" in shown.stdout and "某县生态环境局：未找到上年报告" in shown.stdout
    (tmp_path / "x.csv").write_text("甲,乙\n", "utf-8")
    alone = runner.invoke(app, ["validate", str(this), "--aliases", str(tmp_path / "x.csv")])
    assert alone.exit_code == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("一,二,三\n", "utf-8")
    refused = runner.invoke(app, ["validate", str(this), "--previous", str(last), "--aliases", str(bad)])
    assert refused.exit_code == 2 and "更名对照表" in refused.output


def test_the_roll_up_keeps_offices_with_cross_year_warnings(two_years, tmp_path: Path) -> None:
    last, this = two_years
    out = tmp_path / "total.xlsx"
    result = runner.invoke(app, ["aggregate", str(this), "-o", str(out), "--office", "某县人民政府", "--year", "2024",
                                 "--previous", str(last)])
    assert result.exit_code == 0, result.output
    assert "2个工作簿相加" in "".join(result.stdout.split())  # both added: cross-year findings are warnings


# ----------------------------------------------------------------------------------------------
# template --from LASTYEAR.xlsx


def _last_year_workbook(folder: Path, format_id: str, year: int, seed: int = 3) -> tuple[Path, dict[str, object]]:
    values: dict[str, object] = dict(balanced_report(format_id, random.Random(seed)))
    values.update(meta_office="示例镇人民政府", meta_credit_code="11330200MB0000001X", meta_year=year,
                  meta_contact="张三", meta_phone="0574-12345678")
    return _write(folder, f"{year}_上年", format_id, values), values


@pytest.mark.parametrize("last_year", [2020, 2023])
def test_template_from_last_year_carries_the_cover_and_a_locked_block(tmp_path: Path, last_year: int) -> None:
    last_fmt = format_for_year(last_year)
    assert last_fmt is not None
    source, last = _last_year_workbook(tmp_path, last_fmt.id, last_year)
    out = last_year_template(tmp_path / "new.xlsx", source)
    fmt = format_for_year(last_year + 1)
    assert fmt is not None
    wb = openpyxl.load_workbook(out)
    names = defined_cells(wb)
    assert set(names) == set(fmt.names)  # nothing of last year's carries a defined name
    value = {n: wb[s][ref].value for n, (s, ref) in names.items()}
    assert (value["meta_office"], value["meta_credit_code"], value["meta_year"], value["meta_contact"]) == (
        "示例镇人民政府", "11330200MB0000001X", last_year + 1, "张三")
    assert value["meta_format"] == fmt.id
    assert all(value[name_for(c)] is None for c in fmt.cells)  # this year's figures start blank
    rules = tuple(r.rule for r in fmt.cross_year if r.applies(last_fmt.id, last_year + 1))
    layout = last_year_layout(fmt.id, last_fmt.id, rules)
    sheet = layout.sheet("last_year")
    assert wb.sheetnames[-1] == sheet.name == "上年数据"
    ws = wb[sheet.name]
    assert ws.protection.sheet
    shown = {slot.key: ws.cell(slot.row + 1, slot.col + 1) for slot in sheet.last_year}
    expected_cells = {f"s3.carried_out.{c}" for c in ("natural_person", "commercial", "research", "social_welfare",
                                                       "legal_service", "other_org", "total")}
    if last_fmt.id == fmt.id:
        expected_cells |= {"s2.regulations.in_force", "s2.normative_docs.in_force"}
    assert set(shown) == expected_cells
    for cid, cell in shown.items():
        assert cell.value == last[cid] and cell.protection.locked
    assert "2020" in str(ws["A2"].value) or "2023" in str(ws["A2"].value)


def test_last_years_values_are_never_read_as_this_years(tmp_path: Path) -> None:
    fmt = format_for_year(2024)
    assert fmt is not None
    source, _ = _last_year_workbook(tmp_path, fmt.id, 2023)
    out = last_year_template(tmp_path / "new.xlsx", source)
    by_names = read_workbook(out)
    assert by_names.located_by == "names"
    assert all(by_names.raw[c] in ("", None) for c in fmt.cells)
    wb = openpyxl.load_workbook(out)
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    unnamed = tmp_path / "unnamed.xlsx"
    wb.save(unnamed)
    by_labels = read_workbook(unnamed)
    assert by_labels.located_by == "labels" and not [f for f in by_labels.findings if f.code == "cell-not-found"]
    assert all(by_labels.raw[c] in ("", None) for c in fmt.cells)


def test_template_from_on_the_command_line(tmp_path: Path) -> None:
    fmt = format_for_year(2024)
    assert fmt is not None
    source, _ = _last_year_workbook(tmp_path, fmt.id, 2023)
    out = tmp_path / "2024模板.xlsx"
    result = runner.invoke(app, ["template", "-o", str(out), "--from", str(source)])
    assert result.exit_code == 0, result.output
    assert "上年数据" in openpyxl.load_workbook(out).sheetnames
    again = runner.invoke(app, ["template", "-o", str(out), "--from", str(source)])
    assert again.exit_code == 2  # exists, no --force
    blank = write_template(tmp_path / "blank.xlsx", fmt.id)
    refused = runner.invoke(app, ["template", "-o", str(tmp_path / "x.xlsx"), "--from", str(blank)])
    assert refused.exit_code == 1 and "--year" in refused.output


def test_libreoffice_recalculates_the_live_cross_year_checks(tmp_path: Path, soffice) -> None:
    """An office types this year's figures; a real office suite shows ✓ where they follow from last year,
    ✗ exactly where one does not."""
    fmt = format_for_year(2024)
    assert fmt is not None
    source, last = _last_year_workbook(tmp_path, fmt.id, 2023)
    out = last_year_template(tmp_path / "new.xlsx", source)
    this = balanced_successor(last, fmt.id, fmt.id, 2024, random.Random(8))  # type: ignore[arg-type]
    wb = openpyxl.load_workbook(out)
    names = defined_cells(wb)
    for cid, value in this.items():
        sheet, ref = names[name_for(cid)]
        wb[sheet][ref] = value + (1 if cid == "s3.carried_in.legal_service" else 0)
    wb.save(out)  # openpyxl drops the cached results: only a recalculation can show the marks
    (ods,) = soffice([out], "ods", tmp_path / "lo", recalc=True)
    book = CalamineWorkbook.from_path(str(ods))
    rules = tuple(r.rule for r in fmt.cross_year)
    layout = last_year_layout(fmt.id, fmt.id, rules)
    marks: dict[tuple[str, str, str], object] = {}
    for sheet in layout.sheets:
        grid = book.get_sheet_by_name(sheet.name).to_python(skip_empty_area=False)
        for check in sheet.cross_checks:
            marks[(sheet.key, check.show, check.rule.rule)] = grid[check.row][check.col]  # type: ignore[index]
    words = fmt.words
    for (sheet_key, show, rule), mark in marks.items():
        if show == "check":
            assert mark == (words.check_fail if rule == "X1[legal_service]" else words.check_ok), (sheet_key, rule)
    assert marks[("last_year", "expected", "X1[legal_service]")] == last["s3.carried_out.legal_service"]
    assert marks[("last_year", "current", "X1[legal_service]")] == this["s3.carried_in.legal_service"] + 1
    x2 = fmt.cross_year[-1]
    assert marks[("last_year", "expected", x2.rule)] == this[x2.anchor.cell]


def test_real_reports_of_consecutive_years_are_not_taken_for_copies() -> None:
    """Precision on real text: 平潭综合实验区 2019–2025 (tests/data/narrative_corpus.json, as printed) wrote
    each year's 一 and 五 anew; none of the six year pairs, nor any two offices of the corpus, comes near
    the format data's threshold (the highest similarity is 0.39 against 0.9)."""
    corpus = json.loads((Path(__file__).parent / "data" / "narrative_corpus.json").read_text("utf-8"))["reports"]
    by_office: dict[str, list[dict]] = {}
    for rep in corpus:
        by_office.setdefault(rep["office"], []).append(rep)
    pairs = [(a, b) for reps in by_office.values() for a, b in zip(sorted(reps, key=lambda r: r["year"]),
                                                                    sorted(reps, key=lambda r: r["year"])[1:])]
    assert len(pairs) == 6
    highest = 0.0
    for last, this in pairs:
        rule = get_format(this["format"]).copied_text
        for name in rule.across_years:
            a, b = (crossyear.normalise_text(r["texts"].get(name)) for r in (last, this))
            assert len(b) >= rule.min_chars  # the real texts are long enough to be compared
            highest = max(highest, crossyear.similarity(a, b))
    offices = [max(reps, key=lambda r: r["year"]) for reps in by_office.values()]
    for i, one in enumerate(offices):
        for other in offices[i + 1:]:
            rule = get_format(one["format"]).copied_text
            for name in rule.across_offices:
                a, b = (crossyear.normalise_text(r["texts"].get(name)) for r in (one, other))
                highest = max(highest, crossyear.similarity(a, b))
    assert highest < 0.5 < get_format("2021").copied_text.ratio
