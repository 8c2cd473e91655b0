"""A cloak body's first bytes (photo or video?) and a video body streamed to a private file.

The body is never held whole: chunks are gathered up to `WRITE_CHUNK` and written by a
thread (a disk write must not stall the event loop), so memory stays at a few MiB whatever
the video's size, and the cap is checked as the bytes arrive.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from veil.server.http_errors import ClientGoneError, PayloadTooLargeError
from veil.server.spool import create_private_file

HEAD_BYTES = 64
"""What `veil.video.sniff` needs to tell a video container from a photo."""
WRITE_CHUNK = 1024 * 1024

_GONE = "The client closed the connection before the body arrived."


def video_too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(
        f"The video is larger than {limit / 1024**3:.2f} GiB, the companion's limit "
        "(veil serve --max-video-bytes)."
    )


async def read_head(request: web.Request) -> bytes:
    """Up to `HEAD_BYTES` of the body (fewer only when the body is shorter)."""
    head = b""
    try:
        while len(head) < HEAD_BYTES:
            chunk = await request.content.read(HEAD_BYTES - len(head))
            if not chunk:
                break
            head += chunk
    except (ConnectionError, HttpProcessingError) as exc:
        raise ClientGoneError(_GONE) from exc
    return head


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


async def spool_body(request: web.Request, path: Path, limit: int, head: bytes) -> int:
    """Write `head` and the rest of the body to the new private file `path`; returns its
    size. 413 `payload_too_large` at once from Content-Length, or as soon as the stream
    passes `limit`; `ClientGoneError` when the client stops mid-body."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise video_too_large(limit)
    fd = await asyncio.to_thread(create_private_file, path)
    size = len(head)
    pending = bytearray(head)
    try:
        try:
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise video_too_large(limit)
                pending += chunk
                if len(pending) >= WRITE_CHUNK:
                    data, pending = bytes(pending), bytearray()
                    await asyncio.to_thread(_write_all, fd, data)
        except (ConnectionError, HttpProcessingError) as exc:
            raise ClientGoneError(_GONE) from exc
        if declared is not None and size < declared:
            raise ClientGoneError(_GONE)
        if pending:
            await asyncio.to_thread(_write_all, fd, bytes(pending))
    finally:
        await asyncio.to_thread(os.close, fd)
    return size
