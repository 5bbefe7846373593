"""The `disclosure-xlsx` command line: parse arguments, call the library, print, set the exit code.

Heavy libraries (pandas, pandera, openpyxl, xlsxwriter) are imported inside the commands that need
them, so `disclosure-xlsx --help` starts fast. Every word printed comes from `data/words/cli.toml`;
usage errors are reported in the user's language, and an interrupted command says so and exits 130.
"""

from __future__ import annotations

import contextlib
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
from .catalog import DisclosureError, severity_text, status_text, text
from .formats import all_formats, current_format, format_for_year, get_format
from .wrapping import display_width, wrap

if TYPE_CHECKING:
    from .accept import AcceptanceFile
    from .pipeline import BatchResult, Found, WorkbookResult
    from .roster import Roster


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


def paragraphs(text: str) -> list[str]:
    """The paragraphs of a help text: blocks separated by an empty line, each one's lines joined by a
    space, as click joins them."""
    blocks = [" ".join(line.strip() for line in block.splitlines()) for block in text.split("\n\n")]
    return [block for block in blocks if block]


class _HelpFormatter(typer.Context.formatter_class):  # type: ignore[misc,name-defined,valid-type]
    """click's help layout, each paragraph wrapped by `wrapping.wrap` and every column measured in terminal
    columns. click wraps with textwrap, which breaks only at spaces and counts a Chinese character as one
    column: a Chinese sentence ran far past the terminal's edge, and a Chinese metavar (`--out 文件夹`)
    pushed its option's help out of the column."""

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        self.write("\n\n".join("\n".join(wrap(p, self.width, indent=indent, first=indent))
                               for p in paragraphs(text)) + "\n")

    def write_dl(self, rows: Sequence[tuple[str, str]], col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        first_col = min(max((display_width(first) for first, _ in rows), default=0), col_max) + col_spacing
        margin = " " * (first_col + self.current_indent)
        width = max(self.width - first_col - 2, 10)  # click's width for the second column
        for first, second in rows:
            self.write(" " * self.current_indent + first)
            if not second:
                self.write("\n")
                continue
            if display_width(first) <= first_col - col_spacing:
                self.write(" " * (first_col - display_width(first)))
            else:  # a long first column: its help starts on the next line
                self.write("\n" + margin)
            lines: list[str] = []
            for paragraph in paragraphs(second):
                lines += ([""] if lines else []) + wrap(paragraph, width)
            self.write("\n".join(lines[:1] + [margin + line if line else "" for line in lines[1:]]) + "\n")


class _HelpContext(typer.Context):  # type: ignore[misc]
    """The commands' context: it makes their help with `_HelpFormatter`."""

    formatter_class = _HelpFormatter


class _Group(TyperGroup):
    """Typer's group, with usage errors and interruptions told in the user's language, and its help and
    its commands' laid out by terminal columns (`_HelpFormatter`)."""

    context_class = _HelpContext

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for command in self.commands.values():
            command.context_class = _HelpContext
            if command.help and not command.short_help:  # listed whole (click cuts it at a count of characters)
                command.short_help = paragraphs(command.help)[0]

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
# Workbooks the terminal lists one by one. A larger batch (a city's, a province's) lists only this many
# of those with a problem and says where every result is: a table of 20,000 rows took longer than
# validating them (rich renders ~3.5 ms a row) and nobody reads it in a terminal.
LISTED = 200


class Lang(str, Enum):
    zh = "zh"
    en = "en"


class Prefer(str, Enum):
    newest = "newest"


# Refusals that mean the command was asked for something the inputs do not have: usage errors (exit 2).
USAGE_CODES = ("rollup-year-not-found", "roster-invalid")


LangOption = Annotated[Lang, typer.Option("--lang", help=_help("lang"))]
AcceptedOption = Annotated[Path | None, typer.Option("--accepted", dir_okay=False, metavar=_metavar("file"),
                                                     help=_help("validate_accepted"))]
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


def _searched(paths: Sequence[Path], exclude: Sequence[Path], lang: str) -> Found:
    """What a search of `paths` finds, the tool's own outputs among its workbooks still in (their readers
    recognise them: `_skipped_own`); fails (exit 2) when nothing is found."""
    from .pipeline import find

    found = find(paths, exclude=exclude)
    if not found.files:
        if found.in_output_folders:
            err.print(escape(_say("skipped", lang, n=len(found.in_output_folders))))
        _fail("none_found", lang)
    return found


def _skipped_own(batch: BatchResult, lang: str, made: Path | None = None) -> None:
    """Says how many of the tool's own outputs the batch left out, and fails (exit 2) when nothing else
    was found, removing the output folder `made` for this run (then empty: nothing was written)."""
    if batch.skipped:
        err.print(escape(_say("skipped", lang, n=len(batch.skipped))))
    if not batch.workbooks:
        if made is not None:
            with contextlib.suppress(OSError):
                made.rmdir()
        _fail("none_found", lang)


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


# Cross-year options of validate, convert and aggregate (issue 14).
PreviousOption = Annotated[list[Path] | None, typer.Option("--previous", metavar=_metavar("paths"),
                                                            help=_help("previous"))]
AliasesOption = Annotated[Path | None, typer.Option("--aliases", dir_okay=False, metavar=_metavar("file"),
                                                    help=_help("aliases"))]


def _cross_year(previous: list[Path] | None, aliases: Path | None, lang: str) -> dict[str, Any]:
    """The cross-year keyword arguments for the library; a bad renaming table is a usage error."""
    _existing([*(previous or []), *([aliases] if aliases else [])], lang)
    if aliases is not None and previous is None:
        err.print(escape(text("crossyear.cli.aliases_alone", lang)))
        raise typer.Exit(2)
    if aliases is not None:
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
    from_last: Annotated[Path | None, typer.Option("--from", dir_okay=False, metavar=_metavar("file"),
                                                   help=_help("template_from"))] = None,
) -> None:
    from .template import write_template

    language = lang.value
    if output.suffix.lower() != ".xlsx":
        _fail("template_suffix", language, path=output)
    if from_last is not None:  # issue 14: a template that starts from last year's report
        _existing([from_last], language)
        from .outputs import input_problem

        problem = input_problem(output, [from_last])  # never written over last year's workbook
        if problem is not None:
            _refuse(problem, language)
        _template_from(output, from_last, format_id.value if format_id else None, year, force, language)
        return
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


def _template_from(output: Path, source: Path, format_id: str | None, year: int | None, force: bool,
                   lang: str) -> None:
    from .crossyear import last_year_template

    if output.exists() and not force:
        _fail("exists", lang, path=output)
    try:
        last_year_template(output, source, format_id=format_id, year=year)
    except DisclosureError as exc:
        err.print(escape(exc.finding.message(lang)))
        raise typer.Exit(1) from exc
    typer.echo(_say("template_from_written", lang, path=output, source=source))


def _format_title(fmt: Any, lang: str) -> str:
    return text("catalog.format_title", lang, title=fmt.title, id=fmt.id)


@app.command(help=_help("validate"))
def validate(
    paths: PathsArgument,
    as_json: Annotated[bool, typer.Option("--json", help=_help("json"))] = False,
    lang: LangOption = Lang.zh,
    out: Annotated[Path | None, typer.Option("--out", file_okay=False, metavar=_metavar("folder"),
                                             help=_help("validate_out"))] = None,
    accepted: AcceptedOption = None,
    workers: WorkersOption = None,
    previous: PreviousOption = None,
    aliases: AliasesOption = None,
    year: Annotated[int | None, typer.Option(min=1990, max=2100, metavar=_metavar("year"),
                                             help=_help("validate_year"))] = None,
) -> None:
    language = lang.value
    _existing(paths, language)
    review = _acceptance_file(accepted, language)
    found = _searched(paths, [out] if out is not None else [], language)
    cross = _cross_year(previous, aliases, language)
    made = out is not None and not out.exists()
    with _stages(language, enabled=not as_json) as stage, _validate_out(out, [*paths, *(previous or [])], language):
        result = _validate(found, workers, stage, exclude=[out] if out is not None else [], year=year, **cross)
        notices = _apply_review(result, review)
        if out is not None and result.workbooks:
            from .feedback import write_outputs

            with stage("writing", len(result.workbooks)) as tick:
                write_outputs(result, out, workers=workers, progress=tick)
    _skipped_own(result, language, made=out if made else None)
    if as_json:  # one line, written workbook by workbook: a batch of thousands stays quick to write and to parse
        result.write_json(sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_result(result, language, out)
        if cross:
            _print_pairing(result, language)
        _print_review(result, notices, language, out)
        if out is not None:
            err.print(escape(_say("written", language, path=out)))
    raise typer.Exit(1 if result.has_errors else 0)


Tick = Callable[[int, int], None]


# ------------------------------------------------------------------------------------------------
# The output side (outputs.py): refused before anything is read, one run at a time, a full disk said once


@contextmanager
def _output_guard(problem: Any, lock: Any, lang: str) -> Iterator[None]:
    """Refuse (exit 2) an output that cannot be written (`problem`, a Finding); hold `lock` for the whole
    command, so that a second run into the same output is refused before it reads anything; a refusal
    of the writers (the lock, a full disk) is its message and exit 2, never a traceback."""
    if problem is not None:
        _refuse(problem, lang)
    try:
        with lock if lock is not None else contextlib.nullcontext():
            yield
    except DisclosureError as refused:
        _refuse(refused.finding, lang)


def _refuse(finding: Any, lang: str) -> None:
    err.print(escape(finding.message(lang)), soft_wrap=True)
    raise typer.Exit(2)


def _validate_out(out: Path | None, inputs: Sequence[Path], lang: str) -> Any:
    """The guard of `validate --out` (nothing when there is no --out)."""
    if out is None:
        return contextlib.nullcontext()
    from .feedback import output_lock, output_problem
    from .outputs import writable_problem

    problem = output_problem(out, inputs) or writable_problem(out)
    return _output_guard(problem, output_lock(out) if problem is None else None, lang)


class _Stages:
    """Progress on stderr, one line for the stage under way, only when stderr is a terminal (never with
    --json, never into a pipe or file). `start(name, total)` replaces the stage shown and returns its tick
    (the library's `Stage` hook); `stages(name, total)` is the same as a block; a stage started with
    `then=` hands over to that stage when its last tick comes (reading → checking the identities, which
    the library does right after). The spinner and the clock keep moving while a stage has no tick to give."""

    def __init__(self, lang: str, bar: Any = None) -> None:
        self.lang, self.bar, self.task = lang, bar, None

    def start(self, name: str, total: int | None = None, then: str | None = None) -> Tick:
        if self.bar is None:
            return lambda done, total: None
        if self.task is not None:
            self.bar.remove_task(self.task)
        task = self.task = self.bar.add_task(text(f"cli.stage.{name}", self.lang), total=total)
        self.bar.refresh()  # drawn at once: a stage is seen even when it ends before the next refresh

        def tick(done: int, total: int) -> None:
            if self.task != task:
                return
            self.bar.update(task, completed=done, total=total)
            if then is not None and total and done >= total:
                self.start(then)

        return tick

    @contextmanager
    def __call__(self, name: str, total: int | None = None, then: str | None = None) -> Iterator[Tick]:
        yield self.start(name, total, then)

    def end(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty() and err.is_terminal
    except (AttributeError, ValueError):  # a closed or replaced stderr
        return False


@contextmanager
def _stages(lang: str, *, enabled: bool) -> Iterator[_Stages]:
    """The progress shown on stderr while the block runs (see `_Stages`); nothing unless enabled and
    stderr is a terminal."""
    if not (enabled and _stderr_is_terminal()):
        yield _Stages(lang)
        return
    from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, TimeElapsedColumn
    from rich.text import Text

    class Count(ProgressColumn):
        def render(self, task: Any) -> Text:  # "3/10", nothing while the total is unknown
            return Text(f"{int(task.completed)}/{int(task.total)}" if task.total else "")

    with Progress(SpinnerColumn(), "{task.description}", BarColumn(), Count(), TimeElapsedColumn(), console=err,
                  transient=True, refresh_per_second=8) as bar:
        stages = _Stages(lang, bar)
        try:
            yield stages
        finally:
            stages.end()


def _validate(files: list[Path] | Found, workers: int | None, stage: _Stages, **options: Any) -> BatchResult:
    from .pipeline import Found, validate_paths

    total = len(files.files) if isinstance(files, Found) else len(files)
    with stage("reading", total, then="validating") as tick:
        return validate_paths(files, workers=workers, progress=tick, **options)


NARROW = 100  # terminal columns below which validate's table puts the file name under the office


def _lines(console: Console, message: str, *, first: str = "", indent: str = "", style: str | None = None,
           lead: str | None = None) -> None:
    """Print `message` wrapped to the terminal by wrapping.wrap (numbers and cell addresses kept whole),
    its first line after `first` (or after `lead`, the same text with markup: a coloured severity word),
    the others after `indent`."""
    width = max(console.width, 20)
    for i, line in enumerate(wrap(message, width, first=first, indent=indent)):
        body = escape(line[len(first):] if i == 0 else line)
        body = f"[{style}]{body}[/]" if style and body else body
        head = (escape(first) if lead is None else lead) if i == 0 else ""
        console.print(head + body, soft_wrap=True, highlight=False)


def _listed(workbooks: list[WorkbookResult]) -> list[WorkbookResult]:
    """The workbooks the terminal lists: all of a batch of up to LISTED, else the first LISTED with a problem."""
    if len(workbooks) <= LISTED:
        return workbooks
    return [w for w in workbooks if w.status != "ok"][:LISTED]


def _not_listed(console: Console, workbooks: list[WorkbookResult], listed: list[WorkbookResult], lang: str,
                out: Path | None) -> None:
    """How many workbooks the terminal left out, and where every result is."""
    passed = sum(w.status == "ok" for w in workbooks)
    problems = len(workbooks) - passed - len(listed)
    if not listed:
        _lines(console, _say("listed_none", lang))
    else:
        _lines(console, _say("listed_first" if problems else "listed_all", lang, listed=len(listed)))
        _lines(console, _say("not_listed", lang, passed=passed, problems=problems))
    if out is None:
        _lines(console, _say("results_how", lang))
    else:
        from .feedback import OVERVIEW  # imported already: the outputs were written

        _lines(console, _say("results_in_out", lang, path=str(out / OVERVIEW)))


def _print_result(result: BatchResult, lang: str, out: Path | None = None) -> None:
    from .accept import severity_word

    console = Console(highlight=False)
    narrow = console.width < NARROW
    table = Table(show_lines=narrow)
    keys = ("office", "year", "format", "errors", "warnings", "status") if narrow else (
        "file", "office", "year", "format", "errors", "warnings", "status")
    for key in keys:
        header = text(f"cli.words.{key}", lang)
        if narrow and key == "office":
            header = _say("office_file", lang, office=header, file=text("cli.words.file", lang))
        table.add_column(header, justify="right" if key in ("errors", "warnings", "year") else "left",
                         overflow="fold", no_wrap=key not in ("file", "office"))
    listed = _listed(result.workbooks)
    for w in listed:
        r = w.report
        style = {"ok": "green", "warnings": "yellow"}.get(w.status, "red")
        office, file = escape(r.office or "") if r else "", escape(Path(w.file).name)
        first = f"{office}\n[dim]{file}[/]" if narrow else office
        table.add_row(*(() if narrow else (file,)), first, str(r.year or "") if r else "",
                      r.format_id if r else "", str(w.errors), str(w.warnings),
                      f"[{style}]{status_text(w.status, lang)}[/]")
    if listed:  # a large batch that passed whole has no row to show
        console.print(table)
    for w in listed:
        if not w.findings:
            continue
        name = _say("file_office", lang, file=w.file, office=w.report.office) if w.report and w.report.office \
            else w.file
        console.print()
        _lines(console, name, style="bold")
        blanks = [f for f in w.findings if f.code == "blank-cell"]
        for finding in w.findings:
            if finding.code == "blank-cell" and blanks.index(finding) >= BLANKS_SHOWN:
                continue
            style = {"error": "red", "warning": "yellow"}.get(finding.severity, "cyan")
            severity = severity_word(finding, lang)  # 已认可 for an accepted warning
            _finding(console, severity, style, finding.message(lang))
        if len(blanks) > BLANKS_SHOWN:
            refs = text("catalog.enumeration", lang).join(f"{c.sheet}!{c.ref}" for f in blanks[BLANKS_SHOWN:]
                                                           for c in f.cells[:1])
            _finding(console, severity_text("warning", lang), "yellow",
                     _say("more_blank", lang, n=len(blanks) - BLANKS_SHOWN, refs=refs))
    console.print()
    if len(listed) < len(result.workbooks):
        _not_listed(console, result.workbooks, listed, lang, out)
    _lines(console, _say("summary", lang, **result.summary()))


def _finding(console: Console, severity: str, style: str, message: str) -> None:
    """"  错误 message…", continued lines indented under the message."""
    first = f"  {severity} "
    _lines(console, message, first=first, indent=" " * display_width(first),
           lead=f"  [{style}]{escape(severity)}[/] ")


@app.command(help=_help("convert"))
def convert(
    paths: PathsArgument,
    out: Annotated[Path, typer.Option("--out", file_okay=False, metavar=_metavar("folder"), help=_help("convert_out"))],
    format_to: Annotated[FormatChoice | None, typer.Option("--format-to", help=_help("convert_format_to"))] = None,
    force: Annotated[bool, typer.Option("--force", help=_help("convert_force"))] = False,
    apply_suggestions: Annotated[bool, typer.Option("--apply-suggestions", help=_help("convert_apply"))] = False,
    lang: LangOption = Lang.zh,
    workers: WorkersOption = None,
    previous: PreviousOption = None,
    aliases: AliasesOption = None,
) -> None:
    from .convert import DATA_CSV, convert_paths, output_folder_problem
    from .layout import layout_for

    language = lang.value
    _existing(paths, language)
    cross = _cross_year(previous, aliases, language)
    problem = output_folder_problem(out, force=force, inputs=[*paths, *(previous or [])])
    if problem is not None:  # checked before anything is read
        _refuse(problem, language)
    files = _found(paths, [out], language)
    with (_stages(language, enabled=True) as stages, stages("reading", len(files), then="validating") as tick,
          _output_guard(None, None, language)):  # locked or a full disk: one message, exit 2
        batch, done = convert_paths(files, out, format_to=format_to.value if format_to else None, workers=workers,
                                    progress=tick, force=force, apply_suggestions=apply_suggestions, stage=stages.start, **cross)
    console = Console(highlight=False)
    failing = 0
    for item in done:
        target = str(item.output) if item.output else "—"
        status = _say("fixed", language) if item.fixed else status_text(item.source.status, language)
        _lines(console, _say("converted", language, source=item.source.file, target=target, status=status),
               indent="    ")
        if item.problem is not None:  # read, but its cleaned workbook could not be written
            failing += 1
            _lines(console, item.problem.message(language), first="  ", indent="    ")
        if item.applied:
            _lines(console, _say("applied", language, n=len(item.applied)), first="    ", indent="      ")
        elif apply_suggestions and item.source.suggestion is not None and item.source.suggestion.found:
            _lines(console, _say("not_applied", language), first="    ", indent="      ")  # several ways: never guessed
        if item.to_fill and item.format_id:
            layout = layout_for(item.format_id)
            cells = [_say("cell", language, place=f"{layout.where(n.id).sheet}!{layout.where(n.id).ref}",
                          label=layout.format.cells[n.id].label) for n in item.to_fill]
            enumerated = text("catalog.enumeration", language).join(cells)
            fill = _say("must_fill", language, n=len(cells), sheet=_CURRENT.words.mapping_sheet, cells=enumerated)
            _lines(console, fill, first="    ", indent="      ")
        if item.check is not None and item.check.errors:
            failing += 1
            first = next(f.message(language) for f in item.check.findings if f.severity == "error")
            _lines(console, _say("still_failing", language, errors=item.check.errors, first=first), first="    ",
                   indent="      ")
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
    accepted: AcceptedOption = None,
    lang: LangOption = Lang.zh,
    workers: WorkersOption = None,
    previous: PreviousOption = None,
    aliases: AliasesOption = None,
) -> None:
    from .aggregate import aggregate_paths, provenance

    language = lang.value
    _existing(paths, language)
    names = _read_roster(roster, language) if roster is not None else None  # before any workbook
    review = _acceptance_file(accepted, language)
    from .outputs import input_problem

    problem = input_problem(output, paths)  # `-o` one of the workbooks named: never written over
    if problem is not None:
        _refuse(problem, language)
    if output.exists() and not force:
        _fail("exists", language, path=output)
    files = _found(paths, [output], language)
    try:
        cross = _cross_year(previous, aliases, language)
        with _stages(language, enabled=not as_json) as stages, stages("reading", len(files), then="validating"
                                                                        ) as tick:
            result = aggregate_paths(files, output, office=office, year=year, roster=names,
                                     include_invalid=include_invalid, include_other_years=include_other_years,
                                     prefer=prefer.value if prefer else None, workers=workers, progress=tick,
                                     accepted=review, stage=stages.start, **cross)
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
    if result.acceptances is not None:
        _print_notices(result.acceptances.notices, language)
    console = Console(highlight=False)
    _lines(console, text("aggregate.written", language, path=output, n=len(result.included),
                         format=_format_title(result.format, language)))
    for title, lines in provenance(result, language):
        console.print()
        _lines(console, title, style="bold")
        for line in lines[:20]:
            _lines(console, line, first="  ", indent="    ")
        if len(lines) > 20:
            _lines(console, text("aggregate.more_lines", language, n=len(lines),
                                 sheet=result.format.words.detail_sheet), first="  ", indent="    ")
    if failed:  # the total's own findings, under their own heading, after everything about the inputs
        console.print()
        _lines(console, text("aggregate.total_failed", language), style="bold red")
        for finding in failed:
            _finding(console, severity_text("error", language), "red", finding.message(language))
    raise typer.Exit(1 if problems else 0)


@app.command(help=_help("publish"))
def publish(
    paths: PathsArgument,
    out: Annotated[Path, typer.Option("--out", file_okay=False, metavar=_metavar("folder"), help=_help("publish_out"))],
    draft: Annotated[bool, typer.Option("--draft", help=_help("publish_draft"))] = False,
    fill_overview: Annotated[bool, typer.Option("--fill-overview", help=_help("publish_fill_overview"))] = False,
    prepend_overview: Annotated[bool, typer.Option("--prepend-overview", help=_help("publish_prepend_overview"))
                                ] = False,
    lang: LangOption = Lang.zh,
    workers: WorkersOption = None,
) -> None:
    from .pipeline import discover
    from .publish import publish_paths

    code = lang.value
    _existing(paths, code)
    if not discover(paths, exclude=[out]):
        err.print(text("publish.cli.none", code))
        raise typer.Exit(2)
    with (_stages(code, enabled=True) as stages, stages("reading", None, then="validating") as tick,
          _output_guard(None, None, code)):  # an output refused, locked or a full disk: one message, exit 2
        batch, done = publish_paths(paths, out, draft=draft, fill_overview=fill_overview,
                                    prepend_overview=prepend_overview, lang=code, workers=workers, progress=tick,
                                    stage=stages.start)
    console = Console(highlight=False, soft_wrap=True)  # paths and messages stay whole lines
    for item in done:
        source = item.source
        if item.problem is not None:  # to be written, but it could not be
            console.print(escape(text("publish.cli.not_made", code, file=source.file, message=item.problem.message(code))))
            continue
        if item.refused == "no_cover":
            missing = text("publish.list_separator", code).join(item.missing_cover)
            console.print(escape(text("publish.cli.no_cover", code, file=source.file, missing=missing)))
            continue
        if item.refused:
            key = "publish.cli.unreadable" if item.refused == "unreadable" else "publish.cli.refused"
            console.print(escape(text(key, code, file=source.file, errors=source.errors)))
            for finding in (f for f in source.findings if f.severity == "error"):
                console.print(f"  [red]{escape(severity_text('error', code))}[/] "
                              f"{escape(finding.message(code))}")
            continue
        console.print(escape(text("publish.cli.written", code, file=source.file, docx=str(item.docx),
                                  html=str(item.html))))
        if item.draft:
            console.print(escape(text("publish.cli.draft", code, mark=text("publish.draft_mark", code),
                                      errors=source.errors)))
        if item.rollup:
            console.print(escape(text("publish.cli.rollup", code, added=item.rollup.added)))
        if item.overview:
            console.print(escape(text(f"publish.cli.overview_{item.overview}", code, text=item.proposal,
                                      heading=item.overview_heading)))
        if item.unstated:
            console.print(escape(text("publish.cli.overview_missing", code, heading=item.overview_heading,
                                      names=text("publish.list_separator", code).join(item.unstated))))
        if item.empty:
            console.print(escape(text("publish.cli.empty", code, placeholder=text("publish.empty_section", code),
                                      headings=text("publish.list_separator", code).join(item.empty))))
    written = [d for d in done if d.docx]
    console.print("\n" + escape(text("publish.cli.summary", code, total=len(done), written=len(written),
                                     drafts=sum(d.draft for d in written), refused=len(done) - len(written))))
    raise typer.Exit(1 if any(d.refused or d.draft or d.problem for d in done) or batch.has_errors else 0)


def _read_roster(path: Path, lang: str, *, need_email: bool = False) -> Roster:
    """Read and check a roster; a bad one is one message and exit 2, before any workbook is read."""
    from .catalog import DisclosureError
    from .roster import read_roster

    try:
        roster = read_roster(path, need_email=need_email)
    except DisclosureError as exc:
        err.print(escape(exc.finding.message(lang)))
        raise typer.Exit(2) from exc
    err.print(escape(roster.describe(lang)))  # stderr: stdout stays clean for --json
    for finding in roster.findings:
        err.print(f"  [yellow]{escape(severity_text('warning', lang))}[/] {escape(finding.message(lang))}")
    return roster


class Security(str, Enum):
    starttls = "starttls"
    ssl = "ssl"
    plain = "plain"


PASSWORD_ENV = "DISCLOSURE_XLSX_SMTP_PASSWORD"  # the only place a password is taken from, besides a prompt
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@app.command(help=_help("send"))
def send(
    folder: Annotated[Path, typer.Argument(file_okay=False, metavar=_metavar("folder"), help=_help("send_folder"))],
    roster: Annotated[Path, typer.Option(dir_okay=False, metavar=_metavar("file"), help=_help("send_roster"))],
    drafts: Annotated[Path | None, typer.Option(file_okay=False, metavar=_metavar("folder"),
                                                help=_help("send_drafts"))] = None,
    smtp: Annotated[str | None, typer.Option(metavar="HOST[:PORT]", help=_help("send_smtp"))] = None,
    sender: Annotated[str | None, typer.Option("--from", metavar=_metavar("address"), help=_help("send_from"))] = None,
    security: Annotated[Security, typer.Option(help=_help("send_security"))] = Security.starttls,
    user: Annotated[str | None, typer.Option(metavar=_metavar("text"), help=_help("send_user"))] = None,
    no_login: Annotated[bool, typer.Option("--no-login", help=_help("send_no_login"))] = False,
    only_failed: Annotated[bool, typer.Option("--only-failed", help=_help("send_only_failed"))] = False,
    resend: Annotated[bool, typer.Option("--resend", help=_help("send_resend"))] = False,
    lang: LangOption = Lang.zh,
) -> None:
    from .catalog import Finding
    from .mail import log_path, parse_addresses, parse_server, plan_messages, send_messages, summary, write_drafts

    _existing([folder, roster], lang.value)
    names = _read_roster(roster, lang.value, need_email=True)

    def usage(message: str) -> typer.Exit:
        err.print(escape(message))
        return typer.Exit(2)

    if smtp is not None and drafts is not None:
        raise usage(text("mail.command.both", lang.value))
    if smtp is not None and not sender:
        raise usage(text("mail.command.need_from", lang.value))
    if sender is not None and parse_addresses(sender)[0] != [sender.strip()]:
        raise usage(Finding("mail-sender-invalid", params={"address": sender}).message(lang.value))
    server = None
    if smtp is not None:
        try:
            server = parse_server(smtp, security.value)
        except ValueError:
            raise usage(text("mail.command.bad_server", lang.value, server=smtp)) from None
        if not no_login:
            if security is Security.plain and server.host not in _LOOPBACK:
                raise usage(text("mail.command.plain_login", lang.value))
            server = type(server)(server.host, server.port, server.security, (user or str(sender)).strip())
    target = drafts or folder / text("mail.drafts_dir")
    try:
        plan = plan_messages(folder, names, sender=sender.strip() if sender else None, only_failed=only_failed)
        if server is None:
            deliveries = write_drafts(plan, target)
        else:
            password = _password(str(server), server.user, lang.value) if server.user else None
            deliveries = send_messages(plan, folder, server, sender=str(sender).strip(), password=password,
                                       resend=resend)
    except DisclosureError as exc:
        raise usage(exc.finding.message(lang.value)) from exc
    console = Console(highlight=False)
    for delivery in deliveries:
        item = delivery.outgoing
        style = {"sent": "green", "skipped": "yellow"}.get(delivery.category, "red")
        outcome = text(f"mail.outcome.{delivery.outcome}", lang.value)
        to = f" → {', '.join(item.to)}" if item.to and delivery.category == "sent" else ""
        console.print(f"[{style}]{escape(outcome)}[/] {escape(item.office)}{escape(to)}")
        if item.how in ("normalised", "suffix") and item.entry and item.feedback.office != item.entry.office:
            console.print("  " + escape(text("mail.outcome.near", lang.value, entry=item.entry.office,
                                              how=text(f"roster.match.{item.how}", lang.value))))
        if delivery.refused:
            console.print("  [red]" + escape(text("mail.outcome.refused_some", lang.value,
                                                   addresses=", ".join(delivery.refused))) + "[/]")
        if delivery.finding is not None:
            console.print(f"  {escape(delivery.finding.message(lang.value))}")
    counts = summary(deliveries)
    if server is None:
        console.print("\n" + escape(text("mail.summary.drafted", lang.value, path=target, **counts)))
    else:
        console.print("\n" + escape(text("mail.summary.sent", lang.value, **counts)))
        console.print(escape(text("mail.summary.log", lang.value, path=log_path(folder))))
    if counts["problems"]:
        console.print(escape(text("mail.summary.unsent", lang.value, count=counts["problems"])))
    raise typer.Exit(1 if counts["problems"] else 0)


def _password(server: str, user: str, lang: str) -> str:
    """The SMTP password: from DISCLOSURE_XLSX_SMTP_PASSWORD, else typed at a prompt (never echoed)."""
    import getpass
    import os

    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        err.print(escape(text("mail.command.password_missing", lang, server=server, env=PASSWORD_ENV)))
        raise typer.Exit(2)
    return getpass.getpass(text("mail.command.password_prompt", lang, user=user, server=server))


# ------------------------------------------------------------------------------------------------
# The county's review (accept.py, rounds.py): --accepted, the round printed by validate, and `accept`


def _acceptance_file(path: Path | None, lang: str) -> AcceptanceFile | None:
    """The acceptance file, read before any workbook: an unusable one is a usage error (exit 2)."""
    if path is None:
        return None
    from .accept import read_acceptances

    _existing([path], lang)
    try:
        return read_acceptances(path)
    except DisclosureError as refused:
        err.print(escape(refused.finding.message(lang)), soft_wrap=True)  # one problem per line, never wrapped
        raise typer.Exit(2) from refused


def _apply_review(result: BatchResult, review: AcceptanceFile | None) -> list[Any]:
    if review is None:
        return []
    from .accept import apply_acceptances

    return apply_acceptances(result, review)


def _print_notices(notices: Sequence[Any], lang: str) -> None:
    for notice in notices:
        err.print(f"[yellow]{escape(severity_text('warning', lang))}[/] "
                  + escape(text("accept.cli.notice", lang, message=notice.message(lang))), soft_wrap=True)


def _print_review(result: BatchResult, notices: Sequence[Any], lang: str, out: Path | None) -> None:
    """After the table: the acceptance file's notices, the accepted warnings, and the round."""
    from .accept import is_accepted
    from .rounds import Changes, changes_text, round_folder

    _print_notices(notices, lang)
    console = Console(highlight=False)
    accepted = sum(is_accepted(f) for w in result.workbooks for f in w.findings)
    if accepted:
        console.print(escape(text("accept.cli.summary", lang, n=accepted)))
    info = result.review.get("round")
    if info is None or out is None:
        return
    if info.repeat:
        console.print(escape(text("rounds.cli.repeat", lang, round=info.number)))
    if info.previous is None and not info.repeat:
        console.print(escape(text("rounds.cli.first", lang, history=round_folder(out, 1).parent)))
    elif info.previous is not None:
        counts = [w.review["changes"] for w in result.workbooks if isinstance(w.review.get("changes"), Changes)
                  and w.review["changes"].matched_by]
        total = Changes(info.number, info.previous, "batch", *(sum(getattr(c, k) for c in counts) for k in
                                                              ("previous", "fixed", "open", "new", "accepted")))
        console.print(escape(text("rounds.cli.summary", lang, round=info.number, previous=info.previous,
                                  changes=changes_text(total, lang))))
    if info.not_resubmitted:
        names = text("catalog.enumeration", lang).join(str(e.get("office") or e.get("file") or "")
                                                       for e in info.not_resubmitted)
        console.print(escape(text("rounds.cli.not_resubmitted", lang, n=len(info.not_resubmitted), names=names)))


def _date_option(value: str | None, lang: str, param: str) -> Any:
    from .accept import parse_date

    if value is None:
        return None
    parsed = parse_date(value)
    if parsed is None:
        _fail("bad_value", lang, param=param, detail=value, command="disclosure-xlsx accept")
    return parsed


@app.command(help=_help("accept"))
def accept(
    accepted: Annotated[Path, typer.Option("--accepted", dir_okay=False, metavar=_metavar("file"),
                                           help=_help("accept_accepted"))],
    by: Annotated[str, typer.Option("--by", metavar=_metavar("text"), help=_help("accept_by"))],
    paths: Annotated[list[Path] | None, typer.Argument(metavar=_metavar("paths"), help=_help("accept_paths"),
                                                       show_default=False)] = None,
    from_overview: Annotated[Path | None, typer.Option("--from", dir_okay=False, metavar=_metavar("file"),
                                                       help=_help("accept_from"))] = None,
    rule: Annotated[str | None, typer.Option("--rule", metavar=_metavar("text"), help=_help("accept_rule"))] = None,
    cell: Annotated[str | None, typer.Option("--cell", metavar=_metavar("text"), help=_help("accept_cell"))] = None,
    office: Annotated[str | None, typer.Option("--office", metavar=_metavar("text"), help=_help("accept_office"))
                      ] = None,
    credit_code: Annotated[str | None, typer.Option("--credit-code", metavar=_metavar("text"),
                                                    help=_help("accept_credit_code"))] = None,
    year: Annotated[int | None, typer.Option("--year", min=1990, max=2100, metavar=_metavar("year"),
                                             help=_help("accept_year"))] = None,
    reason: Annotated[str | None, typer.Option("--reason", metavar=_metavar("text"), help=_help("accept_reason"))
                      ] = None,
    date: Annotated[str | None, typer.Option("--date", metavar=_metavar("date"), help=_help("accept_date"))] = None,
    until: Annotated[str | None, typer.Option("--until", metavar=_metavar("date"), help=_help("accept_until"))
                     ] = None,
    lang: LangOption = Lang.zh,
    workers: WorkersOption = None,
) -> None:
    from .accept import accept_in_batch, acceptances_from_overview, add_acceptances
    from .pipeline import discover

    language = lang.value
    since, end = _date_option(date, language, "--date"), _date_option(until, language, "--until")
    if from_overview is None and (not paths or rule is None):
        err.print(escape(text("accept.cli.needs", language)))
        raise typer.Exit(2)
    try:
        if from_overview is not None:
            _existing([from_overview], language)
            new = acceptances_from_overview(from_overview, by=by, date=since, until=end)
        else:
            _existing(paths or [], language)
            files = discover(paths or [])
            if not files:
                _fail("none_found", language)
            with _stages(language, enabled=True) as stages:
                batch = _validate(files, workers, stages)
            new = accept_in_batch(batch, rule=rule or "", cell=cell, reason=reason or "", by=by, office=office,
                                  credit_code=credit_code, year=year, date=since, until=end)
        if not new:
            typer.echo(text("accept.cli.none", language))
            raise typer.Exit(0)
        written, outcome = add_acceptances(accepted, new)
    except DisclosureError as refused:
        err.print(escape(refused.finding.message(language)), soft_wrap=True)
        raise typer.Exit(2) from refused
    console = Console(highlight=False, soft_wrap=True)
    for entry, how in zip(new, outcome, strict=True):
        what = " ".join(filter(None, (entry.rule, entry.cell)))
        console.print(escape(text("accept.cli.kept" if how == "kept" else "accept.cli.added", language,
                                  office=entry.who, year=entry.year, what=what, reason=entry.reason)))
    console.print(escape(text("accept.cli.written", language, path=accepted, n=len(written.entries))))


# ------------------------------------------------------------------------------------------------
# The clerk's page (web.py, workspace.py)


@app.command(help=_help("serve"))
def serve(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, metavar=_metavar("n"), help=_help("serve_port"))] = 0,
    workdir: Annotated[Path | None, typer.Option("--workdir", file_okay=False, metavar=_metavar("folder"),
                                                 help=_help("serve_workdir"))] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help=_help("serve_no_browser"))] = False,
    lang: LangOption = Lang.zh,
    workers: WorkersOption = None,
) -> None:
    from .web import serve as serve_page
    from .workspace import default_workdir

    language = lang.value
    folder = (workdir or default_workdir()).expanduser()

    def ready(url: str) -> None:
        typer.echo(text("web.cli.serving", language, url=url))  # stdout, flushed: a tool may read the address
        err.print(escape(text("web.cli.hint", language, workdir=folder)), soft_wrap=True)
        if not no_browser:
            import webbrowser

            webbrowser.open(url)

    try:
        serve_page(folder, port=port, lang=language, workers=workers, ready=ready)
    except DisclosureError as exc:
        err.print(escape(exc.finding.message(language)), soft_wrap=True)
        raise typer.Exit(2) from exc
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # a working folder that cannot be written, or a port that cannot be had
        key = "web.cli.folder_unusable" if exc.filename else "web.cli.port_busy"
        err.print(escape(text(key, language, port=port, workdir=folder, detail=exc.strerror or exc)), soft_wrap=True)
        raise typer.Exit(2) from exc
    err.print(escape(text("web.cli.stopped", language)))
