"""The narrative sections (一、五、六) against the tables and against what the notices require.

Assessors deduct when the words contradict the numbers ("受理申请 17 件" beside 95 in the table), when a
report quotes last year's figures under last year's date, and when the text misses what
the notices (30号, 60号) ask for. This module reads the statements of counts that real reports print,
compares each with the cell or sum it denotes, and checks the content requirements. Everything it
recognises — the wording, the cells, the notices' words — is data (`data/narrative.toml`).

Precision comes first (ruling 9): a figure is reported only when no reading the official definitions
allow makes the text agree with the table; a reading that needs a blank or unreadable cell, or a cell of
an identity that fails, cannot refute the text, so the statement is then not reported at all.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

from .catalog import CellRef, Finding, bilingual, number_text, text
from .clean import CleanReport
from .formats import Format, Narrative, all_formats

__all__ = ["Found", "Reading", "Sentence", "Statement", "check_report", "chinese_number", "find_statements", "prepare",
           "sentences"]

_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
_QUOTE_MAX = 90  # a longer sentence is quoted around the statement


@dataclass(frozen=True, slots=True)
class Reading:
    """One meaning a statement may have: a sum of cells (signed; "*" globs) and how to name it."""

    terms: tuple[tuple[int, str], ...]
    zh: str
    en: str


@dataclass(frozen=True)
class Statement:
    """A kind of statement of a count, as real reports word it, and the readings it allows."""

    id: str
    what_zh: str
    what_en: str
    patterns: tuple[re.Pattern[str], ...]
    zero_patterns: tuple[re.Pattern[str], ...]
    context: str | None
    qualifier: tuple[str, ...]
    exclude: bool
    share: bool
    flow: bool
    readings: tuple[Reading, ...]


@dataclass(frozen=True, slots=True)
class Sentence:
    """A sentence of a narrative: as written, and normalised for matching (NFKC, no whitespace)."""

    original: str
    norm: str
    paragraph: int

    @property
    def origin(self) -> Sequence[int]:
        """For each character of `norm`, its index in `original` (so a quote shows the office's own text)."""
        return _normalise(self.original)[1]


@dataclass(frozen=True, slots=True)
class Found:
    """A statement found in a sentence: the number it states (0 for a statement of none), the span of
    its words and of its number in the normalised sentence, and a percentage printed after it."""

    statement: Statement
    value: int
    sentence: int
    span: tuple[int, int]
    number: tuple[int, int]
    percent: str | None = None


@dataclass(frozen=True)
class _Rules:
    statements: tuple[Statement, ...]
    approx_before: tuple[str, ...]
    approx_after: tuple[str, ...]
    cumulative: tuple[str, ...]
    this_year: tuple[str, ...]
    exclude: tuple[str, ...]
    share: re.Pattern[str]
    share_readings: tuple[Reading, ...]
    year: re.Pattern[str]
    max_back: int
    comparison: tuple[str, ...]
    requirements: tuple[Mapping[str, Any], ...]
    digits: Mapping[str, int]
    powers: Mapping[str, int]
    myriad: str
    title_open: str
    title_close: str
    ends: str
    cut: str


def prepare() -> None:
    """Compile the rules now (a process that forks workers again and again compiles them once for all)."""
    _rules()


@cache
def _rules() -> _Rules:
    """`data/narrative.toml`, compiled once: a pattern that does not compile fails here, not on a report."""
    data = tomllib.loads(resources.files("disclosure_xlsx").joinpath("data/narrative.toml").read_text("utf-8"))
    fragments = data["fragments"]

    def compiled(pattern: str) -> re.Pattern[str]:
        return re.compile(re.sub(r"\{([A-Z]+)\}", lambda m: fragments[m.group(1)], pattern))

    cells = [c for fmt in all_formats().values() for c in fmt.cells]

    def readings(specs: Sequence[Mapping[str, Any]]) -> tuple[Reading, ...]:
        out = tuple(Reading(tuple((-1, c[1:]) if c.startswith("-") else (1, c) for c in r["cells"]),
                            r["zh"], r["en"]) for r in specs)
        unknown = [t for r in out for _, t in r.terms if not fnmatch.filter(cells, t)]
        if unknown:  # a typo would silently drop a reading: fail at load instead
            raise ValueError(f"narrative.toml names cells that no format has: {unknown}")
        return out

    statements = []
    for spec in data["statements"]:
        patterns = tuple(compiled(p) for p in spec["patterns"])
        if any("n" not in p.groupindex for p in patterns):
            raise ValueError(f"narrative statement {spec['id']}: every pattern needs the number {{N}}")
        statements.append(Statement(
            id=spec["id"], what_zh=spec["what"]["zh"], what_en=spec["what"]["en"], patterns=patterns,
            zero_patterns=tuple(compiled(p) for p in spec.get("zero_patterns", ())),
            context=spec.get("context"), qualifier=tuple(spec.get("qualifier", ())),
            exclude=bool(spec.get("exclude")), share=bool(spec.get("share")), flow=bool(spec.get("flow")),
            readings=readings(spec["readings"])))
    return _Rules(
        statements=tuple(statements), approx_before=tuple(data["approximate"]["before"]),
        approx_after=tuple(data["approximate"]["after"]), exclude=tuple(data["exclude"]["words"]),
        cumulative=tuple(data["cumulative"]["words"]), this_year=tuple(data["cumulative"]["this_year"]),
        share=compiled(data["share"]["pattern"]), share_readings=readings(data["share"]["readings"]),
        year=compiled(data["year"]["pattern"]), max_back=int(data["year"]["max_back"]),
        comparison=tuple(data["year"]["comparison"]), requirements=tuple(data["requirements"]),
        digits=data["numerals"]["digits"], powers=data["numerals"]["powers"], myriad=data["numerals"]["myriad"],
        title_open=data["titles"]["open"], title_close=data["titles"]["close"], ends=data["sentences"]["ends"] + "\n",
        cut=data["sentences"]["cut"])


# ----------------------------------------------------------------------------------------------
# Reading the text


def chinese_number(value: str) -> int | None:
    """二十三 → 23, 两 → 2, 一百零五 → 105, 三千二百 → 3200, 二〇一八 → 2018; None if it is no number."""
    rules = _rules()
    digits, powers = rules.digits, rules.powers
    if value and all(c in digits for c in value):
        return int("".join(str(digits[c]) for c in value))
    total, section = 0, 0
    digit: int | None = None
    last = ""
    for c in value:
        if c in digits:
            if digit is not None and last in digits and digits[last] != 0:
                return None  # 一二十: two digits in a row in a positional number
            digit = digits[c]
        elif c in powers:
            section += (1 if digit is None else digit) * powers[c]
            digit = None
        elif c == rules.myriad:
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
        else:
            return None
        last = c
    return total + section + (digit or 0)


def _number(raw: str) -> int | None:
    return int(raw.replace(",", "")) if raw[0].isdigit() else chinese_number(raw)


_TRANSLATE: dict[int, str | None] = {}  # every character seen → its NFKC form without whitespace, when different
_SEEN: set[str] = set()


def _norm(value: str) -> str:
    """NFKC without whitespace, fast: each distinct character is normalised once, then str.translate."""
    for ch in set(value) - _SEEN:
        _SEEN.add(ch)
        if _nfkc(ch) != ch:
            _TRANSLATE[ord(ch)] = _nfkc(ch) or None
    return value.translate(_TRANSLATE)


@lru_cache(maxsize=4096)
def _normalise(original: str) -> tuple[str, tuple[int, ...]]:
    """`_norm(original)` and, for each of its characters, where it came from (needed only to quote)."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(original):
        for c in _nfkc(ch):
            out.append(c)
            origin.append(i)
    return "".join(out), tuple(origin)


@cache
def _nfkc(ch: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKC", ch) if not (c.isspace() or c in _INVISIBLE))


def sentences(value: str) -> list[Sentence]:
    """The sentences of a text, split at 。！？ and line ends (a semicolon does not end a sentence)."""
    ends = _rules().ends
    out: list[Sentence] = []
    paragraph, start = 0, 0
    for i, ch in enumerate(value + "\n"):
        if ch in ends:
            piece = value[start:i + (ch != "\n")].strip()
            norm = _norm(piece)
            if norm:
                out.append(Sentence(piece, norm, paragraph))
            start = i + 1
            paragraph += ch == "\n"
    return out


def find_statements(value: str) -> tuple[list[Sentence], list[Found]]:
    """Every statement of a count in a text, in order, with the sentences they are in."""
    rules = _rules()
    parts = sentences(value)
    found: list[Found] = []
    for index, sentence in enumerate(parts):
        before = parts[index - 1] if index and parts[index - 1].paragraph == sentence.paragraph else None
        for statement in rules.statements:
            if statement.context and statement.context not in sentence.norm and not (
                    before and statement.context in before.norm):
                continue
            found += _matches(statement, sentence, index, rules)
    found.sort(key=lambda f: (f.sentence, f.number))
    return parts, found


def _matches(statement: Statement, sentence: Sentence, index: int, rules: _Rules) -> Iterator[Found]:
    norm = sentence.norm
    for pattern in statement.patterns:
        for m in pattern.finditer(norm):
            value = _number(m.group("n"))
            if value is None or not _plausible(statement, norm, m, rules) or _approximate(norm, m, rules):
                continue
            after = rules.share.match(norm, m.end()) if statement.share else None
            yield Found(statement, value, index, m.span(), m.span("n"), after.group("p") if after else None)
    for pattern in statement.zero_patterns:
        for m in pattern.finditer(norm):
            if _plausible(statement, norm, m, rules):
                yield Found(statement, 0, index, m.span(), m.span())


def _plausible(statement: Statement, norm: str, m: re.Match[str], rules: _Rules) -> bool:
    if statement.exclude and any(w in m.group(0) for w in rules.exclude):
        return False
    if statement.flow:  # "历年累计废止…": a running total, not the year's figure
        clause = re.split(r"[,;。:]", norm[:m.start()])[-1] + m.group(0)
        if any(w in clause for w in rules.cumulative) and not any(w in clause for w in rules.this_year):
            return False
    return not statement.qualifier or any(q in norm[:m.end()] for q in statement.qualifier)


def _approximate(norm: str, m: re.Match[str], rules: _Rules) -> bool:
    """近200件, 200余件, 30件左右: an estimate is not a figure to compare."""
    start, end = m.span("n")
    rest = norm[end:]
    if rest[:1] in rules.approx_after:
        return True
    unit = rest[1:] if rest[:1] and not rest[:1].isdigit() else rest
    return norm[:start].endswith(rules.approx_before) or unit.startswith(rules.approx_after)


# ----------------------------------------------------------------------------------------------
# Comparing with the table


@dataclass(frozen=True, slots=True)
class _Value:
    """What a reading comes to in one report: a number, or None when it cannot be known."""

    reading: Reading
    cells: tuple[tuple[int, str], ...]
    value: int | float | None


def _cells(fmt: Format, reading: Reading) -> tuple[tuple[int, str], ...] | None:
    """The signed cells of a reading in this format; None when the format lacks one of them."""
    out: list[tuple[int, str]] = []
    for sign, term in reading.terms:
        hits = fnmatch.filter(fmt.cells, term) if "*" in term else [term] if term in fmt.cells else []
        if not hits:
            return None
        out += [(sign, c) for c in hits]
    return tuple(out)


def _evaluate(fmt: Format, report: CleanReport, readings: Sequence[Reading], doubtful: frozenset[str]
              ) -> list[_Value]:
    out = []
    for reading in readings:
        cells = _cells(fmt, reading)
        if cells is None:
            continue
        parts = [report.values.get(c) for _, c in cells]
        known = all(v is not None for v in parts) and not {c for _, c in cells} & doubtful
        total = sum(s * v for (s, _), v in zip(cells, parts, strict=True) if v is not None) if known else None
        out.append(_Value(reading, cells, total))
    return out


def _doubtful(fmt: Format, report: CleanReport) -> frozenset[str]:
    """Cells the table itself puts in doubt: unreadable, or part of an identity that does not hold."""
    row = {c: (v if v is not None else 0) for c, v in report.values.items()}
    broken = {c for i in fmt.identities if not set(i.cells) & report.unusable and not i.holds(row) for c in i.cells}
    return frozenset(report.unusable | broken)


def _share_agrees(percent: str, parts: Sequence[_Value], totals: Sequence[_Value]) -> bool:
    decimals = len(percent.partition(".")[2])
    tolerance = 10 ** -decimals + 1e-9  # one unit of the last printed digit: reports round and truncate
    stated = float(percent)
    if not any(t.value for t in totals):
        return True  # no denominator to compute a share from (all zero, or unknown)
    for part in parts:
        for total in totals:
            if part.value is None or total.value is None:
                return True  # cannot refute
            if total.value and abs(100 * part.value / total.value - stated) <= tolerance:
                return True
    return False


# ----------------------------------------------------------------------------------------------
# Findings


def check_report(report: CleanReport) -> list[Finding]:
    """The narrative findings of one cleaned report: figures against the table, a stale year, and the
    notices' content requirements. A workbook that carries no narrative at all (the tables only) gets
    none; every finding is anchored on the 文字部分 cell it concerns."""
    fmt = report.format
    texts = {n.name: _text(report.texts.get(n.name)) for n in fmt.narratives}
    if not any(texts.values()):
        return []
    findings = _requirements(fmt, report, texts)
    doubtful = _doubtful(fmt, report)
    for narrative in fmt.narratives:
        if texts[narrative.name]:
            findings += _figures(fmt, report, narrative, texts[narrative.name], doubtful)
    order = {n.heading: i for i, n in enumerate(fmt.narratives)}  # 一, 五, 六 as the report prints them
    return sorted(findings, key=lambda f: order[f.params["section"]["zh"]])


def _text(value: object) -> str:
    return "" if value is None else str(value).strip()


def _anchor(report: CleanReport, narrative: Narrative) -> tuple[CellRef, ...]:
    ref = report.where.get(narrative.name)
    return (ref,) if ref else ()


def _section(narrative: Narrative) -> dict[str, str]:
    return bilingual(narrative.heading, text("narrative.section", "en", number=narrative.number))


def _figures(fmt: Format, report: CleanReport, narrative: Narrative, value: str, doubtful: frozenset[str]
             ) -> list[Finding]:
    parts, found = find_statements(value)
    out: list[Finding] = []
    by_number: dict[tuple[int, tuple[int, int]], list[Found]] = {}
    for f in found:  # "收到并答复申请 21 件": one number, several statements; any of them may agree
        by_number.setdefault((f.sentence, f.number), []).append(f)
    for group in by_number.values():
        finding = _mismatch(fmt, report, narrative, parts, group, doubtful)
        if finding:
            out.append(finding)
    out += _years(report, narrative, parts, found)
    return out


def _mismatch(fmt: Format, report: CleanReport, narrative: Narrative, parts: Sequence[Sentence],
              group: Sequence[Found], doubtful: frozenset[str]) -> Finding | None:
    first = group[0]
    values = [(f, _evaluate(fmt, report, f.statement.readings, doubtful)) for f in group]
    values = [(f, v) for f, v in values if v]
    if not values:
        return None  # no table cell for what the text says
    if any(v.value is None or v.value == f.value for f, vs in values for v in vs):
        return _share_mismatch(fmt, report, narrative, parts, values, doubtful)
    found, readings = values[0]
    return _finding(report, narrative, parts[first.sentence], found, readings, number_text(found.value),
                    lambda v: number_text(v.value), f"T1[{found.statement.id}]")


def _share_mismatch(fmt: Format, report: CleanReport, narrative: Narrative, parts: Sequence[Sentence],
                    values: Sequence[tuple[Found, list[_Value]]], doubtful: frozenset[str]) -> Finding | None:
    totals = _evaluate(fmt, report, _rules().share_readings, doubtful)
    for found, readings in values:
        if found.percent is None or not totals:
            continue
        agreeing = [v for v in readings if v.value is None or v.value == found.value]
        if not agreeing or _share_agrees(found.percent, agreeing, totals):
            continue  # a count that disagrees is its own finding; one that cannot be known cannot refute
        decimals = len(found.percent.partition(".")[2])
        part = agreeing[0]
        shares = [_Value(t.reading, (*part.cells, *t.cells), round(100 * (part.value or 0) / t.value, decimals))
                  for t in totals if t.value]
        return _finding(report, narrative, parts[found.sentence], found, shares, f"{found.percent}%",
                        lambda v: f"{v.value:.{decimals}f}%", f"T1[{found.statement.id}.share]", share=True)
    return None


def _finding(report: CleanReport, narrative: Narrative, sentence: Sentence, found: Found, readings: Sequence[_Value],
             stated: str, shown: Any, rule: str, share: bool = False) -> Finding:
    def table(lang: str) -> str:
        sep = text("narrative.reading_sep", lang)
        return sep.join(text("narrative.reading", lang, name=getattr(v.reading, lang),
                             refs=_refs(report, v.cells, lang), value=shown(v)) for v in readings)

    what = bilingual(found.statement.what_zh, found.statement.what_en)
    if share:
        what = bilingual(text("narrative.share_of", "zh", what=what["zh"]), text("narrative.share_of", "en",
                                                                                 what=what["en"]))
    cells = [report.where[c] for _, c in readings[0].cells if c in report.where]
    actual = float(found.percent) if share and found.percent else found.value
    return Finding("text-table-mismatch", cells=(*_anchor(report, narrative), *dict.fromkeys(cells)), rule=rule,
                   expected=readings[0].value, actual=actual, params={
                       "section": _section(narrative), "quote": _quote(sentence, found.span), "what": what,
                       "stated": stated, "table": bilingual(table("zh"), table("en"))})


def _refs(report: CleanReport, cells: Sequence[tuple[int, str]], lang: str) -> str:
    refs = [report.where[c] for _, c in cells if c in report.where]
    if not refs:
        return ""
    signs = {cell: sign for sign, cell in cells}
    shown = [("−" if signs.get(r.id, 1) < 0 else "+") + r.ref for r in refs]
    joined = "".join(shown).lstrip("+")
    if len(refs) > 4:
        joined = text("narrative.many_refs", lang, first=refs[0].ref, last=refs[-1].ref, count=len(refs))
    return f"{refs[0].sheet}!{joined}"


def _quote(sentence: Sentence, span: tuple[int, int]) -> str:
    """The sentence as written; a long one around the statement, with … where it is cut."""
    original = sentence.original
    if len(original) <= _QUOTE_MAX:
        return original
    start, end = sentence.origin[span[0]], sentence.origin[max(span[1] - 1, span[0])] + 1
    margin = max(0, (_QUOTE_MAX - (end - start)) // 2)
    first, last = max(0, start - margin), min(len(original), end + margin)
    cut = _rules().cut
    return (cut if first else "") + original[first:last] + (cut if last < len(original) else "")


def _years(report: CleanReport, narrative: Narrative, parts: Sequence[Sentence], found: Sequence[Found]
           ) -> list[Finding]:
    """A year that is not the report's, introducing figures (the nearest year before a statement)."""
    if report.year is None:
        return []
    rules = _rules()
    out = []
    for index, sentence in enumerate(parts):
        mine = [f for f in found if f.sentence == index]
        if not mine or any(word in sentence.norm for word in rules.comparison):
            continue
        years = [(m, _year(m.group("y"))) for m in rules.year.finditer(sentence.norm)
                 if not _inside_title(sentence.norm, m.start()) and not any(
                     f.span[0] <= m.start() < f.span[1] for f in mine)]
        if any(y == report.year for _, y in years):
            continue
        stale = None
        for f in mine:
            before = [(m, y) for m, y in years if m.end() <= f.span[0]]
            if before and before[-1][1] is not None and \
                    report.year - rules.max_back <= before[-1][1] < report.year:  # type: ignore[operator]
                stale = before[-1][0]
                break
        if stale is not None:
            out.append(Finding("text-year-mismatch", cells=_anchor(report, narrative), rule="T2",
                               expected=report.year, actual=_year(stale.group("y")), params={
                                   "section": _section(narrative), "quote": _quote(sentence, stale.span()),
                                   "found": sentence.original[sentence.origin[stale.start()]:
                                                              sentence.origin[stale.end() - 1] + 1],
                                   "year": report.year}))
    return out


def _year(raw: str) -> int | None:
    return int(raw) if raw.isdigit() else chinese_number(raw)


def _inside_title(norm: str, position: int) -> bool:
    """Whether a position lies inside 《…》 or a quotation (a document's title names its own year)."""
    rules = _rules()
    depth = 0
    for ch in norm[:position]:
        if ch in rules.title_open:
            depth += 1
        elif ch in rules.title_close and depth:
            depth -= 1
    return depth > 0 or norm[:position].count('"') % 2 == 1


def _requirements(fmt: Format, report: CleanReport, texts: Mapping[str, str]) -> list[Finding]:
    """What the format's notice requires of the text (30号: length of 一, the fee in 六; 五 not just 无;
    no section missing), each a warning quoting the notice."""
    out: list[Finding] = []
    narratives = {n.name: n for n in fmt.narratives}
    for spec in _rules().requirements:
        quote = spec["quote"].get(fmt.id)
        if quote is None:
            continue
        targets = [narratives[spec["narrative"]]] if "narrative" in spec else list(fmt.narratives)
        for narrative in targets:
            value = texts[narrative.name]
            params = _requirement(spec, narrative, value)
            if params is not None:
                out.append(Finding(spec["code"], cells=_anchor(report, narrative), rule=spec["id"], params={
                    "section": _section(narrative), "notice": fmt.notice, "quote": quote, **params}))
    return out


def _requirement(spec: Mapping[str, Any], narrative: Narrative, value: str) -> dict[str, Any] | None:
    """The message parameters when `value` fails the requirement, else None."""
    kind = spec["kind"]
    if kind == "present":
        return {"advice": bilingual(narrative.hint, text("narrative.advice", "en"))} if not value else None
    if not value:
        return None  # a missing section is one finding ("present"), not one per requirement
    if kind == "max_chars":
        count = sum(not c.isspace() for c in value)
        return {"count": count, "limit": spec["max"]} if count > spec["max"] else None
    if kind == "mentions":
        return None if any(w in _norm(value) for w in spec["words"]) else {}
    if kind == "not_only":
        folded = "".join(c for c in _norm(value) if unicodedata.category(c)[0] not in "PZS")
        return {"text": value} if folded in spec["values"] else None
    raise ValueError(f"narrative requirement {spec['id']}: unknown kind {kind!r}")
