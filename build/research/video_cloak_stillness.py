"""How still an enrolled person's cloak sits on their face in a video (research).

One cloak per track is the same crop-space change on every frame, warped onto the face
through that frame's landmarks (docs/video.md, *How faces are cloaked*). Whether it stays
put on the face depends on those landmarks: detected every 5th frame, interpolated
between. This script makes a 1080p pan and zoom over one photo (`veil_research.video_eval`'s
clip), enrols the person from other photos of theirs (a temporary config folder), cloaks
the clip at *medium* and *strong* and re-encodes it plainly (`cloak=False`), then maps
every frame of frames 30-59 back onto the photo through the clip's known geometry and
measures the change (cloaked minus plain re-encode, brightness, low-passed with a Gaussian
of 2 photo pixels x 0.5) in levels of 255:

- `size`: its mean absolute value;
- `frame-to-frame`: how much it changes from one frame to the next (a still cloak: only the
  encoder's noise; the plain re-encode against its source gives that floor);
- `per step`: the same for each pair of frames (steps constant between two detection rounds
  are the cloak sliding as the interpolated landmarks drift).

`--smooth F` also cloaks the clip with each sighting's landmarks replaced by a straight
line through it and its neighbours where they lie within F eye distances of one (research:
`TrackPath.of` patched in this process).

    .venv/bin/python build/research/video_cloak_stillness.py --smooth 0.05
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from veil.engine import Engine
from veil.video.pipeline import cloak_video_file
from veil.video.tracking import TrackPath
from veil_research import evaluate as ev
from veil_research import video_eval as ve

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
FRAMES = range(30, 60)
SETTINGS = ve.ClipSettings((1920, 1080), 90, 30, 18)


def smooth_landmarks(times: F64, marks: F64, limit: float) -> tuple[F64, int]:
    """Each sighting's landmarks on the straight line fitted through it and its two nearest
    neighbours in time, where all three lie within `limit` eye distances of that line."""
    n = len(times)
    if n < 3:
        return marks, 0
    out = marks.copy()
    used = 0
    for i in range(n):
        lo = min(max(0, i - 1), n - 3)
        t = times[lo : lo + 3]
        m = marks[lo : lo + 3].reshape(3, -1)
        design = np.stack([np.ones(3), t - times[i]], axis=1)
        coef = np.linalg.lstsq(design, m, rcond=None)[0]
        eyes = float(np.linalg.norm(marks[i][1] - marks[i][0]))
        resid = np.linalg.norm((design @ coef - m).reshape(3, 5, 2), axis=2)
        if resid.max() <= limit * eyes:
            out[i] = coef[0].reshape(5, 2)
            used += 1
    return out, used


def patch_smoothing(limit: float) -> None:
    shipped = TrackPath.of.__func__  # type: ignore[attr-defined]

    def of(cls: type[TrackPath], track: object, pad: int) -> TrackPath:
        path: TrackPath = shipped(cls, track, pad)
        marks, used = smooth_landmarks(path.times, path.landmarks, limit)
        print(f"  smoothed {used} of {len(marks)} sightings", flush=True)
        return cls(path.track_id, path.frames, path.times, marks, path.pad)

    TrackPath.of = classmethod(of)  # type: ignore[method-assign, assignment]


def luma_frames(path: Path) -> dict[int, F32]:
    out: dict[int, F32] = {}
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n in FRAMES:
                out[n] = frame.to_ndarray(format="rgb24").astype(np.float32).mean(axis=2)
            if n >= FRAMES[-1]:
                break
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--person", default="Matt_Damon")
    parser.add_argument("--photo", default="img33.jpg", help="the clip's photo")
    parser.add_argument(
        "--enrol", nargs="+", default=["img29.jpg", "img30.jpg", "img31.jpg", "img32.jpg"]
    )
    parser.add_argument("--smooth", type=float, default=None, metavar="F")
    args = parser.parse_args(argv)
    folder = ev.default_faces_dir() / "photos" / args.person
    veil = Path(sys.executable).with_name("veil")
    with tempfile.TemporaryDirectory(prefix="veil-stillness-") as tmp:
        work = Path(tmp)
        config = work / "config"
        env = {"VEIL_CONFIG_DIR": str(config), "PATH": "/usr/bin:/bin"}
        photos = [str(folder / name) for name in args.enrol]
        subprocess.run(
            [str(veil), "enrol", *photos, "--name", "me", "--strength", "medium"],
            check=True,
            env=env,
            capture_output=True,
        )
        # One engine for every run: its profile book re-reads the folder when
        # `--set-strength` rewrites the profile.
        engine = Engine.load(config_dir=config)
        rgb = ve.decode_rgb((folder / args.photo).read_bytes())
        found = ve.prominent_face(engine, rgb)
        if found is None:
            print("no face on the clip's photo", file=sys.stderr)
            return 1
        landmarks = found[1]
        clip = work / "clip.mp4"
        ve.make_clip(clip, rgb, landmarks, SETTINGS)
        cloak_video_file(engine, clip, work / "plain.mp4", cloak=False)
        runs = [("medium", "medium", False), ("strong", "strong", False)]
        if args.smooth is not None:
            runs.append(("medium, smoothed", "medium", True))
        outputs: dict[str, Path] = {}
        for label, strength, smoothed in runs:
            subprocess.run(
                [str(veil), "enrol", "--name", "me", "--set-strength", strength],
                check=True,
                env=env,
                capture_output=True,
            )
            if smoothed:
                patch_smoothing(args.smooth)
            outputs[label] = work / f"{label.replace(', ', '-')}.mp4"
            result = cloak_video_file(engine, clip, outputs[label])
            tracks = [(t.profile, t.strength) for t in result.tracks]
            print(f"{label}: {result.face_frames}/{result.frames} face-frames, tracks {tracks}")

        transforms = ve.pan_zoom(landmarks, SETTINGS)
        centre = landmarks.mean(axis=0)
        half = int(np.linalg.norm(landmarks[1] - landmarks[0]) * 1.6)
        scale = 0.5  # output pixels per photo pixel

        def on_photo(frame: F32, index: int) -> F32:
            place = np.array(
                [[1 / scale, 0, centre[0] - half], [0, 1 / scale, centre[1] - half], [0, 0, 1]]
            )
            to_frame = np.vstack([transforms[index], [0, 0, 1]]) @ place
            size = int(2 * half * scale)
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            return np.asarray(cv2.warpAffine(frame, to_frame[:2], (size, size), flags=flags))

        source, plain = luma_frames(clip), luma_frames(work / "plain.mp4")
        pairs = [("plain re-encode vs source", plain, source)]
        pairs += [(label, luma_frames(path), plain) for label, path in outputs.items()]
        for label, frames, reference in pairs:
            changes = np.stack(
                [
                    cv2.GaussianBlur(on_photo(frames[i], i) - on_photo(reference[i], i), (0, 0), 2)
                    for i in FRAMES
                ]
            )
            steps = np.abs(np.diff(changes, axis=0)).mean(axis=(1, 2))
            print(
                f"{label:28s} size {np.abs(changes).mean():.2f}  frame-to-frame {steps.mean():.2f}"
                "  per step " + " ".join(f"{s:.2f}" for s in steps)
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
