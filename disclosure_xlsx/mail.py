"""Send each office its feedback: one message per office of a `validate --out` folder, to its roster address.

Every message is built once — subject, the 反馈 text as plain and HTML parts, the workbooks of the
office's folder attached — and then either written as an .eml draft for review or sent over SMTP.
Chinese names are encoded for every mail client: headers per RFC 2047 (the email package, policy
SMTP), attachment names per RFC 2231 with an RFC 2047 `name=` beside it, which older clients read.

A log of JSON lines in the folder records each message sent, keyed by its content, so a rerun sends
only what was not sent, and nothing twice. The library never reads a password from the environment or
a prompt: the command line does, and no file written here ever holds it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import smtplib
import ssl
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, compat32
from email.utils import encode_rfc2231, formatdate, make_msgid
from pathlib import Path
from typing import Any

from .catalog import DisclosureError, Finding, bilingual, text
from .feedback import PAGE, REPORT, TEXT
from .formats import all_formats, current_format
from .roster import Roster, RosterEntry, RosterMatch, match_roster, suggestion_text

__all__ = ["MAX_MESSAGE_BYTES", "PORTS", "Delivery", "Feedback", "Outgoing", "Server", "log_path", "parse_addresses",
           "parse_server", "plan_messages", "read_feedback", "send_messages", "summary", "write_drafts"]

MAX_MESSAGE_BYTES = 20 * 1024 * 1024  # what most government and public mailboxes accept per message
PORTS = {"starttls": 587, "ssl": 465, "plain": 25}
TIMEOUT = 30.0  # seconds per SMTP operation
# Headers set here are folded by the email package; the attachment headers below are written as built.
_POLICY = SMTP.clone(refold_source="none")
_MIME = {".xlsx": "vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         ".xlsm": "vnd.ms-excel.sheet.macroEnabled.12"}
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                      r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}")
_SEPARATORS = re.compile("[\\s,;\u3001]+")  # after NFKC: spaces, commas, semicolons, the enumeration comma
_SKIPPED = {"mail-no-address", "mail-not-on-roster", "mail-office-unknown", "mail-folder-missing"}


@dataclass(frozen=True, slots=True)
class Feedback:
    """One workbook of report.json and the folder its feedback is in (relative to the output folder)."""

    folder: str
    file: str
    office: str | None
    credit_code: str | None
    year: int | None
    status: str
    format_id: str | None

    @property
    def passed(self) -> bool:
        return self.status in ("ok", "warnings")


@dataclass(frozen=True)
class Outgoing:
    """The message for one office, or why there is none (`problem`); `skip` for a passed office under
    --only-failed. `key` identifies the content, so the log can tell whether it was sent."""

    feedback: Feedback
    entry: RosterEntry | None = None
    how: str | None = None  # how the office matched its roster entry
    to: tuple[str, ...] = ()
    subject: str = ""
    attachments: tuple[str, ...] = ()
    message: EmailMessage | None = None
    size: int = 0
    key: str = ""
    problem: Finding | None = None
    skip: bool = False

    @property
    def office(self) -> str:
        return self.entry.office if self.entry else self.feedback.office or Path(self.feedback.file).name


@dataclass(frozen=True)
class Delivery:
    """What became of one office's message: sent, drafted, already-sent, passed, skipped or failed."""

    outgoing: Outgoing
    outcome: str
    finding: Finding | None = None
    path: Path | None = None  # the draft written
    refused: tuple[str, ...] = ()  # recipients the server refused while it took the others

    @property
    def category(self) -> str:
        """sent | skipped | failed, as the summary counts them."""
        if self.outcome in ("sent", "drafted"):
            return "sent"
        return "failed" if self.outcome == "failed" else "skipped"

    @property
    def problem(self) -> bool:
        """Something the clerk must act on (a skip by --only-failed or an earlier send is none)."""
        return self.finding is not None or bool(self.refused)


@dataclass(frozen=True, slots=True)
class Server:
    """Where and how to send: security is starttls, ssl or plain; no login when `user` is None."""

    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    timeout: float = TIMEOUT

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


# ------------------------------------------------------------------------------------------------
# Reading the output folder and planning the messages


def read_feedback(out: str | Path) -> list[Feedback]:
    """The workbooks of a `validate --out` folder, each with its feedback folder, from report.json.

    Raises:
        DisclosureError: `mail-feedback-invalid` when `out` is not such a folder.
    """
    out = Path(out)
    if not out.is_dir():
        _invalid(out, "no_folder")
    if not (out / REPORT).is_file():
        _invalid(out, "no_report", report=REPORT)
    try:
        workbooks = json.loads((out / REPORT).read_text("utf-8"))["workbooks"]
        entries = [(w, w.get("feedback_dir")) for w in workbooks]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        _invalid(out, "bad_report", report=REPORT, detail=type(exc).__name__)
    if any(not isinstance(folder, str) for _, folder in entries):
        _invalid(out, "no_feedback_dir", report=REPORT)
    return [Feedback(folder, str(w.get("file") or ""), w.get("office"), w.get("credit_code"),
                     w.get("year") if isinstance(w.get("year"), int) else None, str(w.get("status")), w.get("format"))
            for w, folder in entries]


def _invalid(out: Path, reason: str, **params: Any) -> None:
    raise DisclosureError(Finding("mail-feedback-invalid", params={
        "folder": str(out), "reason": bilingual(text(f"mail.reason.{reason}", "zh", **params),
                                                text(f"mail.reason.{reason}", "en", **params))}))


def plan_messages(out: str | Path, roster: Roster, *, sender: str | None = None, only_failed: bool = False,
                  max_bytes: int = MAX_MESSAGE_BYTES) -> list[Outgoing]:
    """One message per workbook of the folder, to its office's roster address, or the reason there is none.

    Offices are matched to the roster as the roll-up matches them (roster.match_roster).
    """
    out = Path(out)
    feedback = read_feedback(out)
    match = match_roster(roster, feedback)
    plan = []
    for item in feedback:
        pair = match.pair_for(item)
        plan.append(_plan_one(out, item, pair.entry if pair else None, pair.how if pair else None, match, sender,
                              only_failed, max_bytes))
    return plan


def _plan_one(out: Path, item: Feedback, entry: RosterEntry | None, how: str | None, match: RosterMatch[Feedback],
              sender: str | None, only_failed: bool, max_bytes: int) -> Outgoing:
    base = Outgoing(item, entry, how)
    folder = (out / item.folder).resolve()
    if not item.office:
        return _with(base, Finding("mail-office-unknown", params={"file": Path(item.file).name, "folder": item.folder}))
    if only_failed and item.passed:
        return Outgoing(item, entry, how, skip=True)
    if entry is None:
        hint = {"zh": "", "en": ""}
        for s in match.suggestions_for(item)[:1]:
            hint = {lang: text("mail.not_on_roster_hint", lang, line=s.entry.line or "—", entry=s.entry.office,
                               why=suggestion_text(s, lang)) for lang in ("zh", "en")}
        return _with(base, Finding("mail-not-on-roster", params={"office": item.office, "hint": hint}))
    line = entry.line if entry.line is not None else "—"
    valid, invalid = parse_addresses(entry.email or "")
    if invalid:
        return _with(base, Finding("mail-address-invalid", params={"line": line, "office": entry.office,
                                                                 "address": entry.email}))  # as written
    if not valid:
        return _with(base, Finding("mail-no-address", params={"line": line, "office": entry.office}))
    missing = [name for name in (TEXT, PAGE) if not (folder / name).is_file()] or [item.folder]
    if not folder.is_relative_to(out.resolve()) or not (folder / TEXT).is_file() or not (folder / PAGE).is_file():
        return _with(base, Finding("mail-folder-missing", params={
            "office": entry.office, "folder": item.folder,
            "missing": {lang: text("roster.lists.separator", lang).join(missing) for lang in ("zh", "en")}}))
    plain = (folder / TEXT).read_text("utf-8")
    page = (folder / PAGE).read_text("utf-8")
    files = _attachments(folder)
    subject = _subject(entry.office, item)
    message = _message(subject, entry.office, valid, sender, plain, page, files)
    size = len(message.as_bytes())
    key = hashlib.sha256(json.dumps([item.folder, valid, subject, plain, [f.name for f in files]],
                                    ensure_ascii=False).encode("utf-8")).hexdigest()[:32]
    planned = Outgoing(item, entry, how, tuple(valid), subject, tuple(f.name for f in files), message, size, key)
    if size > max_bytes:
        return _with(planned, Finding("mail-too-large", params={"office": entry.office, "size": _mib(size),
                                                                 "limit": _mib(max_bytes)}))
    return planned


def _with(outgoing: Outgoing, problem: Finding) -> Outgoing:
    return Outgoing(outgoing.feedback, outgoing.entry, outgoing.how, outgoing.to, outgoing.subject,
                    outgoing.attachments, None, outgoing.size, outgoing.key, problem)


def _mib(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size / 1024:.1f} KiB"


def parse_addresses(raw: str) -> tuple[list[str], list[str]]:
    """The addresses of a roster cell (several may be separated by ; , 、 or spaces): valid, invalid.

    Full-width forms (＠, ．) are read as ASCII. Only plain ASCII addresses are accepted.
    """
    parts = [p for p in _SEPARATORS.split(unicodedata.normalize("NFKC", raw).strip()) if p]
    valid = list(dict.fromkeys(p for p in parts if _ADDRESS.fullmatch(p) and len(p) <= 254))
    return valid, [p for p in parts if not (_ADDRESS.fullmatch(p) and len(p) <= 254)]


def _subject(office: str, item: Feedback) -> str:
    fmt = all_formats().get(item.format_id or "") or current_format()
    verdict = text("mail.verdict.passed" if item.passed else "mail.verdict.failed")
    key = "mail.subject" if item.year else "mail.subject_no_year"
    return text(key, "zh", office=office, year=item.year, report=fmt.words.report_name, verdict=verdict)


def _attachments(folder: Path) -> list[Path]:
    """Every workbook of the office's folder: the annotated copy and, when there is one, the new template."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _MIME
                  and not p.name.startswith((".", "~$")))


def _message(subject: str, office: str, to: Sequence[str], sender: str | None, plain: str, page: str,
             files: Sequence[Path]) -> EmailMessage:
    message = EmailMessage(policy=_POLICY)
    message["Subject"] = subject
    if sender:
        message["From"] = sender
    message["To"] = [Address(display_name=office, addr_spec=a) for a in to]
    message["Date"] = formatdate(localtime=True)
    domain = sender.rpartition("@")[2].strip(">") if sender else "disclosure-xlsx.invalid"
    message["Message-ID"] = make_msgid(domain=domain)  # a domain given: no DNS look-up
    message.set_content(plain, cte="base64")  # base64: no 8-bit line ever reaches a server without 8BITMIME
    message.add_alternative(page, subtype="html", cte="base64")
    if files:
        message.make_mixed()
        for path in files:
            message.attach(_attachment(path))
    return message


def _attachment(path: Path) -> EmailMessage:
    """An attached workbook whose Chinese name every client shows: RFC 2231 `filename*` (the standard)
    and an RFC 2047 `name=` (what Outlook and older webmail read).

    The email package would rewrite `name=` as RFC 2231 too, so these headers are built here and kept
    as they are (a compat32 part, written under a policy that does not refold them).
    """
    part = EmailMessage(policy=compat32)
    words = "\n ".join(_encoded_words(path.name))
    part["Content-Type"] = f'application/{_MIME[path.suffix.lower()]};\n name="{words}"'
    part["Content-Transfer-Encoding"] = "base64"
    part["Content-Disposition"] = f"attachment;\n filename*={encode_rfc2231(path.name, 'utf-8')}"
    part.set_payload(base64.encodebytes(path.read_bytes()).decode("ascii"))
    return part


def _encoded_words(name: str) -> Iterator[str]:
    """RFC 2047 encoded words of at most 75 characters, never splitting a character."""
    chunk = ""
    for char in name:
        if len((chunk + char).encode("utf-8")) > 45:
            yield f"=?utf-8?b?{base64.b64encode(chunk.encode('utf-8')).decode('ascii')}?="
            chunk = ""
        chunk += char
    yield f"=?utf-8?b?{base64.b64encode(chunk.encode('utf-8')).decode('ascii')}?="


# ------------------------------------------------------------------------------------------------
# Drafts


def write_drafts(plan: Sequence[Outgoing], folder: str | Path) -> list[Delivery]:
    """One .eml per office into `folder`, which afterwards holds exactly this run's drafts.

    The folder is built beside the old one and swapped in; a folder holding anything but .eml files is
    refused, so nothing of the clerk's is ever replaced.

    Raises:
        DisclosureError: `mail-drafts-folder` when `folder` holds other files.
    """
    folder = Path(folder)
    if folder.exists():
        other = next((p for p in sorted(folder.iterdir()) if p.suffix.lower() != ".eml"), None)
        if other is not None or not folder.is_dir():
            raise DisclosureError(Finding("mail-drafts-folder", params={
                "folder": str(folder), "example": other.name if other else folder.name}))
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.new-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    deliveries = []
    for item in plan:
        if item.message is None:
            deliveries.append(_not_made(item))
            continue
        name = f"{Path(item.feedback.folder).name}.eml"
        # X-Unsent: Outlook opens the draft ready to send instead of as a received message
        (staging / name).write_bytes(b"X-Unsent: 1\r\n" + item.message.as_bytes())
        deliveries.append(Delivery(item, "drafted", path=folder / name))
    if folder.exists():
        trash = folder.parent / f".{folder.name}.old-{os.getpid()}"
        folder.rename(trash)
        staging.rename(folder)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(folder)
    return deliveries


def _not_made(item: Outgoing) -> Delivery:
    if item.skip:
        return Delivery(item, "passed")
    code = item.problem.code if item.problem else ""
    return Delivery(item, "skipped" if code in _SKIPPED else "failed", item.problem)


# ------------------------------------------------------------------------------------------------
# Sending


def log_path(out: str | Path) -> Path:
    """The send log of an output folder: one JSON line per message sent or failed."""
    return Path(out) / text("mail.log_file")


def _sent_before(log: Path) -> set[str]:
    if not log.is_file():
        return set()
    keys = set()
    for line in log.read_text("utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash: that message counts as not sent
            continue
        if isinstance(record, dict) and record.get("outcome") == "sent":
            keys.add(str(record.get("key")))
    return keys


def parse_server(value: str, security: str = "starttls") -> Server:
    """HOST, HOST:PORT or [IPv6]:PORT; the port defaults to the security's usual one (587, 465, 25).

    Raises:
        ValueError: not a host and port.
    """
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?|([A-Za-z0-9.-]+)(?::(\d{1,5}))?", value.strip())
    if match is None or security not in PORTS:
        raise ValueError(value)
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4) or PORTS[security])
    if not 0 < port < 65536:
        raise ValueError(value)
    return Server(host, port, security)


def send_messages(plan: Sequence[Outgoing], out: str | Path, server: Server, *, sender: str,
                  password: str | None = None, resend: bool = False) -> list[Delivery]:
    """Send every planned message over one SMTP connection, logging each to `log_path(out)` at once.

    A message the log records as sent is skipped (unless `resend`). A refused message fails alone; a
    lost connection is tried again once, for the next message; when the server cannot be reached (or
    refuses the login) the rest are failed without being tried. The password is used, never stored.
    """
    log = log_path(out)
    done = set() if resend else _sent_before(log)
    deliveries: list[Delivery] = []
    connection: smtplib.SMTP | None = None
    down: Finding | None = None  # why the server cannot be used any more
    try:
        for item in plan:
            if item.message is None:
                deliveries.append(_not_made(item))
                continue
            if item.key in done:
                deliveries.append(Delivery(item, "already-sent"))
                continue
            if down is not None:
                deliveries.append(_record(log, server, Delivery(item, "failed", _again(down, item))))
                continue
            try:
                if connection is None:
                    connection = _connect(server, password)
                refused = connection.sendmail(sender, list(item.to), item.message.as_bytes())
                done.add(item.key)
                deliveries.append(_record(log, server, Delivery(item, "sent", refused=tuple(sorted(refused)))))
            except (smtplib.SMTPAuthenticationError, UnicodeEncodeError) as exc:  # smtplib logs in in ASCII only
                down = _smtp_finding("mail-login-failed", item, server, exc)
                deliveries.append(_record(log, server, Delivery(item, "failed", down)))
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                if connection is not None and connection.sock is None:  # a 421 reply: the server hung up
                    connection = None
                deliveries.append(_record(log, server, Delivery(item, "failed",
                                                                _smtp_finding("mail-refused", item, server, exc))))
            except (smtplib.SMTPException, OSError) as exc:  # connection lost or never made
                lost = connection is not None
                _close(connection)
                connection = None
                finding = _smtp_finding("mail-server-unavailable", item, server, exc)
                if not lost:
                    down = finding
                deliveries.append(_record(log, server, Delivery(item, "failed", finding)))
    finally:
        _close(connection)
    return deliveries


def _connect(server: Server, password: str | None) -> smtplib.SMTP:
    context = ssl.create_default_context()
    connection: smtplib.SMTP
    if server.security == "ssl":
        connection = smtplib.SMTP_SSL(server.host, server.port, timeout=server.timeout, context=context)
    else:
        connection = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    try:
        connection.ehlo()
        if server.security == "starttls":
            connection.starttls(context=context)
            connection.ehlo()
        if server.user is not None:
            connection.login(server.user, password or "")
    except BaseException:
        _close(connection)
        raise
    return connection


def _close(connection: smtplib.SMTP | None) -> None:
    if connection is None:
        return
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


def _reply(exc: BaseException) -> str:
    """What the server said, in one short line (never more than the server's own words)."""
    said: bytes | str
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, said = next(iter(exc.recipients.values()), (0, b""))
    elif isinstance(exc, smtplib.SMTPResponseException):
        code, said = exc.smtp_code, exc.smtp_error
    else:
        return (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)[:200]
    words = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    return f"{code} {' '.join(words.split())}"[:200]


def _smtp_finding(code: str, item: Outgoing, server: Server, exc: BaseException) -> Finding:
    if isinstance(exc, UnicodeEncodeError):
        reply = {lang: text("mail.reason.non_ascii_login", lang) for lang in ("zh", "en")}
    else:
        reply = bilingual(_reply(exc), _reply(exc))
    return Finding(code, params={"office": item.office, "server": str(server), "reply": reply})


def _again(down: Finding, item: Outgoing) -> Finding:
    """The same server failure, for an office whose message was not tried."""
    return Finding(down.code, params={**down.params, "office": item.office})


def _record(log: Path, server: Server, delivery: Delivery) -> Delivery:
    """Append the delivery to the log and flush it to disk before the next message is sent."""
    item = delivery.outgoing
    record = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "key": item.key,
              "outcome": delivery.outcome, "folder": item.feedback.folder, "office": item.office,
              "to": list(item.to), "subject": item.subject, "server": str(server),
              "message_id": item.message["Message-ID"] if item.message else None,
              "refused": list(delivery.refused),
              "code": delivery.finding.code if delivery.finding else None,
              "reason": delivery.finding.message("zh") if delivery.finding else None}
    with open(log, "a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return delivery


def summary(deliveries: Sequence[Delivery]) -> dict[str, int]:
    """Counts by category (sent, skipped, failed) and of the offices the clerk must act on."""
    categories = [d.category for d in deliveries]
    return {"sent": categories.count("sent"), "skipped": categories.count("skipped"),
            "failed": categories.count("failed"), "problems": sum(d.problem for d in deliveries)}

