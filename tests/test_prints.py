"""What a clerk prints and reads (issue 13): 汇总明细, 年报表格 and 文字部分 laid out for paper, rendered with
LibreOffice and read back with pdftotext; progress in a terminal and nowhere else; validate at 80 columns;
and no code, rule id or cell id in anything an office reads."""

from __future__ import annotations

import html
import json
import os
import random
import re
import select
import subprocess
import sys
import unicodedata
from itertools import pairwise
from pathlib import Path

import openpyxl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from disclosure_xlsx._xlsx import new_workbook
from disclosure_xlsx.aggregate import aggregate_paths, provenance, roll_up, write_total
from disclosure_xlsx.catalog import catalog, text, text_list
from disclosure_xlsx.cli import app
from disclosure_xlsx.convert import convert_paths
from disclosure_xlsx.feedback import FEEDBACK_DIR, OVERVIEW, suggestion_words, write_outputs
from disclosure_xlsx.formats import current_format, get_format
from disclosure_xlsx.layout import (
    A4_LANDSCAPE_PRINTABLE,
    DETAIL_FIXED,
    column_points,
    detail_layout,
    layout_for,
    report_layout,
)
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.publish import publish_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import add_report_sheet, write_template
from disclosure_xlsx.wrapping import display_width, wrap

from .conftest import ROOT, SAMPLES, batch_of, merged_text

ANNOTATED_SHEET = text("annotate.sheet_name")


def _offices(folder: Path, format_id: str, n: int, year: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(n):
        values = {**balanced_report(format_id, random.Random(i)), "meta_office": f"示例县第{i}镇人民政府",
                  "meta_year": year}
        files.append(write_template(folder / f"第{i}镇.xlsx", format_id, values=values))
    return files


def _year(format_id: str) -> int:
    return get_format(format_id).first_year + 1


# ------------------------------------------------------------------------------------------------
# The layouts, as computed


def test_the_report_sheet_puts_four_under_three(format_id: str) -> None:
    """二 on the first page, 三 and 四 together on the second: the one break is before 三."""
    layout = report_layout(format_id)
    starts = [b.row for b in layout.boxes if b.style == "section"]
    assert len(starts) == 3
    assert layout.breaks == (starts[1],)


def test_the_narrative_sheet_fits_the_page_width_in_every_office_suite(format_id: str) -> None:
    """No column is wider than the page (LibreOffice would cut it off instead of scaling), every box spans
    all columns, and each section starts a page when the one before would split it."""
    sheet = layout_for(format_id).sheet("narrative")
    assert len(sheet.widths) > 1 and all(column_points(w) < 523 for w in sheet.widths)
    last = len(sheet.widths) - 1
    assert all((b.col, b.last_col) == (0, last) for b in sheet.boxes)
    assert all((s.col, s.last_col) == (0, last) for s in sheet.slots)
    headings = [b.row for b in sheet.boxes if b.style == "heading"]
    assert set(sheet.breaks) <= set(headings[1:]) and sheet.breaks


def test_the_detail_sheet_prints_in_bands_of_whole_table_rows(format_id: str) -> None:
    fmt = get_format(format_id)
    layout = detail_layout(format_id)
    assert layout.ids == tuple(fmt.cells)
    edges = [layout.first, *layout.bands, len(layout.widths)]
    groups = {b.col: b for b in layout.boxes if b.style == "group"}
    for i, (start, stop) in enumerate(pairwise(edges)):
        fixed = DETAIL_FIXED if i == 0 else DETAIL_FIXED[:1]
        width = sum(map(column_points, fixed)) + sum(column_points(w) for w in layout.widths[start:stop])
        assert width <= A4_LANDSCAPE_PRINTABLE[0], (i, width)
        assert start in groups  # a band begins with a whole group
    sections = [fmt.cells[cid].section for cid in layout.ids]
    for col in range(layout.first + 1, len(layout.widths)):
        if sections[col - layout.first] != sections[col - layout.first - 1]:
            assert col in layout.bands  # a new section starts a new band
    for box in (b for b in layout.boxes if b.style == "group"):
        assert not any(box.col < band <= box.last_col for band in layout.bands)  # never split across pages


def test_the_detail_sheet_has_the_labels_above_the_ids(tmp_path: Path, format_id: str) -> None:
    """Section / row / column label from the format data, merged where they repeat; the id below; the
    print set up: landscape, one page wide per band, header rows and office column repeated, frozen."""
    fmt = get_format(format_id)
    year = _year(format_id)
    rng = random.Random(3)
    batch = batch_of(format_id, [(balanced_report(format_id, rng), f"第{i}镇") for i in range(3)], year)
    result = roll_up(batch, office="某县", year=year)
    write_total(result, tmp_path / "total.xlsx")
    ws = openpyxl.load_workbook(tmp_path / "total.xlsx")[fmt.words.detail_sheet]
    layout = detail_layout(format_id)
    for col, cid in enumerate(layout.ids, layout.first + 1):
        cell = fmt.cells[cid]
        assert merged_text(ws, 1, col) == fmt.section(cell.section).heading
        assert merged_text(ws, 2, col) == "\n".join(cell.row_path or cell.col_path[:-1])
        assert merged_text(ws, 3, col) == cell.col_path[-1]
        ident = ws.cell(layout.id_row + 1, col)
        assert ident.value == cid and ident.font.sz < 9 and ident.font.color.rgb.endswith("7F7F7F")
    merged = {str(r) for r in ws.merged_cells.ranges}
    for box in layout.boxes:  # merged where a label repeats over several columns
        if box.last_col > box.col:
            first, last = ws.cell(box.row + 1, box.col + 1).coordinate, ws.cell(box.row + 1, box.last_col + 1).coordinate
            assert f"{first}:{last}" in merged, box.text
    assert [ws.cell(r, 1).value for r in range(layout.header_rows + 1, layout.header_rows + 4)] == [
        "第0镇", "第1镇", "第2镇"]
    assert ws.page_setup.orientation == "landscape" and ws.page_setup.fitToWidth in (None, 1)
    assert ws.sheet_properties.pageSetUpPr.fitToPage and ws.page_setup.fitToHeight == 0
    assert ws.print_title_rows == f"$1:${layout.id_row}" and ws.print_title_cols == "$A:$A"
    assert ws.freeze_panes == f"B{layout.header_rows + 1}"
    assert len(ws.print_area.split(",")) == len(layout.bands) + 1  # one printed band per print range


# ------------------------------------------------------------------------------------------------
# Rendered by LibreOffice, read back with pdftotext


def _pages(pdf: Path) -> list[str]:
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return out.split("\f")[:-1]


def _flat(value: str) -> str:
    return re.sub(r"\s+", "", value)


WORD = re.compile(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


def _words(pdf: Path, page: int) -> list[tuple[float, float, float, str]]:
    """(xMin, yMin, xMax, text) of every word on a page (1-based), as pdftotext places them."""
    out = subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-bbox", str(pdf), "-"],
                         capture_output=True, text=True, check=True).stdout
    return [(float(a), float(b), float(c), html.unescape(t)) for a, b, c, _, t in WORD.findall(out)]


def _column(pdf: Path, page: int, header: str, after: str | None) -> str:
    """The text printed in one column of a table, top to bottom: the words from the left edge of its header
    up to the left edge of the next column's header (`after`), or to the page's edge."""
    words = _words(pdf, page)
    left = next(x for x, _, _, t in words if t.startswith(header[:4])) - 2
    right = next((x for x, _, _, t in words if after and t.startswith(after[:4])), 10_000.0) - 1
    inside = sorted(((round(y, 0), x, t) for x, y, _, t in words if left <= x < right))
    return "".join(t for _, _, t in inside)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, soffice) -> dict:
    """The annotated copy and 校验汇总.xlsx of nine sample offices, 汇总明细 of nine offices, 年报表格 of both
    formats and the current template, each converted to PDF in one LibreOffice call."""
    work = tmp_path_factory.mktemp("rendered")
    samples = sorted(SAMPLES.glob("*.xlsx"))[:9]
    batch = validate_paths(samples, workers=1)
    write_outputs(batch, work / "out", workers=1)
    annotated = sorted((work / "out" / FEEDBACK_DIR).glob("*/*_校验标注.xlsx"))
    fmt = current_format()
    year = _year(fmt.id)
    total = work / "总.xlsx"
    result = aggregate_paths(_offices(work / "in", fmt.id, 9, year), total, office="示例县人民政府", year=year,
                             workers=1)
    reports = {}
    for format_id in ("2019", "2021"):
        path = reports[format_id] = work / f"年报表格-{format_id}.xlsx"
        book = new_workbook(path, kind="cleaned")
        add_report_sheet(book, format_id, balanced_report(format_id, random.Random(1)), title="某镇人民政府")
        book.close()
    template = write_template(work / "模板.xlsx", fmt.id)
    files = [annotated[0], work / "out" / OVERVIEW, total, *reports.values(), template]
    pdfs = soffice(files, "pdf", work / "pdf")
    return {"batch": batch, "annotated": annotated[0], "overview": work / "out" / OVERVIEW, "rollup": result,
            "total": total, "reports": reports, "template": template,
            "pdf": dict(zip(["annotated", "overview", "total", "2019", "2021", "template"], pdfs, strict=True))}


@pytest.mark.soffice
def test_nine_offices_overview_prints_on_one_page_and_every_message_whole(rendered) -> None:
    pdf = rendered["pdf"]["overview"]
    pages = _pages(pdf)
    heading = text("feedback.overview.first_error")
    summary = [i for i, p in enumerate(pages, 1) if heading in p]
    assert len(summary) == 1  # 汇总 on one page; 全部问题 follows
    sheet = openpyxl.load_workbook(rendered["overview"]).worksheets[0]
    headers = next(r for r in sheet.iter_rows(values_only=True) if heading in r)
    column = _flat(_column(pdf, summary[0], heading, headers[headers.index(heading) + 1]))  # up to its neighbour
    for workbook in rendered["batch"].workbooks:
        assert (workbook.report.office or "") in pages[summary[0] - 1]
        if workbook.first_error:
            assert _flat(workbook.first_error) in column, workbook.first_error
    fix = text("feedback.overview.suggestion")
    fixes = _flat(_column(pdf, summary[0], fix, headers[headers.index(fix) + 1]))
    suggested = [suggestion_words(w) for w in rendered["batch"].workbooks if suggestion_words(w)]
    assert suggested and all(_flat(words) in fixes for words in suggested)  # the fix column too, whole


@pytest.mark.soffice
def test_the_annotated_copy_prints_every_message_whole(rendered) -> None:
    wb = openpyxl.load_workbook(rendered["annotated"])
    headers = text_list("annotate.headers")
    column = headers.index(text_list("annotate.headers")[4])  # 问题说明
    rows = list(wb[ANNOTATED_SHEET].iter_rows(values_only=True))
    top = next(i for i, row in enumerate(rows) if row[0] == headers[0])
    messages = [str(row[column]) for row in rows[top + 1:] if isinstance(row[0], int) and row[column]]
    assert messages
    pdf = rendered["pdf"]["annotated"]
    page = next(i for i, p in enumerate(_pages(pdf), 1) if headers[column] in p)
    printed = _flat(_column(pdf, page, headers[column], headers[column + 1]))
    for message in messages:
        assert _flat(message) in printed, message


@pytest.mark.soffice
def test_the_detail_sheet_prints_one_page_per_band_with_every_office_and_list(rendered) -> None:
    result = rendered["rollup"]
    layout = detail_layout(result.format.id)
    sheet = result.format.words.detail_sheet
    pages = [p for p in _pages(rendered["pdf"]["total"]) if sheet in p.splitlines()]  # its footer names it
    assert len(pages) == len(layout.bands) + 1
    for page in pages:  # the office column is repeated on every band
        assert all(w.name in page for w in result.included)
    starts = [layout.first, *layout.bands]
    for page, start in zip(pages, starts, strict=True):  # each band under its section's heading
        cell = result.format.cells[layout.ids[start - layout.first]]
        assert result.format.section(cell.section).heading in page
        assert _flat(cell.col_path[-1]) in _flat(page)
    for title, lines in provenance(result):  # the lists: whole, on the first band only
        for line in [title, *lines]:
            assert _flat(line) in _flat(pages[0]) and _flat(line) not in _flat("".join(pages[1:])), line


@pytest.mark.soffice
@pytest.mark.parametrize("format_id", ["2019", "2021"])
def test_the_report_sheet_prints_two_pages_with_four_under_three(rendered, format_id: str) -> None:
    fmt = get_format(format_id)
    pages = _pages(rendered["pdf"][format_id])
    assert len(pages) == len(report_layout(format_id).breaks) + 1 == 2
    assert fmt.sections[0].heading in pages[0]
    assert fmt.sections[1].heading in pages[1] and fmt.sections[2].heading in pages[1]


@pytest.mark.soffice
def test_the_template_narrative_sheet_prints_completely(rendered) -> None:
    fmt = current_format()
    printed = _flat("".join(_pages(rendered["pdf"]["template"])))
    for narrative in fmt.narratives:  # its left side used to be cut off: the heading and the whole hint print
        assert _flat(narrative.heading) in printed
        assert _flat(f"{fmt.words.narrative_hint_label}{narrative.hint}") in printed


# ------------------------------------------------------------------------------------------------
# What an office reads carries no code, rule id or cell id (report.json keeps them)


# An instance (I1[natural_person]), a plausibility or cross-year rule (P-2021-3, P-S3-1, X6), a ruling (R2), or
# an identity family (I1, I2, I3, I5: bare, not as a cell address of a range such as D8:I8).
RULE_ID = re.compile(r"[IX]\d\[[a-z_]+\]|P-\d{4}-\d+|P-S\d-\d+|(?<![A-Za-z0-9:])(I[1235]|R\d{1,2}|X\d{1,2})"
                     r"(?![A-Za-z0-9:])")


def _office_texts(folder: Path) -> dict[str, list[str]]:
    """反馈.txt, 反馈.html (as text), and the annotated copy's comments and 「校验结果」 sheet."""
    out: dict[str, list[str]] = {}
    for path in folder.iterdir():
        if path.name == text("feedback.text_file"):
            out[path.name] = [path.read_text("utf-8-sig")]
        elif path.name == text("feedback.page_file"):
            out[path.name] = [html.unescape(re.sub(r"<[^>]+>", " ", path.read_text("utf-8")))]
        elif "_校验标注" in path.name:
            wb = openpyxl.load_workbook(path)
            out[path.name] = [str(c.value) for row in wb[ANNOTATED_SHEET].iter_rows() for c in row
                              if c.value is not None]
            out[path.name] += [c.comment.text for ws in wb.worksheets for row in ws.iter_rows() for c in row
                               if c.comment]
    return out


def test_office_facing_text_has_no_code_rule_id_or_cell_id(tmp_path: Path) -> None:
    batch = validate_paths([SAMPLES], workers=1)
    write_outputs(batch, tmp_path / "out", workers=1)
    report = json.loads((tmp_path / "out" / text("feedback.report_file")).read_text("utf-8"))
    codes = set(catalog())
    checked = 0
    for entry in report["workbooks"]:
        fmt = get_format(entry["format"])
        ids = {*fmt.cells, *fmt.names}
        own = [entry["office"] or "", Path(entry["file"]).name, Path(entry["file"]).stem]  # the office's own words
        rules = {f["rule"] for f in entry["findings"] if f["rule"]}
        for name, texts in _office_texts(tmp_path / "out" / entry["feedback_dir"]).items():
            for words in texts:
                for mine in sorted(own, key=len, reverse=True):
                    words = words.replace(mine, "") if mine else words
                checked += 1
                assert not RULE_ID.search(words), (name, words)
                assert not any(rule in words for rule in rules), (name, words)
                assert not any(re.search(rf"(?<![\w-]){re.escape(c)}(?![\w-])", words) for c in codes), (name, words)
                assert not any(re.search(rf"(?<![\w.]){re.escape(i)}(?![\w.])", words) for i in ids), (name, words)
    assert checked > 30
    assert any(f["rule"] for e in report["workbooks"] for f in e["findings"])  # report.json keeps them


# ------------------------------------------------------------------------------------------------
# Progress: on stderr in a terminal, for every stage; never into a pipe, never with --json


STAGES = {key: text(f"cli.stage.{key}") for key in ("reading", "validating", "writing", "totalling",
                                                      "checking_total", "converting", "checking_mapped",
                                                      "publishing")}


def _in_terminal(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Run the command with stderr on a pseudo-terminal (stdout a pipe); returns (code, stdout, stderr)."""
    master, slave = os.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm", "PYTHONPATH": str(ROOT)}
    for key in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE"):
        env.pop(key, None)
    process = subprocess.Popen([sys.executable, "-m", "disclosure_xlsx", *args], stdout=subprocess.PIPE,
                               stderr=slave, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed with the process
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    stdout = process.stdout.read().decode() if process.stdout else ""
    process.wait(timeout=120)
    os.close(master)
    return process.returncode, stdout, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def two_samples(tmp_path: Path) -> Path:
    """A folder of two samples, one with an error: enough for every stage, quick to run."""
    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("2024_2021格式_I2错误.xlsx", "2024_示例县审计局.xlsx"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    return folder


def test_progress_shows_every_stage_in_a_terminal(tmp_path: Path, two_samples: Path) -> None:
    code, stdout, stderr = _in_terminal(["validate", str(two_samples), "--out", str(tmp_path / "out")], tmp_path)
    assert code == 1 and "\x1b[" in stderr  # a live display
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", stderr)
    for key in ("reading", "validating", "writing"):
        assert STAGES[key] in shown, key
    assert shown.index(STAGES["reading"]) < shown.index(STAGES["validating"]) < shown.index(STAGES["writing"])
    assert not any(label in stdout for label in STAGES.values())  # progress never goes to stdout
    _offices(tmp_path / "in", "2021", 2, 2024)
    code, stdout, stderr = _in_terminal(["aggregate", str(tmp_path / "in"), "-o", str(tmp_path / "t.xlsx"),
                                         "--office", "某县", "--year", "2024"], tmp_path)
    assert code == 0, stdout + stderr
    for key in ("reading", "validating", "totalling", "checking_total"):
        assert STAGES[key] in stderr, key
    code, stdout, stderr = _in_terminal(["convert", str(tmp_path / "in"), "--out", str(tmp_path / "c"),
                                         "--format-to", "2019"], tmp_path)
    for key in ("reading", "validating", "converting", "checking_mapped"):
        assert STAGES[key] in stderr, key
    code, stdout, stderr = _in_terminal(["publish", str(tmp_path / "in"), "--out", str(tmp_path / "p")], tmp_path)
    assert code == 0, stdout + stderr
    for key in ("reading", "validating", "publishing"):
        assert STAGES[key] in stderr, key


def test_no_progress_with_json_or_when_stderr_is_not_a_terminal(tmp_path: Path, two_samples: Path) -> None:
    code, stdout, stderr = _in_terminal(["validate", str(two_samples), "--json"], tmp_path)
    assert code == 1 and json.loads(stdout)["version"] == 1
    assert not any(label in stderr for label in STAGES.values()) and "\x1b[" not in stderr
    piped = subprocess.run([sys.executable, "-m", "disclosure_xlsx", "validate", str(two_samples), "--out",
                            str(tmp_path / "out")], capture_output=True, text=True, check=False,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=tmp_path)
    assert piped.returncode == 1
    assert not any(label in piped.stderr for label in STAGES.values()) and "\x1b[" not in piped.stderr


def test_convert_and_publish_report_their_writing_stages(tmp_path: Path) -> None:
    """The library tells the command when writing begins (the `stage` hook), and ticks it."""
    files = _offices(tmp_path / "in", "2021", 2, 2024)
    seen: list[tuple[str, int | None]] = []
    ticks: list[tuple[int, int]] = []

    def stage(name: str, total: int | None) -> object:
        seen.append((name, total))
        return lambda done, of: ticks.append((done, of))

    convert_paths(files, tmp_path / "c", workers=1, stage=stage, format_to="2019")
    publish_paths(files, tmp_path / "p", workers=1, stage=stage)
    assert seen == [("converting", 2), ("checking_mapped", 2), ("publishing", 2)]
    assert (0, 2) in ticks and (1, 2) in ticks


# ------------------------------------------------------------------------------------------------
# A terminal of 80 columns


def _narrow(char: str) -> bool:
    return not char.isspace() and unicodedata.east_asian_width(char) not in "WF"


def test_validate_reads_well_at_80_columns() -> None:
    out = subprocess.run([sys.executable, "-m", "disclosure_xlsx", "validate", str(SAMPLES)], capture_output=True, check=False,
                         text=True, env={**os.environ, "COLUMNS": "80", "PYTHONPATH": str(ROOT)}).stdout
    lines = out.splitlines()
    assert max(display_width(line) for line in lines) <= 80
    for path in SAMPLES.glob("*.xlsx"):  # no file name collapsed into "2020_2019格式_I…"
        assert path.name in out, path.name
    assert "…" not in out
    batch = validate_paths([SAMPLES], workers=1)
    body = "\n".join(lines)
    for workbook in batch.workbooks:
        for finding in workbook.findings:
            message = finding.message("zh")
            flat = re.sub(r"\s+", "", message)
            assert flat in re.sub(r"\s+", "", body)  # printed whole
    for before, after in pairwise(lines):  # a continued message never splits a number or ref
        if after.startswith("       ") and before.strip() and after.strip():
            assert not (_narrow(before[-1]) and _narrow(after.strip()[0])), (before, after)


# Words between the numbers and addresses: never none, as in every message (two tokens written together,
# "B5" "1000", would read as one address "B51000" that no message contains).
CJK_TEXT = st.text(alphabet=st.sampled_from(list("三收到处理申请，。、（）：") + [" "]), min_size=1, max_size=6)
TOKEN = st.one_of(st.integers(0, 10**9).map(str), st.from_regex(r"[A-Z]{1,2}[1-9][0-9]{0,2}(:[A-Z][1-9][0-9]?)?",
                                                                fullmatch=True), st.sampled_from(["1,234", "5949.088667", "二、主动公开!B5"]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(CJK_TEXT, TOKEN), min_size=1, max_size=12), st.integers(20, 90))
@example(parts=[("、", "0"), ("、、", "10"), (" ", "1000")], width=20)  # a break at the space between two numbers
@example(parts=[("（（", "5949.088667")], width=20)  # the brackets before a number give way, not the number
def test_wrapping_keeps_numbers_and_addresses_whole(parts: list[tuple[str, str]], width: int) -> None:
    message = "".join(a + b for a, b in parts)
    lines = wrap(message, width, first="  错误 ", indent=" " * 7)
    assert all(display_width(line) <= width for line in lines)
    assert re.sub(r"\s+", "", "".join(lines)).replace("错误", "", 1) == re.sub(r"\s+", "", message)
    runs = re.findall(r"[^\s\u2e80-\uffff]+", message)
    for run in runs:  # every narrow run (number, address) on one line
        if display_width(run) <= width - 7:
            assert any(run in line for line in lines), run
    for before, after in pairwise(lines):  # a run is cut only where it is longer than a whole line
        tail, head = re.search(r"[!-~]*$", before).group(), re.match(r"[!-~]*", after.strip()).group()
        cut = tail and head and any(tail + head in run for run in runs)  # not a break at a space between two
        assert not cut or display_width(tail + head) > width - 7, (before, after)


@settings(max_examples=40, deadline=None)
@given(st.lists(CJK_TEXT, min_size=2, max_size=8), st.sampled_from(["校验汇总.xlsx", "反馈.txt", "数据.csv", "名单.xlsx"]),
       st.integers(0, 7), st.integers(24, 60))
def test_wrapping_keeps_a_file_name_whole(words: list[str], name: str, at: int, width: int) -> None:
    """A file name such as 校验汇总.xlsx is one unit: never split between its Chinese characters, in
    Chinese or in English text around it, on any line it fits (with up to six Chinese characters before
    its extension; a number like 1.5 is not a file name)."""
    words.insert(min(at, len(words)), name)
    lines = wrap("".join(words) + " Every result is in out/" + name + " now.", width, indent="  ")
    assert sum(line.count(name) for line in lines) == 2, lines
    assert wrap("1.5万元", 4) == ["1.5", "万元"]


# ------------------------------------------------------------------------------------------------
# A roll-up whose own total fails a check


def test_a_failing_total_prints_its_findings_under_their_own_heading(tmp_path: Path) -> None:
    files = _offices(tmp_path / "in", "2021", 2, 2024)
    wb = openpyxl.load_workbook(files[0])
    sheet, ref = wb.defined_names["s3_granted_total"].attr_text.split("!")
    wb[sheet.strip("'")][ref.replace("$", "")].value += 1
    wb.save(files[0])
    result = CliRunner().invoke(app, ["aggregate", str(tmp_path / "in"), "-o", str(tmp_path / "t.xlsx"), "--office",
                                      "某县", "--year", "2024", "--include-invalid"], env={"COLUMNS": "80"})
    assert result.exit_code == 1, result.output
    out = result.stdout
    heading = text("aggregate.total_failed")
    assert heading in out
    after = re.sub(r"\s+", "", out[out.index(heading) + len(heading):])
    check = validate_paths([tmp_path / "t.xlsx"], workers=1).workbooks[0]
    errors = [f for f in check.findings if f.severity == "error"]
    assert errors
    for finding in errors:  # every error of the total, below its heading, after the lists of the inputs
        assert re.sub(r"\s+", "", finding.message("zh")) in after
    assert out.index(text("aggregate.summary.title", year=2024)) < out.index(heading)  # after the inputs' lists
    assert max(display_width(line) for line in out.splitlines()) <= 80
