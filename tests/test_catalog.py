"""The findings catalog: both languages, every code used exists, every code is documented."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

import disclosure_xlsx
from disclosure_xlsx.catalog import LANGS, Finding, catalog

ROOT = Path(disclosure_xlsx.__file__).parent.parent


def test_every_entry_has_both_languages_with_the_same_placeholders() -> None:
    for code, entry in catalog().items():
        assert re.fullmatch(r"[a-z]+(-[a-z]+)*", code)
        assert entry["severity"] in ("error", "warning", "info")
        fields = [{f for _, f, _, _ in string.Formatter().parse(entry[lang]) if f} for lang in LANGS]
        assert fields[0] == fields[1], code


def test_every_code_used_in_the_package_is_in_the_catalog() -> None:
    from disclosure_xlsx.clean import _VALUE_RULES

    source = "\n".join(p.read_text("utf-8") for p in (ROOT / "disclosure_xlsx").glob("*.py"))
    used = set(re.findall(r'Finding\(\s*"([a-z-]+)"', source)) | set(_VALUE_RULES)  # the cleaner's problem codes
    assert used and used <= set(catalog())


def test_readme_documents_every_code() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for code, entry in catalog().items():
        assert re.search(rf"\| `{code}` \| {entry['severity']} \|", readme), code


def test_unknown_codes_are_bugs() -> None:
    with pytest.raises(KeyError):
        Finding("no-such-code")
