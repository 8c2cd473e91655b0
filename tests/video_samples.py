"""Short test videos made from the face corpus: pan and zoom over a real photo (faces move
and change size), encoded with PyAV in a given container and codec, with a sine-tone audio
track, and phone-style metadata written by exiftool (MP4/MOV) or the muxer (WebM/MKV).

Each clip knows where its faces are on every frame (the photo's landmarks, found once on
the photo, moved by the frame's own pan/zoom transform): the ground truth the coverage
check compares the cloak's tracks with, independent of the detector that made them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import numpy.typing as npt

from metadata_samples import EXIFTOOL

F64 = npt.NDArray[np.float64]

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")

SERIAL = "VEILSN-20261122-0042"
OWNER = "Jane Veiltest"
LATITUDE, LONGITUDE = 48.8577, 2.2950


@dataclass(frozen=True)
class Clip:
    path: Path
    size: tuple[int, int]  # coded width, height
    frames: int
    times: tuple[float, ...]  # presentation time of each frame
    truth: tuple[tuple[F64, ...], ...]  # per frame: landmarks [5, 2] of each face in view


def load_rgb(path: Path, long_side: int = 1600) -> npt.NDArray[np.uint8]:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    factor = min(1.0, long_side / max(bgr.shape[:2]))
    if factor < 1:
        bgr = cv2.resize(bgr, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def pan_zoom(
    faces: Sequence[F64],
    frames: int,
    size: tuple[int, int],
    *,
    zoom: float = 0.45,
    pan: float = 0.5,
    margin: float = 4.0,
) -> list[npt.NDArray[np.float64]]:
    """Per frame, the 2x3 affine from photo to frame: a window around the faces that
    drifts sideways by `pan` window widths and narrows by `zoom` (faces grow)."""
    points = np.concatenate(faces)
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    iod = max(float(np.linalg.norm(f[1] - f[0])) for f in faces)
    width0 = max(hi[0] - lo[0] + margin * 2 * iod, margin * 2.5 * iod)
    out = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        width = width0 * (1 - zoom * t)
        scale = size[0] / width
        c = centre + np.array([(t - 0.5) * pan * width0 * 0.5, (t - 0.5) * 0.1 * width0])
        matrix = np.array(
            [[scale, 0, size[0] / 2 - scale * c[0]], [0, scale, size[1] / 2 - scale * c[1]]]
        )
        out.append(matrix)
    return out


def make_clip(
    path: Path,
    photo: npt.NDArray[np.uint8],
    faces: Sequence[F64],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    size: tuple[int, int] = (320, 240),
    seconds: float = 2.0,
    fps: int = 30,
    audio: str | None = "aac",
    audio_tracks: int = 1,
    rotation: int | None = None,
    vfr: bool = False,
    tags: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
    grain: int = 0,
) -> Clip:
    """A pan-and-zoom clip over `photo`; `grain` > 0 adds fresh uniform noise of up to
    +-grain levels to every frame, as a phone sensor's noise (noiseless pans compress far
    better than real footage and make encoders look faster than they are)."""
    frames = round(seconds * fps)
    noise = np.random.default_rng(0)
    transforms = pan_zoom(faces, frames, size)
    time_base = Fraction(1, 90000)
    times: list[float] = []
    truth: list[tuple[F64, ...]] = []
    with av.open(str(path), "w") as out:
        out.metadata.update(tags or {})
        video = out.add_stream(codec, rate=fps, options=options or {})
        video.width, video.height, video.pix_fmt = size[0], size[1], pix_fmt
        video.time_base = time_base
        video.codec_context.time_base = time_base
        if rotation is not None:
            video.set_display_rotation(rotation)
        sounds = [out.add_stream(audio, rate=48000) for _ in range(audio_tracks)] if audio else []
        pts = 0
        for i, matrix in enumerate(transforms):
            rgb = cv2.warpAffine(
                photo, matrix, size, flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE
            )
            if grain:
                shake = noise.integers(-grain, grain + 1, rgb.shape, dtype=np.int16)
                rgb = np.clip(rgb + shake, 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = pts, time_base
            times.append(pts / 90000)
            step = 90000 // fps
            pts += step if not vfr else (step * 2 if i % 3 == 2 else step // 2 + step // 4)
            truth.append(tuple(_visible([f @ matrix[:, :2].T + matrix[:, 2] for f in faces], size)))
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for k, sound in enumerate(sounds):
            _tone(out, sound, times[-1] + 0.1, 220.0 * (k + 1))
    if tags and EXIFTOOL and path.suffix.lower() in {".mp4", ".mov"}:
        phone_metadata(path)
    return Clip(path, size, frames, tuple(times), tuple(truth))


def _visible(faces: Sequence[F64], size: tuple[int, int]) -> list[F64]:
    """Faces whose eyes and mouth are inside the frame."""
    w, h = size
    return [
        f
        for f in faces
        if (f[:, 0] >= 0).all()
        and (f[:, 0] < w).all()
        and (f[:, 1] >= 0).all()
        and (f[:, 1] < h).all()
    ]


def _tone(out: Any, stream: Any, seconds: float, hz: float) -> None:
    rate, chunk = 48000, 1024
    t = 0
    while t < seconds * rate:
        samples = np.sin(2 * np.pi * hz * (np.arange(chunk) + t) / rate).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(0.2 * samples[None], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, t
        out.mux(stream.encode(frame))
        t += chunk
    out.mux(stream.encode(None))


PHONE_TAGS = {
    # Apple (mdta keys) and the classic udta atoms Android and cameras write.
    "Keys:GPSCoordinates": f"{LATITUDE}, {LONGITUDE}, 35",
    "Keys:LocationName": "Tour Eiffel",
    "Keys:Make": "Apple",
    "Keys:Model": "iPhone 15 Pro",
    "Keys:Software": "17.5.1",
    "Keys:CreationDate": "2024:05:01 10:20:30+02:00",
    "Keys:Author": OWNER,
    "Keys:DisplayName": OWNER,
    "UserData:GPSCoordinates": f"{LATITUDE}, {LONGITUDE}",
    "UserData:SerialNumber": SERIAL,
    "UserData:Make": "samsung",
    "UserData:Model": "SM-S918B",
    "UserData:Artist": OWNER,
    "UserData:Author": OWNER,
    "ItemList:Author": OWNER,
    "ItemList:Comment": "at home",
    "QuickTime:CreateDate": "2024:05:01 08:20:30",
}


def phone_metadata(path: Path, tags: dict[str, str] | None = None) -> None:
    """Write phone-style QuickTime metadata with exiftool (location, device, serial, owner)."""
    assert EXIFTOOL
    args = [f"-{k}={v}" for k, v in (tags or PHONE_TAGS).items()]
    run = subprocess.run(
        [EXIFTOOL, "-overwrite_original", "-q", "-m", *args, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr


# Damaged and truncated files, and the real-world shapes the damage checks must let through
# (veil/video/integrity.py). ffmpeg (the system's, not PyAV's) does what a phone, an editor
# or a download would: -c copy remuxes, cuts with edit lists, fragmented MP4.


def ffmpeg(*args: str | Path) -> None:
    assert FFMPEG, "ffmpeg is not installed"
    run = subprocess.run(
        [FFMPEG, "-v", "error", "-y", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr


def faststart(src: Path, dst: Path) -> Path:
    """The same streams with the index (`moov`) before the data, as phones and web uploads
    write them: a file cut short keeps its index and still opens."""
    ffmpeg("-i", src, "-map", "0", "-c", "copy", "-movflags", "+faststart", dst)
    return dst


def cut(src: Path, dst: Path, share: float) -> Path:
    """The first `share` of the file's bytes: a download or copy that stopped."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * share)])
    return dst


def packet_spans(path: Path) -> list[tuple[str, int, int]]:
    """(stream kind, byte offset, size) of every packet, in file order."""
    with av.open(str(path)) as container:
        spans = [
            (p.stream.type, int(p.pos), int(p.size))
            for p in container.demux()
            if p.size and p.pos is not None and p.pos >= 0
        ]
    return sorted(spans, key=lambda span: span[1])


def cut_between_packets(src: Path, dst: Path, share: float) -> Path:
    """Cut at the start of the first packet at or after `share` of the file: no packet is
    cut in half, so only the count and the timestamps tell the file is short."""
    data = src.read_bytes()
    offset = next(pos for _, pos, _ in packet_spans(src) if pos >= len(data) * share)
    dst.write_bytes(data[:offset])
    return dst


def cut_last_audio(src: Path, dst: Path) -> Path:
    """Cut at the start of the file's last run of audio packets (a faststart MP4 ends with
    one): every video frame is there, the end of the sound is not."""
    spans = packet_spans(src)
    assert spans[-1][0] == "audio", spans[-3:]
    start = len(spans) - 1
    while spans[start - 1][0] == "audio":
        start -= 1
    dst.write_bytes(src.read_bytes()[: spans[start][1]])
    return dst


def damage_video(src: Path, dst: Path, *, concealed: bool) -> Path:
    """8 bytes flipped in the middle of a video packet past the middle of the file (inside
    `mdat`): the container is intact, one frame is not. `concealed`: the first such packet
    whose damage FFmpeg's decoder hides (every frame still comes out, the damaged one
    flagged corrupt: what a cloak without the damage checks took as whole); else the first
    whose damage makes the decoder raise."""
    video = [(pos, size) for kind, pos, size in packet_spans(src) if kind == "video"]
    for pos, size in video[len(video) // 2 :]:
        data = bytearray(src.read_bytes())
        for k in range(8):
            data[pos + size // 2 + k * 7] ^= 0xFF
        dst.write_bytes(bytes(data))
        if _conceals(dst, len(video)) == concealed:
            return dst
    raise AssertionError(f"no packet of {src} gives that damage")


def _conceals(path: Path, frames: int) -> bool | None:
    """True: every frame decodes, one flagged corrupt; False: the decoder raises; None:
    neither (the damage went unnoticed)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            flags = [f.is_corrupt for f in container.decode(stream)]
    except av.error.FFmpegError:
        return False
    return True if len(flags) == frames and any(flags) else None


def fragmented_with_index(src: Path, dst: Path) -> Path:
    """A fragmented MP4 (half-second `moof` fragments, as live recorders write them) with a
    global `sidx` up front: it declares no sample count, but the index gives the duration."""
    flags = "frag_keyframe+empty_moov+global_sidx+default_base_moof"
    ffmpeg("-i", src, "-c", "copy", "-movflags", flags, "-frag_duration", "500000", dst)
    return dst


def cut_between_fragments(src: Path, dst: Path) -> Path:
    """Cut just before the fragment at the file's middle: no packet is cut in half."""
    data = src.read_bytes()
    starts = [m.start() - 4 for m in re.finditer(b"moof", data)]
    dst.write_bytes(data[: starts[len(starts) // 2]])
    return dst


def cut_before_moov(src: Path, dst: Path) -> Path:
    """A QuickTime file whose index is at its end (as PyAV and most cameras write it) cut
    just before the index: nothing says what the data are."""
    data = src.read_bytes()
    moov = data.rfind(b"moov") - 4
    assert moov > data.find(b"mdat"), "the index is not at the end"
    dst.write_bytes(data[:moov])
    return dst


# HDR10 (SMPTE ST 2086 and CTA-861.3), written by x265 into the HEVC stream.
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"


def hdr10_clip(src: Path, dst: Path, *, max_cll: str | None = "1000,400") -> Path:
    """`src` (any video with a face) re-encoded by ffmpeg as 10-bit HEVC PQ / BT.2020 with
    a mastering display and, unless `max_cll` is None, content light levels."""
    params = [
        "log-level=error",
        f"master-display={MASTER_DISPLAY}",
        "colorprim=bt2020",
        "transfer=smpte2084",
        "colormatrix=bt2020nc",
    ]
    params += ["hdr10=1", f"max-cll={max_cll}"] if max_cll else ["cll=0"]
    ffmpeg(
        "-i", src, "-map", "0", "-c:a", "copy", "-c:v", "libx265", "-pix_fmt", "yuv420p10le",
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc",
        "-x265-params", ":".join(params), "-tag:v", "hvc1", dst,
    )  # fmt: skip
    return dst


# The same display for SVT-AV1, which takes decimals.
MASTER_DISPLAY_DECIMAL = "G(0.265,0.69)B(0.15,0.06)R(0.68,0.32)WP(0.3127,0.329)L(1000,0.005)"


def hdr10_av1_clip(src: Path, dst: Path, *, max_cll: str | None = "1000,400") -> Path:
    """`src` re-encoded by ffmpeg as 10-bit AV1 PQ / BT.2020 (SVT-AV1, in `dst`'s
    container) with a mastering display and, unless `max_cll` is None, light levels."""
    params = [f"mastering-display={MASTER_DISPLAY_DECIMAL}"]
    params += [f"content-light={max_cll}"] if max_cll else []
    ffmpeg(
        "-i", src, "-map", "0:v", "-c:v", "libsvtav1", "-preset", "10", "-pix_fmt",
        "yuv420p10le", "-color_primaries", "bt2020", "-color_trc", "smpte2084",
        "-colorspace", "bt2020nc", "-svtav1-params", ":".join(params), dst,
    )  # fmt: skip
    return dst


def hdr_side_data(path: Path) -> list[dict[str, Any]]:
    """ffprobe's side data on the first video frame: mastering display, light level."""
    assert FFPROBE, "ffprobe is not installed"
    run = subprocess.run(
        [
            FFPROBE, "-v", "error", "-select_streams", "v:0", "-show_frames",
            "-read_intervals", "%+#1", "-show_entries", "frame=side_data_list", "-of", "json",
            str(path),
        ],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    frames = json.loads(run.stdout)["frames"]
    wanted = {"Mastering display metadata", "Content light level metadata"}
    return [d for d in frames[0].get("side_data_list", []) if d["side_data_type"] in wanted]
