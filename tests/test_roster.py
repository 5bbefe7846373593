"""Rosters as clerks have them: encodings, workbooks, bad lines, near-miss names, and the roll-up's use."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from disclosure_xlsx import aggregate
from disclosure_xlsx.aggregate import aggregate_paths
from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.cli import app
from disclosure_xlsx.roster import (RosterEntry, check_character, match_roster, normalise_office, read_roster,
                                    roster_lists)
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

ROOT = Path(__file__).resolve().parent.parent
HEADER = "单位名称,统一社会信用代码,上级单位,电子邮箱"
# Credit codes published elsewhere whose check characters are right (GB 32100), not made by our function.
REAL_CODES = ["91350100M000100Y43", "91110000600037341L", "91440300708461136T", "11100000000013127D"]
RARE = "䶮"  # U+4DAE: in GB18030, not in GBK


@dataclass(frozen=True)
class Office:
    office: str | None
    credit_code: str | None = None


def _write(path: Path, text: str, encoding: str) -> Path:
    with open(path, "w", encoding=encoding, newline="") as f:  # what Excel or Notepad would leave
        f.write(text)
    return path


# ------------------------------------------------------------------------------------------------
# Reading


@pytest.mark.parametrize(("encoding", "source", "delimiter"), [
    ("utf-8", "utf-8", ","), ("utf-8-sig", "utf-8-sig", ","), ("gbk", "gb18030", ","), ("gb18030", "gb18030", ","),
    ("utf-16", "utf-16", "\t"), ("utf-8", "utf-8", "，")])
def test_a_csv_roster_is_read_in_the_encodings_excel_writes(tmp_path: Path, encoding: str, source: str,
                                                             delimiter: str) -> None:
    rare = RARE if encoding in ("gb18030", "utf-8", "utf-8-sig", "utf-16") else ""
    if encoding == "gbk":
        with pytest.raises(UnicodeEncodeError):
            RARE.encode("gbk")  # so the GB18030 case is really beyond GBK
    lines = [HEADER, f"临溪县白沙镇人民政府,{REAL_CODES[0]},临溪县,baisha@example.cn",
             f"临溪县{rare}青石乡人民政府,,临溪县,", "临溪县财政局,,临溪县,czj@example.cn"]
    path = _write(tmp_path / "名单.csv", "\r\n".join(line.replace(",", delimiter) for line in lines) + "\r\n", encoding)
    roster = read_roster(path)
    assert roster.source == source
    assert [e.office for e in roster] == ["临溪县白沙镇人民政府", f"临溪县{rare}青石乡人民政府", "临溪县财政局"]
    assert [e.line for e in roster] == [2, 3, 4]
    assert roster.entries[0] == RosterEntry("临溪县白沙镇人民政府", REAL_CODES[0], "临溪县", "baisha@example.cn", 2)
    assert roster.entries[1].credit_code is None and roster.entries[1].email is None
    assert roster.has_email and not roster.findings
    described = roster.describe()
    assert "3 个单位" in described and {"utf-8": "UTF-8 编码读取", "utf-8-sig": "带 BOM", "gb18030": "GBK/GB18030",
                                      "utf-16": "UTF-16"}[source] in described
    assert "GBK" not in roster.describe("en") or source == "gb18030"


def test_an_xlsx_roster_is_read_from_its_first_sheet_by_its_header_labels(tmp_path: Path) -> None:
    path = tmp_path / "名单.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet("报送名单")
    sheet.merge_range(0, 0, 0, 4, "临溪县2024年度政府信息公开工作年度报告报送单位名单")
    for col, label in enumerate(["序号", "电子邮箱", " 单位名称 ", "统一社会信用代码*", "联系人"]):
        sheet.write(2, col, label)
    rows = [[1, "a@example.cn", "临溪县白沙镇人民政府", REAL_CODES[1], "张三"], [2, None, "青石乡", None, None],
            [3, None, None, None, None], [4, "c@example.cn", "临溪县财政局", REAL_CODES[2], None]]
    for r, row in enumerate(rows, 3):
        for col, value in enumerate(row):
            if value is not None:
                sheet.write_string(r, col, value) if isinstance(value, str) else sheet.write_number(r, col, value)
    book.add_worksheet("说明").write(0, 0, "单位名称")  # only the first sheet is read
    book.close()
    roster = read_roster(path)
    assert roster.source == "workbook" and roster.sheet == "报送名单"
    assert [(e.office, e.credit_code, e.email, e.line) for e in roster] == [
        ("临溪县白沙镇人民政府", REAL_CODES[1], "a@example.cn", 4), ("青石乡", None, None, 5),
        ("临溪县财政局", REAL_CODES[2], "c@example.cn", 7)]  # row 6 holds only its 序号: skipped
    assert "报送名单" in roster.describe()


def test_a_credit_code_excel_turned_into_a_number_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "名单.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["单位名称", "统一社会信用代码"])
    sheet.write_row(1, 0, ["临溪县白沙镇人民政府", 123456789012345678])
    book.close()
    with pytest.raises(DisclosureError) as raised:
        read_roster(path)
    message = raised.value.finding.message()
    assert raised.value.finding.code == "roster-lines-invalid"
    assert "第 2 行" in message and "数字格式" in message and "文本格式" in message


def test_the_check_character_agrees_with_published_codes() -> None:
    for code in REAL_CODES:
        assert check_character(code) == code[-1], code
    assert check_character("91350100M000100Y4") == "3"
    assert check_character("9135010OM000100Y4") is None  # O is not a code character


def test_warnings_do_not_stop_a_roster(tmp_path: Path) -> None:
    wrong = REAL_CODES[0][:-1] + "4"
    path = _write(tmp_path / "名单.csv", f"{HEADER}\n白沙镇,{wrong},,\n青石乡,,,\n青石乡 ,,,\n", "utf-8")
    roster = read_roster(path)
    assert [e.office for e in roster] == ["白沙镇", "青石乡"]
    assert sorted(f.code for f in roster.findings) == ["roster-code-check-digit", "roster-duplicate"]
    messages = [f.message() for f in roster.findings]
    assert any("校验码应为“3”" in m and "第 2 行" in m for m in messages)
    assert any("第 4 行“青石乡 ”与第 3 行重复" in m or "第 4 行“青石乡”与第 3 行重复" in m for m in messages)


def test_every_bad_line_is_listed_at_once(tmp_path: Path) -> None:
    text = (f"序号,{HEADER}\n1,,,,\n2,,{REAL_CODES[0]},,\n3,白沙镇,12345,,\n4,青石乡,{REAL_CODES[1]},,\n"
            f"5,石门乡,{REAL_CODES[1]},,\n6,城关镇,,,\n7,城关镇,{REAL_CODES[2]},,\n8,东山乡,9135010OM000100Y43,,\n")
    with pytest.raises(DisclosureError) as raised:
        read_roster(_write(tmp_path / "名单.csv", text, "gbk"))
    finding = raised.value.finding
    assert finding.code == "roster-lines-invalid" and finding.params["count"] == 5
    message = finding.message()
    for expected in ("第 3 行没有填写单位名称", "第 4 行“白沙镇”", "实为 5 位", "第 6 行“石门乡”与第 5 行（“青石乡”）的统一社会信用代码相同",
                     "第 8 行“城关镇”与第 7 行是同一单位名称", "“O”"):
        assert expected in message, expected
    assert "第 2 行" not in message  # a line with only its 序号 is an empty line
    assert "Line 3 has no office name" in finding.message("en")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "disclosure_xlsx", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


BAD_ROSTERS = {
    "blank-name.csv": ("单位名称,统一社会信用代码\n,91350100M000100Y43\n".encode("gbk"), "第 2 行没有填写单位名称"),
    "short-code.csv": ("单位名称,统一社会信用代码\n白沙镇,9135\n".encode("utf-8-sig"), "应为 18 位，实为 4 位"),
    "no-header.csv": ("名称,代码\n白沙镇,1\n".encode("utf-8"), "找不到表头“单位名称”"),
    "empty.csv": (b"", "文件是空的"),
    "header-only.csv": ("单位名称\n".encode("gbk"), "表头下面没有任何单位"),
    "garbage.csv": (b"\x80\xff\x80\xff,\x81\n", "无法识别文字编码"),
    "not-a-workbook.xlsx": (b"this is text, not a workbook", "无法打开"),
    "roster.docx": (b"PK\x03\x04", "只能使用 .csv 或 .xlsx"),
    "missing.csv": (None, "找不到这个文件"),
}


IN_A_SUBPROCESS = ("blank-name.csv", "garbage.csv", "not-a-workbook.xlsx")  # the rest in-process, for speed


@pytest.mark.parametrize("name", list(BAD_ROSTERS))
def test_a_bad_roster_is_one_chinese_message_and_exit_2_before_any_workbook(tmp_path: Path, name: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    content, expected = BAD_ROSTERS[name]
    if content is not None:
        (tmp_path / name).write_bytes(content)
    (tmp_path / "in").mkdir()  # no workbook at all: reading the roster first is the only way to see its message
    args = ["aggregate", "in", "-o", "total.xlsx", "--office", "临溪县", "--year", "2024", "--roster", name]
    if name in IN_A_SUBPROCESS:
        done = _cli(*args, cwd=tmp_path)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        monkeypatch.chdir(tmp_path)
        result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        code, stdout, stderr = result.exit_code, result.stdout, result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert code == 2, stderr
    said = stderr.replace("\n", "")  # wrapped to the terminal's width, whatever it is in this process
    assert expected in said and "Traceback" not in stderr + stdout
    assert f"名单“{name}”" in said and "本次没有读取任何报表" in said
    assert not (tmp_path / "total.xlsx").exists()


def test_the_roll_up_reads_the_roster_before_any_workbook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("a workbook was read before the roster was checked")

    monkeypatch.setattr(aggregate, "validate_paths", must_not_run)
    roster = _write(tmp_path / "名单.csv", "单位名称\n\n,x\n", "utf-8")
    with pytest.raises(DisclosureError):
        aggregate_paths([tmp_path], tmp_path / "total.xlsx", office="临溪县", year=2024, roster=roster)


# ------------------------------------------------------------------------------------------------
# Matching


@pytest.mark.parametrize(("submitted", "on_roster", "how"), [
    ("临溪县 白沙镇人民政府", "临溪县白沙镇人民政府", "normalised"),
    ("临溪县白沙镇人民政府\u3000", "临溪县白沙镇人民政府", "name"),
    ("临溪县财政局〔国资办〕", "临溪县财政局[国资办]", "normalised"),
    ("临溪县（城关）派出所", "临溪县(城关)派出所", "normalised"),
    ("ＡＢＣ服务中心", "abc服务中心", "normalised"),
    ("青石乡", "青石乡人民政府", "suffix"),
    ("青石乡人民政府", "青石乡", "suffix"),
    ("青石乡政府", "青石乡人民政府", "suffix"),
    ("城关街道", "城关街道办事处", "suffix"),
    ("城关街道办事处", "城关", "suffix"),
])
def test_a_near_miss_name_is_matched_when_it_is_unambiguous(submitted: str, on_roster: str, how: str) -> None:
    roster = [RosterEntry(on_roster, line=2), RosterEntry("临溪县教育局", line=3)]
    office = Office(submitted)
    match = match_roster(roster, [office])
    assert [(p.entry.office, p.how) for p in match.matched] == [(on_roster, how)]
    assert match.entry_for(office) is roster[0]
    assert [e.office for e in match.missing] == ["临溪县教育局"] and not match.unexpected
    if how != "name":
        (title, lines), = roster_lists(match)
        assert "已自动对应" in title and on_roster in lines[0] and submitted in lines[0]


@pytest.mark.parametrize(("submitted", "roster_names", "why"), [
    ("白沙镇人民政府", ["临溪县白沙镇人民政府", "临溪县青石乡人民政府"], "contains"),
    ("财政局", ["临溪县财政局", "临溪县教育局"], "contains"),
    ("临溪县白沙乡人民政府", ["临溪县白沙镇人民政府", "临溪县青石乡人民政府"], "similar"),
    ("青石乡", ["青石乡人民政府", "青石乡政府"], "ambiguous"),
])
def test_a_near_miss_that_is_not_certain_is_suggested_never_matched(submitted: str, roster_names: list[str],
                                                                    why: str) -> None:
    roster = [RosterEntry(n, line=i) for i, n in enumerate(roster_names, 2)]
    office = Office(submitted)
    match = match_roster(roster, [office])
    assert not match.matched and match.unexpected == (office,) and len(match.missing) == len(roster)
    suggested = match.suggestions_for(office)
    assert {s.why for s in suggested} == {why}
    assert suggested[0].entry is roster[0]
    (title, lines), = roster_lists(match)
    assert "未自动对应" in title and f"报送的“{submitted}”可能是名单第 2 行“{roster_names[0]}”" in lines[0]


@pytest.mark.parametrize(("submitted", "roster_names"), [
    ("临溪县教育局", ["临溪县财政局"]),
    ("临溪县白沙镇人民政府", ["临溪县青石乡人民政府", "临溪县石门乡人民政府"]),
    ("局", ["临溪县财政局"]),
    ("白沙镇", ["白沙镇卫生院", "白沙镇中心学校"]),  # which one? not for us to guess
])
def test_names_that_merely_look_alike_are_not_suggested(submitted: str, roster_names: list[str]) -> None:
    match = match_roster([RosterEntry(n) for n in roster_names], [Office(submitted)])
    assert not match.matched and not match.suggestions


def test_credit_codes_decide_before_names() -> None:
    a, b, c = REAL_CODES[:3]
    roster = [RosterEntry("临溪县白沙镇人民政府", a), RosterEntry("青石乡人民政府", None), RosterEntry("石门乡", b)]
    renamed, no_code, wrong_code = Office("白沙镇政府（原名）", a.lower()), Office("青石乡人民政府"), Office("石门乡", c)
    match = match_roster(roster, [renamed, no_code, wrong_code])
    assert match.pair_for(renamed).how == "credit_code" and match.entry_for(renamed) is roster[0]
    assert match.pair_for(no_code).how == "name"
    # same name, different code: two bodies, or a typo; either way the clerk decides
    assert match.unexpected == (wrong_code,) and match.missing == (roster[2],)
    (suggestion,) = match.suggestions_for(wrong_code)
    assert suggestion.why == "code_differs" and suggestion.entry is roster[2]
    assert c in roster_lists(match)[-1][1][0] and b in roster_lists(match)[-1][1][0]


def test_same_named_towns_of_a_city_are_told_apart_by_code_only() -> None:
    a, b = REAL_CODES[0], REAL_CODES[1]
    roster = [RosterEntry("白沙镇人民政府", a, "临溪县"), RosterEntry("白沙镇人民政府", b, "石门县")]
    by_code, by_name = Office("白沙镇人民政府", b), Office("白沙镇人民政府")
    match = match_roster(roster, [by_code, by_name])
    assert match.entry_for(by_code) is roster[1]
    assert match.unexpected == (by_name,) and {s.why for s in match.suggestions_for(by_name)} == {"ambiguous"}


def test_two_workbooks_of_one_roster_office_are_shown() -> None:
    roster = [RosterEntry("青石乡人民政府", line=2)]
    match = match_roster(roster, [Office("青石乡人民政府"), Office("青石乡")])
    assert not match.missing and len(match.shared) == 1
    title, lines = roster_lists(match)[-1]
    assert "不止一份" in title and lines == ["名单第 2 行“青石乡人民政府”：青石乡人民政府、青石乡"]


names = st.text(st.sampled_from("临溪县白沙镇青石乡人民政府财政局街道办事处（）()〔〕[]ABCabc12"), min_size=1, max_size=16)


@settings(max_examples=60, deadline=None)
@given(name=names, spaces=st.lists(st.integers(0, 16), max_size=3))
def test_normalising_ignores_spaces_width_and_brackets(name: str, spaces: list[int]) -> None:
    spaced = name
    for at in sorted(spaces, reverse=True):
        spaced = spaced[:at] + " \u3000\u00a0"[at % 3] + spaced[at:]
    wide = spaced.translate({ord(c): ord(c) + 0xFEE0 for c in "ABCabc12()[]"})  # full-width forms
    assert normalise_office(wide) == normalise_office(name) == normalise_office(normalise_office(name))
    match = match_roster([RosterEntry(name)], [Office(wide)])
    assert len(match.matched) == 1


# ------------------------------------------------------------------------------------------------
# The roll-up


def _offices(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_template(folder / f"office{i}.xlsx", "2021", values={
            **balanced_report("2021", random.Random(i)), "meta_office": name, "meta_year": 2024})


def test_the_roll_up_lists_near_misses_and_suggestions_from_a_gbk_roster(tmp_path: Path) -> None:
    _offices(tmp_path / "in", ["临溪县 白沙镇人民政府", "青石乡", "财政局"])
    roster = _write(tmp_path / "名单.csv", f"{HEADER}\r\n临溪县白沙镇人民政府,,临溪县,\r\n青石乡人民政府,,临溪县,\r\n"
                                         "临溪县财政局,,临溪县,\r\n临溪县石门乡人民政府,,临溪县,\r\n", "gbk")
    result = aggregate_paths([tmp_path / "in"], tmp_path / "total.xlsx", office="临溪县", year=2024, roster=roster)
    assert [e.office for e in result.missing] == ["临溪县财政局", "临溪县石门乡人民政府"]
    assert [w.report.office for w in result.unexpected] == ["财政局"]
    assert len(result.included) == 3
    detail = openpyxl.load_workbook(tmp_path / "total.xlsx")["汇总明细"]
    texts = [str(c.value) for row in detail.iter_rows() for c in row if c.value is not None]
    assert "名称与名单不完全一致、已自动对应的单位：2 个" in texts
    assert any(t.startswith("“青石乡”→ 名单第 3 行“青石乡人民政府”") for t in texts)
    assert "报送的“财政局”可能是名单第 4 行“临溪县财政局”（名称前面多了或少了地名）" in texts


def test_cli_aggregate_takes_an_xlsx_roster(tmp_path: Path) -> None:
    _offices(tmp_path / "in", ["临溪县白沙镇人民政府", "青石乡"])
    path = tmp_path / "名单.xlsx"
    book = xlsxwriter.Workbook(path)
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["单位名称", "统一社会信用代码", "上级单位"])
    sheet.write_row(1, 0, ["临溪县白沙镇人民政府", "", "临溪县"])
    sheet.write_row(2, 0, ["青石乡人民政府", "", "临溪县"])
    book.close()
    args = ["aggregate", str(tmp_path / "in"), "-o", str(tmp_path / "total.xlsx"), "--office", "临溪县", "--year",
            "2024", "--roster", str(path)]
    done = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output  # every roster office is there: 青石乡 matched by its suffix
    assert "名单“名单.xlsx”：2 个单位" in done.stderr and "“青石乡”→ 名单第 3 行“青石乡人民政府”" in done.stdout
