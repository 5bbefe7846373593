"""Rules of the code base that keep the format data the only source of truth."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import disclosure_xlsx

PACKAGE = Path(disclosure_xlsx.__file__).parent
# Imports flow one way: a module may import only modules listed before it.
ORDER = ["wrapping", "catalog", "formats", "roster", "_opc", "_sheetml", "_xlsx", "marks", "access", "xlsxpatch", "stencil", "layout", "limits", "workers", "locate", "stray", "levels", "documents", "read", "clean",
         "narrative", "_pandera", "validate", "suggest", "synthetic", "template", "mapping", "refill", "crossyear", "pipeline", "outputs", "acceptfile", "accept", "rounds", "annotate", "feedback", "convert",
         "aggregate", "mail", "render", "publish", "uploads", "workspace", "webview", "web", "cli", "__main__", "__init__"]
LABEL_FIELDS = {"label", "heading", "caption", "note", "sheet", "row_header", "aliases", "signals", "title",
                "format_label", "version_label", "instructions_heading", "cover_sheet", "narrative_sheet"}
CJK = re.compile(r"[\u4e00-\u9fff]")


def _sources() -> dict[str, str]:
    return {p.stem: p.read_text("utf-8") for p in PACKAGE.glob("*.py")}


def _labels(node: object, key: str = "") -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_labels(v, k) for k, v in node.items())) if node else set()
    if isinstance(node, list):
        return set().union(*(_labels(v, key) for v in node)) if node else set()
    if isinstance(node, str) and key in LABEL_FIELDS and len(CJK.findall(node)) >= 2:
        return {node}
    return set()


def test_no_module_spells_a_label_or_a_format_year() -> None:
    data = tomllib.loads((PACKAGE / "data" / "formats.toml").read_text("utf-8"))
    labels = _labels(data)
    assert len(labels) > 100  # the walk found the labels
    for module, source in _sources().items():
        # a two-character label (年度, 其他) is ordinary Chinese: only a whole string literal counts
        spelled = sorted(label for label in labels
                         if (label in source if len(label) > 2 else re.search(rf"[\"']{label}[\"']", source)))
        assert not spelled, f"{module}.py spells labels {spelled[:3]}"
        assert not re.search(r"(?<!\d)20(19|21)(?!\d)", source), f"{module}.py names a format year"


def test_imports_flow_one_way() -> None:
    for module, source in _sources().items():
        assert module in ORDER, f"add {module}.py to ORDER"
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom) and node.level >= 1 and node.module:
                target = node.module.split(".")[0]
                assert ORDER.index(target) < ORDER.index(module), f"{module} imports {target}"


def test_only_the_cli_imports_typer() -> None:
    for module, source in _sources().items():
        if module != "cli":
            assert "import typer" not in source and "from rich" not in source, module


def test_help_does_not_import_heavy_libraries() -> None:
    code = ("import sys; from disclosure_xlsx.cli import app; "
            "heavy = [m for m in ('pandas', 'pandera', 'openpyxl', 'xlsxwriter', 'numpy') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves() -> None:
    """`disclosure_xlsx.__all__` names only what the package really exports (they resolve lazily)."""
    for name in disclosure_xlsx.__all__:
        assert getattr(disclosure_xlsx, name) is not None, name
    assert {"validate_paths", "validate_workbook", "convert_paths", "aggregate_paths", "publish_paths",
            "write_template", "get_format", "write_outputs", "serve"} <= set(disclosure_xlsx.__all__)
