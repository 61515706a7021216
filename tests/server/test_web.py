"""What the game port serves from the client folder, and what it refuses; the requests it parses itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.datastructures import Headers

from server.config import ROOT
from server.web import MAX_BODY, HttpError, body_length, parse_head, static_file

CLIENT = (ROOT / "client_web").resolve()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<!doctype html>")
    (tmp_path / "main.js").write_text("export {}")
    (tmp_path / "package.json").write_text("{}")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "a.test.js").write_text("x")
    (tmp_path / "node_modules" / "lib").mkdir(parents=True)
    (tmp_path / "node_modules" / "lib" / "index.mjs").write_text("export {}")
    (tmp_path / "node_modules" / "lib" / "package.json").write_text("{}")
    (tmp_path.parent / "outside.js").write_text("x")
    return tmp_path.resolve()


@pytest.mark.parametrize(("path", "ctype"), [
    ("/", "text/html; charset=utf-8"),
    ("/index.html", "text/html; charset=utf-8"),
    ("/main.js", "text/javascript; charset=utf-8"),
    ("/node_modules/lib/index.mjs", "text/javascript; charset=utf-8"),
])
def test_static_file_serves_pages_and_modules(root: Path, path: str, ctype: str) -> None:
    response = static_file(root, path)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == ctype
    assert int(response.headers["Content-Length"]) == len(response.body)


@pytest.mark.parametrize("path", [
    "/package.json", "/.env", "/test/a.test.js", "/node_modules/lib/package.json",
    "/../outside.js", "/%2e%2e/outside.js", "/missing.js", "/test/", "/node_modules/",
])
def test_static_file_refuses_tests_manifests_dotfiles_and_escapes(root: Path, path: str) -> None:
    assert static_file(root, path).status_code == 404


def test_the_real_client_folder_serves_its_pages_and_msgpack_but_not_its_tests() -> None:
    assert static_file(CLIENT, "/").status_code == 200
    assert static_file(CLIENT, "/replay.html").status_code == 200
    assert static_file(CLIENT, "/test/predict.test.js").status_code == 404
    assert static_file(CLIENT, "/package-lock.json").status_code == 404
    # npm ci (make setup) installs it; the page's import map points here.
    assert static_file(CLIENT, "/node_modules/@msgpack/msgpack/dist.esm/index.mjs").status_code == 200


# -- requests we parse ourselves (any method but GET) ---------------------------------------


def test_a_request_head_gives_its_method_target_and_headers() -> None:
    method, target, headers = parse_head(b"POST /api/matchmake?x=1 HTTP/1.1\r\nHost: a\r\nX-Two: 1\r\nx-two: 2\r\n\r\n")
    assert (method, target) == ("POST", "/api/matchmake?x=1")
    assert headers["host"] == "a" and headers.get_all("X-Two") == ["1", "2"]


@pytest.mark.parametrize("head, status", [
    (b"POST /a\r\n\r\n", 400), (b"POST  /a HTTP/1.1\r\n\r\n", 400), (b"POST a HTTP/1.1\r\n\r\n", 400),
    (b"P@ST /a HTTP/1.1\r\n\r\n", 400), (b"POST /a HTTP/1.1\r\nNo colon\r\n\r\n", 400),
    (b"POST /a HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n", 400), (b"POST /a HTTP/1.1\r\nA: \x00\r\n\r\n", 400),
    (b"POST /a HTTP/3\r\n\r\n", 505),
])
def test_a_malformed_request_head_is_an_http_error_with_its_status(head: bytes, status: int) -> None:
    with pytest.raises(HttpError) as info:
        parse_head(head)
    assert info.value.status == status


@pytest.mark.parametrize("fields, length, status", [
    ([], 0, None), ([("Content-Length", "12")], 12, None), ([("Content-Length", "3"), ("Content-Length", "3")], 3, None),
    ([("Content-Length", str(MAX_BODY))], MAX_BODY, None), ([("Content-Length", str(MAX_BODY + 1))], None, 413),
    ([("Transfer-Encoding", "chunked")], None, 411), ([("Content-Length", "-1")], None, 400),
    ([("Content-Length", "1"), ("Content-Length", "2")], None, 400), ([("Content-Length", "²")], None, 400),
])
def test_a_body_has_its_content_length_up_to_the_limit_and_never_a_transfer_coding(
        fields: list[tuple[str, str]], length: int | None, status: int | None) -> None:
    if status is None:
        assert body_length(Headers(fields)) == length
    else:
        with pytest.raises(HttpError) as info:
            body_length(Headers(fields))
        assert info.value.status == status
