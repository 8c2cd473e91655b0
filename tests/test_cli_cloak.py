"""`veil cloak` and `veil check` as a user runs them: the installed CLI in a subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine_support import (
    SVG,
    face_photo,
    gif_bomb,
    huge_png_header,
    identifying_exif,
    jpeg_bytes,
    textured,
)

VEIL = Path(sys.executable).with_name("veil")
REPO = Path(__file__).resolve().parents[1]


def veil(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VEIL), *map(str, args)], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def batch(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """One batch run over a folder of good and hostile files (module-scoped: models load once)."""
    if not VEIL.exists():
        pytest.skip(f"{VEIL} not installed (run scripts/install)")
    root = tmp_path_factory.mktemp("cli")
    inputs = root / "in"
    (inputs / "sub").mkdir(parents=True)
    photo = face_photo(900)
    with Image.open(io.BytesIO(photo)) as im:
        (inputs / "portrait.jpg").write_bytes(jpeg_bytes(im, quality=92, exif=identifying_exif()))
    (inputs / "sub" / "landscape.jpg").write_bytes(
        jpeg_bytes(textured(1200, 800), quality=90, exif=identifying_exif())
    )
    (inputs / "zero.jpg").write_bytes(b"")
    (inputs / "truncated.jpg").write_bytes(jpeg_bytes(textured(640, 480))[:4000])
    (inputs / "huge.png").write_bytes(huge_png_header())
    (inputs / "notes.jpg").write_bytes(b"meeting notes, definitely not a photo\n")
    (root / "vector.svg").write_bytes(SVG)
    (root / "bomb.gif").write_bytes(gif_bomb())
    out = root / "out"
    run = veil("cloak", inputs, root / "vector.svg", root / "bomb.gif", "-o", out, "--mode", "low")
    return inputs, out, run


def test_batch_reports_each_failure_and_goes_on(
    batch: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    _, out, run = batch
    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert len(lines) == 8, run.stdout
    fails = {line.split(":")[0].removeprefix("FAIL  ") for line in lines if line.startswith("FAIL")}
    assert {Path(f).name for f in fails} == {
        "zero.jpg", "truncated.jpg", "huge.png", "notes.jpg", "vector.svg", "bomb.gif"
    }  # fmt: skip
    assert "image_too_large" in run.stdout and "corrupt_image" in run.stdout
    assert "unsupported_format" in run.stdout
    assert "2 cloaked, 6 failed" in run.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "portrait.jpg", "sub", "sub/landscape.jpg"
    ]  # fmt: skip


def test_face_photo_is_cloaked_same_name_size_format(
    batch: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    inputs, out, run = batch
    line = next(x for x in run.stdout.splitlines() if "portrait.jpg" in x)
    assert line.startswith("ok") and "faces=1" in line and "ssim=0.9" in line
    with Image.open(inputs / "portrait.jpg") as a, Image.open(out / "portrait.jpg") as b:
        assert (a.format, a.size, a.mode) == (b.format, b.size, b.mode)
        before = np.asarray(a).astype(np.int16)
        after = np.asarray(b).astype(np.int16)
        exif = b.getexif()
        assert 0x8825 not in exif and 0xA431 not in exif.get_ifd(0x8769)
        assert exif.get(0x010F) == "VeilCam"
    diff = np.abs(after - before).mean(axis=2)
    height, width = diff.shape
    centre = diff[height // 4 : height * 3 // 4, width // 3 : width * 2 // 3].mean()
    corners = np.concatenate(
        [diff[: height // 8, : width // 8], diff[: height // 8, -(width // 8) :]]
    )
    assert centre > 0.5 and corners.mean() < 0.5 and centre > 3 * corners.mean()


def test_no_face_photo_keeps_pixels_and_drops_gps(
    batch: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    inputs, out, run = batch
    line = next(x for x in run.stdout.splitlines() if "landscape.jpg" in x)
    assert line.startswith("ok") and "faces=0" in line and "GPS" in line
    with (
        Image.open(inputs / "sub" / "landscape.jpg") as a,
        Image.open(out / "sub" / "landscape.jpg") as b,
    ):
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert 0x8825 not in b.getexif()


def test_check_reports_cosine_ssim_and_psnr(
    batch: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    inputs, out, _ = batch
    run = veil("check", inputs / "portrait.jpg", out / "portrait.jpg")
    assert run.returncode == 0, run.stderr
    assert "whole image: SSIM 0.9" in run.stdout and "PSNR" in run.stdout
    assert "sface (surrogate): cosine" in run.stdout


def test_without_output_dir_writes_next_to_input_and_never_overwrites(tmp_path: Path) -> None:
    if not VEIL.exists():
        pytest.skip(f"{VEIL} not installed")
    src = tmp_path / "beach.jpg"
    data = jpeg_bytes(textured(400, 300), quality=90, exif=identifying_exif())
    src.write_bytes(data)
    run = veil("cloak", src)
    assert run.returncode == 0, run.stdout + run.stderr
    assert src.read_bytes() == data
    assert (tmp_path / "beach.cloaked.jpg").exists()
    run = veil("cloak", "--in-place", src)
    assert run.returncode == 0
    assert src.read_bytes() != data  # GPS gone, in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beach.cloaked.jpg", "beach.jpg"]


def test_check_judges_each_model_by_its_calibrated_threshold(
    batch: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    inputs, out, _ = batch
    run = veil("check", "--json", inputs / "portrait.jpg", out / "portrait.jpg")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    models = report["faces"][0]["models"]
    assert set(models) == {n for n, e in manifest["models"].items() if e["role"] == "recogniser"}
    for name, row in models.items():
        threshold = manifest["models"][name]["match"]["cosine_threshold"]
        assert row["threshold"] == threshold
        moved_past = row["verdict"].startswith("moved past")
        assert moved_past == (row["cosine"] < threshold), (name, row)
