"""The server-rendered pages: the table list with the upload zone, a table's page, the login page, and the
files of a run folder (reports, figures) served from that folder only.

Templates are rendered by a Jinja2 environment with autoescaping on for every template, so a column
named ``<img src=x onerror=alert(1)>`` is shown as text; the page's script builds the rest of the page
with ``textContent`` only.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from serendip.agent.conversation.offline_questions import CONFIGURE_HINT
from serendip.agent.web.runs import RUN_ID, RunManager
from serendip.agent.web.security import COOKIE_NAME, REPORT_CSP, Gate
from serendip.agent.web.sessions import FIGURE_NAME, SessionManager, TableError
from serendip.agent.web.uploads import human_bytes

TEMPLATES = Path(__file__).parent / "templates"
RUN_FILES = {"report.html": "text/html; charset=utf-8", "report.md": "text/markdown; charset=utf-8",
             "findings.json": "application/json", "run.json": "application/json", "rows.csv": "text/csv"}
ACTIONS = (("describe", "/describe", "Profile every column: distribution, missing values, sentinels"),
           ("correlate", "/correlate", "Which numeric columns move together (FDR-controlled)"),
           ("cluster", "/cluster", "Look for stable groups of rows"),
           ("outliers", "/outliers", "Flag unusual rows"))


def template_env() -> jinja2.Environment:
    """The templates, autoescaped whatever their file names."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.ChainableUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["bytes"] = human_bytes
    env.filters["percent"] = lambda x: f"{100 * float(x or 0):.1f}%" if x else "0%"
    return env


def build_pages(sessions: SessionManager, runs: RunManager, gate: Gate) -> APIRouter:
    """The HTML routes."""
    router = APIRouter(include_in_schema=False)
    env = template_env()
    settings = sessions.settings

    def page(name: str, status: int = 200, **context) -> HTMLResponse:
        html = env.get_template(name).render(model=settings.model, token_required=bool(gate.token), **context)
        return HTMLResponse(html, status_code=status)

    @router.get("/")
    def index() -> HTMLResponse:
        return page("index.html.j2", tables=[t.summary() for t in sessions.list()],
                    max_upload=settings.max_upload_bytes)

    @router.get("/tables/{table_id}")
    def table_page(table_id: str) -> HTMLResponse:
        try:
            table = sessions.get(table_id)
        except TableError as exc:
            return page("error.html.j2", status=exc.status, message=exc.message)
        profile = table.profile()
        return page("table.html.j2", table=table.summary(), profile=profile, actions=ACTIONS,
                    hint=CONFIGURE_HINT, max_upload=settings.max_upload_bytes)

    @router.get("/login")
    def login_page(request: Request, code: str = "") -> Response:
        if not gate.token:
            return RedirectResponse("/", status_code=303)
        if code and gate.codes.redeem(code):
            return logged_in(request)
        return page("login.html.j2", status=401 if code else 200,
                    error="This login link was already used or is not valid." if code else "")

    @router.post("/login")
    def login_form(request: Request, token: str = Form("")) -> Response:
        if not gate.token:
            return RedirectResponse("/", status_code=303)
        if gate.check_token(token):
            return logged_in(request)
        return page("login.html.j2", status=401, error="That is not the server's token.")

    def logged_in(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        secure = request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"
        response.set_cookie(COOKIE_NAME, gate.cookie, httponly=True, samesite="lax", secure=secure, path="/",
                            max_age=30 * 24 * 3600)
        return response

    @router.get("/tables/{table_id}/runs/{run}/{file:path}")
    def run_file(table_id: str, run: str, file: str) -> Response:
        """A report file of the session ('session') or of an exploration, from that folder only."""
        table = sessions.get(table_id)
        if run == "session":
            folder = table.session_dir
        elif RUN_ID.match(run):
            folder = runs.get(table_id, run).folder
        else:
            raise TableError(404, "no such run")
        parts = file.split("/")
        if file in RUN_FILES:
            media = RUN_FILES[file]
        elif len(parts) == 2 and parts[0] == "figures" and FIGURE_NAME.match(parts[1]):
            media = "image/png"
        else:
            raise TableError(404, "no such file in this run")
        path = (folder / file).resolve()
        if not path.is_relative_to(folder.resolve()) or not path.is_file():
            raise TableError(404, "no such file in this run")
        headers = {"Content-Security-Policy": REPORT_CSP} if file == "report.html" else {}
        return FileResponse(path, media_type=media, headers=headers)

    @router.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    return router

