"""Which encoder re-encodes a video stream, at what quality, in which pixel format.

One encoder per input codec, from the FFmpeg inside PyAV's wheel (see docs/video.md for its
licence): the output keeps the input's codec, bit depth and chroma subsampling. A codec
with no decoder or encoder here is refused with `UnsupportedCodecError`, never passed
through. Qualities aim at "visually equal to the input" (measured in docs/video.md against
a plain re-encode at the same settings).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import av
import av.codec

from veil.errors import UnsupportedCodecError

# SVT-AV1 prints its configuration to stderr on every open unless told otherwise.
os.environ.setdefault("SVT_LOG", "1")


@dataclass(frozen=True)
class EncoderPlan:
    """How the cloaked frames are encoded."""

    encoder: str  # FFmpeg encoder name
    pix_fmt: str  # the encoder's input format (the decoder's output where it can take it)
    options: dict[str, str] = field(default_factory=dict)
    codec_tag: str | None = None  # e.g. "hvc1": HEVC that QuickTime and iOS play


# Input codec -> (encoder, quality options). x264: preset superfast with its macroblock-tree
# rate control put back (superfast turns it off, and its files grow 2x at the same CRF) at
# CRF 15 matches the former preset veryfast at CRF 16 in SSIMULACRA2 on the 1080p benchmark
# clip (90.9 and 91.0 against the source, half size) with 0.55x the encoder's CPU time and
# 1.2x the size (docs/video.md; veryfast CRF 16 itself matched preset fast at CRF 18, the
# usual "visually lossless"); the speed is superfast's one-pixel motion search and subpixel
# level 1. x265: preset superfast with adaptive quantisation put back (superfast turns it off,
# and its files grow about 1.4x for the same look) at CRF 17.5 matches the former preset
# veryfast at CRF 18 in SSIMULACRA2 on 1080p HEVC clips (8-bit 87.9 against 87.8, 10-bit 87.1
# against 86.5) with about 0.6x the encoder's CPU time and 1.1x the size (docs/video.md). VP9
# and AV1 (SVT) use their own 0-63 scales.
_ENCODERS: dict[str, tuple[str, dict[str, str]]] = {
    "h264": (
        "libx264",
        {"crf": "15", "preset": "superfast", "x264-params": "mbtree=1:rc-lookahead=10"},
    ),
    "hevc": (
        "libx265",
        {
            "crf": "17.5",
            "preset": "superfast",
            "x265-params": "log-level=error:aq-mode=2:aq-strength=1.0",
        },
    ),
    "vp9": (
        "libvpx-vp9",
        {"crf": "24", "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"},
    ),
    "av1": ("libsvtav1", {"crf": "26", "preset": "8"}),
    "vp8": ("libvpx", {"crf": "8", "b": "8M"}),
}

# Full-range ("JPEG") pixel formats some encoders refuse: same planes, range tagged instead.
_FULL_RANGE = {"yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p"}

# Pixel formats whose first plane is luma (Y), 8 or 16 bits a sample: the cloak is added
# to that plane alone (it changes brightness only).
LUMA_FORMATS: dict[str, int] = {
    "yuv420p": 8, "yuvj420p": 8, "yuv422p": 8, "yuvj422p": 8, "yuv444p": 8, "yuvj444p": 8,
    "yuv440p": 8, "nv12": 8, "nv21": 8, "gray": 8,
    "yuv420p10le": 10, "yuv422p10le": 10, "yuv444p10le": 10, "gray10le": 10,
    "yuv420p12le": 12, "yuv422p12le": 12, "yuv444p12le": 12, "gray12le": 12,
}  # fmt: skip


def encoder_available(name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


LARGE_FRAME = 2560 * 1440
"""From this many pixels a frame (1440p, 4K) the encoders look 3 frames ahead instead of
10-15: each frame in x264's look-ahead costs about 25 MB at 4K (measured, decoder and
encoder of a 4K clip: 735 MB at the default, 563 MB at 5, 512 MB at 3)."""


X265_LARGE_FRAME_PARAMS = ":bframes=0:rc-lookahead=1:frame-threads=1"
"""x265 from 1440p up: no B-frames and 1 frame of look-ahead instead of 3 and 10, and one
frame encoded at a time whatever the cores (x265 picks 2 frame threads from 4 cores, 3 from
8, each with its own frames: +280 MB at 3). x265 holds every frame from the moment it is
queued (look-ahead + 2 + B-frames of them before the first is encoded) to its last use as
a reference, at 4K about 50 MB each (source copy, half-size planes for the look-ahead) plus
90 MB for each one being encoded or referenced (reconstruction, per-block data; 10-bit; 8-bit
25 + 75 MB). Counted with heaptrack on a 4K 10-bit clip: 10 frames and 5 encoding sets with
1 B-frame and 2 of look-ahead (970 MB), 7 and 4 with these (715 MB), 4 and 4 without
look-ahead (565 MB, but without the macroblock tree: about 3x the size at the same CRF).
Against 1 B-frame and 2 of look-ahead, decoder and encoder of 4K clips: 10-bit 1,224 ->
996 MB, 8-bit 838 -> 689 MB; SSIMULACRA2 within 0.3 either way, the same CPU, 1.07x the
size on clips with grain, 1.16-1.35x on a noiseless pan (docs/video.md, HEVC memory)."""

X265_LARGE_FRAME_THREADS = 8
"""x265's worker threads from 1440p up, at most (fewer on a machine with fewer cores; x265's
default is one per core). Each costs about 5 MB (its analysis buffers): 4K 8-bit, decoder
and encoder, 690 MB with 2, 725 MB with 8, 772 MB with 16, the same output."""


def plan_encoder(codec: str, muxer: str, pix_fmt: str, pixels: int = 0) -> EncoderPlan:
    """The encoder for a stream of `codec` decoded as `pix_fmt`, written by `muxer`, with
    frames of `pixels` pixels."""
    if codec not in _ENCODERS:
        raise UnsupportedCodecError(
            f"{codec} video is not cloaked: Veil re-encodes H.264, HEVC, VP9, VP8 and AV1 "
            "(convert the video to H.264 MP4 first)"
        )
    encoder, options = _ENCODERS[codec]
    if not encoder_available(encoder):
        raise UnsupportedCodecError(
            f"this Veil's FFmpeg has no {codec} encoder ({encoder}); the video cannot be "
            "re-encoded with its faces cloaked"
        )
    if pix_fmt not in LUMA_FORMATS:
        raise UnsupportedCodecError(
            f"{codec} video in pixel format {pix_fmt or 'unknown'} is not cloaked "
            f"(Veil handles 8 to 12-bit YUV)"
        )
    supported = {f.name for f in av.codec.Codec(encoder, "w").video_formats or ()}
    target = pix_fmt if pix_fmt in supported else _FULL_RANGE.get(pix_fmt, "")
    if target not in supported:
        raise UnsupportedCodecError(
            f"{encoder} cannot encode {pix_fmt} frames (bit depth or chroma layout): "
            "the video cannot be re-encoded as it is"
        )
    tag = "hvc1" if codec == "hevc" and muxer in {"mp4", "mov"} else None
    chosen = dict(options)
    if pixels >= LARGE_FRAME and encoder == "libx264":
        # The shorter look-ahead weakens the macroblock tree: one CRF step lower keeps the
        # look (4K benchmark clip: 90.7 against 89.8 for the former veryfast CRF 16, 0.96x
        # its size).
        chosen["x264-params"] = "mbtree=1:rc-lookahead=3:sync-lookahead=0"
        chosen["crf"] = "14"
    elif pixels >= LARGE_FRAME and encoder == "libx265":
        # x265 refuses a look-ahead no longer than its run of B-frames (superfast: 3), and
        # each frame it holds costs 50-140 MB at 4K 10-bit (docs/video.md).
        threads = min(X265_LARGE_FRAME_THREADS, os.cpu_count() or 1)
        chosen["x265-params"] += f"{X265_LARGE_FRAME_PARAMS}:pools={threads}"
    return EncoderPlan(encoder, target, chosen, tag)
