"""The local web page for the county clerk (`disclosure-xlsx serve`): the library behind one page on
127.0.0.1, with a JSON API under it for other tools.

Safe by construction. The server binds 127.0.0.1 only. Every request needs the access token printed at
start-up (`?token=…`, an `Authorization: Bearer` header, or the cookie the first visit sets; the address
bar is then cleared of it) and a Host of 127.0.0.1 or localhost, which a page on another domain that
resolves to this machine (DNS rebinding) cannot send. An Origin of another site is refused. Whatever
changes something is a POST, and a POST on the strength of the cookie alone must carry the page's CSRF
token (a request that carries the token itself cannot come from another site). A request body must
state its size, within the upload limit (workspace.py checks what is inside). The page is rendered by
Jinja with autoescape, so office text is always text; its script writes received text only as text.
Everything is kept in the working folder (workspace.py), so nothing is lost when the page is closed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import secrets
import socket
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .catalog import LANGS, DisclosureError, text
from .formats import all_formats, current_format, format_for_year, get_format
from .limits import mib
from .webview import page_context, template_bytes, template_name, template_zip
from .workspace import MAX_UPLOAD_BYTES, MAX_UPLOAD_FILES, OVERVIEW, REPORT, Job, Workspace, default_year

__all__ = ["create_app", "serve"]

HOSTS = ("127.0.0.1", "localhost")
_MAX_BODY = MAX_UPLOAD_BYTES + 2**20  # an upload and its multipart framing
_STATIC = {"app.css": "text/css; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
_SECURITY = [(b"content-security-policy", b"default-src 'none'; script-src 'self'; style-src 'self'; "
              b"img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
             (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
             (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]
_STATUS_ORDER = {"unreadable": 0, "errors": 1, "warnings": 2, "ok": 3}
_EXPLICIT = "disclosure_xlsx.explicit_token"  # set on a request that carried the token itself
_NOTES_KEPT = 50


def _words(key: str, lang: str, **params: Any) -> str:
    return text(f"web.{key}", lang, **params)


def _both(key: str, **params: Any) -> dict[str, str]:
    return {lang: _words(key, lang, **params) for lang in LANGS}


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode())


def _hostname(host: str) -> str:
    return (urlsplit(f"//{host}").hostname or "").lower()


def _cookie(port: int) -> str:
    """The token's cookie, one per port: cookies are shared by every port of a host."""
    return f"disclosure_xlsx_{port}"


def _lang_cookie(port: int) -> str:
    return f"disclosure_xlsx_lang_{port}"


# ------------------------------------------------------------------------------------------------
# The guard in front of every route


class _Guard:
    """Host, Origin, token and body-size checks before any route; security headers on every response."""

    def __init__(self, app: ASGIApp, token: str, lang: str) -> None:
        self.app, self.token, self.lang = app, token, lang

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY]
            await send(message)

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        port = (scope.get("server") or ("", 0))[1] or 0
        api = scope["path"].startswith("/api/")
        origin = headers.get("origin")
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = dict(query).get("token")
        bearer = headers.get("authorization", "")
        given = given if given is not None else (bearer[7:].strip() if bearer.lower().startswith("bearer ") else None)
        refusal: tuple[int, str] | None = None
        if _hostname(headers.get("host", "")) not in HOSTS:  # DNS rebinding: another site's name for 127.0.0.1
            refusal = (400, "host")
        elif origin is not None and origin not in {f"http://{host}:{port}" for host in HOSTS}:
            refusal = (403, "origin")  # another site, or another server of this machine (cookies ignore ports)
        elif _same(given, self.token):
            scope[_EXPLICIT] = True
        elif scope["path"] == "/favicon.ico":
            await Response(status_code=204)(scope, receive, secured)
            return
        elif not _same(cookie_parser(headers.get("cookie", "")).get(_cookie(port)), self.token):
            refusal = (403, "token")
        if refusal is None and scope["method"] not in ("GET", "HEAD"):
            length = headers.get("content-length", "")
            if "transfer-encoding" in headers or not length.isdigit() or int(length) > _MAX_BODY:
                refusal = (413, "length")
        if refusal is not None:
            await _deny(refusal[0], refusal[1], self.lang, api)(scope, receive, secured)
            return
        if given is not None and scope["method"] == "GET" and not api:
            # the first visit: the token goes into a cookie and out of the address bar (history, screenshots)
            rest = [(k, v) for k, v in query if k != "token"]
            response = RedirectResponse(scope["path"] + (f"?{urlencode(rest)}" if rest else ""), 303)
            response.set_cookie(_cookie(port), self.token, httponly=True, samesite="strict")
            await response(scope, receive, secured)
            return
        await self.app(scope, receive, secured)


def _deny(status: int, key: str, lang: str, api: bool, **params: Any) -> Response:
    """A refusal, as JSON for the API and as a short page otherwise."""
    params.setdefault("limit", mib(MAX_UPLOAD_BYTES))
    if api:
        return JSONResponse({"error": key, "message": _both(f"deny.{key}", **params)}, status)
    title, body = html.escape(_words("deny.title", lang)), html.escape(_words(f"deny.{key}", lang, **params))
    return HTMLResponse(f"<!DOCTYPE html><html lang='{'zh-CN' if lang == 'zh' else 'en'}'><head><meta charset='utf-8'>"
                        f"<title>{title}</title></head><body><h1>{title}</h1><p>{body}</p></body></html>", status)


# ------------------------------------------------------------------------------------------------
# The app


def create_app(workspace: Workspace, *, token: str, lang: str = "zh") -> ASGIApp:
    """The ASGI app over an opened workspace; every request needs `token` (see the module docstring)."""
    routes = [
        Route("/", _page), Route("/static/{name}", _static), Route("/template", _template),
        Route("/upload", _upload, methods=["POST"]), Route("/folder", _folder, methods=["POST"]),
        Route("/recheck", _recheck, methods=["POST"]), Route("/accept", _accept, methods=["POST"]),
        Route("/roster", _roster, methods=["POST"]), Route("/aggregate", _aggregate, methods=["POST"]),
        Route("/download/{year:int}/{what}", _download), Route("/download/{year:int}/feedback/{name}", _feedback),
        Route("/api/validate", _api_validate, methods=["POST"]), Route("/api/jobs/{id}", _api_job),
        Route("/api/batches/{id}", _api_batch), Route("/api/batches/{id}/report.json", _api_batch_report),
        Route("/api/years/{year:int}/report.json", _api_year_report),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    _environment().get_template("page.html")  # compiled once, before the first visit
    app.state.workspace = workspace
    app.state.lang = lang
    app.state.csrf = hmac.new(token.encode(), b"csrf", hashlib.sha256).hexdigest()[:32]
    app.state.notes = {}
    return _Guard(app, token, lang)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    known = {"csrf", "not_found", "length", "token", "host", "origin", "year"}
    key = exc.detail if exc.detail in known else "not_found" if exc.status_code == 404 else "bad_request"
    return _deny(exc.status_code, key, _lang(request), _wants_json(request), detail=exc.detail or "")


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace  # type: ignore[no-any-return]


def _lang(request: Request) -> str:
    asked = request.query_params.get("lang")
    port = request.url.port or 0
    chosen = asked if asked in LANGS else request.cookies.get(_lang_cookie(port))
    return chosen if chosen in LANGS else request.app.state.lang  # type: ignore[no-any-return]


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def _year(value: Any, default: int | None = None) -> int:
    if value in (None, "") and default is not None:
        return default
    try:
        year = int(str(value).strip())
    except ValueError:
        year = 0
    if not 1990 <= year <= 2100:
        raise HTTPException(400, "year")
    return year


async def _form(request: Request) -> FormData:
    """The posted form, within the limits; without the token in the request, its CSRF token must match."""
    form = await request.form(max_files=MAX_UPLOAD_FILES, max_fields=64, max_part_size=64 * 1024)
    if not request.scope.get(_EXPLICIT):
        sent = request.headers.get("x-csrf-token") or form.get("csrf") or ""
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), request.app.state.csrf.encode()):
            await form.close()
            raise HTTPException(403, "csrf")
    return form


def _field(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _note(request: Request, year: int, message: dict[str, str], kind: str) -> Response:
    """A form's outcome: JSON for the page's script and tools, else back to the page with a note."""
    if _wants_json(request):
        return JSONResponse({"note": kind, "message": message}, 200 if kind == "ok" else 400)
    notes: dict[str, Any] = request.app.state.notes
    key = secrets.token_hex(6)
    notes[key] = {"kind": kind, "message": message}
    while len(notes) > _NOTES_KEPT:
        notes.pop(next(iter(notes)))
    return RedirectResponse(f"/?{urlencode({'year': year, 'note': key})}", 303)


def _refusal(request: Request, year: int, exc: DisclosureError) -> Response:
    message = {lang: exc.finding.message(lang) for lang in LANGS}
    if _wants_json(request):
        return JSONResponse({"error": exc.finding.code, "message": message}, 400)
    return _note(request, year, message, "error")


def _started(request: Request, job: Job) -> Response:
    """A job was queued: its links as JSON (202), or the page showing its progress."""
    if _wants_json(request):
        links = {"job": job.id, "status": f"/api/jobs/{job.id}", "batch": job.batch}
        if job.batch:
            links.update(record=f"/api/batches/{job.batch}", report=f"/api/batches/{job.batch}/report.json")
        return JSONResponse(links, 202)
    return RedirectResponse(f"/?{urlencode({'year': job.year, 'job': job.id})}", 303)


def _attachment(data: bytes, name: str, media: str) -> Response:
    disposition = f"attachment; filename*=utf-8''{quote(name)}"  # RFC 6266: Chinese names in every browser
    return Response(data, media_type=media, headers={"content-disposition": disposition})


def _file(path: Path, name: str, media: str) -> Response:
    try:
        return _attachment(path.read_bytes(), name, media)
    except OSError:
        raise HTTPException(404, "not_found") from None


_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# ------------------------------------------------------------------------------------------------
# The page


@cache
def _environment() -> jinja2.Environment:
    folder = resources.files("disclosure_xlsx").joinpath("data/web")
    return jinja2.Environment(loader=jinja2.FunctionLoader(lambda name: folder.joinpath(name).read_text("utf-8")),
                              autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


@cache
def _asset(name: str) -> bytes:
    return resources.files("disclosure_xlsx").joinpath(f"data/web/{name}").read_bytes()


async def _static(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in _STATIC:
        raise HTTPException(404, "not_found")
    return Response(_asset(name), media_type=_STATIC[name])


async def _page(request: Request) -> Response:
    lang = _lang(request)
    year = _year(request.query_params.get("year"), default_year())
    note = request.app.state.notes.get(request.query_params.get("note", ""))
    context = await run_in_threadpool(page_context, _ws(request), year, lang, request.query_params.get("job"))
    context.update(csrf=request.app.state.csrf, note=note and {"kind": note["kind"], "text": note["message"][lang]})
    response = HTMLResponse(_environment().get_template("page.html").render(context))
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(_lang_cookie(request.url.port or 0), lang, httponly=True, samesite="strict")
    return response


# ------------------------------------------------------------------------------------------------
# Templates


async def _template(request: Request) -> Response:
    query = request.query_params
    year = _year(query.get("year"), default_year())
    chosen = query.get("format") or ""
    fmt = get_format(chosen) if chosen in all_formats() else format_for_year(year) or current_format()
    roster = await run_in_threadpool(_ws(request).roster, year)
    codes = {e.office: e.credit_code for e in roster} if roster is not None else {}
    if query.get("all") and codes:
        data = await run_in_threadpool(template_zip, fmt, year, codes)
        return _attachment(data, text("web.template_zip", year=year, n=len(codes)), "application/zip")
    office = (query.get("office") or "").strip()[:100]
    data = await run_in_threadpool(template_bytes, fmt, year, office, codes.get(office))
    return _attachment(data, template_name(office, year), _XLSX)


# ------------------------------------------------------------------------------------------------
# What changes the working folder (POST)


async def _store(request: Request, kind: str) -> tuple[int, Job | DisclosureError]:
    form = await _form(request)
    try:
        year = _year(form.get("year"), default_year())
        files = [(f.filename or "", f.file) for f in form.getlist("files") if isinstance(f, UploadFile)]
        try:
            return year, await run_in_threadpool(_ws(request).store_uploads, year, files, kind=kind)
        except DisclosureError as exc:
            return year, exc
    finally:
        await form.close()


async def _upload(request: Request) -> Response:
    year, outcome = await _store(request, "upload")
    return _refusal(request, year, outcome) if isinstance(outcome, DisclosureError) else _started(request, outcome)


async def _folder(request: Request) -> Response:
    form = await _form(request)
    year = _year(form.get("year"), default_year())
    try:
        job = await run_in_threadpool(_ws(request).store_folder, year, _field(form, "path", 1000))
    except DisclosureError as exc:
        return _refusal(request, year, exc)
    return _started(request, job)


async def _recheck(request: Request) -> Response:
    form = await _form(request)
    return _started(request, _ws(request).submit(_year(form.get("year"), default_year()), "recheck"))


async def _accept(request: Request) -> Response:
    from .accept import parse_date

    form = await _form(request)
    year = _year(form.get("year"), default_year())
    reason, by, until = _field(form, "reason"), _field(form, "by", 100), _field(form, "until", 20)
    if not reason or not by:
        return _note(request, year, _both("nothing.reason_needed"), "error")
    report = await run_in_threadpool(_ws(request).year_report, year)
    file = _field(form, "file", 4000)
    if report is None or file not in {w.get("file") for w in report.get("workbooks") or []}:
        return _note(request, year, _both("nothing.no_warning"), "error")
    date = parse_date(until) if until else None
    if until and date is None:
        raise HTTPException(400, until)
    job = _ws(request).submit(year, "accept", file=file, code=_field(form, "code", 100),
                              rule=_field(form, "rule", 200) or None, cell=_field(form, "cell", 200) or None,
                              reason=reason, by=by, until=date)
    return _started(request, job)


async def _roster(request: Request) -> Response:
    form = await _form(request)
    try:
        year = _year(form.get("year"), default_year())
        upload = form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise HTTPException(400, "file")
        try:
            roster = await run_in_threadpool(_ws(request).store_roster, year, upload.filename, upload.file)
        except DisclosureError as exc:
            return _refusal(request, year, exc)
    finally:
        await form.close()
    said = {lang: _words("note.roster", lang, describe=roster.describe(lang)) for lang in LANGS}
    return _note(request, year, said, "ok")


async def _aggregate(request: Request) -> Response:
    form = await _form(request)
    year = _year(form.get("year"), default_year())
    office = _field(form, "office", 100)
    if not office:
        return _note(request, year, _both("nothing.office_needed"), "error")
    return _started(request, _ws(request).submit(year, "aggregate", office=office))


# ------------------------------------------------------------------------------------------------
# Downloads


async def _download(request: Request) -> Response:
    ws, year, what = _ws(request), request.path_params["year"], request.path_params["what"]
    if what == "overview":
        return await run_in_threadpool(_file, ws.results_dir(year) / OVERVIEW, OVERVIEW, _XLSX)
    if what == "report.json":
        return await run_in_threadpool(_file, ws.results_dir(year) / REPORT, REPORT, "application/json")
    if what == "feedback.zip":
        data = await run_in_threadpool(ws.feedback_zip, year)
        if data is None:
            raise HTTPException(404, "not_found")
        return _attachment(data, text("web.all_feedback_zip", year=year), "application/zip")
    if what == "total":
        record = ws.total(year) or {}
        name = str(record.get("file") or "")
        if not name or PurePosixPath(name).name != name or "\\" in name:
            raise HTTPException(404, "not_found")
        return await run_in_threadpool(_file, ws.total_dir(year) / name, name, _XLSX)
    raise HTTPException(404, "not_found")


async def _feedback(request: Request) -> Response:
    name = request.path_params["name"]
    data = await run_in_threadpool(_ws(request).feedback_zip, request.path_params["year"], name)
    if data is None:
        raise HTTPException(404, "not_found")
    return _attachment(data, text("web.feedback_zip", name=name), "application/zip")


# ------------------------------------------------------------------------------------------------
# The JSON API


async def _api_validate(request: Request) -> Response:
    """Multipart `files` (workbooks or .zip) → the JSON report of `validate --json` on them, after the
    year's acceptances; stored as a batch of `year` (default: last year), a round of the year's outputs.
    With `wait=0` it answers 202 at once with the links to follow."""
    wait = request.query_params.get("wait", "1") != "0"
    year, outcome = await _store(request, "api")
    if isinstance(outcome, DisclosureError):
        return _refusal(request, year, outcome)
    job = outcome
    if not wait:
        return _started(request, job)
    while job.state in ("queued", "running"):
        await asyncio.sleep(0.05)
    report = _ws(request).batch_report(job.batch or "")
    if report is None:
        return JSONResponse({"error": "failed", "message": job.error or _both("deny.not_found")}, 500)
    headers = {"location": f"/api/batches/{job.batch}", "x-batch": str(job.batch)}
    return Response(await run_in_threadpool(report.read_bytes), media_type="application/json", headers=headers)


async def _api_job(request: Request) -> Response:
    ws = _ws(request)
    job = ws.job(request.path_params["id"])
    if job is not None:
        return JSONResponse(job.to_dict())
    record = await run_in_threadpool(ws.batch, request.path_params["id"])  # a batch of an earlier start
    if record is None:
        raise HTTPException(404, "not_found")
    return JSONResponse({"id": record["id"], "year": record["year"], "kind": record["kind"], "batch": record["id"],
                         "state": record["state"], "stage": None, "done": 0, "total": 0, "error": record.get("error"),
                         "notes": record.get("notes") or [], "round": record.get("round")})


async def _api_batch(request: Request) -> Response:
    record = await run_in_threadpool(_ws(request).batch, request.path_params["id"])
    if record is None:
        raise HTTPException(404, "not_found")
    links = {"report": f"/api/batches/{record['id']}/report.json",
             "year_report": f"/api/years/{record['year']}/report.json"}
    return JSONResponse({**record, "links": links})


async def _api_batch_report(request: Request) -> Response:
    path = await run_in_threadpool(_ws(request).batch_report, request.path_params["id"])
    if path is None:
        raise HTTPException(404, "not_found")
    return Response(await run_in_threadpool(path.read_bytes), media_type="application/json")


async def _api_year_report(request: Request) -> Response:
    path = _ws(request).results_dir(request.path_params["year"]) / REPORT
    try:
        data = await run_in_threadpool(path.read_bytes)
    except OSError:
        raise HTTPException(404, "not_found") from None
    return Response(data, media_type="application/json")


# ------------------------------------------------------------------------------------------------
# The server


def serve(workdir: str | Path, *, port: int = 0, lang: str = "zh", workers: int | None = None,
          ready: Callable[[str], None] | None = None) -> None:
    """Serve the page on 127.0.0.1:`port` (0: any free port) until interrupted.

    `ready(url)` is called once the port listens, with the address to open (it carries the token).

    Raises:
        DisclosureError: `workdir-in-use` when another server uses the working folder.
        OSError: the port cannot be bound.
    """
    import uvicorn

    token = secrets.token_urlsafe(24)
    with Workspace(workdir, workers=workers) as workspace:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(128)
            config = uvicorn.Config(create_app(workspace, token=token, lang=lang), http="h11", ws="none",
                                    loop="asyncio", lifespan="off", log_level="warning", access_log=False,
                                    server_header=False)
            if ready is not None:
                ready(f"http://127.0.0.1:{sock.getsockname()[1]}/?token={token}")
            uvicorn.Server(config).run(sockets=[sock])
        finally:
            sock.close()

