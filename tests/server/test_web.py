"""What the game port serves from the client folder, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import ROOT
from server.web import static_file

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
