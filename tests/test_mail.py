"""Sending each office its feedback: drafts opened again with the email package, and a real local SMTP server."""

from __future__ import annotations

import email
import json
import random
import shutil
import socket
from email import policy
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from typer.testing import CliRunner

from disclosure_xlsx.cli import PASSWORD_ENV, app
from disclosure_xlsx.feedback import write_outputs
from disclosure_xlsx.mail import log_path, parse_addresses, parse_server, plan_messages, write_drafts
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.roster import read_roster
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template

SENDER = "gk@linxi.example.gov.cn"
# (office on the cover, file name, with an error?, roster name, roster address)
OFFICES = [
    ("临溪县白沙镇人民政府", "白沙镇2024年报.xlsx", False, "临溪县白沙镇人民政府", "baisha@example.cn"),
    ("青石乡", "青石乡2024年报（修改稿）.xlsx", True, "青石乡人民政府", "qs@example.cn；qs-2@example.cn"),
    ("临溪县 石门乡人民政府", "石门乡.xlsx", True, "临溪县石门乡人民政府", "ＳＭ＠example．cn"),
    ("临溪县财政局", "财政局.xlsx", False, "临溪县财政局", ""),
    ("临溪县教育局", "教育局.xlsx", True, "临溪县教育局", "jyj@example"),
    ("东山乡人民政府", "东山乡.xlsx", False, None, None),
]
SENDABLE = {"临溪县白沙镇人民政府_2024", "青石乡_2024", "临溪县 石门乡人民政府_2024"}
SUBJECTS = {
    "临溪县白沙镇人民政府_2024": "临溪县白沙镇人民政府2024年政府信息公开工作年度报告校验结果（通过）",
    "青石乡_2024": "青石乡人民政府2024年政府信息公开工作年度报告校验结果（需修改）",
    "临溪县 石门乡人民政府_2024": "临溪县石门乡人民政府2024年政府信息公开工作年度报告校验结果（需修改）",
}
NEW_TEMPLATE = "青石乡_2024_新模板.xlsx"  # what the lead's pre-filled current template will be called


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `validate --out` folder of six offices and a GBK roster beside it."""
    root = tmp_path_factory.mktemp("county")
    for i, (office, file, wrong, _, _) in enumerate(OFFICES):
        values = {**balanced_report("2021", random.Random(i)), "meta_office": office, "meta_year": 2024}
        if wrong:
            values["s3.granted.total"] = int(values["s3.granted.total"] or 0) + 1
        write_template(root / "in" / file, "2021", values=values)
    (root / "in" / "损坏的文件.xlsx").write_bytes(b"PK\x03\x04 not really a workbook")  # whose office is unknown
    write_outputs(validate_paths([root / "in"], workers=1), root / "out", workers=1)
    write_template(root / "out" / "feedback" / "青石乡_2024" / NEW_TEMPLATE, "2021", values={"meta_office": "青石乡"})
    lines = ["单位名称,统一社会信用代码,上级单位,电子邮箱"] + [f"{name},,临溪县,{address}" for _, _, _, name, address
                                                             in OFFICES if name]
    (root / "名单.csv").write_text("\r\n".join(lines) + "\r\n", encoding="gbk")
    return root


@pytest.fixture
def county(pristine: Path, tmp_path: Path) -> Path:
    shutil.copytree(pristine, tmp_path / "county")
    return tmp_path / "county"


def _send(county: Path, *args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(app, ["send", str(county / "out"), "--roster", str(county / "名单.csv"), *args],
                                env={"COLUMNS": "200", **(env or {})})
    assert "Traceback" not in result.output, result.output
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    """An aiosmtpd handler that keeps what arrives; from message `fail_from` on it answers `reply`."""

    def __init__(self, fail_from: int | None = None, reply: str = "451 4.3.0 try again later",
                 hang_up: bool = False) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.tried = 0
        self.fail_from, self.reply, self.hang_up = fail_from, reply, hang_up
        self.controller: Controller | None = None

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.tried += 1
        if self.fail_from is not None and self.tried >= self.fail_from:
            if self.hang_up and self.controller is not None:
                self.controller.server.close()  # no new connection from now on: the server is "down"
            return self.reply
        self.messages.append((list(envelope.rcpt_tos), email.message_from_bytes(envelope.content,
                                                                                policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp_server():
    started: list[Controller] = []

    def start(handler: Inbox, **smtp_options) -> int:
        port = _free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_options)
        handler.controller = controller
        controller.start()
        started.append(controller)
        return port

    yield start
    for controller in started:
        try:
            controller.stop()
        except Exception:  # a server the test closed itself
            pass


def _folder_of(message: email.message.EmailMessage) -> str:
    return next(k for k, v in SUBJECTS.items() if v == message["Subject"])


# ------------------------------------------------------------------------------------------------


def test_report_json_names_each_office_feedback_folder(pristine: Path) -> None:
    report = json.loads((pristine / "out" / "report.json").read_text("utf-8"))
    folders = [w["feedback_dir"] for w in report["workbooks"]]
    assert len(folders) == len(OFFICES) + 1 == len(set(folders))
    for entry in report["workbooks"]:
        folder = pristine / "out" / entry["feedback_dir"]
        assert entry["feedback_dir"].startswith("feedback/") and (folder / "反馈.txt").is_file()
        assert (entry["office"] or "损坏的文件.xlsx") in (folder / "反馈.txt").read_text("utf-8")


def test_drafts_open_again_with_the_email_package(county: Path) -> None:
    result = _send(county)
    assert result.exit_code == 1, result.output  # four offices cannot be sent to
    drafts = county / "out" / "邮件草稿"
    assert {p.stem for p in drafts.iterdir()} == SENDABLE
    for path in drafts.iterdir():
        raw = path.read_bytes()
        assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 998  # 7-bit, RFC 5322 lines
        message = email.message_from_bytes(raw, policy=policy.default)
        folder = county / "out" / "feedback" / path.stem
        assert message["Subject"] == SUBJECTS[path.stem] and message["From"] is None and message["X-Unsent"] == "1"
        plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        page = message.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert plain == (folder / "反馈.txt").read_text("utf-8") and page == (folder / "反馈.html").read_text("utf-8")
        expected = sorted(p.name for p in folder.iterdir() if p.suffix == ".xlsx")
        attachments = list(message.iter_attachments())
        assert sorted(a.get_filename() for a in attachments) == expected
        for part in attachments:
            assert part.get_content() == (folder / part.get_filename()).read_bytes()
            assert part.get_content_type() == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        legacy = email.message_from_bytes(raw, policy=policy.compat32)  # as an older client reads `name=`
        names = [str(make_header(decode_header(p.get_param("name")))) for p in legacy.walk()
                 if p.get_content_maintype() == "application"]
        assert sorted(names) == expected
    qingshi = email.message_from_bytes((drafts / "青石乡_2024.eml").read_bytes(), policy=policy.default)
    assert [(a.display_name, a.addr_spec) for a in qingshi["To"].addresses] == [
        ("青石乡人民政府", "qs@example.cn"), ("青石乡人民政府", "qs-2@example.cn")]
    assert {a.get_filename() for a in qingshi.iter_attachments()} == {"青石乡2024年报（修改稿）_校验标注.xlsx", NEW_TEMPLATE}
    shimen = email.message_from_bytes((drafts / "临溪县 石门乡人民政府_2024.eml").read_bytes(), policy=policy.default)
    assert [a.addr_spec for a in shimen["To"].addresses] == ["SM@example.cn"]  # full-width ＠ and ． read as ASCII
    baisha = email.message_from_bytes((drafts / "临溪县白沙镇人民政府_2024.eml").read_bytes(), policy=policy.default)
    assert not list(baisha.iter_attachments())  # passed: no annotated copy, the summary says 通过
    out = result.stdout
    assert "名单第 5 行“临溪县财政局”没有填写电子邮箱，没有发送" in out
    assert "名单第 6 行“临溪县教育局”的电子邮箱“jyj@example”不是有效的邮箱地址" in out
    assert "“东山乡人民政府”不在名单中" in out
    assert "无法确定文件“损坏的文件.xlsx”是哪个单位报送的" in out and "feedback/损坏的文件" in out
    assert "对应名单中的“青石乡人民政府”" in out and "已写出 3 份邮件草稿" in out and "跳过 3 个，失败 1 个" in out


def test_drafts_replace_the_previous_run_and_never_a_clerks_file(county: Path) -> None:
    drafts = county / "out" / "邮件草稿"
    drafts.mkdir()
    (drafts / "旧单位_2023.eml").write_bytes(b"Subject: old\r\n\r\nold\r\n")
    assert _send(county).exit_code == 1
    assert {p.stem for p in drafts.iterdir()} == SENDABLE  # exactly this run's drafts
    (drafts / "说明.txt").write_text("clerk's notes", "utf-8")
    refused = _send(county)
    assert refused.exit_code == 2 and "说明.txt" in refused.stderr
    assert (drafts / "说明.txt").read_text("utf-8") == "clerk's notes"


def test_only_failed_skips_the_offices_that_passed(county: Path) -> None:
    plan = plan_messages(county / "out", read_roster(county / "名单.csv"), only_failed=True)
    skipped = {Path(o.feedback.folder).name for o in plan if o.skip}
    assert skipped == {"临溪县白沙镇人民政府_2024", "临溪县财政局_2024", "东山乡人民政府_2024"}  # all that passed
    deliveries = write_drafts(plan, county / "drafts")
    assert {d.outcome for d in deliveries if Path(d.outgoing.feedback.folder).name in skipped} == {"passed"}
    assert {p.stem for p in (county / "drafts").iterdir()} == SENDABLE - skipped
    assert sum(d.problem for d in deliveries) == 2  # 教育局 (a bad address) and the unreadable file


def test_an_incomplete_feedback_folder_is_listed_not_sent(county: Path) -> None:
    (county / "out" / "feedback" / "青石乡_2024" / "反馈.html").unlink()
    plan = plan_messages(county / "out", read_roster(county / "名单.csv"))
    broken = next(o for o in plan if Path(o.feedback.folder).name == "青石乡_2024")
    assert broken.message is None and broken.problem.code == "mail-folder-missing"
    assert "缺少 反馈.html" in broken.problem.message() and "feedback/青石乡_2024" in broken.problem.message()
    report = json.loads((county / "out" / "report.json").read_text("utf-8"))
    for entry in report["workbooks"]:
        entry["feedback_dir"] = "../in"  # a report.json that points outside its folder is not followed
    (county / "out" / "report.json").write_text(json.dumps(report, ensure_ascii=False), "utf-8")
    plan = plan_messages(county / "out", read_roster(county / "名单.csv"))
    assert not [o for o in plan if o.message is not None]
    assert {o.problem.code for o in plan if o.entry and o.entry.email and "@example.cn" in o.entry.email} == {
        "mail-folder-missing"}


def test_a_message_over_the_size_limit_is_not_sent_and_says_so(county: Path) -> None:
    plan = plan_messages(county / "out", read_roster(county / "名单.csv"), max_bytes=30_000)
    big = next(o for o in plan if Path(o.feedback.folder).name == "青石乡_2024")
    assert big.message is None and big.problem.code == "mail-too-large"
    assert "超过 29.3 KiB 的上限" in big.problem.message() and big.size > 30_000
    small = next(o for o in plan if Path(o.feedback.folder).name == "临溪县白沙镇人民政府_2024")
    assert small.message is not None and small.size < 30_000


def test_sending_to_a_local_smtp_server_and_a_rerun_sends_nothing_twice(county: Path, smtp_server) -> None:
    inbox = Inbox()
    port = smtp_server(inbox)
    args = ["--smtp", f"127.0.0.1:{port}", "--security", "plain", "--no-login", "--from", SENDER]
    result = _send(county, *args)
    assert result.exit_code == 1, result.output  # the three offices without a usable address
    assert len(inbox.messages) == 3 and "已发送 3 封，跳过 3 封，失败 1 封" in result.stdout
    arrived = {_folder_of(m): (to, m) for to, m in inbox.messages}
    assert set(arrived) == SENDABLE
    to, message = arrived["青石乡_2024"]
    assert to == ["qs@example.cn", "qs-2@example.cn"] and message["From"] == SENDER
    assert message["X-Unsent"] is None  # only drafts carry it
    assert {a.get_filename() for a in message.iter_attachments()} == {"青石乡2024年报（修改稿）_校验标注.xlsx", NEW_TEMPLATE}
    log = [json.loads(line) for line in log_path(county / "out").read_text("utf-8").splitlines()]
    assert sorted(r["outcome"] for r in log) == ["sent"] * 3
    again = _send(county, *args)
    assert len(inbox.messages) == 3 and "已发送 0 封，跳过 6 封" in again.stdout  # nothing sent twice
    assert again.stdout.count("以前已发送，跳过") == 3
    assert _send(county, *args, "--resend").exit_code == 1 and len(inbox.messages) == 6


def test_a_server_failing_mid_batch_and_a_rerun_that_sends_only_the_rest(county: Path, smtp_server) -> None:
    failing = Inbox(fail_from=2)
    port = smtp_server(failing)
    args = ["--security", "plain", "--no-login", "--from", SENDER]
    first = _send(county, "--smtp", f"127.0.0.1:{port}", *args)
    assert first.exit_code == 1 and len(failing.messages) == 1
    assert "已发送 1 封，跳过 3 封，失败 3 封" in first.stdout
    assert first.stdout.count("邮件服务器拒收了") == 2 and "451 4.3.0 try again later" in first.stdout
    healthy = Inbox()
    second = _send(county, "--smtp", f"127.0.0.1:{smtp_server(healthy)}", *args)
    assert len(healthy.messages) == 2 and "已发送 2 封" in second.stdout
    assert {_folder_of(m) for _, m in failing.messages + healthy.messages} == SENDABLE  # each office once


def test_a_server_that_goes_down_mid_batch_leaves_the_rest_for_the_rerun(county: Path, smtp_server) -> None:
    dying = Inbox(fail_from=2, reply="421 4.3.2 shutting down", hang_up=True)
    port = smtp_server(dying)
    args = ["--security", "plain", "--no-login", "--from", SENDER]
    first = _send(county, "--smtp", f"127.0.0.1:{port}", *args)
    assert first.exit_code == 1 and len(dying.messages) == 1 and dying.tried == 2  # the third was never tried
    assert "无法连接邮件服务器" in first.stdout and "重新运行时只发送未发出的邮件" in first.stdout
    healthy = Inbox()
    second = _send(county, "--smtp", f"127.0.0.1:{smtp_server(healthy)}", *args)
    assert second.exit_code == 1 and len(healthy.messages) == 2
    assert {_folder_of(m) for _, m in dying.messages + healthy.messages} == SENDABLE


def test_the_password_comes_from_the_environment_and_is_never_written(county: Path, smtp_server) -> None:
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == "s3cret-pass".encode(), handled=False)  # False: it replies 535

    inbox = Inbox()
    port = smtp_server(inbox, authenticator=authenticator, auth_require_tls=False)
    args = ["--smtp", f"127.0.0.1:{port}", "--security", "plain", "--from", SENDER]
    result = _send(county, *args, env={PASSWORD_ENV: "s3cret-pass"})
    assert len(inbox.messages) == 3, result.output
    assert logins == [(SENDER.encode(), "s3cret-pass".encode())]
    for path in county.rglob("*"):
        if path.is_file():
            assert "s3cret".encode() not in path.read_bytes(), path
    wrong = _send(county, *args, "--resend", env={PASSWORD_ENV: "wrong"})
    assert wrong.exit_code == 1 and "拒绝登录" in wrong.stdout and len(inbox.messages) == 3, wrong.stdout
    chinese = _send(county, *args, "--resend", env={PASSWORD_ENV: "口令"})
    assert chinese.exit_code == 1 and "密码含有中文" in chinese.stdout and len(inbox.messages) == 3
    no_password = _send(county, *args)  # no terminal to prompt in, no variable set
    assert no_password.exit_code == 2 and PASSWORD_ENV in no_password.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["--smtp", "smtp.example.cn"], "--from"),
    (["--smtp", "smtp.example.cn", "--from", SENDER, "--drafts", "x"], "只能选一个"),
    (["--smtp", "smtp.example.cn", "--from", "gk@"], "不是有效的邮箱地址"),
    (["--smtp", "smtp.example.cn:99999", "--from", SENDER], "主机:端口"),
    (["--smtp", "smtp.example.cn", "--from", SENDER, "--security", "plain"], "明文"),
])
def test_usage_errors_exit_2_before_anything_is_sent(county: Path, args: list[str], expected: str) -> None:
    result = _send(county, *args)
    assert result.exit_code == 2 and expected in "".join(result.stderr.split()), result.output
    assert not log_path(county / "out").exists()


def test_a_roster_without_addresses_or_a_folder_without_report_is_a_usage_error(county: Path) -> None:
    (county / "名单.csv").write_text("单位名称\n临溪县财政局\n", encoding="utf-8")
    result = _send(county)
    assert result.exit_code == 2 and "没有“电子邮箱”列" in "".join(result.stderr.split())
    (county / "名单.csv").write_text("单位名称,电子邮箱\n临溪县财政局,a@example.cn\n", encoding="utf-8")
    (county / "out" / "report.json").unlink()
    result = _send(county)
    said = "".join(result.stderr.split())  # wrapped to the terminal wherever the (long) path puts the break
    assert result.exit_code == 2 and "不是校验结果文件夹" in said and "validate" in said


def test_addresses_and_servers_are_parsed_as_clerks_type_them() -> None:
    assert parse_addresses("a@b.cn；c@d.com.cn, a@b.cn") == (["a@b.cn", "c@d.com.cn"], [])
    assert parse_addresses("ａ＠ｂ．ｃｎ") == (["a@b.cn"], [])
    assert parse_addresses("张三 a@b.cn") == (["a@b.cn"], ["张三"])
    assert parse_addresses("a@b")[1] == ["a@b"] and parse_addresses("a..b@c.cn")[1] == ["a..b@c.cn"]
    assert parse_addresses("") == ([], [])
    assert (parse_server("smtp.x.cn").port, parse_server("smtp.x.cn", "ssl").port) == (587, 465)
    assert str(parse_server("[::1]:2525", "plain")) == "::1:2525"
    for bad in ("smtp x", "host:0", "host:port"):
        with pytest.raises(ValueError):
            parse_server(bad)
