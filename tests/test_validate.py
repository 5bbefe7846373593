"""Validation end to end on real files: samples, hand-made cases and hypothesis properties."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.layout import layout_for
from disclosure_xlsx.pipeline import WorkbookResult, validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES, batch_of

MANIFEST = json.loads((SAMPLES / "manifest.json").read_text("utf-8"))
# Each example of a file property is a batch of up to six workbooks, validated together as a county's folder
# is (one pool, one Pandera call per format): ~20 workbooks per property, at a fifth of the cost one by one.
BATCH_SETTINGS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cover(format_id: str) -> dict[str, object]:
    fmt = get_format(format_id)
    return {"meta_office": "测试镇人民政府", "meta_year": fmt.first_year}


def _check(folder: Path, format_id: str, values: dict, name: str = "report.xlsx") -> WorkbookResult:
    path = write_template(folder / name, format_id, values={**_cover(format_id), **values})
    (result,) = validate_paths([path], workers=1).workbooks
    return result


def _check_batch(folder: Path, cases: list[tuple[str, dict]]) -> list[WorkbookResult]:
    """Each (format, values) written as its own office's workbook, all validated in one batch."""
    paths = [write_template(folder / f"{i}.xlsx", format_id, values={
        **_cover(format_id), "meta_office": f"测试{i}镇人民政府", **values}) for i, (format_id, values) in enumerate(cases)]
    results = {w.file: w for w in validate_paths([folder]).workbooks}
    return [results[str(p)] for p in paths]


def _errors(result: WorkbookResult) -> list:
    return [f for f in result.findings if f.severity == "error"]


@pytest.mark.parametrize("entry", MANIFEST, ids=lambda e: e["file"])
def test_samples_fail_exactly_as_built(entry: dict) -> None:
    (result,) = validate_paths([SAMPLES / entry["file"]], workers=1).workbooks
    errors = _errors(result)
    if not entry["errors"]:
        assert errors == [] and result.status == "ok"
        return
    (expected,) = entry["errors"]
    assert errors and {f.rule.split("[")[0] for f in errors} == {expected["identity"]}
    assert all(f.code == "identity-mismatch" for f in errors)
    assert expected["anchor"] in {f.cells[0].id for f in errors}


def test_the_seed_passes_and_reads_its_procurement_amount() -> None:
    entry = next(e for e in MANIFEST if e["office"] == "宁海县力洋镇人民政府")
    (result,) = validate_paths([SAMPLES / entry["file"]], workers=1).workbooks
    assert _errors(result) == []
    assert result.report.values["s2.procurement.amount"] == 1207.5  # 万元
    assert result.report.format_id == "2019" and result.report.year == 2020
    cleaned = {c.id: c for c in result.cleaning}
    assert cleaned["s2.procurement.amount"].raw == "1207.5万元" and cleaned["s2.procurement.amount"].value == 1207.5
    assert cleaned["s3.new.commercial"].raw == "0\u00a0" and cleaned["s3.new.commercial"].rule == "whitespace+text-to-number"


def test_a_blank_total_is_warned_and_still_fails_its_identity(tmp_path: Path) -> None:
    """Spec §11.2 E9: 总计 left blank beside filled applicant columns."""
    values = {**balanced_report("2019", random.Random(1), zero_share=0.0), "s3.granted.total": None}
    result = _check(tmp_path, "2019", values)
    blank = [f for f in result.findings if f.code == "blank-cell"]
    assert [f.cells[0].id for f in blank] == ["s3.granted.total"]
    (error,) = _errors(result)
    assert (error.rule, error.cells[0].id, error.actual) == ("I2[granted]", "s3.granted.total", 0)
    assert "空白（按 0 计）" in error.message()


def test_granted_total_off_by_one_reports_I2_not_I3_total(tmp_path: Path) -> None:
    """Spec §7.1 I4: when I2 fails, I1/I3 on the total column are not reported."""
    values = balanced_report("2021", random.Random(2))
    values["s3.granted.total"] += 1
    assert [f.rule for f in _errors(_check(tmp_path, "2021", values))] == ["I2[granted]"]


def test_an_unreadable_value_is_one_error_not_a_cascade(tmp_path: Path) -> None:
    values = {**balanced_report("2021", random.Random(3)), "s3.new.natural_person": "四件"}
    errors = _errors(_check(tmp_path, "2021", values))
    assert [(f.code, f.cells[0].id) for f in errors] == [("value-unparseable", "s3.new.natural_person")]
    assert "四件" in errors[0].message()


def test_a_negative_count_is_an_error(tmp_path: Path) -> None:
    values = balanced_report("2019", random.Random(4))
    values["s4.review.upheld"] = -1  # the total follows, so only the sign is wrong
    values["s4.review.total"] = sum(values[f"s4.review.{o}"] for o in ("upheld", "corrected", "other", "pending"))
    errors = _errors(_check(tmp_path, "2019", values))
    assert [(f.code, f.cells[0].id) for f in errors] == [("count-negative", "s4.review.upheld")]


def test_plausibility_is_a_warning(tmp_path: Path) -> None:
    values = {**balanced_report("2021", random.Random(5)), "s2.regulations.in_force": 3}
    result = _check(tmp_path, "2021", values)
    assert result.status == "warnings"
    (warning,) = [f for f in result.findings if f.code == "implausible-value"]
    assert warning.rule == "P-2021-4" and warning.cells[0].id == "s2.regulations.issued"
    assert "规章" in warning.message()


def test_format_not_fitting_the_year_is_a_warning(tmp_path: Path) -> None:
    values = {**balanced_report("2019", random.Random(6)), "meta_year": 2023}
    result = _check(tmp_path, "2019", values)
    assert [f.code for f in result.findings] == ["format-year-mismatch"]
    assert result.status == "warnings"


def test_missing_cover_fields_are_warnings(tmp_path: Path) -> None:
    path = write_template(tmp_path / "x.xlsx", "2021", values=balanced_report("2021", random.Random(7)))
    (result,) = validate_paths([path], workers=1).workbooks
    assert sorted(f.code for f in result.findings) == ["office-missing", "year-missing"]


def test_a_broken_file_does_not_stop_the_batch(tmp_path: Path) -> None:
    (tmp_path / "坏文件.xlsx").write_bytes(b"not a workbook")
    (tmp_path / "~$锁定.xlsx").write_bytes(b"lock")
    (tmp_path / ".hidden.xlsx").write_bytes(b"hidden")
    write_template(tmp_path / "好文件.xlsx", "2021", values={**_cover("2021"), **balanced_report("2021", random.Random(8))})
    result = validate_paths([tmp_path], workers=1)
    assert [(Path(w.file).name, w.status) for w in result.workbooks] == [("坏文件.xlsx", "unreadable"), ("好文件.xlsx", "ok")]
    assert result.has_errors


@BATCH_SETTINGS
@given(cases=st.lists(st.tuples(st.sampled_from(list(all_formats())), st.integers(0, 10**6)), min_size=1, max_size=6))
def test_a_balanced_report_has_no_finding(cases: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        results = _check_batch(Path(folder), [(f, balanced_report(f, random.Random(seed))) for f, seed in cases])
    for result in results:
        assert result.findings == [] and result.status == "ok", [f.message() for f in result.findings]


@st.composite
def _perturbed(draw: st.DrawFn) -> tuple[str, dict, str]:
    format_id = draw(st.sampled_from(list(all_formats())))
    fmt = get_format(format_id)
    values = balanced_report(format_id, random.Random(draw(st.integers(0, 10**6))))
    identity = draw(st.sampled_from(fmt.identities))
    cell = draw(st.sampled_from(identity.cells))
    values[cell] += draw(st.integers(-30, 30).filter(bool))
    return format_id, values, cell


@BATCH_SETTINGS
@given(cases=st.lists(_perturbed(), min_size=1, max_size=6))
def test_changing_one_identity_cell_is_caught_at_that_cell(cases: list[tuple[str, dict, str]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        results = _check_batch(Path(folder), [(format_id, values) for format_id, values, _ in cases])
    for (format_id, _, cell), result in zip(cases, results, strict=True):
        sheet, slot = layout_for(format_id).slot(cell)
        located = {(c.sheet, c.ref) for f in _errors(result) for c in f.cells}
        assert (sheet.name, layout_for(format_id).ref(cell).split("!")[1]) in located, cell


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # each: 3–5 files, twice
@given(seeds=st.lists(st.integers(0, 10**6), min_size=3, max_size=5, unique=True), order=st.randoms())
def test_findings_do_not_depend_on_the_order_of_files(seeds: list[int], order: random.Random) -> None:
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for i, seed in enumerate(seeds):
            format_id = list(all_formats())[i % 2]
            values = balanced_report(format_id, random.Random(seed))
            if i % 3 == 0:
                values[get_format(format_id).identities[seed % len(get_format(format_id).identities)].anchor] += 1
            files.append(write_template(Path(folder) / f"{i}.xlsx", format_id, values={**_cover(format_id), **values}))
        shuffled = files[:]
        order.shuffle(shuffled)
        first = {w.file: w.to_dict() for w in validate_paths(files, workers=1).workbooks}
        second = {w.file: w.to_dict() for w in validate_paths(shuffled, workers=1).workbooks}
    assert first == second



def test_report_json_writes_whole_numbers_as_integers(tmp_path: Path) -> None:
    """An amount the clerk compares is 125000 in report.json, never 125000.0 (calamine reads every number
    as a float; money cells keep floats)."""
    fmt = get_format("2021")
    values = {**balanced_report("2021", random.Random(3)), "s2.fees.amount": 125000,
              fmt.field("office").name: "某县某镇人民政府", fmt.field("year").name: 2024}
    batch = validate_paths([write_template(tmp_path / "镇.xlsx", "2021", values=values)], workers=1)
    text = json.dumps(batch.to_dict(), ensure_ascii=False)
    finding = next(f for f in json.loads(text)["workbooks"][0]["findings"] if f["code"] == "money-magnitude")
    assert type(finding["actual"]) is int and finding["actual"] == 125000 and "125000.0" not in text


@settings(max_examples=20, deadline=None)
@given(format_id=st.sampled_from(list(all_formats())), seeds=st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
       changes=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 10**4), st.integers(-5, 5).filter(bool)),
                        max_size=6))
def test_the_batch_check_finds_exactly_what_each_report_breaks(format_id: str, seeds: list[int],
                                                               changes: list[tuple[int, int, int]]) -> None:
    """In memory, many reports per batch: the vectorised checks (one range check, one identity check as a
    matrix product) give each report the negative cells and failing identities its own values have, as
    the format's identities evaluated one by one on that report say (less those deferred to a failing
    family, spec §7.1 I4)."""
    fmt = get_format(format_id)
    cells = list(fmt.cells)
    offices = [dict(balanced_report(format_id, random.Random(s))) for s in seeds]
    for office, cell, delta in changes:
        values = offices[office % len(offices)]
        cid = cells[cell % len(cells)]
        if fmt.cells[cid].type.integer:
            values[cid] = (values.get(cid) or 0) + delta
    batch = batch_of(format_id, [(v, f"第{i}镇") for i, v in enumerate(offices)], fmt.first_year)
    for values, workbook in zip(offices, batch.workbooks, strict=True):
        row = {c: values.get(c) or 0 for c in cells}
        failing = {i.rule: i for i in fmt.identities if not i.holds(row)}
        families = {i.family for i in failing.values()}
        expected = {r for r, i in failing.items() if i.defer_to not in families}
        assert {f.rule for f in workbook.findings if f.code == "identity-mismatch"} == expected
        assert {f.cells[0].id for f in workbook.findings if f.code == "count-negative"} == {
            c for c in cells if fmt.cells[c].type.min is not None and row[c] < fmt.cells[c].type.min}


def test_the_batch_holds_a_few_kib_a_workbook(tmp_path: Path) -> None:
    """What the parent keeps of each workbook, read through the pool: its values packed (`CellValues`),
    its findings and cleaning records, the names every report shares kept once, and no second copy of
    the values in validation's frames. Its zeros are written '0\u00a0', as in a table pasted from a web
    page (the seed has 131 such cells): the same cleaning record in every workbook (80 a workbook here),
    held once. Measured here: 15.0 KiB a workbook when each record was held, 2.4 KiB now (12.3 KiB, then
    1.7, for the same workbooks without those records, before and after the values were packed). A
    country's 200,000 workbooks are held at this rate."""
    import gc
    import tracemalloc

    per_format = 50
    for format_id in all_formats():
        office = get_format(format_id).field("office").name
        for i in range(per_format):
            values = {**balanced_report(format_id, random.Random(i)), **_cover(format_id),
                      office: f"测试{i}镇人民政府"}
            values.update({c: "0\u00a0" for c, cell in get_format(format_id).cells.items()
                           if cell.type.integer and values.get(c) == 0})
            write_template(tmp_path / f"{format_id}-{i:02}.xlsx", format_id, values=values)
    for _ in range(2):  # what a process builds once: the schemas, and the narrative rules from its second run
        validate_paths([tmp_path], workers=2)
    gc.collect()
    tracemalloc.start()
    try:
        batch = validate_paths([tmp_path], workers=2)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    workbooks = per_format * len(all_formats())
    assert [w.status for w in batch.workbooks] == ["ok"] * workbooks
    assert min(len(w.cleaning) for w in batch.workbooks) >= 20
    assert held / workbooks < 3 * 1024, f"{held / workbooks:.0f} bytes a workbook"


def test_a_batch_larger_than_one_call_gets_the_findings_of_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A country's batch is checked `ROWS_PER_CALL` reports of a format at a time: each report gets the
    findings it gets in one call, whichever call holds it, with both formats mixed in the batch."""
    from disclosure_xlsx import validate

    reports = []
    for format_id in all_formats():
        fmt = get_format(format_id)
        offices = []
        for seed in range(5):
            values = dict(balanced_report(format_id, random.Random(seed)))
            if seed % 2:  # every other office breaks an identity, a different cell each time
                cid = [c for i in fmt.identities for c in i.lhs][seed]
                values[cid] = (values.get(cid) or 0) + seed
            offices.append((values, f"第{seed}镇"))
        reports += [w.report for w in batch_of(format_id, offices, fmt.first_year).workbooks]
    reports = reports[::2] + reports[1::2]  # the formats interleaved
    whole = validate.validate_reports(reports).findings
    calls = []
    real = validate.checked_frame
    monkeypatch.setattr(validate, "checked_frame", lambda batch, fmt: calls.append(len(batch)) or real(batch, fmt))
    monkeypatch.setattr(validate, "ROWS_PER_CALL", 2)
    parts = validate.validate_reports(reports).findings
    assert sorted(calls) == [1, 1, 2, 2, 2, 2]  # 5 reports of each format: 2 + 2 + 1
    assert [[(f.code, f.rule, f.cells) for f in found] for found in parts] == \
        [[(f.code, f.rule, f.cells) for f in found] for found in whole]
    assert sum(f.code == "identity-mismatch" for found in whole for f in found) >= 4


@pytest.mark.parametrize("damage", ["missing", "reordered", "count-as-float", "money-missing"])
def test_the_schema_refuses_a_frame_not_built_as_the_format_says(format_id: str, damage: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The schema's first check guards the frame the batch is checked on: the format's cells, in order,
    counts as int64 and money as float64 with nothing missing. A frame built wrongly is a failure of that
    check (and an error of the tool, never a finding about an office)."""
    import numpy as np

    from disclosure_xlsx._pandera import SchemaErrors
    from disclosure_xlsx import validate
    from disclosure_xlsx.validate import COLUMNS, checked_frame, schema_for

    fmt = get_format(format_id)
    batch = batch_of(format_id, [(balanced_report(format_id, random.Random(1)), "测试镇人民政府")], fmt.first_year)
    frame = checked_frame([batch.workbooks[0].report], fmt)
    schema_for(fmt).validate(frame, lazy=True)  # as built: passes
    count = next(c for c, cell in fmt.cells.items() if cell.type.integer)
    money = next(c for c, cell in fmt.cells.items() if not cell.type.integer)
    broken = {"missing": lambda f: f.drop(columns=[count]),
              "reordered": lambda f: f[[*f.columns[1:], f.columns[0]]],
              "count-as-float": lambda f: f.astype({count: "float64"}),
              "money-missing": lambda f: f.assign(**{money: np.nan})}[damage](frame.copy())
    with pytest.raises(SchemaErrors) as failed:
        schema_for(fmt).validate(broken, lazy=True)
    assert COLUMNS in set(failed.value.failure_cases["check"])
    monkeypatch.setattr(validate, "checked_frame", lambda batch, fmt: broken)  # the batch given that frame
    with pytest.raises(RuntimeError, match="unexpected schema failure"):
        validate.validate_reports([batch.workbooks[0].report])
