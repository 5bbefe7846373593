"""The `disclosure-xlsx` command line: parse arguments, call the library, print, set the exit code.

Heavy libraries (pandas, pandera, openpyxl, xlsxwriter) are imported inside the commands that need
them, so `disclosure-xlsx --help` starts fast. Every word printed comes from `data/words/cli.toml`;
usage errors are reported in the user's language, and an interrupted command says so and exits 130.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .catalog import DisclosureError, status_text, text
from .formats import all_formats, current_format, format_for_year, get_format

if TYPE_CHECKING:
    from .pipeline import BatchResult


def _help(key: str) -> str:
    return text(f"cli.help.{key}")


def _metavar(key: str) -> str:
    return text(f"cli.metavar.{key}")


def _lang_of(args: Sequence[str]) -> str:
    """The language asked for on the command line, for messages printed before the options are parsed."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg == "--lang" and i + 1 < len(args):
            return args[i + 1] if args[i + 1] in ("zh", "en") else "zh"
        if arg.startswith("--lang="):
            return arg.split("=", 1)[1] if arg.split("=", 1)[1] in ("zh", "en") else "zh"
    return "zh"


class _Group(TyperGroup):
    """Typer's group, with usage errors and interruptions told in the user's language."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, windows_expand_args: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if not standalone_mode:
            return super().main(argv, prog_name, complete_var, standalone_mode, windows_expand_args, **extra)
        previous = signal.signal(signal.SIGTERM, _terminate) if _main_thread() else None
        try:
            code = super().main(argv, prog_name, complete_var, False, windows_expand_args, **extra)
        except typer.Abort:
            code = 130
        except Exception as exc:
            if not _kind(exc, "UsageError"):
                raise
            err.print(escape(_usage_message(exc, _lang_of(argv))))
            sys.exit(2)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        if code == 130:
            err.print(text("cli.say.interrupted", _lang_of(argv)))
        sys.exit(code if isinstance(code, int) else 0)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a command like Ctrl-C: staging is discarded, nothing half-written


def _kind(exc: BaseException, name: str) -> bool:
    """Whether `exc` is click's exception `name` (Typer vendors click, so match by class name)."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def _usage_message(exc: Any, lang: str) -> str:
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx else "disclosure-xlsx"
    param = getattr(exc, "param", None)
    name = param.opts[0] if param is not None and getattr(param, "opts", None) else (
        getattr(exc, "param_hint", None) or "")
    if _kind(exc, "NoSuchOption"):
        possible = text("cli.say.possible", lang, options=", ".join(exc.possibilities)) if exc.possibilities else ""
        return text("cli.say.no_such_option", lang, option=exc.option_name, possible=possible, command=command)
    if _kind(exc, "MissingParameter"):
        return text("cli.say.missing", lang, param=name, command=command)
    if _kind(exc, "BadParameter"):
        return text("cli.say.bad_value", lang, param=name, detail=exc.message, command=command)
    if exc.message.startswith("No such command"):
        name = exc.message.split("'")[1] if "'" in exc.message else exc.message
        return text("cli.say.no_such_command", lang, name=name, command=command)
    return text("cli.say.usage", lang, detail=exc.format_message(), command=command)


app = typer.Typer(
    name="disclosure-xlsx",
    cls=_Group,
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print cell contents in a traceback
    rich_markup_mode=None,
    add_completion=False,
    help=_help("app"),
)

FormatChoice = Enum("FormatChoice", {f"f{fid}": fid for fid in all_formats()}, type=str)  # type: ignore[misc]
_CURRENT = current_format()
err = Console(stderr=True, highlight=False)
BLANKS_SHOWN = 5  # blank-cell warnings listed one by one per workbook; the rest are summarised


class Lang(str, Enum):
    zh = "zh"
    en = "en"


class Prefer(str, Enum):
    newest = "newest"


# Refusals that mean the command was asked for something the inputs do not have: usage errors (exit 2).
USAGE_CODES = ("rollup-year-not-found", "roster-invalid")


LangOption = Annotated[Lang, typer.Option("--lang", help=_help("lang"))]
WorkersOption = Annotated[int | None, typer.Option(min=1, metavar=_metavar("n"), help=_help("workers"))]
PathsArgument = Annotated[list[Path], typer.Argument(metavar=_metavar("paths"), help=_help("paths"),
                                                     show_default=False)]


def _say(key: str, lang: str, **params: Any) -> str:
    return text(f"cli.say.{key}", lang, **params)


def _fail(key: str, lang: str, code: int = 2, **params: Any) -> None:
    err.print(escape(_say(key, lang, **params)))
    raise typer.Exit(code)


def _found(paths: Sequence[Path], exclude: Sequence[Path], lang: str) -> list[Path]:
    """The workbooks to read; says how many of the tool's own outputs the search left out, and fails
    (exit 2) when nothing is left."""
    from .pipeline import discover

    skipped: list[Path] = []
    files = discover(paths, exclude=exclude, skipped=skipped)
    if skipped:
        err.print(escape(_say("skipped", lang, n=len(skipped))))
    if not files:
        _fail("none_found", lang)
    return files


def _existing(paths: Sequence[Path], lang: str) -> None:
    """Usage error (exit 2) for a path that does not exist, in the user's language."""
    for path in paths:
        if not path.exists():
            _fail("no_such_path", lang, path=path)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"disclosure-xlsx {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help=_help("version"))] = False,
) -> None:
    pass


@app.command(help=_help("template"))
def template(
    output: Annotated[Path, typer.Option("--output", "-o", dir_okay=False, metavar=_metavar("file"),
                                         help=_help("template_output"))],
    format_id: Annotated[FormatChoice | None, typer.Option("--format", help=_help("template_format"))] = None,
    office: Annotated[str | None, typer.Option(metavar=_metavar("text"), help=_help("template_office"))] = None,
    year: Annotated[int | None, typer.Option(min=1990, max=2100, metavar=_metavar("year"),
                                             help=_help("template_year"))] = None,
    force: Annotated[bool, typer.Option("--force", help=_help("force"))] = False,
    lang: LangOption = Lang.zh,
) -> None:
    from .template import write_template

    language = lang.value
    if output.suffix.lower() != ".xlsx":
        _fail("template_suffix", language, path=output)
    fmt = get_format(format_id.value) if format_id else (year and format_for_year(year)) or current_format()
    if year is not None and not fmt.covers_year(year):
        expected = format_for_year(year) or fmt
        err.print(escape(_say("format_not_for_year", language, format_title=_format_title(fmt, language), year=year,
                              expected=_format_title(expected, language))))
    if output.exists() and not force:
        _fail("exists", language, path=output)
    values: dict[str, object] = {}
    if office:
        values[fmt.field("office").name] = office
    if year is not None:
        values[fmt.field("year").name] = year
    write_template(output, fmt.id, values=values)
    typer.echo(_say("template_written", language, format_title=_format_title(fmt, language), path=output))


def _format_title(fmt: Any, lang: str) -> str:
    return text("catalog.format_title", lang, title=fmt.title, id=fmt.id)


@app.command(help=_help("validate"))
def validate(
    paths: PathsArgument,
    as_json: Annotated[bool, typer.Option("--json", help=_help("json"))] = False,
    lang: LangOption = Lang.zh,
    out: Annotated[Path | None, typer.Option("--out", file_okay=False, metavar=_metavar("folder"),
                                             help=_help("validate_out"))] = None,
    workers: WorkersOption = None,
) -> None:
    language = lang.value
    _existing(paths, language)
    files = _found(paths, [out] if out is not None else [], language)
    with _stages(language, enabled=not as_json) as stage:
        result = _validate(files, workers, stage)
        if out is not None:
            from .feedback import write_outputs

            with stage("writing", len(result.workbooks)) as tick:
                write_outputs(result, out, workers=workers, progress=tick)
    if as_json:  # one line: a batch of thousands stays quick to write and to parse
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n")
    else:
        _print_result(result, language)
        if out is not None:
            err.print(escape(_say("written", language, path=out)))
    raise typer.Exit(1 if result.has_errors else 0)


Tick = Callable[[int, int], None]


@contextmanager
def _stages(lang: str, *, enabled: bool) -> Iterator[Callable[[str, int | None], Any]]:
    """Progress on stderr, one bar per stage, only in a terminal; `stage(name, total)` opens a stage and
    yields its tick(done, total)."""
    show = enabled and err.is_terminal
    if not show:
        @contextmanager
        def silent(name: str, total: int | None = None) -> Iterator[Tick]:
            yield lambda done, total: None

        yield silent
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TimeRemainingColumn

    with Progress(SpinnerColumn(), "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        @contextmanager
        def stage(name: str, total: int | None = None) -> Iterator[Tick]:
            task = bar.add_task(text(f"cli.stage.{name}", lang), total=total)
            try:
                yield lambda done, total: bar.update(task, completed=done, total=total)
            finally:
                bar.remove_task(task)

        yield stage


def _validate(files: list[Path], workers: int | None, stage: Callable[[str, int | None], Any]) -> BatchResult:
    from .pipeline import validate_paths

    with stage("reading", len(files)) as tick:
        return validate_paths(files, workers=workers, progress=tick)


def _print_result(result: BatchResult, lang: str) -> None:
    console = Console(highlight=False)
    table = Table(show_lines=False)
    for key in ("file", "office", "year", "format", "errors", "warnings", "status"):
        table.add_column(text(f"cli.words.{key}", lang), justify="right" if key in ("errors", "warnings", "year")
                         else "left")
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
        name = _say("file_office", lang, file=w.file, office=w.report.office) if w.report and w.report.office \
            else w.file
        console.print(f"\n[bold]{escape(name)}[/]")
        blanks = [f for f in w.findings if f.code == "blank-cell"]
        for finding in w.findings:
            if finding.code == "blank-cell" and blanks.index(finding) >= BLANKS_SHOWN:
                continue
            style = "red" if finding.severity == "error" else "yellow"
            severity = text(f"feedback.severity.{finding.severity}", lang)
            console.print(f"  [{style}]{escape(severity)}[/] {escape(finding.message(lang))}")
        if len(blanks) > BLANKS_SHOWN:
            refs = text("catalog.enumeration", lang).join(f"{c.sheet}!{c.ref}" for f in blanks[BLANKS_SHOWN:]
                                                           for c in f.cells[:1])
            severity = text("feedback.severity.warning", lang)
            console.print(f"  [yellow]{escape(severity)}[/] "
                          + escape(_say("more_blank", lang, n=len(blanks) - BLANKS_SHOWN, refs=refs)))
    console.print("\n" + escape(_say("summary", lang, **result.summary())))


@app.command(help=_help("convert"))
def convert(
    paths: PathsArgument,
    out: Annotated[Path, typer.Option("--out", file_okay=False, metavar=_metavar("folder"), help=_help("convert_out"))],
    format_to: Annotated[FormatChoice | None, typer.Option("--format-to", help=_help("convert_format_to"))] = None,
    force: Annotated[bool, typer.Option("--force", help=_help("convert_force"))] = False,
    lang: LangOption = Lang.zh,
    workers: WorkersOption = None,
) -> None:
    from .convert import DATA_CSV, convert_paths, output_folder_problem
    from .layout import layout_for

    language = lang.value
    _existing(paths, language)
    problem = output_folder_problem(out, force=force)
    if problem is not None:  # checked before anything is read
        err.print(escape(problem.message(language)))
        raise typer.Exit(2)
    files = _found(paths, [out], language)
    with _stages(language, enabled=True) as stage, stage("reading", None) as tick:
        batch, done = convert_paths(files, out, format_to=format_to.value if format_to else None, workers=workers,
                                    progress=tick, force=force)
    console = Console(highlight=False)
    failing = 0
    for item in done:
        target = str(item.output) if item.output else "—"
        console.print(escape(_say("converted", language, source=item.source.file, target=target,
                                  status=status_text(item.source.status, language))))
        if item.to_fill and item.format_id:
            layout = layout_for(item.format_id)
            cells = [_say("cell", language, place=f"{layout.where(n.id).sheet}!{layout.where(n.id).ref}",
                          label=layout.format.cells[n.id].label) for n in item.to_fill]
            console.print(escape(_say("must_fill", language, n=len(cells), sheet=_CURRENT.words.mapping_sheet,
                                      cells=text("catalog.enumeration", language).join(cells))))
        if item.check is not None and item.check.errors:
            failing += 1
            first = next(f.message(language) for f in item.check.findings if f.severity == "error")
            console.print(escape(_say("still_failing", language, errors=item.check.errors, first=first)))
    console.print(escape(str(Path(out) / DATA_CSV)))
    raise typer.Exit(1 if batch.has_errors or failing else 0)


@app.command(help=_help("aggregate"))
def aggregate(
    paths: PathsArgument,
    output: Annotated[Path, typer.Option("--output", "-o", dir_okay=False, metavar=_metavar("file"),
                                         help=_help("aggregate_output"))],
    office: Annotated[str, typer.Option(metavar=_metavar("text"), help=_help("aggregate_office"))],
    year: Annotated[int, typer.Option(min=1990, max=2100, metavar=_metavar("year"), help=_help("aggregate_year"))],
    roster: Annotated[Path | None, typer.Option(dir_okay=False, metavar=_metavar("file"),
                                                help=_help("aggregate_roster"))] = None,
    include_invalid: Annotated[bool, typer.Option("--include-invalid", help=_help("aggregate_include_invalid"))] = False,
    include_other_years: Annotated[bool, typer.Option("--include-other-years",
                                                      help=_help("aggregate_include_other_years"))] = False,
    prefer: Annotated[Prefer | None, typer.Option("--prefer", help=_help("aggregate_prefer"))] = None,
    force: Annotated[bool, typer.Option("--force", help=_help("force"))] = False,
    as_json: Annotated[bool, typer.Option("--json", help=_help("aggregate_json"))] = False,
    lang: LangOption = Lang.zh,
    workers: WorkersOption = None,
) -> None:
    from .aggregate import aggregate_paths, provenance

    language = lang.value
    _existing(paths, language)
    if roster is not None:
        _existing([roster], language)
    if output.exists() and not force:
        _fail("exists", language, path=output)
    files = _found(paths, [output], language)
    try:
        with _stages(language, enabled=not as_json) as stage, stage("reading", None) as tick:
            result = aggregate_paths(files, output, office=office, year=year, roster=roster,
                                     include_invalid=include_invalid, include_other_years=include_other_years,
                                     prefer=prefer.value if prefer else None, workers=workers, progress=tick)
    except DisclosureError as refused:
        if as_json:
            sys.stdout.write(json.dumps({"version": 1, "refused": refused.finding.to_dict()}, ensure_ascii=False) + "\n")
        else:
            err.print(escape(refused.finding.message(language)))
        raise typer.Exit(2 if refused.finding.category == "usage" or refused.finding.code in USAGE_CODES
                         else 1) from refused
    check = result.check
    failed = [f for f in check.findings if f.severity == "error"] if check else []
    problems = failed or result.left_out or result.invalid_included or result.missing
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        raise typer.Exit(1 if problems else 0)
    console = Console(highlight=False)
    console.print(escape(text("aggregate.written", language, path=output, n=len(result.included),
                              format=_format_title(result.format, language))))
    for title, lines in provenance(result, language):
        console.print(f"\n[bold]{escape(title)}[/]")
        for line in lines[:20]:
            console.print(f"  {escape(line)}")
        if len(lines) > 20:
            console.print("  " + escape(text("aggregate.more_lines", language, n=len(lines),
                                             sheet=result.format.words.detail_sheet)))
    if failed:
        console.print(f"\n[bold red]{escape(text('aggregate.total_failed', language))}[/]")
        for finding in failed:
            console.print(f"  [red]{escape(text('feedback.severity.error', language))}[/] "
                          f"{escape(finding.message(language))}")
    raise typer.Exit(1 if problems else 0)
