"""README is part of the product: its Python examples run, and every command and option is documented."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import typer

from disclosure_xlsx.cli import app

from .conftest import ROOT

README = (ROOT / "README.md").read_text("utf-8")
EXAMPLES = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_python_examples() -> None:
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("number", range(len(EXAMPLES)))
def test_readme_python_examples_run(number: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code = EXAMPLES[number].replace("/tmp/", f"{tmp_path}{os.sep}")
    exec(compile(code, f"README example {number + 1}", "exec"), {})


def _commands():
    group = typer.main.get_command(app)
    return group.commands.items()  # type: ignore[attr-defined]


def test_every_command_and_option_is_in_the_readme() -> None:
    commands = list(_commands())
    assert len(commands) >= 4
    for name, command in commands:
        assert f"disclosure-xlsx {name}" in README, name
        for param in command.params:
            for option in param.opts:
                if option.startswith("--") and option != "--help":
                    assert option in README, f"{name} {option}"


def test_every_command_has_help_in_both_languages() -> None:
    for name, command in _commands():
        assert re.search(r"[\u4e00-\u9fff]", command.help or "") and re.search(r"[A-Za-z]{4}", command.help), name
        for param in command.params:
            assert param.opts[0] == "--help" or getattr(param, "help", None), f"{name} {param.opts}"


def test_the_command_reference_in_the_readme_is_current() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"])
    assert done.returncode == 0, "run python scripts/cli_reference.py"


def test_the_package_layout_lists_every_module_in_import_order() -> None:
    """README's module table names each module once, in the order of tests/test_architecture.py."""
    from .test_architecture import ORDER

    section = README[README.index("## Layout of the package"):]
    listed = re.findall(r"^\| `(\w+)\.py`", section, re.M)
    modules = sorted(p.stem for p in (ROOT / "disclosure_xlsx").glob("*.py") if p.stem not in {"__init__", "__main__"})
    assert sorted(listed) == modules
    assert listed == [m for m in ORDER if m in listed]


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_inside_the_readme_has_its_heading() -> None:
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", README, re.M)}
    links = re.findall(r"\]\(#([^)]+)\)", README)
    assert len(links) >= 8
    assert [link for link in links if link not in anchors] == []


def test_every_picture_in_the_readme_is_committed() -> None:
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README) + re.findall(r'<img src="([^"]+)"', README)
    assert len(pictures) >= 8
    assert [p for p in pictures if not (ROOT / p).is_file()] == []
