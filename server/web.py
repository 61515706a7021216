"""HTTP for the game port: the requests we parse ourselves, JSON responses, and the browser client's files.

A WebSocket's opening request is a GET, which the websockets library parses.
Any other method (``POST /api/...``) it does not take (before websockets 17
at all; and never with a body), so ``parse_head`` reads those: the request
line and headers (their end found by ``server.frames.RequestEnd``), and
``body_length`` the ``Content-Length`` of a body of at most ``MAX_BODY``
bytes (no transfer coding: chunked bodies are refused, 411). Both raise
``HttpError``, whose status and reason are the answer. Sans-I/O: bytes in,
values out.

Only what a browser needs is served from ``client_web/``: its pages, modules,
styles and images, and the ES-module builds of its npm dependencies. The
client's tests, npm manifests, dotfiles and anything outside the folder are
404, whatever the path says (a name the file system refuses, too long or with
a NUL in it, included).

Every response says ``X-Content-Type-Options: nosniff``: a browser takes each
body as the type we name. ``origin_allowed`` is the WebSocket upgrade's
Origin check (cross-site WebSocket hijacking): a page of another origin may
not open a game connection in its visitor's name.
"""

from __future__ import annotations

import json
import mimetypes
import re
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from typing import Any

from attrs import frozen
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

#: File types served from the client folder (by suffix).
SERVED_SUFFIXES = frozenset({".html", ".js", ".mjs", ".css", ".png", ".svg", ".ico", ".webp", ".woff2", ".map"})
#: Top-level folders of the client folder that are never served.
PRIVATE_DIRS = frozenset({"test"})

_CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json"}

#: The largest request body read (a POST's), bytes: larger is 413.
MAX_BODY = 4096
#: The largest request line and headers we parse ourselves, bytes: larger is 431.
MAX_HEAD = 16 << 10

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")


@frozen
class HttpRequest:
    """One HTTP request as a route sees it.

    Attributes:
        method: ``GET``, ``POST``...
        path: the request target: the path and its query (``/api/match?id=m``).
        headers: its headers.
        body: its body (``Content-Length`` bytes; none for a GET).
    """

    method: str
    path: str
    headers: Headers
    body: bytes = b""

    @classmethod
    def of(cls, request: Request) -> HttpRequest:
        """A GET the websockets library parsed."""
        return cls("GET", request.path, request.headers)


class HttpError(Exception):
    """A request we answer with an error: its status and a reason (a JSON ``{"error": reason}`` body)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason} (HTTP {self.status})"

    def response(self, extra: dict[str, str] | None = None) -> Response:
        return json_response({"error": self.reason}, self.status, extra)


def parse_head(head: bytes) -> tuple[str, str, Headers]:
    """The method, target and headers of a request's head (its request line and headers, up to the empty line).

    Raises:
        HttpError: 400 for a malformed head, 505 for a protocol other than HTTP/1.0 or 1.1.
    """
    lines = head.split(b"\r\n")
    if lines[-2:] == [b"", b""]:
        del lines[-2:]
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[1].startswith(b"/") \
            or not parts[1].isascii() or any(c <= 0x20 or c == 0x7F for c in parts[1]):
        raise HttpError(400, "invalid request line")
    if parts[2] not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(505, "only HTTP/1.1 and HTTP/1.0 are spoken here")
    headers = Headers()
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.fullmatch(name):
            raise HttpError(400, f"invalid header line {line[:40]!r}")
        value = value.strip(b" \t")
        if not _VALUE.fullmatch(value):
            raise HttpError(400, f"invalid value of header {name.decode()}")
        headers[name.decode()] = value.decode("latin-1")
    return parts[0].decode(), parts[1].decode(), headers


def body_length(headers: Headers) -> int:
    """How many bytes of body follow the head: its ``Content-Length`` (0 without one).

    Raises:
        HttpError: 411 for a transfer coding (chunked), 400 for a bad length, 413 over ``MAX_BODY``.
    """
    if "Transfer-Encoding" in headers:
        raise HttpError(411, "no transfer coding (chunked) here: send the body with a Content-Length")
    lengths = set(headers.get_all("Content-Length"))
    if not lengths:
        return 0
    length = lengths.pop()
    if lengths or not length.isdigit() or not length.isascii():
        raise HttpError(400, "invalid Content-Length")
    if int(length) > MAX_BODY:
        raise HttpError(413, f"a body of {int(length)} bytes is over the limit of {MAX_BODY}")
    return int(length)


def http_response(status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))), ("Cache-Control", "no-cache"),
                       ("X-Content-Type-Options", "nosniff")])
    for k, v in (extra or {}).items():
        headers[k] = v
    return Response(status, HTTPStatus(status).phrase, headers, body)


def json_response(obj: Any, status: int = 200, extra: dict[str, str] | None = None) -> Response:
    return http_response(status, json.dumps(obj).encode(), "application/json", extra)


def not_found() -> Response:
    return http_response(404, b"not found\n", "text/plain; charset=utf-8")


def not_allowed(methods: list[str]) -> Response:
    """405 for a path that answers only ``methods``."""
    allow = ", ".join(sorted(set(methods)))
    return json_response({"error": f"method not allowed here; use {allow}"}, 405, {"Allow": allow})


def servable(root: Path, path: str) -> Path | None:
    """The file under ``root`` (resolved) that URL path ``path`` names, if it may be served."""
    parts = PurePosixPath(path).parts[1:] if path.startswith("/") else PurePosixPath(path).parts
    if not parts or any(p.startswith(".") for p in parts) or parts[0] in PRIVATE_DIRS:
        return None
    try:
        target = (root / Path(*parts)).resolve()
        if not target.is_relative_to(root) or target.suffix not in SERVED_SUFFIXES or not target.is_file():
            return None
    except (OSError, ValueError):  # a name too long for the file system, a NUL byte...
        return None
    return target


def origin_allowed(headers: Headers, allowed: tuple[str, ...], tls: bool) -> bool:
    """Whether a WebSocket upgrade with these ``headers`` may open: it sends no ``Origin`` (a bot, a
    native client), its ``Origin`` is the page's own (its scheme and the request's ``Host``), or it is one
    of ``allowed`` (``*``: any). Origins compare case-insensitively, without a trailing slash."""
    origin = headers.get("Origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in {a.rstrip("/").lower() for a in allowed}:
        return True
    host = headers.get("Host", "").strip().lower()
    scheme = "https" if tls else "http"
    default_port = ":443" if tls else ":80"
    own = {f"{scheme}://{host}", f"{scheme}://{host.removesuffix(default_port)}"}
    return bool(host) and origin in own


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
