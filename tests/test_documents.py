"""Published reports as input: .docx, HTML, the seed's text form and PDF read like a workbook.

The documents are written here as offices and portals write them: the official tables (from the
layout's merged boxes) as python-docx tables with merged cells, and as HTML with rowspan/colspan,
&nbsp; padding, <br> in header cells and a table split over two <table> elements; then read back.
"""

from __future__ import annotations

import html
import json
import random
import socket
import threading
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import docx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from disclosure_xlsx import documents as documents_module
from disclosure_xlsx import limits as limits_module
from disclosure_xlsx.cli import app
from disclosure_xlsx.documents import SUFFIXES, read_document
from disclosure_xlsx.formats import Format, get_format
from disclosure_xlsx.layout import layout_for
from disclosure_xlsx.locate import fold
from disclosure_xlsx.pipeline import EXTENSIONS, check_file, discover, validate_paths
from disclosure_xlsx.catalog import DisclosureError as Unreadable
from disclosure_xlsx.read import read_workbook
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES, SHARED, needs_soffice

SEED_TEXT = SHARED / "seed" / "000_f10c6ced2bff11ee.txt"
SEED_WORKBOOK = SAMPLES / "2020_宁海县力洋镇人民政府.xlsx"
EXAMPLES = sorted((SHARED / "examples").glob("*.json"))
OFFICE = "示例县示例镇人民政府"
TEXTS = {"text_overview": "本年度认真贯彻落实《条例》。\n（一）主动公开\n及时公开各类信息。",
         "text_problems": "存在的问题：公开内容有待充实。\n改进措施：加强培训。",
         "text_other": "本年度未收取信息处理费。"}


# ----------------------------------------------------------------------------------------------
# Writing documents as offices and portals do


@dataclass(frozen=True)
class Piece:
    """One cell of a published table: its text and the grid area it covers (0-based, inclusive)."""

    row: int
    col: int
    last_row: int
    last_col: int
    text: str
    header: bool = False


def section_pieces(fmt: Format, key: str, printed: dict[str, str], relabel: dict[str, str]) -> list[Piece]:
    """The official table of a section (the layout's labels and value cells), as pieces from (0, 0)."""
    sheet = layout_for(fmt.id).sheet(key)
    pieces = [Piece(b.row, b.col, b.last_row, b.last_col, relabel.get(b.text, b.text), b.style != "label")
              for b in sheet.boxes if b.style not in ("title", "unit", "check_label")]
    pieces += [Piece(s.row, s.col, s.row, s.last_col, printed.get(s.key, "")) for s in sheet.slots]
    top, left = min(p.row for p in pieces), min(p.col for p in pieces)
    return [Piece(p.row - top, p.col - left, p.last_row - top, p.last_col - left, p.text, p.header) for p in pieces]


def printed_values(fmt: Format, values: dict[str, object]) -> dict[str, str]:
    """Numbers as a report prints them: money with 万元 where the header does not state the unit."""
    out = {}
    for cid, cell in fmt.cells.items():
        value = values.get(cid)
        if value is None:
            out[cid] = ""
            continue
        shown = str(int(value)) if float(value).is_integer() else str(value)  # type: ignore[arg-type]
        out[cid] = shown + ("万元" if cell.type.unit and not cell.unit_in_header else "")
    return out


def grid_rows(pieces: list[Piece], start: int, stop: int) -> list[list[Piece]]:
    """The rows start..stop-1 of a table as cells to emit: a piece where it starts (its rows clipped
    to the part), an empty continuation where a piece from an earlier part reaches in, blanks elsewhere."""
    width = max(p.last_col for p in pieces) + 1
    rows = []
    for r in range(start, stop):
        row: list[Piece] = []
        c = 0
        while c < width:
            piece = next((p for p in pieces if p.col == c and p.row <= r <= p.last_row), None)
            if piece is None:
                row.append(Piece(r, c, r, c, ""))
                c += 1
                continue
            if piece.row == r or r == start:
                text = piece.text if piece.row == r else ""
                row.append(Piece(r, c, min(piece.last_row, stop - 1), piece.last_col, text, piece.header))
            c = piece.last_col + 1
        rows.append(row)
    return rows


def html_table(pieces: list[Piece], start: int, stop: int, noise: random.Random) -> str:
    out = ['<table border="1" cellspacing="0" cellpadding="0" style="border-collapse:collapse"><tbody>']
    for row in grid_rows(pieces, start, stop):
        out.append("<tr>")
        for p in row:
            spans = "".join(f' {a}="{n}"' for a, n in (("rowspan", p.last_row - p.row + 1),
                                                         ("colspan", p.last_col - p.col + 1)) if n > 1)
            text = html.escape(p.text)
            if p.header and len(p.text) > 5:  # portals print long headers on two lines
                cut = noise.randint(2, len(p.text) - 2)
                text = f"{html.escape(p.text[:cut])}<br/>{html.escape(p.text[cut:])}"
            elif not p.header and p.text and noise.random() < 0.4:
                text = "&nbsp;" + text if noise.random() < 0.5 else text + "&nbsp;"
            out.append(f'<td{spans} valign="center"><p align="center"><span style="font-size:10.5pt">'
                       f"{text}</span></p></td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def report_parts(fmt: Format, printed: dict[str, str], relabel: dict[str, str] | None = None):
    """(section heading, pieces, number of rows, split row or None) for each table section."""
    for section in fmt.sections:
        pieces = section_pieces(fmt, section.key, printed, relabel or {})
        rows = max(p.last_row for p in pieces) + 1
        split = rows - 6 if section.layout == "grid" and rows > 12 else None  # section 三 in two tables
        yield section.heading, pieces, rows, split


def write_html(path: Path, fmt: Format, printed: dict[str, str], *, title: str, texts: dict[str, str],
               preamble: str = "", relabel: dict[str, str] | None = None, seed: int = 0) -> Path:
    """A report page as a portal publishes it: menus and a footer around the article, a script,
    the title above the content, headings in <strong>, the tables with merged cells."""
    noise = random.Random(seed)
    narrative = {n.name: n for n in fmt.narratives}
    body = [f"<p><strong>{narrative['text_overview'].heading}</strong></p>"]
    body += [f"<p>&nbsp;&nbsp;{html.escape(line)}</p>" for line in texts["text_overview"].split("\n")]
    for heading, pieces, rows, split in report_parts(fmt, printed, relabel):
        body.append(f"<p><strong>{html.escape(heading)}</strong></p>")
        if split:
            body += [html_table(pieces, 0, split, noise), "<p>&nbsp;</p>", html_table(pieces, split, rows, noise)]
        else:
            body.append(html_table(pieces, 0, rows, noise))
    for name in ("text_problems", "text_other"):
        body.append(f"<h3>{narrative[name].heading}</h3>")
        body.append("<p>" + "<br>".join(html.escape(line) for line in texts[name].split("\n")) + "</p>")
    page = f"""<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<title>{html.escape(title)}_示例县人民政府门户网站</title><script>document.write("二、主动公开政府信息情况")</script>
<style>td {{ border: 1px solid #000 }}</style></head><body>
<div class="nav"><a href="/">首页</a> &gt; <a href="/xxgk">政府信息公开</a> &gt; 政府信息公开工作年度报告</div>
<div class="article"><h1 class="title">{html.escape(title)}</h1><div class="info">发布日期：2021-01-20</div>
<div class="content"><p>{html.escape(preamble)}</p>{"".join(body)}</div></div>
<div class="footer">主办：示例县人民政府办公室 电话：0000-00000000 网站标识码：0000000000</div></body></html>"""
    path.write_text(page, "utf-8")
    return path


def write_docx(path: Path, fmt: Format, printed: dict[str, str], *, title: str, texts: dict[str, str],
               preamble: str = "", relabel: dict[str, str] | None = None, split: bool = True) -> Path:
    """A report as an office writes it in Word: tables with merged cells (gridSpan, vMerge)."""
    document = docx.Document()
    document.add_paragraph(title)
    if preamble:
        document.add_paragraph(preamble)
    narrative = {n.name: n for n in fmt.narratives}
    document.add_paragraph(narrative["text_overview"].heading)
    for line in texts["text_overview"].split("\n"):
        document.add_paragraph(line)
    for heading, pieces, rows, at in report_parts(fmt, printed, relabel):
        document.add_paragraph(heading)
        parts = [(0, at), (at, rows)] if at and split else [(0, rows)]
        for number, (start, stop) in enumerate(parts):
            if number:
                document.add_paragraph("")
            add_merged_table(document, pieces, start, stop)
    for name in ("text_problems", "text_other"):
        document.add_paragraph(narrative[name].heading)
        for line in texts[name].split("\n"):
            document.add_paragraph(line)
    document.save(str(path))
    return path


def add_merged_table(document: object, pieces: list[Piece], start: int, stop: int) -> None:
    """A table as Word stores merged cells: one w:tc per cell with w:gridSpan for its columns and
    w:vMerge restart/continue down its rows (what python-docx's merge writes, without its slow lookups)."""
    from docx.table import _Cell

    width = max(p.last_col for p in pieces) + 1
    table = document.add_table(rows=stop - start, cols=width)  # type: ignore[attr-defined]
    table.style = "Table Grid"
    cover = {(r, p.col): p for row in grid_rows(pieces, start, stop) for p in row
             for r in range(p.row, p.last_row + 1)}
    for r, tr in zip(range(start, stop), table._tbl.tr_lst, strict=True):
        for c, tc in enumerate(list(tr.tc_lst)):
            piece = cover.get((r, c))
            if piece is None:  # a column inside a wider cell of this row: no w:tc of its own
                tr.remove(tc)
                continue
            tc.grid_span = piece.last_col - piece.col + 1
            if piece.last_row > piece.row:
                tc.vMerge = "restart" if r == piece.row else "continue"
            if r == piece.row:
                _Cell(tc, table).text = piece.text


def write_txt(path: Path, fmt: Format, printed: dict[str, str], *, title: str, texts: dict[str, str],
              preamble: str = "", encoding: str = "utf-8") -> Path:
    """A report in the seed's text form: a line per cell starting with a tab (a cell continuing a
    merged one from above is blank, a cell spanning columns appears once), a blank line after each
    row, a long header broken onto a second line without a tab."""
    narrative = {n.name: n for n in fmt.narratives}
    lines = [title, "", preamble, narrative["text_overview"].heading, *texts["text_overview"].split("\n"), ""]
    for heading, pieces, rows, _ in report_parts(fmt, printed):
        lines.append(heading)
        cover = {(r, p.col): p for row in grid_rows(pieces, 0, rows) for p in row for r in range(p.row, p.last_row + 1)}
        for r in range(rows):
            for c in sorted(c for (rr, c) in cover if rr == r):
                piece = cover[(r, c)]
                text = piece.text if piece.row == r else ""
                if piece.header and len(text) > 6:
                    text = f"{text[:3]}\n{text[3:]}"
                lines.append(f"\t{text}")
            lines.append("")
        lines.append("")
    for name in ("text_problems", "text_other"):
        lines += [narrative[name].heading, *texts[name].split("\n")]
    path.write_bytes("\n".join(lines).encode(encoding))
    return path


def _read(path: Path) -> tuple[str, object, object]:
    checked = check_file(path)
    return checked.file, checked.report, checked.problem


def report_values(format_id: str, seed: int) -> dict[str, object]:
    return dict(balanced_report(format_id, random.Random(seed), zero_share=0.3))


def title_of(fmt: Format, year: int, office: str = OFFICE) -> str:
    return f"{office}{year}年{fmt.words.report_name}"


def essentials(*paths: Path) -> list[tuple]:
    """What must not depend on the kind of file: values, cover, texts, and findings without positions
    (validated as one batch, in which the files are duplicates of one another)."""
    out = []
    for result in validate_paths(paths, workers=1).workbooks:
        report = result.report
        assert report is not None, result.first_error
        findings = sorted((f.code, f.rule, f.expected, f.actual) for f in result.findings
                          if f.code != "duplicate-submission")
        out.append((report.format_id, report.values, report.office, report.year, report.texts, findings))
    return out


# ----------------------------------------------------------------------------------------------
# Round trips


def test_a_report_reads_the_same_from_workbook_docx_html_and_text(tmp_path: Path, format_id: str) -> None:
    """A balanced report and one with a deliberate mistake, each as the four kinds of file, in one batch."""
    fmt = get_format(format_id)
    year = fmt.first_year + 1
    cover = {"meta_office": OFFICE, "meta_year": year, "meta_phone": "0574-12345678", "meta_contact": "本镇党政办"}
    preamble = "如对本报告有任何疑问，请与本镇党政办联系（电话：0574-12345678）。"
    files: list[Path] = []
    variants = []
    for mistake in (False, True):
        values = report_values(format_id, 3)
        if mistake:
            values["s3.granted.total"] += 1  # type: ignore[operator]
        folder = tmp_path / ("mistake" if mistake else "balanced")
        folder.mkdir()
        printed = printed_values(fmt, values)
        kw = {"title": title_of(fmt, year), "texts": TEXTS, "preamble": preamble}
        files += [write_template(folder / "report.xlsx", format_id, values={**values, **cover, **TEXTS}),
                  write_docx(folder / "report.docx", fmt, printed, **kw),  # type: ignore[arg-type]
                  write_html(folder / "report.html", fmt, printed, **kw),  # type: ignore[arg-type]
                  write_txt(folder / "report.txt", fmt, printed, **kw)]  # type: ignore[arg-type]
        variants.append((values, mistake))
    results = essentials(*files)
    for (values, mistake), (expected, *documents) in zip(variants, (results[:4], results[4:]), strict=True):
        assert documents == [expected] * 3  # docx, html, txt: as the workbook
        assert expected[1] == {cid: values[cid] for cid in fmt.cells}
        assert [code for code, *_ in expected[5]] == (["identity-mismatch"] if mistake else [])
    for path in files[1:4]:
        raw = read_workbook(path)
        assert raw.located_by == "document"
        assert raw.raw["meta_phone"] == "0574-12345678"


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), zero_share=st.sampled_from([0.0, 0.5, 1.0]))
def test_any_balanced_report_survives_a_portal_page(tmp_path: Path, format_id: str, seed: int,
                                                    zero_share: float) -> None:
    fmt = get_format(format_id)
    values = dict(balanced_report(format_id, random.Random(seed), zero_share=zero_share))
    page = write_html(tmp_path / f"{seed}.html", fmt, printed_values(fmt, values),
                      title=title_of(fmt, fmt.first_year), texts=TEXTS, seed=seed)
    _, report, problem = _read(page)
    assert problem is None and report.values == {cid: values[cid] for cid in fmt.cells}
    assert report.findings == [] and report.texts["text_other"] == TEXTS["text_other"]


def test_html_tables_resolve_rowspan_colspan_nbsp_and_br(tmp_path: Path) -> None:
    fmt = get_format("2019")
    values = report_values(fmt.id, 8)
    page = write_html(tmp_path / "r.html", fmt, printed_values(fmt, values), title=title_of(fmt, 2020), texts=TEXTS)
    document = read_document(page)
    names = list(document.sheets)
    assert names[0] == "正文" and len(names) == 4  # section 三's two <table> parts are one sheet
    s3 = document.sheets[names[2]]
    assert document.headings[names[2]] == fmt.section("s3").heading
    pieces = section_pieces(fmt, "s3", {}, {})
    assert len(s3) == max(p.last_row for p in pieces) + 1  # every row of the table, once
    header = next(row for row in s3 if "自然人" in row)
    assert header.index("自然人") == 3 and header.index("总计") == 9  # on the grid of the data columns
    assert any(isinstance(v, str) and "\n" in v for row in document.sheets[names[1]] for v in row)  # <br>
    text = document.sheets["正文"]
    assert text[0] == [title_of(fmt, 2020)]
    assert "网站标识码" not in json.dumps(text, ensure_ascii=False)  # the portal's footer is not narrative


def test_old_portal_pages_and_text_copies_in_other_encodings(tmp_path: Path) -> None:
    """A GB2312 page whose article sits in a layout table beside the menu; text copies saved as
    GBK and as Notepad's UTF-16."""
    fmt = get_format("2021")
    values = report_values(fmt.id, 9)
    printed = printed_values(fmt, values)
    page = write_html(tmp_path / "r.htm", fmt, printed, title=title_of(fmt, 2022), texts=TEXTS)
    markup = page.read_text("utf-8").replace("charset=utf-8", "charset=gb2312")
    markup = markup.replace('<div class="article">', '<table width="100%"><tr><td class="menu"><p>机构概况</p>'
                            '<p>政策文件</p></td><td><div class="article">').replace(
        '<div class="footer">', '</td></tr></table><div class="footer">')
    page.write_bytes(markup.encode("gb2312"))
    copies = [write_txt(tmp_path / f"{enc}.txt", fmt, printed, title=title_of(fmt, 2022), texts=TEXTS, encoding=enc)
              for enc in ("gbk", "utf-16")]
    for path in (page, *copies):
        _, report, problem = _read(path)
        assert problem is None and report.findings == [], path.name
        assert report.values == {cid: values[cid] for cid in fmt.cells} and report.office == OFFICE
        assert report.texts["text_overview"] == TEXTS["text_overview"]


# ----------------------------------------------------------------------------------------------
# The seed report (its text copy) and the published examples


def test_the_seed_text_reads_to_its_published_values() -> None:
    if not SEED_TEXT.exists():
        pytest.skip("../shared/seed is not beside this checkout")
    _, seed, problem = _read(SEED_TEXT)
    _, sample, _ = _read(SEED_WORKBOOK)
    assert problem is None and seed.located_by == "document" and seed.format_id == "2019"
    assert seed.values == sample.values and all(v is not None for v in seed.values.values())
    assert seed.values["s2.procurement.amount"] == 1207.5
    assert seed.values["s2.other_services.decisions"] == 6220 and seed.values["s3.total.total"] == 5
    assert (seed.office, seed.year) == ("宁海县力洋镇人民政府", 2020)
    assert seed.texts == sample.texts  # contact, phone, fax, e-mail, address, postcode and 一、五、六
    quirks = [f for f in seed.findings if f.code == "label-variant"]
    assert [f.params["found"] for f in quirks] == ["行政事业型收费"]
    assert [f.code for f in seed.findings if f not in quirks] == [f.code for f in sample.findings] == []
    raw = {(c.id, c.raw, c.value, c.rule) for c in seed.cleaning}
    assert ("s2.procurement.amount", "1207.5万元", 1207.5, "unit-wanyuan+text-to-number") in raw
    assert raw >= {(c.id, c.raw, c.value, c.rule) for c in sample.cleaning}


def _example(path: Path) -> tuple[Format, dict[str, str], dict[str, str], dict[str, float | None]]:
    """An example's tables as (format, raw cell strings by cell id, official label → printed label,
    expected values by cell id), lining its rows and columns up with the format's in printed order."""
    data = json.loads(path.read_text("utf-8"))
    fmt = get_format(data["format"])
    raw: dict[str, str] = {}
    relabel: dict[str, str] = {}
    expected: dict[str, float | None] = {}

    def put(section_heading: str, cid: str, row_key: str, col_label: str, value: object) -> None:
        text = data["raw"].get(f"{section_heading} / {row_key} | {col_label}")
        if text is None:
            text = "" if value is None else (str(int(value)) if float(value).is_integer() else str(value))
        raw[cid] = text
        if value is not None and text.strip().endswith("元") and not text.strip().endswith("万元"):
            value = value / 10000  # printed in 元: read as 万元
        expected[cid] = value

    def rename(official: str, printed: str) -> None:
        assert relabel.setdefault(official, printed) == printed, (official, printed)

    for section in fmt.sections:
        table = data["tables"][section.heading]
        if section.layout == "blocks":
            nodes = [(b, r) for b in section.blocks for r in section.rows if r.block == b.key]
            for (block, node), (key, cols) in zip(nodes, table.items(), strict=True):
                caption, label = key.split(" / ")
                rename(block.caption, caption)
                rename(node.label, label)
                columns = [c for c in section.columns if block.key in c.blocks]
                for col, (col_label, value) in zip(columns, cols.items(), strict=True):
                    rename(col.label, col_label)
                    put(section.heading, section.cell_id.format(row=node.key, col=col.key), key, col_label, value)
        elif section.leaves("rows"):
            for leaf, (key, cols) in zip(section.leaves("rows"), table.items(), strict=True):
                for node, label in zip(section.path("rows", leaf.key), key.split(" / "), strict=True):
                    rename(node.label, label)
                for col, (col_label, value) in zip(section.leaves("columns"), cols.items(), strict=True):
                    rename(col.label, col_label)
                    put(section.heading, section.cell_id.format(row=leaf.key, col=col.key), key, col_label, value)
        else:
            groups = [n for n in section.columns if n.group and section.children("columns", n.key)
                      and not section.children("columns", n.key)[0].group]
            for group, (key, cols) in zip(groups, table.items(), strict=True):
                for node, label in zip(section.path("columns", group.key), key.split(" / "), strict=True):
                    rename(node.label, label)
                for leaf, (col_label, value) in zip(section.leaves("columns", group.key), cols.items(), strict=True):
                    put(section.heading, section.cell_id.format(col=leaf.key), key, col_label, value)
    assert set(raw) == set(fmt.cells)
    return fmt, raw, relabel, expected


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("kind", ["html", "docx"])
def test_published_examples_read_back_to_their_transcribed_values(tmp_path: Path, example: Path, kind: str) -> None:
    fmt, raw, relabel, expected = _example(example)
    data = json.loads(example.read_text("utf-8"))
    title = title_of(fmt, data["year"], data["office"] or "")
    write = write_html if kind == "html" else write_docx
    path = write(tmp_path / f"{example.stem}.{kind}", fmt, raw, title=title, texts=TEXTS, relabel=relabel)
    _, report, problem = _read(path)
    assert problem is None
    assert report.format_id == fmt.id and report.year == data["year"] and report.office == data["office"]
    assert report.values == pytest.approx(expected)
    assert not [f for f in report.findings if f.severity == "error"]
    codes = {f.code for f in report.findings}
    assert codes <= {"blank-cell", "label-variant", "office-missing"}
    variants = {f.params["found"] for f in report.findings if f.code == "label-variant"}
    assert variants == {printed for official, printed in relabel.items() if fold(printed) != fold(official)}
    blanks = {f.cells[0].id for f in report.findings if f.code == "blank-cell"}
    assert blanks == {cid for cid, value in expected.items() if value is None}  # cells the page did not show


# ----------------------------------------------------------------------------------------------
# Every command takes published reports


def test_every_document_suffix_is_searched_for_but_text_only_when_named(tmp_path: Path) -> None:
    """A folder holds notes too: a .txt is read only when named; every other document kind is searched."""
    assert set(SUFFIXES) <= set(EXTENSIONS)
    for suffix in SUFFIXES:
        (tmp_path / f"r{suffix}").write_text("-", "utf-8")
    (tmp_path / "~$r.docx").write_text("-", "utf-8")
    assert sorted(p.name for p in discover([tmp_path])) == sorted(f"r{s}" for s in SUFFIXES if s != ".txt")
    assert [p.name for p in discover([tmp_path / "r.txt"])] == ["r.txt"]


def test_convert_writes_the_standard_workbook_of_a_published_report(tmp_path: Path) -> None:
    if not SEED_TEXT.exists():
        pytest.skip("../shared/seed is not beside this checkout")
    fmt = get_format("2021")
    values = report_values(fmt.id, 11)
    page = write_html(tmp_path / "r.html", fmt, printed_values(fmt, values), title=title_of(fmt, 2022), texts=TEXTS)
    result = CliRunner().invoke(app, ["convert", str(SEED_TEXT), str(page), "--out", str(tmp_path / "out"),
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    seed_out = tmp_path / "out" / "宁海县力洋镇人民政府_2020.xlsx"
    cleaned = read_workbook(seed_out)
    assert cleaned.located_by == "names"
    _, again, _ = _read(seed_out)
    _, sample, _ = _read(SEED_WORKBOOK)
    assert again.values == sample.values and again.texts == sample.texts and again.findings == []
    _, other, _ = _read(tmp_path / "out" / f"{OFFICE}_2022.xlsx")
    assert other.values == {cid: values[cid] for cid in fmt.cells}


def test_validate_reports_a_published_report_like_a_workbook(tmp_path: Path) -> None:
    fmt = get_format("2019")
    values = report_values(fmt.id, 4)
    values["s3.new.total"] += 2  # type: ignore[operator]
    write_docx(tmp_path / "年报.docx", fmt, printed_values(fmt, values), title=title_of(fmt, 2020), texts=TEXTS)
    result = CliRunner().invoke(app, ["validate", str(tmp_path), "--json", "--workers", "1"])
    assert result.exit_code == 1
    (entry,) = json.loads(result.output)["workbooks"]
    assert (entry["located_by"], entry["format"], entry["office"], entry["year"]) == ("document", "2019", OFFICE, 2020)
    assert [f["code"] for f in entry["findings"]] == ["identity-mismatch"]
    assert entry["findings"][0]["cells"][0]["sheet"] == "表2"


@needs_soffice
def test_a_pdf_exported_by_libreoffice_reads_back(tmp_path: Path, soffice) -> None:
    fmt = get_format("2021")
    values = report_values(fmt.id, 21)
    word = write_docx(tmp_path / "年报.docx", fmt, printed_values(fmt, values), title=title_of(fmt, 2023),
                      texts=TEXTS, split=False)
    (pdf,) = soffice([word], "pdf", tmp_path / "pdf")
    _, report, problem = _read(pdf)
    assert problem is None, problem.message("zh")
    assert report.located_by == "document" and (report.office, report.year) == (OFFICE, 2023)
    assert report.values == {cid: values[cid] for cid in fmt.cells}
    assert report.findings == []
    assert report.texts["text_other"] == TEXTS["text_other"]
    secret = '{"EncryptFile":{"type":"boolean","value":"true"},"DocumentOpenPassword":{"type":"string","value":"x"}}'
    (locked,) = soffice([word], f"pdf:writer_pdf_Export:{secret}", tmp_path / "locked")
    with pytest.raises(Unreadable) as caught:
        read_workbook(locked)
    assert caught.value.finding.code == "file-unreadable" and "密码" in caught.value.finding.message("zh")


def test_word_titles_on_two_lines_numbered_headings_and_content_controls(tmp_path: Path) -> None:
    from docx.oxml import OxmlElement

    fmt = get_format("2019")
    values = report_values(fmt.id, 12)
    word = write_docx(tmp_path / "r.docx", fmt, printed_values(fmt, values), title=f"{fmt.first_year + 1}年"
                      f"{fmt.words.report_name}", texts=TEXTS)
    document = docx.Document(str(word))
    document.paragraphs[0].insert_paragraph_before(OFFICE)  # the office on a line of its own above
    for paragraph in document.paragraphs:  # headings numbered by Word itself: 一、 is not in their text
        if paragraph.text in [n.heading for n in fmt.narratives] + [x.heading for x in fmt.sections]:
            paragraph.text = paragraph.text[2:]
            paragraph.style = document.styles["List Number"]
    table = document.tables[1]._tbl
    sdt, content = OxmlElement("w:sdt"), OxmlElement("w:sdtContent")
    table.addprevious(sdt)
    sdt.append(content)
    content.append(table)  # the table moves into a content control
    document.save(str(word))
    _, report, problem = _read(word)
    assert problem is None and (report.office, report.year) == (OFFICE, fmt.first_year + 1)
    assert report.values == {cid: values[cid] for cid in fmt.cells} and report.findings == []
    assert report.texts["text_problems"] == TEXTS["text_problems"]


# ----------------------------------------------------------------------------------------------
# Bad input


def _code(path: Path) -> str:
    with pytest.raises(Unreadable) as caught:
        read_workbook(path)
    return caught.value.finding.code


def test_documents_without_report_tables_are_not_reports(tmp_path: Path) -> None:
    word = docx.Document()
    word.add_paragraph(title_of(get_format("2021"), 2022))
    table = word.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "项目"
    word.save(str(tmp_path / "letter.docx"))
    (tmp_path / "page.html").write_text("<html><body><p>通知</p><table><tr><td>1</td></tr></table></body></html>")
    (tmp_path / "notes.txt").write_text("请于月底前报送。\n", "utf-8")
    for name in ("letter.docx", "page.html", "notes.txt"):
        assert _code(tmp_path / name) == "not-a-report", name


def test_damaged_documents_are_unreadable(tmp_path: Path) -> None:
    fmt = get_format("2021")
    word = write_docx(tmp_path / "ok.docx", fmt, printed_values(fmt, report_values(fmt.id, 1)),
                      title=title_of(fmt, 2022), texts=TEXTS)
    data = word.read_bytes()
    (tmp_path / "cut.docx").write_bytes(data[: len(data) // 2])
    (tmp_path / "renamed.docx").write_text("这不是 Word 文件", "utf-8")
    with zipfile.ZipFile(tmp_path / "no-document.docx", "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    (tmp_path / "cut.pdf").write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")
    (tmp_path / "empty.pdf").write_bytes(b"")
    for name in ("cut.docx", "renamed.docx", "no-document.docx", "cut.pdf", "empty.pdf"):
        assert _code(tmp_path / name) == "file-unreadable", name
    with pytest.raises(Unreadable) as caught:
        read_workbook(tmp_path / "renamed.docx")
    assert ".docx" in caught.value.finding.message("zh")


def test_a_scanned_pdf_is_one_clear_finding(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (595, 842), "white").save(tmp_path / "scan.pdf")
    with pytest.raises(Unreadable) as caught:
        read_workbook(tmp_path / "scan.pdf")
    assert caught.value.finding.code == "document-no-text"
    assert "扫描件" in caught.value.finding.message("zh") and "scan" in caught.value.finding.message("en")


def test_a_table_that_does_not_fit_names_the_table_and_its_labels(tmp_path: Path) -> None:
    fmt = get_format("2021")
    relabel = {"1.属于国家秘密": "1.涉及国家机密事项", "2.重复申请": "2.多次重复提出的申请"}
    page = write_html(tmp_path / "r.html", fmt, printed_values(fmt, report_values(fmt.id, 2)),
                      title=title_of(fmt, 2022), texts=TEXTS, relabel=relabel)
    _, report, _ = _read(page)
    (table,) = [f for f in report.findings if f.code == "table-unaligned"]
    message = table.message("zh")
    assert "第 2 个表格（三、收到和处理政府信息公开申请情况）" in message
    assert "“1.涉及国家机密事项”、“2.多次重复提出的申请”" in message
    assert "Table 2" in table.message("en")
    missing = {f.params["label"] for f in report.findings if f.code == "cell-not-found"}
    assert missing == {"1.属于国家秘密", "2.重复申请"}
    assert report.values["s3.denied_secret.total"] is None


def test_limits_of_workbooks_apply_to_documents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fmt = get_format("2021")
    word = write_docx(tmp_path / "r.docx", fmt, printed_values(fmt, report_values(fmt.id, 1)),
                      title=title_of(fmt, 2022), texts=TEXTS)
    monkeypatch.setattr(limits_module, "MAX_UNZIPPED_BYTES", 1000)  # a .docx is a zip: the zip-bomb check
    assert _code(word) == "file-too-large"
    monkeypatch.undo()
    with zipfile.ZipFile(tmp_path / "bomb.docx", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document>" + b" " * (21 * 2**20))  # 21 MiB of XML, 20 KB zipped
    assert _code(tmp_path / "bomb.docx") == "file-too-large"
    (tmp_path / "wide.html").write_text('<table><tr><td colspan="100000">一、总体情况</td></tr></table>', "utf-8")
    assert _code(tmp_path / "wide.html") == "file-too-large"
    bomb = zlib.compress(b"\0" * (3 * 2**20))  # a PDF stream inflating to 3 MiB, refused beyond 2 MiB
    head = f"%PDF-1.4\n1 0 obj\n<< /Length {len(bomb)} /Filter /FlateDecode >>\nstream\n".encode()
    (tmp_path / "bomb.pdf").write_bytes(head + bomb + b"\nendstream\nendobj\n%%EOF\n")
    monkeypatch.setattr(documents_module, "MAX_PDF_INFLATED_BYTES", 2 * 2**20)
    assert _code(tmp_path / "bomb.pdf") == "file-too-large"
    monkeypatch.setattr(limits_module, "MAX_FILE_BYTES", 100)
    assert _code(SEED_TEXT if SEED_TEXT.exists() else word) == "file-too-large"


def test_html_is_read_without_fetching_or_executing_anything(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    contacted: list[object] = []

    def watch() -> None:
        try:
            contacted.append(server.accept())
        except OSError:
            pass

    watcher = threading.Thread(target=watch)
    watcher.start()
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-CONTENT", "utf-8")
    fmt = get_format("2021")
    values = report_values(fmt.id, 6)
    page = write_html(tmp_path / "r.html", fmt, printed_values(fmt, values), title=title_of(fmt, 2022), texts=TEXTS)
    url = f"http://127.0.0.1:{port}/x"
    hostile = page.read_text("utf-8").replace("<!DOCTYPE html>", f"""<!DOCTYPE html [
<!ENTITY leak SYSTEM "{secret.as_uri()}"><!ENTITY remote SYSTEM "{url}">]>""").replace(
        "<body>", f'<body><img src="{url}"><link rel="stylesheet" href="{url}"><iframe src="{url}"></iframe>'
                  f'<script src="{url}"></script><p>&leak;&remote;</p><script>alert("三、本年度办理结果")</script>')
    page.write_text(hostile, "utf-8")
    document = read_document(page)
    _, report, problem = _read(page)
    watcher.join()
    server.close()
    assert contacted == []
    assert "SECRET-CONTENT" not in json.dumps(document.sheets, ensure_ascii=False)
    assert "alert" not in json.dumps(document.sheets, ensure_ascii=False)
    assert problem is None and report.values == {cid: values[cid] for cid in fmt.cells}
