"""Image input/output for the engine, the CLI and the server (see `veil.imaging.*`)."""

from __future__ import annotations

from veil.imaging.decode import DecodedImage, JpegParams, Pixels, decode, decode_preview, orient
from veil.imaging.encode import encode, rewrite_metadata
from veil.imaging.jpeg import gain_map_of
from veil.imaging.metadata import MetadataReport
from veil.imaging.probe import DEFAULT_MAX_PIXELS, HEIF_AVAILABLE, MEDIA_TYPES, ImageInfo, probe

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "HEIF_AVAILABLE",
    "MEDIA_TYPES",
    "DecodedImage",
    "ImageInfo",
    "JpegParams",
    "MetadataReport",
    "Pixels",
    "decode",
    "decode_preview",
    "encode",
    "gain_map_of",
    "orient",
    "probe",
    "rewrite_metadata",
]
