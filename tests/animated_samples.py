"""Small animated GIF, WebP and APNG files made from the face corpus: a real face panned and
zoomed over a few frames (`video_samples.pan_zoom`), written by Pillow, with each frame's
true landmarks (the photo's, moved by the frame's transform) for the coverage checks."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from video_samples import pan_zoom

F64 = npt.NDArray[np.float64]
U8 = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Animation:
    data: bytes
    frames: list[U8]  # RGB frames as drawn (before any palette)
    truth: list[list[F64]]  # per frame: landmarks [5, 2] of each face fully in view
    durations: list[int]


def pan_frames(
    photo: U8, faces: Sequence[F64], count: int, size: tuple[int, int]
) -> tuple[list[U8], list[list[F64]]]:
    frames, truth = [], []
    for matrix in pan_zoom(faces, count, size, zoom=0.3, pan=0.4):
        rgb = cv2.warpAffine(
            photo, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
        )
        frames.append(np.ascontiguousarray(rgb))
        moved = [f @ matrix[:, :2].T + matrix[:, 2] for f in faces]
        w, h = size
        truth.append(
            [m for m in moved if (m >= 0).all() and (m[:, 0] < w).all() and (m[:, 1] < h).all()]
        )
    return frames, truth


def make_gif(
    frames: Sequence[U8],
    durations: Sequence[int],
    *,
    colours: int = 256,
    global_palette: bool = True,
    loop: int = 0,
    disposal: int = 1,
    comment: bytes | None = None,
    transparent_corner: bool = False,
) -> bytes:
    """A GIF of `frames`: one palette of `colours` shared by all (global) or one per frame."""
    if global_palette:
        strip = Image.fromarray(np.concatenate(list(frames), axis=0), "RGB")
        shared = strip.quantize(
            colors=colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
        images = [
            Image.fromarray(f, "RGB").quantize(palette=shared, dither=Image.Dither.FLOYDSTEINBERG)
            for f in frames
        ]
    else:
        images = [
            Image.fromarray(f, "RGB").quantize(colors=colours, method=Image.Quantize.MEDIANCUT)
            for f in frames
        ]
    options: dict[str, Any] = {}
    if comment is not None:
        options["comment"] = comment
    if transparent_corner:
        # One palette index (the first frame's top-left colour) is transparent on every frame.
        options["transparency"] = int(np.asarray(images[0])[0, 0])
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        "GIF",
        save_all=True,
        append_images=images[1:],
        duration=list(durations),
        loop=loop,
        disposal=disposal,
        optimize=False,
        **options,
    )
    return buffer.getvalue()


def make_webp(
    frames: Sequence[U8], durations: Sequence[int], *, lossless: bool, loop: int = 0
) -> bytes:
    images = [Image.fromarray(f, "RGB") for f in frames]
    buffer = io.BytesIO()
    options: dict[str, Any] = {"lossless": True} if lossless else {"quality": 90}
    images[0].save(
        buffer,
        "WEBP",
        save_all=True,
        append_images=images[1:],
        duration=list(durations),
        loop=loop,
        **options,
    )
    return buffer.getvalue()


def make_apng(frames: Sequence[U8], durations: Sequence[int], *, loop: int = 0) -> bytes:
    images = [Image.fromarray(f, "RGB") for f in frames]
    buffer = io.BytesIO()
    images[0].save(
        buffer, "PNG", save_all=True, append_images=images[1:], duration=list(durations), loop=loop
    )
    return buffer.getvalue()
