"""Video cloaking: MP4/MOV (H.264, HEVC), WebM (VP9, AV1) and MKV, through PyAV.

Faces are detected every few frames and tracked; each track gets one cloak, pasted on every
frame through that frame's alignment; audio is copied untouched; metadata follows the
photos' allow-list. Entry point: `veil.video.pipeline.cloak_video_file`; design, figures
and limits: docs/video.md. This package's `__init__` imports nothing heavy: PyAV loads
only when a video is actually opened.
"""

from __future__ import annotations

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".qt", ".3gp", ".webm", ".mkv"}
"""File names `veil cloak` picks up in folders as videos."""
