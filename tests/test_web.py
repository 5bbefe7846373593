"""The clerk's page (`disclosure-xlsx serve`), tested over real HTTP against the real command on a free
local port: the token, the Host header, CSRF, the upload limits, names that try to escape, office text
shown inert, rounds, acceptances and the roll-up; one test drives Debian's chromium through selenium.

One server serves the whole module (started as users start it); each test works in its own year.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import random
import re
import secrets
import shutil
import string
import struct
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import openpyxl
import pytest

from disclosure_xlsx.catalog import DisclosureError
from disclosure_xlsx.formats import get_format
from disclosure_xlsx.pipeline import validate_paths
from disclosure_xlsx.synthetic import balanced_report
from disclosure_xlsx.template import write_template
from disclosure_xlsx.workspace import MAX_UPLOAD_BYTES, Workspace

from .conftest import ROOT, SAMPLES

PACKAGE = ROOT / "disclosure_xlsx"
SCREENSHOT = ROOT / "docs" / "网页-结果.png"


@dataclass
class Server:
    process: subprocess.Popen[str]
    port: int
    token: str
    workdir: Path

    @property
    def cookie(self) -> str:
        return f"disclosure_xlsx_{self.port}={self.token}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("web") / "工作文件夹"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "disclosure_xlsx", "serve", "--no-browser", "--workdir",
                                str(workdir), "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()  # the address, printed once the port listens
    found = re.search(r"http://127\.0\.0\.1:(\d+)/\?token=([\w-]+)", line)
    assert found, (line, process.stderr.read() if process.poll() is not None else "")
    yield Server(process, int(found.group(1)), found.group(2), workdir)
    process.terminate()  # SIGTERM: the command stops cleanly and says so
    _, errors = process.communicate(timeout=30)
    assert process.returncode == 0, errors
    assert "已停止" in errors


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def call(server: Server, method: str, path: str, *, auth: str | None = "cookie", host: str | None = None,
         headers: dict[str, str] | None = None, body: bytes | None = None) -> Answer:
    """One request; `auth` is "cookie", "query", "bearer" or None."""
    sent = {"Host": f"127.0.0.1:{server.port}" if host is None else host, **(headers or {})}
    if auth == "cookie":
        sent["Cookie"] = server.cookie
    elif auth == "bearer":
        sent["Authorization"] = f"Bearer {server.token}"
    elif auth == "query":
        path += ("&" if "?" in path else "?") + f"token={server.token}"
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    try:
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def multipart(fields: list[tuple[str, str | tuple[str, bytes]]]) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body as browsers write it (file names as raw UTF-8)."""
    boundary = secrets.token_hex(12)
    out = io.BytesIO()
    for name, value in fields:
        out.write(f"--{boundary}\r\n".encode())
        if isinstance(value, tuple):
            filename, data = value
            out.write(f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'.encode())
            out.write(b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n")
        else:
            out.write(f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def post(server: Server, path: str, fields: list[tuple[str, str | tuple[str, bytes]]], *, auth: str | None = "cookie",
         csrf: bool = True, json_answer: bool = True) -> Answer:
    if csrf and auth == "cookie":
        fields = [("csrf", csrf_token(server)), *fields]
    body, headers = multipart(fields)
    if json_answer:
        headers["Accept"] = "application/json"
    return call(server, "POST", path, auth=auth, headers=headers, body=body)


def csrf_token(server: Server) -> str:
    page = call(server, "GET", "/?year=2000").text
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]


def wait(server: Server, job: str) -> dict[str, Any]:
    end = time.monotonic() + 120
    while time.monotonic() < end:
        state = call(server, "GET", f"/api/jobs/{job}").json()
        if state["state"] in ("done", "failed"):
            return state  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not finish")


def workbook(path: Path, office: str, *, year: int = 2024, seed: int = 1, broken: bool = False,
             **extra: object) -> Path:
    """A filled 2021-format workbook; `broken` adds 1 to a total (an I2 error)."""
    fmt = get_format("2021")
    values: dict[str, object] = {**balanced_report("2021", random.Random(seed)), fmt.field("office").name: office,
                                 fmt.field("year").name: year, **extra}
    if broken:
        values["s3.granted.total"] = int(values["s3.granted.total"]) + 1  # type: ignore[call-overload]
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_template(path, "2021", values=values)


def year_dir(server: Server, year: int) -> Path:
    return server.workdir / f"{year}年"


def _finding_keys(entry: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(f["code"], f["severity"], f["rule"], json.dumps(f["cells"], ensure_ascii=False), f["expected"],
             f["actual"], f["message"]["zh"], f["message"]["en"]) for f in entry["findings"]]


# ------------------------------------------------------------------------------------------------
# Who may connect


def test_the_token_is_required_then_kept_in_a_cookie(server: Server) -> None:
    refused = call(server, "GET", "/", auth=None)
    assert refused.status == 403 and "token" in refused.text
    assert call(server, "GET", f"/?token={'x' * len(server.token)}", auth=None).status == 403
    api = call(server, "GET", "/api/years/2024/report.json", auth=None)
    assert api.status == 403 and api.json()["error"] == "token"
    assert call(server, "GET", "/static/app.js", auth=None).status == 403

    first = call(server, "GET", "/?year=2024", auth="query")
    assert first.status == 303 and first.headers["location"] == "/?year=2024"  # the token leaves the address bar
    cookie = first.headers["set-cookie"]
    assert f"disclosure_xlsx_{server.port}={server.token}" in cookie and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()

    page = call(server, "GET", "/?year=2024")
    assert page.status == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
    assert call(server, "GET", "/api/jobs/none", auth="bearer").status == 404  # a tool may send the token as a header
    assert call(server, "GET", "/api/jobs/none", auth="query").status == 404


def test_a_host_other_than_this_machine_is_refused(server: Server) -> None:
    """A page of another site whose name resolves to 127.0.0.1 (DNS rebinding) sends its own Host."""
    for host in ("evil.example", f"evil.example:{server.port}", f"127.0.0.1.evil.example:{server.port}", ""):
        answer = call(server, "GET", "/", host=host)
        assert answer.status == 400, host
    assert call(server, "GET", "/?year=2024", host=f"localhost:{server.port}").status == 200
    for origin in ("http://evil.example", "null", "http://127.0.0.1:1", f"https://127.0.0.1:{server.port}"):
        foreign = call(server, "GET", "/api/jobs/x", headers={"Origin": origin})
        assert foreign.status == 403 and foreign.json()["error"] == "origin", origin
    assert call(server, "GET", "/api/jobs/x", headers={"Origin": f"http://localhost:{server.port}"}).status == 404


def test_a_post_needs_the_csrf_token_unless_it_carries_the_token(server: Server) -> None:
    fields = [("year", "2016")]
    assert post(server, "/recheck", fields, csrf=False).status == 403
    wrong = post(server, "/recheck", [("csrf", "0" * 32), *fields], csrf=False)
    assert wrong.status == 403 and wrong.json()["error"] == "csrf"
    assert post(server, "/recheck", fields).status == 202
    body, headers = multipart(fields)
    header_csrf = call(server, "POST", "/recheck", headers={**headers, "Accept": "application/json",
                                                            "X-CSRF-Token": csrf_token(server)}, body=body)
    assert header_csrf.status == 202
    assert post(server, "/recheck", fields, auth="query").status == 202  # a tool holding the token itself
    assert call(server, "GET", "/upload").status == 405  # a change is never a GET
    bad_year = post(server, "/recheck", [("year", "../../etc")])
    assert bad_year.status == 400 and bad_year.json()["error"] == "year"


def test_an_upload_must_state_its_size_within_the_limit(server: Server) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    connection.putrequest("POST", "/api/validate", skip_host=True)
    for name, value in (("Host", f"127.0.0.1:{server.port}"), ("Authorization", f"Bearer {server.token}"),
                        ("Content-Length", str(MAX_UPLOAD_BYTES + 2**21)), ("Content-Type", "multipart/form-data")):
        connection.putheader(name, value)
    connection.endheaders()  # nothing of the body is sent: the size alone is refused
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["error"] == "length"
    connection.close()
    chunked = call(server, "POST", "/api/validate", auth="bearer", headers={"Transfer-Encoding": "chunked"},
                   body=b"0\r\n\r\n")
    assert chunked.status == 413


# ------------------------------------------------------------------------------------------------
# Uploads


@pytest.fixture(scope="module")
def samples_batch(server: Server) -> Answer:
    """The sample workbooks sent to POST /api/validate (year 2023) by a tool holding the token."""
    files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.glob("*.xlsx"))]
    return post(server, "/api/validate", [("year", "2023"), *files], auth="bearer")


def test_an_upload_gets_the_same_findings_as_validate_json(server: Server, samples_batch: Answer) -> None:
    assert samples_batch.status == 200, samples_batch.body[:300]
    report = samples_batch.json()
    # what `validate --json --year 2023` prints: the page's year is the year collected, and no sample is of 2023
    expected = validate_paths([SAMPLES], workers=1, year=2023).to_dict()
    assert expected["summary"]["ok"] == 0 and expected["summary"]["with_warnings"] == 2
    assert report["summary"] == expected["summary"]
    got = {Path(w["file"]).name: w for w in report["workbooks"]}
    assert set(got) == {Path(w["file"]).name for w in expected["workbooks"]}
    for entry in expected["workbooks"]:
        mine = got[Path(entry["file"]).name]
        assert (mine["office"], mine["status"], mine["format"]) == (entry["office"], entry["status"], entry["format"])
        assert _finding_keys(mine) == _finding_keys(entry)
    batch = samples_batch.headers["x-batch"]
    assert call(server, "GET", f"/api/batches/{batch}/report.json", auth="bearer").json() == report
    assert all(Path(w["file"]).parent.parent.parent == year_dir(server, 2023) for w in report["workbooks"])
    record = call(server, "GET", samples_batch.headers["location"], auth="bearer").json()
    assert record["state"] == "done" and record["round"] == 1 and record["year"] == 2023
    assert all((year_dir(server, 2023) / f["stored"]).is_file() for f in record["files"])
    year = call(server, "GET", "/api/years/2023/report.json", auth="bearer").json()
    assert year["round"]["number"] == 1 and len(year["workbooks"]) == 10
    assert all(w["feedback_dir"].startswith("feedback/") for w in year["workbooks"])


def test_the_results_table_lists_every_office_with_its_first_problem(server: Server, samples_batch: Answer) -> None:
    page = call(server, "GET", "/?year=2023").text
    assert page.count('<tbody class="office') == 10
    assert page.count('<span class="status errors">有错误</span>') == 8
    assert page.count('<span class="status warnings">有警告</span>') == 2  # another year's report: a warning
    assert "第 1 轮：共 10 个工作簿，通过 0，有警告 2，有错误 8" in page
    assert "报告年度填的是 2020 年，本次收集的是 2023 年度的报告" in page
    i2 = next(w for w in samples_batch.json()["workbooks"] if w["office"] == "示例镇（I2 错误）")
    assert i2["findings"][0]["message"]["zh"] in page  # the first problem, and the office's findings under it
    english = call(server, "GET", "/?year=2023&lang=en")
    assert "Round 1: 10 workbooks, 0 ok, 2 with warnings" in english.text and i2["findings"][0]["message"]["en"] in english.text
    assert "disclosure_xlsx_lang" in english.headers["set-cookie"]
    call(server, "GET", "/?year=2023&lang=zh")


def test_downloads(server: Server, samples_batch: Answer) -> None:
    overview = call(server, "GET", "/download/2023/overview")
    assert overview.status == 200 and overview.body[:2] == b"PK"
    assert "filename*=utf-8''" in overview.headers["content-disposition"]
    folder = next(w["feedback_dir"] for w in call(server, "GET", "/api/years/2023/report.json").json()["workbooks"]
                  if w["office"] == "示例镇（I2 错误）" and w["year"] == 2024).split("/")[-1]
    one = call(server, "GET", f"/download/2023/feedback/{quote(folder)}")
    names = zipfile.ZipFile(io.BytesIO(one.body)).namelist()
    assert f"{folder}/反馈.txt" in names and any(n.endswith("_校验标注.xlsx") for n in names)
    everything = zipfile.ZipFile(io.BytesIO(call(server, "GET", "/download/2023/feedback.zip").body)).namelist()
    assert len({n.split("/")[0] for n in everything}) == 10
    for wrong in ("..", quote("../校验汇总.xlsx", safe=""), "nope", quote(folder + "/../..", safe="")):
        assert call(server, "GET", f"/download/2023/feedback/{wrong}").status == 404, wrong
    template = call(server, "GET", f"/template?year=2024&office={quote('某镇人民政府')}")
    assert template.status == 200 and quote("某镇人民政府2024年报模板.xlsx") in template.headers["content-disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(template.body))
    fmt = get_format("2021")
    destinations = {n: list(d.destinations)[0] for n, d in sheet.defined_names.items()}
    for role, value in (("office", "某镇人民政府"), ("year", 2024)):
        title, ref = destinations[fmt.field(role).name]
        assert sheet[title][ref.replace("$", "")].value == value


def test_a_zip_upload_and_a_zip_bomb(server: Server, tmp_path: Path) -> None:
    good = io.BytesIO()
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as archive:
        for p in sorted(SAMPLES.glob("2024_*.xlsx"))[:2]:
            archive.write(p, f"交回/{p.name}")
        archive.write(SAMPLES / "2024_示例县审计局.xlsx", "abcd.xlsx")  # renamed below as a Windows zip names it
        archive.writestr("说明.doc", b"not a workbook")
        archive.writestr("~$lock.xlsx", b"")
    windows = good.getvalue().replace(b"abcd.xlsx", "某镇.xlsx".encode("gbk"))  # GBK, without the UTF-8 flag
    started = post(server, "/upload", [("year", "2015"), ("files", ("报表.zip", windows))])
    assert started.status == 202
    record = call(server, "GET", started.json()["record"]).json()
    expected = [*sorted(p.name for p in SAMPLES.glob("2024_*.xlsx"))[:2], "某镇.xlsx"]
    assert [Path(f["stored"]).name for f in record["files"]] == expected
    assert [s["name"] for s in record["skipped"]] == ["报表.zip/说明.doc"]
    assert wait(server, started.json()["job"])["state"] == "done"

    before = sorted(p for p in year_dir(server, 2015).rglob("*"))
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.xlsx", b"")
    data = bytearray(bomb.getvalue())
    directory = data.index(b"PK\x01\x02")
    data[directory + 24:directory + 28] = struct.pack("<I", 4 * 2**30 - 1)  # says 4 GiB once inflated
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(1_001):
            archive.writestr(f"{i}.xlsx", b"")
    for name, payload, said in (("炸弹.zip", bytes(data), "解压后"), ("很多.zip", many.getvalue(), "1001 个文件"),
                                ("坏的.zip", b"PK\x03\x04 not a zip", "不是有效的 zip")):
        refused = post(server, "/upload", [("year", "2015"), ("files", ("a.xlsx", b"x")), ("files", (name, payload))])
        assert refused.status == 400 and refused.json()["error"] == "upload-refused", name
        assert said in refused.json()["message"]["zh"] and name in refused.json()["message"]["zh"]
    assert sorted(p for p in year_dir(server, 2015).rglob("*")) == before  # nothing stored, nothing inflated


def test_names_that_try_to_escape_stay_in_the_working_folder(server: Server) -> None:
    payload = (SAMPLES / "2024_示例县审计局.xlsx").read_bytes()
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("../../zip-slip.xlsx", payload)
        archive.writestr("/etc/absolute.xlsx", payload)
    names = ["../../escape.xlsx", "..\\..\\windows.xlsx", "/tmp/absolute-upload.xlsx", "CON.xlsx", "a:b|c?.xlsx",
             "\u202eevil.xlsx", "a..b.xlsx"]
    started = post(server, "/upload", [("year", "2022"), *(("files", (n, payload)) for n in names),
                                       ("files", ("inner.zip", inner.getvalue()))])
    assert started.status == 202, started.body
    record = call(server, "GET", started.json()["record"]).json()
    folder = year_dir(server, 2022) / "交回的报表" / "第1批"
    stored = [Path(f["stored"]) for f in record["files"]]
    assert len(stored) == len(names) + 2
    for path in stored:
        real = (year_dir(server, 2022) / path).resolve()
        assert real.parent == folder.resolve() and real.is_file(), path
        assert ".." not in path.name and "\\" not in path.name and ":" not in path.name
    assert "_CON.xlsx" in {p.name for p in stored}
    around = server.workdir.parent.parent  # the module's temporary folders
    for stray in ("escape.xlsx", "windows.xlsx", "zip-slip.xlsx", "absolute.xlsx"):
        assert all(server.workdir in p.parents for p in around.rglob(stray)), stray
    assert not Path("/tmp/absolute-upload.xlsx").exists() and not Path("/etc/absolute.xlsx").exists()
    wait(server, started.json()["job"])


def test_office_text_is_shown_as_text(server: Server, tmp_path: Path) -> None:
    hostile = "<script>alert(1)</script><img src=x onerror=alert(2)>某镇"
    path = workbook(tmp_path / "hostile.xlsx", hostile, broken=True)
    started = post(server, "/upload", [("year", "2021"), ("files", ("<b>名</b>.xlsx", path.read_bytes()))])
    assert wait(server, started.json()["job"])["state"] == "done"
    page = call(server, "GET", "/?year=2021").text
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "<b>名</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;某镇" in page
    script = (PACKAGE / "data" / "web" / "app.js").read_text("utf-8")
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "document.write" not in script


# ------------------------------------------------------------------------------------------------
# The year's work: rounds, acceptances, the roll-up


def test_sending_an_office_again_is_a_new_round(server: Server, tmp_path: Path) -> None:
    other = workbook(tmp_path / "乙镇.xlsx", "乙镇人民政府", year=2025, seed=2)
    first = workbook(tmp_path / "一" / "甲镇.xlsx", "甲镇人民政府", year=2025, broken=True)
    fixed = workbook(tmp_path / "二" / "甲镇.xlsx", "甲镇人民政府", year=2025)
    job = post(server, "/upload", [("year", "2025"), ("files", ("甲镇.xlsx", first.read_bytes())),
                                   ("files", ("乙镇.xlsx", other.read_bytes()))]).json()["job"]
    assert wait(server, job)["round"] == 1
    job = post(server, "/upload", [("year", "2025"), ("files", ("甲镇.xlsx", fixed.read_bytes()))]).json()["job"]
    assert wait(server, job)["round"] == 2
    report = call(server, "GET", "/api/years/2025/report.json").json()
    assert sorted(w["office"] for w in report["workbooks"]) == ["乙镇人民政府", "甲镇人民政府"]  # replaced, not added
    town = next(w for w in report["workbooks"] if w["office"] == "甲镇人民政府")
    assert town["status"] == "ok" and town["changes"]["fixed"] == 1 and town["changes"]["previous_round"] == 1
    results = year_dir(server, 2025) / "校验结果"
    assert all((results / "history" / f"第{n}轮" / "report.json").is_file() for n in (1, 2))
    uploads = year_dir(server, 2025) / "交回的报表"
    assert (uploads / "第1批" / "甲镇.xlsx").read_bytes() == first.read_bytes()  # the first submission is kept
    assert (uploads / "第2批" / "甲镇.xlsx").read_bytes() == fixed.read_bytes()
    page = call(server, "GET", "/?year=2025").text
    assert "与第 1 轮相比" in page and "已改正 1 个" in page


def test_the_right_years_file_replaces_another_years_sent_by_mistake(server: Server, tmp_path: Path) -> None:
    """An office sends last year's report to this year's page, is warned, and sends the right one: the
    page then holds the right one alone. The other way round, both stay: the page's own year is never
    replaced by a file of another year."""
    wrong = workbook(tmp_path / "一" / "丁镇.xlsx", "丁镇人民政府", year=2025)
    right = workbook(tmp_path / "二" / "丁镇.xlsx", "丁镇人民政府", year=2026)
    wait(server, post(server, "/upload", [("year", "2026"), ("files", ("丁镇.xlsx", wrong.read_bytes()))]).json()["job"])
    (entry,) = call(server, "GET", "/api/years/2026/report.json").json()["workbooks"]
    assert [f["code"] for f in entry["findings"]] == ["year-not-collected"]
    wait(server, post(server, "/upload", [("year", "2026"), ("files", ("丁镇.xlsx", right.read_bytes()))]).json()["job"])
    (entry,) = call(server, "GET", "/api/years/2026/report.json").json()["workbooks"]
    assert entry["year"] == 2026 and entry["status"] == "ok"
    wait(server, post(server, "/upload", [("year", "2026"), ("files", ("丁镇.xlsx", wrong.read_bytes()))]).json()["job"])
    report = call(server, "GET", "/api/years/2026/report.json").json()
    assert sorted(w["year"] for w in report["workbooks"]) == [2025, 2026]


def test_accepting_a_warning(server: Server, tmp_path: Path) -> None:
    """A 2021-format workbook for 2019 sent to the 2019 page: the format does not fit the year (X6), a warning the
    county may accept."""
    path = workbook(tmp_path / "丙镇.xlsx", "丙镇人民政府", year=2019)
    job = post(server, "/upload", [("year", "2019"), ("files", ("丙镇.xlsx", path.read_bytes()))]).json()["job"]
    wait(server, job)
    entry = call(server, "GET", "/api/years/2019/report.json").json()["workbooks"][0]
    warning = next(f for f in entry["findings"] if f["code"] == "format-year-mismatch")
    fields = [("year", "2019"), ("file", entry["file"]), ("code", warning["code"]), ("rule", warning["rule"] or ""),
              ("cell", ""), ("reason", "市里通知沿用本格式"), ("by", "张三")]
    assert post(server, "/accept", [f for f in fields if f[0] != "reason"]).status == 400  # a reason is required
    state = wait(server, post(server, "/accept", fields).json()["job"])
    assert state["state"] == "done", state
    entry = call(server, "GET", "/api/years/2019/report.json").json()["workbooks"][0]
    accepted = next(f for f in entry["findings"] if f["code"] == "format-year-mismatch")
    assert accepted["accepted"]["by"] == "张三" and entry["status"] == "ok"
    assert "市里通知沿用本格式" in (year_dir(server, 2019) / "认可.csv").read_text("utf-8-sig")
    page = call(server, "GET", "/?year=2019").text
    assert '<span class="tag">已认可</span>' in page and "（已认可：市里通知沿用本格式。" in page
    assert json.loads((year_dir(server, 2019) / "设置.json").read_text("utf-8"))["by"] == "张三"  # remembered


def test_adding_up_with_a_roster(server: Server, tmp_path: Path) -> None:
    files = [("files", (f"{name}.xlsx", workbook(tmp_path / f"{name}.xlsx", name, year=2023, seed=i).read_bytes()))
             for i, name in enumerate(("东镇人民政府", "西镇人民政府"), 3)]
    wait(server, post(server, "/upload", [("year", "2023"), *files]).json()["job"])
    roster = "单位名称,统一社会信用代码\n东镇人民政府,\n西镇人民政府,\n南镇人民政府,\n".encode("gbk")
    noted = post(server, "/roster", [("year", "2023"), ("file", ("名单.csv", roster))])
    assert noted.status == 200 and "3 个单位" in noted.json()["message"]["zh"]
    bad = post(server, "/roster", [("year", "2023"), ("file", ("坏名单.csv", "名称\n甲\n".encode()))])
    assert bad.status == 400 and bad.json()["error"] == "roster-invalid"
    state = wait(server, post(server, "/aggregate", [("year", "2023"), ("office", "某县人民政府")]).json()["job"])
    assert state["state"] == "done", state
    record = json.loads((year_dir(server, 2023) / "汇总" / "汇总结果.json").read_text("utf-8"))
    assert [w["office"] for w in record["result"]["included"]] == ["东镇人民政府", "西镇人民政府"]
    assert record["result"]["missing"] == [{"office": "南镇人民政府", "credit_code": None}]
    total = call(server, "GET", "/download/2023/total")
    assert total.status == 200 and total.body[:2] == b"PK"
    page = call(server, "GET", "/?year=2023").text
    shown = page[page.index('<div class="total"'):]
    assert "已汇总的单位（2 个）" in shown and "南镇人民政府" in shown.split("已汇总的单位")[1]
    zipped = call(server, "GET", "/template?year=2023&all=1")
    assert len(zipfile.ZipFile(io.BytesIO(zipped.body)).namelist()) == 3


def test_a_folder_on_this_machine(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "交回的报表"
    workbook(source / "北镇.xlsx", "北镇人民政府")
    (source / "备注.txt").write_text("not read: a folder is searched like validate searches it", "utf-8")
    before = {p: p.read_bytes() for p in source.rglob("*")}
    started = post(server, "/folder", [("year", "2018"), ("path", str(source))])
    assert wait(server, started.json()["job"])["state"] == "done"
    year = call(server, "GET", "/api/years/2018/report.json").json()
    assert [w["office"] for w in year["workbooks"]] == ["北镇人民政府"]
    assert {p: p.read_bytes() for p in source.rglob("*")} == before  # only read
    missing = post(server, "/folder", [("year", "2018"), ("path", str(tmp_path / "没有"))])
    assert missing.status == 400 and "找不到文件夹" in missing.json()["message"]["zh"]


def test_a_second_server_on_the_same_folder_or_port_is_refused(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DisclosureError) as refused:
        Workspace(server.workdir).open()
    assert refused.value.finding.code == "workdir-in-use"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args, said in ((["--workdir", str(server.workdir)], "正被另一个 disclosure-xlsx serve 使用"),
                       (["--workdir", str(tmp_path), "--port", str(server.port)], f"无法使用端口 {server.port}")):
        done = subprocess.run([sys.executable, "-m", "disclosure_xlsx", "serve", "--no-browser", *args],
                              capture_output=True, text=True, env=env, timeout=60)
        assert done.returncode == 2 and said in done.stderr, done.stderr


def test_nothing_is_lost_on_a_restart(tmp_path: Path) -> None:
    """A batch stored but not yet validated when the server stopped is validated at the next start."""
    path = workbook(tmp_path / "丁镇.xlsx", "丁镇人民政府")
    with Workspace(tmp_path / "w", workers=1) as first:
        first._enqueue = lambda job: job  # type: ignore[method-assign]  # as if stopped before the job ran
        job = first.store_uploads(2024, [("丁镇.xlsx", io.BytesIO(path.read_bytes()))])
        assert first.batch(job.id)["state"] == "queued"  # type: ignore[index]
    with Workspace(tmp_path / "w", workers=1) as again:
        resumed = again.job(job.id)
        assert resumed is not None and again.wait(resumed, 60).state == "done"
        assert again.year_report(2024)["workbooks"][0]["office"] == "丁镇人民政府"  # type: ignore[index]
        assert [p.name for p in again.current_files(2024)] == ["丁镇.xlsx"]


def test_the_page_shows_a_suggested_fix_and_escapes_what_it_shows(tmp_path: Path) -> None:
    """The page as rendered from a year's report.json that carries a suggestion (suggest.py) and hostile text."""
    from disclosure_xlsx.web import _environment
    from disclosure_xlsx.webview import page_context

    suggestion = {"outcome": "found", "unique": True, "alternatives": 0, "alternative_sets": [],
                  "more_alternatives": False, "rules": ["I2[granted]"], "method": "one-cell",
                  "cells": [{"id": "s3.granted.total", "sheet": "三、依申请公开", "ref": "J8", "value": 44,
                             "suggested": 43}]}
    finding = {"code": "identity-mismatch", "severity": "error", "rule": "I2[granted]", "expected": 43, "actual": 44,
               "cells": [{"id": "s3.granted.total", "sheet": "三、依申请公开", "ref": "J8"}],
               "message": {"zh": "J8 为 44 </td><script>x()</script>", "en": "J8 is 44"}}
    report = {"version": 1, "summary": {"workbooks": 1, "ok": 0, "with_warnings": 0, "with_errors": 1, "unreadable": 0},
              "round": {"number": 1, "previous": None, "repeat": False, "inputs": "0", "not_resubmitted": []},
              "workbooks": [{"file": "/x/<i>甲</i>.xlsx", "office": "甲镇\"><svg onload=alert(1)>", "credit_code": None,
                             "year": 2024, "format": "2021", "status": "errors", "located_by": "names",
                             "findings": [finding], "cleaning": [], "suggestion": suggestion,
                             "feedback_dir": "feedback/甲镇_2024"}]}
    workspace = Workspace(tmp_path)
    workspace.results_dir(2024).mkdir(parents=True)
    (workspace.results_dir(2024) / "report.json").write_text(json.dumps(report, ensure_ascii=False), "utf-8")
    for lang, said in (("zh", "最可能填错的是 J8：把 44 改为 43，所有勾稽关系即可成立。"),
                       ("en", "The most likely mistake is J8: change 44 to 43, and every identity holds.")):
        context = {**page_context(workspace, 2024, lang, None), "csrf": "0" * 32, "note": None}
        page = _environment().get_template("page.html").render(context)
        assert said in page
        assert "<svg" not in page and "<script>x()" not in page and "<i>甲" not in page
        assert "甲镇&#34;&gt;&lt;svg onload=alert(1)&gt;" in page
        assert f'href="/download/2024/feedback/{quote("甲镇_2024")}"' in page


# ------------------------------------------------------------------------------------------------
# The page's own files


def _template_keys() -> list[tuple[str, set[str]]]:
    page = (PACKAGE / "data" / "web" / "page.html").read_text("utf-8")
    return [(key, set(re.findall(r"(\w+)=", params or ""))) for key, params in
            re.findall(r"\bt\('([\w.]+)'(?:,\s*([^)]*))?\)", page)]


def test_every_word_of_the_page_is_in_the_words_data() -> None:
    words = tomllib.loads((PACKAGE / "data" / "words" / "web.toml").read_text("utf-8"))
    keys = _template_keys()
    assert len(keys) > 40
    for key, passed in keys:
        entry: Any = words
        for part in key.split("."):
            entry = entry[part]
        assert set(entry) == {"zh", "en"}, key
        needed = {f for v in entry.values() for _, f, _, _ in string.Formatter().parse(v) if f}
        assert needed <= passed, (key, needed - passed)
    cjk = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
    for asset in (PACKAGE / "data" / "web").iterdir():
        assert not cjk.search(asset.read_text("utf-8")), f"{asset.name} spells words of its own"
        assert "http://" not in asset.read_text("utf-8") and "https://" not in asset.read_text("utf-8"), asset.name


# ------------------------------------------------------------------------------------------------
# A real browser


def _browser(profile: Path) -> Any:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which("chromium") or Path("/usr/bin/chromium").exists()) or not (
            shutil.which("chromedriver") or Path("/usr/bin/chromedriver").exists()):
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1360,900", "--lang=zh-CN"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)


def test_a_real_browser_uploads_the_samples_and_reads_the_results(server: Server, tmp_path: Path,
                                                                  update_golden: bool) -> None:
    driver = _browser(tmp_path / "profile")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        driver.get(f"http://127.0.0.1:{server.port}/?year=2024&token={server.token}")
        assert urlsplit(driver.current_url).query == "year=2024"  # the token left the address bar
        driver.execute_script(  # files dropped on the box go into its input
            "const files = new DataTransfer(); files.items.add(new File(['x'], 'a.xlsx'));"
            "files.items.add(new File(['y'], 'b.xlsx'));"
            "document.getElementById('drop').dispatchEvent(new DragEvent('drop', {dataTransfer: files}));")
        assert driver.find_element(By.ID, "chosen").text == "已选择 2 个文件"
        assert driver.execute_script("return document.getElementById('files').files.length") == 2
        driver.execute_script("document.getElementById('files').value = ''")
        samples = sorted(SAMPLES.glob("*.xlsx"))
        driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in samples))
        assert driver.find_element(By.ID, "chosen").text == f"已选择 {len(samples)} 个文件"
        driver.find_element(By.ID, "upload-submit").click()
        WebDriverWait(driver, 120).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results-table tbody.office"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#results-table tbody.office")
        assert len(rows) == len(samples)
        manifest = {m["office"]: m for m in json.loads((SAMPLES / "manifest.json").read_text("utf-8"))}
        seen = []
        for row in rows:
            office = row.find_element(By.CSS_SELECTOR, "button.toggle").text
            status = row.find_element(By.CSS_SELECTOR, "span.status").text
            seen.append(office)
            expected = "有错误" if manifest[office]["errors"] else "通过" if manifest[office]["year"] == 2024 else "有警告"
            assert status == expected, office  # a 2020 sample on the 2024 page: another year's report
            if manifest[office]["errors"]:
                assert row.find_element(By.CSS_SELECTOR, "td.errors").text != "0"
                assert row.find_element(By.CSS_SELECTOR, "td.first").text
        assert sorted(set(seen)) == sorted(manifest)
        first = rows[0].find_element(By.CSS_SELECTOR, "button.toggle")
        first.click()
        details = rows[0].find_element(By.CSS_SELECTOR, "tr.details")
        assert details.is_displayed() and details.find_elements(By.CSS_SELECTOR, "ol.findings li")
        assert first.get_attribute("aria-expanded") == "true"
        assert "第 1 轮" in driver.find_element(By.ID, "summary").text
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert errors == []  # no script error, nothing refused by the page's Content-Security-Policy
        height = driver.execute_script("var r = document.getElementById('results'); "
                                        "return r.offsetTop + Math.min(r.offsetHeight, 900);")
        driver.set_window_size(1360, int(height) + 140)  # the page down to the first rows of the table
        driver.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "page.png"
        driver.save_screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if update_golden:  # pytest --update-golden refreshes the screenshot README shows
            shutil.copyfile(shot, SCREENSHOT)
    finally:
        driver.quit()
