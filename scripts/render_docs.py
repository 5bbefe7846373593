"""Render the README pictures: the seed report's 年报表格 sheet, as LibreOffice prints it.

    python scripts/render_docs.py        # needs soffice (libreoffice-calc) and pdftoppm (poppler-utils)
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import openpyxl

from disclosure_xlsx.convert import convert_paths

ROOT = Path(__file__).resolve().parent.parent
SEED = next((ROOT / "sample_workbooks").glob("2020_宁海县*.xlsx"))
OUT = ROOT / "docs"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, (converted,) = convert_paths([SEED], work / "out", workers=1)
        wb = openpyxl.load_workbook(converted.output)
        report = next(name for name in wb.sheetnames if name.startswith("年报"))
        for name in wb.sheetnames:
            if name != report:
                del wb[name]
        only = work / "report.xlsx"
        wb.save(only)
        profile = (work / "profile").as_uri()
        subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", "--convert-to", "pdf",
                        "--outdir", str(work), str(only)], check=True, capture_output=True)
        subprocess.run(["pdftoppm", "-r", "70", "-png", str(work / "report.pdf"), str(work / "page")], check=True)
        OUT.mkdir(exist_ok=True)
        for page in sorted(work.glob("page-*.png")):
            shutil.copy(page, OUT / f"年报表格-{page.stem.split('-')[-1]}.png")
    print(f"wrote {sorted(p.name for p in OUT.glob('年报表格-*.png'))}")


if __name__ == "__main__":
    main()
