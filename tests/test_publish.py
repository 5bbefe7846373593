"""The published annual report: .docx and .html written to disk and read again (python-docx, lxml,
html.parser, LibreOffice → PDF → pdftotext), compared with the workbook it came from."""

from __future__ import annotations

import ast
import html.parser
import json
import random
import re
import shutil
import string
import subprocess
import tomllib
import zipfile
from pathlib import Path

import docx
import lxml.html
import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import disclosure_xlsx
from disclosure_xlsx.aggregate import ROLLUP_PROPERTY, aggregate_paths
from disclosure_xlsx.cli import app
from disclosure_xlsx.formats import Format, Section, get_format
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.publish import Rollup, build_document, clean_text, propose_overview, publish_paths, read_rollup
from disclosure_xlsx.render import render_html, typography, write_docx
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES, defined_cells

PACKAGE = Path(disclosure_xlsx.__file__).parent
SEED = SAMPLES / "2020_宁海县力洋镇人民政府.xlsx"
CLEAN_2021 = SAMPLES / "2024_示例县审计局.xlsx"
NUMERALS = "一二三四五六"
W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
HOSTILE_LINES = ["<script>alert('x')</script>", "=cmd|' /C calc'!A0", "<img src=x onerror=alert(1)>",
                 '=HYPERLINK("http://evil.example","点我")']
HOSTILE = "\n".join(HOSTILE_LINES) + "\n响\x07铃\u202e反转"
HOSTILE_OFFICE = "示例镇<b>人民政府</b>"


def _workbook(path: Path, format_id: str, seed: int = 7, **values: object) -> Path:
    fmt = get_format(format_id)
    cover = {"meta_office": "示例镇人民政府", "meta_year": fmt.first_year, "meta_credit_code": "11330200MB0000000X",
             "meta_contact": "党政办", "meta_phone": "0574-1234567", "meta_email": "xxgk@example.gov.cn",
             "text_overview": "本年度工作有序开展。", "text_problems": "（一）存在问题\n公开内容有待充实。",
             "text_other": "无。"}
    data = {**balanced_report(format_id, random.Random(seed), zero_share=0.3), **cover, **values}
    return write_template(path, format_id, values={k: v for k, v in data.items() if v is not None})


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory):
    """One publish run over: the two clean samples, a hostile workbook per format, two with errors (--draft)."""
    work = tmp_path_factory.mktemp("publish")
    inputs = work / "in"
    inputs.mkdir()
    for sample in (SEED, CLEAN_2021, SAMPLES / "2024_2021格式_I2错误.xlsx", SAMPLES / "2020_2019格式_I3错误.xlsx"):
        shutil.copy(sample, inputs / sample.name)
    for format_id in ("2019", "2021"):
        _workbook(inputs / f"hostile_{format_id}.xlsx", format_id, meta_office=HOSTILE_OFFICE + format_id,
                  text_overview=HOSTILE, text_problems=HOSTILE, meta_contact=HOSTILE_LINES[0],
                  meta_phone=HOSTILE_LINES[1], meta_email=HOSTILE_LINES[2])
    result, done = publish_paths([inputs], work / "out", draft=True, workers=1)
    return {Path(d.source.file).stem: d for d in done}, work


def _item(batch, stem: str):
    return batch[0][stem]


def _workbook_values(path: Path, fmt: Format) -> dict[str, object]:
    """The cells as the workbook holds them, read by defined name with openpyxl (not with the tool's reader)."""
    wb = openpyxl.load_workbook(path)
    names = defined_cells(wb)
    return {cid: wb[names[cell.name][0]][names[cell.name][1]].value for cid, cell in fmt.cells.items()}


def _shown(cell, raw: object) -> str:
    """How the published table must show a workbook value: the number as written, the unit where the
    column header has none (as in the published report: 1207.5万元)."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        shown = "".join(raw.split())
    elif isinstance(raw, float) and raw.is_integer():
        shown = str(int(raw))
    else:
        shown = str(raw)
    if cell.type.unit and not cell.unit_in_header and not shown.endswith(cell.type.unit):
        shown += cell.type.unit
    return shown


# ------------------------------------------------------------------------------------------------
# Tables read back: a grid of (cell identity, text) per position, then cells found by their labels


def _docx_grid(table) -> tuple[list[list[tuple[object, str]]], int]:
    grid = [[(c._tc, c.text) for c in row.cells] for row in table.rows]  # the element itself: lxml proxies' ids are reused
    header = sum(1 for row in table.rows if row._tr.trPr is not None and row._tr.trPr.find(f"{W}tblHeader") is not None)
    return grid, header


def _html_grid(table) -> tuple[list[list[tuple[object, str]]], int]:
    cells: dict[tuple[int, int], tuple[object, str]] = {}
    rows = table.findall(".//tr")
    for r, tr in enumerate(rows):
        c = 0
        for cell in tr:
            while (r, c) in cells:
                c += 1
            rowspan, colspan = int(cell.get("rowspan", 1)), int(cell.get("colspan", 1))
            for i in range(rowspan):
                for j in range(colspan):
                    cells[(r + i, c + j)] = (cell, cell.text_content())
            c += colspan
    width = 1 + max(c for _, c in cells)
    grid = [[cells[(r, c)] for c in range(width)] for r in range(len(rows))]
    return grid, len(table.findall("./thead/tr"))


def _text(element) -> str:
    return "".join(t.text or "" for t in element.iter(f"{W}t"))


def _path(cells: list[tuple[object, str]]) -> tuple[str, ...]:
    out: list[tuple[object, str]] = []
    for cell in cells:
        if not out or out[-1][0] is not cell[0]:
            out.append(cell)
    return tuple(text for _, text in out)


def _table_values(fmt: Format, section: Section, grid, header_rows: int) -> dict[str, str]:
    """Every value cell of a table read back by its printed row and column labels."""
    by_path = {(c.row_path, c.col_path): c.id for c in fmt.section_cells(section.key)}
    out: dict[str, str] = {}
    if section.layout == "blocks":
        captions = {b.caption for b in section.blocks}
        assert header_rows == 0
        caption = headers = None
        for row in grid:
            if all(e is row[0][0] for e, _ in row) and row[0][1] in captions:
                caption = row[0][1]
            elif row[0][1] == section.row_header:
                headers = row
            else:
                seen = [row[0][0]]
                for c in range(1, len(row)):
                    if not any(row[c][0] is e for e in seen):
                        seen.append(row[c][0])
                        cid = by_path[((caption, row[0][1]), (headers[c][1],))]
                        assert cid not in out
                        out[cid] = row[c][1]
        return out
    labels, depth = section.depth("rows"), section.depth("columns")
    assert header_rows == depth  # the header rows are the ones that repeat
    for r in range(depth, len(grid)):
        row_path = _path(grid[r][:labels])
        seen: list[object] = []
        for c in range(labels, len(grid[r])):
            if not any(grid[r][c][0] is e for e in seen):
                seen.append(grid[r][c][0])
                cid = by_path[(row_path, _path([grid[k][c] for k in range(depth)]))]
                assert cid not in out
                out[cid] = grid[r][c][1]
    return out


# ------------------------------------------------------------------------------------------------
# The Word document


@pytest.mark.parametrize("stem", ["2020_宁海县力洋镇人民政府", "2024_示例县审计局", "hostile_2019", "hostile_2021"])
def test_every_table_value_and_label_is_the_workbooks(batch, stem: str) -> None:
    item = _item(batch, stem)
    fmt = get_format(item.source.report.format_id)
    expected = {cid: _shown(fmt.cells[cid], raw) for cid, raw in _workbook_values(Path(item.source.file), fmt).items()}
    document = docx.Document(item.docx)
    assert len(document.tables) == len(fmt.sections)
    found: dict[str, str] = {}
    for section, table in zip(fmt.sections, document.tables, strict=True):
        found.update(_table_values(fmt, section, *_docx_grid(table)))
    assert found == expected  # every cell id once, labels verbatim (or the lookup fails), values equal
    page = lxml.html.parse(str(item.html)).getroot()
    found = {}
    for section, table in zip(fmt.sections, page.findall(".//table"), strict=True):
        found.update(_table_values(fmt, section, *_html_grid(table)))
    assert found == expected


def test_the_seed_prints_its_money_as_published(batch) -> None:
    document = docx.Document(_item(batch, "2020_宁海县力洋镇人民政府").docx)
    assert "1207.5万元" in [c.text for row in document.tables[0].rows for c in row.cells]


def _expected_headings(fmt: Format) -> list[str]:
    parts = [(n.number, n.heading) for n in fmt.narratives] + [(s.number, s.heading) for s in fmt.sections]
    return [h for _, h in sorted(parts, key=lambda p: NUMERALS.index(p[0]))]


@pytest.mark.parametrize("stem", ["2020_宁海县力洋镇人民政府", "2024_示例县审计局"])
def test_title_preamble_and_headings_in_the_official_order(batch, stem: str) -> None:
    item = _item(batch, stem)
    report = item.source.report
    fmt = get_format(report.format_id)
    document = docx.Document(item.docx)
    paragraphs = document.paragraphs
    assert paragraphs[0].style.name == "Title"
    assert paragraphs[0].text == f"{report.office}{report.year}年政府信息公开工作年度报告"
    assert item.docx.name == f"{report.office}{report.year}年政府信息公开工作年度报告.docx"
    assert item.html.name == f"{report.office}{report.year}年政府信息公开工作年度报告.html"
    headings = [p.text for p in paragraphs if p.style.name == "Heading 1"]
    assert headings == _expected_headings(fmt)
    assert [h[0] for h in headings] == list(NUMERALS)
    preamble = paragraphs[1].text + paragraphs[2].text
    assert preamble.startswith("本报告依据《中华人民共和国政府信息公开条例》")
    assert fmt.notice in preamble
    assert f"统计期限自{report.year}年1月1日起至{report.year}年12月31日止" in preamble
    assert "由总体情况、主动公开政府信息情况、收到和处理政府信息公开申请情况、政府信息公开行政复议、行政诉讼情况、" \
           "存在的主要问题及改进情况、其他需要报告的事项等六个部分组成" in preamble
    for name in ("meta_phone", "meta_email"):
        assert f"{fmt.cover_labels[name]}：{report.texts[name]}" in preamble
    for section, table in zip(fmt.sections, document.tables, strict=True):
        before = table._tbl.getprevious()
        assert _text(before) == section.heading


def test_the_seed_narratives_keep_their_words_and_subheadings(batch) -> None:
    document = docx.Document(_item(batch, "2020_宁海县力洋镇人民政府").docx)
    level2 = [p.text for p in document.paragraphs if p.style.name == "Heading 2"]
    assert level2 == ["（一）主动公开", "（二）依申请公开", "（三）政府信息管理", "（四）公开平台建设", "(5） 监督保障",
                      "(一)存在问题", "(二)改进措施"]
    text = "\n".join(p.text for p in document.paragraphs)
    assert "2020年度我镇在政府网站、政务微信等其他方式公开政府信息数247条。" in text
    assert "本年度没有其他需要报告的事项。" in text
    assert "请与力洋镇党政综合办公室联系（地址：宁海县力洋镇力洋东路15号，邮编：315602，电话：0574—65101613，" in text


@pytest.mark.parametrize("stem", ["2020_宁海县力洋镇人民政府", "2024_示例县审计局"])
def test_merged_multi_level_headers(batch, stem: str) -> None:
    item = _item(batch, stem)
    fmt = get_format(item.source.report.format_id)
    document = docx.Document(item.docx)
    for section, table in zip(fmt.sections, document.tables, strict=True):
        if section.layout == "blocks":
            continue
        spans = {}
        for tc in table._tbl.iter(f"{W}tc"):
            text = _text(tc)
            span = tc.find(f"{W}tcPr/{W}gridSpan")
            spans.setdefault(text, int(span.get(f"{W}val")) if span is not None else 1)
        for node in section.columns:
            if node.group:  # a group header spans exactly its leaf columns
                assert spans[node.label] == len(section.leaves("columns", under=node.key)), node.label
        if section.note:  # the 勾稽关系 note: over the row labels, down the header rows
            assert spans[section.note] == section.depth("rows")
            grid, _ = _docx_grid(table)
            note_rows = [r for r, row in enumerate(grid) if row[0][1] == section.note]
            assert note_rows == list(range(section.depth("columns")))


def test_header_rows_repeat_and_tables_do_not_split_from_them(batch) -> None:
    document = docx.Document(_item(batch, "2024_示例县审计局").docx)
    fmt = get_format("2021")
    for section, table in zip(fmt.sections, document.tables, strict=True):
        rows = table._tbl.tr_lst
        assert all(r.trPr.find(f"{W}cantSplit") is not None for r in rows)  # no row breaks across pages
        keep = [all(p.find(f"{W}pPr/{W}keepNext") is not None for p in r.iter(f"{W}p")) for r in rows]
        if section.layout == "blocks":  # each block stays together: only a block's last row may end a page
            captions = [i for i, r in enumerate(rows) if _text(r) in {b.caption for b in section.blocks}]
            assert not any(r.trPr.find(f"{W}tblHeader") is not None for r in rows)
            ends = {c - 1 for c in captions[1:]} | {len(rows) - 1}
            assert keep == [i not in ends for i in range(len(rows))]
        else:
            depth = section.depth("columns")
            assert [r.trPr.find(f"{W}tblHeader") is not None for r in rows] == [i < depth for i in range(len(rows))]
            assert keep[:depth] == [True] * depth  # the header stays with the first data row
        before = table._tbl.getprevious()
        assert before.find(f"{W}pPr/{W}pStyle").get(f"{W}val") == "Heading1"  # keeps with its table (style)


def test_gb_t_9704_page_and_fonts(batch) -> None:
    path = _item(batch, "2024_示例县审计局").docx
    document = docx.Document(path)
    section = document.sections[0]
    assert (round(section.page_width.mm), round(section.page_height.mm)) == (210, 297)
    assert [round(m.mm) for m in (section.top_margin, section.bottom_margin, section.left_margin,
                                  section.right_margin)] == [37, 35, 28, 26]
    t = typography()
    styles = document.styles

    def east_asia(name: str) -> str:
        return styles[name].element.find(f"{W}rPr/{W}rFonts").get(f"{W}eastAsia")

    assert east_asia("Normal") == t.roles["body"].fonts[0] == "仿宋_GB2312"
    assert east_asia("Title") == "方正小标宋简体" and east_asia("Heading 1") == "黑体"
    assert east_asia("Heading 2") == "楷体_GB2312"
    assert styles["Normal"].font.size.pt == 16 and styles["Title"].font.size.pt == 22  # 三号, 二号
    assert styles["Normal"].paragraph_format.line_spacing.pt == pytest.approx(28.95, abs=0.05)  # 22 lines a page
    with zipfile.ZipFile(path) as z:
        xml = z.read("word/styles.xml").decode()
        fonts = z.read("word/fontTable.xml").decode()
        footer = "".join(z.read(n).decode() for n in z.namelist() if n.startswith("word/footer"))
        settings_xml = z.read("word/settings.xml").decode()
    for style in ("Normal", "Title", "Heading1", "Heading2"):  # no theme font may override the declared one
        element = re.search(rf'w:styleId="{style}".*?</w:style>', xml, re.S).group(0)
        assert "Theme" not in element.split("<w:rFonts")[1].split("/>")[0]
    assert re.search(r'<w:font w:name="仿宋_GB2312"><w:altName w:val="仿宋"\s*/>', fonts)
    assert footer.count('w:instr=" PAGE "') == 2 and "evenAndOddHeaders" in settings_xml


def test_office_text_is_inert_in_both_outputs(batch) -> None:
    for stem in ("hostile_2019", "hostile_2021"):
        item = _item(batch, stem)
        with zipfile.ZipFile(item.docx) as z:
            xml = "".join(z.read(n).decode() for n in z.namelist()  # the parts that hold content
                          if re.fullmatch(r"word/(document|header\d*|footer\d*)\.xml", n))
            assert not any("hyperlink" in rel for n in z.namelist() if n.endswith(".rels")
                           for rel in [z.read(n).decode()])
        texts = [t.text or "" for t in docx.Document(item.docx).element.iter(f"{W}t")]
        for line in HOSTILE_LINES:
            assert line in texts  # the text itself, as text
        assert "<w:body>" in xml and "<w:hyperlink" not in xml and "<w:instrText" not in xml
        assert set(re.findall(r'w:instr="([^"]*)"', xml)) == {" PAGE "}  # our page numbers are the only fields
        assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\u202e]", "".join(texts))
        assert "响铃反转" in texts
        title = docx.Document(item.docx).paragraphs[0].text
        assert title.startswith(HOSTILE_OFFICE)
        assert "<" not in item.docx.name and ">" not in item.docx.name

        page = item.html.read_text("utf-8")
        tree = lxml.html.document_fromstring(page)
        assert tree.findall(".//script") == [] and tree.findall(".//img") == []
        assert tree.findall(".//link") == [] and tree.findall(".//iframe") == []
        for element in tree.iter():
            assert not any(a.lower().startswith("on") or a.lower() in ("src", "href") for a in element.attrib)
        text = tree.text_content()
        for line in HOSTILE_LINES:
            assert line in text
        assert "&lt;script&gt;" in page and "<script" not in page
        assert "default-src 'none'" in page  # nothing may load from outside, whatever the text says

        class Tags(html.parser.HTMLParser):  # a second, independent parser agrees
            seen: set[str] = set()

            def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
                self.seen.add(tag)
                assert not any(name.startswith("on") for name, _ in attrs)

        parser = Tags()
        parser.feed(page)
        assert parser.seen <= {"html", "head", "meta", "title", "style", "body", "article", "h1", "h2", "h3", "p",
                               "table", "colgroup", "col", "thead", "tbody", "tr", "th", "td"}


def test_the_html_page_is_standalone_with_real_tables(batch) -> None:
    item = _item(batch, "2020_宁海县力洋镇人民政府")
    page = item.html.read_text("utf-8")
    tree = lxml.html.document_fromstring(page)
    assert not re.search(r"(?:src|href)\s*=|url\(|@import", page)
    assert [h.text_content() for h in tree.findall(".//h2")] == _expected_headings(get_format("2019"))
    assert tree.find(".//h1").text_content() == "宁海县力洋镇人民政府2020年政府信息公开工作年度报告"
    s3 = tree.findall(".//table")[1]
    head = {th.text_content(): th for th in s3.findall("./thead/tr/th")}
    assert head["申请人情况"].get("colspan") == "7" and head["法人或其他组织"].get("colspan") == "5"
    assert head["自然人"].get("rowspan") == "2" and head["总计"].get("rowspan") == "2"
    note = head["（本列数据的勾稽关系为：第一项加第二项之和，等于第三项加第四项之和）"]
    assert (note.get("rowspan"), note.get("colspan")) == ("3", "3")
    labels = {th.text_content(): th for th in s3.findall("./tbody/tr/th")}
    assert labels["三、本年度办理结果"].get("rowspan") == str(len(get_format("2019").section("s3").leaves(
        "rows", under="results")))
    assert all("border:1px solid" in td.get("style") for td in s3.iter("td"))  # survives an editor's paste


# ------------------------------------------------------------------------------------------------
# Through LibreOffice: the document opens, lays out and prints


@pytest.mark.soffice
def test_libreoffice_prints_the_report(batch, soffice) -> None:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    items = {stem: _item(batch, stem) for stem in ("2020_宁海县力洋镇人民政府", "2024_示例县审计局", "hostile_2021",
                                                   "2024_2021格式_I2错误")}
    pdfs = soffice([i.docx for i in items.values()], "pdf", batch[1] / "pdf")
    texts = {}
    for stem, pdf in zip(items, pdfs, strict=True):
        raw = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True, text=True,
                             check=True).stdout
        texts[stem] = [re.sub(r"\s+", "", page) for page in raw.split("\f") if page.strip()]
    for stem in ("2020_宁海县力洋镇人民政府", "2024_示例县审计局"):
        report = items[stem].source.report
        pages = texts[stem]
        whole = "".join(pages)
        assert whole.startswith(f"{report.office}{report.year}年政府信息公开工作年度报告")
        positions = [whole.index(h) for h in _expected_headings(get_format(report.format_id))]
        assert positions == sorted(positions)
        assert [f"—{n}—" in page for n, page in enumerate(pages, 1)] == [True] * len(pages)
        assert "草稿" not in whole
    assert "1207.5万元" in "".join(texts["2020_宁海县力洋镇人民政府"])
    assert "（本列数据的勾稽关系为：第一项加第二项之和，等于第三项加第四项之和）" in "".join(texts["2024_示例县审计局"])
    hostile = "".join(texts["hostile_2021"])
    for line in HOSTILE_LINES:
        assert re.sub(r"\s+", "", line) in hostile
    draft = texts["2024_2021格式_I2错误"]
    assert all("草稿（未通过校验）" in page for page in draft)  # on every page


# ------------------------------------------------------------------------------------------------
# Refusal, drafts and the command


def test_workbooks_with_errors_are_refused_unless_draft(batch, tmp_path: Path) -> None:
    item = _item(batch, "2024_2021格式_I2错误")
    assert item.draft and item.docx.exists()
    document = docx.Document(item.docx)
    assert document.paragraphs[1].text == "草稿（未通过校验）"
    assert document.sections[0].header.paragraphs[0].text == "草稿（未通过校验）"
    assert "草稿（未通过校验）" in item.html.read_text("utf-8")
    assert not _item(batch, "2024_示例县审计局").draft
    assert "草稿" not in "".join(p.text for p in docx.Document(_item(batch, "2024_示例县审计局").docx).paragraphs)

    source = SAMPLES / "2024_2021格式_I2错误.xlsx"
    result = CliRunner().invoke(app, ["publish", str(source), str(CLEAN_2021), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert f"{source}：有 1 处错误，未生成年度报告" in result.output
    message = next(f for f in item.source.findings if f.severity == "error").message("zh")
    assert re.sub(r"\s", "", message) in re.sub(r"\s", "", result.output)  # the error, listed
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [".disclosure-xlsx-output.json",  # the marker: the folder is the tool's own (issue 21)
                       "示例县审计局2024年政府信息公开工作年度报告.docx", "示例县审计局2024年政府信息公开工作年度报告.html"]

    result = CliRunner().invoke(app, ["publish", str(source), "--out", str(tmp_path / "draft"), "--draft"])
    assert result.exit_code == 1 and "草稿（未通过校验）" in result.output
    assert len(list((tmp_path / "draft").glob("*.docx"))) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(app, ["publish", str(empty), "--out", str(tmp_path / "x")]).exit_code == 2
    result = CliRunner().invoke(app, ["publish", str(CLEAN_2021), "--out", str(tmp_path / "en"), "--lang", "en"])
    assert result.exit_code == 0 and "reports written" in result.output


def test_a_workbook_without_office_is_refused_unless_draft(tmp_path: Path) -> None:
    path = _workbook(tmp_path / "in" / "x.xlsx", "2021", meta_office=None)
    _, (item,) = publish_paths([path], tmp_path / "out", workers=1)
    assert item.refused == "no_cover" and item.docx is None and not (tmp_path / "out").exists()
    _, (item,) = publish_paths([path], tmp_path / "out", workers=1, draft=True)
    assert item.draft and docx.Document(item.docx).paragraphs[0].text.startswith("（单位名称未填写）")


# ------------------------------------------------------------------------------------------------
# --fill-overview


def _overview_paragraphs(path: Path) -> list[str]:
    paragraphs = docx.Document(path).paragraphs
    start = next(i for i, p in enumerate(paragraphs) if p.style.name == "Heading 1")
    end = next(i for i, p in enumerate(paragraphs) if i > start and p.style.name == "Heading 1")
    return [p.text for p in paragraphs[start + 1:end]]


def _sentences() -> list[str]:
    return tomllib.loads((PACKAGE / "data" / "words" / "publish.toml").read_text("utf-8"))["overview"]["sentences"]["zh"]


def test_fill_overview_inserts_only_where_the_office_wrote_nothing(tmp_path: Path, format_id: str) -> None:
    empty = _workbook(tmp_path / "in" / "empty.xlsx", format_id, meta_office="甲镇人民政府", text_overview=None)
    own = _workbook(tmp_path / "in" / "own.xlsx", format_id, seed=8, meta_office="乙镇人民政府")
    _, items = publish_paths([empty, own], tmp_path / "out", workers=1, fill_overview=True)
    inserted, kept = sorted(items, key=lambda i: i.source.file)
    assert inserted.overview == "inserted" and kept.overview == "kept"
    assert _overview_paragraphs(inserted.docx) == [inserted.proposal]
    values = inserted.source.report.values
    names = [[f for _, f, _, _ in string.Formatter().parse(s) if f] for s in _sentences()]
    fmt = get_format(format_id)
    numbers = [str(values[fmt.names[f]]) for group in names for f in group
               if any(values[fmt.names[g]] for g in group)]
    assert re.findall(r"\d+", inserted.proposal) == numbers  # every number is the table's
    assert _overview_paragraphs(kept.docx) == ["本年度工作有序开展。"]  # the office's words, untouched
    assert kept.proposal and kept.proposal not in "".join(_overview_paragraphs(kept.docx))

    _, (prepended,) = publish_paths([own], tmp_path / "again", workers=1, prepend_overview=True)
    assert prepended.overview == "prepended"
    assert _overview_paragraphs(prepended.docx) == [prepended.proposal, "本年度工作有序开展。"]
    plain = build_document(inserted.source.report, fmt)  # without the option: the office's (empty) text
    assert [b.text for b in plain.blocks if getattr(b, "kind", "") == "body"][0] == "（本部分未填写）"


def test_the_proposal_states_no_blank_and_says_none_for_zeros(tmp_path: Path) -> None:
    fmt = get_format("2021")
    zeros = {cid: 0 for cid in fmt.cells if cid.startswith("s4.")}
    path = _workbook(tmp_path / "x.xlsx", "2021", **{"s3.new.total": None, **zeros})
    (result,) = validate_paths([path], workers=1).workbooks
    proposal, unstated = propose_overview(result.report, fmt)
    assert proposal == "本年度未发生因政府信息公开工作被申请行政复议、提起行政诉讼的情况。"  # the s3 sentence is left out
    assert unstated == (fmt.cells["s3.new.total"].label,)
    english, _ = propose_overview(result.report, fmt, "en")
    assert english.startswith("Disclosure work led to no application")


# ------------------------------------------------------------------------------------------------
# A roll-up total


def test_a_rollup_total_says_what_it_adds_up(tmp_path: Path) -> None:
    folder = tmp_path / "offices"
    for i in range(3):
        _workbook(folder / f"o{i}.xlsx", "2021", seed=i, meta_office=f"第{i}镇人民政府", meta_credit_code=f"C{i:017d}")
    shutil.copy(SAMPLES / "2024_2021格式_I2错误.xlsx", folder / "bad.xlsx")
    total = tmp_path / "county.xlsx"
    aggregate_paths([folder], total, office="示例县人民政府", year=2021, workers=1)
    assert read_rollup(total) == Rollup(added=3, left_out=1, missing=0, invalid_included=0)
    _, (item,) = publish_paths([total], tmp_path / "out", workers=1)
    assert item.rollup == Rollup(added=3, left_out=1)
    paragraphs = [p.text for p in docx.Document(item.docx).paragraphs]
    assert paragraphs[0] == "示例县人民政府2021年政府信息公开工作年度报告"
    note = next(p for p in paragraphs if p.startswith("说明："))
    assert "由3个单位的年度报告表格逐项相加得出" in note and "另有1个单位" in note
    assert note in item.html.read_text("utf-8")
    assert read_rollup(CLEAN_2021) is None and _item_rollup_none(tmp_path)


def _item_rollup_none(tmp_path: Path) -> bool:
    """A property that is not valid JSON, or has negative counts, is not trusted."""
    bad = tmp_path / "bad.xlsx"
    shutil.copy(CLEAN_2021, bad)
    for value in ("{not json", json.dumps({"added": -1}), json.dumps({"left_out": 2})):
        custom = (f'<?xml version="1.0"?><Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/'
                  f'custom-properties" xmlns:vt="x"><property name="{ROLLUP_PROPERTY}"><vt:lpwstr>{value}'
                  "</vt:lpwstr></property></Properties>")
        with zipfile.ZipFile(CLEAN_2021) as src, zipfile.ZipFile(bad, "w") as dst:
            for info in src.infolist():
                dst.writestr(info, custom if info.filename == "docProps/custom.xml" else src.read(info))
        if read_rollup(bad) is not None:
            return False
    return True


# ------------------------------------------------------------------------------------------------
# Properties, languages and the words


@pytest.fixture(scope="module")
def seed_report():
    (result,) = validate_paths([SEED], workers=1).workbooks
    return result.report


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_any_office_text_comes_out_as_that_text_in_html(seed_report, value: str) -> None:
    fmt = get_format("2019")
    document = build_document(seed_report, fmt, texts={"text_overview": value, "text_problems": None,
                                                       "text_other": None})
    tree = lxml.html.document_fromstring(render_html(document))
    assert tree.findall(".//script") == []
    first = tree.findall(".//h2")[0]
    shown = []
    for element in first.itersiblings():
        if element.tag == "h2":
            break
        shown.append(element.text_content())
    lines = [line.strip() for line in clean_text(value).split("\n") if line.strip()]
    assert shown == (lines or ["（本部分未填写）"])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60))
def test_any_office_text_comes_out_as_that_text_in_word(seed_report, tmp_path_factory, value: str) -> None:
    fmt = get_format("2019")
    document = build_document(seed_report, fmt, texts={"text_overview": None, "text_problems": None,
                                                       "text_other": value})
    path = write_docx(document, tmp_path_factory.mktemp("prop") / "x.docx")
    paragraphs = docx.Document(path).paragraphs
    start = max(i for i, p in enumerate(paragraphs) if p.style.name == "Heading 1")
    lines = [line.strip() for line in clean_text(value).split("\n") if line.strip()]
    assert [p.text for p in paragraphs[start + 1:]] == (lines or ["（本部分未填写）"])


def test_english_words(seed_report) -> None:
    document = build_document(seed_report, get_format("2019"), lang="en", mark="x")
    assert document.title == "宁海县力洋镇人民政府: 政府信息公开工作年度报告 for 2020"
    preamble = [b.text for b in document.blocks if getattr(b, "kind", "") == "preamble"]
    assert preamble[0].startswith("This report was prepared under") and "It has 6 parts" in preamble[0]
    assert 'lang="en"' in render_html(document)


def test_every_word_has_both_languages_with_the_same_placeholders() -> None:
    data = tomllib.loads((PACKAGE / "data" / "words" / "publish.toml").read_text("utf-8"))

    def fields(value) -> set[str]:
        items = value if isinstance(value, list) else [value]
        return {f for item in items for _, f, _, _ in string.Formatter().parse(item) if f}

    def walk(node) -> int:
        if set(node) == {"zh", "en"}:
            assert fields(node["zh"]) == fields(node["en"]), node
            assert type(node["zh"]) is type(node["en"])
            return 1
        return sum(walk(v) for v in node.values())

    assert walk(data) > 30
    assert len(data["overview"]["sentences"]["zh"]) == len(data["overview"]["none"]["zh"])


def test_no_chinese_string_literal_in_the_code() -> None:
    for module in ("publish.py", "render.py"):
        tree = ast.parse((PACKAGE / module).read_text("utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        literals = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                    and id(n) not in docstrings]
        assert literals and not [s for s in literals if re.search(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]", s)]
