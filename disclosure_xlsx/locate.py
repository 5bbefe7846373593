"""Find a format's cells in a workbook by the printed row and column labels.

Used when a workbook has no (or broken) defined names: one rebuilt by copy and paste, or a table pasted
from a published report. Labels are compared after NFKC normalisation with whitespace and punctuation
removed (spec §11.2 E6); an alias, a label with a parenthetical added (E7) or a near-miss typo (E4, E5)
still matches, but is reported as a variant, and so does a label that lost one short run of characters
from its inside (a real report prints row 2 of 不予公开 without 法规禁). A group the format defines as the
sum of its rows (the current （六） group), printed as the single row the older format has, is one
finding, not one per missing row.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from .catalog import CellRef, Finding, bilingual, number_text
from .catalog import text as words  # `text` is a label here
from .formats import Format, Node, Section
from .layout import a1
from .limits import MAX_FUZZY_TEXTS, MAX_LABEL_CANDIDATES, MAX_LABEL_CHARS

__all__ = ["Grid", "Position", "Located", "LabelIndex", "detect_format", "dropped_run", "fold", "locate_cells",
           "matches"]

Grid = Sequence[Sequence[object]]  # one sheet as python-calamine returns it (rows of values)
_PAREN_END = re.compile(r"\([^()]*\)$")
FUZZY_MIN_LENGTH = 6  # shorter labels must match exactly: a two-character label is no typo of a longer one
FUZZY_RATIO = 0.88
DROP_MAX = 3  # a typo may lose up to this many consecutive characters from inside a label …
DROP_MIN_KEPT = 8  # … when what is printed still has at least this many (shorter ones are too alike)
DROP_EDGE = 2  # … and keeps at least this many of the label's first and last characters


@lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """The comparable form of a label: NFKC, no whitespace, no punctuation."""
    nfkc = unicodedata.normalize("NFKC", text)
    return "".join(c for c in nfkc if not (c.isspace() or unicodedata.category(c)[0] in "PZC"))


@lru_cache(maxsize=4096)
def _fold_bare(text: str) -> str:
    """The folded label without a trailing parenthetical (spec §11.2 E7: a gloss added to a header)."""
    nfkc = "".join(unicodedata.normalize("NFKC", text).split())
    return fold(_PAREN_END.sub("", nfkc))


@dataclass(frozen=True, slots=True, order=True)
class Position:
    sheet: str
    row: int
    col: int


@dataclass(frozen=True, slots=True)
class Variant:
    """A label read under a different spelling than the official one."""

    position: Position
    found: str
    label: str
    section: str


@dataclass(frozen=True, slots=True)
class Missing:
    """A row or column label (or a whole table) that could not be found."""

    section: str
    label: str
    cells: int  # how many cells cannot be read because of it
    after: str | None  # the label it should follow, to say where it was expected


@dataclass
class Located:
    positions: dict[str, Position] = field(default_factory=dict)
    variants: list[Variant] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)  # problems found while locating (a row not split)


class LabelIndex:
    """Every text cell of a workbook short enough to be a label, folded once, for label look-ups.

    A look-up costs at most one pass over the workbook's distinct texts per label, however many cells
    repeat a label or resemble one (`find` is memoised; typos are sought among at most MAX_FUZZY_TEXTS
    distinct texts of about the label's length).
    """

    def __init__(self, sheets: Mapping[str, Grid]) -> None:
        self.sheets = sheets
        self.texts: list[tuple[Position, str]] = []
        self.by_fold: dict[str, list[Position]] = {}
        for name, grid in sheets.items():
            for r, row in enumerate(grid):
                for c, value in enumerate(row):
                    if isinstance(value, str) and value.strip() and len(value) <= MAX_LABEL_CHARS:
                        pos = Position(name, r, c)
                        self.texts.append((pos, value))
                        self.by_fold.setdefault(fold(value), []).append(pos)
        self._found: dict[tuple[str, tuple[str, ...]], list[tuple[Position, bool]]] = {}
        self._by_length: dict[int, list[str]] | None = None
        self._by_bare: dict[str, list[str]] | None = None

    def text(self, pos: Position) -> str:
        value = self.sheets[pos.sheet][pos.row][pos.col]
        return value if isinstance(value, str) else ""

    def find(self, label: str, aliases: Iterable[str] = ()) -> list[tuple[Position, bool]]:
        """Cells showing `label`: (position, exact) pairs, exact ones first."""
        key = (label, tuple(aliases))
        if key not in self._found:
            self._found[key] = self._find(label, key[1])
        return self._found[key]

    def _find(self, label: str, aliases: tuple[str, ...]) -> list[tuple[Position, bool]]:
        exact = [(p, True) for p in self.by_fold.get(fold(label), [])]
        if exact:
            return exact
        out = [(p, False) for alias in aliases for p in self.by_fold.get(fold(alias), [])]
        if out:
            return out
        # what `matches(text, label) == "variant"` accepts: the label with a gloss added, or a typo
        variants = set(self._bare().get(_fold_bare(label), [])) if _fold_bare(label) else set()
        target = fold(label)
        if len(target) >= FUZZY_MIN_LENGTH:
            pool = [t for n in range(len(target) - 2, len(target) + 3) for t in self._lengths().get(n, [])]
            variants.update(t for t in pool[:MAX_FUZZY_TEXTS] if t != target and _similar(t, target))
        return [(pos, False) for pos, text in self.texts if fold(text) in variants] if variants else []

    def _lengths(self) -> dict[int, list[str]]:
        if self._by_length is None:
            self._by_length = {}
            for folded in self.by_fold:
                self._by_length.setdefault(len(folded), []).append(folded)
        return self._by_length

    def _bare(self) -> dict[str, list[str]]:
        if self._by_bare is None:
            self._by_bare = {}
            for _, text in self.texts:
                folded = fold(text)
                if folded:
                    self._by_bare.setdefault(_fold_bare(text), []).append(folded)
        return self._by_bare


def _similar(folded: str, target: str) -> bool:
    """A near-miss typo (spec §11.2 E4, E5); the cheap upper bound first, the same answer as `ratio()`."""
    matcher = difflib.SequenceMatcher(None, folded, target)
    return matcher.quick_ratio() >= FUZZY_RATIO and matcher.ratio() >= FUZZY_RATIO


def matches(text: str, label: str, aliases: Iterable[str] = ()) -> str | None:
    """"exact" when `text` is `label` up to whitespace and punctuation, "variant" for an alias, an
    added parenthetical or a near-miss typo, else None. A text longer than any label is none."""
    if len(text) > MAX_LABEL_CHARS:
        return None
    folded = fold(text)
    if not folded:
        return None
    if folded == fold(label):
        return "exact"
    if any(folded == fold(a) for a in aliases):
        return "variant"
    bare = _fold_bare(label)
    if bare and _fold_bare(text) == bare:
        return "variant"
    target = fold(label)
    if len(target) >= FUZZY_MIN_LENGTH and abs(len(folded) - len(target)) <= 2 and _similar(folded, target):
        return "variant"
    if dropped_run(folded, target):
        return "variant"
    return None


def dropped_run(text: str, label: str) -> bool:
    """Whether folded `text` is folded `label` with one run of 1–3 characters dropped from its inside.

    Real reports print row 2 of 不予公开 without its 法规禁: three characters lost,
    too many for the similarity ratio. Requiring a long remainder and both ends intact keeps this from
    matching one official label to another (tested over every label of every format).
    """
    cut = len(label) - len(text)
    if not 1 <= cut <= DROP_MAX or len(text) < DROP_MIN_KEPT:
        return False
    prefix = len(_common_prefix(text, label))
    suffix = len(_common_prefix(text[::-1], label[::-1]))
    first, last = max(DROP_EDGE, len(text) - suffix), min(prefix, len(text) - DROP_EDGE)
    return first <= last


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def detect_format(index: LabelIndex, formats: Iterable[Format]) -> Format | None:
    """The format whose detection signals (spec §1) the workbook shows most; None if it shows none."""
    scored = [(sum(bool(index.by_fold.get(fold(s))) for s in f.signals), f) for f in formats]
    best = max(scored, key=lambda t: t[0], default=(0, None))
    return best[1] if best[0] > 0 else None


def locate_cells(fmt: Format, index: LabelIndex) -> Located:
    """Positions of every cell of `fmt` found by labels, with the variants and the labels not found."""
    found = Located()
    for section in fmt.sections:
        if section.layout == "blocks":
            _blocks(fmt, section, index, found)
        else:
            _grid(fmt, section, index, found)
    return found


def _cell_id(section: Section, row: str, col: str) -> str:
    return section.cell_id.format(row=row, col=col)


def _note(found: Located, section: Section, pos: Position, label: str, exact: bool, index: LabelIndex) -> None:
    if not exact:
        found.variants.append(Variant(pos, index.text(pos), label, section.key))


def _grid(fmt: Format, section: Section, index: LabelIndex, found: Located) -> None:
    """A tree-headed table: leaf column labels in printed order, consecutive, in one header band."""
    leaves = section.leaves("columns")
    depth = section.depth("columns")
    header = None
    # each later leaf's cells by (sheet, column): a candidate start looks up only its own next columns
    later = []
    for leaf in leaves[1:]:
        by_column: dict[tuple[str, int], list[tuple[Position, bool]]] = {}
        for pos, exact in index.find(leaf.label, leaf.aliases):
            by_column.setdefault((pos.sheet, pos.col), []).append((pos, exact))
        later.append(by_column)
    for start, exact0 in index.find(leaves[0].label, leaves[0].aliases)[:MAX_LABEL_CANDIDATES]:
        cols = [(start, exact0)]
        for i, by_column in enumerate(later, 1):
            near = [(p, e) for p, e in by_column.get((start.sheet, start.col + i), [])
                    if abs(p.row - start.row) <= depth]
            if not near:
                break
            cols.append(near[0])
        if len(cols) == len(leaves):
            header = cols
            break
    rows = section.leaves("rows")
    if header is None:
        found.missing.append(Missing(section.key, section.heading, len(fmt.section_cells(section.key)), None))
        return
    for leaf, (pos, exact) in zip(leaves, header, strict=True):
        _note(found, section, pos, leaf.label, exact, index)
    sheet = header[0][0].sheet
    first_col = header[0][0].col
    bottom = max(p.row for p, _ in header)
    columns = [(leaf, pos.col) for leaf, (pos, _) in zip(leaves, header, strict=True)]
    row_of = (_row_labels(fmt, section, rows, index, sheet, bottom + 1, first_col, columns, found) if rows
              else {"": bottom + 1})
    for row_key, r in row_of.items():
        for leaf, col in columns:
            found.positions[_cell_id(section, row_key, leaf.key)] = Position(sheet, r, col)


def _row_labels(fmt: Format, section: Section, rows: Sequence[Node], index: LabelIndex, sheet: str, top: int,
                label_cols: int, columns: Sequence[tuple[Node, int]], found: Located) -> dict[str, int]:
    """Row leaf → sheet row, matching the last label left of the data in each row (spec §3.2)."""
    grid = index.sheets[sheet]
    row_of: dict[str, int] = {}
    merged = [n for n in section.rows if n.group and n.derived]  # groups another format prints as one row
    single: dict[str, Position] = {}
    for r in range(top, len(grid)):
        texts = [v for v in grid[r][:label_cols] if isinstance(v, str) and v.strip()]
        if not texts:
            continue
        pos = Position(sheet, r, grid[r][:label_cols].index(texts[-1]))
        hit = _best(texts[-1], [leaf for leaf in rows if leaf.key not in row_of])
        if hit:
            leaf, exact = hit
            row_of[leaf.key] = r
            _note(found, section, pos, leaf.label, exact, index)
            continue
        group = _best(texts[-1], [g for g in merged if g.key not in single])
        if group:
            single[group[0].key] = pos
    unsplit = {}
    for key, pos in single.items():
        parts = section.leaves("rows", under=key)
        if not any(p.key in row_of for p in parts):
            unsplit.update(dict.fromkeys(p.key for p in parts))
            found.findings.append(_unsplit(fmt, section, section.node("rows", key), parts, pos, columns, index))
    previous = None
    for leaf in rows:
        if leaf.key not in row_of and leaf.key not in unsplit:
            found.missing.append(Missing(section.key, leaf.label, len(section.leaves("columns")), previous))
        previous = leaf.label
    return row_of


def _unsplit(fmt: Format, section: Section, group: Node, parts: Sequence[Node], pos: Position,
             columns: Sequence[tuple[Node, int]], index: LabelIndex) -> Finding:
    """One finding for a group printed as a single row: what it should be split into, and its numbers."""
    row = index.sheets[pos.sheet][pos.row]
    values = [(col.label, row[c] if c < len(row) else "") for col, c in columns]

    def shown(lang: str) -> str:
        return words("locate.list_sep", lang).join(f"{label} {_raw(v, lang)}" for label, v in values)

    def labels(lang: str) -> str:
        return words("locate.list_sep", lang).join(words("locate.quoted", lang, label=p.label) for p in parts)

    count = len(parts)
    total, col = next(((c, i) for c, i in columns if c.kind == "total"), columns[-1])
    anchor = CellRef(_cell_id(section, group.key, total.key), pos.sheet, a1(pos.row, col))  # spec §6.2 id
    return Finding("row-not-split", cells=(anchor,), rule="R4", params={
        "section": bilingual(section.heading, words("locate.section", "en", number=section.number)),
        "label": group.label, "ref": f"{pos.sheet}!{a1(pos.row, pos.col)}",
        "format_title": bilingual(fmt.title, words("locate.format_title", "en", id=fmt.id)),
        "count": bilingual(words("locate.numerals", "zh").split()[count] if count < 10 else str(count), str(count)),
        "rows": bilingual(labels("zh"), labels("en")), "values": bilingual(shown("zh"), shown("en"))})


def _raw(value: object, lang: str) -> str:
    shown = number_text(value) if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
    return shown.strip() or words("locate.blank", lang)


def _best(text: str, nodes: Sequence[Node]) -> tuple[Node, bool] | None:
    """The node `text` names: an exact match wins over any variant; (node, exact) or None."""
    kinds = [(matches(text, n.label, n.aliases), n) for n in nodes]
    exact = next((n for k, n in kinds if k == "exact"), None)
    if exact:
        return exact, True
    variant = next((n for k, n in kinds if k == "variant"), None)
    return (variant, False) if variant else None


def _blocks(fmt: Format, section: Section, index: LabelIndex, found: Located) -> None:
    """Captioned blocks: caption, then a header row with the column labels, then one row per item."""
    captions = [b.caption for b in section.blocks]
    for block in section.blocks:
        columns = [c for c in section.columns if block.key in c.blocks]
        rows = [r for r in section.rows if r.block == block.key]
        for caption_pos, caption_exact in index.find(block.caption)[:MAX_LABEL_CANDIDATES]:
            located = _block_at(section, block.key, columns, rows, caption_pos, captions, index, found)
            if located:
                _note(found, section, caption_pos, block.caption, caption_exact, index)
                break
        else:
            found.missing.append(Missing(section.key, block.caption, len(rows) * len(columns), None))


def _block_at(section: Section, block: str, columns: list[Node], rows: list[Node], caption: Position,
              captions: list[str], index: LabelIndex, found: Located) -> bool:
    grid = index.sheets[caption.sheet]
    for header_row in range(caption.row + 1, min(caption.row + 4, len(grid))):
        col_of: dict[str, tuple[int, bool]] = {}
        for c, value in enumerate(grid[header_row]):
            for col in columns:
                kind = matches(value, col.label, col.aliases) if isinstance(value, str) else None
                if kind and col.key not in col_of:
                    col_of[col.key] = (c, kind == "exact")
        if len(col_of) == len(columns):
            break
    else:
        return False
    for col in columns:
        c, exact = col_of[col.key]
        _note(found, section, Position(caption.sheet, header_row, c), col.label, exact, index)
    first_value_col = min(c for c, _ in col_of.values())
    row_of: dict[str, int] = {}
    for r in range(header_row + 1, min(header_row + 2 + 2 * len(rows), len(grid))):
        texts = [v for v in grid[r][:first_value_col] if isinstance(v, str) and v.strip()]
        if not texts:
            continue
        if any(matches(texts[0], cap) == "exact" for cap in captions):
            break  # the next block
        hit = _best(texts[0], [node for node in rows if node.key not in row_of])
        if hit:
            node, exact = hit
            row_of[node.key] = r
            pos = Position(caption.sheet, r, grid[r][:first_value_col].index(texts[0]))
            _note(found, section, pos, node.label, exact, index)
    previous = None
    for node in rows:
        if node.key in row_of:
            for col in columns:
                found.positions[_cell_id(section, node.key, col.key)] = Position(
                    caption.sheet, row_of[node.key], col_of[col.key][0])
        else:
            found.missing.append(Missing(section.key, node.label, len(columns), previous))
        previous = node.label
    return True
