"""The body's level (ruling 7): as stated on the cover, else inferred from the office name.

Some rules depend on who may do what: only provincial and 设区的市 governments make 规章, so "规章 should
be 0" applies to a county, a township or a department, never to a city. A rule names the levels it
applies to (`levels` in formats.toml); when the level is neither stated nor unambiguous from the name,
such rules are silent rather than guess. The inference patterns live in `data/levels.toml`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources

from .formats import Format, FormatDataError
from .locate import fold

__all__ = ["Level", "body_level", "infer_level", "stated_level"]


@dataclass(frozen=True, slots=True)
class Level:
    """A body's level and where it came from: "stated" on the cover or "inferred" from the name."""

    level: str
    source: str  # stated | inferred


@cache
def _data(levels: tuple[str, ...]) -> tuple[tuple[tuple[re.Pattern[str], str], ...], Mapping[str, str]]:
    """The inference rules and the aliases, checked against the format's levels once."""
    data = tomllib.loads(resources.files("disclosure_xlsx").joinpath("data/levels.toml").read_text("utf-8"))
    rules = tuple((re.compile(r["pattern"]), r["level"]) for r in data["infer"])
    aliases = {fold(k): v for k, v in data["aliases"].items()}
    named = {level for _, level in rules if level} | set(aliases.values())
    if not named <= set(levels):
        raise FormatDataError(f"levels.toml names levels that are not choices: {sorted(named - set(levels))}")
    return rules, aliases


def stated_level(fmt: Format, text: str | None) -> str | None:
    """The level an office wrote on the cover, if it is one of the levels (or a common alias of one)."""
    if not text or not fmt.levels:
        return None
    folded = fold(text)
    by_fold = {fold(level): level for level in fmt.levels}
    return by_fold.get(folded) or _data(fmt.levels)[1].get(folded)


def infer_level(fmt: Format, office: str | None) -> str | None:
    """The level the office name shows unambiguously (…县人民政府 → 县级), else None."""
    if not office or not fmt.levels:
        return None
    name = fold(office)
    for pattern, level in _data(fmt.levels)[0]:
        if pattern.search(name):
            return level or None
    return None


def body_level(fmt: Format, texts: Mapping[str, str | None], office: str | None) -> Level | None:
    """The level of a report's body: the cover's level field when it names a level, else inferred from the
    office name; None when neither tells (level-dependent rules are then silent)."""
    stated = stated_level(fmt, texts.get(fmt.field("level").name))
    if stated:
        return Level(stated, "stated")
    inferred = infer_level(fmt, office)
    return Level(inferred, "inferred") if inferred else None
