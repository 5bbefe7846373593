"""The `disclosure-xlsx` command line: parse arguments, call the library, print, set the exit code.

Heavy libraries (pandas, pandera, openpyxl, xlsxwriter) are imported inside the commands that need
them, so `disclosure-xlsx --help` starts fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from . import __version__
from .formats import all_formats, current_format, format_for_year, get_format

app = typer.Typer(
    name="disclosure-xlsx",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print cell contents in a traceback
    rich_markup_mode=None,
    help="政府信息公开工作年度报告 工作簿的模板、校验与汇总工具。\n\n"
         "Templates, validation and roll-up of government information disclosure annual report workbooks.",
)

FormatChoice = Enum("FormatChoice", {f"f{fid}": fid for fid in all_formats()}, type=str)  # type: ignore[misc]
_CURRENT = current_format()
_COVER = {field.name: field.label for field in _CURRENT.cover}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"disclosure-xlsx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """政府信息公开工作年度报告 工作簿的模板、校验与汇总工具。"""


@app.command()
def template(
    output: Annotated[Path, typer.Option("--output", "-o", dir_okay=False,
                                         help="Where to write the .xlsx template (写出的模板文件).")],
    format_id: Annotated[FormatChoice | None, typer.Option(
        "--format", help=f"Report format ({_CURRENT.words.format_label}). Default: the format of --year, "
                         f"else the current one ({_CURRENT.id}).")] = None,
    office: Annotated[str | None, typer.Option(help=f"Pre-fill {_COVER['meta_office']} (office name).")] = None,
    year: Annotated[int | None, typer.Option(min=1990, max=2100,
                                             help=f"Pre-fill {_COVER['meta_year']} (report year).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
) -> None:
    """Write the standard workbook an office fills in (写出供各单位填报的标准模板).

    The workbook has a cover sheet with filling instructions, one sheet per table section (二, 三, 四)
    laid out like the official tables, and a sheet for the narrative sections (一, 五, 六). Every input
    cell carries a defined name (e.g. s3_new_natural_person), is shaded and unlocked, and is checked
    while typing; self-check cells beside the tables show ✓ or ✗ for each 勾稽关系.

    Example: disclosure-xlsx template -o 2024年报模板.xlsx --office 某某镇人民政府 --year 2024
    """
    from .template import write_template

    fmt = get_format(format_id.value) if format_id else (year and format_for_year(year)) or current_format()
    if year is not None and not fmt.covers_year(year):
        typer.echo(f"注意：{fmt.title}不适用于 {year} 年度的报告（按规定应使用"
                   f"{(format_for_year(year) or fmt).title}）。仍按要求生成。", err=True)
    if output.exists() and not force:
        typer.echo(f"{output} 已存在；如需覆盖请加 --force。({output} exists; use --force to overwrite.)", err=True)
        raise typer.Exit(2)
    values: dict[str, object] = {}
    if office:
        values["meta_office"] = office
    if year is not None:
        values["meta_year"] = year
    write_template(output, fmt.id, values=values)
    typer.echo(f"已写出{fmt.title}模板：{output}")
