"""Decode: bytes -> upright RGB pixels (+ alpha) and everything needed to encode them back.

Pixels are RGB, uint8 (uint16 for 16-bit PNGs and 10/12-bit HEICs, so their depth
survives), EXIF orientation applied. Palette, 1-bit, grayscale and CMYK images are expanded
to RGB for the cloak; `encode` turns them back into the stored mode where that mode can
carry a cloak (see `encode`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, JpegImagePlugin

from veil.errors import CorruptImageError, ImageTooLargeError
from veil.imaging import bounds, jpeg
from veil.imaging.probe import DEFAULT_MAX_PIXELS, ImageInfo, open_image

# uint8, or uint16 for 16-bit PNGs (numpy's typing cannot say "one of two dtypes" usefully).
Pixels = npt.NDArray[Any]

_ORIENTATION = 0x0112


@dataclass(frozen=True)
class JpegParams:
    """How the input JPEG was coded, so the output is coded no worse."""

    quality: int | None  # estimated IJG quality
    subsampling: int  # Pillow's code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0, -1 unknown
    progressive: bool


@dataclass
class DecodedImage:
    """A decoded photo: upright pixels plus what `encode` needs to write it back alike."""

    data: bytes  # the original file
    info: ImageInfo
    pixels: Pixels  # [H, W, 3] RGB, upright
    alpha: Pixels | None  # [H, W], same dtype, None when opaque
    orientation: int  # EXIF orientation that was applied (1 = none)
    exif: bytes | None
    xmp: bytes | None
    icc_profile: bytes | None
    jpeg: JpegParams | None
    cmyk: npt.NDArray[Any] | None  # the original CMYK planes (upright) for CMYK JPEGs
    # Set by the engine after a cloak: whether the HDR rendition (cloaked primary x the
    # original gain map) still carries the cloak, so the gain map may stay (see `gainmap`).
    keep_gain_map: bool = False
    gain_map: bytes | None = None  # the gain map to write instead of the original's

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def max_value(self) -> int:
        return 65535 if self.pixels.dtype == np.uint16 else 255


def orient(array: npt.NDArray[Any], orientation: int) -> npt.NDArray[Any]:
    """Apply an EXIF orientation to an [H, W, ...] array, as Pillow's exif_transpose does."""
    if orientation == 2:
        out = array[:, ::-1]
    elif orientation == 3:
        out = array[::-1, ::-1]
    elif orientation == 4:
        out = array[::-1]
    elif orientation == 5:
        out = np.swapaxes(array, 0, 1)
    elif orientation == 6:
        out = np.rot90(array, -1)
    elif orientation == 7:
        out = np.rot90(np.swapaxes(array, 0, 1), 2)
    elif orientation == 8:
        out = np.rot90(array, 1)
    else:
        return array
    return np.ascontiguousarray(out)


def _orientation_of(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION, 1)
    except Exception:  # a broken EXIF block must not stop the cloak
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _png_bit_depth(data: bytes) -> int:
    return data[24] if len(data) > 25 and data[12:16] == b"IHDR" else 8


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"image too large to decode: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(f"the image data is damaged or truncated: {exc}") from exc


def _load_unless_decoded_elsewhere(image: Image.Image, info: ImageInfo, data: bytes) -> None:
    """Decode the pixels now, before `getexif()` can: for a PNG whose eXIf comes after the
    image data, `getexif()` loads the pixels itself and swallows a decoding error, leaving
    a half-decoded image that was then cloaked or passed on as if whole. JPEGs (decoded by
    OpenCV or with draft scaling) and 16-bit PNGs (OpenCV) are decoded later, strictly."""
    if info.format == "JPEG" or (info.format == "PNG" and _png_bit_depth(data) == 16):
        return
    _load(image)


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode a whole photo at full resolution (see the module docstring for the layout)."""
    image, info = open_image(data, max_pixels=max_pixels)
    with image:
        _load_unless_decoded_elsewhere(image, info, data)
        orientation = _orientation_of(image)
        exif = image.info.get("exif")
        xmp = image.info.get("xmp")
        icc = image.info.get("icc_profile")
        bounds.check_metadata_size(
            sum(len(v) for v in (exif, xmp, icc) if isinstance(v, bytes | str)), "metadata"
        )
        params = None
        if info.format == "JPEG":
            jpeg.split(data)  # structural check: a truncated JPEG is refused, not half-cloaked
            params = JpegParams(
                jpeg.estimate_quality(image),
                JpegImagePlugin.get_sampling(image),
                bool(image.info.get("progressive") or image.info.get("progression")),
            )
        cmyk = None
        alpha: Pixels | None = None
        if info.format == "PNG" and _png_bit_depth(data) == 16:
            pixels, alpha = _decode_png16(data)
        elif info.format == "HEIF" and _heif_bit_depth(image) > 8:
            pixels, alpha = _decode_heif16(data)
        elif info.format == "JPEG" and image.mode == "RGB":
            pixels = _decode_jpeg_rgb(data)
        else:
            _load(image)  # a no-op when already loaded above
            pixels, alpha, cmyk = _to_rgb(image)
    pixels = orient(pixels, orientation)
    alpha = None if alpha is None else orient(alpha, orientation)
    cmyk = None if cmyk is None else orient(cmyk, orientation)
    return DecodedImage(
        data=data,
        info=info,
        pixels=pixels,
        alpha=alpha,
        orientation=orientation,
        exif=exif if isinstance(exif, bytes) else None,
        xmp=xmp if isinstance(xmp, bytes) else (xmp.encode() if isinstance(xmp, str) else None),
        icc_profile=icc if isinstance(icc, bytes) else None,
        jpeg=params,
        cmyk=cmyk,
    )


def _to_rgb(image: Image.Image) -> tuple[Pixels, Pixels | None, npt.NDArray[Any] | None]:
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image), None, None
    if mode == "CMYK":
        cmyk = np.asarray(image)
        return np.asarray(image.convert("RGB")), None, cmyk
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (
        mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        alpha = rgba[:, :, 3]
        rgb = np.ascontiguousarray(rgba[:, :, :3])
        return rgb, (None if bool(np.all(alpha == 255)) else np.ascontiguousarray(alpha)), None
    return np.asarray(image.convert("RGB")), None, None


def _heif_bit_depth(image: Image.Image) -> int:
    depth = image.info.get("bit_depth", 8)
    return depth if isinstance(depth, int) else 8


def _decode_heif16(data: bytes) -> tuple[Pixels, Pixels | None]:
    """10/12-bit HEIC (iPhones write 10-bit) as uint16, so the depth survives a cloak;
    libheif has applied the file's rotation and mirroring already, as for 8-bit files."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        array = np.asarray(heif)
    except (OSError, ValueError, RuntimeError) as exc:
        raise CorruptImageError(f"the HEIC data is damaged: {exc}") from exc
    if array.dtype != np.uint16 or array.ndim != 3 or array.shape[2] not in (3, 4):
        raise CorruptImageError("unexpected HEIC pixel layout")
    if array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3]), np.ascontiguousarray(array[:, :, 3])
    return np.ascontiguousarray(array), None


def _decode_jpeg_rgb(data: bytes) -> Pixels:
    """Colour JPEGs through OpenCV's libjpeg-turbo: the same pixels as Pillow, decoded
    straight into one numpy array (Pillow needs a 4-byte-per-pixel image plus a copy)."""
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION  # orientation is ours to apply
    array = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if array is None:
        raise CorruptImageError("the JPEG data is damaged or truncated")
    cv2.cvtColor(array, cv2.COLOR_BGR2RGB, dst=array)
    return array


def _decode_png16(data: bytes) -> tuple[Pixels, Pixels | None]:
    """16-bit PNGs through OpenCV, which keeps all 16 bits (Pillow drops RGB48 to 8 bits)."""
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise CorruptImageError("the 16-bit PNG data is damaged or truncated")
    if array.dtype != np.uint16:
        array = array.astype(np.uint16) * 257
    if array.ndim == 2:
        return np.ascontiguousarray(np.repeat(array[:, :, None], 3, axis=2)), None
    if array.shape[2] == 2:  # gray + alpha
        gray = array[:, :, 0]
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2)), array[:, :, 1].copy()
    if array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2RGB), array[:, :, 3].copy()
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB), None


def decode_preview(
    data: bytes, long_side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[npt.NDArray[Any], tuple[float, float]]:
    """A small upright RGB copy for face detection, and its (x, y) scale (preview px per full px).

    JPEGs are decoded with DCT scaling (`draft`), which for a baseline JPEG is several times
    faster than a full decode: the engine's no-face path then never decodes the
    full-resolution pixels at all. (A progressive JPEG saves far less: the engine decodes
    those whole and shrinks them.)
    """
    image, info = open_image(data, max_pixels=max_pixels)
    with image:
        _load_unless_decoded_elsewhere(image, info, data)
        orientation = _orientation_of(image)
        width, height = info.width, info.height
        if info.format == "JPEG":
            jpeg.split(data)
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale almost for the price of the entropy
            # decoding alone; take the smallest scale whose long side still covers ~75% of
            # `long_side` (a 4000 px photo is decoded at 1000 px, not at 2000 and resized).
            scale = next((s for s in (8, 4, 2) if max(width, height) / s >= 0.75 * long_side), 1)
            image.draft("RGB", (max(1, width // scale), max(1, height // scale)))
        if info.format == "PNG" and _png_bit_depth(data) == 16:
            pixels16, _ = _decode_png16(data)
            rgb: npt.NDArray[Any] = (pixels16 >> 8).astype(np.uint8)
        else:
            _load(image)
            rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    rgb = orient(rgb, orientation)
    full_w, full_h = (height, width) if orientation >= 5 else (width, height)
    small_long = max(rgb.shape[:2])
    if small_long > 1.3 * long_side:  # a little over is cheaper to detect on than to resize
        factor = long_side / small_long
        size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb), (rgb.shape[1] / full_w, rgb.shape[0] / full_h)
