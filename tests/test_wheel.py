"""A built wheel works outside the checkout: its models ship inside it, research does not.

Slow (builds the wheel, about 30 s) but bounded; runs in the normal suite. The installed copy
goes into a `--target` folder and runs on this venv's interpreter, which has the runtime
dependencies already (only the build backend, setuptools, comes from the package index).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_finds_its_models_and_cloaks_outside_the_checkout(
    tmp_path: Path, faces_dir: Path
) -> None:
    # Built from a copy: setuptools writes build/lib/ next to setup.py, which in the
    # checkout is our own build/ folder.
    source = tmp_path / "source"
    for name in ("pyproject.toml", "setup.py", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info", "cache")
    shutil.copytree(REPO / "companion", source / "companion", ignore=skip)
    shutil.copytree(REPO / "models", source / "models", ignore=skip)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(wheels)],
        check=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = wheels.glob("veil-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "veil/models/manifest.json" in names and "veil/models/sface.weights" in names
    assert not [n for n in names if "veil_research" in n or n.startswith("tests/")]

    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(wheel)],
        check=True,
        timeout=300,
    )  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in {"VEIL_MODELS_DIR", "PYTHONPATH"}}
    env |= {"PYTHONPATH": str(site), "VEIL_CONFIG_DIR": str(tmp_path / "config")}

    def veil(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "veil.cli", *args],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    where = subprocess.run(
        [sys.executable, "-c", "import veil; print(veil.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert where.stdout.strip().startswith(str(site)), "the installed copy, not the checkout"
    doctor = veil("doctor", "--models-only")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert f"Models ({site / 'veil' / 'models'})" in doctor.stdout

    photo = faces_dir / "photos" / "Jennifer_Aniston" / "img3.jpg"
    out = tmp_path / "out"
    cloak = veil("cloak", str(photo), "-o", str(out), "--mode", "low")
    assert cloak.returncode == 0, cloak.stdout + cloak.stderr
    cloaked = out / photo.name
    assert cloaked.read_bytes()[:2] == b"\xff\xd8" and cloaked.read_bytes() != photo.read_bytes()
