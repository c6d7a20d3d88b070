"""The web client's static files: a Discord-like page that acts as the emulated users through the control API.

Plain HTML, CSS and JavaScript modules shipped in the package; no build step, nothing fetched from the
network. The page reads `/_emulator/state`, acts through the control routes and follows messages over the
`/_emulator/live` websocket.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

WEB_ROOT = Path(__file__).with_name("web")


async def _index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(WEB_ROOT / "index.html", headers={"Cache-Control": "no-cache"})


def setup_web(app: web.Application) -> None:
    app.router.add_get("/", _index)
    app.router.add_static("/web/", WEB_ROOT, append_version=False)
