"""Random reports that satisfy every identity and plausibility rule of a format.

Used to make sample workbooks, property tests and benchmark batches, so all three exercise the
same data as real offices would send. Built only from the format data: totals are solved from the
identities, and rules are repaired generically by kind.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from .formats import Cell, Format, Identity, get_format

__all__ = ["balanced_report", "balanced_successor"]


def balanced_report(format_id: str, rng: random.Random, *, zero_share: float = 0.5,
                    maximum: int = 40) -> dict[str, int | float]:
    """Values for every cell of the format such that every identity and rule holds.

    Args:
        format_id: the format to fill.
        rng: the random source (seed it for reproducible reports).
        zero_share: the share of free cells that are 0, as in real reports where most rows are empty.
        maximum: the largest value drawn for a free count cell.
    """
    fmt = get_format(format_id)
    solved = {i.lhs[0]: i for i in fmt.identities if len(i.lhs) == 1}  # each total = Σ its parts
    values: dict[str, int | float] = {
        cid: _draw(cell, rng, zero_share, maximum) for cid, cell in fmt.cells.items() if cid not in solved}
    _solve_totals(values, solved)
    _balance(fmt, values, solved)
    _repair_rules(fmt, values, rng, solved)
    _solve_totals(values, solved)
    _balance(fmt, values, solved)  # a repair that changed section 三 moved the totals
    return values


def _balance(fmt: Format, values: dict[str, int | float], solved: Mapping[str, Identity]) -> None:
    """Identities with several lhs terms (I1): shift a free term until they hold."""
    for identity in fmt.identities:
        if len(identity.lhs) > 1:
            diff = identity.difference(values)
            if diff:
                side = identity.rhs if diff > 0 else identity.lhs
                free = next(c for c in side if c not in solved)
                values[free] += abs(diff)
                _solve_totals(values, solved)


def balanced_successor(previous: Mapping[str, int | float | None], previous_format: str, format_id: str,
                       year: int, rng: random.Random, **options: float) -> dict[str, int | float]:
    """A balanced report for `year` by the office whose report for `year` − 1 was `previous`.

    Every identity and rule holds, and so does every cross-year rule that applies (X1–X3): each rule's
    anchor (carried in, in force, previous items) is set from last year, a negative result is made up
    by raising one of this year's other terms, and the identities are balanced again without touching
    the anchors. `options` go to `balanced_report`.
    """
    fmt = get_format(format_id)
    rules = [r for r in fmt.cross_year if r.applies(previous_format, year)]
    for _ in range(20):  # a draw whose plausibility repairs would undo an anchor is simply drawn again
        values = balanced_report(format_id, rng, **options)  # type: ignore[arg-type]
        previous_values = {c: (v or 0) for c, v in previous.items()}
        pinned = set()
        for rule in rules:
            expected = rule.expected_anchor(values, previous_values)
            if expected < 0:  # e.g. more repealed than were in force: issue more this year
                side = rule.rhs if rule.anchor in rule.lhs else rule.lhs
                free = next(t for t in side if not t.previous)
                values[free.cell] -= expected
                expected = 0
            values[rule.anchor.cell] = expected
            pinned.add(rule.anchor.cell)
        _rebalance(fmt, values, pinned)
        _repair_rules(fmt, values, rng, fixed=pinned)
        _rebalance(fmt, values, pinned)
        if all(i.holds(values) for i in fmt.identities) and all(r.holds(values) for r in fmt.rules) and all(
                r.difference(values, previous_values) == 0 for r in rules):
            return values
    raise ValueError(f"format {format_id}: no successor report satisfies every rule")


def _rebalance(fmt: Format, values: dict[str, int | float], pinned: set[str]) -> None:
    """Make every identity hold again after some cells were set, moving only cells not in `pinned`."""
    solved = {i.lhs[0]: i for i in fmt.identities if len(i.lhs) == 1}
    _solve_totals(values, solved)
    for identity in fmt.identities:
        if len(identity.lhs) > 1:
            diff = identity.difference(values)
            if diff:
                side = identity.rhs if diff > 0 else identity.lhs
                free = next(c for c in side if c not in solved and c not in pinned)
                values[free] += abs(diff)
                _solve_totals(values, solved)


def _draw(cell: Cell, rng: random.Random, zero_share: float, maximum: int) -> int | float:
    if not cell.type.integer:
        return 0 if rng.random() < zero_share else round(rng.uniform(0.5, 3000.0), 2)
    if cell.type.min is None:  # signed counts: changes may be negative
        return rng.randint(-5, 10)
    return 0 if rng.random() < zero_share else rng.randint(1, maximum)


def _solve_totals(values: dict[str, int | float], solved: Mapping[str, Identity]) -> None:
    """Fill each total from its parts, repeating until totals of totals are settled."""
    pending = dict(solved)
    while pending:
        ready = [cid for cid, i in pending.items() if all(c in values for c in i.rhs)]
        if not ready:
            raise ValueError(f"identities cannot be solved for {sorted(pending)[:3]}")
        for cid in ready:
            identity = pending.pop(cid)
            values[cid] = sum(values[c] for c in identity.rhs)


def _repair_rules(fmt: Format, values: dict[str, int | float], rng: random.Random,
                  solved: Mapping[str, Identity] | None = None, fixed: set[str] | frozenset[str] = frozenset()
                  ) -> None:
    """Make every plausibility rule hold; each repair only raises or zeroes free section-二 cells
    (never one in `fixed`: a successor's cells set from last year), or empties the parts of a share."""
    solved = solved if solved is not None else {i.lhs[0]: i for i in fmt.identities if len(i.lhs) == 1}
    for _ in range(3):
        broken = [r for r in fmt.rules if not r.holds(values)]
        if not broken:
            return
        for rule in broken:
            if rule.kind == "le":
                free = next((c for c in rule.rhs if c not in fixed), rule.rhs[0])
                values[free] += sum(values[c] for c in rule.lhs) - sum(values[c] for c in rule.rhs)
            elif rule.kind in ("expect_zero", "implies_zero"):
                for cid in rule.cells:
                    values[cid] = 0
            elif rule.kind == "same_zero":
                for cid in rule.cells:
                    if values[cid] == 0:
                        values[cid] = rng.randint(1, 9)
            elif rule.kind == "max_decimals":
                for cid in rule.cells:
                    values[cid] = round(values[cid], rule.max or 0)
            elif rule.kind == "share_max":  # empty the parts of the too-large totals; totals follow
                for cid in rule.lhs:
                    for part in (solved[cid].rhs if cid in solved else (cid,)):
                        values[part] = 0
                    values[cid] = 0
            elif rule.kind == "magnitude":  # as if written in 元: brought back to 万元
                for cid in rule.cells:
                    values[cid] = values[cid] / 10_000 + 0.5
    raise ValueError(f"format {fmt.id}: plausibility rules cannot all be satisfied")
