"""/docs and /redoc work offline: every asset they reference is served by the server itself. HEAD on
the health checks answers 200 without a body."""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import LiveServer

CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def _references(html: str) -> list[str]:
    """The URLs a page loads: src and href attributes, Swagger UI's `url:` and ReDoc's `spec-url`."""
    return [a or b for a, b in re.findall(r'(?:src|href|spec-url)="([^"]*)"|url: \'([^\']*)\'', html)]


@pytest.mark.parametrize(("page", "script"), [("/docs", b"SwaggerUIBundle"), ("/redoc", b"Redoc")])
def test_docs_pages_load_everything_from_the_server(server: LiveServer, page: str, script: bytes) -> None:
    with server.client() as c:
        r = c.get(page)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        # Nothing from another host: no CDN, no web fonts, no validator badge.
        assert re.findall(r"https?:|//[a-z]", html) == [], html
        if page == "/docs":
            assert '"validatorUrl": null' in html
        refs = _references(html)
        assert "/openapi.json" in refs
        assets = [ref for ref in refs if ref != "/openapi.json"]
        assert any(ref.endswith(".js") for ref in assets), refs
        for ref in assets:
            assert ref.startswith("/") and not ref.startswith("//"), ref
            asset = c.get(ref)
            assert asset.status_code == 200, ref
            assert asset.content, ref
            expected = CONTENT_TYPES[ref[ref.rfind(".") :]]
            assert expected in asset.headers["content-type"], (ref, asset.headers["content-type"])
            if ref.endswith(".js"):
                assert script in asset.content
        assert c.get("/openapi.json").json()["openapi"].startswith("3.1")  # Swagger UI 5 renders 3.1
        if page == "/docs":
            assert c.get("/docs/oauth2-redirect").status_code == 200


def test_head_on_health_checks(server: LiveServer) -> None:
    with server.client() as c:
        for path in ("/healthz", "/readyz"):
            r = c.head(path)
            assert (r.status_code, r.content) == (200, b""), path
            assert c.get(path).status_code == 200


def test_health_head_is_not_in_the_openapi_document(server: LiveServer) -> None:
    paths = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()["paths"]
    assert set(paths["/healthz"]) == {"get"} and set(paths["/readyz"]) == {"get"}
    assert not any(p.startswith("/docs") or p == "/redoc" for p in paths)
