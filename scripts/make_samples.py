"""Make the workbooks in sample_workbooks/ (rerunnable; the output is byte-stable).

    python scripts/make_samples.py [--seed-report ../shared/seed/000_f10c6ced2bff11ee.txt]

- The seed report (宁海县力洋镇人民政府 2020, 2019 format) is read from the published text itself,
  by the tool's reader of published reports (its tables by their labels, the cover from the title
  and preamble, the narratives under their headings). Values are written as an office's spreadsheet
  would hold them: a plain number as a number, anything else ("1207.5万元", "0\u00a0" with its
  non-breaking space) as the text printed.
- A clean 2021 report with non-zero numbers in every section.
- For each format, one workbook per identity (I1, I2, I3, I5) with one deliberate mistake.

`manifest.json` beside them says, by hand, what each file must produce; the tests read it.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import datetime
from pathlib import Path

from disclosure_xlsx.formats import all_formats, current_format
from disclosure_xlsx.read import read_workbook
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "sample_workbooks"
SEED = ROOT.parent / "shared" / "seed" / "000_f10c6ced2bff11ee.txt"
CREATED = datetime(2026, 1, 1)

# One deliberate mistake per identity: cells to change (by how much), the cell the finding must be
# anchored on, and why only that identity breaks.
MISTAKES = {
    "I1": ({"s3.carried_out.natural_person": 1, "s3.carried_out.total": 1}, "s3.total.natural_person",
           "结转下年度（自然人）多填 1 件，总计列同步加 1：只有“第一项加第二项＝第三项加第四项”不成立"),
    "I2": ({"s3.granted.total": 1}, "s3.granted.total",
           "（一）予以公开 的总计多填 1 件：总计不等于各列之和"),
    "I3": ({"s3.granted.natural_person": 1, "s3.granted.total": 1}, "s3.total.natural_person",
           "（一）予以公开（自然人）多填 1 件，行总计同步加 1：（七）总计不等于各项之和"),
    "I5": ({"s4.review.total": 1}, "s4.review.total", "行政复议 总计多填 1 件"),
}


def seed_values(seed_report: Path) -> dict[str, object]:
    """The seed report's cells, cover fields and narratives, as printed.

    Read by the tool's own reader of published reports (`disclosure_xlsx.documents`, the seed's text
    form), so the sample and the reader cannot disagree; its only finding must be the seed's label
    variant 行政事业型收费. A plain number becomes a number, anything else stays the text printed.
    """
    report = read_workbook(seed_report)
    fmt = report.format
    if [f.code for f in report.findings] != ["label-variant"] or not set(fmt.cells) <= set(report.raw):
        raise SystemExit(f"seed: unexpected findings {[f.message('en') for f in report.findings]}")
    values: dict[str, object] = {
        key: (int(v) if v.is_integer() else v) if isinstance(v, float) else v for key, v in report.raw.items()}
    values["meta_year"] = int(str(values["meta_year"]))
    return values


def synthetic_values(format_id: str, seed: int, office: str, year: int) -> dict[str, object]:
    values: dict[str, object] = dict(balanced_report(format_id, random.Random(seed), zero_share=0.3))
    values.update(
        meta_office=office, meta_credit_code="11330200MB0000000X", meta_year=year, meta_contact="办公室 张三",
        meta_phone="0574-00000000", meta_email="xxgk@example.gov.cn", meta_address="示例县示例路 1 号",
        meta_postcode="315000",
        text_overview="（示例）本年度本机关认真贯彻落实《中华人民共和国政府信息公开条例》，主动公开、依申请公开、"
                      "政府信息管理、平台建设和监督保障各项工作有序开展。",
        text_problems="（示例）存在的问题：公开内容有待充实。改进措施：加强培训，规范流程。",
        text_other="本年度未收取信息处理费，没有其他需要报告的事项。")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed-report", type=Path, default=SEED, help="the seed report text")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write (default: sample_workbooks/)")
    args = parser.parse_args()
    make_samples(args.seed_report, args.out)


def make_samples(seed_report: Path, out: Path) -> None:
    """Write every sample workbook and manifest.json to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = []

    seed = seed_values(seed_report)
    name = f"{seed['meta_year']}_{seed['meta_office']}.xlsx"
    write_template(out / name, "2019", values=seed, created=CREATED)
    manifest.append({"file": name, "format": "2019", "year": seed["meta_year"], "office": seed["meta_office"],
                     "what": "种子报告：宁海县力洋镇人民政府 2020 年报，数值按原文（含 “1207.5万元” 和不间断空格）",
                     "errors": []})

    current = current_format()
    year = current.first_year + 3
    office = "示例县审计局"
    values = synthetic_values(current.id, 2021, office, year)
    for section in current.sections:  # the clean sample must show numbers in every section
        assert any(values[c.id] for c in current.section_cells(section.key)), section.key
    name = f"{year}_{office}.xlsx"
    write_template(out / name, current.id, values=values, created=CREATED)
    manifest.append({"file": name, "format": current.id, "year": year, "office": office,
                     "what": "各部分均有非零数据、全部勾稽关系成立的报告", "errors": []})

    for fmt in all_formats().values():
        year = fmt.last_year or fmt.first_year + 3
        for number, (family, (changes, anchor, why)) in enumerate(MISTAKES.items()):
            office = f"示例镇（{family} 错误）"
            values = synthetic_values(fmt.id, int(fmt.id) + number, office, year)
            for cid, delta in changes.items():
                values[cid] += delta  # type: ignore[operator]
            name = f"{year}_{fmt.id}格式_{family}错误.xlsx"
            write_template(out / name, fmt.id, values=values, created=CREATED)
            manifest.append({"file": name, "format": fmt.id, "year": year, "office": office, "what": why,
                             "errors": [{"identity": family, "anchor": anchor}]})

    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", "utf-8")
    print(f"wrote {len(manifest)} workbooks to {out}")


if __name__ == "__main__":
    main()
