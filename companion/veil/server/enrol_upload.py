"""Reading an enrolment upload: a multipart/form-data body of 3-20 photos, within limits.

Fields (docs/api.md, POST /v1/enrol): `photo` (a file, 3 to 20 of them, in order) and
`face_<i>` (optional: which face, 0-based from the left, is the person in photo `i`,
0-based). Anything else is refused with a typed error, never a crash: the body must carry
a Content-Length of at most `max_body` (checked before a byte is read), each photo at most
`max_photo` bytes, at most `MAX_PARTS` parts; parsing errors of the multipart framing are
400 `bad_request`. Only bytes are read here; each photo's header is probed afterwards, off
the event loop, by the caller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from veil.enrolment import MAX_PHOTOS, MIN_PHOTOS
from veil.errors import EnrolError, ErrorCode
from veil.server.http_errors import BadRequestError, ClientGoneError, PayloadTooLargeError

MAX_PARTS = 2 * MAX_PHOTOS + 4
FACE_FIELD = re.compile(r"face_(\d{1,2})")
FACE_VALUE_MAX_BYTES = 8
MAX_FACE_INDEX = 1000
LABEL_MAX = 100
CHUNK = 1 << 16


@dataclass(frozen=True)
class UploadedPhoto:
    label: str  # the file name the browser sent (for messages), or "photo N"
    data: bytes


@dataclass(frozen=True)
class EnrolUpload:
    photos: list[UploadedPhoto]
    faces: dict[int, int]  # photo index -> chosen face index


def photo_label(filename: str | None, index: int) -> str:
    """A short, printable label: the file's base name, never a path."""
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()[:LABEL_MAX]
    return base or f"photo {index + 1}"


def _too_large(limit: int, what: str) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"{what} is larger than {limit // (1024 * 1024)} MB, the limit.")


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    data = bytearray()
    while True:
        chunk = await part.read_chunk(CHUNK)
        if not chunk:
            return bytes(data)
        data += chunk
        if len(data) > limit:
            raise _too_large(limit, what)


async def read_enrol_upload(request: web.Request, *, max_body: int, max_photo: int) -> EnrolUpload:
    """The photos and face choices of an enrolment request (see the module docstring)."""
    if request.content_type != "multipart/form-data":
        raise BadRequestError(
            "Send the photos as multipart/form-data: one `photo` field per photo, "
            "and `face_<i>` where you chose a face."
        )
    declared = request.content_length
    if declared is None:
        raise BadRequestError("Send the body with a Content-Length (browsers do).")
    if declared > max_body:
        raise _too_large(max_body, "The request body")
    photos: list[UploadedPhoto] = []
    faces: dict[int, int] = {}
    parts = 0
    try:
        reader = await request.multipart()
        while True:
            part = await reader.next()
            if part is None:
                break
            parts += 1
            if parts > MAX_PARTS or not isinstance(part, BodyPartReader):
                raise BadRequestError(
                    f"Too many or nested parts: send at most {MAX_PHOTOS} photos."
                )
            name = part.name or ""
            if name == "photo":
                if len(photos) == MAX_PHOTOS:
                    raise EnrolError(
                        f"Enrolment takes at most {MAX_PHOTOS} photos.",
                        code=ErrorCode.ENROL_TOO_FEW_PHOTOS,
                    )
                label = photo_label(part.filename, len(photos))
                data = await _read_part(part, max_photo, f"{label}")
                photos.append(UploadedPhoto(label, data))
                continue
            match = FACE_FIELD.fullmatch(name)
            if match is None:
                raise BadRequestError("Unknown form field: the fields are `photo` and `face_<i>`.")
            raw = await _read_part(part, FACE_VALUE_MAX_BYTES, name)
            text = raw.decode("ascii", errors="replace").strip()
            if not text.isdigit() or int(text) > MAX_FACE_INDEX:
                raise BadRequestError(f"{name} must be a face number (0 is the leftmost face).")
            faces[int(match.group(1))] = int(text)
    except (ConnectionError, HttpProcessingError) as exc:
        raise ClientGoneError("The client closed the connection before the body arrived.") from exc
    except (ValueError, RuntimeError, AssertionError, LookupError, UnicodeError) as exc:
        # Malformed framing: no boundary, a broken part header, a bad charset...
        raise BadRequestError("The multipart body is malformed.") from exc
    if not MIN_PHOTOS <= len(photos) <= MAX_PHOTOS:
        raise EnrolError(
            f"Enrolment needs {MIN_PHOTOS} to {MAX_PHOTOS} photos of you (got {len(photos)}); "
            "more, in different light and angles, protect better.",
            code=ErrorCode.ENROL_TOO_FEW_PHOTOS,
        )
    for index in faces:
        if index >= len(photos):
            raise BadRequestError(f"face_{index} names photo {index + 1}, but there is none.")
    return EnrolUpload(photos, faces)
