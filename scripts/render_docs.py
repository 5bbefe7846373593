"""Render the README pictures, as LibreOffice prints them: the seed report's 年报表格 sheet (convert), its
published annual report (publish: .docx → PDF → PNG pages), and the first printed page of an annotated
copy, of 校验汇总.xlsx (validate --out over nine samples) and of 汇总明细 (a roll-up of nine offices).

    python scripts/render_docs.py        # needs soffice (libreoffice-writer, -calc) and pdftoppm (poppler-utils)

The report declares the fonts of GB/T 9704 (仿宋_GB2312, 黑体, 楷体_GB2312, 方正小标宋简体), which a Linux
machine does not have. LibreOffice is run with a fontconfig file that maps each of them to the first
installed font of its fallback list in data/typography.toml (on Debian: fonts-arphic-uming,
fonts-arphic-ukai, fonts-wqy-zenhei), so the pictures show 楷体 as a 楷体 and 黑体 as a 黑体.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import random

import openpyxl

from disclosure_xlsx.aggregate import aggregate_paths
from disclosure_xlsx.catalog import text
from disclosure_xlsx.convert import convert_paths
from disclosure_xlsx.feedback import FEEDBACK_DIR, OVERVIEW, write_outputs
from disclosure_xlsx.formats import current_format
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.publish import publish_paths
from disclosure_xlsx.render import typography
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_workbooks"
SEED = next(SAMPLES.glob("2020_宁海县*.xlsx"))
OUT = ROOT / "docs"
DPI = {"report_sheet": "70", "published": "80", "first_page": "100"}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "FONTCONFIG_FILE": str(_fontconfig(work))}
        _report_sheet(work, env)
        _published(work, env)
        _feedback(work, env)
        _rollup_detail(work, env)
    print(f"wrote {sorted(p.name for p in OUT.glob('*.png'))}")


def _feedback(work: Path, env: dict[str, str]) -> None:
    """The annotated copy of the I2 sample (its first sheet, 「校验结果」) and 校验汇总.xlsx of nine samples."""
    samples = sorted(SAMPLES.glob("*.xlsx"))[:9]
    write_outputs(validate_paths(samples, workers=1), work / "checked", workers=1)
    annotated = next((work / "checked" / FEEDBACK_DIR).glob("*/2024_2021格式_I2错误_校验标注.xlsx"))
    _first_page(_pdf(annotated, work, env), "校验标注", 1, work)
    _first_page(_pdf(work / "checked" / OVERVIEW, work, env), "校验汇总", 1, work)


def _rollup_detail(work: Path, env: dict[str, str]) -> None:
    """汇总明细 of a roll-up of nine offices: its first printed page (the first band, with the lists)."""
    fmt = current_format()
    year = fmt.first_year + 3
    (work / "offices").mkdir()
    for i in range(9):
        write_template(work / "offices" / f"{i}.xlsx", fmt.id, values={
            **balanced_report(fmt.id, random.Random(i)), "meta_office": f"示例县第{i + 1}镇人民政府", "meta_year": year})
    total = work / "汇总.xlsx"
    aggregate_paths([work / "offices"], total, office="示例县人民政府", year=year, workers=1)
    pdf = _pdf(total, work, env)
    pages = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout.split("\f")
    first = next(i for i, page in enumerate(pages, 1) if text("aggregate.detail_sheet") in page.splitlines())
    _first_page(pdf, "汇总明细", first, work)


def _first_page(pdf: Path, name: str, page: int, work: Path) -> None:
    prefix = work / f"first-{name}"
    subprocess.run(["pdftoppm", "-r", DPI["first_page"], "-png", "-f", str(page), "-l", str(page), "-singlefile",
                    str(pdf), str(prefix)], check=True)
    OUT.mkdir(exist_ok=True)
    shutil.copy(prefix.with_suffix(".png"), OUT / f"{name}-1.png")


def _report_sheet(work: Path, env: dict[str, str]) -> None:
    _, (converted,) = convert_paths([SEED], work / "out", workers=1)
    wb = openpyxl.load_workbook(converted.output)
    report = next(name for name in wb.sheetnames if name.startswith("年报"))
    for name in wb.sheetnames:
        if name != report:
            del wb[name]
    only = work / "report.xlsx"
    wb.save(only)
    _pages(_pdf(only, work, env), "年报表格", DPI["report_sheet"], work)


def _published(work: Path, env: dict[str, str]) -> None:
    _, (item,) = publish_paths([SEED], work / "published", workers=1)
    assert item.docx is not None
    _pages(_pdf(item.docx, work, env), "年度报告", DPI["published"], work)


def _pdf(source: Path, work: Path, env: dict[str, str]) -> Path:
    profile = (work / "profile").as_uri()
    subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                    "--outdir", str(work), str(source)], check=True, capture_output=True, env=env)
    return work / f"{source.stem}.pdf"


def _pages(pdf: Path, name: str, dpi: str, work: Path) -> None:
    prefix = work / f"page-{name}"
    subprocess.run(["pdftoppm", "-r", dpi, "-png", str(pdf), str(prefix)], check=True)
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob(f"{name}-*.png"):
        old.unlink()
    for page in sorted(work.glob(f"{prefix.name}-*.png")):
        shutil.copy(page, OUT / f"{name}-{int(page.stem.split('-')[-1])}.png")


def _fontconfig(work: Path) -> Path:
    """The system's fontconfig plus, for every declared font that is not installed, its first installed fallback."""
    listed = subprocess.run(["fc-list", ":", "family"], capture_output=True, text=True, check=True).stdout
    installed = {name.strip() for line in listed.splitlines() for name in line.split(",")}
    t = typography()
    aliases = []
    for fonts in [t.latin, *(role.fonts for role in t.roles.values())]:
        present = next((f for f in fonts if f in installed), None)
        if present is None:
            continue
        for font in fonts[:fonts.index(present)]:
            aliases.append(f'  <alias binding="same"><family>{html.escape(font)}</family>'
                           f"<prefer><family>{html.escape(present)}</family></prefer></alias>")
    path = work / "fonts.conf"
    path.write_text('<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n'
                    '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n' + "\n".join(aliases)
                    + "\n</fontconfig>\n", "utf-8")
    return path


if __name__ == "__main__":
    main()
