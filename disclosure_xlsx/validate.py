"""Check all cleaned reports of a batch at once with Pandera, and turn its failures into findings.

The batch is stacked into one frame per format (one row per workbook, one column per cell id); the
schema is built from the format data: a typed column per cell with `ge(0)` on counts, one
dataframe-level check per identity instance (I1[natural_person], I2[granted] …) and per plausibility
rule. It checks the frame as the identities see it, blanks (already reported) counted as 0. It is validated lazily in one call per format: Pandera's cost is per call, not per row, so one
call for 2,000 workbooks costs about what one call for a single workbook does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, partial
from typing import Any

import pandas as pd
from xlsxwriter.utility import xl_cell_to_rowcol, xl_rowcol_to_cell

from ._pandera import SchemaErrors, pa
from .catalog import LANGS, Finding, bilingual, number_text, phrase, text
from .clean import CleanReport, cell_where
from .formats import ANY_LEVEL, Format, Identity, Rule, notation
from .levels import body_level

__all__ = ["Validation", "checked_frame", "report_frame", "schema_for", "validate_reports"]

NEGATIVE = "count-negative"


def report_frame(reports: Sequence[CleanReport], fmt: Format) -> pd.DataFrame:
    """One row per report, one typed column per cell id (Int64 counts, Float64 money, <NA> = missing)."""
    columns = {}
    for cid, cell in fmt.cells.items():
        dtype = "Int64" if cell.type.integer else "Float64"
        columns[cid] = pd.array([r.values[cid] for r in reports], dtype=dtype)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(reports)))


def checked_frame(frame: pd.DataFrame, fmt: Format) -> pd.DataFrame:
    """The frame as the identities see it: blanks (already reported, ruling 2) count as 0, so every
    column is a plain int64 (counts) or float64 (money); plain numpy columns also keep Pandera fast."""
    dtypes = {cid: "int64" if cell.type.integer else "float64" for cid, cell in fmt.cells.items()}
    return frame.fillna(0).astype(dtypes)


@cache
def schema_for(fmt: Format) -> pa.DataFrameSchema:
    """The Pandera schema of a format, built once from the format data: a typed column per cell with
    its range (counts ≥ 0), and one dataframe-level check per identity and plausibility rule."""
    columns = {}
    for cid, cell in fmt.cells.items():
        checks = [pa.Check.ge(cell.type.min, error=NEGATIVE)] if cell.type.min is not None else []
        columns[cid] = pa.Column("int64" if cell.type.integer else "float64", checks, nullable=False)
    checks = [_frame_check(i) for i in fmt.identities] + [_frame_check(r) for r in fmt.rules]
    return pa.DataFrameSchema(columns, checks=checks, name=f"format {fmt.id}", strict=True, ordered=False)


def _frame_check(rule: Identity | Rule) -> pa.Check:
    """A dataframe-level check named by the rule instance (it comes back in failure_cases["check"]).

    A rule that depends on the office's level is checked here at its loosest threshold, and each failure
    is then confirmed on the report's own values with its own level (`_findings`)."""
    holds = partial(rule.holds, level=ANY_LEVEL) if isinstance(rule, Rule) else rule.holds
    return pa.Check(holds, error=rule.rule, ignore_na=False)


@dataclass
class Validation:
    """What one validation of a batch found: the findings of each report (in the order given) and, per
    format, the frame it checked (one row per report of that format, indexed by the report's position),
    which the roll-up adds up without building it again."""

    findings: list[list[Finding]]
    frames: dict[str, pd.DataFrame]


def validate_reports(reports: Sequence[CleanReport]) -> Validation:
    """Check the identities, rules and ranges of every report, one Pandera call per format."""
    out: list[list[Finding]] = [[] for _ in reports]
    frames: dict[str, pd.DataFrame] = {}
    by_format: dict[Format, list[int]] = defaultdict(list)
    for i, report in enumerate(reports):
        by_format[report.format].append(i)
    for fmt, rows in by_format.items():
        batch = [reports[i] for i in rows]
        frame = report_frame(batch, fmt)
        try:
            schema_for(fmt).validate(checked_frame(frame, fmt), lazy=True)
        except SchemaErrors as exc:
            for position, findings in _findings(fmt, batch, frame, exc.failure_cases).items():
                out[rows[position]] = findings
        frames[fmt.id] = frame.set_axis(pd.Index(rows))
    return Validation(out, frames)


def _findings(fmt: Format, batch: Sequence[CleanReport], frame: pd.DataFrame, cases: pd.DataFrame
              ) -> dict[int, list[Finding]]:
    identities = {i.rule: i for i in fmt.identities}
    rules = {r.rule: r for r in fmt.rules}
    failed: dict[int, set[str]] = defaultdict(set)
    negative: dict[int, list[str]] = defaultdict(list)
    # A failing dataframe-level check lists its row once per column: keep one (check, row) pair.
    is_range = cases["check"] == NEGATIVE
    for column, index in cases.loc[is_range, ["column", "index"]].itertuples(index=False):
        negative[int(index)].append(str(column))
    for check, index in cases.loc[~is_range, ["check", "index"]].drop_duplicates().itertuples(index=False):
        if check not in identities and check not in rules:  # a dtype failure: the frame was built wrongly
            raise RuntimeError(f"unexpected schema failure {check!r}")
        failed[int(index)].add(str(check))
    out: dict[int, list[Finding]] = defaultdict(list)
    for position in sorted(set(failed) | set(negative)):
        report = batch[position]
        row = {c: (v if v is not None else 0) for c, v in report.values.items()}
        for cid in sorted(negative[position], key=list(fmt.cells).index):
            cell = fmt.cells[cid]
            out[position].append(Finding(NEGATIVE, cells=(report.where[cid],), rule="R6",
                                         actual=report.values[cid],
                                         params={"where": cell_where(fmt, cell, report.where[cid])}))
        families = {identities[r].family for r in failed[position] if r in identities}
        for identity in fmt.identities:  # identity order, so findings read top to bottom
            if identity.rule in failed[position] and identity.defer_to not in families \
                    and not set(identity.cells) & report.unusable:
                out[position].append(_identity_finding(fmt, identity, report, row))
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
