"""Size limits enforced before work starts: body bytes (streamed, capped) and image pixels."""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from veil.errors import CorruptImageError
from veil.imageio import ImageInfo, probe
from veil.server.http_errors import ClientGoneError, PayloadTooLargeError


def too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit // (1024 * 1024)} MB, the companion's limit."


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(too_large_message(limit))


async def read_body(request: web.Request, limit: int, *, prefix: bytes = b"") -> bytes:
    """The whole body, refusing at once from Content-Length, or as soon as a stream passes it.

    `prefix`: the body's first bytes, already read (to tell a video from a photo)."""
    declared = request.content_length
    if declared is not None and declared > limit:
        raise _too_large(limit)
    body = bytearray(prefix)
    try:
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise _too_large(limit)
    except (ConnectionError, HttpProcessingError) as exc:
        # The client went away mid-body (closed tab, cancelled upload): nobody is left to
        # answer, and it is not the companion's fault, so no 500 and no traceback.
        raise ClientGoneError("The client closed the connection before the body arrived.") from exc
    if declared is not None and len(body) < declared:
        raise ClientGoneError("The client closed the connection before the body arrived.")
    return bytes(body)


def check_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Format and size from the header only; raises typed errors before any pixel is decoded."""
    if not data:
        raise CorruptImageError("The request body is empty: send the image file's bytes.")
    return probe(data, max_pixels=max_pixels)
