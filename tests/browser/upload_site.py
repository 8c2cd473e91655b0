"""A small upload site for the browser tests: an ordinary form page whose own
script uploads whatever files it is given (FormData POST) back to this server,
which records exactly the bytes it received.

Upload paths on the form page: a plain file input, a `multiple` input, a drop
zone, a paste zone, an input in a srcdoc iframe and an input in an open shadow
root. A second page (/picker) picks with `showOpenFilePicker()` instead; a third (/paths)
has an input never inserted into the document, one in a detached form read with FormData, one
in a closed shadow root, and drop zones that read webkitGetAsEntry() and
getAsFileSystemHandle().
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

PAGES = Path(__file__).parent / "pages"
FORM_PAGE = (PAGES / "form.html").read_text(encoding="utf-8")
PICKER_PAGE = (PAGES / "picker.html").read_text(encoding="utf-8")
PATHS_PAGE = (PAGES / "paths.html").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Received:
    """One file as the site received it."""

    name: str
    type: str
    data: bytes
    last_modified: int


class UploadSite:
    """The test site, served by aiohttp on a loopback port from a background thread."""

    def __init__(self, photos_dir: Path | None = None) -> None:
        self.photos_dir = photos_dir
        self.port = 0
        self._uploads: dict[str, list[list[Received]]] = {}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _form(self, _request: web.Request) -> web.Response:
        return web.Response(text=FORM_PAGE, content_type="text/html")

    async def _picker(self, _request: web.Request) -> web.Response:
        return web.Response(text=PICKER_PAGE, content_type="text/html")

    async def _paths(self, _request: web.Request) -> web.Response:
        return web.Response(text=PATHS_PAGE, content_type="text/html")

    async def _upload(self, request: web.Request) -> web.Response:
        slot = request.query.get("slot", "")
        post = await request.post()
        meta = json.loads(str(post["meta"]))
        files = [field for field in post.getall("file", []) if isinstance(field, web.FileField)]
        batch = [
            Received(
                name=item["name"],
                type=item["type"],
                data=field.file.read(),
                last_modified=int(item["lastModified"]),
            )
            for item, field in zip(meta, files, strict=True)
        ]
        with self._lock:
            self._uploads.setdefault(slot, []).append(batch)
        return web.json_response({"ok": True})

    async def _photo(self, request: web.Request) -> web.StreamResponse:
        # Serves test photos to the page (for the paste test) from a test-chosen folder.
        assert self.photos_dir is not None
        path = (self.photos_dir / request.match_info["name"]).resolve()
        if path.parent != self.photos_dir.resolve() or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path)

    def start(self) -> UploadSite:
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_get("/form", self._form)
        app.router.add_get("/picker", self._picker)
        app.router.add_get("/paths", self._paths)
        app.router.add_post("/upload", self._upload)
        app.router.add_get("/photo/{name}", self._photo)
        self._thread.start()

        async def setup() -> int:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert server is not None
            return int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]

        self.port = asyncio.run_coroutine_threadsafe(setup(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def clear(self) -> None:
        with self._lock:
            self._uploads.clear()

    def batches(self, slot: str) -> list[list[Received]]:
        with self._lock:
            return list(self._uploads.get(slot, []))

    def wait_for(self, slot: str, timeout: float) -> list[Received]:
        """The first batch uploaded to `slot`, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batches = self.batches(slot)
            if batches:
                return batches[0]
            time.sleep(0.1)
        raise AssertionError(f"nothing was uploaded to {slot!r} within {timeout:.0f} s")
