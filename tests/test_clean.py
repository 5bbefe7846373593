"""Cleaning, table-driven: every raw form of spec §9–§11 and of the transcribed examples."""

from __future__ import annotations

import datetime as dt
import json
import re
from array import array

import pytest

from disclosure_xlsx.clean import clean_cover_text, clean_value, clean_year
from disclosure_xlsx.formats import get_format
from disclosure_xlsx.locate import fold, matches

from .conftest import SHARED

COUNT = get_format("2019").cells["s3.new.commercial"]
SIGNED = get_format("2019").cells["s2.licensing.delta_items"]
PROCUREMENT = get_format("2019").cells["s2.procurement.amount"]  # money, no unit printed
FEES = get_format("2021").cells["s2.fees.amount"]  # money, 万元 printed in the header

# raw value, cell, expected value, expected rules, expected problem
CASES = [
    ("0\u00a0", COUNT, 0, "whitespace+text-to-number", None),  # seed §10.8
    ("\u00a00", COUNT, 0, "whitespace+text-to-number", None),
    ("0 ", COUNT, 0, "whitespace+text-to-number", None),  # examples: trailing space
    ("           0", COUNT, 0, "whitespace+text-to-number", None),  # examples: runs of spaces
    ("\u30004\u3000", COUNT, 4, "whitespace+text-to-number", None),  # ideographic space
    ("４５", COUNT, 45, "fullwidth+text-to-number", None),  # full-width digits (§9)
    ("1,234", COUNT, 1234, "thousands-separator+text-to-number", None),
    ("１，２３４", COUNT, 1234, "fullwidth+thousands-separator+text-to-number", None),
    ("4.0", COUNT, 4, "text-to-number+decimal-zero", None),  # ruling 6
    (4.0, COUNT, 4, "", None),  # calamine returns every number as float
    (4, COUNT, 4, "", None),  # .xls integers
    ("+3", COUNT, 3, "plus-sign+text-to-number", None),
    ("12件", COUNT, 12, "unit-count+text-to-number", None),
    ("-417", SIGNED, -417, "text-to-number", None),  # §11.2 E12
    ("－417", SIGNED, -417, "fullwidth+text-to-number", None),
    (-2.0, SIGNED, -2, "", None),
    ("1207.5万元", PROCUREMENT, 1207.5, "unit-wanyuan+text-to-number", None),  # seed §10.7
    ("251000元", PROCUREMENT, 25.1, "unit-yuan+text-to-number", None),  # §11.2 E8
    ("79000.1元", PROCUREMENT, 7.90001, "unit-yuan+text-to-number", None),  # examples
    ("1.2亿元", PROCUREMENT, 12000.0, "unit-yiyuan+text-to-number", None),
    (1207.5, PROCUREMENT, 1207.5, "", "money-unit-assumed"),  # ruling 5: bare, unit not printed
    (1207.0, PROCUREMENT, 1207.0, "", "money-unit-assumed"),  # the same for a whole number (the fast path)
    (76.0, FEES, 76.0, "", None),  # a whole number under a header that prints 万元
    ("75.9260", FEES, 75.926, "text-to-number", None),  # 万元 printed in the 2021 header
    (75.926, FEES, 75.926, "", None),
    ("", COUNT, None, "", "blank-cell"),  # ruling 2: never silently 0
    ("   ", COUNT, None, "whitespace", "blank-cell"),
    ("/", COUNT, None, "placeholder", "blank-cell"),  # §11.2 E10
    ("-", COUNT, None, "placeholder", "blank-cell"),
    ("—", COUNT, None, "placeholder", "blank-cell"),
    ("——", COUNT, None, "placeholder", "blank-cell"),
    ("无", COUNT, None, "placeholder", "blank-cell"),
    ("4.5", COUNT, None, "text-to-number", "number-not-whole"),  # ruling 6
    (4.5, COUNT, None, "", "number-not-whole"),
    ("abc", COUNT, None, "", "value-unparseable"),
    ("nan", COUNT, None, "", "value-unparseable"),
    ("1e3", COUNT, None, "", "value-unparseable"),
    ("#DIV/0!", COUNT, None, "", "value-unparseable"),
    (True, COUNT, None, "", "value-unparseable"),
    (dt.date(2020, 1, 2), COUNT, None, "", "value-unparseable"),
    (1e300, COUNT, None, "", "number-too-large"),
    ("12元", COUNT, None, "", "value-unparseable"),  # a money unit in a count cell
]


@pytest.mark.parametrize("raw, cell, value, rules, problem", CASES, ids=[repr(c[0]) for c in CASES])
def test_clean_value(raw, cell, value, rules, problem) -> None:
    parsed = clean_value(raw, cell, unit_stated=False)
    assert (parsed.value, "+".join(parsed.rules), parsed.problem) == (value, rules, problem)
    if value is not None and cell.type.integer:
        assert type(parsed.value) is int


def test_the_template_states_the_money_unit() -> None:
    assert clean_value(1207.5, PROCUREMENT, unit_stated=True).problem is None


@pytest.mark.parametrize("raw, year", [(2020.0, 2020), ("2020", 2020), ("2020年", 2020), ("２０２０年度", 2020),
                                       (" 2024 ", 2024), ("二〇二〇", None), ("", None), (1850.0, None), (True, None)])
def test_clean_year(raw, year) -> None:
    assert clean_year(raw)[0] == year


def test_cover_text_keeps_the_offices_characters() -> None:
    assert clean_cover_text("示例镇（一）\u00a0") == ("示例镇（一）", ("whitespace",))
    assert clean_cover_text(315602.0) == ("315602", ("number-to-text",))
    assert clean_cover_text("") == (None, ())


def _example_cases() -> list[tuple[str, str, str, object]]:
    """(example, format, "section / row | column", expected) for every raw cell string transcribed."""
    out = []
    for path in sorted((SHARED / "examples").glob("*.json")):
        data = json.loads(path.read_text("utf-8"))
        for key, raw in data["raw"].items():
            left, column = key.split(" | ")
            section, *row = left.split(" / ")
            expected = data["tables"][section][" / ".join(row)].get(column)
            if expected is None:  # the transcription spells the header differently; find it by label
                expected = next(v for k, v in data["tables"][section][" / ".join(row)].items()
                                if matches(k, column) or matches(column, k))
            out.append((path.stem, data["format"], key, raw, expected))
    return out


@pytest.mark.skipif(not (SHARED / "examples").exists(), reason="../shared/examples is not beside this checkout")
@pytest.mark.parametrize("example, format_id, key, raw, expected", _example_cases() if (SHARED / "examples").exists()
                         else [], ids=lambda v: v if isinstance(v, str) and " | " in v else None)
def test_raw_strings_of_published_reports(example, format_id, key, raw, expected) -> None:
    fmt = get_format(format_id)
    left, column = key.split(" | ")
    heading, *row = left.split(" / ")
    section = next(s for s in fmt.sections if fold(s.heading) == fold(heading))
    cell = next(c for c in fmt.section_cells(section.key)
                if matches(row[-1], c.row_path[-1], section.node("rows", c.row).aliases)
                and matches(column, c.col_path[-1], section.node("columns", c.col.split(".")[-1]).aliases
                            if section.layout == "blocks" else ()))
    parsed = clean_value(raw, cell, unit_stated=False)
    if re.search(r"(?<!万)元$", raw.strip()):
        expected = expected / 10000  # transcribed in yuan; stored in 万元 (ruling 5)
    assert parsed.value == pytest.approx(expected)
    assert parsed.problem in (None, "money-unit-assumed")
    assert parsed.rules  # each of these strings needed interpreting, and says how


# ----------------------------------------------------------------------------------------------
# A report's values as they cross the pool: packed, and read back as the dict they were


def _cleaned_values(format_id: str, data) -> dict:
    """Values of every kind a cleaned report holds: blanks, whole counts up to MAX_ABS, money with decimals."""
    from hypothesis import strategies as st

    from disclosure_xlsx.clean import MAX_ABS

    fmt = get_format(format_id)
    # how large a report's numbers get: a small office's fit a byte, the seed township's 16 bits, a total more
    bound = data.draw(st.sampled_from([2**7, 2**15, 2**31, MAX_ABS]), label="bound")
    decimals = data.draw(st.booleans(), label="decimals")  # most reports have no decimal amount at all
    values: dict = {}
    for cid, cell in fmt.cells.items():
        low = max(cell.type.min if cell.type.min is not None else -MAX_ABS, -bound)
        if cell.type.integer:
            values[cid] = data.draw(st.none() | st.integers(low, bound), label=cid)
        else:
            amounts = st.integers(0, bound) | st.floats(0, 1e9, allow_nan=False) if decimals else st.integers(0, bound)
            values[cid] = data.draw(st.none() | amounts, label=cid)
    return values


@pytest.mark.parametrize("format_id", ["2019", "2021"])
def test_packed_values_read_as_the_dict_they_were_made_from(format_id: str) -> None:
    import pickle

    import pandas as pd
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from disclosure_xlsx.clean import CellValues, CleanReport
    from disclosure_xlsx.layout import standard_where
    from disclosure_xlsx.validate import report_frame

    fmt = get_format(format_id)

    @settings(max_examples=15, deadline=None)
    @given(data=st.data())
    def check(data) -> None:
        values = _cleaned_values(format_id, data)
        report = CleanReport("a.xlsx", fmt, "names", "某镇", None, 2024, values, frozenset(), standard_where(format_id),
                             {}, [], [])
        back = pickle.loads(pickle.dumps(report))  # as a worker hands it to the parent
        assert isinstance(back.values, CellValues)
        whole = [v if type(v) is int else 0 for v in values.values()]  # in the narrowest array that holds them
        widest = max(max(whole) + 1, -min(whole))
        assert back.values.numbers.itemsize == next((n for n in (1, 2, 4) if widest <= 2 ** (8 * n - 1)), 8)
        assert back.values.float64_bytes() == array("d", [float(v or 0) for v in values.values()]).tobytes()
        assert list(back.values) == list(values) and len(back.values) == len(values)
        assert [(v, type(v)) for v in back.values.values()] == [(v, type(v)) for v in values.values()]
        assert [(v, type(v)) for v in back.values.row()] == [(v, type(v)) for v in values.values()]
        assert back.values == values and dict(back.values) == values
        assert back.values.get("no.such.cell") is None and "no.such.cell" not in back.values
        # the frame of packed reports is the frame of the dicts, value for value and type for type
        pd.testing.assert_frame_equal(report_frame([back, back], fmt), report_frame([report, report], fmt))

    check()


def test_a_value_packing_cannot_hold_exactly_stays_in_a_dict() -> None:
    import pickle

    from disclosure_xlsx.clean import CellValues, CleanReport
    from disclosure_xlsx.layout import standard_where

    fmt = get_format("2021")
    values: dict = dict.fromkeys(fmt.cells, 0)
    values["s3.new.total"] = 2**53 + 1  # beyond what a float64 holds exactly
    assert CellValues.packed(fmt, values) is None
    report = CleanReport("a.xlsx", fmt, "names", None, None, 2024, values, frozenset(), standard_where("2021"), {}, [], [])
    back = pickle.loads(pickle.dumps(report))
    assert type(back.values) is dict and back.values == values


def test_cleaning_records_from_the_workers_share_their_few_strings() -> None:
    """A batch's parent holds every workbook's cleaning records; their cell ids, sheets, references and
    rules are the same few strings in every workbook and are kept once."""
    import pickle

    from disclosure_xlsx.catalog import Cleaning

    def record() -> Cleaning:  # built afresh each time, as each worker does
        return Cleaning("".join(["s3.new.", "total"]), "".join(["三、", "依申请公开"]), "".join(["J", "6"]), "0\u00a0", 0,
                        "".join(["whitespace+", "text-to-number"]))

    first, second = (pickle.loads(pickle.dumps(record())) for _ in range(2))
    assert first == record() and second == record()
    assert first.id is second.id and first.sheet is second.sheet and first.ref is second.ref and first.rule is second.rule
    assert first is second  # the same cell written the same way in two workbooks: one record held


def test_a_received_record_is_shared_only_with_one_exactly_like_it() -> None:
    """Records are shared only where == is exact: a whole number is not its float or its bool, a raw
    text is not a raw number, and 0.0 is not -0.0 (those records are never shared)."""
    import pickle

    from disclosure_xlsx import catalog
    from disclosure_xlsx.catalog import Cleaning

    def received(raw: object, value: object, rule: str = "text-to-number") -> Cleaning:
        return pickle.loads(pickle.dumps(Cleaning("s3.new.total", "三、依申请公开", "J6", raw, value, rule)))

    assert received("1", 1) is received("1", 1)
    assert received("1", 1) is not received("1", 1, "whitespace+text-to-number")
    for raw, value in (("1", 1.0), ("1", True), (1, 1), (1.0, 1), ("-0", -0.0), ("0", 0.0)):
        a, b = received(raw, value), received(raw, value)
        assert a == b and a is not b and (type(a.raw), type(a.value)) == (type(raw), type(value))
    assert received("-0", -0.0).value.hex() == "-0x0.0p+0" and received("0", 0.0).value.hex() == "0x0.0p+0"
    # a process that received many distinct records forgets them, and keeps the next ones afresh
    kept, catalog._RECEIVED_KEPT = catalog._RECEIVED_KEPT, 3
    try:
        catalog._RECEIVED.clear()
        for n in range(4):
            received(str(n), n)
        assert len(catalog._RECEIVED) == 1 and received("3", 3) is received("3", 3)
    finally:
        catalog._RECEIVED_KEPT = kept
