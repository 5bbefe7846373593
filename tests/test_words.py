"""The tool's own words (data/words/): every key the code asks for exists in both languages with the
same placeholders, and no module spells a word of its own."""

from __future__ import annotations

import ast
import re
import string
import tomllib
from pathlib import Path

import pytest

import disclosure_xlsx
from disclosure_xlsx.catalog import LANGS, text

PACKAGE = Path(disclosure_xlsx.__file__).parent
WORDS = PACKAGE / "data" / "words"
# A word has ideographs; punctuation alone (a character set for parsing, a delimiter) is not a word.
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def _entries(node: object, key: str = ""):
    """(key, entry) for every word entry: a {zh, en} table, a plain string, or a list pair."""
    if isinstance(node, dict) and set(node) == set(LANGS):
        yield key, node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _entries(v, f"{key}.{k}" if key else k)
    elif isinstance(node, str):
        yield key, node


def _all_entries():
    for path in sorted(WORDS.glob("*.toml")):
        for key, entry in _entries(tomllib.loads(path.read_text("utf-8"))):
            yield f"{path.stem}.{key}", entry


def _fields(value: object) -> set[str]:
    values = value if isinstance(value, list) else [value]
    return {f for v in values for _, f, _, _ in string.Formatter().parse(v) if f}


def test_every_entry_reads_the_same_in_both_languages() -> None:
    entries = list(_all_entries())
    assert len(entries) > 100
    for key, entry in entries:
        if isinstance(entry, dict):  # placeholders may differ (zh names a section by heading, en by number)
            assert type(entry["zh"]) is type(entry["en"]), key
            if isinstance(entry["zh"], list) and not key.endswith("aliases"):  # spellings to recognise may differ
                assert len(entry["zh"]) == len(entry["en"]), key


def _asked_for() -> dict[str, set[str] | None]:
    """Every literal key the package passes to text(), text_list() or phrase(), with the parameters it
    passes (None when it passes **params)."""
    keys: dict[str, set[str] | None] = {}
    for path in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("text", "text_list", "phrase") \
                    and node.args and isinstance(node.args[0], ast.Constant):
                names = {k.arg for k in node.keywords}
                passed = None if None in names or node.func.id == "text_list" else names  # lists are filled later
                key = node.args[0].value
                keys[key] = None if key in keys and keys[key] is None else (passed if key not in keys or passed is None
                                                                              else keys[key] & passed)  # type: ignore[operator]
    return keys


def test_every_word_the_code_asks_for_exists_with_its_placeholders() -> None:
    known = dict(_all_entries())
    asked = _asked_for()
    assert len(asked) > 50
    assert sorted(set(asked) - set(known)) == []
    for key, passed in asked.items():
        entry = known[key]
        needed = set().union(*(_fields(v) for v in entry.values())) if isinstance(entry, dict) else _fields(entry)
        if passed is not None:
            assert needed <= passed, (key, needed - passed)


@pytest.mark.parametrize("lang", LANGS)
def test_a_word_is_looked_up_by_file_and_key(lang: str) -> None:
    assert text("feedback.next_step.ok", lang)
    with pytest.raises(KeyError):
        text("feedback.no_such_word", lang)


def _literals(path: Path):
    """CJK string constants of a module outside docstrings (f-string parts included)."""
    tree = ast.parse(path.read_text("utf-8"))
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                and CJK.search(node.value):
            yield node.lineno, node.value


def test_no_module_spells_a_word_of_its_own() -> None:
    """Every user-facing word lives in data/words/ (or, for official labels, in formats.toml)."""
    found = {p.name: list(_literals(p)) for p in PACKAGE.glob("*.py")}
    spelled = {name: [f"{line}: {value[:30]}" for line, value in hits] for name, hits in found.items() if hits}
    assert spelled == {}


def test_no_module_names_a_cover_field_by_its_defined_name() -> None:
    """Cover fields are found by their role in the format data (`fmt.field("office")`), never by name."""
    for path in PACKAGE.glob("*.py"):
        assert not re.search(r"[\"']meta_[a-z_]+[\"']", path.read_text("utf-8")), path.name
