"""Every finding code of the catalog is produced by a real input, through the same process pool users get.

Each scenario writes the files a county could receive, runs them as a batch with two reading workers
(so results cross a process boundary as they do for users) and names the code it must produce. A code
without a scenario fails `test_every_code_has_a_scenario`: a new code needs a way to produce it.
"""

from __future__ import annotations

import random
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import openpyxl
import pytest

from disclosure_xlsx.aggregate import aggregate_paths, read_roster
from disclosure_xlsx.catalog import DisclosureError, catalog
from disclosure_xlsx.formats import FormatDataError, build_formats, get_format
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

from .conftest import SAMPLES, hang_forever

PAD = 4  # good workbooks beside each scenario's file, so the batch is read by the pool (≥ 2 × workers)


_WRITTEN: dict[str, bytes] = {}  # the bytes of each filled workbook already written, by what it was filled with


def _filled(path: Path, format_id: str = "2021", seed: int = 1, **extra: object) -> Path:
    """The template filled with a balanced report; the same filling twice is the same bytes, copied (the
    four good workbooks beside each scenario are written once, not once per scenario)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = repr((format_id, seed, path.stem, sorted(extra.items())))
    if key in _WRITTEN:
        path.write_bytes(_WRITTEN[key])
        return path
    fmt = get_format(format_id)
    values = {**balanced_report(format_id, random.Random(seed)), fmt.field("office").name: f"{path.stem}镇",
              fmt.field("year").name: fmt.first_year, **extra}
    write_template(path, format_id, values=values)
    _WRITTEN[key] = path.read_bytes()
    return path


def _edit(path: Path, name: str, value: object) -> Path:
    """Set the cell a defined name points at, with openpyxl, as an office's spreadsheet would."""
    wb = openpyxl.load_workbook(path)
    sheet, ref = wb.defined_names[name].attr_text.split("!")
    wb[sheet.strip("'")][ref.replace("$", "")].value = value
    wb.save(path)
    return path


def _batch_codes(folder: Path, *files: Path, year: int | None = None) -> set[str]:
    for i in range(PAD):
        _filled(folder / f"pad{i}.xlsx", seed=100 + i)
    batch = validate_paths([folder], workers=2, year=year)
    return {f.code for w in batch.workbooks for f in w.findings}


def _raised(call: Callable[[], object]) -> set[str]:
    with pytest.raises(DisclosureError) as caught:
        call()
    return {caught.value.finding.code}


def _no_names(path: Path) -> Path:
    wb = openpyxl.load_workbook(path)
    for name in list(wb.defined_names):
        del wb.defined_names[name]
    wb.save(path)
    return path


def _stale(path: Path) -> Path:
    wb = openpyxl.load_workbook(path)
    names = list(wb.defined_names.items())
    for name, dn in names:  # every name one row lower: names that no longer point at the table
        sheet, ref = dn.attr_text.split("!")
        column, row = ref.replace("$", " ").split()
        dn.attr_text = f"{sheet}!${column}${int(row) + 1}"
    wb.save(path)
    return path


def _other_labels(path: Path) -> Path:
    """A workbook whose cover states the current format but whose table shows a 2019-format label."""
    old = next(f for f in get_format("2019").signals if f not in get_format("2021").signals)
    wb = openpyxl.load_workbook(path)
    ws = wb[get_format("2021").sections[0].sheet]
    ws.cell(ws.max_row + 2, 1).value = old
    wb.save(path)
    return path


SCENARIOS: dict[str, Callable[[Path], set[str]]] = {
    "file-unreadable": lambda d: _batch_codes(d, _bytes(d / "broken.xlsx", b"PK\x03\x04 not a zip")),
    "file-too-large": lambda d: _batch_codes(d, _bomb(d / "bomb.xlsx")),
    "not-a-report": lambda d: _batch_codes(d, _other_workbook(d / "other.xlsx")),
    "names-stale": lambda d: _batch_codes(d, _stale(_filled(d / "stale.xlsx"))),
    "format-labels-mismatch": lambda d: _batch_codes(d, _other_labels(_filled(d / "labels.xlsx"))),
    "duplicate-submission": lambda d: _batch_codes(d, _filled(d / "a.xlsx"), _filled(d / "b" / "a.xlsx")),
    "cell-not-found": lambda d: _batch_codes(d, _missing_label(_no_names(_filled(d / "missing.xlsx")))),
    "label-variant": lambda d: _batch_codes(d, _variant(_no_names(_filled(d / "variant.xlsx")))),
    "format-year-mismatch": lambda d: _batch_codes(d, _filled(d / "old.xlsx", "2019", meta_year=2023)),
    "year-missing": lambda d: _batch_codes(d, _filled(d / "noyear.xlsx", meta_year=None)),
    "year-not-collected": lambda d: _batch_codes(d, _filled(d / "nextyear.xlsx", meta_year=2022), year=2021),
    "year-invalid": lambda d: _batch_codes(d, _filled(d / "badyear.xlsx", meta_year="二〇二四")),
    "office-missing": lambda d: _batch_codes(d, _filled(d / "nooffice.xlsx", meta_office=None)),
    "blank-cell": lambda d: _batch_codes(d, _filled(d / "blank.xlsx", **{"s4.review.upheld": "/"})),
    "value-unparseable": lambda d: _batch_codes(d, _filled(d / "text.xlsx", **{"s3.new.research": "三"})),
    "number-not-whole": lambda d: _batch_codes(d, _filled(d / "half.xlsx", **{"s3.new.research": 4.5})),
    "number-too-large": lambda d: _batch_codes(d, _filled(d / "huge.xlsx", **{"s3.new.research": 1e15})),
    "count-negative": lambda d: _batch_codes(d, _filled(d / "negative.xlsx", **{"s3.new.research": -1})),
    "money-unit-assumed": lambda d: _batch_codes(d, _pasted(_filled(d / "money.xlsx", "2019", seed=5,
                                                                    **{"s2.procurement.amount": 12.5,
                                                                       "s2.procurement.projects": 1}))),
    "identity-mismatch": lambda d: _batch_codes(d, _edit(_filled(d / "i2.xlsx"), "s3_granted_total", 999)),
    "implausible-value": lambda d: _batch_codes(d, _filled(d / "rules.xlsx", **{
        "s2.normative_docs.issued": 50, "s2.normative_docs.in_force": 0, "s2.normative_docs.repealed": 0})),
    "internal-error": lambda d: _internal_error(d),
    "own-output": lambda d: _own_outputs(d),
    "rollup-nothing-to-add": lambda d: _raised(lambda: aggregate_paths(
        [_edit(_filled(d / "x.xlsx"), "s3_granted_total", 999)], d / "t.xlsx", office="县", year=2021, workers=1)),
    "rollup-mixed-formats": lambda d: _raised(lambda: aggregate_paths(
        [_filled(d / "a.xlsx"), _filled(d / "b.xlsx", "2019")], d / "t.xlsx", office="县", year=2021,
        include_other_years=True, workers=1)),
    "rollup-year-not-found": lambda d: _raised(lambda: aggregate_paths(
        [_filled(d / "a.xlsx")], d / "t.xlsx", office="县", year=2030, workers=1)),
    "roster-invalid": lambda d: _raised(lambda: read_roster(_write(d / "名单.csv", "名称\n甲镇\n"))),
    "format-data-invalid": lambda d: _bad_format_data(),
}


def _own_outputs(folder: Path) -> set[str]:
    """An annotated copy the county put back among the submissions, found by the workers that read it."""
    from disclosure_xlsx.feedback import write_outputs

    wrong = _edit(_filled(folder / "wrong.xlsx"), "s3_granted_total", 999)
    write_outputs(validate_paths([wrong], workers=1), folder.parent / "out", workers=1)
    (copy,) = (folder.parent / "out").rglob("*_校验标注.xlsx")
    (folder / copy.name).write_bytes(copy.read_bytes())
    for i in range(PAD):
        _filled(folder / f"pad{i}.xlsx", seed=100 + i)
    batch = validate_paths([folder], workers=2)
    assert [Path(s.file).name for s in batch.skipped] == [copy.name] and len(batch.workbooks) == PAD + 1
    return {s.finding.code for s in batch.skipped}


def _bytes(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _pasted(path: Path) -> Path:
    """A copy rebuilt by copy and paste: no names and no template version, so no stated money unit."""
    return _no_names(_edit(path, get_format("2019").words.version_name, None))


def _write(path: Path, content: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, "utf-8")
    return path


def _bomb(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\0" * (120 * 2**20))
    return path


def _other_workbook(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = openpyxl.Workbook()
    wb.active["A1"] = "工资表"
    wb.save(path)
    return path


def _missing_label(path: Path) -> Path:
    wb = openpyxl.load_workbook(path)
    fmt = get_format("2021")
    label = fmt.section("s3").node("rows", "denied_safety").label
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value == label:
                    c.value = "（已删除）"
    wb.save(path)
    return path


def _variant(path: Path) -> Path:
    wb = openpyxl.load_workbook(path)
    fmt = get_format("2021")
    node = fmt.section("s2").node("rows", "fees")
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value == node.label:
                    c.value = node.aliases[0]
    wb.save(path)
    return path


def _internal_error(folder: Path) -> set[str]:
    """A defect of the tool on one file is that file's finding (simulated: the cleaner fails on it)."""
    from disclosure_xlsx import pipeline

    target = _filled(folder / "defect.xlsx")
    real = pipeline.clean_report

    def failing(raw):  # type: ignore[no-untyped-def]
        if raw.file == str(target):
            raise RuntimeError("simulated defect")
        return real(raw)

    pipeline.clean_report = failing  # type: ignore[assignment]
    try:
        return {f.code for w in validate_paths([target], workers=1).workbooks for f in w.findings}
    finally:
        pipeline.clean_report = real  # type: ignore[assignment]


def _bad_format_data() -> set[str]:
    import tomllib
    from importlib import resources

    data = tomllib.loads(resources.files("disclosure_xlsx").joinpath("data/formats.toml").read_text("utf-8"))
    data["identities"][0]["lhs"] = ["s3.no_such_row.{c}"]
    with pytest.raises(FormatDataError) as caught:
        build_formats(data)
    return {caught.value.finding.code}


# ------------------------------------------------------------------------------------------------
# Rosters and mail: their problems are findings nested in a refusal or attached to a planned message,
# so these scenarios record every finding the library constructs while it works on the input.


@contextmanager
def _recorded() -> Iterator[set[str]]:
    from disclosure_xlsx.catalog import Finding

    codes: set[str] = set()
    original = Finding.__post_init__

    def record(self: Finding) -> None:
        original(self)
        codes.add(self.code)

    Finding.__post_init__ = record  # type: ignore[method-assign]
    try:
        yield codes
    finally:
        Finding.__post_init__ = original  # type: ignore[method-assign]


def _bad_roster(folder: Path) -> set[str]:
    from disclosure_xlsx.roster import check_character

    good = "91330226MB165846" + "9" + (check_character("91330226MB16584690") or "0")
    wrong = good[:-1] + ("1" if good[-1] != "1" else "2")
    lines = ["单位名称,统一社会信用代码", f",{good}", "白沙镇,12345", "青石乡,", "青石乡,", f"石门乡,{wrong}",
             f"城关镇,{good}", f"东山乡,{good}"]
    with _recorded() as codes, pytest.raises(DisclosureError):
        read_roster(_write(folder / "名单.csv", "\n".join(lines) + "\n"))
    return codes


def _county(folder: Path) -> Path:
    """A validate --out folder of five offices, as the send tests' county (one broken file)."""
    from disclosure_xlsx.feedback import write_outputs

    for name in ("甲", "乙", "丙", "丁", "戊"):
        _filled(folder / "in" / f"{name}.xlsx")
    _bytes(folder / "in" / "损坏.xlsx", b"PK\x03\x04 broken")
    write_outputs(validate_paths([folder / "in"], workers=1), folder / "out", workers=1)
    return folder / "out"


def _mail(folder: Path) -> set[str]:
    """Every way a message cannot be made or sent, on one county."""
    import shutil

    from disclosure_xlsx.mail import parse_server, plan_messages, read_feedback, send_messages, write_drafts
    from disclosure_xlsx.roster import read_roster as roster_of

    out = _county(folder)
    shutil.rmtree(out / "feedback" / "丁镇_2021")  # a folder lost after validate
    roster = roster_of(_write(folder / "名单.csv", "单位名称,电子邮箱\n甲镇,jia@example.cn\n乙镇,\n丙镇,not-an-address\n"
                                                  "丁镇,ding@example.cn\n"))
    with _recorded() as codes:
        plan = plan_messages(out, roster, sender="gk@example.cn")
        plan_messages(out, roster, sender="gk@example.cn", max_bytes=10)
        (folder / "drafts").mkdir()
        (folder / "drafts" / "说明.txt").write_text("x", "utf-8")
        with pytest.raises(DisclosureError):
            write_drafts(plan, folder / "drafts")
        with pytest.raises(DisclosureError):
            read_feedback(folder / "in")
        closed = parse_server(f"127.0.0.1:{_free_port()}", "plain")
        send_messages(plan, out, closed, sender="gk@example.cn")
        codes |= _smtp_refusals(plan, out)
    return codes


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smtp_refusals(plan, out: Path) -> set[str]:  # type: ignore[no-untyped-def]
    """A real SMTP server on 127.0.0.1 that refuses every message, then one that refuses the login."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    from disclosure_xlsx.mail import Server, send_messages

    class Refusing:
        async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]  # noqa: N802
            return "554 5.7.1 refused"

    codes: set[str] = set()
    with _recorded() as seen:
        for options, login in (({}, None), ({"auth_require_tls": False,
                                              "authenticator": lambda *a: AuthResult(success=False, handled=False)}, "gk@example.cn")):
            port = _free_port()
            controller = Controller(Refusing(), hostname="127.0.0.1", port=port, **options)
            controller.start()
            try:
                send_messages(plan, out, Server("127.0.0.1", port, "plain", login), sender="gk@example.cn",
                              password="x" if login else None, resend=True)
            finally:
                controller.stop()
        codes |= seen
    return codes


def _sender(folder: Path) -> set[str]:
    from typer.testing import CliRunner

    from disclosure_xlsx.cli import app

    out = _county(folder)
    roster = _write(folder / "名单.csv", "单位名称,电子邮箱\n甲镇,jia@example.cn\n")
    with _recorded() as codes:
        CliRunner().invoke(app, ["send", str(out), "--roster", str(roster), "--smtp", "127.0.0.1:1", "--from", "x@"])
    return codes


SCENARIOS.update({code: _bad_roster for code in ("roster-lines-invalid", "roster-name-missing", "roster-code-invalid",
                                                  "roster-code-check-digit", "roster-duplicate",
                                                  "roster-duplicate-conflict")})
SCENARIOS.update({code: _mail for code in ("mail-feedback-invalid", "mail-drafts-folder", "mail-folder-missing",
                                            "mail-office-unknown", "mail-no-address", "mail-address-invalid",
                                            "mail-too-large", "mail-refused", "mail-server-unavailable",
                                            "mail-login-failed", "mail-not-on-roster")})
SCENARIOS["mail-sender-invalid"] = _sender


def _scanned_pdf(folder: Path) -> set[str]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (595, 842), "white").save(folder / "scan.pdf")
    return _batch_codes(folder, folder / "scan.pdf")


def _relabelled_page(folder: Path) -> set[str]:
    from .test_documents import TEXTS, printed_values, report_values, title_of, write_html

    fmt = get_format("2021")
    folder.mkdir(parents=True, exist_ok=True)
    write_html(folder / "r.html", fmt, printed_values(fmt, report_values(fmt.id, 2)), title=title_of(fmt, 2022),
               texts=TEXTS, relabel={"1.属于国家秘密": "1.涉及国家机密事项"})
    return _batch_codes(folder, folder / "r.html")


GOOD_TEXTS = {"text_overview": "概述。", "text_problems": "存在的问题：培训不足。改进：加强培训。",
              "text_other": "本年度未收取信息处理费。"}


def _narrative(folder: Path, format_id: str = "2021", year: int | None = None, **texts: str) -> set[str]:
    fmt = get_format(format_id)
    extra = {**GOOD_TEXTS, **texts, fmt.field("year").name: year or fmt.first_year}
    return _batch_codes(folder, _filled(folder / "text.xlsx", format_id, **extra))


def _other_share(folder: Path) -> set[str]:
    fmt = get_format("2021")
    (rule,) = [r for r in fmt.rules if r.code == "other-share-high"]
    row = rule.lhs[0].split(".")[1]
    values = balanced_report("2021", random.Random(12), zero_share=1.0)
    for key, n in (("new", 20), ("granted", 15), (row, 5), ("total", 20)):
        values[f"s3.{key}.natural_person"] = values[f"s3.{key}.total"] = n
    return _batch_codes(folder, _filled(folder / "other.xlsx", **values))


def _unsplit(folder: Path) -> set[str]:
    """A current table printed with the older single （六）其他处理 row (its three sub-rows unlabelled)."""
    fmt = get_format("2021")
    parts = {leaf.label for leaf in fmt.section("s3").leaves("rows", under="other")}
    path = _no_names(_filled(folder / "unsplit.xlsx", seed=14))
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for c in row:
                if c.value in parts:
                    c.value = None
    wb.save(path)
    return _batch_codes(folder, path)


SCENARIOS.update({
    "text-table-mismatch": lambda d: _narrative(d, text_overview="本年度共收到政府信息公开申请9999件。"),
    "text-year-mismatch": lambda d: _narrative(d, "2019", 2020, text_overview="2019年，全区共受理政府信息公开申请21件。"),
    "narrative-too-long": lambda d: _narrative(d, text_overview="字" * 1001),
    "narrative-fee-missing": lambda d: _narrative(d, text_other="无"),
    "narrative-vague": lambda d: _narrative(d, text_problems="暂无"),
    "narrative-missing": lambda d: _narrative(d, text_problems=""),
    "other-share-high": _other_share,
    "row-not-split": _unsplit,
})
COPIED = ("本年度政务公开工作还存在一些不足：一是公开内容不够全面，部分栏目更新不及时；二是依申请公开答复的规范性有待提高；"
          "三是工作人员业务培训不够。下一步将加强培训，完善制度，提升公开质量。")


def _two_years(folder: Path) -> set[str]:
    """Last year's report and this year's of one office: the carry-over does not follow, 五 is copied."""
    last = _filled(folder / "last" / "甲.xlsx", seed=1, meta_year=2022, text_problems=COPIED,
                   **{"s3.carried_out.natural_person": 7, "s3.carried_out.total": 7})
    this = _filled(folder / "this" / "甲.xlsx", seed=2, meta_year=2023, text_problems=COPIED,
                   **{"s3.carried_in.natural_person": 1})
    return {f.code for w in validate_paths([this], workers=1, previous=[last]).workbooks for f in w.findings}


def _no_year_template(folder: Path) -> set[str]:
    from disclosure_xlsx.crossyear import last_year_template

    source = _filled(folder / "noyear.xlsx", meta_year=None)
    return _raised(lambda: last_year_template(folder / "new.xlsx", source))


def _bad_aliases(folder: Path) -> set[str]:
    from disclosure_xlsx.crossyear import read_aliases

    return _raised(lambda: read_aliases(_bytes(folder / "aliases.csv", "旧名称,新名称\n甲镇\n".encode("gbk"))))


SCENARIOS.update({"cross-year-mismatch": _two_years, "text-copied": _two_years,
                  "previous-year-unknown": _no_year_template, "aliases-unreadable": _bad_aliases})
def _review(folder: Path) -> set[str]:
    """A county's acceptance file: a line that matches nothing, one that names an error, one unusable file,
    and an acceptance asked for an error."""
    import datetime as dt

    from disclosure_xlsx.accept import apply_acceptances, accept_in_batch
    from disclosure_xlsx.acceptfile import Acceptance, AcceptanceFile, read_acceptances

    path = _edit(_filled(folder / "甲.xlsx"), "s3_granted_total", 999)
    batch = validate_paths([path], workers=1)
    entry = dict(office="甲镇", credit_code=None, year=2021, rule="identity-mismatch", cell="s3.granted.total", reason="属实",
                 by="张三", date=dt.date(2025, 3, 1), until=None, fingerprint=None)
    with _recorded() as codes:
        apply_acceptances(batch, AcceptanceFile(folder / "a.csv", [
            Acceptance(**entry, at=2), Acceptance(**{**entry, "office": "乙镇", "rule": "blank-cell"}, at=3)]))
        with pytest.raises(DisclosureError):
            read_acceptances(_write(folder / "b.csv", "单位名称,说明\n甲镇,x\n"))
        with pytest.raises(DisclosureError):
            accept_in_batch(batch, rule="identity-mismatch", cell=None, reason="", by="张三")
    return codes


SCENARIOS.update({code: _review for code in ("acceptance-file-invalid", "acceptance-invalid", "acceptance-unmatched",
                                              "acceptance-refused")})
def _misbehaving(path: str | Path, suggest: bool = True, own_outputs: bool = False):  # type: ignore[no-untyped-def]
    """A reader that aborts on one file and hangs on another (forked into the workers with the batch)."""
    import os

    from disclosure_xlsx.pipeline import check_file

    if Path(path).name == "abort.xlsx":
        os.abort()
    if Path(path).name == "hang.xlsx":
        hang_forever()
    return check_file(path, suggest=suggest, own_outputs=own_outputs)


def _isolated(folder: Path) -> set[str]:
    from disclosure_xlsx import pipeline

    _filled(folder / "abort.xlsx")
    _filled(folder / "hang.xlsx")
    real = (pipeline.check_file, pipeline.FILE_TIMEOUT_SECONDS)
    pipeline.check_file, pipeline.FILE_TIMEOUT_SECONDS = _misbehaving, 1.0  # type: ignore[assignment]
    try:
        return {f.code for w in validate_paths([folder], workers=2).workbooks for f in w.findings}
    finally:
        pipeline.check_file, pipeline.FILE_TIMEOUT_SECONDS = real  # type: ignore[assignment]


def _locked_folder(folder: Path) -> set[str]:
    import os

    from disclosure_xlsx.pipeline import check_file, discover

    inner = folder / "sub"
    _filled(inner / "b.xlsx")
    real = os.scandir, os.listdir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path) == inner:
            raise PermissionError(13, "Permission denied")
        return real[0](path)

    os.scandir, os.listdir = scandir, scandir  # type: ignore[assignment]
    try:
        return {c.problem.code for c in map(check_file, discover([folder])) if c.problem}
    finally:
        os.scandir, os.listdir = real


SCENARIOS.update({"file-reader-crashed": _isolated, "file-timeout": _isolated, "folder-unreadable": _locked_folder})
def _left_out(folder: Path) -> set[str]:
    """A roll-up that leaves workbooks out, each with its reason: another year, the wrong format for its
    year, one office twice (and, preferring the newest, the older of the two)."""
    files = [_filled(folder / "a.xlsx"), _filled(folder / "b" / "a.xlsx"), _filled(folder / "c.xlsx", meta_year=2022),
             _filled(folder / "d.xlsx", "2019", meta_year=2021), _filled(folder / "e.xlsx")]
    with _recorded() as codes:
        aggregate_paths(files, folder / "t.xlsx", office="县", year=2021, workers=1)
        aggregate_paths(files, folder / "t2.xlsx", office="县", year=2021, workers=1, prefer="newest")
    return codes


def _magnitude(folder: Path) -> set[str]:
    return _batch_codes(folder, _filled(folder / "yuan.xlsx", **{"s2.fees.amount": 125000}))


def _shifted(folder: Path) -> set[str]:
    """A stray number typed just right of section 三's table."""
    path = _filled(folder / "stray.xlsx", seed=3)
    wb = openpyxl.load_workbook(path)
    wb[get_format("2021").section("s3").sheet]["K9"] = 42
    wb.save(path)
    return _batch_codes(folder, path)


def _vanished(folder: Path) -> set[str]:
    """A file found by the search that is gone when it is read (moved by the clerk during the run)."""
    from disclosure_xlsx.pipeline import check_file, discover

    path = _filled(folder / "gone.xlsx")
    (found,) = discover([path])
    path.unlink()
    problem = check_file(found).problem
    return {problem.code} if problem else set()


def _output_folders(folder: Path) -> set[str]:
    from disclosure_xlsx.convert import convert_paths

    source = _filled(folder / "in" / "a.xlsx")
    convert_paths([source], folder / "cleaned", workers=1)
    (folder / "mine").mkdir()
    (folder / "mine" / "笔记.docx").write_bytes(b"x")
    return _raised(lambda: convert_paths([source], folder / "cleaned", workers=1)) | _raised(
        lambda: convert_paths([source], folder / "mine", workers=1))


SCENARIOS.update({code: _left_out for code in ("rollup-other-year", "rollup-wrong-format", "rollup-duplicate",
                                                "rollup-superseded")})
SCENARIOS.update({"money-magnitude": _magnitude, "value-outside-table": _shifted, "file-inaccessible": _vanished,
                  "output-exists": _output_folders, "output-not-empty": _output_folders})


def _output_refusals(folder: Path) -> set[str]:
    """The output side (issue 21): an input inside the output folder, a lock held by a live process, an
    output that is a file."""
    import json
    import os

    from disclosure_xlsx.convert import convert_paths
    from disclosure_xlsx.feedback import write_outputs
    from disclosure_xlsx.outputs import LOCK, _start_ticks

    out = folder / "out"
    codes = _raised(lambda: convert_paths([_filled(out / "x.xlsx")], out, workers=1))
    batch = validate_paths([_filled(folder / "in" / "a.xlsx")], workers=1)
    locked = folder / "locked"
    locked.mkdir()
    holder = os.getppid()  # a live process (the one that started the tests)
    (locked / LOCK).write_text(json.dumps({"pid": holder, "started": _start_ticks(holder)}), "utf-8")
    codes |= _raised(lambda: write_outputs(batch, locked, workers=1))
    (folder / "file.txt").write_text("mine", "utf-8")
    return codes | _raised(lambda: write_outputs(batch, folder / "file.txt", workers=1))


def _full_disk(folder: Path) -> set[str]:
    """The disk fills while the county overview is written (simulated: ENOSPC from its writer)."""
    import errno

    from disclosure_xlsx import feedback

    batch = validate_paths([_filled(folder / "a.xlsx")], workers=1)
    real = feedback._write_overview

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    feedback._write_overview = full  # type: ignore[assignment]
    try:
        return _raised(lambda: feedback.write_outputs(batch, folder / "out", workers=1))
    finally:
        feedback._write_overview = real  # type: ignore[assignment]


def _not_made(folder: Path) -> set[str]:
    """A published report whose text is longer than a cell holds: its cleaned workbook cannot be made."""
    from disclosure_xlsx.convert import convert_paths

    from .test_outputs import _long_text

    _, done = convert_paths([_long_text(folder / "long.txt")], folder / "out", workers=1)
    return {d.problem.code for d in done if d.problem is not None}


SCENARIOS.update({"output-is-input": _output_refusals, "output-locked": _output_refusals,
                  "output-not-writable": _output_refusals, "output-disk-full": _full_disk,
                  "output-not-made": _not_made})
SCENARIOS["document-no-text"] = _scanned_pdf
SCENARIOS["table-unaligned"] = _relabelled_page


def _web(folder: Path) -> set[str]:
    """The clerk's page (issue 22): an upload that cannot be taken, a working folder another server uses."""
    import io

    from disclosure_xlsx.workspace import Workspace

    codes = _raised(lambda: Workspace(folder / "a").store_uploads(2024, [("x.zip", io.BytesIO(b"PK\x03\x04 no zip"))]))
    with Workspace(folder / "b"):
        codes |= _raised(lambda: Workspace(folder / "b").open())
    return codes


SCENARIOS.update({"upload-refused": _web, "workdir-in-use": _web})


def test_every_code_has_a_scenario() -> None:
    assert sorted(set(catalog()) - set(SCENARIOS)) == []


_PRODUCED: dict[Callable[[Path], set[str]], set[str]] = {}  # a scenario shared by several codes runs once


@pytest.mark.parametrize("code", sorted(SCENARIOS))
def test_the_scenario_produces_its_code(code: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    scenario = SCENARIOS[code]
    if scenario not in _PRODUCED:
        _PRODUCED[scenario] = scenario(tmp_path_factory.mktemp("scenario") / "in")
    assert code in _PRODUCED[scenario]


def test_labels_read_workbooks_come_back_from_the_pool_with_their_own_positions(tmp_path: Path) -> None:
    """A workbook read by labels has its own cell positions, which must survive the trip from a worker."""
    moved = _no_names(_filled(tmp_path / "in" / "moved.xlsx", seed=3))
    wb = openpyxl.load_workbook(moved)
    for ws in wb.worksheets[1:4]:
        ws.insert_rows(1, 2)  # every table two rows lower than the standard workbook's
    wb.save(moved)
    _edit_by_labels = {f.cells[0].ref for f in validate_paths([moved], workers=1).workbooks[0].findings}
    for i in range(PAD):
        _filled(tmp_path / "in" / f"pad{i}.xlsx", seed=i)
    pooled = next(w for w in validate_paths([tmp_path / "in"], workers=2).workbooks if w.file == str(moved))
    alone = validate_paths([moved], workers=1).workbooks[0]
    assert pooled.report.located_by == "labels"
    assert pooled.report.where == alone.report.where
    standard = validate_paths([SAMPLES / "2024_示例县审计局.xlsx"], workers=1).workbooks[0].report.where
    assert pooled.report.where["s3.new.total"] != standard["s3.new.total"]
    assert {f.cells[0].ref for f in pooled.findings} == _edit_by_labels
