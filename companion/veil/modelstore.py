"""The model files Veil runs: the manifest, hash checks, and shared ONNX Runtime sessions.

`models/manifest.json` lists every model with its files and their sha256. A file is
hashed once per (path, size, mtime), so repeated loads stay cheap, and an
ONNX Runtime session is built once per file and reused by every caller.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnxruntime as ort

from veil.config import models_dir
from veil.errors import ModelMissingError
from veil.workers import physical_cores

MANIFEST_NAME = "manifest.json"
REBUILD_HINT = (
    "restore it with `git checkout -- models/` (the models are committed), or rebuild it with "
    "`build/work/venv/bin/python build/models/export_models.py {target}` "
    "(see build/models/README.md)"
)


@dataclass(frozen=True)
class ModelFile:
    path: str  # relative to the models folder
    kind: str  # "model" (detector), "grad", "embed" or "weights"
    sha256: str
    size: int


@dataclass(frozen=True)
class ModelEntry:
    name: str
    role: str  # "detector" or "recogniser"
    files: tuple[ModelFile, ...]
    embedding_dim: int | None
    licence: str
    default_surrogate: bool  # used by the cloak by default (others are held-out attackers)
    raw: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        """Short hash over the sha256 of every file: changes whenever any file is rebuilt
        (benchmark caches key on it)."""
        blob = "|".join(f"{f.kind}:{f.sha256}" for f in sorted(self.files, key=lambda f: f.kind))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def file(self, kind: str) -> ModelFile:
        for f in self.files:
            if f.kind == kind:
                return f
        raise ModelMissingError(f"model {self.name!r} has no {kind!r} file in the manifest")


@dataclass(frozen=True)
class ModelStatus:
    """One line of `veil doctor`: is this model file present and intact?"""

    name: str
    role: str
    path: str
    kind: str
    status: str  # "ok", "missing" or "bad-hash"
    sha256: str  # expected (from the manifest)
    size: int


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ModelStore:
    """The manifest of one models folder, with verified files and cached sessions."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or models_dir()).resolve()
        self._lock = threading.Lock()
        self._hash_cache: dict[tuple[str, int, int], str] = {}
        self._sessions: dict[str, Any] = {}
        self.models = self._load_manifest()

    def _load_manifest(self) -> dict[str, ModelEntry]:
        path = self.root / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelMissingError(
                f"model manifest {path} is missing; " + REBUILD_HINT.format(target="yunet sface")
            ) from None
        except (OSError, ValueError) as exc:
            raise ModelMissingError(f"model manifest {path} is unreadable: {exc}") from exc
        models: dict[str, ModelEntry] = {}
        for name, entry in data.get("models", {}).items():
            files = tuple(
                ModelFile(str(f["path"]), str(f["kind"]), str(f["sha256"]), int(f["size"]))
                for f in entry["files"]
            )
            dim = entry.get("embedding_dim")
            models[name] = ModelEntry(
                name=name,
                role=str(entry["role"]),
                files=files,
                embedding_dim=int(dim) if dim is not None else None,
                licence=str(entry.get("licence", "")),
                default_surrogate=bool(entry.get("default_surrogate", False)),
                raw=entry,
            )
        return models

    def entry(self, name: str) -> ModelEntry:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(sorted(self.models)) or "none"
            raise ModelMissingError(
                f"model {name!r} is not in {self.root / MANIFEST_NAME} (known: {known})"
            ) from None

    def names(self, role: str | None = None) -> list[str]:
        return sorted(n for n, e in self.models.items() if role is None or e.role == role)

    def _file_status(self, mf: ModelFile) -> tuple[str, Path]:
        path = self.root / mf.path
        try:
            st = path.stat()
        except FileNotFoundError:
            return "missing", path
        key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            digest = self._hash_cache.get(key)
        if digest is None:
            digest = "" if st.st_size != mf.size else _sha256_file(path)
            with self._lock:
                self._hash_cache[key] = digest
        return ("ok" if digest == mf.sha256 else "bad-hash"), path

    def verified_path(self, name: str, kind: str) -> Path:
        """A model file's path, once it (and its weights file) match the manifest."""
        entry = self.entry(name)
        wanted = [entry.file(kind)]
        if kind in ("grad", "embed"):
            wanted += [f for f in entry.files if f.kind == "weights"]
        for mf in wanted:
            status, path = self._file_status(mf)
            if status != "ok":
                what = "is missing" if status == "missing" else "does not match its sha256"
                raise ModelMissingError(
                    f"model file {path} ({name}, {mf.kind}) {what} "
                    f"(expected sha256 {mf.sha256}); " + REBUILD_HINT.format(target=name)
                )
        return self.root / wanted[0].path

    def session(self, name: str, kind: str) -> Any:
        """A shared `onnxruntime.InferenceSession` for one model file (built once)."""
        key = f"{name}:{kind}"
        with self._lock:
            cached = self._sessions.get(key)
        if cached is not None:
            return cached
        path = self.verified_path(name, kind)
        options = ort.SessionOptions()
        # Gradient graphs run one per thread, several at once (`veil.optimizer` spreads the
        # surrogates over the cores): one intra-op thread each scales better than two threads
        # inside one small-batch call, measured about 1.6x on the 2-core machine.
        options.intra_op_num_threads = 1 if kind == "grad" else physical_cores()
        options.inter_op_num_threads = 1
        # Idle pool threads spinning for work steal the core that another session needs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # the source models trigger harmless warnings
        # The arena keeps the largest batch's buffers for the life of the process; without it
        # the optimiser's peak RSS on a 14 MP photo measured about 40 MB lower.
        options.enable_cpu_mem_arena = False
        # Memory patterns pre-plan one block per input shape; the gradient graphs see several
        # batch sizes and run concurrently, and without the plan the peak RSS measured ~80 MB
        # lower on a 12.6 MP photo.
        options.enable_mem_pattern = kind != "grad"
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph...)
            raise ModelMissingError(
                f"model file {path} ({name}, {kind}) could not be loaded by ONNX Runtime: {exc}; "
                + REBUILD_HINT.format(target=name)
            ) from exc
        with self._lock:
            return self._sessions.setdefault(key, session)

    def status(self) -> list[ModelStatus]:
        """Every file in the manifest with ok / missing / bad-hash, for `veil doctor`."""
        rows = []
        for name in sorted(self.models):
            entry = self.models[name]
            for mf in entry.files:
                status, _ = self._file_status(mf)
                rows.append(
                    ModelStatus(name, entry.role, mf.path, mf.kind, status, mf.sha256, mf.size)
                )
        return rows


_stores: dict[Path, ModelStore] = {}
_stores_lock = threading.Lock()


def get_store(root: Path | None = None) -> ModelStore:
    """The process-wide store for a models folder (default: `veil.config.models_dir()`)."""
    key = (root or models_dir()).resolve()
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = ModelStore(key)
        return store


def model_status(root: Path | None = None) -> list[ModelStatus]:
    """Status of every model file; a missing manifest yields one "missing" row."""
    try:
        store = get_store(root)
    except ModelMissingError:
        path = (root or models_dir()) / MANIFEST_NAME
        return [ModelStatus("manifest", "manifest", str(path), "manifest", "missing", "", 0)]
    return store.status()
