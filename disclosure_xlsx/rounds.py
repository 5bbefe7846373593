"""Rounds of resubmission: every `validate --out DIR` is a round, compared with the one before.

DIR/report.json is the current round's report; DIR/history/第N轮/report.json keeps each round's. Offices
are matched across rounds as in the cross-year pairing (credit code, then normalised name; the file name
only where a side has no office), findings by code, rule and anchor cell id: a problem of the previous
round that is gone is fixed, one in both is still open, one only now is new. Accepted warnings are not
problems. A rerun on the same data (say, with a new acceptance file) repeats its round instead of
starting another, so "fixed" always means fixed by the office.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._xlsx import atomic_output, put
from .accept import code_key, is_accepted, office_key
from .catalog import Finding, number_text, text
from .clean import CellValues
from .formats import Format
from .pipeline import BatchResult, WorkbookResult

__all__ = ["HISTORY", "Changes", "Round", "RoundInfo", "add_round_columns", "begin_round", "changes_text",
           "review_header", "round_folder"]

HISTORY = text("rounds.history_dir")
_REPORT = text("feedback.report_file")
Key = tuple[str, str | None, str | None]  # code, rule, anchor cell id


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed for one workbook since the previous round (report.json: a workbook's "changes").

    The counts are None when there is nothing to compare with: the first round, or an office that was
    not in the previous round (`matched_by` None).
    """

    round: int
    previous_round: int | None = None
    matched_by: str | None = None  # credit_code | office | file
    previous: int | None = None  # problems (errors and warnings not accepted) in the previous round
    fixed: int | None = None
    open: int | None = None
    new: int | None = None
    accepted: int | None = None  # problems of the previous round accepted since
    fixed_items: tuple[dict[str, Any], ...] = ()
    new_items: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "previous_round": self.previous_round, "matched_by": self.matched_by,
                "previous": self.previous, "fixed": self.fixed, "open": self.open, "new": self.new,
                "accepted": self.accepted, "fixed_items": list(self.fixed_items), "new_items": list(self.new_items)}


@dataclass(frozen=True, slots=True)
class RoundInfo:
    """The batch's round (report.json: "round"): its number, the round it was compared with, whether
    it repeats a run on the same data, a digest of the data, and the offices that sent nothing now."""

    number: int
    previous: int | None
    repeat: bool
    inputs: str
    not_resubmitted: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "previous": self.previous, "repeat": self.repeat, "inputs": self.inputs,
                "not_resubmitted": list(self.not_resubmitted)}


@dataclass(frozen=True, slots=True)
class Round:
    """A round begun in an output folder; `finish()` keeps its report in the history once written."""

    out: Path
    info: RoundInfo

    def finish(self) -> Path:
        """Copy DIR/report.json to DIR/history/第N轮/report.json (atomically)."""
        return _keep(self.out / _REPORT, self.out, self.info.number)


def round_folder(out: str | Path, number: int) -> Path:
    """DIR/history/第N轮."""
    return Path(out) / HISTORY / text("rounds.round_dir", n=number)


def begin_round(batch: BatchResult, out: str | Path) -> Round:
    """Number this run's round in `out`, compare every workbook with the previous round, and record
    both on the batch (`batch.review["round"]`, each workbook's `review["changes"]`).

    Call it before the outputs are written: it keeps the previous report in the history first.
    """
    out = Path(out)
    inputs = _inputs(batch)
    previous, number_before = _latest(out)
    if previous is None:
        number, compared, against = 1, None, None
    else:
        if (out / _REPORT).exists():  # an output folder of an earlier version has no history yet
            _keep(out / _REPORT, out, number_before)
        if _same_data((previous.get("round") or {}).get("inputs"), inputs, batch):  # the same data: the same round
            number = number_before
            against = number_before - 1 if number_before > 1 else None
            compared = _load(round_folder(out, against) / _REPORT) if against else None
        else:
            number, compared, against = number_before + 1, previous, number_before
    entries = list(compared.get("workbooks") or []) if compared else []
    pairs = _pair(batch.workbooks, entries) if compared else {}
    used = {id(entry) for entry, _ in pairs.values()}
    for i, workbook in enumerate(batch.workbooks):
        if compared is None:
            workbook.review["changes"] = Changes(number)
        elif i in pairs:
            workbook.review["changes"] = _changes(workbook, *pairs[i], number, against)  # type: ignore[arg-type]
        else:
            workbook.review["changes"] = Changes(number, against)
    missing = tuple({"office": e.get("office"), "credit_code": e.get("credit_code"), "year": e.get("year"),
                     "file": e.get("file")} for e in entries if id(e) not in used)
    info = RoundInfo(number, against, previous is not None and number == number_before, inputs, missing)
    batch.review["round"] = info
    return Round(out, info)


def _latest(out: Path) -> tuple[dict[str, Any] | None, int]:
    """The last round's report and number: DIR/report.json, else the newest one in the history."""
    current = _load(out / _REPORT)
    kept = _kept_rounds(out)
    if current is not None:
        number = (current.get("round") or {}).get("number")
        return current, int(number) if isinstance(number, int) and number > 0 else max(kept, default=1)
    if kept:
        return _load(round_folder(out, max(kept)) / _REPORT), max(kept)
    return None, 0


def _kept_rounds(out: Path) -> list[int]:
    word = text("rounds.round_dir", n="{n}")
    pattern = re.compile(re.escape(word).replace(re.escape("{n}"), r"(\d+)"))
    history = out / HISTORY
    found = [pattern.fullmatch(p.name) for p in history.iterdir()] if history.is_dir() else []
    return [int(m.group(1)) for m in found if m and (history / m.group(0) / _REPORT).exists()]


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("workbooks"), list) else None


def _keep(report: Path, out: Path, number: int) -> Path:
    target = round_folder(out, number) / _REPORT
    with atomic_output(target) as tmp:
        tmp.write_bytes(report.read_bytes())
    return target


_DIGEST = "2:"  # the digest's version: a round written before it (16 hex digits, no version) spelled every value


def _inputs(batch: BatchResult, *, spelled: bool = False) -> str:
    """A digest of the data of the batch (not of the review): equal when the same offices sent the same.
    `spelled`: the digest of the versions before `_DIGEST`, which spelled every value (`number_text`)."""
    items = []
    for w in batch.workbooks:
        r = w.report
        if r is None:
            try:
                content = hashlib.sha256(Path(w.file).read_bytes()).hexdigest()
            except OSError:
                content = ""
            items.append(json.dumps([Path(w.file).name, content]))
        else:
            items.append(json.dumps([office_key(r.office), code_key(r.credit_code), r.year, r.format_id,
                                     _spelled(r.values) if spelled else _numbers(r.format, r.values),
                                     sorted(r.texts.items())],
                                    ensure_ascii=False, default=str))
    digest = hashlib.sha256("\n".join(sorted(items)).encode("utf-8")).hexdigest()[:16]
    return digest if spelled else _DIGEST + digest


def _same_data(before: object, inputs: str, batch: BatchResult) -> bool:
    """Whether the previous round's digest `before` is this batch's: the same data again. A round of a
    version before `_DIGEST` is compared with the digest that version took (once: the next is versioned)."""
    if before == inputs:
        return True
    return isinstance(before, str) and not before.startswith(_DIGEST) and before == _inputs(batch, spelled=True)


def _spelled(values: Mapping[str, int | float | None]) -> list[str]:
    return [number_text(v) for v in values.values()]


_BLANK_MASK = bytes(int(kind == CellValues.BLANK) for kind in range(256))  # kind byte → 1 for a blank cell


def _numbers(fmt: Format, values: Mapping[str, int | float | None]) -> str:
    """A digest of a report's values: its packed float64s and which cells are blank (6 and 6.0 alike, as a
    clerk reads them), ~20 times cheaper than spelling every value; the spelled values where they do not
    pack (a number too large for a float64 to hold exactly)."""
    packed = values if isinstance(values, CellValues) else CellValues.packed(fmt, values)
    if packed is None:
        return json.dumps(_spelled(values))
    blank = packed.kinds.translate(_BLANK_MASK)
    return hashlib.blake2b(packed.float64_bytes() + blank, digest_size=16).hexdigest()


def _pair(workbooks: Sequence[WorkbookResult], entries: Sequence[dict[str, Any]]
          ) -> dict[int, tuple[dict[str, Any], str]]:
    """Batch position → (the previous round's entry of the same office, how they were matched)."""
    index: dict[str, dict[str, list[int]]] = {"credit_code": {}, "office": {}, "file": {}}
    for n, entry in enumerate(entries):
        for how, key in _keys(entry.get("credit_code"), entry.get("office"), entry.get("file")).items():
            index[how].setdefault(key, []).append(n)
    free = set(range(len(entries)))
    pairs = {}
    for i, w in enumerate(workbooks):
        r = w.report
        mine = _keys(r.credit_code if r else None, r.office if r else None, w.file)
        for how in ("credit_code", "office", "file"):
            candidates = [n for n in index[how].get(mine.get(how, ""), []) if n in free
                          and _may_pair(how, mine, entries[n])]
            if candidates:
                year = r.year if r else None
                chosen = next((n for n in candidates if entries[n].get("year") == year), candidates[0])
                free.discard(chosen)
                pairs[i] = (entries[chosen], how)
                break
    return pairs


def _keys(code: str | None, office: str | None, file: str | None) -> dict[str, str]:
    keys = {"credit_code": code_key(code), "office": office_key(office),
            "file": Path(file).name.casefold() if file else None}
    return {k: v for k, v in keys.items() if v}


def _may_pair(how: str, mine: dict[str, str], entry: dict[str, Any]) -> bool:
    """Codes on both sides decide; a file name pairs only where a side has no office name."""
    theirs = _keys(entry.get("credit_code"), entry.get("office"), entry.get("file"))
    if how == "office":
        return not ("credit_code" in mine and "credit_code" in theirs)
    if how == "file":
        return "office" not in mine or "office" not in theirs
    return True


def _changes(workbook: WorkbookResult, entry: dict[str, Any], how: str, number: int, against: int) -> Changes:
    before: Counter[Key] = Counter()
    items: dict[Key, list[dict[str, Any]]] = {}
    for f in entry.get("findings") or []:
        if "accepted" in f:
            continue
        cells = f.get("cells") or []
        key = (f.get("code"), f.get("rule"), cells[0].get("id") if cells else None)
        before[key] += 1  # type: ignore[index]
        items.setdefault(key, []).append({"code": key[0], "rule": key[1], "cell": cells[0] if cells else None})  # type: ignore[index]
    now: Counter[Key] = Counter(_key(f) for f in workbook.findings if not is_accepted(f))
    accepted_now: Counter[Key] = Counter(_key(f) for f in workbook.findings if is_accepted(f))
    fixed = open_ = accepted = 0
    fixed_items: list[dict[str, Any]] = []
    for key, count in before.items():
        still = min(count, now[key])
        taken = min(count - still, accepted_now[key])
        open_, accepted = open_ + still, accepted + taken
        fixed += count - still - taken
        fixed_items += items[key][still + taken:]
    new_items = []
    for f in workbook.findings:
        key = _key(f)
        if not is_accepted(f) and now[key] > before[key]:
            new_items.append({"code": f.code, "rule": f.rule, "cell": f.cells[0].to_dict() if f.cells else None})
            now[key] -= 1
    return Changes(number, against, how, sum(before.values()), fixed, open_, len(new_items), accepted,
                   tuple(fixed_items), tuple(new_items))


def _key(finding: Finding) -> Key:
    return finding.code, finding.rule, finding.cells[0].id if finding.cells else None


# ------------------------------------------------------------------------------------------------
# What offices and the county read


def changes_text(changes: Changes, lang: str = "zh") -> str:
    """"上一轮的 3 个问题已改正 2 个，仍有 1 个未改正；新出现 0 个" (and the accepted ones), or why there is
    nothing to compare; "" in the first round."""
    if changes.previous_round is None:
        return ""
    if changes.matched_by is None:
        return text("rounds.changes.absent", lang, round=changes.previous_round)
    if not changes.previous:
        return text("rounds.changes.none_before", lang, new=changes.new)
    line = text("rounds.changes.counts", lang, previous=changes.previous, fixed=changes.fixed, open=changes.open,
                new=changes.new)
    if changes.accepted:
        line += text("rounds.changes.accepted", lang, n=changes.accepted)
    return line


def review_header(workbook: WorkbookResult, lang: str = "zh") -> list[tuple[str, str]]:
    """Lines for the header of an office's 反馈: the round, the changes since the last one, and how many
    of its warnings the county accepted."""
    lines = []
    changes = workbook.review.get("changes")
    if isinstance(changes, Changes):
        lines.append((text("rounds.header.round", lang), text("rounds.round", lang, n=changes.round)))
        if said := changes_text(changes, lang):
            lines.append((text("rounds.header.changes", lang), said))
    accepted = sum(is_accepted(f) for f in workbook.findings)
    if accepted:
        lines.append((text("rounds.header.accepted", lang), text("rounds.changes.accepted_count", lang, n=accepted)))
    return lines


def add_round_columns(book: Any, sheet: Any, workbooks: Sequence[WorkbookResult], first: int, head: Any,
                      cell: Any = None) -> None:
    """Columns after `first` on the overview's 汇总 sheet (one row per workbook, in order): the round, the
    previous round's problems, fixed, still open, new, and the accepted warnings, written in `cell`'s
    format (top-aligned like the rest of the row, so that a printed row's numbers stand beside its text)."""
    keys = ("round", "previous", "fixed", "open", "new", "accepted")
    for col, key in enumerate(keys, first):
        put(sheet, 0, col, text(f"rounds.overview.{key}"), head)
    for row, workbook in enumerate(workbooks, 1):
        changes = workbook.review.get("changes")
        values: list[Any] = [None] * 5
        if isinstance(changes, Changes):
            values = [changes.round, changes.previous, changes.fixed, changes.open, changes.new]
        values.append(sum(is_accepted(f) for f in workbook.findings))
        for col, value in enumerate(values, first):
            put(sheet, row, col, value, cell)
    sheet.set_column(first, first + len(keys) - 1, 8)
    sheet.autofilter(0, 0, max(len(workbooks), 1), first + len(keys) - 1)
