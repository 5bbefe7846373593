"""Check all cleaned reports of a batch at once with Pandera, and turn its failures into findings.

The batch is stacked into one frame per format (one row per workbook, one column per cell id); the
schema is built from the format data: one check that the columns are the format's cells with their types,
one range check (every cell with a minimum at or above it: counts ≥ 0), one identity check (every
identity's Σlhs − Σrhs is 0, computed for all rows and all identities as one matrix product) and one
dataframe-level check per plausibility rule. It checks the frame as the identities see it, blanks (already
reported) counted as 0. It is validated lazily in one call per format (per `ROWS_PER_CALL` workbooks
of a format, in a larger batch): Pandera's cost is per call, per check and per declared column, not per
row, so one call for 2,000 workbooks costs about what one call for a single workbook does, and 200
types, 200 ranges and 40 identities are three vectorised checks rather than 440. Pandera names the rows that fail each check; which cells and which identities of such a row
fail is then read from that report's own values (`_findings`), as a level-dependent rule is.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, partial
from typing import Any

import numpy as np
import pandas as pd
from xlsxwriter.utility import xl_cell_to_rowcol, xl_rowcol_to_cell

from ._pandera import SchemaErrors, pa
from .catalog import LANGS, Finding, bilingual, number_text, phrase, text
from .clean import MAX_ABS, CellValues, CleanReport, cell_where
from .formats import ANY_LEVEL, Format, FormatDataError, Identity, Rule, notation
from .levels import body_level

__all__ = ["ROWS_PER_CALL", "Validation", "checked_frame", "report_frame", "schema_for", "validate_reports"]

NEGATIVE = "count-negative"
IDENTITIES = "identities"  # the name of the check that every identity holds
COLUMNS = "columns"  # the name of the check that the frame has the format's cells with their types


def report_frame(reports: Sequence[CleanReport], fmt: Format) -> pd.DataFrame:
    """One row per report, one typed column per cell id (Int64 counts, Float64 money, <NA> = missing): the
    values the roll-up adds up."""
    numbers, blank = _numbers(reports, fmt), _blanks(reports, fmt)
    columns = {cid: (pd.arrays.IntegerArray(numbers[:, k].astype("int64"), blank[:, k].copy()) if cell.type.integer
                     else pd.arrays.FloatingArray(numbers[:, k].copy(), blank[:, k].copy()))
               for k, (cid, cell) in enumerate(fmt.cells.items())}
    return pd.DataFrame(columns, index=pd.RangeIndex(len(reports)))


def checked_frame(reports: Sequence[CleanReport], fmt: Format) -> pd.DataFrame:
    """The reports as the identities see them: one row per report, blanks (already reported, ruling 2)
    counted as 0, so that every column is a plain int64 (counts) or float64 (money). Cut from one float64
    block into one block per type, not converted from `report_frame`: one workbook's frame costs ~0.5 ms
    instead of ~8 (its 200 nullable columns), and the batch is not held twice while it is checked."""
    cells = list(fmt.cells)
    numbers = _numbers(reports, fmt)
    integer = np.array([cell.type.integer for cell in fmt.cells.values()], dtype=bool)
    blocks = [pd.DataFrame(numbers[:, chosen].astype(dtype), columns=list(np.array(cells)[chosen]))
              for chosen, dtype in ((integer, "int64"), (~integer, "float64")) if chosen.any()]
    return pd.concat(blocks, axis=1)[cells]


def _packed(reports: Sequence[CleanReport], fmt: Format) -> list[CellValues] | None:
    """The reports' values, when all came packed from the workers (`CellValues`, as in a batch)."""
    packed = [r.values for r in reports if isinstance(r.values, CellValues) and r.values.format is fmt]
    return packed if packed and len(packed) == len(reports) else None


def _numbers(reports: Sequence[CleanReport], fmt: Format) -> np.ndarray:
    """Every report's values as one float64 block, a row per report, 0 for a blank: packed values are
    stacked as they are (`CellValues.float64_bytes`); others are read value by value."""
    packed = _packed(reports, fmt)
    if packed is not None:
        numbers = np.frombuffer(b"".join(v.float64_bytes() for v in packed), dtype="float64")
    else:
        numbers = np.array([float(r.values[cid] or 0) for r in reports for cid in fmt.cells], dtype="float64")
    return numbers.reshape(len(reports), len(fmt.cells))


def _blanks(reports: Sequence[CleanReport], fmt: Format) -> np.ndarray:
    """Which values of each report are blank, in the shape of `_numbers`."""
    packed = _packed(reports, fmt)
    if packed is not None:
        kinds = np.frombuffer(b"".join(v.kinds for v in packed), dtype="uint8")
        return (kinds == CellValues.BLANK).reshape(len(reports), len(fmt.cells))
    return np.array([r.values[cid] is None for r in reports for cid in fmt.cells], dtype=bool
                    ).reshape(len(reports), len(fmt.cells))


@cache
def schema_for(fmt: Format) -> pa.DataFrameSchema:
    """The Pandera schema of a format, built once from the format data: a check that the frame has the
    format's cells with their types, a range check over the cells with a minimum (counts ≥ 0), a check that
    every identity holds, and one dataframe-level check per plausibility rule."""
    checks = [_columns_check(fmt), _range_check(fmt), _identities_check(fmt), *(_rule_check(r) for r in fmt.rules)]
    return pa.DataFrameSchema(checks=checks, name=f"format {fmt.id}")


def _columns_check(fmt: Format) -> pa.Check:
    """The frame is one column per cell id, in the format's order: int64 counts, float64 money with no
    missing value. One check for all of them: Pandera validates each declared column on its own, and for the
    ~200 cells of a format that was two thirds of a call's fixed cost (16 → 5–6 ms for one workbook,
    `benchmarks/bench_schema.py`); the frame is built typed by `checked_frame`, so this only guards it."""
    cells = list(fmt.cells)
    dtypes = pd.Series({cid: np.dtype("int64") if cell.type.integer else np.dtype("float64")
                        for cid, cell in fmt.cells.items()})
    money = [cid for cid, cell in fmt.cells.items() if not cell.type.integer]

    def typed(frame: pd.DataFrame) -> bool:
        return list(frame.columns) == cells and frame.dtypes.equals(dtypes) and not frame[money].isna().any(axis=None)

    return pa.Check(typed, error=COLUMNS, ignore_na=False)


def _range_check(fmt: Format) -> pa.Check:
    """Every cell with a minimum at or above it, for each row at once."""
    minimum = pd.Series({cid: cell.type.min for cid, cell in fmt.cells.items() if cell.type.min is not None})

    def within(frame: pd.DataFrame) -> pd.Series:
        return frame[minimum.index].ge(minimum).all(axis=1)

    return pa.Check(within, error=NEGATIVE, ignore_na=False)


def _identities_check(fmt: Format) -> pa.Check:
    """Every identity's Σlhs − Σrhs is 0, for each row at once: the identity cells times a matrix W, +1
    where a cell is on an identity's left side and −1 on its right. The product is taken in float64 (BLAS;
    numpy multiplies int64 matrices without it, 10× slower at 20,000 rows), which is exact here: every
    identity cell is a whole count of at most `clean.MAX_ABS` (10¹²), so no sum comes near 2⁵³."""
    cells = sorted({c for i in fmt.identities for c in i.cells}, key=list(fmt.cells).index)
    if not all(fmt.cells[c].type.integer for c in cells):  # format data this check was not built for
        raise FormatDataError(f"format {fmt.id}: an identity uses a cell that is not a count")
    position = {c: k for k, c in enumerate(cells)}
    weights = np.zeros((len(cells), len(fmt.identities)))
    for j, identity in enumerate(fmt.identities):
        for c in identity.lhs:
            weights[position[c], j] += 1
        for c in identity.rhs:
            weights[position[c], j] -= 1
    if MAX_ABS * np.abs(weights).sum(axis=0).max(initial=0) >= 2**53:  # then float64 sums could round
        raise FormatDataError(f"format {fmt.id}: an identity too long to be checked exactly")

    def hold(frame: pd.DataFrame) -> pd.Series:
        return pd.Series((frame[cells].to_numpy(dtype="float64") @ weights == 0).all(axis=1), index=frame.index)

    return pa.Check(hold, error=IDENTITIES, ignore_na=False)


def _rule_check(rule: Rule) -> pa.Check:
    """A plausibility rule, named by its instance. A rule that depends on the office's level is checked
    here at its loosest threshold, and each failure is then confirmed on the report's own values with its
    own level (`_findings`)."""
    return pa.Check(partial(rule.holds, level=ANY_LEVEL), error=rule.rule, ignore_na=False)


# Reports checked by one Pandera call, at most: every county's and city's batch in one call (its cost is
# per call, not per row), a country's in a few, so that the frames a call builds (about 5 KiB a report,
# in the typed frame, its blanks-as-0 copy and the checks' own copies) stay bounded at any batch size.
ROWS_PER_CALL = 10_000


@dataclass
class Validation:
    """What one validation of a batch found: the findings of each report, in the order given."""

    findings: list[list[Finding]]


def validate_reports(reports: Sequence[CleanReport]) -> Validation:
    """Check the identities, rules and ranges of every report, one Pandera call per format (per
    `ROWS_PER_CALL` reports of a format, in a batch larger than that)."""
    out: list[list[Finding]] = [[] for _ in reports]
    by_format: dict[Format, list[int]] = defaultdict(list)
    for i, report in enumerate(reports):
        by_format[report.format].append(i)
    for fmt, rows in by_format.items():
        for start in range(0, len(rows), ROWS_PER_CALL):
            part = rows[start:start + ROWS_PER_CALL]
            batch = [reports[i] for i in part]
            try:
                schema_for(fmt).validate(checked_frame(batch, fmt), lazy=True)
            except SchemaErrors as exc:
                for position, findings in _findings(fmt, batch, exc.failure_cases).items():
                    out[part[position]] = findings
    return Validation(out)


def _findings(fmt: Format, batch: Sequence[CleanReport], cases: pd.DataFrame) -> dict[int, list[Finding]]:
    rules = {r.rule: r for r in fmt.rules}
    failed: dict[int, set[str]] = defaultdict(set)  # the plausibility rules each row fails
    unbalanced: set[int] = set()  # the rows where an identity fails
    negative: dict[int, list[str]] = defaultdict(list)
    # A check that is not a row's (the columns or their types, or a check that could not run on a frame
    # built wrongly: no row to name) is this tool's error, never a finding about an office.
    odd = cases[~cases["check"].isin([NEGATIVE, IDENTITIES, *rules]) | cases["index"].isna()]
    if len(odd):
        raise RuntimeError(f"unexpected schema failure {sorted(set(map(str, odd['check'])))}")
    # A failing dataframe-level check lists its row once per column: keep one (check, row) pair. Which
    # cells are below their minimum and which identities fail there is read from the row's own values.
    for check, index in cases[["check", "index"]].drop_duplicates().itertuples(index=False):
        position = int(index)
        if check == NEGATIVE:
            row = {c: (v if v is not None else 0) for c, v in batch[position].values.items()}
            negative[position] = [c for c, cell in fmt.cells.items() if cell.type.min is not None
                                  and row[c] < cell.type.min]
        elif check == IDENTITIES:
            unbalanced.add(position)
        else:
            failed[position].add(str(check))
    out: dict[int, list[Finding]] = defaultdict(list)
    for position in sorted(set(failed) | unbalanced | set(negative)):
        report = batch[position]
        row = {c: (v if v is not None else 0) for c, v in report.values.items()}
        for cid in sorted(negative[position], key=list(fmt.cells).index):
            cell = fmt.cells[cid]
            out[position].append(Finding(NEGATIVE, cells=(report.where[cid],), rule="R6",
                                         actual=report.values[cid],
                                         params={"where": cell_where(fmt, cell, report.where[cid])}))
        if position in unbalanced:  # identity order, so findings read top to bottom
            out[position] += [_identity_finding(fmt, identity, report, row)
                              for identity in fmt.reportable_failures(row, report.unusable)]
        found = body_level(fmt, report.texts, report.office)  # ruling 7: stated on the cover, else inferred
        level = found.level if found else None
        for rule in fmt.rules:
            if rule.rule in failed[position] and not set(rule.involved) & report.unusable \
                    and rule.applies_to(level) and not rule.holds(row, level=level):  # with the office's level
                out[position].append(_rule_finding(fmt, rule, report, row, level))
    return out


def _identity_finding(fmt: Format, identity: Identity, report: CleanReport, row: dict[str, Any]) -> Finding:
    anchor = fmt.cells[identity.anchor]
    refs = [report.where[c] for c in identity.cells]
    actual = report.values[identity.anchor]
    params: dict[str, Any] = {
        "where": cell_where(fmt, anchor, refs[0]), "ref": refs[0].ref,
        "others": _joined(compress_refs([r.ref for r in refs[1:]])),
        "expected_text": bilingual(identity.expected_zh, identity.expected_en),
        "printed": identity.printed or ""}
    if actual is None:
        params["actual"] = phrase("validate.blank_as_zero")
    return Finding("identity-mismatch", cells=tuple(refs), rule=identity.rule,
                   expected=identity.expected_anchor(row), actual=actual if actual is not None else 0,
                   params=params)


def _rule_finding(fmt: Format, rule: Rule, report: CleanReport, row: dict[str, Any], level: str | None) -> Finding:
    refs = [report.where[c] for c in rule.involved]
    anchor = fmt.cells[rule.involved[0]]
    if rule.kind == "magnitude":
        return _magnitude_finding(fmt, rule, report, row, level)
    details = {lang: text("validate.detail_separator", lang).join(
        text("validate.detail", lang, label=fmt.cells[c].label, value=number_text(row[c])) for c in rule.involved)
        for lang in LANGS}
    params: dict[str, Any] = {"where": cell_where(fmt, anchor, refs[0]), "rule_text": bilingual(rule.zh, rule.en),
                              "details": details}
    if rule.kind == "share_max":  # the share the rule found too high, as a percentage
        below = sum(row[c] for c in rule.rhs)
        params["share"] = f"{100 * sum(row[c] for c in rule.lhs) / below:.1f}%" if below else ""
    return Finding(rule.code, cells=tuple(refs), rule=rule.rule, actual=report.values[anchor.id], params=params)


def _magnitude_finding(fmt: Format, rule: Rule, report: CleanReport, row: dict[str, Any],
                       level: str | None) -> Finding:
    """An amount in 万元 that looks like 元: say what was probably meant (125000 元 = 12.5 万元)."""
    cid = next(c for c in rule.cells if not rule.holds({**row, **{o: 0 for o in rule.cells if o != c}}, level))
    value = row[cid]
    factors = {u.rule: u.factor for u in notation().money_units}  # to 万元: 元 × 0.0001, 亿元 × 10000
    exact = Decimal(repr(float(value)))
    scope = phrase("validate.magnitude.scope_level", level=level) if level else phrase("validate.magnitude.scope_any")
    meant = float(exact * factors["unit-yuan"])  # 125000 元 = 12.5 万元
    return Finding("money-magnitude", cells=(report.where[cid],), rule=rule.rule, actual=value, expected=meant,
                   params={"where": cell_where(fmt, fmt.cells[cid], report.where[cid]), "scope": scope,
                           "yi": number_text(float(exact / factors["unit-yiyuan"])), "wanyuan": number_text(meant)})


def _joined(items: Sequence[str]) -> dict[str, str]:
    """A list of references, joined as each language writes a list."""
    return {lang: text("catalog.enumeration", lang).join(items) for lang in LANGS}


_PLAIN_CELL = re.compile(r"[A-Z]{1,3}[1-9][0-9]*")


def cell_blocks(refs: Sequence[str]) -> list[str]:
    """E4, F4, E5, F5, H7 → ["E4:F5", "H7"]: runs along each row, then runs of the same columns in rows
    one below the other, become rectangles (many cells of a pasted table read alike). A reference that is
    not one plain cell (no such reference is made today) leaves every reference as it is."""
    if not all(_PLAIN_CELL.fullmatch(r) for r in refs):
        return list(dict.fromkeys(refs))
    runs: list[list[int]] = []  # [first column, last column, first row, last row]
    for row, col in sorted({xl_cell_to_rowcol(r) for r in refs}):
        if runs and runs[-1][2] == row and runs[-1][1] == col - 1:
            runs[-1][1] = col
        else:
            runs.append([col, col, row, row])
    blocks: list[list[int]] = []
    for run in sorted(runs):  # by columns, then rows: a run below a block of the same columns extends it
        if blocks and blocks[-1][:2] == run[:2] and blocks[-1][3] == run[2] - 1:
            blocks[-1][3] = run[3]
        else:
            blocks.append(run)
    blocks.sort(key=lambda b: (b[2], b[0]))
    return [xl_rowcol_to_cell(r0, c0) if (r0, c0) == (r1, c1)
            else f"{xl_rowcol_to_cell(r0, c0)}:{xl_rowcol_to_cell(r1, c1)}" for c0, c1, r0, r1 in blocks]


def compress_refs(refs: Sequence[str]) -> list[str]:
    """D5, E5, F5, H7 → ["D5:F5", "H7"]: runs along a row or a column become ranges."""
    cells = sorted({xl_cell_to_rowcol(r) for r in refs})
    if not cells:
        return []
    rows = {r for r, _ in cells}
    cols = {c for _, c in cells}
    groups: list[list[tuple[int, int]]] = []
    # group along the axis the cells share most: one row (I2) or one column (I3)
    key = (lambda rc: (rc[0], rc[1])) if len(rows) <= len(cols) else (lambda rc: (rc[1], rc[0]))
    for cell in sorted(cells, key=key):
        last = groups[-1][-1] if groups else None
        if last and key(last)[0] == key(cell)[0] and key(cell)[1] == key(last)[1] + 1:
            groups[-1].append(cell)
        else:
            groups.append([cell])
    return [xl_rowcol_to_cell(*g[0]) if len(g) == 1 else f"{xl_rowcol_to_cell(*g[0])}:{xl_rowcol_to_cell(*g[-1])}"
            for g in groups]
