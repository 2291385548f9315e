"""/docs and /redoc load nothing from a CDN: every asset they name is served by the gateway."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import Settings

ASSET_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
# The types StaticFiles may give by extension (the system's mime.types can name either for .js).
CONTENT_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".png": {"image/png"},
}


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """The real app; its lifespan (Triton, job store) never starts: these routes need neither."""
    return create_app(Settings(data_dir=tmp_path))


def get_all(app: FastAPI, *paths: str) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(go())


def references(html: str) -> list[str]:
    return ASSET_REFERENCE.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_reference_only_urls_on_the_gateway(app: FastAPI, page: str) -> None:
    (answer,) = get_all(app, page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    assert references(answer.text), "the page names no assets at all"
    assert "http://" not in answer.text and "https://" not in answer.text
    assert all(url.startswith("/static/") for url in references(answer.text))
    assert "/openapi.json" in answer.text


@pytest.mark.parametrize(
    ("page", "needed"),
    [("/docs", {".js", ".css", ".png"}), ("/redoc", {".js", ".png"})],
)
def test_every_asset_the_docs_pages_name_is_served_with_its_type(
    app: FastAPI, page: str, needed: set[str]
) -> None:
    (html,) = get_all(app, page)
    urls = references(html.text)
    assert {Path(url).suffix for url in urls} == needed
    for url, answer in zip(urls, get_all(app, *urls), strict=True):
        kind = answer.headers["content-type"].split(";")[0]
        assert answer.status_code == 200 and answer.content, url
        assert kind in CONTENT_TYPES[Path(url).suffix], (url, kind)


def test_the_swagger_ui_page_makes_no_call_to_the_online_validator(app: FastAPI) -> None:
    (answer,) = get_all(app, "/docs")
    assert '"validatorUrl": null' in answer.text


def test_root_still_redirects_to_the_docs(app: FastAPI) -> None:
    (answer,) = get_all(app, "/")  # httpx follows no redirect unless asked
    assert answer.status_code in (302, 307) and answer.headers["location"] == "/docs"


def test_the_docs_pages_are_not_in_the_api_schema(app: FastAPI) -> None:
    (answer,) = get_all(app, "/openapi.json")
    paths = set(answer.json()["paths"])
    assert not {"/docs", "/redoc"} & paths
    assert not [path for path in paths if path.startswith("/static")]
