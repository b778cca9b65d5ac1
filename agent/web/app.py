"""The FastAPI application of ``serendip serve`` and the command that runs it with uvicorn."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from serendip.agent.web.api import build_router
from serendip.agent.web.pages import build_pages
from serendip.agent.web.runs import RunManager
from serendip.agent.web.security import Gate, SecurityMiddleware, is_loopback, new_token
from serendip.agent.web.sessions import Busy, SessionManager, TableError, WebSettings

STATIC = Path(__file__).parent / "static"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
            "object-src 'none'; base-uri 'none'; frame-ancestors 'none'")


def gate_for(host: str, token: str | None) -> Gate:
    """The access rules for a bind address: without a token, loopback answers only to loopback host names
    (so a page elsewhere cannot reach it through DNS rebinding); with a token any Host is fine (a reverse
    proxy may pass its own); anywhere else than loopback a token is required (the caller generates one)."""
    if is_loopback(host):
        return Gate(token or None, None if token else LOOPBACK_HOSTS | {host.strip("[]").lower()})
    if not token:
        raise ValueError("binding to a non-loopback address requires a token")
    return Gate(token, None)


def create_app(settings: WebSettings, gate: Gate) -> FastAPI:
    """The application: the page, the JSON API, the static files and the access rules.

    Args:
        settings: How sessions run (data folder, limits, model).
        gate: Who may use the server.
    """
    sessions = SessionManager(settings)
    runs = RunManager(sessions)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        sessions.start_reaper()
        try:
            yield
        finally:
            sessions.shutdown()
            runs.wait_all()

    app = FastAPI(title="Serendip", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Upload a table, ask about it, run the sandboxed analysis tools or a full "
                              "exploration, and read the reports. Errors are JSON `{error}`.")
    app.state.sessions, app.state.runs, app.state.gate = sessions, runs, gate

    @app.exception_handler(TableError)
    async def table_error(request: Request, exc: TableError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=503, headers={"Retry-After": str(exc.retry_after)})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        return JSONResponse({"error": message[:300]}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> JSONResponse:
        first = str(exc).splitlines()[0] if str(exc) else ""
        return JSONResponse({"error": sessions.scrub(f"internal error: {type(exc).__name__}: {first}")[:300]},
                            status_code=500)

    @app.get("/docs", include_in_schema=False)
    def docs():
        response = get_swagger_ui_html(openapi_url="/openapi.json", title="Serendip API")
        response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    app.include_router(build_router(sessions, runs))
    app.include_router(build_pages(sessions, runs, gate))
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.add_middleware(SecurityMiddleware, gate=gate)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("serendip")
    except Exception:  # noqa: BLE001 - not installed (running from a checkout)
        return "0"


def settings_from_args(args) -> WebSettings:
    """Web settings from the ``serve`` options (the model resolved like every other command).

    Raises:
        SettingsError: The model settings are unusable.
    """
    from serendip.agent.cli import setting_flags
    from serendip.agent.models import build_chat_model
    from serendip.agent.settings import Settings

    settings = Settings.resolve(setting_flags(args)).require_key().for_endpoint()
    factory = None if settings.is_autopilot else (lambda: build_chat_model(settings))
    return WebSettings(data_dir=Path(args.data_dir), max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                       max_workers=args.max_workers, idle_timeout_s=args.idle_timeout,
                       tool_time_limit=settings.tool_time_limit, memory_limit_mb=settings.memory_limit_mb,
                       max_steps=settings.max_steps, turn_time_limit=settings.time_limit,
                       run_time_limit=settings.time_limit,
                       model="" if settings.is_autopilot else settings.model, base_url=settings.base_url,
                       api_key=settings.key, chat_model_factory=factory)


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound (None when it can), checked before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def run_serve(args) -> int:
    """``serendip serve``: print where to open the page (and the token when one is needed), then serve."""
    import uvicorn

    from serendip.agent.cli import EXIT_OK, fail
    from serendip.agent.models import ModelConfigError

    if not 0 < args.port < 65536:
        return fail(f"--port must be in 1..65535; got {args.port}")
    if args.max_workers < 1 or args.max_upload_mb <= 0 or args.idle_timeout <= 0:
        return fail("--max-workers, --max-upload-mb and --idle-timeout must be positive")
    try:
        settings = settings_from_args(args)
    except ModelConfigError as exc:
        return fail(str(exc))
    token = args.token or os.environ.get("SERENDIP_TOKEN") or None
    generated = False
    if not is_loopback(args.host) and not token:
        token, generated = new_token(), True
    problem = port_problem(args.host, args.port)
    if problem:
        return fail(f"cannot serve on {args.host}:{args.port}: {problem}")
    try:
        gate = gate_for(args.host, token)
        app = create_app(settings, gate)
    except OSError as exc:
        return fail(f"cannot use the data folder {args.data_dir}: {exc.strerror or exc}")
    shown_host = f"[{args.host}]" if ":" in args.host else args.host
    base = f"http://{shown_host if args.host not in ('0.0.0.0', '::') else 'THIS-HOST'}:{args.port}"
    print(f"Serendip is serving {Path(args.data_dir).resolve()} at {base}/  (API: {base}/docs)", flush=True)
    print(f"Model: {settings.model or 'none (offline answers, tools and the autopilot)'}; at most "
          f"{settings.max_workers} analysis workers; uploads up to {args.max_upload_mb:g} MB", flush=True)
    if gate.token:
        if generated:
            print(f"Token (generated; pass --token to choose one): {gate.token}", flush=True)
        print(f"One-time login link: {base}/login?code={gate.codes.mint()}", flush=True)
        print("Scripts: send the header 'Authorization: Bearer TOKEN'.", flush=True)
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=10)
    except OSError as exc:
        return fail(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass
    print("Serendip stopped.", file=sys.stderr)
    return EXIT_OK
