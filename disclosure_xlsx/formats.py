"""The report formats: load `data/formats.toml` into frozen objects and check it at load time.

Every other module asks this one for labels, cell ids, units, identities and rules; none of them
spells a label or a format year. A mistake in the data (an identity naming a cell that does not
exist, two cells with one id, a defined name used twice) fails here, at import of the data, rather
than as a wrong finding later.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from .catalog import DisclosureError, Finding, text, text_list

__all__ = [
    "ANY_LEVEL",
    "Cell",
    "CopiedText",
    "CoverField",
    "CrossYearRule",
    "Format",
    "FormatDataError",
    "Identity",
    "KeyFigure",
    "MoneyUnit",
    "Narrative",
    "Node",
    "Notation",
    "Rule",
    "Section",
    "TemplateWords",
    "Term",
    "ValueType",
    "all_formats",
    "build_formats",
    "current_format",
    "format_for_year",
    "get_format",
    "name_for",
    "notation",
]


class FormatDataError(DisclosureError):
    """The format data contradicts itself: a bug in `data/formats.toml`, never in user input."""

    def __init__(self, detail: str) -> None:
        super().__init__(Finding("format-data-invalid", params={"detail": detail}))


# ----------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class ValueType:
    """How a cell's value is typed: count, signed_count or money (rulings 5 and 6)."""

    key: str
    integer: bool
    min: float | None
    dv_min: float | None
    unit: str | None
    number_format: str
    dv_title: str
    dv_input: str
    dv_error: str


@dataclass(frozen=True, slots=True)
class Node:
    """A row, a column or a group of either, as printed in a table."""

    key: str
    label: str
    parent: str | None = None
    group: bool = False
    kind: str = "input"
    role: str | None = None
    derived: bool = False
    aliases: tuple[str, ...] = ()
    block: str | None = None
    blocks: tuple[str, ...] = ()
    type: str | None = None
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class Block:
    """A captioned block of section 二 (one item of Art. 20 of the regulations)."""

    key: str
    caption: str


@dataclass(frozen=True, slots=True)
class Section:
    """One table section (二, 三 or 四) of one format, its nodes filtered to that format."""

    key: str
    number: str
    heading: str
    sheet: str
    layout: str  # "blocks" | "grid"
    cell_id: str
    unit: str
    note: str | None
    row_header: str | None
    value_columns: int
    blocks: tuple[Block, ...]
    rows: tuple[Node, ...]
    columns: tuple[Node, ...]

    def node(self, axis: str, key: str) -> Node:
        for node in self.rows if axis == "rows" else self.columns:
            if node.key == key:
                return node
        raise KeyError(f"{self.key}: no {axis} node {key!r}")

    def children(self, axis: str, parent: str | None) -> tuple[Node, ...]:
        nodes = self.rows if axis == "rows" else self.columns
        return tuple(n for n in nodes if n.parent == parent)

    def leaves(self, axis: str, under: str | None = None) -> tuple[Node, ...]:
        """The printed rows or columns (nodes that are not groups), in printed order."""
        out: list[Node] = []

        def walk(parent: str | None) -> None:
            for node in self.children(axis, parent):
                if node.group:
                    walk(node.key)
                else:
                    out.append(node)

        walk(under)
        return tuple(out)

    def path(self, axis: str, key: str) -> tuple[Node, ...]:
        """The node and its ancestors, outermost first."""
        chain = [self.node(axis, key)]
        while chain[0].parent is not None:
            chain.insert(0, self.node(axis, chain[0].parent))
        return tuple(chain)

    def depth(self, axis: str) -> int:
        """How many label columns (rows axis) or header rows (columns axis) the grid needs."""
        leaves = self.leaves(axis)
        return max((len(self.path(axis, n.key)) for n in leaves), default=0)


@dataclass(frozen=True, slots=True)
class Cell:
    """One numeric cell of a table: the unit of reading, cleaning, validation and roll-up."""

    id: str
    name: str  # the workbook-level defined name (ruling 1)
    section: str
    row: str
    col: str
    row_path: tuple[str, ...]  # labels, outermost first; for section 二 the block caption first
    col_path: tuple[str, ...]
    kind: str  # "input" | "total"
    type: ValueType
    unit: str

    row_short: str = ""  # the shortest end of the path that names the row unambiguously
    col_short: str = ""

    @property
    def unit_in_header(self) -> bool:
        """Whether the form prints the cell's unit in its column header (as the current fee column does)."""
        return self.type.unit is not None and self.type.unit in self.col_path[-1]

    @property
    def label(self) -> str:
        """How messages name the cell: "<row> / <column>", each as short as is unambiguous."""
        return f"{self.row_short} / {self.col_short}" if self.row_short else self.col_short


@dataclass(frozen=True, slots=True)
class Identity:
    """One expanded instance of a reconciliation identity: Σlhs = Σrhs, e.g. I2[granted]."""

    rule: str
    family: str
    section: str
    binding: tuple[tuple[str, str], ...]
    lhs: tuple[str, ...]
    rhs: tuple[str, ...]
    anchor: str
    defer_to: str | None
    cls: str
    printed: str | None
    zh: str
    en: str
    expected_zh: str
    expected_en: str
    check: str

    @property
    def cells(self) -> tuple[str, ...]:
        """Every cell of the identity, the anchor first."""
        rest = [c for c in (*self.lhs, *self.rhs) if c != self.anchor]
        return (self.anchor, *rest)

    def difference(self, values: Mapping[str, Any]) -> Any:
        """Σlhs − Σrhs; `values` holds numbers, or pandas columns to evaluate many reports at once."""
        return _sum(values, self.lhs) - _sum(values, self.rhs)

    def holds(self, values: Mapping[str, Any]) -> Any:
        return self.difference(values) == 0

    def expected_anchor(self, values: Mapping[str, Any]) -> Any:
        """The anchor's value that would make the identity hold, given the other cells."""
        lhs = _sum(values, [c for c in self.lhs if c != self.anchor])
        rhs = _sum(values, [c for c in self.rhs if c != self.anchor])
        return rhs - lhs if self.anchor in self.lhs else lhs - rhs


ANY_LEVEL = "*"  # `Rule.holds(…, level=ANY_LEVEL)`: the loosest threshold of every level (a batch check)


@dataclass(frozen=True, slots=True)
class Rule:
    """One expanded plausibility rule (spec §7.3–§7.4); a failure is a warning."""

    rule: str
    family: str
    kind: str  # le | implies_zero | expect_zero | same_zero | max_decimals | share_max | magnitude
    lhs: tuple[str, ...] = ()
    rhs: tuple[str, ...] = ()
    when: tuple[str, ...] = ()
    cells: tuple[str, ...] = ()
    max: int | None = None
    min: float | None = None  # magnitude: the smallest whole number that looks like 元 (unknown level)
    thresholds: tuple[tuple[str, float], ...] = ()  # magnitude: the threshold for a body level (ruling 7)
    zh: str = ""
    en: str = ""
    levels: tuple[str, ...] = ()  # ruling 7: only for bodies of these levels (empty: every body)
    code: str = "implausible-value"  # the finding code a failure gives
    max_share: float = 0.0  # share_max: Σlhs ≤ max_share × Σrhs …
    min_count: int = 0  # … unless Σlhs < min_count

    def applies_to(self, level: str | None) -> bool:
        """Whether the rule applies to a body of `level`; a level-dependent rule is silent when unknown."""
        return not self.levels or level in self.levels

    def threshold(self, level: str | None) -> float:
        """A magnitude rule's threshold for an office of `level`: its own when the data gives one, the
        conservative `min` when the level is unknown (None) or not listed; ANY_LEVEL: the lowest of all."""
        conservative = self.min if self.min is not None else math.inf
        if level == ANY_LEVEL:
            return min([t for _, t in self.thresholds] + [conservative])
        if level is not None:
            folded = _fold_level(level)
            for name, value in self.thresholds:
                if _fold_level(name) == folded:
                    return value
        return conservative

    @property
    def involved(self) -> tuple[str, ...]:
        """Every cell the rule reads, the cell to mark first."""
        seen = dict.fromkeys((*self.cells, *self.lhs, *self.rhs, *self.when))
        return tuple(seen)

    def holds(self, values: Mapping[str, Any], level: str | None = None) -> Any:
        """Whether the rule holds; `values` holds numbers, or pandas columns (then a boolean column).
        `level` is the office's body level, for the rules that depend on it (None: unknown).

        Only `+ - == != < <= & |`, `abs` and `round` are used, so one definition serves a single report
        (the generator) and a whole batch (the validator).
        """
        if self.kind == "magnitude":  # a whole number this large in a 万元 cell was probably written in 元
            floor = self.threshold(level)
            parts = [(values[c] < floor) | (abs(values[c] - round(values[c])) > 1e-9) for c in self.cells]
            return functools.reduce(operator.and_, parts)
        if self.kind == "le":
            return _sum(values, self.lhs) <= _sum(values, self.rhs)
        if self.kind == "share_max":
            part = _sum(values, self.lhs)
            return (part < self.min_count) | (part <= self.max_share * _sum(values, self.rhs))
        zero = [values[c] == 0 for c in self.cells]
        if self.kind == "expect_zero":
            return functools.reduce(operator.and_, zero)
        if self.kind == "implies_zero":
            return (_sum(values, self.when) != 0) | functools.reduce(operator.and_, zero)
        if self.kind == "same_zero":
            nonzero = [values[c] != 0 for c in self.cells]
            return functools.reduce(operator.and_, zero) | functools.reduce(operator.and_, nonzero)
        scale = 10 ** (self.max or 0)  # max_decimals
        parts = [abs(values[c] * scale - round(values[c] * scale)) < 1e-6 for c in self.cells]
        return functools.reduce(operator.and_, parts)


@dataclass(frozen=True, slots=True)
class KeyFigure:
    """A figure compared across offices: the sum of `cells`, or Σnumerator / Σdenominator."""

    key: str
    label: str
    cells: tuple[str, ...] = ()
    numerator: tuple[str, ...] = ()
    denominator: tuple[str, ...] = ()
    chart: bool = False

    @property
    def is_ratio(self) -> bool:
        return bool(self.denominator)

    def value(self, values: Mapping[str, Any]) -> float | None:
        """The figure for one report (blanks as 0); None for a ratio over nothing."""
        def total(cells: tuple[str, ...]) -> float:
            return sum(values.get(c) or 0 for c in cells)

        if not self.is_ratio:
            return total(self.cells)
        below = total(self.denominator)
        return total(self.numerator) / below if below else None


@dataclass(frozen=True, slots=True)
class Term:
    """One term of a cross-year rule: a cell of this year's report, or (`previous`) of last year's."""

    name: str  # the placeholder the rule's message uses
    cell: str
    previous: bool


@dataclass(frozen=True, slots=True)
class CrossYearRule:
    """One expanded instance of a cross-year rule (spec §8): Σlhs = Σrhs across two reports, e.g. X1[total].

    Lives on the format of this year's report; `previous_formats` says which formats last year's report
    may have, and `first_year` the first year it applies to.
    """

    rule: str
    family: str
    level: str  # strong | normal (spec §8.1: X1 is logically necessary)
    binding: tuple[tuple[str, str], ...]
    lhs: tuple[Term, ...]
    rhs: tuple[Term, ...]
    anchor: Term
    previous_formats: tuple[str, ...]
    first_year: int | None
    zh: str
    en: str
    why_zh: str
    why_en: str
    check: str

    @property
    def terms(self) -> tuple[Term, ...]:
        """Every term, the anchor first."""
        return (self.anchor, *(t for t in (*self.lhs, *self.rhs) if t != self.anchor))

    @property
    def current_cells(self) -> tuple[str, ...]:
        """This year's cells of the rule, the anchor first."""
        return tuple(t.cell for t in self.terms if not t.previous)

    @property
    def previous_cells(self) -> tuple[str, ...]:
        return tuple(t.cell for t in self.terms if t.previous)

    def applies(self, previous_format: str, year: int | None) -> bool:
        """Whether the rule checks this year's report (of `year`) against a report of `previous_format`."""
        return previous_format in self.previous_formats and (
            self.first_year is None or (year is not None and year >= self.first_year))

    def values(self, current: Mapping[str, Any], previous: Mapping[str, Any]) -> dict[str, Any]:
        """Term name → value (None when the cell is blank or missing on its side)."""
        return {t.name: (previous if t.previous else current).get(t.cell) for t in self.terms}

    def difference(self, current: Mapping[str, Any], previous: Mapping[str, Any]) -> Any:
        """Σlhs − Σrhs (every term must have a value)."""
        values = self.values(current, previous)
        return sum(values[t.name] for t in self.lhs) - sum(values[t.name] for t in self.rhs)

    def expected_anchor(self, current: Mapping[str, Any], previous: Mapping[str, Any]) -> Any:
        """The anchor's value that would make the rule hold, given the other terms."""
        values = self.values(current, previous)
        lhs = sum(values[t.name] for t in self.lhs if t != self.anchor)
        rhs = sum(values[t.name] for t in self.rhs if t != self.anchor)
        return rhs - lhs if self.anchor in self.lhs else lhs - rhs


@dataclass(frozen=True, slots=True)
class CopiedText:
    """When a narrative counts as copied (年年雷同): the sections compared, the similarity and length limits."""

    across_years: tuple[str, ...]
    across_offices: tuple[str, ...]
    ratio: float
    min_chars: int
    year_rule: str = "C1"  # the rule ids of the two checks, as report.json shows them
    office_rule: str = "C2"


@dataclass(frozen=True, slots=True)
class CoverField:
    """A field of the cover: its defined name, printed label and role (office, year, credit_code …)."""

    name: str
    role: str
    label: str
    type: str  # text | year | choice
    hint: str | None
    choices: tuple[str, ...] = ()  # the drop-down list of a choice field


@dataclass(frozen=True, slots=True)
class Narrative:
    """A narrative section (一, 五, 六): its defined name, role (overview, problems, other) and heading."""

    name: str
    role: str
    number: str
    heading: str
    hint: str


@dataclass(frozen=True, slots=True)
class TemplateWords:
    """Words of the standard workbook: what the official format prints in a title, the defined names of the
    format and version cells (format data), and the tool's own sheet names and marks (`data/words/`)."""

    cover_sheet: str
    narrative_sheet: str
    title: str
    report_name: str
    title_pattern: str
    format_label: str
    version_label: str
    format_name: str
    version_name: str
    instructions_heading: str
    instructions: tuple[str, ...]
    check_ok: str
    check_fail: str
    check_blank: str
    unit_note: str
    narrative_hint_label: str
    report_sheet: str
    report_title: str
    failed_mark: str
    log_sheet: str
    data_sheet: str
    mapping_sheet: str
    detail_sheet: str
    compare_sheet: str
    total_label: str


@dataclass(frozen=True, eq=False)
class Format:
    """One national format with everything derived from the data; one object per format and process
    (compared and hashed by identity, pickled as its id)."""

    id: str
    title: str
    notice: str
    first_year: int
    last_year: int | None
    current: bool
    template_version: str
    signals: tuple[str, ...]
    sections: tuple[Section, ...]
    cells: Mapping[str, Cell]
    identities: tuple[Identity, ...]
    rules: tuple[Rule, ...]
    cover: tuple[CoverField, ...]
    narratives: tuple[Narrative, ...]
    words: TemplateWords
    types: Mapping[str, ValueType]
    derived: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    key_figures: tuple[KeyFigure, ...] = ()
    cross_year: tuple[CrossYearRule, ...] = ()  # rules checking a report of this format against last year's
    copied_text: CopiedText | None = None

    def field(self, role: str) -> CoverField:
        """The cover field with `role` (office, credit_code, year, …): modules find fields by role."""
        for cover in self.cover:
            if cover.role == role:
                return cover
        raise KeyError(f"no cover field with role {role!r}")

    def reportable_failures(self, values: Mapping[str, Any], unusable: Iterable[str] = ()) -> list[Identity]:
        """The identities whose failure is reported for `values` (numbers; a blank given as 0), in identity
        order: each that fails and uses no unusable cell (it waits until that cell is fixed), unless it
        defers to a family that fails too (when I2 fails, I1 and I3 on the 总计 column are not reported,
        spec §7.1 I4)."""
        failing = [i for i in self.identities if not i.holds(values)]
        families, unusable = {i.family for i in failing}, set(unusable)
        return [i for i in failing if i.defer_to not in families and not set(i.cells) & unusable]

    def narrative(self, role: str) -> Narrative:
        """The narrative section with `role` (overview, problems, other)."""
        for narrative in self.narratives:
            if narrative.role == role:
                return narrative
        raise KeyError(f"no narrative with role {role!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        """A format crosses process boundaries as its id: every process loads the same data."""
        return get_format, (self.id,)

    def covers_year(self, year: int) -> bool:
        return self.first_year <= year and (self.last_year is None or year <= self.last_year)

    def section(self, key: str) -> Section:
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(key)

    def section_cells(self, key: str) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells.values() if c.section == key)

    @property
    def cover_labels(self) -> dict[str, str]:
        """Cover field name → its printed label on the cover."""
        return {f.name: f.label for f in self.cover}

    @property
    def levels(self) -> tuple[str, ...]:
        """The body levels of ruling 7: the choices of the cover's level field; () if there is none."""
        return next((f.choices for f in self.cover if f.role == "level"), ())

    @property
    def names(self) -> dict[str, str]:
        """Defined name → what it holds (cell id, cover field or narrative), one-to-one."""
        out = {c.name: c.id for c in self.cells.values()}
        out.update({f.name: f.name for f in self.cover})
        out.update({n.name: n.name for n in self.narratives})
        out[self.words.format_name] = self.words.format_name
        out[self.words.version_name] = self.words.version_name
        return out

    def __repr__(self) -> str:  # the default would print 200 cells
        return f"Format({self.id!r})"


@dataclass(frozen=True, slots=True)
class MoneyUnit:
    unit: str
    factor: Decimal  # to 万元
    rule: str  # the cleaning rule that records the conversion


@dataclass(frozen=True, slots=True)
class Notation:
    """How offices write values (spec §9): blanks' placeholders, money and count units, the year."""

    placeholders: frozenset[str]
    money_units: tuple[MoneyUnit, ...]  # longest first, so 万元 is not read as 元
    count_units: tuple[str, ...]
    year_pattern: str


@cache
def notation() -> Notation:
    """The value notation of the format data (shared by both formats)."""
    spec = _data()["values"]
    units = sorted((MoneyUnit(u["unit"], Decimal(u["factor"]), u["rule"]) for u in spec["money_units"]),
                   key=lambda u: -len(u.unit))
    return Notation(frozenset(spec["placeholders"]), tuple(units), tuple(spec["count_units"]), spec["year_pattern"])




def _sum(values: Mapping[str, Any], cells: Iterable[str]) -> Any:
    return sum(map(values.__getitem__, cells), 0)  # map over a bound method: twice a generator's speed


def _fold_level(level: str) -> str:
    """A body level as compared: NFKC, no whitespace (县级 == " 县级", （ == ()."""
    return "".join(unicodedata.normalize("NFKC", level).split())


def name_for(cell_id: str) -> str:
    """Ruling 1: the defined name of a cell id is the id with every "." replaced by "_"."""
    return cell_id.replace(".", "_")


# ----------------------------------------------------------------------------------------------
# Loading


@cache
def _data() -> Mapping[str, Any]:
    return tomllib.loads(resources.files("disclosure_xlsx").joinpath("data/formats.toml").read_text("utf-8"))


@cache
def all_formats() -> Mapping[str, Format]:
    """Every format of the data file, keyed by its id, checked once per process."""
    return build_formats(_data())


def get_format(format_id: str) -> Format:
    try:
        return all_formats()[str(format_id)]
    except KeyError:
        known = ", ".join(all_formats())
        raise KeyError(f"unknown report format {format_id!r}; known: {known}") from None


def current_format() -> Format:
    """The format in force today (the one marked `current` in the data)."""
    return next(f for f in all_formats().values() if f.current)


def format_for_year(year: int) -> Format | None:
    """The format that applies to reports for `year` (rule X6), if any."""
    return next((f for f in all_formats().values() if f.covers_year(year)), None)


_NODE_KEYS = {f for f in Node.__dataclass_fields__} | {"formats"}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def build_formats(data: Mapping[str, Any]) -> dict[str, Format]:
    """Build and check every format from parsed format data (the contents of `data/formats.toml`)."""
    _keys(data, "top level", {"schema", "formats", "values", "types", "cover", "narratives", "sections",
                              "sets", "identities", "rules", "key_figures", "template", "cross_year",
                              "copied_text"})
    if data.get("schema") != 1:
        raise FormatDataError(f"unsupported schema {data.get('schema')!r}")
    ids = list(data["formats"])
    if sum(bool(f.get("current")) for f in data["formats"].values()) != 1:
        raise FormatDataError("exactly one format must be marked current")
    formats = {fid: _build_format(fid, ids, data) for fid in ids}
    _check_cross_year(formats)
    return formats


def _build_format(fid: str, ids: list[str], data: Mapping[str, Any]) -> Format:
    meta = data["formats"][fid]
    _keys(meta, f"format {fid}", {"title", "notice", "first_year", "last_year", "current",
                                  "template_version", "signals"})
    types = {k: _value_type(k, v) for k, v in data["types"].items()}
    sections = tuple(_section(s, fid, ids) for s in data["sections"])
    cells = _cells(sections, types)
    sets = {name: _resolve_set(name, spec, sections) for name, spec in data["sets"].items()}
    identities = tuple(
        inst for spec in data["identities"] if _applies(spec, fid, ids)
        for inst in _identities(spec, sets, cells))
    rules = tuple(
        inst for spec in data["rules"] if _applies(spec, fid, ids)
        for inst in _rules(spec, sets, cells, data["cover"]))
    words = _words(data["template"])
    fmt = Format(
        id=fid,
        title=meta["title"],
        notice=meta["notice"],
        first_year=meta["first_year"],
        last_year=meta.get("last_year"),
        current=bool(meta.get("current")),
        template_version=meta["template_version"],
        signals=tuple(meta["signals"]),
        sections=sections,
        cells=cells,
        identities=identities,
        rules=rules,
        cover=tuple(_cover_field(c) for c in data["cover"]),
        narratives=tuple(Narrative(**n) for n in data["narratives"]),
        words=words,
        types=types,
        derived=_derived(sections),
        key_figures=tuple(_key_figure(k, cells) for k in data.get("key_figures", ())),
        cross_year=tuple(inst for spec in data.get("cross_year", ()) if _applies(spec, fid, ids)
                         for inst in _cross_year(spec, sets, cells, ids)),
        copied_text=_copied_text(data["copied_text"], data["narratives"]) if "copied_text" in data else None,
    )
    _check(fmt)
    return fmt


def _keys(table: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise FormatDataError(f"{where}: unknown keys {sorted(unknown)}")


def _applies(spec: Mapping[str, Any], fid: str, ids: list[str]) -> bool:
    formats = spec.get("formats", ids)
    if not set(formats) <= set(ids):
        raise FormatDataError(f"{spec}: unknown formats {formats}")
    return fid in formats


def _value_type(key: str, spec: Mapping[str, Any]) -> ValueType:
    _keys(spec, f"type {key}", set(ValueType.__dataclass_fields__) - {"key"})
    return ValueType(key=key, integer=spec["integer"], min=spec.get("min"), dv_min=spec.get("dv_min", spec.get("min")),
                     unit=spec.get("unit"), number_format=spec["number_format"], dv_title=spec["dv_title"],
                     dv_input=spec["dv_input"], dv_error=spec["dv_error"])


def _node(spec: Mapping[str, Any], where: str) -> Node:
    _keys(spec, where, _NODE_KEYS)
    args = {k: v for k, v in spec.items() if k != "formats"}
    for key in ("aliases", "blocks"):
        if key in args:
            args[key] = tuple(args[key])
    return Node(**args)


def _section(spec: Mapping[str, Any], fid: str, ids: list[str]) -> Section:
    where = f"section {spec.get('key')}"
    _keys(spec, where, {"key", "number", "heading", "sheet", "layout", "cell_id", "unit", "note",
                        "row_header", "value_columns", "blocks", "rows", "columns"})
    rows = tuple(_node(r, f"{where} row") for r in spec.get("rows", ()) if _applies(r, fid, ids))
    columns = tuple(_node(c, f"{where} column") for c in spec.get("columns", ()) if _applies(c, fid, ids))
    blocks = tuple(Block(b["key"], b["caption"]) for b in spec.get("blocks", ()) if _applies(b, fid, ids))
    section = Section(
        key=spec["key"], number=spec["number"], heading=spec["heading"], sheet=spec["sheet"],
        layout=spec["layout"], cell_id=spec["cell_id"], unit=spec["unit"], note=spec.get("note"),
        row_header=spec.get("row_header"), value_columns=spec.get("value_columns", 0),
        blocks=blocks, rows=rows, columns=columns)
    if section.layout not in ("blocks", "grid"):
        raise FormatDataError(f"{where}: unknown layout {section.layout!r}")
    for axis, nodes in (("rows", rows), ("columns", columns)):
        keys = [n.key for n in nodes]
        if len(keys) != len(set(keys)):
            raise FormatDataError(f"{where} ({fid}): duplicate {axis} keys")
        for node in nodes:
            if node.parent is not None and node.parent not in keys:
                raise FormatDataError(f"{where}: {node.key} names unknown parent {node.parent}")
    return section


def _section_cells(section: Section) -> Iterator[tuple[Node, Node, tuple[str, ...], tuple[str, ...]]]:
    """(row, column, row path, column path) of every printed cell, in printed order."""
    if section.layout == "blocks":
        for block in section.blocks:
            for row in (r for r in section.rows if r.block == block.key):
                for col in (c for c in section.columns if block.key in c.blocks):
                    yield row, col, (block.caption, row.label), (col.label,)
        return
    rows = section.leaves("rows") or (Node(key="", label=""),)  # section 四: one unlabelled row
    for row in rows:
        row_path = tuple(n.label for n in section.path("rows", row.key)) if row.key else ()
        for col in section.leaves("columns"):
            yield row, col, row_path, tuple(n.label for n in section.path("columns", col.key))


def _cells(sections: tuple[Section, ...], types: Mapping[str, ValueType]) -> dict[str, Cell]:
    cells: dict[str, Cell] = {}
    for section in sections:
        for row, col, row_path, col_path in _section_cells(section):
            cid = section.cell_id.format(row=row.key, col=col.key)
            if cid in cells:
                raise FormatDataError(f"duplicate cell id {cid}")
            vtype = types[col.type or "count"]
            unit = col.unit if col.unit is not None else (vtype.unit or section.unit)
            kind = "total" if "total" in (row.kind, col.kind) else "input"
            cells[cid] = Cell(cid, name_for(cid), section.key, row.key, col.key, row_path, col_path,
                              kind, vtype, unit)
        own = [c for c in cells.values() if c.section == section.key]
        rows = _shortest_unique([c.row_path[1:] if section.layout == "blocks" else c.row_path for c in own])
        cols = _shortest_unique([c.col_path for c in own])
        for cell, row_short, col_short in zip(own, rows, cols, strict=True):
            cells[cell.id] = dataclasses.replace(cell, row_short=row_short, col_short=col_short)
    return cells


def _shortest_unique(paths: list[tuple[str, ...]]) -> list[str]:
    """For each label path, its shortest ending that no other distinct path shares, joined by " / "."""
    distinct = set(paths)
    out = []
    for path in paths:
        k = 1
        while k < len(path) and sum(p[-k:] == path[-k:] for p in distinct) > 1:
            k += 1
        out.append(" / ".join(path[-k:]))
    return out


def _derived(sections: tuple[Section, ...]) -> dict[str, tuple[str, ...]]:
    """Cells not printed in this format but defined as a sum of printed ones (spec §6.2, s3.other.c)."""
    out: dict[str, tuple[str, ...]] = {}
    for section in sections:
        if section.layout != "grid":
            continue
        for node in (n for n in section.rows if n.derived):
            for col in section.leaves("columns"):
                fmt = section.cell_id.format
                out[fmt(row=node.key, col=col.key)] = tuple(
                    fmt(row=leaf.key, col=col.key) for leaf in section.leaves("rows", under=node.key))
    return out


def _resolve_set(name: str, spec: Mapping[str, Any], sections: tuple[Section, ...]) -> tuple[str, ...]:
    if not name.isupper():
        raise FormatDataError(f"set names are UPPERCASE: {name}")
    if "values" in spec:
        return tuple(spec["values"])
    _keys(spec, f"set {name}", {"section", "axis", "kind", "role"})
    section = next(s for s in sections if s.key == spec["section"])
    return tuple(n.key for n in section.leaves(spec["axis"])
                 if spec.get("kind", n.kind) == n.kind and spec.get("role", n.role) == n.role)


def _bindings(for_each: Mapping[str, Any], sets: Mapping[str, tuple[str, ...]]) -> Iterator[dict[str, str]]:
    names = list(for_each)
    domains = [sets[v] if isinstance(v, str) else tuple(v) for v in for_each.values()]
    for combo in itertools.product(*domains):
        yield dict(zip(names, combo, strict=True))


def _expand(patterns: Iterable[str], binding: Mapping[str, str], sets: Mapping[str, tuple[str, ...]],
            cells: Mapping[str, Cell], where: str) -> tuple[str, ...]:
    out: list[str] = []
    for pattern in patterns:
        bound = _PLACEHOLDER.sub(lambda m: binding.get(m.group(1), m.group(0)), pattern)
        open_sets = _PLACEHOLDER.findall(bound)
        if len(open_sets) > 1 or (open_sets and open_sets[0] not in sets):
            raise FormatDataError(f"{where}: cannot expand {pattern!r}")
        expanded = [bound.replace(f"{{{open_sets[0]}}}", v) for v in sets[open_sets[0]]] if open_sets else [bound]
        for cid in expanded:
            if cid not in cells:
                raise FormatDataError(f"{where}: {pattern!r} names unknown cell {cid}")
            out.append(cid)
    return tuple(out)


def _instance_name(base: str, binding: Mapping[str, str]) -> str:
    return f"{base}[{','.join(binding.values())}]" if binding else base


def _identities(spec: Mapping[str, Any], sets: Mapping[str, tuple[str, ...]],
                cells: Mapping[str, Cell]) -> Iterator[Identity]:
    _keys(spec, f"identity {spec.get('id')}", {"id", "class", "section", "for_each", "lhs", "rhs",
                                               "anchor", "defer_to", "printed", "zh", "en", "expected_zh",
                                               "expected_en", "check", "formats"})
    defer = spec.get("defer_to")
    for binding in _bindings(spec.get("for_each", {}), sets):
        rule = _instance_name(spec["id"], binding)
        lhs = _expand(spec["lhs"], binding, sets, cells, rule)
        rhs = _expand(spec["rhs"], binding, sets, cells, rule)
        (anchor,) = _expand([spec["anchor"]], binding, sets, cells, rule)
        if anchor not in (*lhs, *rhs):
            raise FormatDataError(f"{rule}: anchor {anchor} is not a term")
        deferred = defer is not None and all(binding.get(k) == v for k, v in defer["when"].items())
        yield Identity(
            rule=rule, family=spec["id"], section=spec["section"], binding=tuple(binding.items()),
            lhs=lhs, rhs=rhs, anchor=anchor, defer_to=defer["identity"] if defer is not None and deferred else None,
            cls=spec["class"], printed=spec.get("printed"), zh=spec["zh"], en=spec["en"],
            expected_zh=spec["expected_zh"], expected_en=spec["expected_en"], check=spec["check"])


def _rules(spec: Mapping[str, Any], sets: Mapping[str, tuple[str, ...]],
           cells: Mapping[str, Cell], cover: Iterable[Mapping[str, Any]]) -> Iterator[Rule]:
    _keys(spec, f"rule {spec.get('id')}", {"id", "formats", "kind", "for_each", "lhs", "rhs", "when",
                                           "cells", "max", "min", "thresholds", "part", "zh", "en", "levels", "code",
                                           "max_share", "min_count"})
    if spec["kind"] not in ("le", "implies_zero", "expect_zero", "same_zero", "max_decimals", "share_max", "magnitude"):
        raise FormatDataError(f"rule {spec['id']}: unknown kind {spec['kind']!r}")
    if spec["kind"] == "magnitude" and "min" not in spec:
        raise FormatDataError(f"rule {spec['id']}: a magnitude rule needs min (the threshold for any level)")
    thresholds = tuple((str(k), float(v)) for k, v in spec.get("thresholds", {}).items())
    levels = _level_choices(cover)
    unknown = (set(spec.get("levels", ())) | {k for k, _ in thresholds}) - set(levels)
    if unknown:
        raise FormatDataError(f"rule {spec['id']}: unknown levels {sorted(unknown)}; known: {levels}")
    for binding in _bindings(spec.get("for_each", {}), sets):
        name = _instance_name(spec["id"], {**binding, **({"part": spec["part"]} if "part" in spec else {})})
        terms = {k: _expand(spec.get(k, ()), binding, sets, cells, name) for k in ("lhs", "rhs", "when", "cells")}
        if spec["kind"] == "magnitude" and any(cells[c].type.integer for c in terms["cells"]):
            raise FormatDataError(f"rule {spec['id']}: a magnitude rule applies to money cells only")
        yield Rule(rule=name, family=spec["id"], kind=spec["kind"], max=spec.get("max"),
                   min=float(spec["min"]) if "min" in spec else None, thresholds=thresholds,
                   zh=spec["zh"], en=spec["en"], levels=tuple(spec.get("levels", ())),
                   code=spec.get("code", "implausible-value"), max_share=float(spec.get("max_share", 0.0)),
                   min_count=int(spec.get("min_count", 0)), **terms)


def _cover_field(spec: Mapping[str, Any]) -> CoverField:
    _keys(spec, f"cover field {spec.get('name')}", {"name", "role", "label", "type", "hint", "choices"})
    if spec["type"] not in ("text", "year", "choice") or (spec["type"] == "choice") != bool(spec.get("choices")):
        raise FormatDataError(f"cover field {spec['name']}: a choice field, and only it, has choices")
    return CoverField(spec["name"], spec["role"], spec["label"], spec["type"], spec.get("hint"),
                      tuple(spec.get("choices", ())))


def _level_choices(cover: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The body levels of ruling 7: the choices of the cover field with the role `level`."""
    return next((tuple(c.get("choices", ())) for c in cover if c.get("role") == "level"), ())


def _key_figure(spec: Mapping[str, Any], cells: Mapping[str, Cell]) -> KeyFigure:
    _keys(spec, f"key figure {spec.get('key')}", set(KeyFigure.__dataclass_fields__))
    args: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()}
    figure = KeyFigure(**args)
    unknown = [c for c in (*figure.cells, *figure.numerator, *figure.denominator) if c not in cells]
    if unknown or not (figure.cells or figure.denominator):
        raise FormatDataError(f"key figure {figure.key}: unknown cells {unknown}")
    return figure


def _cross_year(spec: Mapping[str, Any], sets: Mapping[str, tuple[str, ...]], cells: Mapping[str, Cell],
                ids: list[str]) -> Iterator[CrossYearRule]:
    """Expand one cross-year rule for this year's format; last year's cells are checked by `_check_cross_year`."""
    where = f"cross-year rule {spec.get('id')}"
    _keys(spec, where, {"id", "level", "formats", "previous_formats", "first_year", "for_each", "terms", "lhs",
                        "rhs", "anchor", "zh", "en", "why_zh", "why_en", "check"})
    if spec.get("level") not in ("strong", "normal"):
        raise FormatDataError(f"{where}: level must be strong or normal")
    previous_formats = tuple(spec.get("previous_formats", ids))
    if not set(previous_formats) <= set(ids):
        raise FormatDataError(f"{where}: unknown previous formats {previous_formats}")
    names = set(spec["terms"])
    if not {*spec["lhs"], *spec["rhs"], spec["anchor"]} <= names or spec["anchor"] not in (*spec["lhs"], *spec["rhs"]):
        raise FormatDataError(f"{where}: lhs, rhs and anchor must name its terms, the anchor among them")
    for binding in _bindings(spec.get("for_each", {}), sets):
        rule = _instance_name(spec["id"], binding)
        terms = {}
        for name, pattern in spec["terms"].items():
            previous = pattern.startswith("last:")
            bound = _PLACEHOLDER.sub(lambda m: binding.get(m.group(1), m.group(0)), pattern.removeprefix("last:"))
            if _PLACEHOLDER.search(bound):
                raise FormatDataError(f"{rule}: term {name} is not bound: {pattern!r}")
            if not previous and bound not in cells:
                raise FormatDataError(f"{rule}: term {name} names unknown cell {bound}")
            terms[name] = Term(name, bound, previous)
        if terms[spec["anchor"]].previous:
            raise FormatDataError(f"{rule}: the anchor must be a cell of this year's report")
        yield CrossYearRule(
            rule=rule, family=spec["id"], level=spec["level"], binding=tuple(binding.items()),
            lhs=tuple(terms[n] for n in spec["lhs"]), rhs=tuple(terms[n] for n in spec["rhs"]),
            anchor=terms[spec["anchor"]], previous_formats=previous_formats, first_year=spec.get("first_year"),
            zh=spec["zh"], en=spec["en"], why_zh=spec["why_zh"], why_en=spec["why_en"], check=spec["check"])


def _check_cross_year(formats: Mapping[str, Format]) -> None:
    """Last year's cells of every cross-year rule exist in every format last year's report may have."""
    for fmt in formats.values():
        for rule in fmt.cross_year:
            for fid in rule.previous_formats:
                unknown = [c for c in rule.previous_cells if c not in formats[fid].cells]
                if unknown:
                    raise FormatDataError(f"{rule.rule}: format {fid} has no cell {unknown[0]}")
            placeholders = {t.name for t in rule.terms} | {"expected"}
            for message in (rule.zh, rule.en):
                used = set(_PLACEHOLDER.findall(message))
                if not used <= placeholders:
                    raise FormatDataError(f"{rule.rule}: unknown placeholders {sorted(used - placeholders)}")


def _copied_text(spec: Mapping[str, Any], narratives: Iterable[Mapping[str, Any]]) -> CopiedText:
    _keys(spec, "copied_text", set(CopiedText.__dataclass_fields__))
    rule = CopiedText(tuple(spec["across_years"]), tuple(spec["across_offices"]), float(spec["ratio"]),
                      int(spec["min_chars"]), spec["year_rule"], spec["office_rule"])
    known = {n["name"] for n in narratives}
    if not {*rule.across_years, *rule.across_offices} <= known or not 0 < rule.ratio <= 1:
        raise FormatDataError("copied_text: unknown narrative sections or a ratio outside (0, 1]")
    return rule


# Where each of the tool's own words of the standard workbook lives in data/words/ (the rest is format data).
_OWN_WORDS = {
    "cover_sheet": "template", "narrative_sheet": "template", "title": "template", "format_label": "template",
    "version_label": "template", "instructions_heading": "template", "check_ok": "template",
    "check_fail": "template", "check_blank": "template", "unit_note": "template", "narrative_hint_label": "template",
    "report_sheet": "convert", "report_title": "convert", "failed_mark": "convert", "log_sheet": "convert",
    "data_sheet": "convert", "mapping_sheet": "convert",
    "detail_sheet": "aggregate", "compare_sheet": "aggregate", "total_label": "aggregate",
}


def _words(spec: Mapping[str, Any]) -> TemplateWords:
    _keys(spec, "template", {"report_name", "title_pattern", "format_name", "version_name"})
    own = {name: text(f"{module}.{name}") for name, module in _OWN_WORDS.items()}
    return TemplateWords(**spec, **own, instructions=tuple(text_list("template.instructions")))


def _check(fmt: Format) -> None:
    """Whole-format checks that no single record can make."""
    names = [c.name for c in fmt.cells.values()] + [f.name for f in fmt.cover] + [
        n.name for n in fmt.narratives] + [fmt.words.format_name, fmt.words.version_name]
    folded = [n.lower() for n in names]  # Excel names are case-insensitive
    if len(set(folded)) != len(folded):
        raise FormatDataError(f"format {fmt.id}: a defined name is used twice")
    bad = [n for n in names if not _NAME_RE.match(n)]
    if bad:
        raise FormatDataError(f"format {fmt.id}: invalid defined names {bad}")
    if len({name_for(c) for c in fmt.cells}) != len(fmt.cells):
        raise FormatDataError(f"format {fmt.id}: cell id → defined name is not one-to-one")
    rules = [i.rule for i in fmt.identities] + [r.rule for r in fmt.rules]
    if len(set(rules)) != len(rules):
        raise FormatDataError(f"format {fmt.id}: duplicate rule instance names")
    words = fmt.words
    sheets = [s.sheet for s in fmt.sections] + [words.cover_sheet, words.narrative_sheet, words.report_sheet,
                                                words.log_sheet, words.data_sheet, words.mapping_sheet,
                                                words.detail_sheet, words.compare_sheet]
    if len(set(sheets)) != len(sheets) or any(len(s) > 31 or set(s) & set("[]:*?/\\") for s in sheets):
        raise FormatDataError(f"format {fmt.id}: sheet names must be unique valid Excel names")
