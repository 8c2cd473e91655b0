"""Caps on what one video may cost: bytes, seconds, frames, pixels, streams.

Each is checked before the work it bounds: the file size and what the container header
announces (dimensions, duration, stream count) before any frame is decoded; frame counts,
per-frame dimensions and the decoded pixel total while decoding, so a file that lies in its
header (a decompression bomb: a few kilobytes of skipped frames announcing hours, or a
stream that changes size mid-way) is stopped as soon as it passes a cap.
"""

from __future__ import annotations

from dataclasses import dataclass

from veil.errors import VideoTooLargeError, VideoTooLongError


@dataclass(frozen=True)
class VideoLimits:
    """Configurable caps (`veil cloak --max-video-seconds`; the server will pass its own)."""

    max_bytes: int = 4 * 1024**3
    """Largest input file: 4 GiB (a 1 GB phone video must work)."""
    max_seconds: float = 15 * 60.0
    """Longest video: 15 minutes."""
    max_frames: int = 15 * 60 * 120
    """Most frames: 15 minutes at 120 frames a second."""
    max_frame_pixels: int = 8192 * 4352
    """Largest frame: 8K (DCI 8K plus a margin); 4K phone video is 8.3 MP."""
    max_pixel_rate: float = 8192 * 4352 * 60.0
    """Decoded pixels a second of video: 8K at 60 frames a second."""
    max_streams: int = 16
    """Streams in the container (a phone video has 2 to 5)."""
    max_fps: float = 960.0
    """Average frame rate (slow-motion phones record 240; 960 exists)."""

    def decoder_options(self) -> dict[str, str]:
        """FFmpeg decoder options that enforce the frame cap inside the decoder itself: a
        stream whose parameter sets announce more pixels than its container header did is
        refused before its first frame is allocated."""
        return {"max_pixels": str(self.max_frame_pixels)}

    def check_bytes(self, size: int) -> None:
        if size > self.max_bytes:
            raise VideoTooLargeError(
                f"the video is {size / 1e9:.2f} GB; the limit is {self.max_bytes / 1e9:.2f} GB"
            )

    def check_frame(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise VideoTooLargeError(f"the video announces an empty frame ({width}x{height})")
        if width * height > self.max_frame_pixels or max(width, height) > 16384:
            raise VideoTooLargeError(
                f"{width}x{height} frames are {width * height / 1e6:.0f} megapixels; "
                f"the limit is {self.max_frame_pixels / 1e6:.0f}"
            )

    def check_duration(self, seconds: float) -> None:
        if seconds > self.max_seconds:
            raise VideoTooLongError(
                f"the video is {seconds:.0f} s long; the limit is {self.max_seconds:.0f} s"
            )

    def check_frames(self, frames: int, pixels: int, seconds: float | None) -> None:
        """Frames decoded so far: count and pixel total against the caps."""
        if frames > self.max_frames:
            raise VideoTooLongError(
                f"the video has more than {self.max_frames} frames; Veil does not decode that many"
            )
        budget = self.max_pixel_rate * self.max_seconds
        if pixels > budget:
            raise VideoTooLargeError(
                "the video decodes to more pixels than Veil processes "
                f"({pixels / 1e9:.0f} gigapixels so far; a decompression bomb?)"
            )
        if seconds is not None:
            self.check_duration(seconds)
