"""The web page at /ui: three static files from gateway/ui/, nothing generated per request.

The page calls the public API of this same origin only; its Content-Security-Policy says so to
the browser (no script, style, image or connection from anywhere else), so even a mistake in
the page cannot send a photo to another host."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from gateway.errors import NotFound

UI_DIR = Path(__file__).resolve().parents[1] / "ui"
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' blob:; media-src 'self' blob:; connect-src 'self'; form-action 'self'; "
    "base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse("/ui/")


@router.get("/ui/")
async def ui_page() -> FileResponse:
    return asset("index.html")


@router.get("/ui/{name}")
async def ui_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise NotFound(f"no page asset named {name!r}")
    return asset(name)


def asset(name: str) -> FileResponse:
    return FileResponse(UI_DIR / name, media_type=ASSETS[name], headers=HEADERS)
