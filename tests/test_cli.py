"""The command line, run in-process with Typer's runner and once as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openpyxl
from typer.testing import CliRunner

from disclosure_xlsx.cli import app
from disclosure_xlsx.formats import current_format, format_for_year

from .conftest import defined_cells

runner = CliRunner()


def _format_of(path: Path) -> str:
    wb = openpyxl.load_workbook(path)
    sheet, ref = defined_cells(wb)["meta_format"]
    return str(wb[sheet][ref].value)


def test_template_defaults_to_the_current_format(tmp_path: Path) -> None:
    out = tmp_path / "模板.xlsx"
    result = runner.invoke(app, ["template", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert _format_of(out) == current_format().id


def test_template_follows_the_year_and_prefills_the_cover(tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    result = runner.invoke(app, ["template", "-o", str(out), "--year", "2020", "--office", "某某镇人民政府"])
    assert result.exit_code == 0, result.output
    assert _format_of(out) == format_for_year(2020).id  # type: ignore[union-attr]
    wb = openpyxl.load_workbook(out)
    names = defined_cells(wb)
    assert wb[names["meta_office"][0]][names["meta_office"][1]].value == "某某镇人民政府"
    assert wb[names["meta_year"][0]][names["meta_year"][1]].value == 2020


def test_explicit_format_wins_over_the_year_with_a_warning(tmp_path: Path) -> None:
    out = tmp_path / "t.xlsx"
    old = format_for_year(2020).id  # type: ignore[union-attr]
    result = runner.invoke(app, ["template", "-o", str(out), "--format", old, "--year", "2023"])
    assert result.exit_code == 0
    assert _format_of(out) == old
    assert "2023" in result.stderr


def test_template_never_overwrites_without_force(tmp_path: Path) -> None:
    out = tmp_path / "filled.xlsx"
    out.write_bytes(b"an office's filled workbook")
    result = runner.invoke(app, ["template", "-o", str(out)])
    assert result.exit_code == 2
    assert out.read_bytes() == b"an office's filled workbook"
    assert runner.invoke(app, ["template", "-o", str(out), "--force"]).exit_code == 0
    assert _format_of(out) == current_format().id


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["template", "-o", str(tmp_path / "x.xlsx"), "--format", "2020"]).exit_code == 2
    assert runner.invoke(app, ["template"]).exit_code == 2
    assert runner.invoke(app, ["no-such-command"]).exit_code == 2


def test_help_is_complete() -> None:
    result = runner.invoke(app, ["template", "--help"])
    for option in ("--output", "--format", "--office", "--year", "--force", "Example:"):
        assert option in result.output
    assert "--version" in runner.invoke(app, ["--help"]).output


def test_python_dash_m_runs_the_same_app() -> None:
    out = subprocess.run([sys.executable, "-m", "disclosure_xlsx", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("disclosure-xlsx ")
