"""Animated images: GIF (also single-frame), animated WebP and APNG, cloaked frame by frame.

Faces are tracked across frames with the video tracker (`veil.video.tracking`) and each
track gets ONE cloak (`veil.video.cloaks`), warped onto every frame through that frame's
own alignment, so the cloak neither flickers nor averages out. GIFs keep their structure
block for block (palettes, frame rectangles, disposal, transparency, delays, loop): only
the frames whose pixels must change are re-encoded, with their own palette. Entry point:
`veil.animated.pipeline.cloak_animation` (called by `Engine.cloak_bytes`); limits and
figures: docs/video.md, "Animated images".
"""

from __future__ import annotations

ANIMATED_SUFFIXES = {".gif", ".apng"}
"""File names `veil cloak` picks up in folders as animated images (.webp and .png are
already picked up as photos; the engine tells animated ones from stills by their bytes)."""
