"""Write the command reference of README.md (between its cli-reference markers) from the command line itself.

    python scripts/cli_reference.py          # rewrite the section
    python scripts/cli_reference.py --check  # exit 1 if README's section is not current (tests run this)

Every command with its first help paragraph, and every option with its help, as the program defines them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import typer

from disclosure_xlsx.cli import app

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- cli-reference: begin (python scripts/cli_reference.py) -->", "<!-- cli-reference: end -->"


def reference() -> str:
    group = typer.main.get_command(app)
    lines = [START, ""]
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        summary = (command.help or "").split("\n\n")[0].replace("\n", " ")
        lines += [f"**`disclosure-xlsx {name}`** — {summary}", "", "| option | |", "|---|---|"]
        for param in command.params:
            if "--help" in param.opts:
                continue
            names = ", ".join(f"`{o}`" for o in (*param.opts, *param.secondary_opts))
            if param.param_type_name == "argument":
                names = f"`{param.metavar or param.name}`"
            help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {names} | {help_text} |")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README is current")
    args = parser.parse_args()
    text = README.read_text("utf-8")
    start, end = text.index(START), text.index(END) + len(END)
    current = reference()
    if args.check:
        return 0 if text[start:end] == current else 1
    README.write_text(text[:start] + current + text[end:], "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
