"""What each personal-cloak strength buys, and previews to choose one by.

The figures come from `data/personal-strengths.json`, written by `veil-research personal
--write-figures` from a measured run (never typed by hand): leave-one-out protection
(the share of the person's clean photos a recogniser the cloak was not computed with fails
to recognise, trained on their cloaked uploads) and visibility (SSIMULACRA2 at feed size
and on the face at 100%). `recommended_strength` is the least visible strength whose
protection reaches `TARGET_PROTECTION` under both classifiers, also after JPEG.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from veil.personal import Strength

TARGET_PROTECTION = 0.60
FEED_LONG_SIDE = 1080
_LABELS = {
    Strength.LIGHT: "light",
    Strength.MEDIUM: "medium",
    Strength.STRONG: "strong",
}


@lru_cache(maxsize=1)
def strength_figures() -> dict[str, Any]:
    """The measured figures per strength ({} when this build has none)."""
    try:
        text = resources.files("veil").joinpath("data/personal-strengths.json").read_text()
    except (FileNotFoundError, OSError):
        return {}
    data: dict[str, Any] = json.loads(text)
    return data


def _row(strength: Strength) -> dict[str, Any] | None:
    rows = strength_figures().get("strengths", {})
    row = rows.get(strength.value) if isinstance(rows, dict) else None
    return row if isinstance(row, dict) else None


def protection_of(strength: Strength) -> float | None:
    """The worst of the leave-one-out means (centroid, logreg; clean and after JPEG)."""
    row = _row(strength)
    return None if row is None else float(row["protection_worst"])


def reaches_target(strength: Strength) -> bool:
    """Whether this strength's measured protection reaches `TARGET_PROTECTION`."""
    value = protection_of(strength)
    return value is not None and value >= TARGET_PROTECTION


def recommended_strength() -> Strength:
    """The least visible strength that reaches the target; the strongest when none does."""
    for strength in Strength:  # least visible first
        if reaches_target(strength):
            return strength
    return Strength.STRONG


def describe(strength: Strength) -> str:
    """One line: what this strength buys and costs, measured."""
    row = _row(strength)
    if row is None:
        return f"{_LABELS[strength]}: not measured in this build"
    return (
        f"{_LABELS[strength]}: a recogniser Veil did not compute with misses you in "
        f"{row['protection_centroid']:.0%} / {row['protection_logreg']:.0%} of your photos "
        f"(after JPEG {row['protection_jpeg_centroid']:.0%} / "
        f"{row['protection_jpeg_logreg']:.0%}{_downscaled(row)}); "
        f"SSIMULACRA2 {row['ssimulacra2_display']:.0f} at feed size, "
        f"{row['ssimulacra2_face']:.0f} on the face at 100% (90 = no visible change); "
        f"{row['look']}"
    )


def _downscaled(row: dict[str, Any]) -> str:
    """The clause ", after a 0.75 downscale a / b" where every recogniser was measured
    with it, else the empty string."""
    centroid, logreg = row.get("protection_down_centroid"), row.get("protection_down_logreg")
    if not isinstance(centroid, int | float) or not isinstance(logreg, int | float):
        return ""
    return f", after a 0.75 downscale {centroid:.0%} / {logreg:.0%}"


def strength_table() -> str:
    lines = ["What each strength buys (measured; details in the README):"]
    recommended = recommended_strength()
    for strength in Strength:
        mark = "  <- recommended" if strength is recommended else ""
        if strength is recommended and not reaches_target(strength):
            mark = (
                f"  <- preselected: no strength reaches the target ({TARGET_PROTECTION:.0%} "
                "against every recogniser measured); this is the most Veil offers"
            )
        lines.append(f"  {describe(strength)}{mark}")
    return "\n".join(lines)


def figures_json() -> list[dict[str, Any]]:
    """The per-strength figures as the API sends them."""
    out = []
    for strength in Strength:
        row = _row(strength) or {}
        out.append(
            {
                "strength": strength.value,
                "recommended": strength is recommended_strength(),
                "reaches_target": reaches_target(strength),
                "description": describe(strength),
                **{k: v for k, v in row.items() if isinstance(v, int | float | str)},
            }
        )
    return out


def preview_images(engine: Any, profile: Any, data: bytes) -> dict[str, dict[str, bytes]]:
    """JPEGs of one photo of the person: the original and each strength, at feed size and
    as the face at 100%: {"original" | strength: {"feed": ..., "face": ...}}."""
    from veil import imageio
    from veil.profiles import ProfileBook

    decoded = imageio.decode(data, max_pixels=engine.max_pixels)
    original = _rgb8(decoded.pixels)
    faces = engine.find_faces(decoded.pixels)
    box = None
    if faces:
        f = max(faces, key=lambda f: f.box.width * f.box.height)
        box = f.box.grow(int(0.25 * f.box.width), original.shape[1], original.shape[0])
    versions = {"original": original}
    saved = engine.profiles
    try:
        for strength in Strength:
            engine.profiles = ProfileBook.fixed([replace(profile, strength=strength)])
            result = engine.cloak_bytes(data)
            versions[strength.value] = _rgb8(imageio.decode(result.data).pixels)
    finally:
        engine.profiles = saved
    out = {}
    for key, rgb in versions.items():
        face = rgb[box.slices()] if box is not None else rgb
        out[key] = {"feed": _jpeg(_feed(rgb)), "face": _jpeg(face)}
    return out


def write_previews(engine: Any, profile: Any, photo: Any, folder: Path) -> list[Path]:
    """`preview_images` of one enrolment photo as files, and one sheet side by side."""
    folder.mkdir(parents=True, exist_ok=True)
    images = preview_images(engine, profile, photo.data)
    written = []
    for kind in ("feed", "face"):
        tiles = []
        for key, views in images.items():
            rgb = np.asarray(cv2.imdecode(np.frombuffer(views[kind], np.uint8), cv2.IMREAD_COLOR))
            path = folder / f"{key}-{kind}.jpg"
            path.write_bytes(views[kind])
            written.append(path)
            tiles.append(_label(rgb, key))
        height = min(t.shape[0] for t in tiles)
        tiles = [cv2.resize(t, (round(t.shape[1] * height / t.shape[0]), height)) for t in tiles]
        sheet = folder / f"sheet-{kind}.jpg"
        cv2.imwrite(str(sheet), np.concatenate(tiles, axis=1), [cv2.IMWRITE_JPEG_QUALITY, 92])
        written.append(sheet)
    return written


def _rgb8(pixels: Any) -> np.ndarray:
    arr = np.asarray(pixels)
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3])


def _feed(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    factor = min(1.0, FEED_LONG_SIDE / max(h, w))
    if factor >= 1.0:
        return rgb
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))


def _jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise ValueError("preview encode failed")
    return bytes(buf.tobytes())


def _label(bgr: np.ndarray, text: str) -> np.ndarray:
    out = bgr.copy()
    scale = max(0.6, out.shape[1] / 600)
    # A dark outline under light text: readable on any photo.
    for colour, width in (((0, 0, 0), 4), ((255, 255, 255), 2)):
        cv2.putText(
            out,
            text,
            (10, int(30 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            colour,
            int(width * scale),
            cv2.LINE_AA,
        )
    return out
