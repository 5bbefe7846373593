"""The format data against the spec: counts, every label and kind of §6.1, identities, load-time checks."""

from __future__ import annotations

import copy
import re
import tomllib
from importlib import resources

import pytest

from disclosure_xlsx.formats import (
    FormatDataError,
    all_formats,
    build_formats,
    current_format,
    format_for_year,
    get_format,
    name_for,
)

from .conftest import DATA, SHARED

SPEC_COUNTS = {"2019": {"s2": 22, "s3": 161, "s4": 15}, "2021": {"s2": 10, "s3": 175, "s4": 15}}
# spec §7: I1 and I3 per column (7 each), I2 per section-三 row, I5 per review/litigation group
SPEC_IDENTITY_COUNTS = {"2019": {"I1": 7, "I2": 23, "I3": 7, "I5": 3}, "2021": {"I1": 7, "I2": 25, "I3": 7, "I5": 3}}


def spec_rows() -> list[dict[str, str]]:
    """The rows of the vendored spec table §6.1."""
    rows = []
    for line in (DATA / "spec-6.1-cells.md").read_text("utf-8").splitlines():
        if line.startswith("| `"):
            cid, section, row, col, unit, kind, formats = (c.strip() for c in line.strip().strip("|").split("|"))
            rows.append({"id": cid.strip("`"), "section": section, "row": row, "col": col, "unit": unit,
                         "kind": kind, "formats": formats})
    return rows


def spec_cells(format_id: str) -> dict[str, dict[str, object]]:
    """What §6.1 says about each printed cell of one format: label paths, kind and value type."""
    out = {}
    for row in spec_rows():
        formats = row["formats"]
        if formats.startswith("2019 (input)"):  # s3.other.*: input in 2019, derived in 2021
            formats = "2019"
        if format_id not in re.findall(r"\d{4}", formats):
            continue
        col = row["col"]
        if "(2019) /" in col:  # "处理决定数量 (2019) / 本年处理决定数量 (2021)"
            col = dict((y, label) for label, y in re.findall(r"(\S+) \((\d{4})\)", col))[format_id]
        row_path = () if row["row"] == "(single data row)" else tuple(row["row"].split(" → "))
        if " / " in row["section"]:  # section 二: the block caption leads the row path
            row_path = (row["section"].split(" / ")[1], *row_path)
        unit = row["unit"]
        vtype = "signed_count" if "signed" in unit else "money" if ("万元" in unit or "money" in unit) else "count"
        out[row["id"]] = {"row_path": row_path, "col_path": tuple(col.split(" → ")), "kind": row["kind"],
                          "type": vtype}
    return out


def test_spec_table_copy_is_verbatim() -> None:
    spec = SHARED / "spec" / "domain-spec.md"
    if not spec.exists():
        pytest.skip("../shared/spec is not beside this checkout; the vendored copy is used as is")
    lines = [line for line in spec.read_text("utf-8").splitlines() if line.startswith("| `")]
    ours = [line for line in (DATA / "spec-6.1-cells.md").read_text("utf-8").splitlines() if line.startswith("| `")]
    assert ours == lines[: len(ours)] and len(ours) == 226


def test_cell_counts_match_the_spec(format_id: str) -> None:
    fmt = get_format(format_id)
    counts = {s.key: len(fmt.section_cells(s.key)) for s in fmt.sections}
    assert counts == SPEC_COUNTS[format_id]
    assert len(fmt.cells) == sum(SPEC_COUNTS[format_id].values())


def test_every_cell_matches_spec_6_1(format_id: str) -> None:
    fmt = get_format(format_id)
    expected = spec_cells(format_id)
    assert set(fmt.cells) == set(expected)
    for cid, cell in fmt.cells.items():
        want = expected[cid]
        got = {"row_path": cell.row_path, "col_path": cell.col_path, "kind": cell.kind, "type": cell.type.key}
        assert got == want, cid


def test_2021_other_row_is_derived_from_its_three_sub_rows() -> None:
    derived = get_format("2021").derived
    assert set(derived) == {f"s3.other.{c}" for c in ("natural_person", "commercial", "research",
                                                       "social_welfare", "legal_service", "other_org", "total")}
    assert derived["s3.other.total"] == ("s3.other_no_correction.total", "s3.other_unpaid_fee.total",
                                         "s3.other_misc.total")
    assert not get_format("2019").derived


def test_identity_instances_match_spec_section_7(format_id: str) -> None:
    fmt = get_format(format_id)
    counts: dict[str, int] = {}
    for identity in fmt.identities:
        counts[identity.family] = counts.get(identity.family, 0) + 1
        assert set(identity.cells) <= set(fmt.cells)
        assert identity.anchor in identity.lhs + identity.rhs
    assert counts == SPEC_IDENTITY_COUNTS[format_id]
    by_rule = {i.rule: i for i in fmt.identities}
    assert by_rule["I1[natural_person]"].lhs == ("s3.new.natural_person", "s3.carried_in.natural_person")
    assert by_rule["I1[natural_person]"].rhs == ("s3.total.natural_person", "s3.carried_out.natural_person")
    assert len(by_rule["I2[granted]"].rhs) == 6  # six applicant columns, no 法人 subtotal
    # spec §7 says R_RESULTS has 18 (2019) / 20 (2021) leaf rows, but its own list — granted, partial,
    # 8 denied, 3 unable, 5 declined, other (2021: 3 other rows) — has 19 / 21, as R3 = 2 + 19 + 2 = 23
    # confirms. The spec miscounts; the rows are right.
    results = 19 if format_id == "2019" else 21
    assert len(by_rule["I3[total]"].rhs) == results
    assert by_rule["I5[suit_direct]"].rhs == tuple(f"s4.suit_direct.{o}" for o in ("upheld", "corrected", "other", "pending"))
    # I4: the total column's I1/I3 defer to I2, nothing else does
    assert {i.rule for i in fmt.identities if i.defer_to} == {"I1[total]", "I3[total]"}


def test_defined_names_are_one_to_one(format_id: str) -> None:
    fmt = get_format(format_id)
    names = fmt.names
    assert len(names) == len(fmt.cells) + len(fmt.cover) + len(fmt.narratives) + 2
    assert {name_for(cid) for cid in fmt.cells} <= set(names)
    assert len({n.lower() for n in names}) == len(names)  # Excel folds case
    assert name_for("s3.new.natural_person") == "s3_new_natural_person"
    assert {f.name for f in fmt.cover} == {"meta_office", "meta_credit_code", "meta_level", "meta_year", "meta_contact",
                                           "meta_phone", "meta_fax", "meta_email", "meta_address", "meta_postcode"}
    assert [n.name for n in fmt.narratives] == ["text_overview", "text_problems", "text_other"]


def test_plausibility_rules_hold_on_spec_examples() -> None:
    rules = {r.rule: r for r in get_format("2021").rules}
    ok = {"s2.regulations.issued": 0, "s2.regulations.repealed": 0, "s2.regulations.in_force": 0,
          "s2.normative_docs.issued": 5, "s2.normative_docs.repealed": 1, "s2.normative_docs.in_force": 25,
          "s2.fees.amount": 75.926}
    assert all(r.holds(ok) for r in rules.values() if set(r.involved) <= set(ok))  # the section-二 rules
    # spec §11.2 E11: 制发 5, 废止 12, 现行有效 8 is plausible for P-2021-3; 制发 5, 废止 0, 现行有效 3 is not
    assert rules["P-2021-3[normative_docs]"].holds({**ok, "s2.normative_docs.issued": 5,
                                                    "s2.normative_docs.repealed": 12, "s2.normative_docs.in_force": 8})
    assert not rules["P-2021-3[normative_docs]"].holds({**ok, "s2.normative_docs.repealed": 0,
                                                        "s2.normative_docs.in_force": 3})
    assert rules["P-2021-2"].holds({**ok, "s2.fees.amount": 1.23456})  # fen and finer are fine: no decimals rule
    assert "P-2021-2[decimals]" not in rules
    assert not rules["P-2021-4"].holds({**ok, "s2.regulations.in_force": 2})
    r2019 = {r.rule: r for r in get_format("2019").rules}
    seed_like = {"s2.other_services.prev_items": 60, "s2.other_services.delta_items": 10,
                 "s2.other_services.decisions": 6220, "s2.licensing.prev_items": 3, "s2.licensing.delta_items": -3,
                 "s2.licensing.decisions": 4, "s2.procurement.projects": 57, "s2.procurement.amount": 1207.5}
    assert r2019["P-2019-3[other_services]"].holds(seed_like)
    assert not r2019["P-2019-3[licensing]"].holds(seed_like)  # no items left, yet 4 decisions
    assert r2019["P-2019-4"].holds(seed_like)
    assert not r2019["P-2019-4"].holds({**seed_like, "s2.procurement.amount": 0})
    assert not r2019["P-2019-2[licensing]"].holds({**seed_like, "s2.licensing.delta_items": -4})


def test_years_choose_formats() -> None:
    assert current_format().id == "2021"
    assert format_for_year(2020).id == "2019"  # type: ignore[union-attr]
    assert format_for_year(2025).id == "2021"  # type: ignore[union-attr]
    assert format_for_year(2018) is None
    assert get_format("2019").covers_year(2019) and not get_format("2019").covers_year(2021)
    with pytest.raises(KeyError):
        get_format("2020")


def _data() -> dict:
    text = resources.files("disclosure_xlsx").joinpath("data/formats.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_the_data_file_builds() -> None:
    assert set(build_formats(_data())) == set(all_formats())


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["identities"][0]["lhs"].append("s3.nowhere.{c}"), "unknown cell"),
    (lambda d: d["identities"][1].update(anchor="s3.new.natural_person"), "anchor"),
    (lambda d: d["sections"][1]["rows"].append(dict(d["sections"][1]["rows"][0])), "duplicate"),
    (lambda d: d["sections"][2]["columns"][1].update(label="x", colour="red"), "unknown keys"),
    (lambda d: d["cover"][1].update(name="meta_office"), "defined name"),
    (lambda d: d["rules"][0].update(kind="between"), "unknown kind"),
    (lambda d: d["sections"][1]["rows"][3].update(parent="nowhere"), "unknown parent"),
    (lambda d: d["formats"]["2019"].update(current=True), "current"),
])
def test_inconsistent_data_fails_at_load_time(damage, message) -> None:
    data = copy.deepcopy(_data())
    damage(data)
    with pytest.raises(FormatDataError, match=message):
        build_formats(data)
