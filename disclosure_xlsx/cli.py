"""The `disclosure-xlsx` command line: parse arguments, call the library, print, set the exit code.

Heavy libraries (pandas, pandera, openpyxl, xlsxwriter) are imported inside the commands that need
them, so `disclosure-xlsx --help` starts fast.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import __version__
from .catalog import status_text
from .formats import all_formats, current_format, format_for_year, get_format

if TYPE_CHECKING:
    from .pipeline import BatchResult

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
_COVER = _CURRENT.cover_labels
err = Console(stderr=True)


class Lang(str, Enum):
    zh = "zh"
    en = "en"


# Words of the human-readable output, per language.
_WORDS = {
    "zh": {"file": "文件", "office": _COVER["meta_office"], "year": _COVER["meta_year"],
           "format": _CURRENT.words.format_label, "errors": "错误", "warnings": "警告",
           "status": "状态", "error": "错误", "warning": "警告", "more_blank": "另有 {n} 个单元格为空白或“/”等，已按 0 计算：{refs}",
           "summary": "共 {workbooks} 个工作簿：通过 {ok}，有警告 {with_warnings}，有错误 {with_errors}，无法读取 {unreadable}。",
           "none": "没有找到可以校验的工作簿（.xlsx、.xlsm、.xls、.ods）。", "reading": "读取工作簿",
           "written": "校验报告（report.json）、各单位反馈（feedback/）和校验汇总.xlsx 已写入 {path}"},
    "en": {"file": "file", "office": "office", "year": "year", "format": "format", "errors": "errors",
           "warnings": "warnings", "status": "status", "error": "error", "warning": "warning",
           "more_blank": "{n} more cells are blank or hold a placeholder and were counted as 0: {refs}",
           "summary": "{workbooks} workbooks: {ok} ok, {with_warnings} with warnings, {with_errors} with errors, "
                      "{unreadable} unreadable.",
           "none": "No workbook (.xlsx, .xlsm, .xls, .ods) was found.", "reading": "Reading workbooks",
           "written": "report.json, feedback/ and 校验汇总.xlsx written to {path}"},
}
BLANKS_SHOWN = 5  # blank-cell warnings listed one by one per workbook; the rest are summarised


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


# Cross-year options of validate, convert and aggregate (issue 14).
PreviousOption = Annotated[list[Path] | None, typer.Option(
    "--previous", exists=True, help=(
        "Last year's workbooks or folders (repeat the option for several): each workbook is paired with its "
        "office's previous report and checked against it (carry-over, documents in force, copied text)."))]
AliasesOption = Annotated[Path | None, typer.Option(
    "--aliases", exists=True, dir_okay=False, help=(
        "CSV of renamed or merged offices, one per row: 旧名称,新名称 (UTF-8). Used with --previous."))]


def _cross_year(previous: list[Path] | None, aliases: Path | None, lang: str) -> dict[str, Any]:
    """The cross-year keyword arguments for the library; a bad renaming table is a usage error."""
    if aliases is not None and previous is None:
        from .catalog import text

        err.print(text("crossyear.cli.aliases_alone", lang))
        raise typer.Exit(2)
    if aliases is not None:
        from .catalog import DisclosureError
        from .crossyear import read_aliases

        try:
            read_aliases(aliases)
        except DisclosureError as exc:
            err.print(escape(exc.finding.message(lang)))
            raise typer.Exit(2) from exc
    return {"previous": previous, "aliases": aliases} if previous is not None else {}


def _print_pairing(result: BatchResult, lang: str) -> None:
    from .crossyear import pairing_lines

    items = [(w.name, w.previous, w.findings) for w in result.workbooks]
    for line in pairing_lines(items, lang, unreadable=result.previous_unreadable):
        Console(highlight=False).print(escape(line))


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
    from_last: Annotated[Path | None, typer.Option(
        "--from", exists=True, dir_okay=False, help=(
            "Last year's workbook: carry its cover over (year + 1 unless --year), add a locked sheet with its "
            "carry-over (and documents in force) figures and live checks against them."))] = None,
) -> None:
    """Write the standard workbook an office fills in (写出供各单位填报的标准模板).

    The workbook has a cover sheet with filling instructions, one sheet per table section (二, 三, 四)
    laid out like the official tables, and a sheet for the narrative sections (一, 五, 六). Every input
    cell carries a defined name (e.g. s3_new_natural_person), is shaded and unlocked, and is checked
    while typing; self-check cells beside the tables show ✓ or ✗ for each 勾稽关系.

    Example: disclosure-xlsx template -o 2024年报模板.xlsx --office 某某镇人民政府 --year 2024
    """
    from .template import write_template

    if from_last is not None:  # issue 14: a template that starts from last year's report
        _template_from(output, from_last, format_id.value if format_id else None, year, force)
        return
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


def _template_from(output: Path, source: Path, format_id: str | None, year: int | None, force: bool) -> None:
    from .catalog import DisclosureError
    from .crossyear import last_year_template

    if output.exists() and not force:
        typer.echo(f"{output} 已存在；如需覆盖请加 --force。({output} exists; use --force to overwrite.)", err=True)
        raise typer.Exit(2)
    try:
        last_year_template(output, source, format_id=format_id, year=year)
    except DisclosureError as exc:
        err.print(escape(exc.finding.message("zh")))
        raise typer.Exit(1) from exc
    typer.echo(str(output))


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Workbooks or folders (searched recursively).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report to stdout and nothing else.")] = False,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the printed messages.")] = Lang.zh,
    out: Annotated[Path | None, typer.Option("--out", file_okay=False, help=(
        "Also write OUT/report.json, OUT/feedback/<office>_<year>/ (annotated workbook, 反馈.txt, 反馈.html) "
        "and OUT/校验汇总.xlsx. Inputs are never modified; OUT is left out of the search."))] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Reading processes (default: all cores).")] = None,
    previous: PreviousOption = None,
    aliases: AliasesOption = None,
) -> None:
    """Check returned workbooks and list every problem by cell (校验各单位交回的工作簿).

    PATHS may be files or folders; folders are searched recursively for .xlsx, .xlsm, .xls and .ods
    (Office lock files ~$* and hidden files are skipped). Every 勾稽关系 (I1, I2, I3, I5), every blank
    or unreadable value and every plausibility rule is checked; each finding names the sheet, the cell
    and what it should be.

    Exit code: 0 when no workbook has an error, 1 when any has (or cannot be read), 2 for a usage error.

    Example: disclosure-xlsx validate sample_workbooks/ --out 校验结果
    """
    from .pipeline import discover, validate_paths

    words = _WORDS[lang.value]
    files = discover(paths, exclude=[out] if out is not None else [])
    if not files:
        err.print(words["none"])
        raise typer.Exit(2)
    show = not as_json and sys.stderr.isatty()
    cross = _cross_year(previous, aliases, lang.value)
    exclude = [out] if out is not None else []
    result = (_with_progress(files, workers, words["reading"], exclude=exclude, **cross) if show
              else validate_paths(files, workers=workers, exclude=exclude, **cross))
    if out is not None:
        from .feedback import write_outputs

        write_outputs(result, out, workers=workers)
    if as_json:  # one line: a batch of thousands stays quick to write and to parse
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        _print_result(result, lang.value)
        if cross:
            _print_pairing(result, lang.value)
        if out is not None:
            err.print(words["written"].format(path=out))
    raise typer.Exit(1 if result.has_errors else 0)


def _with_progress(paths: list[Path], workers: int | None, title: str, **options: Any) -> BatchResult:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from .pipeline import validate_paths

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task(title, total=None)
        return validate_paths(paths, workers=workers,
                              progress=lambda done, total: bar.update(task, completed=done, total=total), **options)


def _print_result(result: BatchResult, lang: str) -> None:
    words = _WORDS[lang]
    console = Console(highlight=False)
    table = Table(show_lines=False)
    for key in ("file", "office", "year", "format", "errors", "warnings", "status"):
        table.add_column(words[key], justify="right" if key in ("errors", "warnings", "year") else "left")
    for w in result.workbooks:
        r = w.report
        style = {"ok": "green", "warnings": "yellow"}.get(w.status, "red")
        table.add_row(escape(Path(w.file).name), escape(r.office or "") if r else "", str(r.year or "") if r else "",
                      r.format_id if r else "", str(w.errors), str(w.warnings),
                      f"[{style}]{status_text(w.status, lang)}[/]")
    console.print(table)
    for w in result.workbooks:
        if not w.findings:
            continue
        name = f"{w.file}（{w.report.office}）" if w.report and w.report.office else w.file
        console.print(f"\n[bold]{escape(name)}[/]")
        blanks = [f for f in w.findings if f.code == "blank-cell"]
        for finding in w.findings:
            if finding.code == "blank-cell" and blanks.index(finding) >= BLANKS_SHOWN:
                continue
            style = "red" if finding.severity == "error" else "yellow"
            console.print(f"  [{style}]{words[finding.severity]}[/] {escape(finding.message(lang))}")
        if len(blanks) > BLANKS_SHOWN:
            refs = "、".join(f"{c.sheet}!{c.ref}" for f in blanks[BLANKS_SHOWN:] for c in f.cells[:1])
            console.print(f"  [yellow]{words['warning']}[/] " + escape(words["more_blank"].format(
                n=len(blanks) - BLANKS_SHOWN, refs=refs)))
    console.print("\n" + words["summary"].format(**result.summary()))


@app.command()
def convert(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Workbooks or folders (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", file_okay=False, help="Folder for the cleaned workbooks and 数据.csv.")],
    format_to: Annotated[FormatChoice | None, typer.Option(
        "--format-to", help="Write every workbook in this format (sections that map one-to-one carry over; "
                            "the rest is left blank and listed). Default: each workbook's own format.")] = None,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the printed messages.")] = Lang.zh,
    workers: Annotated[int | None, typer.Option(min=1, help="Reading processes (default: all cores).")] = None,
    previous: PreviousOption = None,
    aliases: AliasesOption = None,
) -> None:
    """Write a cleaned workbook and the report tables in the official layout (清洗并生成年报表格).

    For each workbook OUT/<office>_<year>.xlsx holds the standard template with the cleaned values
    (numbers as numbers, money in 万元, blanks kept blank), the cover and narrative text, a sheet
    年报表格 with sections 二, 三 and 四 laid out as in the published report (A4 portrait, one page
    wide), a sheet 清洗记录 with every value the cleaner changed, and a sheet 数据 with one row per cell.
    OUT/数据.csv (UTF-8 with BOM) has the long-form rows of all workbooks. Workbooks with errors are
    converted too, marked 未通过校验.

    Exit code: 0 when no workbook has an error, 1 when any has (or cannot be read), 2 for a usage error.

    Example: disclosure-xlsx convert sample_workbooks/ --out 清洗结果
    """
    from .convert import DATA_CSV, convert_paths
    from .pipeline import discover

    words = _WORDS[lang.value]
    if not discover(paths, exclude=[out]):
        err.print(words["none"])
        raise typer.Exit(2)
    batch, done = convert_paths(paths, out, format_to=format_to.value if format_to else None, workers=workers,
                                **_cross_year(previous, aliases, lang.value))
    console = Console(highlight=False)
    for item in done:
        status = status_text(item.source.status, lang.value)
        target = str(item.output) if item.output else "—"
        console.print(f"{escape(item.source.file)} → {escape(target)}  [{status}]")
        for cid, note in item.notes[:3]:
            console.print(f"    {escape(cid)}: {escape(note)}")
        if len(item.notes) > 3:
            console.print(f"    … {len(item.notes) - 3} " + ("more cells without a source" if lang.value == "en"
                                                              else "个单元格没有来源，见“格式转换”工作表"))
    console.print(str(out / DATA_CSV))
    raise typer.Exit(1 if batch.has_errors else 0)


@app.command()
def aggregate(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Workbooks or folders (searched recursively).")],
    output: Annotated[Path, typer.Option("--output", "-o", dir_okay=False, help="The total workbook to write.")],
    office: Annotated[str, typer.Option(help="The roll-up's own office name (汇总单位), for its cover.")],
    year: Annotated[int, typer.Option(min=1990, max=2100, help="The report year of the roll-up.")],
    roster: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help=(
        f"CSV of the offices expected to submit (UTF-8, header {_COVER['meta_office']},"
        f"{_COVER['meta_credit_code']},上级单位; only the first is required): lists who has not submitted "
        "and who is not on it."))] = None,
    include_invalid: Annotated[bool, typer.Option("--include-invalid", help=(
        "Also add workbooks that have errors; the total then says plainly which ones it contains."))] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
    lang: Annotated[Lang, typer.Option("--lang", help="Language of the printed messages.")] = Lang.zh,
    workers: Annotated[int | None, typer.Option(min=1, help="Reading processes (default: all cores).")] = None,
    previous: PreviousOption = None,
    aliases: AliasesOption = None,
) -> None:
    """Add up the offices' workbooks into one report of the same format (汇总各单位报表).

    Every input is validated first; only workbooks without errors are added (listed otherwise, with
    their first error). Cells are summed one by one, blanks counted as 0 and listed, money kept in 万元.
    OUTPUT is a standard workbook of the same format with the sums and the roll-up's own cover, so it
    validates like any office's workbook and can itself be added up one level higher (township →
    county → city). It also holds a sheet 汇总明细 (every office's value of every cell, with a totals
    row) and a sheet 各单位对比 (key figures per office and a bar chart of new requests).

    Refused, with nothing written: workbooks of different formats, or one office and year twice (unless
    their credit codes differ).

    Exit code: 0 when every workbook was added and the total validates; 1 when some were left out, invalid
    ones were included, the total fails a check, or the roll-up was refused; 2 for a usage error.

    Example: disclosure-xlsx aggregate 交回的报表/ -o 某县2024年汇总.xlsx --office 某县人民政府 --year 2024
    """
    from .aggregate import Refused, aggregate_paths, provenance
    from .pipeline import discover

    words = _WORDS[lang.value]
    if output.exists() and not force:
        err.print(f"{output} 已存在；如需覆盖请加 --force。({output} exists; use --force to overwrite.)")
        raise typer.Exit(2)
    if not discover(paths, exclude=[output]):
        err.print(words["none"])
        raise typer.Exit(2)
    try:
        result = aggregate_paths(paths, output, office=office, year=year, roster=roster,
                                 include_invalid=include_invalid, workers=workers,
                                 **_cross_year(previous, aliases, lang.value))
    except Refused as refused:
        err.print(refused.zh if lang.value == "zh" else refused.en)
        raise typer.Exit(1) from refused
    console = Console(highlight=False)
    console.print(f"{output}：{len(result.included)} 个工作簿相加（{get_format(result.format_id).title}）")
    for title, lines in provenance(result):
        console.print(f"\n[bold]{escape(title)}[/]")
        for line in lines[:20]:
            console.print(f"  {escape(line)}")
        if len(lines) > 20:
            console.print(f"  …（共 {len(lines)} 条，见“汇总明细”工作表）")
    check = result.check
    failed = [f for f in check.findings if f.severity == "error"] if check else []
    for finding in failed:
        console.print(f"[red]{words['error']}[/] {escape(finding.message(lang.value))}")
    problems = failed or result.left_out or result.invalid_included or result.missing
    raise typer.Exit(1 if problems else 0)
