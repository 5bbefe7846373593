"""One file never takes down a batch: limits before the reader, reading in worker processes, odd names.

Hostile files are built here, written to disk and read the way a county's batch reads them: twenty good
workbooks plus one hostile file through `validate --json` as a subprocess, with one and two workers.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter

from disclosure_xlsx import limits, locate, pipeline, read
from disclosure_xlsx import workers as workers_module
from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.clean import clean_value
from disclosure_xlsx.formats import all_formats, get_format
from disclosure_xlsx.pipeline import check_file, discover, shown_name, validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template
from disclosure_xlsx.workers import run_isolated

from .conftest import ROOT, hang_forever

FORMATS = list(all_formats())
GBK_NAME = os.fsdecode("测试单位".encode("gbk") + b".xlsx")  # as `unzip` leaves a Windows zip's name on Linux
ODS_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
          'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
          'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"')


# ------------------------------------------------------------------------------------------------
# Builders: good workbooks and hostile ones, all real files


def _good(path: Path, i: int) -> Path:
    format_id = FORMATS[i % len(FORMATS)]
    values: dict[str, object] = dict(balanced_report(format_id, random.Random(i)))
    values.update(meta_office=f"第{i}镇人民政府", meta_year=2020 if format_id == FORMATS[0] else 2024)
    return write_template(path, format_id, values=values)


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("good")
    for i in range(20):
        _good(folder / f"good{i:02d}.xlsx", i)
    return folder


@pytest.fixture(scope="module")
def template_bytes(good_folder: Path) -> bytes:
    return (good_folder / "good01.xlsx").read_bytes()


def _rezip(data: bytes, change: dict[str, Any]) -> bytes:
    """The workbook with some parts' contents replaced (a value) or edited (a function of the old bytes)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info)
            edit = change.get(info.filename)
            dst.writestr(info.filename, edit(content) if callable(edit) else edit if edit is not None else content)
    return out.getvalue()


def far_cell(data: bytes, ref: str = "XFD1048576") -> bytes:
    """One cell far out: python-calamine sizes its grid by it (512 GiB for XFD1048576) and aborts."""
    row = re.sub(r"\D", "", ref)
    return _rezip(data, {"xl/worksheets/sheet2.xml": lambda xml: xml.replace(
        b"</sheetData>", f'<row r="{row}"><c r="{ref}"><v>1</v></c></row></sheetData>'.encode())})


def entity_bomb(data: bytes) -> bytes:
    """Entities that expand a few hundred bytes into gigabytes, declared in the shared strings."""
    lol = "".join(f'<!ENTITY l{i} "{"&l%d;" % (i - 1) * 10 if i else "lol"}">' for i in range(10))
    return _rezip(data, {"xl/sharedStrings.xml": lambda xml: xml.replace(
        b"?>", f'?><!-- <x> --><!DOCTYPE sst [{lol}]>'.encode(), 1).replace(b"<t>", b"<t>&l9;", 1)})


def million_digits(folder: Path) -> bytes:
    """A count cell holding a million digits (a shared string: xlsxwriter writes at most 32,767 characters)."""
    count = next(c for c in get_format(FORMATS[-1]).cells.values() if c.type.key == "count")
    path = write_template(folder / "digits-template.xlsx", FORMATS[-1], values={count.id: "DIGITS"}, stamped=False)
    data = path.read_bytes()
    path.unlink()
    return _rezip(data, {"xl/sharedStrings.xml": lambda xml: xml.replace(b">DIGITS<", b">" + b"1" * 1_000_000 + b"<")})


def ods(rows: str) -> bytes:
    """A minimal OpenDocument spreadsheet with one table of the given rows."""
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {ODS_NS} office:version="1.2">'
               f'<office:body><office:spreadsheet><table:table table:name="S">{rows}</table:table>'
               "</office:spreadsheet></office:body></office:document-content>")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return out.getvalue()


WIDE_ODS = ('<table:table-row table:number-rows-repeated="4000"><table:table-cell office:value-type="float" '
            'office:value="1" table:number-columns-repeated="16384"/></table:table-row>')


def crafted_labels(path: Path, n: int) -> Path:
    """No defined names and n copies of a table's first column label, each beside a distinct near-label
    text: the header search once tried every copy, and compared every text with every label."""
    fmt = get_format(FORMATS[-1])
    first = fmt.section("s3").leaves("columns")[0].label
    rng = random.Random(n)
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_string(0, 0, fmt.signals[0])  # the format is recognised, so its tables are searched for
    for k in range(n):  # in pairs of columns, 100 pairs wide (within the row and column limits)
        row, col = 1 + k // 100, 2 * (k % 100)
        sheet.write_string(row, col, first)
        sheet.write_string(row, col + 1, "".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(6)))
    book.close()
    return path


def unlistable(folder: Path) -> Path:
    inner = folder / "锁定的文件夹"
    inner.mkdir()
    _good(inner / "inside.xlsx", 99)
    inner.chmod(0)
    return inner


def _hostile(kind: str, folder: Path, template: bytes) -> tuple[str, str]:
    """Put one hostile file (or folder) of `kind` into `folder`; returns its shown name and the code of
    the finding it must give."""
    if kind == "far-cell":
        (folder / "far.xlsx").write_bytes(far_cell(template))
        return "far.xlsx", "file-too-large"
    if kind == "wide-ods":
        (folder / "wide.ods").write_bytes(ods(WIDE_ODS))
        return "wide.ods", "file-too-large"
    if kind == "entities":
        (folder / "entities.xlsx").write_bytes(entity_bomb(template))
        return "entities.xlsx", "file-unreadable"
    if kind == "digits":
        (folder / "digits.xlsx").write_bytes(million_digits(folder))
        return "digits.xlsx", "number-too-large"
    if kind == "fifo":
        os.mkfifo(folder / "pipe.xlsx")
        return "pipe.xlsx", "file-unreadable"
    if kind == "gbk-name":
        _good(folder / GBK_NAME, 50)
        return "测试单位.xlsx", ""
    if kind == "unlistable":
        unlistable(folder)
        return "锁定的文件夹", "folder-unreadable"
    assert kind == "labels"
    crafted_labels(folder / "labels.xlsx", 20_000)
    return "labels.xlsx", "cell-not-found"


def _cli(folder: Path, workers: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "disclosure_xlsx", "validate", str(folder), "--json", "--workers", str(workers)]
    if os.geteuid() == 0:  # root lists any folder: drop that power, as an office clerk does not have it
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a folder cannot be made unlistable")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, env=env, timeout=300)
    assert done.returncode in (0, 1), done.stderr.decode("utf-8", "replace")[-3000:]
    return json.loads(done.stdout)


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {Path(w["file"]).name: {k: v for k, v in w.items() if k != "file"} for w in report["workbooks"]}


@pytest.fixture(scope="module")
def baseline(good_folder: Path) -> dict[str, dict[str, Any]]:
    """The twenty good workbooks' results alone (in this process: the report is the command's)."""
    return _by_name(validate_paths([good_folder], workers=2).to_dict())


HOSTILE = ["far-cell", "wide-ods", "entities", "digits", "fifo", "gbk-name", "unlistable", "labels"]


@pytest.mark.parametrize("workers", [1, 2])
def test_twenty_good_files_keep_their_results_beside_every_hostile_one(
        workers: int, good_folder: Path, template_bytes: bytes, baseline: dict[str, Any], tmp_path: Path) -> None:
    """All eight hostile files in one batch with the twenty good ones, through `validate --json` as a
    subprocess (what a county runs): each hostile file gets its own finding, and every good workbook's
    result is what it is alone, finding for finding."""
    folder = tmp_path / "batch"
    folder.mkdir()
    for good in good_folder.iterdir():
        os.link(good, folder / good.name)
    expected = dict(_hostile(kind, folder, template_bytes) for kind in HOSTILE)
    try:
        results = _by_name(_cli(folder, workers))
    finally:
        for inner in folder.iterdir():
            inner.chmod(0o755) if inner.is_dir() else None
    hostile = {name: results.pop(name) for name in expected}
    assert results == baseline
    for name, code in expected.items():
        codes = [f["code"] for f in hostile[name]["findings"]]
        assert "internal-error" not in codes, name
        if name == "测试单位.xlsx":  # a GBK-encoded file name: read, and shown decoded
            assert hostile[name]["status"] in ("ok", "warnings") and hostile[name]["office"] == "第50镇人民政府"
        elif name in ("digits.xlsx", "labels.xlsx"):
            assert code in codes and hostile[name]["status"] == "errors", name
        else:
            assert codes == [code] and hostile[name]["status"] == "unreadable", name


# ------------------------------------------------------------------------------------------------
# Limits before the reader


def _refusal(data: bytes) -> str:
    with pytest.raises(DisclosureError) as caught:
        limits.check_archive(data)
    return caught.value.finding.message("en")


def test_a_far_out_cell_is_refused_before_the_reader_naming_the_limit(template_bytes: bytes) -> None:
    message = _refusal(far_cell(template_bytes))
    assert f"{limits.MAX_SHEET_ROWS} rows and {limits.MAX_SHEET_COLUMNS} columns per sheet" in message
    assert "XFD1048576" in message or "1048576" in message
    assert "XFD20" in _refusal(far_cell(template_bytes, "XFD20"))  # too wide, in a short sheet
    assert "row 5001" in _refusal(far_cell(template_bytes, "A5001"))  # too long, in a narrow one
    limits.check_archive(far_cell(template_bytes, f"IV{limits.MAX_SHEET_ROWS}"))  # the last cell allowed


@pytest.mark.parametrize("cells", [
    '<c r="A20" r="XFD20"><v>1</v></c>',  # python-calamine takes the last of two r attributes
    '<c r="A20" r ="XFD20"><v>1</v></c>', "<c r='XFD20'><v>1</v></c>", '<c\nr="XFD20"><v>1</v></c>',
    '<x:c xmlns:x="urn:x" r="XFD20"><v>1</v></x:c>', '<c r="&#88;FD20"><v>1</v></c>',
    "<c><v>1</v></c>" * 300,  # cells without r count on from the previous one
    '<c r="A20" t="inlineStr"><is><t>x</t></is></c><c r="XFD20" t="inlineStr"><is><t xml:space="preserve">y</t></is></c>',
    '<c r="A20" t="inlineStr"><is><r><t>x</t></r><t><c r="XFD20"/></t></is></c>',  # a cell inside a text
])
def test_every_way_of_writing_a_far_reference_is_seen(template_bytes: bytes, cells: str) -> None:
    data = _rezip(template_bytes, {"xl/worksheets/sheet2.xml": lambda xml: xml.replace(
        b"</sheetData>", f'<row r="20">{cells}</row></sheetData>'.encode())})
    assert "per sheet" in _refusal(data)


def test_sheets_that_differ_only_in_their_values_are_scanned_once(template_bytes: bytes) -> None:
    """The skeleton (the sheet without its values and value types) is looked at once: numbers, shared and
    inline strings of different texts, one cell a number in one workbook and a text in the other."""
    def sheet(cells: str) -> bytes:
        return _rezip(template_bytes, {"xl/worksheets/sheet2.xml": lambda xml: xml.replace(
            b"</sheetData>", f'<row r="20">{cells}</row></sheetData>'.encode())})

    limits._SKELETONS.clear()
    limits.check_archive(sheet('<c r="A20" s="1"><v>1</v></c><c r="B20" t="inlineStr"><is><t>某镇</t></is></c>'))
    known = len(limits._SKELETONS)
    limits.check_archive(sheet('<c r="A20" s="1" t="s"><v>7</v></c><c r="B20" t="inlineStr"><is><t '
                               'xml:space="preserve"> 另一个镇 &amp; </t></is></c>'))
    limits.check_archive(sheet('<c r="A20" s="1" t="inlineStr"><is><t>3件</t></is></c><c r="B20"><v>2</v></c>'))
    assert len(limits._SKELETONS) == known


def test_a_sheet_hidden_behind_a_relationship_is_looked_at_too(template_bytes: bytes) -> None:
    far = far_cell(template_bytes)
    with zipfile.ZipFile(io.BytesIO(far)) as archive:
        sheet = archive.read("xl/worksheets/sheet2.xml")
    moved = _rezip(template_bytes, {"xl/theme/theme1.xml": sheet, "xl/_rels/workbook.xml.rels": lambda xml: xml.replace(
        b"worksheets/sheet2.xml", b"theme/theme1.xml")})
    assert "per sheet" in _refusal(moved)


def test_the_used_range_and_empty_far_rows_are_refused_too(template_bytes: bytes) -> None:
    dimension = _rezip(template_bytes, {"xl/worksheets/sheet2.xml": lambda xml: re.sub(
        rb'<dimension ref="[^"]*"/>', b'<dimension ref="A1:XFD1048576"/>', xml)})
    assert "used range" in _refusal(dimension)
    row = _rezip(template_bytes, {"xl/worksheets/sheet2.xml": lambda xml: xml.replace(
        b"</sheetData>", b'<row r="1048576" ht="20" customHeight="1"/></sheetData>')})
    assert "row 1048576" in _refusal(row)


def test_ods_repeats_count_but_empty_trailing_repeats_do_not() -> None:
    assert "per sheet" in _refusal(ods(WIDE_ODS))
    assert "A6001" in _refusal(ods('<table:table-row table:number-rows-repeated="6000"><table:table-cell/>'
                                   '</table:table-row><table:table-row><table:table-cell><text:p>x</text:p>'
                                   "</table:table-cell></table:table-row>"))
    # what LibreOffice writes after every sheet: a million empty rows of 16384 empty cells
    benign = ods('<table:table-row><table:table-cell office:value-type="float" office:value="7"><text:p>7</text:p>'
                 '</table:table-cell><table:table-cell table:number-columns-repeated="16383"/></table:table-row>'
                 '<table:table-row table:number-rows-repeated="1048575"><table:table-cell '
                 'table:number-columns-repeated="16384"/></table:table-row>')
    assert limits.check_archive(benign) is not None


def test_document_types_and_entities_are_refused_wherever_they_hide(template_bytes: bytes) -> None:
    assert "declares an XML document type or entities" in _refusal(entity_bomb(template_bytes))
    for prolog in (b'<?xml version="1.0"?>\n<!-- a comment with <tags> -->\n<!DOCTYPE x>',
                   b"\xef\xbb\xbf<!doctype x>", '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x>'.encode("utf-16")):
        data = _rezip(template_bytes, {"docProps/app.xml": lambda xml, p=prolog: p + xml.split(b"?>", 1)[1]})
        assert "document type" in _refusal(data)
    padded = _rezip(template_bytes, {"docProps/app.xml": lambda xml: b"<!--" + b"x" * 5000 + b"-->" + xml})
    assert "over-long declarations" in _refusal(padded)


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zip_directory_limits(template_bytes: bytes) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template_bytes)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("xl/worksheets/sheet2.xml", b"<worksheet/>")  # a second part of the same name
    assert "two parts named" in _refusal(out.getvalue())
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as dst:
        for i in range(limits.MAX_ZIP_MEMBERS + 1):
            dst.writestr(f"x{i}", b"")
    assert f"limit {limits.MAX_ZIP_MEMBERS} parts" in _refusal(many.getvalue())
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        dst.writestr("xl/worksheets/sheet1.xml", b"\0" * (limits.MAX_SHEET_XML_BYTES + 1))
    assert "sheet data" in _refusal(bomb.getvalue())
    binary = io.BytesIO(template_bytes)
    with zipfile.ZipFile(binary, "a") as dst:
        dst.writestr("xl/workbook.bin", b"")
    assert ".xlsb" in _refusal(binary.getvalue())


def test_only_regular_files_are_opened_and_a_pipe_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.xlsx")
    (tmp_path / "zero.xlsx").symlink_to("/dev/zero")
    for name, kind in (("pipe.xlsx", "named pipe"), ("zero.xlsx", "device"), ("..", "folder")):
        with pytest.raises(DisclosureError) as caught:
            limits.read_regular(tmp_path / name)
        assert kind in caught.value.finding.message("en")
    with pytest.raises(DisclosureError) as caught:
        limits.read_regular(tmp_path / "deleted.xlsx")  # deleted mid-run
    # a file gone during the run is this machine's problem, told to the county (access.py)
    assert caught.value.finding.code == "file-inaccessible" and "deleted" in caught.value.finding.message("en")


def test_a_file_that_grows_while_it_is_read_is_read_whole_and_still_bounded(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader asks for the size the file had when opened and one byte more; a file longer by then
    (still being copied in) is read on to its end, and refused once it passes the limit."""
    real_fstat = os.fstat

    def smaller(fd: int) -> os.stat_result:  # the size the file had a moment ago
        info = list(real_fstat(fd))
        info[6] = 10
        return os.stat_result(info)

    monkeypatch.setattr(limits.os, "fstat", smaller)
    growing = tmp_path / "growing.xlsx"
    growing.write_bytes(bytes(range(256)) * 40)
    assert limits.read_regular(growing) == growing.read_bytes()
    growing.write_bytes(b"\0" * (limits.MAX_FILE_BYTES + 2))
    with pytest.raises(DisclosureError) as caught:
        limits.read_regular(growing)
    assert caught.value.finding.code == "file-too-large"


def test_a_million_digits_in_a_count_cell_is_a_finding_not_an_error() -> None:
    cell = next(c for c in get_format(FORMATS[-1]).cells.values() if c.type.key == "count")
    assert clean_value("1" * 1_000_000, cell, unit_stated=True).problem == "number-too-large"
    assert clean_value("0." + "0" * 100 + "1", cell, unit_stated=True).problem == "value-unparseable"
    assert clean_value(" 12 ", cell, unit_stated=True).value == 12  # ordinary text still cleans


# ------------------------------------------------------------------------------------------------
# Bounded label search: counted work, not time


def _counting(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    similar, find, title = locate._similar, locate.LabelIndex._find, read._title_match

    def count(name: str, real: Any) -> Any:
        return lambda *args: calls.update([name]) or real(*args)

    monkeypatch.setattr(locate, "_similar", count("similar", similar))
    monkeypatch.setattr(locate.LabelIndex, "_find", count("find", find))
    monkeypatch.setattr(read, "_title_match", count("title", title))
    return calls


def test_the_header_search_does_bounded_work_on_a_crafted_worst_case(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    calls = _counting(monkeypatch)
    work = []
    for n in (3_000, 12_000):  # 19 KB and 70 KB files: the same work
        calls.clear()
        report = read.read_workbook(crafted_labels(tmp_path / f"labels{n}.xlsx", n))
        assert report.located_by == "labels" and any(f.code == "cell-not-found" for f in report.findings)
        work.append(dict(calls))
    assert work[0] == work[1]
    labels = sum(len(s.leaves("columns")) + len(s.leaves("rows")) + len(s.blocks) for f in all_formats().values()
                 for s in f.sections)
    assert work[0]["find"] <= labels  # each label looked up once, not once per candidate cell
    assert work[0].get("similar", 0) <= work[0]["find"] * limits.MAX_FUZZY_TEXTS


def test_the_title_line_is_only_matched_on_short_texts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls = _counting(monkeypatch)
    fmt = get_format(FORMATS[0])
    title = f"某县某镇人民政府2020年{fmt.words.report_name}"
    crafted = "2020年" * 40_000 + fmt.words.report_name  # 199 KB: the lazy regex was quadratic on it
    index = locate.LabelIndex({"S": [[crafted], [title]]})
    report = read.RawReport("x", fmt.id, "labels", {}, {})
    read._fields_from_title(fmt, index, report)
    assert calls["title"] == 1 and report.raw["meta_office"] == "某县某镇人民政府"
    assert len(crafted) > limits.MAX_LABEL_CHARS


# ------------------------------------------------------------------------------------------------
# Worker processes: every way a job can end


def _job(kind: str) -> str:
    if kind == "abort":
        os.abort()
    if kind == "hang":
        hang_forever()
    if kind == "memory":
        return str(len(bytearray(4 * 2**30)))
    if kind == "raise":
        raise ValueError("boom")
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "calamine":  # the real thing: python-calamine asked for 512 GiB, with no look first
        from python_calamine import CalamineWorkbook

        book = CalamineWorkbook.from_path(os.environ["FAR_CELL"])
        for name in book.sheet_names:
            book.get_sheet_by_name(name)
    return kind


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunk", [1, 4], ids=["one-by-one", "in-chunks"])
def test_run_isolated_gives_one_outcome_per_job_in_order(workers: int, chunk: int, tmp_path: Path, template_bytes: bytes,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Every way a job can end is that job's alone, whether it went to its worker alone or in a chunk
    (which is then run again one job at a time)."""
    (tmp_path / "far.xlsx").write_bytes(far_cell(template_bytes))
    monkeypatch.setenv("FAR_CELL", str(tmp_path / "far.xlsx"))
    jobs = ["a", "abort", "b", "hang", "memory", "raise", "kill", "calamine", *"cdefgh"]
    done: list[tuple[int, int]] = []
    outcomes = list(run_isolated(_job, jobs, workers=workers, timeout=0.5, memory_limit=2**30,
                                 on_done=lambda d, t: done.append((d, t)), chunk=chunk))
    assert [o.index for o in outcomes] == list(range(len(jobs)))
    assert done == [(d, len(jobs)) for d in range(1, len(jobs) + 1)]
    got = {jobs[o.index]: (o.value, o.failure) for o in outcomes}
    assert got["abort"] == (None, "crashed") and got["hang"] == (None, "timeout")
    assert got["memory"] == (None, "memory") and got["raise"] == (None, "error") and got["kill"] == (None, "memory")
    assert got["calamine"] == (None, "memory")
    assert "allocation of 549755813888 bytes failed" in outcomes[jobs.index("calamine")].detail
    assert all(got[k] == (k, None) for k in "abcdefgh")


def _slow_write(path: str) -> str:
    """A job that keeps writing its file for a while, as a worker writing a cleaned workbook does."""
    for _ in range(10):
        with open(path, "a", encoding="utf-8") as f:
            f.write("x")
        time.sleep(0.03)
    return path


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunk", [1, 3], ids=["one-by-one", "in-chunks"])
def test_a_run_stopped_mid_way_returns_only_when_no_worker_can_write(workers: int, chunk: int, tmp_path: Path) -> None:
    """What a caller does after an interruption (remove its staging folder) must not race a worker still
    writing into it: closing the run waits for every worker to end."""
    jobs = [str(tmp_path / f"{i}.txt") for i in range(8)]
    run = run_isolated(_slow_write, jobs, workers=workers, chunk=chunk)
    assert next(run).ok
    run.close()  # what Ctrl-C in the caller's loop does: the generator's `finally`
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    time.sleep(0.3)
    assert {p.name: p.stat().st_size for p in tmp_path.iterdir()} == sizes


def _exploding_check_file(path: str | Path, suggest: bool = True, own_outputs: bool = False) -> Any:
    name = Path(path).name
    if name == "abort.xlsx":
        os.abort()
    if name == "hang.xlsx":
        hang_forever()
    return check_file(path, suggest=suggest, own_outputs=own_outputs)


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunks_per_worker", [8, 1], ids=["one-by-one", "in-chunks"])
def test_a_reader_that_aborts_or_hangs_costs_only_its_file(workers: int, chunks_per_worker: int, tmp_path: Path,
                                                           good_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch this small goes to the workers a file at a time; one as large as a county's goes in chunks
    (made so here by asking for fewer chunks): either way the hostile files cost only themselves."""
    monkeypatch.setattr(workers_module, "_CHUNKS_PER_WORKER", chunks_per_worker)
    for name in ("good00.xlsx", "good01.xlsx", "good02.xlsx"):
        shutil.copy(good_folder / name, tmp_path / name)
    shutil.copy(good_folder / "good03.xlsx", tmp_path / "abort.xlsx")
    shutil.copy(good_folder / "good04.xlsx", tmp_path / "hang.xlsx")
    monkeypatch.setattr(pipeline, "check_file", _exploding_check_file)  # the workers are forked with it
    monkeypatch.setattr(pipeline, "FILE_TIMEOUT_SECONDS", 1.0)
    results = {Path(w.file).name: w for w in validate_paths([tmp_path], workers=workers).workbooks}
    assert [f.code for f in results["abort.xlsx"].findings] == ["file-reader-crashed"]
    assert "SIGABRT" in results["abort.xlsx"].findings[0].message("en")
    assert [f.code for f in results["hang.xlsx"].findings] == ["file-timeout"]
    assert "1 s" in results["hang.xlsx"].findings[0].message("en")
    assert all(results[f"good0{i}.xlsx"].status in ("ok", "warnings") for i in range(3))


# ------------------------------------------------------------------------------------------------
# Odd names, folders and damage


def test_a_gbk_file_name_is_read_and_shown_decoded(tmp_path: Path) -> None:
    _good(tmp_path / GBK_NAME, 7)
    (found,) = discover([tmp_path])
    assert os.fsencode(found.name) == "测试单位".encode("gbk") + b".xlsx"  # the bytes are kept
    checked = check_file(found)
    file, report, problem = checked.file, checked.report, checked.problem
    assert problem is None and report is not None and Path(file).name == "测试单位.xlsx"
    assert shown_name(os.fsdecode(b"\xff\xfe.xlsx")).endswith("\ufffd\ufffd.xlsx")  # neither UTF-8 nor GBK


def test_a_folder_that_cannot_be_listed_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _good(tmp_path / "a.xlsx", 1)
    inner = tmp_path / "sub"
    inner.mkdir()
    _good(inner / "b.xlsx", 2)
    real = os.scandir

    def scandir(path: Any) -> Any:
        if Path(path) == inner:
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", lambda path: scandir(path))
    assert discover([tmp_path]) == [tmp_path / "a.xlsx", inner]
    assert discover(discover([tmp_path])) == [tmp_path / "a.xlsx", inner]
    checked = check_file(inner)
    report, problem = checked.report, checked.problem
    assert report is None and problem is not None and problem.code == "folder-unreadable"
    assert "permission denied" in problem.message("en") and "没有访问权限" in problem.message("zh")


def test_nothing_named_like_a_workbook_is_skipped_silently(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    _good(real / "x.xlsx", 3)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)  # followed, each folder once
    (tmp_path / "broken.xlsx").symlink_to(tmp_path / "missing.xlsx")
    os.mkfifo(tmp_path / "pipe.xlsx")
    (tmp_path / ".hidden.xlsx").write_bytes(b"")
    (tmp_path / "~$lock.xlsx").write_bytes(b"")
    found = discover([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["broken.xlsx", "link/x.xlsx", "pipe.xlsx"]
    assert discover(found) == found  # what the command line passes on is found again as it was
    codes = {Path(c.file).name: c.problem.code if c.problem else None for c in map(check_file, found)}
    assert codes == {"broken.xlsx": "file-inaccessible", "x.xlsx": None, "pipe.xlsx": "file-unreadable"}


def test_ordinary_damage_is_unreadable_not_an_internal_error(tmp_path: Path, template_bytes: bytes,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    flagged = bytearray(template_bytes)
    central = flagged.rfind(b"PK\x01\x02")  # the last part's directory entry: mark it encrypted
    flagged[central + 8] |= 0x01
    (tmp_path / "flags.xlsx").write_bytes(bytes(flagged))
    method = bytearray(template_bytes)
    method[method.find(b"PK\x01\x02") + 10] = 99  # an unknown compression method
    (tmp_path / "method.xlsx").write_bytes(bytes(method))
    (tmp_path / "damaged.ods").write_bytes(ods("<table:table-row>")[:-40])
    for name in ("flags.xlsx", "method.xlsx", "damaged.ods"):
        assert check_file(tmp_path / name).problem.code == "file-unreadable", name  # type: ignore[union-attr]
    assert check_file(tmp_path / "deleted.xlsx").problem.code == "file-inaccessible"  # type: ignore[union-attr]

    class PanicException(BaseException):  # what pyo3 raises when python-calamine panics on a damaged .xls
        pass

    def panic(_: object) -> None:
        raise PanicException("index out of bounds")

    _good(tmp_path / "panics.xls", 4)
    monkeypatch.setattr(read.CalamineWorkbook, "from_filelike", panic)
    assert check_file(tmp_path / "panics.xls").problem.code == "file-unreadable"  # type: ignore[union-attr]

    def interrupted(_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(read.CalamineWorkbook, "from_filelike", interrupted)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C still stops the run
        check_file(tmp_path / "panics.xls")


# ------------------------------------------------------------------------------------------------
# Fuzzing as a habit: a small seeded run of scripts/fuzz.py (README quotes a large one)


def test_a_small_seeded_fuzz_run_has_no_batch_crash_and_no_internal_error(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("fuzz", ROOT / "scripts" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "fuzz", fuzz)  # the workers find its functions by name
    spec.loader.exec_module(fuzz)
    report = fuzz.run(100, batch=50, seed=3, workers=2, keep=tmp_path / "fuzz")
    assert (report.files, report.batches) == (100, 2)
    assert report.batch_crashes == [] and report.internal_errors == [] and report.timeouts == []
    assert 0 < report.slowest_seconds < 10
    assert report.codes.get("file-unreadable", 0) < 100 and len(report.codes) > 5  # damage of many kinds


# ------------------------------------------------------------------------------------------------
# The README's limits are the code's


def test_the_readme_quotes_the_limits_of_the_code() -> None:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("### Bad, damaged and hostile files"):]
    section = section[:section.index("\n### ", 10)]
    expected = {
        f"**{limits.MAX_FILE_BYTES // 2**20} MiB**", f"**{limits.MAX_UNZIPPED_BYTES // 2**20} MiB**",
        f"**{limits.MAX_SHEET_XML_BYTES // 2**20} MiB**", f"**{limits.MAX_SHEET_ROWS:,} rows**",
        f"**{limits.MAX_SHEET_COLUMNS} columns**", f"**{limits.MAX_GRID_CELLS:,} cells**",
        f"**{limits.MAX_ZIP_MEMBERS:,} parts**", f"**{limits.MAX_NUMBER_CHARS} characters**",
        f"**{limits.FILE_TIMEOUT_SECONDS:g} s**", f"**{limits.WORKER_MEMORY_BYTES // 2**30} GiB**",
        f"**{limits.MAX_LABEL_CHARS} characters**", f"**{limits.MAX_LABEL_CANDIDATES} candidates**",
        f"**{limits.MAX_FUZZY_TEXTS:,} texts**",
    }
    quoted = set(re.findall(r"\*\*[\d,]+ (?:MiB|GiB|rows|columns|cells|parts|characters|candidates|texts|s)\*\*",
                            section))
    assert quoted == expected


_PROBE = """
import importlib
import json
import sys
from pathlib import Path
from disclosure_xlsx import formats, layout, narrative, pipeline

def probe(job):  # in the worker: what reading its first workbook had to build of the formats, layouts and rules
    def built():
        return formats.all_formats.cache_info().misses, layout.layout_for.cache_info().misses, \\
            layout.standard_where.cache_info().misses, narrative._rules.cache_info().misses
    before = built()
    pipeline.check_file(job.path, suggest=job.suggest)
    return before, built()

pipeline._read_job = probe
first = list(pipeline._read_all([Path(sys.argv[1])], 1, None))
importlib.import_module("disclosure_xlsx.validate")  # as the first run's validation does
print(json.dumps([first, list(pipeline._read_all([Path(sys.argv[1])], 1, None))]))
"""


def test_the_workers_inherit_the_formats_and_rules_instead_of_building_them() -> None:
    """Per-batch work once: the formats and their layouts are built by the run before it forks its
    workers, so a worker's first workbook builds none of them (in a fresh process, where nothing else
    built them first); the narrative rules are compiled by the first run's worker (the parent imports
    pandas meanwhile) and by the parent before any later run of the same process forks."""
    sample = ROOT / "sample_workbooks" / "2024_示例县审计局.xlsx"
    done = subprocess.run([sys.executable, "-c", _PROBE, str(sample)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True, timeout=120)
    (((before, after),), ((again_before, again_after),)) = json.loads(done.stdout)
    assert before[:3] == after[:3] and all(count >= 1 for count in before[:3]), done.stdout
    assert (before[3], after[3]) == (0, 1), done.stdout  # the first run's worker compiled the rules
    assert again_before == again_after and again_before[3] == 1, done.stdout  # inherited in the second


def _worker_pid(_: int) -> int:
    return os.getpid()


def test_on_started_is_told_once_when_the_workers_exist_before_any_outcome() -> None:
    """The run says when its workers have been forked (the batch then imports pandas meanwhile, which
    the workers must not inherit half done), once, before the first outcome; never for no job."""
    events: list[str] = []
    pids = []
    for outcome in run_isolated(_worker_pid, list(range(5)), workers=2, on_started=lambda: events.append("started"),
                                chunk=2):
        events.append("outcome")
        pids.append(outcome.value)
    assert events == ["started"] + ["outcome"] * 5
    assert os.getpid() not in pids
    assert list(run_isolated(_worker_pid, [], on_started=lambda: events.append("again"))) == [] and "again" not in events


def _square(n: int) -> int:
    return n * n


@pytest.mark.parametrize(("jobs", "workers", "sent"), [(5, 2, 5), (320, 2, 20), (1000, 2, 63), (320, 1, 20)])
def test_a_large_run_goes_to_the_workers_in_chunks(jobs: int, workers: int, sent: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's round trip through the pool costs the parent as much as reading a small workbook, so a
    large run sends up to 16 jobs at a time and a small one one by one (each worker still gets several
    chunks); the outcomes are the jobs' own, in order, either way."""
    submitted: list[int] = []
    submit = workers_module._Pool.submit

    def counted(self: Any, func: Any, index: int, part: tuple[Any, ...], *args: Any, **kwargs: Any) -> Any:
        submitted.append(len(part))
        return submit(self, func, index, part, *args, **kwargs)

    monkeypatch.setattr(workers_module._Pool, "submit", counted)
    outcomes = list(run_isolated(_square, list(range(jobs)), workers=workers))
    assert [(o.index, o.value) for o in outcomes] == [(n, n * n) for n in range(jobs)]
    assert len(submitted) == sent and sum(submitted) == jobs and max(submitted) <= 16


class _NoWayBack(Exception):
    """An exception that pickles in the worker but cannot be unpickled in the parent (two required
    arguments): pebble gives up on the whole pool when such a result arrives."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"{a}-{b}")


def _pool_breaker(kind: str) -> str:
    if kind == "no-way-back":
        raise _NoWayBack(1, 2)
    if kind == "hang":
        hang_forever()
    return kind


@pytest.mark.parametrize("chunk", [1, 4, 16])
def test_a_job_that_breaks_the_pool_or_hangs_in_a_chunk_costs_only_itself(chunk: int) -> None:
    """A result that cannot come back breaks pebble's pool and every job in flight with it: the jobs are
    sent again, and one caught in two broken pools is run alone, so only the job that breaks pools alone
    is counted as crashed. A job that hangs inside a chunk stops the chunk: its jobs run again one by one."""
    jobs = [f"j{i}" for i in range(60)]
    jobs[5] = jobs[33] = "no-way-back"
    jobs[47] = "hang"
    outcomes = list(run_isolated(_pool_breaker, jobs, workers=2, timeout=0.5, memory_limit=None, chunk=chunk))
    assert [o.index for o in outcomes] == list(range(len(jobs)))
    failed = {o.index: o.failure for o in outcomes if not o.ok}
    assert failed == {5: "crashed", 33: "crashed", 47: "timeout"}
    assert all(o.value == jobs[o.index] for o in outcomes if o.ok)


def _slow_start(*args: Any) -> None:
    time.sleep(0.4)  # a worker pebble starts to replace a dead one is still starting when the run ends
    _INIT_WORKER(*args)


_INIT_WORKER = workers_module._init_worker


def test_a_run_whose_last_worker_died_ends_cleanly_and_leaves_no_folder(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """When a worker dies pebble starts another, which creates its file in the run's folder for workers'
    error output: a run ending just then waits for its workers before removing the folder, and never
    fails for it (once it did: "Directory not empty" ended a whole convert)."""
    import multiprocessing
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(workers_module, "_init_worker", _slow_start)
    before = set(multiprocessing.active_children())
    outcomes = list(run_isolated(_job, ["abort", "a"], workers=2, timeout=5, memory_limit=None))
    assert [o.failure for o in outcomes] == ["crashed", None]
    assert not [p for p in multiprocessing.active_children() if p not in before]  # no worker still starting
    assert not list(tmp_path.glob("disclosure-workers-*"))


def test_a_worker_file_made_while_the_folder_is_removed_leaves_no_folder(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker forked with the pool but started only after the others did every job creates its file in
    the run's folder just as the folder is being removed, and the removal fails ("Directory not empty"):
    the run removes it again rather than leaving it behind (19 such folders were left in /tmp in a day)."""
    import errno
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    real = shutil.rmtree
    late: list[str] = []

    def rmtree_as_a_late_worker_starts(path: Any, *args: Any, **kwargs: Any) -> None:
        if not late and Path(path).name.startswith("disclosure-workers-"):
            late.append(str(path))
            (Path(path) / "99999.err").touch()  # the late worker's file, made mid-removal
            raise OSError(errno.ENOTEMPTY, "Directory not empty", str(path))
        real(path, *args, **kwargs)

    monkeypatch.setattr(shutil, "rmtree", rmtree_as_a_late_worker_starts)
    outcomes = list(run_isolated(_job, ["a", "b"], workers=2, timeout=5, memory_limit=None))
    assert [o.value for o in outcomes] == ["a", "b"] and late
    assert not list(tmp_path.glob("disclosure-workers-*"))


def _slow_once(job: tuple[str, float]) -> str:
    path, seconds = job
    time.sleep(seconds)
    with open(path, "a", encoding="utf-8") as f:  # one line each time the job runs
        f.write("ran\n")
    return path


def test_slow_jobs_together_in_a_chunk_are_not_stopped_for_it(tmp_path: Path) -> None:
    """Seven jobs of 0.2 s each take 1.4 s together, more than one job's timeout of 1 s: the chunk may run
    1 s and a sixth of it for each further job (2 s), so none is stopped and run again (0.6 s to spare on
    a machine that stalls now and then)."""
    jobs = [(str(tmp_path / f"{i}.txt"), 0.2) for i in range(7)]
    outcomes = list(run_isolated(_slow_once, jobs, workers=1, timeout=1, memory_limit=None, chunk=7))
    assert all(o.ok for o in outcomes)
    assert [Path(p).read_text("utf-8") for p, _ in jobs] == ["ran\n"] * len(jobs)  # each ran once: never redone
