"""GIF structure: blocks walked within bounds, frames decoded and composited as browsers do.

`parse` walks the whole file (header, palettes, extensions, image blocks) without decoding
any pixel, so the frame count and canvas are known and bounded (`limits.check_frames`)
before the first frame is decoded. `composites` then yields each frame as the canvas a
browser shows: the frame's opaque pixels drawn over what the previous frame's disposal left
(0/1 keep, 2 clear the frame's rectangle to transparent, 3 restore it). One frame's LZW data
is decoded by Pillow through a one-frame GIF made of that block alone.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image

from veil.errors import CorruptImageError
from veil.imaging import bounds

U8 = npt.NDArray[np.uint8]

SIGNATURES = (b"GIF87a", b"GIF89a")
MAX_EXTENSIONS = 4096 + 2 * 2000
"""Extension blocks in one GIF (one graphic control per frame, plus a few others)."""
MAX_SUB_BLOCKS = 1_000_000
"""Data sub-blocks in one GIF: a 50 MB GIF written with full 255-byte sub-blocks has about
200,000; one written with 1-byte sub-blocks would make the walk a Python loop of 25
million steps (a parser bomb)."""

# Pillow opens a GIF whose palette is all grey as "L" (grey values instead of indices); the
# one-frame GIFs `indices_of` builds carry this colourful palette instead, so the decoded
# values are the indices themselves.
_PROBE_PALETTE = bytes(c for i in range(256) for c in (i, 255 - i, (i * 7) & 0xFF))


@dataclass(frozen=True)
class Control:
    """A graphic control extension: how a frame is shown."""

    packed: int  # the raw packed byte (disposal, user input, transparency flag)
    delay: int  # centiseconds
    transparency: int  # palette index, meaningful only when `has_transparency`

    @property
    def disposal(self) -> int:
        return (self.packed >> 2) & 0x07

    @property
    def has_transparency(self) -> bool:
        return bool(self.packed & 0x01)

    def encode(self, transparency: int | None = None) -> bytes:
        packed, index = self.packed, self.transparency
        if transparency is not None:
            packed, index = packed | 0x01, transparency
        return (
            b"\x21\xf9\x04" + bytes([packed]) + self.delay.to_bytes(2, "little") + bytes([index, 0])
        )


@dataclass(frozen=True)
class Frame:
    """One image block and the graphic control before it."""

    left: int
    top: int
    width: int
    height: int
    flags: int  # the image descriptor's packed byte (local palette, interlace, sort, size)
    local_palette: bytes | None  # RGB triplets
    data: bytes  # LZW minimum code size + sub-blocks + terminator, as stored
    control: Control | None
    raw: bytes  # the control extension (if any) + the whole image block, as stored

    @property
    def interlaced(self) -> bool:
        return bool(self.flags & 0x40)

    @property
    def disposal(self) -> int:
        return self.control.disposal if self.control else 0

    @property
    def transparency(self) -> int | None:
        if self.control is not None and self.control.has_transparency:
            return self.control.transparency
        return None

    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)


@dataclass(frozen=True)
class Extension:
    """An extension block other than graphic control: label, application id, sub-blocks."""

    label: int
    identifier: bytes  # the first sub-block (application extensions: name + auth code)
    payload: bytes  # the other sub-blocks' contents, joined
    raw: bytes  # the whole block as stored


@dataclass
class GifFile:
    header: bytes  # signature + logical screen descriptor
    width: int
    height: int
    global_palette: bytes | None
    # In file order: Frame or Extension (graphic controls belong to their frame).
    blocks: list[Frame | Extension] = field(default_factory=list)

    @property
    def frames(self) -> list[Frame]:
        return [b for b in self.blocks if isinstance(b, Frame)]

    @property
    def loop(self) -> int | None:
        """NETSCAPE2.0 loop count (0: forever), None when absent (play once)."""
        for block in self.blocks:
            if not isinstance(block, Extension) or block.identifier[:11] not in _LOOP_APPS:
                continue
            if len(block.payload) >= 3 and block.payload[0] == 1:
                return int.from_bytes(block.payload[1:3], "little")
        return None

    def palette_of(self, frame: Frame) -> bytes:
        palette = frame.local_palette or self.global_palette
        if not palette:
            raise CorruptImageError("a GIF frame has no colour table")
        return palette


_LOOP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")


class TooManyFramesError(bounds.ImageTooComplexError):
    """More frames than the caller's budget (`parse(max_frames=...)`)."""


def is_gif(data: bytes) -> bool:
    return data[:6] in SIGNATURES


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0
        self.blocks = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise CorruptImageError("the GIF is truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def sub_blocks(self) -> list[bytes]:
        """Data sub-blocks up to the zero-length terminator."""
        out: list[bytes] = []
        while True:
            size = self.byte()
            if size == 0:
                return out
            out.append(self.take(size))
            self._count()

    def skip_sub_blocks(self) -> None:
        """Past the data sub-blocks (image data: nothing kept)."""
        data, pos = self.data, self.pos
        while True:
            if pos >= len(data):
                raise CorruptImageError("the GIF is truncated")
            size = data[pos]
            pos += 1 + size
            if size == 0:
                break
            self._count()
        if pos > len(data):
            raise CorruptImageError("the GIF is truncated")
        self.pos = pos

    def _count(self) -> None:
        self.blocks += 1
        if self.blocks > MAX_SUB_BLOCKS:
            raise bounds.too_many("GIF data sub-blocks", MAX_SUB_BLOCKS)


def parse(data: bytes, *, max_frames: int) -> GifFile:
    """Walk every block (no pixel decoded); CorruptImageError when cut short or malformed,
    ImageTooComplexError past the block limits."""
    if not is_gif(data):
        raise CorruptImageError("not a GIF stream")
    reader = _Reader(data)
    header = reader.take(13)
    width = int.from_bytes(header[6:8], "little")
    height = int.from_bytes(header[8:10], "little")
    flags = header[10]
    global_palette = reader.take(3 << ((flags & 0x07) + 1)) if flags & 0x80 else None
    gif = GifFile(header, width, height, global_palette)
    control: Control | None = None
    control_start = -1
    extensions = frames = 0
    while reader.pos < len(data):
        start = reader.pos
        kind = reader.byte()
        if kind == 0x3B:  # trailer
            return gif
        if kind == 0x21:
            extensions += 1
            if extensions > MAX_EXTENSIONS:
                raise bounds.too_many("GIF extension blocks", MAX_EXTENSIONS)
            label = reader.byte()
            blocks = reader.sub_blocks()
            if label == 0xF9:
                if not blocks or len(blocks[0]) < 4:
                    raise CorruptImageError("a GIF graphic control block is damaged")
                body = blocks[0]
                control = Control(body[0], int.from_bytes(body[1:3], "little"), body[3])
                control_start = start
                continue
            identifier = blocks[0] if blocks else b""
            gif.blocks.append(
                Extension(label, identifier, b"".join(blocks[1:]), data[start : reader.pos])
            )
            continue
        if kind != 0x2C:
            raise CorruptImageError(f"unknown GIF block 0x{kind:02x}")
        frames += 1
        if frames > max_frames:
            raise TooManyFramesError(f"the GIF has more than {max_frames} frames")
        descriptor = reader.take(9)
        left, top, w, h = (int.from_bytes(descriptor[i : i + 2], "little") for i in (0, 2, 4, 6))
        image_flags = descriptor[8]
        local = reader.take(3 << ((image_flags & 0x07) + 1)) if image_flags & 0x80 else None
        data_start = reader.pos
        code_size = reader.byte()
        if not 1 <= code_size <= 11:
            raise CorruptImageError("a GIF frame's LZW code size is invalid")
        reader.skip_sub_blocks()
        if w == 0 or h == 0 or left + w > width or top + h > height:
            raise CorruptImageError(
                f"a GIF frame ({w}x{h} at {left},{top}) lies outside its {width}x{height} canvas"
            )
        raw_start = control_start if control is not None else start
        gif.blocks.append(
            Frame(
                left,
                top,
                w,
                h,
                image_flags,
                local,
                data[data_start : reader.pos],
                control,
                data[raw_start : reader.pos],
            )
        )
        control, control_start = None, -1
    if not gif.frames:
        raise CorruptImageError("the GIF has no image")
    return gif  # no trailer: browsers show what is there, so do we


def indices_of(frame: Frame) -> U8:
    """The frame's palette indices [h, w], de-interlaced (Pillow's LZW decoder)."""
    screen = frame.width.to_bytes(2, "little") + frame.height.to_bytes(2, "little")
    mini = (
        b"GIF89a"
        + screen
        + b"\xf7\x00\x00"
        + _PROBE_PALETTE
        + b","
        + bytes(4)
        + screen
        + bytes([frame.flags & 0x40])
        + frame.data
        + b";"
    )
    try:
        with Image.open(io.BytesIO(mini)) as image:
            image.load()
            if image.mode != "P" or image.size != (frame.width, frame.height):
                raise CorruptImageError("a GIF frame decodes to an unexpected layout")
            return np.array(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(f"a GIF frame's image data is damaged: {exc}") from exc


def colours(palette: bytes) -> U8:
    """The palette as [256, 3]: entries past its end are black, as browsers show them."""
    table = np.zeros((256, 3), np.uint8)
    entries = np.frombuffer(palette, np.uint8).reshape(-1, 3)[:256]
    table[: len(entries)] = entries
    return table


def draw(canvas: U8, gif: GifFile, frame: Frame, indices: U8) -> None:
    """Draw a frame's opaque pixels onto an RGBA canvas [H, W, 4] in place."""
    table = np.zeros((256, 4), np.uint8)
    table[:, :3] = colours(gif.palette_of(frame))
    table[:, 3] = 255
    region = canvas[frame.slices()]
    if frame.transparency is None:
        region[...] = table[indices]
        return
    opaque = (indices != frame.transparency)[:, :, None]
    np.copyto(region, table[indices], where=opaque)


def dispose(canvas: U8, frame: Frame, before: U8 | None) -> None:
    """Apply a frame's disposal after it was shown (`before`: the rectangle before it was
    drawn, for disposal 3)."""
    if frame.disposal == 2:
        canvas[frame.slices()] = 0
    elif frame.disposal == 3 and before is not None:
        canvas[frame.slices()] = before


def composites(gif: GifFile) -> Iterator[U8]:
    """Each frame as shown: an RGBA canvas [H, W, 4] (a new array each time)."""
    canvas = np.zeros((gif.height, gif.width, 4), np.uint8)
    for frame in gif.frames:
        before = canvas[frame.slices()].copy() if frame.disposal == 3 else None
        draw(canvas, gif, frame, indices_of(frame))
        yield canvas.copy()
        dispose(canvas, frame, before)
