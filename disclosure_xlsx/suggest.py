"""Which cells are most likely wrong, and what they should be: Fellegi–Holt error localisation.

When identities fail, the fewest cells whose change makes *every* identity hold (I1, I2, I3, I5, as
the format data defines them) are the natural suspects: statistical offices call this the
Fellegi–Holt principle (R's errorlocate). This module finds such a set with the values that do it,
says whether it is the only one, and lists up to three others.

Choices, and why:

- **Equal weights.** Every written cell costs 1. The weighting the issue proposes (a 总计 cell that
  disagrees with its row and its column at once is the natural suspect) needs no weight: such a cell is
  the only cell that lies in both failing identities, so the equal-weight minimum already names it,
  alone. Where a tie remains (one failing identity, e.g. a 复议/诉讼 total against its four outcomes,
  where any of the five cells fixes it), a weight would only turn a tie into an accusation: precision
  before recall. The tie is reported as such (`unique` false, the alternatives listed); the sets that
  change the anchors (totals) of the failing identities are listed first.
- **Blanks** count as 0 (ruling 2) and may be filled like any cell: filling one is one change, shown as
  "fill in 2". A blank is not cheaper by default: the template asks for 0 where nothing happened, so a
  blank is almost always a 0 left empty and no more suspect than a written number. `blank_weight` < 1
  makes blanks cheaper (filled first); the benchmark measures both.
- **Unusable cells** (values that could not be read) are unknowns: free to take any value of their type
  at no cost, so a suggestion never assumes what they hold, and never names them. Identities that use
  them are not reported by validation, so they alone never produce a suggestion.
- **Bounds** come from each cell's value type (`ValueType.min`: counts ≥ 0, signed counts unbounded)
  and whole numbers where the type is integer. A value out of its bounds (a negative count) must change.
- **Solver.** Every one-cell fix is tried first with numpy (a cell fixes everything alone only if the
  identities it is in are exactly the failing ones and all ask it for the same change); with equal
  weights such a fix is provably minimal and the list of all of them is exact. When no cell does it alone
  and every written cell costs the same, every two-cell fix is listed the same way (each pair of a cell
  of the first failing identity and any other cell, solved exactly): the common case of a part and its
  total both off, a median of 1.5 ms where the solver took 47 ms. Otherwise a mixed-integer
  programme (`scipy.optimize.milp`, HiGHS): a 0/1 "changed" variable per cell linked to its value by a
  big M of twice the workbook's largest number plus all residuals (a part never exceeds its total;
  larger changes are not considered); one "some cell of it changes" row per failing identity, which gives the solver a
  strong bound; sets of at most 2, 3, 4 cells tried in turn, which it solves far sooner. Tolerances are
  tight: a zero MIP gap, and integrality and feasibility tolerances of 1e-9 instead of HiGHS's 1e-6 and
  1e-7, at which a change of 1 under a big M of 10^8 hides behind a "changed" variable below the
  tolerance and the solver claims that less needs changing. Every answer is checked again exactly.
  Alternatives come from solving again with the sets found so far cut off, at the same weight.
  The solver's work is bounded by `NODE_LIMIT` branch-and-bound nodes per solve — a bound on work, the
  same on every machine, so a busy machine never changes the answer — and by `time_limit` per workbook
  as a last guard. When a bound is reached before a minimal set is proven, the outcome says so and
  nothing is suggested (if it is reached while looking for alternatives, the set found stands and
  `more` says others may exist).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .catalog import CellRef, number_text, text
from .formats import Format

__all__ = ["FOUND", "NOT_FOUND", "NOT_FOUND_IN_LIMIT", "Change", "Suggestion", "suggest_fix", "suggestion_text"]

FOUND = "found"
NOT_FOUND_IN_LIMIT = "not-found-in-limit"
NOT_FOUND = "not-found"  # the solver failed otherwise (never expected: all zeros always satisfy the identities)
MAX_LISTED = 3  # alternatives listed; one more solve tells whether further ones exist
_SIZES = 4  # set sizes tried one by one before the solver is left to find the size itself
_TOL = 1e-9
NODE_LIMIT = 2000  # per solve; the samples and the benchmark's cases are solved within a few nodes
_HIGHS = {"node_limit": NODE_LIMIT, "mip_rel_gap": 0.0, "mip_feasibility_tolerance": _TOL, "primal_feasibility_tolerance": _TOL,
          "presolve": True}

Number = int | float
Fix = tuple[tuple[str, float], ...]  # (cell id, new value) of each cell a set changes


class _NativeStdout:
    """Counts the blocks that want C's stdout silenced (solves in several threads of the clerk's page may
    overlap): the first to enter points file descriptor 1 at /dev/null, the last to leave points it back."""

    def __init__(self) -> None:
        self.lock, self.depth, self.saved = threading.Lock(), 0, -1

    def enter(self) -> None:
        with self.lock:
            if self.depth == 0:
                sys.stdout.flush()
                self.saved = os.dup(1)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.close(devnull)
            self.depth += 1

    def leave(self, libc: ctypes.CDLL) -> None:
        with self.lock:
            self.depth -= 1
            if self.depth == 0:
                libc.fflush(None)
                sys.stdout.flush()
                os.dup2(self.saved, 1)
                os.close(self.saved)


_NATIVE_STDOUT = _NativeStdout()


@contextlib.contextmanager
def native_stdout_silenced() -> Iterator[None]:
    """Run a block with the process's C-level standard output sent to /dev/null.

    HiGHS, as scipy bundles it, prints a debug line ("HighsMipSolverData::transformNewIntegerFeasibleSolution
    tmpSolver.run();") straight to C's stdout in some solves, whatever its output options (HiGHS issue
    2783): it would land in `validate --json`'s output and on the clerk's screen. C's buffer is flushed
    before file descriptor 1 comes back, so nothing printed inside reaches it later. Where there is no C
    library to flush (Windows), the block runs as it is."""
    try:
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):
        yield
        return
    _NATIVE_STDOUT.enter()
    try:
        yield
    finally:
        _NATIVE_STDOUT.leave(libc)


@dataclass(frozen=True, slots=True)
class Change:
    """One cell of a suggestion: its value as read (None = blank) and the value suggested."""

    id: str
    value: Number | None
    suggested: Number

    def to_dict(self, where: Mapping[str, CellRef]) -> dict[str, Any]:
        ref = where[self.id]
        return {"id": self.id, "sheet": ref.sheet, "ref": ref.ref, "value": _json(self.value),
                "suggested": _json(self.suggested)}


@dataclass(frozen=True)
class Suggestion:
    """The minimum-weight set of cells whose change makes every identity hold, with its values.

    `changes` is the set shown first; `alternatives` are up to three other sets of the same (minimal)
    weight; `more` is true when further ones exist or the search for them ran out of time. `rules` are
    the failing identities it explains: every one without an unreadable cell, including those whose
    finding validation leaves out because their I2 fails (spec §7.1 I4). `method` is "one-cell" or
    "two-cell" (numpy) or "milp". When `outcome` is not FOUND, `changes` is empty.
    """

    outcome: str
    changes: tuple[Change, ...] = ()
    alternatives: tuple[tuple[Change, ...], ...] = ()
    more: bool = False
    rules: tuple[str, ...] = ()
    method: str = ""

    @property
    def found(self) -> bool:
        return self.outcome == FOUND

    @property
    def unique(self) -> bool:
        """Whether this is provably the only minimal set."""
        return self.found and not self.alternatives and not self.more

    @property
    def cells(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.changes)

    def applied(self, values: Mapping[str, Number | None]) -> dict[str, Number | None]:
        """`values` with the suggested changes written in (never done silently: the caller decides)."""
        out = dict(values)
        out.update({c.id: c.suggested for c in self.changes})
        return out

    def to_dict(self, where: Mapping[str, CellRef]) -> dict[str, Any]:
        """The suggestion as in report.json: cells with sheet and A1 reference, as the workbook was read."""
        return {"outcome": self.outcome, "cells": [c.to_dict(where) for c in self.changes], "unique": self.unique,
                "alternatives": len(self.alternatives),
                "alternative_sets": [[c.to_dict(where) for c in alt] for alt in self.alternatives],
                "more_alternatives": self.more, "rules": list(self.rules), "method": self.method}


# ----------------------------------------------------------------------------------------------
# The problem of one format, built once


@dataclass(frozen=True)
class _Problem:
    ids: tuple[str, ...]  # every cell of an identity, in format order
    matrix: np.ndarray  # identities × cells, +1 for lhs, −1 for rhs
    rules: tuple[str, ...]
    members: tuple[frozenset[str], ...]  # the cells of each identity
    anchors: tuple[str, ...]  # the anchor (total cell) of each identity
    lower: np.ndarray  # −inf where unbounded
    integer: np.ndarray  # bool


_PROBLEMS: dict[int, tuple[Format, _Problem]] = {}


def _problem(fmt: Format) -> _Problem:
    known = _PROBLEMS.get(id(fmt))
    if known is not None and known[0] is fmt:
        return known[1]
    used = {c for identity in fmt.identities for c in identity.cells}
    ids = tuple(c for c in fmt.cells if c in used)
    index = {c: k for k, c in enumerate(ids)}
    matrix = np.zeros((len(fmt.identities), len(ids)))
    for row, identity in enumerate(fmt.identities):
        for c in identity.lhs:
            matrix[row, index[c]] += 1
        for c in identity.rhs:
            matrix[row, index[c]] -= 1
    types = [fmt.cells[c].type for c in ids]
    problem = _Problem(
        ids=ids, matrix=matrix, rules=tuple(i.rule for i in fmt.identities),
        members=tuple(frozenset(i.cells) for i in fmt.identities),
        anchors=tuple(i.anchor for i in fmt.identities),
        lower=np.array([-math.inf if t.min is None else float(t.min) for t in types]),
        integer=np.array([t.integer for t in types]))
    _PROBLEMS[id(fmt)] = (fmt, problem)
    return problem


# ----------------------------------------------------------------------------------------------
# Entry point


def suggest_fix(fmt: Format, values: Mapping[str, Number | None], *, unusable: frozenset[str] = frozenset(),
                time_limit: float = 10.0, blank_weight: float = 1.0) -> Suggestion | None:
    """The Fellegi–Holt suggestion for one workbook, or None when no identity fails.

    Args:
        fmt: the workbook's format.
        values: cell id → cleaned value (None = blank, counted as 0); cells missing count as blank.
        unusable: cells whose value could not be read; they are unknowns (see the module docstring), and
            an identity using one does not count as failing.
        time_limit: seconds the solver may spend on this workbook at most, a guard beside the node limit
            (the numpy one-cell pass always runs).
        blank_weight: the cost of filling a blank, against 1 for changing a written value (> 0).
    """
    if not blank_weight > 0:
        raise ValueError("blank_weight must be > 0")
    start = time.perf_counter()
    problem = _problem(fmt)
    counted: dict[str, Number] = {c: _counted(values.get(c)) if c not in unusable else 0 for c in problem.ids}
    failing = tuple(i.rule for i, members in zip(fmt.identities, problem.members, strict=True)
                    if not members & unusable and i.difference(counted) != 0)
    if not failing:
        return None
    current = np.array([float(counted[c]) for c in problem.ids])
    free = np.array([c in unusable for c in problem.ids])
    blank = np.array([values.get(c) is None and c not in unusable for c in problem.ids])
    weights = np.where(blank, blank_weight, 1.0)
    weights[free] = 0.0
    fixes = _one_cell(problem, current, free)
    if fixes:
        cheapest = min(weights[k] for k, _ in fixes)
        if cheapest < 2 * weights[~free].min():  # no set of two or more cells can cost as little
            ones: list[Fix] = [((problem.ids[k], v),) for k, v in fixes if weights[k] == cheapest]
            return _suggestion(problem, values, ones, more=False, failing=failing, method="one-cell")
    pairs = _two_cells(problem, current, weights) if fixes == [] else None
    if pairs:  # no cell fixes it alone, and every written cell costs the same: no cheaper set exists
        twos: list[Fix] = [((problem.ids[a], va), (problem.ids[b], vb)) for (a, va), (b, vb) in pairs]
        return _suggestion(problem, values, twos, more=False, failing=failing, method="two-cell")
    return _milp(problem, values, current, free, weights, failing, deadline=start + time_limit,
                 smallest=3 if pairs == [] else 2 if fixes == [] else 1)  # the sizes ruled out above


def _one_cell(problem: _Problem, current: np.ndarray, free: np.ndarray) -> list[tuple[int, float]] | None:
    """Every one-cell fix (cell index, new value); None when they cannot be listed here (unknown cells,
    or a cell out of its bounds, which must change whatever else does).

    A cell fixes everything alone only if the identities it is in all fail and ask for the same change.
    """
    if free.any() or (current < problem.lower).any() or (
            problem.integer & (current != np.round(current))).any():
        return None
    residual = problem.matrix @ current
    first = int(np.flatnonzero(residual)[0])
    candidates = np.flatnonzero(problem.matrix[first])
    column = problem.matrix[:, candidates]
    delta = -residual[first] / column[first]
    fixes = np.all(column * delta + residual[:, None] == 0, axis=0)
    new = current[candidates] + delta
    fixes &= new >= problem.lower[candidates]
    fixes &= ~problem.integer[candidates] | (new == np.round(new))
    return [(int(k), float(v)) for k, v in zip(candidates[fixes], new[fixes], strict=True)]


def _two_cells(problem: _Problem, current: np.ndarray, weights: np.ndarray
               ) -> list[tuple[tuple[int, float], tuple[int, float]]] | None:
    """Every two-cell fix ((cell, new value), (cell, new value)) when no cell fixes everything alone; None
    when they cannot be listed here (cells weighted differently, or one cell would fix every identity
    alone but for its bounds, so that two cells can share its change in many ways).

    Some cell of the first failing identity must change, so the pairs are (a cell of it, any other cell).
    Two cells whose columns are not parallel fix everything with exactly one pair of changes, found by
    Cramer's rule and checked exactly; parallel columns fix nothing unless one of them would alone. All
    identity cells are whole counts (the format data says so), so the arithmetic is exact.
    """
    if not (weights == weights[0]).all() or not problem.integer.all():
        return None
    matrix = problem.matrix
    residual = matrix @ current
    first = int(np.flatnonzero(residual)[0])
    delta = -residual[first] / np.where(matrix[first] != 0, matrix[first], np.inf)
    alone = (delta != 0) & np.all(matrix * delta + residual[:, None] == 0, axis=0)
    if alone.any():  # a cell that fixes everything alone, but not within its bounds: for the solver
        return None
    n = len(problem.ids)
    a = np.repeat(np.flatnonzero(matrix[first]), n)
    b = np.tile(np.arange(n), len(a) // n)
    keep = (a != b) & ~((matrix[first, b] != 0) & (b < a))  # each pair within the identity once
    a, b = a[keep], b[keep]
    ca, cb = matrix[:, a], matrix[:, b]
    aa, bb, ab = (ca * ca).sum(0), (cb * cb).sum(0), (ca * cb).sum(0)
    ra, rb = -(ca.T @ residual), -(cb.T @ residual)
    det = aa * bb - ab * ab
    solvable = det != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        da = np.round((ra * bb - rb * ab) / det)
        db = np.round((rb * aa - ra * ab) / det)
    solvable &= (da != 0) & (db != 0)
    solvable &= np.all(ca * da + cb * db + residual[:, None] == 0, axis=0)
    new_a, new_b = current[a] + da, current[b] + db
    solvable &= (new_a >= problem.lower[a]) & (new_b >= problem.lower[b])
    return [((int(i), float(x)), (int(j), float(y))) if i < j else ((int(j), float(y)), (int(i), float(x)))
            for i, j, x, y in zip(a[solvable], b[solvable], new_a[solvable], new_b[solvable], strict=True)]


def _milp(problem: _Problem, values: Mapping[str, Number | None], current: np.ndarray, free: np.ndarray,
          weights: np.ndarray, failing: tuple[str, ...], *, deadline: float, smallest: int) -> Suggestion:
    from scipy.optimize import Bounds, LinearConstraint, milp  # scipy only when a workbook needs it
    from scipy.sparse import csr_array, hstack, vstack

    n = len(problem.ids)
    counted = np.where(free, 0.0, current)
    # Big M: a change is never larger than twice the workbook's largest number plus all residuals
    # (a part never exceeds its total). Kept that small on purpose: M against a change of 1 is what
    # the solver's tolerances must resolve, and what makes it slow.
    big = float(2 * np.abs(counted).max(initial=0) + np.abs(problem.matrix @ counted).sum() + 1)
    lower = np.where(np.isinf(problem.lower), counted - big, problem.lower)
    upper = np.maximum(counted, lower) + big
    changeable = np.flatnonzero(~free)
    k = len(changeable)
    up = np.maximum(upper[changeable] - counted[changeable], 0)
    down = np.maximum(counted[changeable] - lower[changeable], 0)
    pick = csr_array((np.ones(k), (np.arange(k), changeable)), shape=(k, n))
    link = vstack([hstack([pick, csr_array((-up, (np.arange(k), np.arange(k))), shape=(k, k))]),
                   hstack([-pick, csr_array((-down, (np.arange(k), np.arange(k))), shape=(k, k))])])
    identities = hstack([csr_array(problem.matrix), csr_array((problem.matrix.shape[0], k))])
    # Each failing identity without an unknown needs one of its cells changed: a valid cover that
    # gives the solver a strong bound (without it, the big M makes the relaxation nearly 0).
    failing_rows = [row for row, rule in enumerate(problem.rules) if rule in failing]
    cover = np.zeros((len(failing_rows), n + k))
    for t, row in enumerate(failing_rows):
        cover[t, n:] = problem.matrix[row, changeable] != 0
    base = [LinearConstraint(identities, 0, 0),
            LinearConstraint(link, np.full(2 * k, -np.inf),
                             np.concatenate([counted[changeable], -counted[changeable]])),
            LinearConstraint(cover, 1, np.inf)]
    cost = np.concatenate([np.zeros(n), weights[changeable]])
    integrality = np.concatenate([problem.integer.astype(float), np.ones(k)])
    bounds = Bounds(np.concatenate([lower, np.zeros(k)]), np.concatenate([upper, np.ones(k)]))

    def solve(extra: list[LinearConstraint]) -> tuple[str, np.ndarray | None]:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            return NOT_FOUND_IN_LIMIT, None
        with warnings.catch_warnings(), native_stdout_silenced():  # the tolerances are passed to HiGHS
            warnings.filterwarnings("ignore", message="Unrecognized options", category=RuntimeWarning)  # verbatim
            result = milp(cost, integrality=integrality, bounds=bounds, constraints=[*base, *extra],
                          options={**_HIGHS, "time_limit": remaining})
        if result.status == 0:
            return FOUND, np.asarray(result.x)[:n]
        if result.status == 2:  # infeasible: no further set
            return NOT_FOUND, None
        return (NOT_FOUND_IN_LIMIT if result.status == 1 else NOT_FOUND), None

    # Sets of at most 2, 3, … cells first: HiGHS finds a small set far sooner when told its size. The
    # cheapest set of at most `size` cells is the cheapest of all once no larger set could cost less.
    lightest = float(weights[changeable].min())
    size_row = np.concatenate([np.zeros(n), np.ones(k)])
    first: tuple[tuple[str, float], ...] | None = None
    for size in [*range(smallest, _SIZES + 1), None]:
        outcome, x = solve([] if size is None else [LinearConstraint(size_row, -np.inf, size)])
        if outcome == NOT_FOUND_IN_LIMIT:
            return Suggestion(outcome, rules=failing, method="milp")
        if x is None:
            continue
        first = _checked(problem, counted, free, x)
        if not first:  # a wrong answer, or "no change needed" although identities fail
            return Suggestion(NOT_FOUND, rules=failing, method="milp")
        if size is None or _weight(problem, weights, first) <= (size + 1) * lightest + 1e-9:
            break
    if not first:
        return Suggestion(NOT_FOUND, rules=failing, method="milp")
    best = _weight(problem, weights, first)
    sets = [first]
    more = False
    budget = LinearConstraint(np.concatenate([np.zeros(n), weights[changeable]]), -np.inf, best + 1e-6)
    position = {int(c): t for t, c in enumerate(changeable)}
    while len(sets) <= MAX_LISTED + 1 and best > 0:
        cuts = [LinearConstraint(_cut(n, k, [position[problem.ids.index(c)] for c, _ in found]), -np.inf,
                                 len(found) - 1) for found in sets]
        outcome, x = solve([budget, *cuts])
        if x is None:
            more = outcome != NOT_FOUND  # out of time: further sets cannot be ruled out
            break
        found = _checked(problem, counted, free, x)
        if found is None or not found or any(dict(found).keys() == dict(s).keys() for s in sets):
            more = True
            break
        sets.append(found)
    more = more or len(sets) > MAX_LISTED + 1
    return _suggestion(problem, values, sets, more=more, failing=failing, method="milp")


def _weight(problem: _Problem, weights: np.ndarray, found: tuple[tuple[str, float], ...]) -> float:
    return float(sum(weights[problem.ids.index(c)] for c, _ in found))


def _cut(n: int, k: int, positions: Sequence[int]) -> np.ndarray:
    row = np.zeros(n + k)
    row[[n + p for p in positions]] = 1
    return row


def _checked(problem: _Problem, counted: np.ndarray, free: np.ndarray, x: np.ndarray
             ) -> tuple[tuple[str, float], ...] | None:
    """The changed cells of a solver answer, rounded and checked exactly; None if the answer is wrong."""
    x = np.where(problem.integer, np.round(x), x)
    if (x < problem.lower - _TOL).any() or np.abs(problem.matrix @ x).max(initial=0) > 1e-6:
        return None
    changed = np.flatnonzero(~free & (np.abs(x - counted) > 1e-9))
    return tuple((problem.ids[k], float(x[k])) for k in changed)


def _suggestion(problem: _Problem, values: Mapping[str, Number | None],
                sets: Sequence[tuple[tuple[str, float], ...]], *, more: bool, failing: tuple[str, ...],
                method: str) -> Suggestion:
    """Order the equally minimal sets (those changing the failing identities' totals first) into a record."""
    order = {c: k for k, c in enumerate(problem.ids)}
    anchors = {problem.anchors[problem.rules.index(rule)] for rule in failing}

    def rank(found: tuple[tuple[str, float], ...]) -> tuple[int, list[int]]:
        return (-sum(c in anchors for c, _ in found), sorted(order[c] for c, _ in found))

    ranked = sorted(sets, key=rank)

    def changes(found: tuple[tuple[str, float], ...]) -> tuple[Change, ...]:
        return tuple(Change(c, values.get(c), _number(v, bool(problem.integer[order[c]])))
                     for c, v in sorted(found, key=lambda item: order[item[0]]))

    listed = ranked[1:MAX_LISTED + 1]
    return Suggestion(FOUND, changes(ranked[0]), tuple(changes(s) for s in listed),
                      more=more or len(ranked) > MAX_LISTED + 1, rules=failing, method=method)


def _counted(value: Number | None) -> Number:
    return 0 if value is None else value


def _number(value: float, integer: bool) -> Number:
    return round(value) if integer else round(value, 6)


def _json(value: Number | None) -> Number | None:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# ----------------------------------------------------------------------------------------------
# Words


def suggestion_text(suggestion: Suggestion, where: Mapping[str, CellRef], lang: str = "zh") -> str:
    """The suggestion in one plain sentence: "最可能填错的是 J8：把 44 改为 43，所有勾稽关系即可成立".

    Cells are named by their A1 address as the workbook was read (`where`), with the sheet when the
    cells named lie on more than one sheet.
    """
    if not suggestion.found:
        key = "suggest.not_found_in_limit" if suggestion.outcome == NOT_FOUND_IN_LIMIT else "suggest.not_found"
        return text(key, lang)
    sets = (suggestion.changes, *suggestion.alternatives)
    sheets = {where[c.id].sheet for s in sets for c in s}

    def name(cell: str) -> str:
        ref = where[cell]
        return text("suggest.cell_on_sheet", lang, sheet=ref.sheet, ref=ref.ref) if len(sheets) > 1 else ref.ref

    if suggestion.unique:
        changes = suggestion.changes
        if len(changes) == 1:
            edit = _edit(changes[0], None, lang)
        else:
            edit = text("suggest.edit_sep", lang).join(_edit(c, name(c.id), lang) for c in changes)
        return text("suggest.unique", lang, cells=_and([name(c.id) for c in changes], lang), edit=edit)
    options = [text("suggest.edit_sep", lang).join(_edit(c, name(c.id), lang) for c in s) for s in sets]
    return text("suggest.several", lang, options=text("suggest.option_sep", lang).join(options),
                more=text("suggest.more", lang) if suggestion.more else "")


def _edit(change: Change, cell: str | None, lang: str) -> str:
    new = number_text(change.suggested)
    if change.value is None:
        return text("suggest.fill", lang, new=new) if cell is None else text("suggest.fill_in", lang, cell=cell,
                                                                              new=new)
    old = number_text(change.value)
    return text("suggest.change", lang, old=old, new=new) if cell is None else text(
        "suggest.change_in", lang, cell=cell, old=old, new=new)


def _and(names: list[str], lang: str) -> str:
    if len(names) == 1:
        return names[0]
    return text("suggest.list_sep", lang).join(names[:-1]) + text("suggest.list_and", lang) + names[-1]
