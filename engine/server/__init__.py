"""earmark's HTTP API and web page (FastAPI), for embedding earmark in sound-search tools.

``create_app(library_path)`` builds the ASGI app; ``serve(...)`` runs it with uvicorn. The
routes hold no search logic: each one validates input, calls one :class:`Library` method and
shapes the answer as JSON.
"""
from __future__ import annotations

from .app import DEFAULT_HOST, DEFAULT_PORT, create_app, serve

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "create_app", "serve"]
