"""HTTP responses for the game port: JSON, and the browser client's files.

Only what a browser needs is served from ``client_web/``: its pages, modules,
styles and images, and the ES-module builds of its npm dependencies. The
client's tests, npm manifests, dotfiles and anything outside the folder are
404, whatever the path says.
"""

from __future__ import annotations

import json
import mimetypes
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Any

from websockets.datastructures import Headers
from websockets.http11 import Response

#: File types served from the client folder (by suffix).
SERVED_SUFFIXES = frozenset({".html", ".js", ".mjs", ".css", ".png", ".svg", ".ico", ".webp", ".woff2", ".map"})
#: Top-level folders of the client folder that are never served.
PRIVATE_DIRS = frozenset({"test"})

_CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json"}


def http_response(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache")])
    for k, v in (extra or {}).items():
        headers[k] = v
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(obj: Any, status: int = 200, extra: dict[str, str] | None = None) -> Response:
    return http_response(status, json.dumps(obj).encode(), "application/json", extra)


def not_found() -> Response:
    return http_response(404, b"not found\n", "text/plain; charset=utf-8")


def servable(root: Path, path: str) -> Path | None:
    """The file under ``root`` (resolved) that URL path ``path`` names, if it may be served."""
    parts = PurePosixPath(path).parts[1:] if path.startswith("/") else PurePosixPath(path).parts
    if not parts or any(p.startswith(".") for p in parts) or parts[0] in PRIVATE_DIRS:
        return None
    target = (root / Path(*parts)).resolve()
    if not target.is_relative_to(root) or target.suffix not in SERVED_SUFFIXES or not target.is_file():
        return None
    return target


def static_file(root: Path, path: str) -> Response:
    """Serve ``path`` (a URL path; ``/`` ending: its ``index.html``) from ``root`` (resolved), or 404."""
    if path.endswith("/"):
        path += "index.html"
    target = servable(root, path)
    if target is None:
        return not_found()
    ctype = _CONTENT_TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if ctype.startswith("text/") or ctype == "application/json":
        ctype += "; charset=utf-8"
    return http_response(200, target.read_bytes(), ctype)
