"""Workbooks saved by a real office suite (LibreOffice headless) validate exactly like the originals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from disclosure_xlsx.pipeline import validate_paths

from .conftest import SAMPLES

MANIFEST = json.loads((SAMPLES / "manifest.json").read_text("utf-8"))


def _essence(result) -> dict:
    """What must not change when an office re-saves a file: findings and cleaning, by cell and text."""
    data = result.to_dict()
    return {k: data[k] for k in ("office", "year", "format", "status", "findings", "cleaning")}


@pytest.mark.parametrize("target, located_by", [("xlsx", "names"), ("ods", "names"), ("xls", "labels")])
def test_libreoffice_copies_give_the_same_findings(tmp_path: Path, soffice, target: str, located_by: str) -> None:
    originals = [SAMPLES / e["file"] for e in MANIFEST]
    copies = soffice(originals, target, tmp_path / target)
    before = validate_paths(originals, workers=1).workbooks
    after = validate_paths(copies, workers=1).workbooks
    for original, copy in zip(before, after, strict=True):
        assert _essence(copy) == _essence(original), copy.file
        assert copy.report.located_by == located_by
