"""What the clerk's page shows (web.py): a year of the working folder — its report.json, batches and
roll-up — as plain values for the page's template, in the page's language; and the templates it hands out.

Nothing here is HTML: the template (data/web/page.html) lays the values out and Jinja escapes them all.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from .catalog import severity_text, status_text, text
from .formats import Format, all_formats, current_format, format_for_year
from .workspace import Workspace, default_year

__all__ = ["page_context", "template_bytes", "template_name", "template_zip"]

_STATUS_ORDER = {"unreadable": 0, "errors": 1, "warnings": 2, "ok": 3}
_PROGRESS = ("queued", "reading", "reading_year", "writing", "totalling", "count", "done", "failed", "sending")
_KINDS = ("upload", "api", "folder")
_STATES = ("queued", "running", "done", "failed")


def _words(key: str, lang: str, **params: Any) -> str:
    return text(f"web.{key}", lang, **params)


def page_context(ws: Workspace, year: int, lang: str, job_id: str | None) -> dict[str, Any]:
    """Everything the page shows for `year`, as plain values (the template only lays them out)."""
    asked = ws.job(job_id) if job_id else None
    running = ws.running(year)
    roster = ws.roster(year)
    settings = ws.settings(year)
    js = {key: _words(f"progress.{key}", lang) for key in _PROGRESS}
    js.update(chosen=_words("upload.chosen", lang), show=_words("results.show", lang),
              hide=_words("results.hide", lang))  # the script's words, filled in as it goes
    finished = asked if asked is not None and asked.year == year and asked.state in ("done", "failed") else None
    return {
        "t": lambda key, **params: _words(key, lang, **params), "lang": lang, "year": year,
        "html_lang": "zh-CN" if lang == "zh" else "en", "other_lang": "en" if lang == "zh" else "zh",
        "years": sorted({*ws.years(), default_year(), year}, reverse=True), "workdir": str(ws.root),
        "formats": [(f.id, text("catalog.format_title", lang, title=f.title, id=f.id))
                    for f in all_formats().values()],
        "format_default": (format_for_year(year) or current_format()).id,
        "roster": None if roster is None else {"describe": roster.describe(lang), "count": len(roster),
                                               "offices": [e.office for e in roster]},
        "settings": {"office": settings.get("office", ""), "by": settings.get("by", "")},
        "results": _results(ws.year_report(year), lang, year),
        "batches": [_batch_view(r, lang) for r in reversed(ws.batches(year))],
        "total": _total_view(ws.total(year), lang, year),
        "job": running.to_dict() if running is not None else None,
        "finished": None if finished is None else {
            "error": finished.error[lang] if finished.error else None, "notes": [n[lang] for n in finished.notes]},
        "words": js,
    }


def _results(report: dict[str, Any] | None, lang: str, year: int) -> dict[str, Any] | None:
    if report is None:
        return None
    from .rounds import Changes, changes_text

    entries = sorted(enumerate(report.get("workbooks") or []),
                     key=lambda p: (_STATUS_ORDER.get(p[1].get("status"), 9), p[1].get("office") or "", p[0]))
    rows = [_row(entry, lang, year, i) for i, entry in entries]
    info = report.get("round") or {}
    counts = [c for e in report.get("workbooks") or []
              if isinstance(c := e.get("changes"), dict) and c.get("matched_by")]
    since = ""
    if info.get("previous"):  # the batch's totals, as the command prints them
        sums = [sum(int(c.get(k) or 0) for c in counts) for k in ("previous", "fixed", "open", "new", "accepted")]
        total = Changes(info.get("number") or 0, info["previous"], "batch", sums[0], sums[1], sums[2], sums[3],
                        sums[4])
        since = _words("results.since", lang, previous=info["previous"], changes=changes_text(total, lang))
    missing = [str(e.get("office") or _file_name(str(e.get("file") or ""))) for e in info.get("not_resubmitted") or []]
    notices = [n["message"][lang] for n in (report.get("acceptances") or {}).get("notices") or []]
    return {"summary": _words("results.summary", lang, round=info.get("number") or 1, **report["summary"]),
            "since": since, "rows": rows, "notices": notices,
            "missing": _words("results.not_resubmitted", lang, names=text("catalog.enumeration", lang).join(missing))
            if missing else "",
            "overview": f"/download/{year}/overview", "all_feedback": f"/download/{year}/feedback.zip",
            "report": f"/download/{year}/report.json"}


def _row(entry: dict[str, Any], lang: str, year: int, index: int) -> dict[str, Any]:
    """One workbook of report.json as the results table shows it."""
    from .rounds import Changes, changes_text

    findings = entry.get("findings") or []
    counted = [f for f in findings if "accepted" not in f]
    first = next((f for f in findings if f["severity"] == "error"), None) or next(
        (f for f in counted if f["severity"] == "warning"), None)
    changes = entry.get("changes")
    said = ""
    if isinstance(changes, dict):
        names = {f.name for f in dataclasses.fields(Changes)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items() if k in names}
        said = changes_text(Changes(**values), lang)  # type: ignore[arg-type]
    folder = str(entry.get("feedback_dir") or "").rsplit("/", 1)[-1]
    return {"id": f"wb{index}", "office": entry.get("office") or "", "path": entry.get("file") or "",
            "file": _file_name(str(entry.get("file") or "")), "status": entry.get("status"),
            "status_text": status_text(str(entry.get("status")), lang),
            "errors": sum(f["severity"] == "error" for f in findings),
            "warnings": sum(f["severity"] == "warning" for f in counted),
            "first": first["message"][lang] if first else "", "changes": said,
            "feedback": f"/download/{year}/feedback/{quote(folder)}" if folder else None,
            "suggestion": _suggestion(entry.get("suggestion"), lang),
            "findings": [_finding_view(f, lang) for f in findings]}


def _file_name(path: str) -> str:
    return PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name


def _finding_view(finding: dict[str, Any], lang: str) -> dict[str, Any]:
    cells = finding.get("cells") or []
    accepted = "accepted" in finding
    severity = finding["severity"]
    return {"class": "accepted" if accepted else severity,
            "tag": text("accept.accepted_tag", lang) if accepted else severity_text(severity, lang),
            "place": f"{cells[0]['sheet']}!{cells[0]['ref']}" if cells else "", "message": finding["message"][lang],
            "accept": None if accepted or severity != "warning" else {
                "code": finding["code"], "rule": finding.get("rule") or "", "cell": cells[0]["id"] if cells else ""}}


def _suggestion(data: Any, lang: str) -> str:
    """The suggested fix of report.json (suggest.py) in one sentence, when the workbook has one."""
    if not isinstance(data, dict) or not data.get("outcome"):
        return ""
    from .catalog import CellRef
    from .suggest import Change, Suggestion, suggestion_text

    try:
        sets = [data.get("cells") or [], *(data.get("alternative_sets") or [])]
        where = {c["id"]: CellRef(c["id"], c["sheet"], c["ref"]) for s in sets for c in s}
        changes = [tuple(Change(c["id"], c.get("value"), c["suggested"]) for c in s) for s in sets]
        found = Suggestion(data["outcome"], changes[0], tuple(changes[1:]), bool(data.get("more_alternatives")),
                           tuple(data.get("rules") or ()), str(data.get("method") or ""))
        return suggestion_text(found, where, lang)
    except (KeyError, TypeError, ValueError):
        return ""


def _batch_view(record: dict[str, Any], lang: str) -> dict[str, Any]:
    kind = record.get("kind", "upload")
    state = record.get("state", "queued")
    return {"text": _words("batches.item", lang, n=record.get("number"), created=_time(record.get("created")),
                           files=len(record.get("files") or []),
                           kind=_words(f"batches.kind.{kind}", lang) if kind in _KINDS else kind,
                           state=_words(f"batches.state.{state}", lang) if state in _STATES else state),
            "round": _words("batches.round", lang, n=record["round"]) if record.get("round") else "",
            "skipped": [_words("batches.skipped", lang, name=s.get("name", ""),
                               reason=(s.get("reason") or {}).get(lang, "")) for s in record.get("skipped") or []],
            "error": (record.get("error") or {}).get(lang, ""),
            "report": f"/api/batches/{record['id']}/report.json" if state == "done" else None}


def _total_view(record: dict[str, Any] | None, lang: str, year: int) -> dict[str, Any] | None:
    if record is None:
        return None
    made = _words("total.made", lang, created=_time(record.get("created")), office=record.get("office", ""))
    refused = record.get("refused")
    if refused:
        return {"made": made, "refused": _words("total.refused", lang, message=refused["message"][lang])}
    result = record.get("result") or {}
    check = result.get("check") or {}
    added = [str(w.get("office") or _file_name(str(w.get("file") or ""))) for w in result.get("included") or []]
    return {"made": made, "refused": "", "download": f"/download/{year}/total", "file": record.get("file", ""),
            "check": _words("total.check_ok", lang, status=status_text(str(check.get("status", "ok")), lang)),
            "added": {"title": _words("total.added", lang, n=len(added)), "lines": added},
            "lists": [{"title": title, "lines": lines} for title, lines in (record.get("lists") or {}).get(lang, [])]}


def _time(value: Any) -> str:
    return str(value or "").replace("T", " ")


# ------------------------------------------------------------------------------------------------
# Templates


def template_name(office: str, year: int) -> str:
    from .feedback import safe_name

    if not office:
        return text("web.template_blank", year=year)
    return text("web.template_file", office=safe_name(office), year=year)


def template_bytes(fmt: Format, year: int, office: str, code: str | None) -> bytes:
    from .template import write_template

    values: dict[str, object] = {fmt.field("year").name: year}
    if office:
        values[fmt.field("office").name] = office
    if code:
        values[fmt.field("credit_code").name] = code
    with tempfile.TemporaryDirectory() as folder:
        return write_template(Path(folder) / "template.xlsx", fmt.id, values=values).read_bytes()


def template_zip(fmt: Format, year: int, codes: dict[str, str | None]) -> bytes:
    buffer = io.BytesIO()
    used: set[str] = set()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for office, code in codes.items():
            name = template_name(office, year)
            while name.lower() in used:
                name = f"_{name}"
            used.add(name.lower())
            archive.writestr(name, template_bytes(fmt, year, office, code))
    return buffer.getvalue()
