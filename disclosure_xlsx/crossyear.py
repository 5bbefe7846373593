"""Last year's report: pair each report with the same office's previous one, and check what must carry over.

Spec §8 and ruling 8: the requests carried into a year are those the year before carried out (X1, the
strongest warning), the stock of documents in force follows from last year's (X2), the older format's item
counts likewise (X3); narratives must not be copied from last year or from another office (年年雷同). The
rules are format data (`[[cross_year]]`, `[copied_text]` in formats.toml); this module pairs and evaluates.

Pairing is one join per batch: the previous reports are indexed once by credit code and by normalised
name, and each report then costs a few dictionary look-ups. Copies between offices are found with
MinHash signatures banded into buckets (an O(n) prefilter) and confirmed with the exact similarity, so a
province of 20,000 offices is never compared pair by pair.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Indel

from .catalog import CellRef, DisclosureError, Finding, bilingual, number_text, text, text_list
from .clean import CleanReport, cell_where, clean_report
from .formats import CopiedText, CrossYearRule, Format, current_format, format_for_year, get_format
from .locate import fold
from .read import read_workbook
from .template import LastYear, write_template

__all__ = ["CrossYear", "CrossYearFinding", "Pairing", "PreviousCell", "PreviousReport", "check_batch",
           "code_key", "last_year_template", "office_key", "overview_text", "pairing_lines", "read_aliases",
           "similarity", "normalise_text"]

LINES_SHOWN = 20  # unpaired offices listed one by one on the command line
NAMED_PARTNERS = 3  # other offices named in a text-copied finding (and enough to stop looking)
QUOTE_CHARS = 60
SENTENCE_MIN = 8  # a quoted sentence has at least this many characters after normalisation
_SENTENCE_END = re.compile("(?<=[\u3002\uff01\uff1f\uff1b!?;\n])")  # after a full stop, !, ? or ; (either width)
_NOT_WORDING = re.compile(r"[\W\d_A-Za-z]+")  # after NFKC: spaces, punctuation, symbols, digits, Latin letters
_SHINGLE = 4  # characters per shingle of the MinHash prefilter
_BANDS, _ROWS = 16, 4  # 64 MinHash values, in 16 bands of 4: texts with Jaccard ≥ 0.6 collide with p ≥ 0.89


# ----------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class PreviousReport:
    """One of last year's reports a report is paired with (or, unpaired, one found for another year)."""

    file: str
    office: str | None
    year: int | None
    format_id: str
    matched_by: str  # credit_code | name | alias

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "office": self.office, "year": self.year, "matched_by": self.matched_by}


@dataclass(frozen=True)
class Pairing:
    """How a report was paired with last year's (report.json `previous`).

    `status`: paired | not-found | not-previous-year (the office has reports, none for the year before) |
    ambiguous (two of last year's reports fit) | no-year | no-office. A merged body (several old names
    in the renaming table) has several previous reports; its figures are checked against their sum.
    `unchecked` lists the rule instances a blank or unreadable cell on either side left uncheckable.
    """

    status: str
    previous: tuple[PreviousReport, ...] = ()
    found: tuple[PreviousReport, ...] = ()
    unchecked: tuple[str, ...] = ()
    expected_year: int | None = None

    def to_dict(self) -> dict[str, Any]:
        first = self.previous[0] if self.previous else None
        return {"status": self.status, "file": first.file if first else None,
                "office": first.office if first else None, "year": first.year if first else None,
                "matched_by": first.matched_by if first else None,
                "also": [p.to_dict() for p in self.previous[1:]], "found": [p.to_dict() for p in self.found],
                "unchecked": list(self.unchecked)}


@dataclass(frozen=True, slots=True)
class PreviousCell:
    """A cell of last year's report that a cross-year finding compares with (report.json `previous`)."""

    file: str
    year: int | None
    id: str
    sheet: str
    ref: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        value = int(self.value) if isinstance(self.value, float) and self.value.is_integer() else self.value
        return {"file": self.file, "year": self.year, "id": self.id, "sheet": self.sheet, "ref": self.ref,
                "value": value}


@dataclass(frozen=True)
class CrossYearFinding(Finding):
    """A finding that also names cells of another report: last year's (`previous`), or, for a text copied
    between offices, the other offices' (`same_as`). `level` is "strong" for X1 (spec §8.1)."""

    previous: tuple[PreviousCell, ...] = ()
    same_as: tuple[PreviousCell, ...] = ()
    level: str = "normal"

    def to_dict(self) -> dict[str, Any]:
        out = Finding.to_dict(self)
        out["level"] = self.level
        if self.previous:
            out["previous"] = [c.to_dict() for c in self.previous]
        if self.same_as:
            out["same_as"] = [c.to_dict() for c in self.same_as]
        return out


@dataclass
class CrossYear:
    """What the cross-year checks add to one workbook of the batch."""

    pairing: Pairing | None  # None for a workbook that could not be read
    findings: list[Finding] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------
# Pairing


def office_key(name: str | None) -> str | None:
    """An office name as compared: NFKC (full-width folded), no whitespace, brackets or other punctuation."""
    key = fold(name).casefold() if name else ""
    return key or None


def code_key(code: str | None) -> str | None:
    """A credit code (the cover field) as compared: NFKC, upper case, no spaces or hyphens."""
    if not code:
        return None
    key = "".join(c for c in unicodedata.normalize("NFKC", code).upper() if c.isalnum())
    return key or None


def read_aliases(path: str | Path) -> dict[str, tuple[str, ...]]:
    """The renaming table: new name → the old names its previous reports carry (a merged body has several).

    A UTF-8 CSV (BOM or not) of rows 旧名称,新名称; a first row equal to those words (or old_name,new_name) is
    a header. Names are compared as `office_key` does.

    Raises:
        DisclosureError: the file cannot be read or a row does not have two columns.
    """
    path = Path(path)

    def refuse(reason: dict[str, str]) -> DisclosureError:
        return DisclosureError(Finding("aliases-unreadable", params={"file": path.name, "reason": reason}))

    try:
        content = path.read_text("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise refuse(bilingual(text("crossyear.aliases.not_utf8"), text("crossyear.aliases.not_utf8", "en"))) from exc
    except OSError as exc:
        raise refuse(bilingual(text("crossyear.aliases.missing"), text("crossyear.aliases.missing", "en"))) from exc
    headers = [[office_key(h) for h in text_list("crossyear.aliases.headers", lang)] for lang in ("zh", "en")]
    out: dict[str, list[str]] = defaultdict(list)
    for number, row in enumerate(csv.reader(io.StringIO(content)), 1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if len(cells) != 2 or not all(cells):
            params = {"row": number, "n": len([c for c in cells if c])}
            raise refuse(bilingual(text("crossyear.aliases.columns", "zh", **params),
                                   text("crossyear.aliases.columns", "en", **params)))
        old, new = office_key(cells[0]), office_key(cells[1])
        if number == 1 and [old, new] in headers:
            continue
        if old and new and old != new and old not in out[new]:
            out[new].append(old)
    return {new: tuple(olds) for new, olds in out.items()}


class _Index:
    """Last year's reports, indexed once per batch by credit code and by normalised name."""

    def __init__(self, reports: Iterable[CleanReport]) -> None:
        self.by_code: dict[str, list[CleanReport]] = defaultdict(list)
        self.by_name: dict[str, list[CleanReport]] = defaultdict(list)
        seen: set[str] = set()
        for report in reports:
            if report.file in seen:
                continue
            seen.add(report.file)
            code, name = code_key(report.credit_code), office_key(report.office)
            if code:
                self.by_code[code].append(report)
            if name:
                self.by_name[name].append(report)

    def pair(self, report: CleanReport, aliases: Mapping[str, tuple[str, ...]]) -> tuple[Pairing, list[CleanReport]]:
        """By credit code when both reports have one, else by name; then the renaming table's old names."""
        code, name = code_key(report.credit_code), office_key(report.office)
        if report.year is None:
            return Pairing("no-year"), []
        if not code and not name:
            return Pairing("no-office"), []
        target = report.year - 1
        by_code = self.by_code.get(code, []) if code else []
        by_name = [p for p in self.by_name.get(name, []) if not (code and code_key(p.credit_code))] if name else []
        lookups: list[tuple[str, list[CleanReport]]] = []
        hits = [p for p in by_code if p.year == target]
        lookups.append(("credit_code", hits) if hits else ("name", [p for p in by_name if p.year == target]))
        for old in aliases.get(name or "", ()):  # explicit: an old name is followed whatever the codes say
            lookups.append(("alias", [p for p in self.by_name.get(old, []) if p.year == target]))
        chosen: dict[str, tuple[CleanReport, str]] = {}
        for how, hits in lookups:
            distinct = {p.file: p for p in hits if p.file not in chosen}
            if len(distinct) > 1:
                ambiguous = tuple(_previous(p, how) for p in distinct.values())
                return Pairing("ambiguous", found=ambiguous, expected_year=target), []
            for p in distinct.values():
                chosen[p.file] = (p, how)
        if chosen:
            earlier = [p for p, _ in chosen.values()]
            return Pairing("paired", tuple(_previous(p, how) for p, how in chosen.values()),
                           expected_year=target), earlier
        coded = {p.file for p in by_code}
        others = {p.file: p for p in [*by_code, *by_name] if p.year is not None and p.year < target}
        found = tuple(sorted((_previous(p, "credit_code" if p.file in coded else "name") for p in others.values()),
                             key=lambda r: (r.year or 0, r.file)))
        return Pairing("not-previous-year" if found else "not-found", found=found, expected_year=target), []


def _previous(report: CleanReport, how: str) -> PreviousReport:
    return PreviousReport(report.file, report.office, report.year, report.format_id, how)


# ----------------------------------------------------------------------------------------------
# The batch


def check_batch(current: Sequence[CleanReport | None], previous: Iterable[CleanReport], *,
                aliases: Mapping[str, tuple[str, ...]] | None = None) -> list[CrossYear]:
    """Pair every report of the batch with last year's and return what that adds, in the order given.

    Args:
        current: the batch's reports (None for a file that could not be read).
        previous: last year's reports (they may include reports of `current`: a series checks itself).
        aliases: new name → old names (`read_aliases`).
    """
    index = _Index(previous)
    between = _copied_between_offices(current)
    out = []
    for position, report in enumerate(current):
        if report is None:
            out.append(CrossYear(None))
            continue
        pairing, earlier = index.pair(report, aliases or {})
        findings: list[Finding] = []
        if earlier:
            mismatches, unchecked = _rule_findings(report, earlier)
            findings += mismatches
            findings += _copied_from_last_year(report, earlier)
            pairing = replace(pairing, unchecked=unchecked)
        findings += between.get(position, [])
        out.append(CrossYear(pairing, findings))
    return out


def _rule_findings(report: CleanReport, earlier: Sequence[CleanReport]) -> tuple[list[Finding], tuple[str, ...]]:
    """Every applicable cross-year rule: a mismatch is a finding; a blank on either side, "cannot check"."""
    fmt = get_format(report.format_id)
    findings: list[Finding] = []
    unchecked: list[str] = []
    for rule, current, previous in _rules_of(fmt.id):
        if not all(rule.applies(p.format_id, report.year) for p in earlier):
            continue
        if not _usable(report, current) or not all(_usable(p, previous) for p in earlier):
            unchecked.append(rule.rule)
            continue
        last = {c: sum(p.values[c] for p in earlier) for c in previous}  # type: ignore[misc]
        if rule.difference(report.values, last) != 0:
            findings.append(_mismatch(fmt, rule, report, earlier, last))
    findings.sort(key=lambda f: f.level != "strong")  # type: ignore[attr-defined]
    return findings, tuple(unchecked)


@cache
def _rules_of(format_id: str) -> tuple[tuple[CrossYearRule, tuple[str, ...], tuple[str, ...]], ...]:
    """Each cross-year rule of a format with its cells of this year and of last year, worked out once."""
    return tuple((r, r.current_cells, r.previous_cells) for r in get_format(format_id).cross_year)


def _usable(report: CleanReport, cells: Iterable[str]) -> bool:
    return all(report.values.get(c) is not None and c not in report.unusable for c in cells)


def _mismatch(fmt: Format, rule: CrossYearRule, report: CleanReport, earlier: Sequence[CleanReport],
              last: Mapping[str, Any]) -> Finding:
    values = rule.values(report.values, last)
    expected = rule.expected_anchor(report.values, last)
    shown = {name: number_text(v) for name, v in values.items()} | {"expected": number_text(expected)}
    anchor = fmt.cells[rule.anchor.cell]
    refs = tuple(report.where[c] for c in rule.current_cells)
    previous = tuple(PreviousCell(p.file, p.year, c, p.where[c].sheet, p.where[c].ref, p.values[c])
                     for p in earlier for c in rule.previous_cells)
    files = [Path(p.file).name for p in earlier]
    places = [f"{c.sheet}!{c.ref}" for c in previous]

    def listed(items: list[str]) -> dict[str, str]:
        return {lang: text("crossyear.copied.names_join", lang).join(items) for lang in ("zh", "en")}

    return CrossYearFinding(
        "cross-year-mismatch", cells=refs, rule=rule.rule, expected=expected, actual=values[rule.anchor.name],
        params={"where": cell_where(fmt, anchor, refs[0]), "ref": refs[0].ref,
                "detail": bilingual(rule.zh.format(**shown), rule.en.format(**shown)),
                "why": bilingual(rule.why_zh, rule.why_en),
                "previous_file": listed(files), "previous_refs": listed(places)},
        previous=previous, level=rule.level)


# ----------------------------------------------------------------------------------------------
# Copied text


@lru_cache(maxsize=8192)  # a batch measures each narrative against several others
def normalise_text(raw: str | None) -> str:
    """A narrative as compared: NFKC, without whitespace, digits, Latin letters, punctuation and symbols
    (years, figures and numbering change every year; the wording is what is copied)."""
    if not raw:
        return ""
    return _NOT_WORDING.sub("", unicodedata.normalize("NFKC", str(raw)))


def similarity(a: str, b: str, cutoff: float = 0.0) -> float:
    """2·LCS / (len a + len b) of two normalised texts, in [0, 1] (difflib's ratio, computed exactly);
    0 below `cutoff`."""
    return float(Indel.normalized_similarity(a, b, score_cutoff=cutoff))


def _rule(report: CleanReport) -> CopiedText | None:
    return get_format(report.format_id).copied_text


def _copied_from_last_year(report: CleanReport, earlier: Sequence[CleanReport]) -> list[Finding]:
    """A narrative near-identical to the same section of last year's report (rule C1)."""
    rule = _rule(report)
    if rule is None:
        return []
    fmt = get_format(report.format_id)
    findings: list[Finding] = []
    for name in rule.across_years:
        mine = normalise_text(report.texts.get(name))
        if len(mine) < rule.min_chars:
            continue
        for p in earlier:
            theirs = normalise_text(p.texts.get(name))
            if len(theirs) < rule.min_chars:
                continue
            score = similarity(mine, theirs, rule.ratio)
            if score:
                source = {lang: text("crossyear.copied.last_year", lang, file=Path(p.file).name) for lang in ("zh", "en")}
                findings.append(_copied(fmt, report, name, rule.year_rule, score, source, theirs,
                                        previous=(_text_cell(p, name),)))
                break
    return findings


def _text_cell(report: CleanReport, name: str) -> PreviousCell:
    ref = report.where.get(name) or CellRef(name, "", "")
    return PreviousCell(report.file, report.year, name, ref.sheet, ref.ref, None)


def _copied(fmt: Format, report: CleanReport, name: str, rule: str, score: float, source: Mapping[str, str],
            other: str, *, previous: tuple[PreviousCell, ...] = (),
            same_as: tuple[PreviousCell, ...] = ()) -> Finding:
    narrative = next(n for n in fmt.narratives if n.name == name)
    heading = bilingual(narrative.heading, f"section {narrative.number}")
    pct = {lang: text("crossyear.copied.percent", lang, pct=int(score * 100)) for lang in ("zh", "en")}
    sentence = first_shared_sentence(report.texts.get(name) or "", other)
    ref = report.where.get(name)
    return CrossYearFinding("text-copied", cells=(ref,) if ref else (), rule=rule, params={
        "section": heading, "source": dict(source), "similarity": pct, "sentence": sentence},
        previous=previous, same_as=same_as)


def first_shared_sentence(raw: str, other: str) -> str:
    """The first sentence of `raw` whose wording (normalised) appears in `other` (normalised), shortened;
    else its first substantial sentence."""
    sentences = [s.strip() for s in _SENTENCE_END.split(raw) if len(normalise_text(s)) >= SENTENCE_MIN]
    shared = next((s for s in sentences if normalise_text(s) in other), sentences[0] if sentences else raw.strip())
    shared = " ".join(shared.split())
    return shared if len(shared) <= QUOTE_CHARS else shared[:QUOTE_CHARS] + text("crossyear.copied.ellipsis")


def _copied_between_offices(reports: Sequence[CleanReport | None]) -> dict[int, list[Finding]]:
    """Narratives near-identical between two offices of the batch, flagged on both (rule C2).

    Identical texts are grouped by a dictionary; near-identical ones become candidates only when their
    MinHash signatures share a band (`_candidates`), and each candidate pair is then measured exactly.
    A pair is not measured once both sides already have `NAMED_PARTNERS` partners, so a large group of
    copies costs O(n), not O(n²).
    """
    out: dict[int, list[Finding]] = defaultdict(list)
    present = [r for r in reports if r is not None]
    rule = _rule(present[0]) if present else None
    if rule is None:
        return out
    for name in rule.across_offices:
        items = [(i, normalise_text(r.texts.get(name))) for i, r in enumerate(reports) if r is not None]
        items = [(i, t) for i, t in items if len(t) >= rule.min_chars]
        groups: dict[str, list[int]] = defaultdict(list)  # normalised text → batch positions
        for i, t in items:
            groups[t].append(i)
        texts = list(groups)
        size = [len(groups[t]) for t in texts]
        near: dict[int, list[tuple[int, float]]] = defaultdict(list)  # group → (other group, similarity)
        for u, v in _candidates(texts):
            if size[u] - 1 + sum(size[w] for w, _ in near[u]) >= NAMED_PARTNERS and \
                    size[v] - 1 + sum(size[w] for w, _ in near[v]) >= NAMED_PARTNERS:
                continue
            score = similarity(texts[u], texts[v], rule.ratio)
            if score:
                near[u].append((v, score))
                near[v].append((u, score))
        for g, t in enumerate(texts):
            for position in groups[t]:
                finding = _between(reports, name, position, [(groups[t], 1.0)] + [
                    (groups[texts[w]], score) for w, score in near[g]], rule)
                if finding is not None:
                    out[position].append(finding)
    return out


def _between(reports: Sequence[CleanReport | None], name: str, position: int,
             candidates: list[tuple[list[int], float]], rule: CopiedText) -> Finding | None:
    """The finding for one office whose text other offices share: names up to `NAMED_PARTNERS` of them."""
    report = reports[position]
    assert report is not None
    seen = {office_key(report.office), code_key(report.credit_code)} - {None}
    partners: list[tuple[CleanReport, float]] = []
    for members, score in candidates:
        for other in members:
            o = reports[other]
            keys = {office_key(o.office), code_key(o.credit_code)} - {None} if o is not None else set()
            if o is None or other == position or seen & keys:
                continue  # the same office twice (a duplicate submission) is not a copy, nor named twice
            seen |= keys
            partners.append((o, score))
            if len(partners) > NAMED_PARTNERS:
                break
        if len(partners) > NAMED_PARTNERS:
            break
    if not partners:
        return None
    fmt = get_format(report.format_id)
    named = partners[:NAMED_PARTNERS]
    source = {}
    for lang in ("zh", "en"):
        names = text("crossyear.copied.names_join", lang).join(
            text("crossyear.copied.name", lang, office=o.office or Path(o.file).name) for o, _ in named)
        if len(partners) > NAMED_PARTNERS:
            names += text("crossyear.copied.more", lang)
        source[lang] = text("crossyear.copied.other_offices", lang, names=names)
    best = max(score for _, score in named)
    return _copied(fmt, report, name, rule.office_rule, best, source, normalise_text(named[0][0].texts.get(name)),
                   same_as=tuple(_text_cell(o, name) for o, _ in named))


def _candidates(texts: Sequence[str]) -> list[tuple[int, int]]:
    """Pairs of texts whose MinHash signatures (4-character shingles, 64 hashes) agree on a whole band.

    Deterministic (fixed hash parameters); a pair of texts whose shingle sets have Jaccard similarity s
    is a candidate with probability 1 − (1 − s⁴)¹⁶: 0.89 at s = 0.6, 0.99 at 0.7, 0.03 at 0.2. The
    signatures of the whole batch are computed at once, one pass per hash function.
    """
    if len(texts) < 2:
        return []
    import numpy as np  # only for batches that have narratives to compare

    lengths = np.array([len(t) for t in texts])
    counts = np.maximum(lengths - _SHINGLE + 1, 0)
    keep = np.flatnonzero(counts > 0)
    if len(keep) < 2:
        return []
    codes = np.frombuffer("".join(texts[int(i)] for i in keep).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    windows = len(codes) - _SHINGLE + 1
    h = np.zeros(windows, dtype=np.uint64)
    for j in range(_SHINGLE):  # every window of the joined texts; those crossing a boundary are dropped
        h = h * np.uint64(1_000_003) + codes[j:j + windows]
    offsets = np.concatenate([[0], np.cumsum(lengths[keep])[:-1]])
    within = np.arange(len(codes)) - np.repeat(offsets, lengths[keep])  # a character's place in its text
    h = h[(within < np.repeat(counts[keep], lengths[keep]))[:windows]]
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)  # splitmix64 finaliser: spread the bits before a·h + b
    h ^= h >> np.uint64(29)
    starts = np.concatenate([[0], np.cumsum(counts[keep])[:-1]])
    rng = np.random.default_rng(14)
    a = rng.integers(1, 2**62, size=_BANDS * _ROWS, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**62, size=_BANDS * _ROWS, dtype=np.uint64)
    signatures = np.stack([np.minimum.reduceat(a[k] * h + b[k], starts) for k in range(_BANDS * _ROWS)], axis=1)
    pairs: set[tuple[int, int]] = set()
    for band in range(_BANDS):  # texts whose band is equal share a bucket; only shared buckets are visited
        rows = np.ascontiguousarray(signatures[:, band * _ROWS:(band + 1) * _ROWS])
        _, bucket, sizes = np.unique(rows.view(np.dtype((np.void, 8 * _ROWS))).ravel(), return_inverse=True,
                                     return_counts=True)
        order = np.argsort(bucket.ravel(), kind="stable")
        ends = np.cumsum(sizes)
        for shared in np.flatnonzero(sizes > 1):
            members = sorted(int(m) for m in keep[order[ends[shared] - sizes[shared]:ends[shared]]])
            pairs.update((u, v) for k, u in enumerate(members) for v in members[k + 1:])
    return sorted(pairs)


# ----------------------------------------------------------------------------------------------
# Words for people


def overview_text(pairing: Pairing | None, findings: Sequence[Finding], lang: str = "zh") -> str:
    """The 校验汇总 column 与上年衔接 for one workbook: one short text ("" when not compared)."""
    if pairing is None:
        return ""
    files = text("crossyear.overview.join", lang).join(Path(p.file).name for p in pairing.previous or pairing.found)
    if pairing.status == "paired":
        mismatches = sum(f.code == "cross-year-mismatch" for f in findings)
        copied = sum(f.code == "text-copied" for f in findings)
        parts = [text("crossyear.overview.mismatches", lang, n=mismatches) if mismatches
                 else text("crossyear.overview.consistent", lang)]
        if pairing.unchecked:
            parts.append(text("crossyear.overview.unchecked", lang, n=len(pairing.unchecked)))
        if copied:
            parts.append(text("crossyear.overview.copied", lang, n=copied))
        parts.append(text("crossyear.overview.source", lang, files=files))
        return text("crossyear.overview.join", lang).join(parts)
    if pairing.status == "not-previous-year":
        years = text("crossyear.overview.join", lang).join(str(p.year) for p in pairing.found)
        return text("crossyear.overview.not_previous_year", lang, year=pairing.expected_year, years=years)
    copied = sum(f.code == "text-copied" for f in findings)
    key = {"not-found": "not_found", "ambiguous": "ambiguous", "no-year": "no_year", "no-office": "no_office"}
    main = text(f"crossyear.overview.{key[pairing.status]}", lang, files=files)
    return text("crossyear.overview.join", lang).join(
        [main, text("crossyear.overview.copied", lang, n=copied)] if copied else [main])


def pairing_lines(items: Sequence[tuple[str, Pairing | None, Sequence[Finding]]], lang: str = "zh", *,
                  unreadable: Sequence[str] = ()) -> list[str]:
    """What the command line prints about the pairing: a count, each office not paired, and last year's
    files that could not be read (their offices cannot be paired).

    `items` are (the workbook's name, its pairing, its findings) for every workbook of the batch.
    """
    compared = [(name, p, f) for name, p, f in items if p is not None]
    unpaired = [(name, p, f) for name, p, f in compared if p.status != "paired"]
    lines = [text("crossyear.lines.summary", lang, paired=len(compared) - len(unpaired), unpaired=len(unpaired))]
    for name, p, f in unpaired[:LINES_SHOWN]:
        lines.append(text("crossyear.lines.unpaired", lang, name=name, why=overview_text(p, f, lang)))
    if len(unpaired) > LINES_SHOWN:
        lines.append(text("crossyear.lines.more", lang, n=len(unpaired) - LINES_SHOWN))
    if unreadable:
        names = text("crossyear.copied.names_join", lang).join(Path(f).name for f in unreadable[:LINES_SHOWN])
        lines.append(text("crossyear.lines.unreadable", lang, n=len(unreadable), files=names))
    return lines


# ----------------------------------------------------------------------------------------------
# A template that starts from last year's report


def last_year_template(output: str | Path, source: str | Path, *, format_id: str | None = None,
                       year: int | None = None, created: datetime | None = None) -> Path:
    """Write this year's template from last year's workbook `source`.

    The cover is carried over (the year set to the next one, or `year`); a locked 「上年数据」 sheet holds
    last year's values every applicable cross-year rule needs (the carry-over per column, and documents
    in force where both reports have them), and live checks beside the tables show those rules while
    the office types.

    Raises:
        DisclosureError: `source` cannot be read, or has no year and `year` is not given.
    """
    report = clean_report(read_workbook(source))
    if year is None:
        if report.year is None:
            raise DisclosureError(Finding("previous-year-unknown", params={"file": Path(source).name}))
        year = report.year + 1
    fmt = get_format(format_id) if format_id else (format_for_year(year) or current_format())
    cover: dict[str, object] = {f.name: report.texts.get(f.name) for f in fmt.cover if report.texts.get(f.name)}
    cover.update({fmt.field(role).name: v for role, v in (("office", report.office),
                                                           ("credit_code", report.credit_code)) if v})
    cover[fmt.field("year").name] = year
    rules = tuple(r for r in fmt.cross_year if r.applies(report.format_id, year))
    values = {c: (report.values.get(c) if c not in report.unusable else None)
              for r in rules for c in r.previous_cells}
    last = LastYear(file=Path(source).name, office=report.office, year=report.year, format_id=report.format_id,
                    values=values, rules=tuple(r.rule for r in rules))
    return write_template(output, fmt.id, values=cover, created=created, last_year=last)
