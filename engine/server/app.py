"""The FastAPI application: routes, error handlers, the web page, optional CORS; and ``serve``."""
from __future__ import annotations

import ipaddress
import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from ..library import Library
from . import routes_library, routes_search, routes_sounds, routes_vocabulary
from .errors import install_error_handlers
from .state import DEFAULT_MAX_UPLOAD_MB, ServerState
from .uploads import MULTIPART_SLACK, UploadSizeLimit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
STATIC_DIR = Path(__file__).resolve().parent / "static"
UPLOAD_PATHS = ("/api/search/upload",)

log = logging.getLogger("earmark.server")


def create_app(library_path: str | Path, token: str | None = None, cors_origins: list[str] | None = None,
               max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, library: Library | None = None) -> FastAPI:
    """The ASGI app serving the library at ``library_path``.

    ``token`` enables the write endpoints (and is then required by them); ``cors_origins``
    lists origins allowed to call the API from other pages (none by default); uploads for
    query by example are limited to ``max_upload_mb`` megabytes. ``library`` reuses an open
    Library (tests, embedding) instead of opening ``library_path``.
    """
    if max_upload_mb <= 0:
        raise ValueError(f"max_upload_mb must be positive, got {max_upload_mb}")
    lib = library if library is not None else Library(library_path)
    state = ServerState(library=lib, token=token or None, max_upload_bytes=int(max_upload_mb * 1e6))

    # fastapi_offline serves the Swagger UI / ReDoc assets from the package: /docs works offline.
    from fastapi_offline import FastAPIOffline

    app = FastAPIOffline(
        title="earmark",
        summary="Concept-based search for a sound library: text, concepts and example sounds, with explanations.",
        version=_version(),
        static_url="/api-docs-assets",
    )
    app.state.earmark = state
    install_error_handlers(app)
    for module in (routes_library, routes_search, routes_sounds, routes_vocabulary):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.add_middleware(UploadSizeLimit, max_bytes=state.max_upload_bytes + MULTIPART_SLACK, paths=UPLOAD_PATHS)
    if cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "Range"],
                           expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"])
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("earmark")
    except Exception:  # not installed as a distribution (a source checkout on sys.path)
        return "0+unknown"


def serve(library_path: str | Path, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
          cors_origins: list[str] | None = None, max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
          log_level: str = "info") -> None:
    """Serve the library over HTTP until interrupted (``earmark serve``)."""
    import uvicorn

    app = create_app(library_path, token=token, cors_origins=cors_origins, max_upload_mb=max_upload_mb)
    if not _is_loopback(host):
        log.warning("earmark serve: listening on %s, reachable from other machines; sound files and search "
                    "results of this library are readable by anyone who can connect%s", host,
                    "" if token else " (write endpoints stay off: no token)")
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False, server_header=False)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
