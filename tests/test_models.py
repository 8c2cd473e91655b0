"""The committed model files match the manifest, and damage is reported clearly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from veil.config import models_dir
from veil.errors import ModelMissingError
from veil.modelstore import ModelStore, get_store, model_status


def test_manifest_lists_provenance_for_every_model() -> None:
    manifest = json.loads((models_dir() / "manifest.json").read_text())
    models = manifest["models"]
    assert "yunet" in models and "sface" in models
    for name, entry in models.items():
        assert entry["role"] in ("detector", "recogniser"), name
        assert entry["licence"], name
        src = entry["source"]
        assert src["registry"] in ("pypi", "npm") and src["package"] and src["version"], name
        assert len(src["sha256"]) == 64 and src["path_in_package"], name
        assert "export_models.py" in entry["produced_by"]["command"], name
        if entry["role"] == "recogniser":
            assert entry["embedding_dim"] > 0
            assert {f["kind"] for f in entry["files"]} == {"grad", "embed", "weights"}


def test_every_committed_file_matches_its_sha256() -> None:
    rows = model_status()
    assert rows, "the manifest lists no model files"
    bad = [(r.path, r.status) for r in rows if r.status != "ok"]
    assert not bad, bad


def test_sessions_are_built_once_and_shared() -> None:
    store = get_store()
    assert store.session("sface", "embed") is store.session("sface", "embed")
    assert get_store() is store


def _copy_detector(tmp_path: Path) -> Path:
    """A models folder holding only the (small) detector, with its manifest entry."""
    manifest = json.loads((models_dir() / "manifest.json").read_text())
    manifest["models"] = {"yunet": manifest["models"]["yunet"]}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    for f in manifest["models"]["yunet"]["files"]:
        shutil.copy(models_dir() / f["path"], tmp_path / f["path"])
    return tmp_path / manifest["models"]["yunet"]["files"][0]["path"]


def test_corrupted_file_raises_model_missing_naming_file_and_fix(tmp_path: Path) -> None:
    model = _copy_detector(tmp_path)
    store = ModelStore(tmp_path)
    store.verified_path("yunet", "model")  # intact copy passes
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    model.write_bytes(bytes(data))
    with pytest.raises(ModelMissingError) as info:
        ModelStore(tmp_path).session("yunet", "model")
    message = str(info.value)
    assert model.name in message and "sha256" in message
    assert "export_models.py yunet" in message and "git checkout" in message
    assert [r.status for r in ModelStore(tmp_path).status()] == ["bad-hash"]


def test_a_file_changed_after_a_good_check_is_checked_again(tmp_path: Path) -> None:
    model = _copy_detector(tmp_path)
    store = ModelStore(tmp_path)
    store.verified_path("yunet", "model")
    model.write_bytes(model.read_bytes() + b"junk")
    with pytest.raises(ModelMissingError, match="does not match its sha256"):
        store.verified_path("yunet", "model")


def test_missing_file_and_missing_manifest(tmp_path: Path) -> None:
    model = _copy_detector(tmp_path)
    model.unlink()
    with pytest.raises(ModelMissingError, match="is missing"):
        ModelStore(tmp_path).verified_path("yunet", "model")
    assert [r.status for r in model_status(tmp_path)] == ["missing"]
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ModelMissingError, match="manifest"):
        ModelStore(tmp_path)
    with pytest.raises(ModelMissingError, match="not in"):
        get_store().entry("no-such-model")


def test_fingerprint_follows_the_files_sha256(tmp_path: Path) -> None:
    # Benchmark caches key on it: a rebuilt model must not reuse cloaks or embeddings.
    shutil.copy(models_dir() / "manifest.json", tmp_path / "manifest.json")
    before = ModelStore(tmp_path).entry("sface").fingerprint
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["models"]["sface"]["files"][0]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    after = ModelStore(tmp_path).entry("sface").fingerprint
    assert len(before) == 12 and after != before
    assert ModelStore(tmp_path).entry("mobilefacenet").fingerprint == (
        get_store().entry("mobilefacenet").fingerprint
    )
