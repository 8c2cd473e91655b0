"""The protection benchmark (Fawkes protocol) behind `veil-research eval`.

For each identity in `<faces>/aligned`, the first half (sorted) of its crops are the
"uploads" and the second half clean "probes". The attacker embeds everyone's uploads
(cloaked ones for the protected person, clean ones for everybody else), fits a
nearest-centroid and a multinomial logistic-regression classifier on the L2-normalised
embeddings, and predicts the protected person's clean probes. Protection is the share of
those probes NOT identified as the person, averaged over identities, each identity taking
its turn as the protected one. The uncloaked baseline (everyone's uploads clean) must be
near 0, or the attacker is not sound.

Cloaked uploads are quantised to 8 bits (as a saved file would be) and may be re-encoded
before the attacker sees them: JPEG quality 75, or a downscale to 0.75 and back.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from veil.fileio import write_atomically

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


class Attacker(Protocol):
    """A recogniser used as the attacker (`veil.recognizers.Recognizer` fits)."""

    @property
    def name(self) -> str: ...

    def embed(self, crops: F32) -> F32: ...


REPO = Path(__file__).resolve().parents[2]
"""The repository checkout (research runs from a checkout, never from an installed wheel)."""


def default_faces_dir() -> Path:
    """`VEIL_FACES_DIR`, else `../shared/faces` next to the repository root."""
    override = os.environ.get("VEIL_FACES_DIR")
    return Path(override) if override else REPO.parent / "shared" / "faces"


@dataclass(frozen=True)
class FaceSet:
    """The split: per identity, the upload crops and the probe crops (uint8 RGB)."""

    identities: tuple[str, ...]
    uploads: dict[str, U8]
    probes: dict[str, U8]
    upload_names: dict[str, tuple[str, ...]]

    @property
    def upload_count(self) -> int:
        return sum(len(v) for v in self.uploads.values())


def load_face_set(
    faces_dir: Path,
    *,
    limit_identities: int | None = None,
    max_uploads: int | None = None,
    max_probes: int | None = None,
) -> FaceSet:
    """Read `<faces_dir>/aligned`, identities in alphabetical order, split each in halves."""
    aligned = faces_dir / "aligned"
    if not aligned.is_dir():
        raise FileNotFoundError(f"no aligned face crops at {aligned}")
    identities = sorted(p.name for p in aligned.iterdir() if p.is_dir())
    if limit_identities is not None:
        identities = identities[:limit_identities]
    uploads: dict[str, U8] = {}
    probes: dict[str, U8] = {}
    names: dict[str, tuple[str, ...]] = {}
    for ident in identities:
        files = sorted(p for p in (aligned / ident).iterdir() if p.suffix.lower() == ".png")
        half = len(files) // 2
        up, pr = files[:half], files[half:]
        if max_uploads is not None:
            up = up[:max_uploads]
        if max_probes is not None:
            pr = pr[:max_probes]
        uploads[ident] = _read_crops(up)
        probes[ident] = _read_crops(pr)
        names[ident] = tuple(p.name for p in up)
    return FaceSet(tuple(identities), uploads, probes, names)


def _read_crops(paths: Sequence[Path]) -> U8:
    crops = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"cannot read {path}")
        crops.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return np.stack(crops).astype(np.uint8)


def to_float(crops: U8) -> F32:
    return crops.astype(np.float32) / 255.0


def to_uint8(crops: npt.NDArray[np.floating]) -> U8:
    return np.clip(np.asarray(crops) * 255.0 + 0.5, 0, 255).astype(np.uint8)


# --- re-encodes the site may apply before the attacker sees the uploads -----------------


def _jpeg75(crops: U8) -> U8:
    out = np.empty_like(crops)
    for i, crop in enumerate(crops):
        bgr = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 75])
        if not ok:
            raise RuntimeError("JPEG encode failed")
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        if decoded is None:
            raise RuntimeError("JPEG decode failed")
        out[i] = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)
    return out


def _downscale075(crops: U8) -> U8:
    out = np.empty_like(crops)
    size = crops.shape[1]
    small = round(size * 0.75)
    for i, crop in enumerate(crops):
        reduced = cv2.resize(crop, (small, small), interpolation=cv2.INTER_AREA)
        out[i] = cv2.resize(reduced, (size, size), interpolation=cv2.INTER_LINEAR)
    return out


REENCODES: dict[str, Callable[[U8], U8]] = {
    "none": lambda crops: crops,
    "jpeg75": _jpeg75,
    "down0.75": _downscale075,
}


# --- classifiers (numpy; no scikit-learn at run time) -----------------------------------


def l2_normalise(x: npt.NDArray[np.floating]) -> F32:
    arr = np.asarray(x, dtype=np.float32)
    return np.asarray(arr / (np.linalg.norm(arr, axis=1, keepdims=True) + 1e-12), np.float32)


def nearest_centroid(train_x: F32, train_y: I64, n_classes: int) -> Callable[[F32], I64]:
    """Cosine nearest-centroid on L2-normalised embeddings; returns a predict function."""
    x = l2_normalise(train_x)
    centroids = np.zeros((n_classes, x.shape[1]), dtype=np.float32)
    np.add.at(centroids, train_y, x)
    centroids = l2_normalise(centroids)

    def predict(test_x: F32) -> I64:
        return np.asarray(np.argmax(l2_normalise(test_x) @ centroids.T, axis=1), np.int64)

    return predict


def logistic_regression(
    train_x: F32,
    train_y: I64,
    n_classes: int,
    *,
    l2: float = 1e-3,
    steps: int = 200,
    scale: float = 10.0,
) -> LogisticModel:
    """Multinomial logistic regression with L2, full-batch Nesterov gradient descent.

    Features are L2-normalised and multiplied by `scale` (a fixed temperature), which
    keeps the problem well conditioned for a fixed step size.
    200 steps reach the 2000-step predictions on this data within a few probes.
    """
    x = l2_normalise(train_x) * np.float32(scale)
    n, d = x.shape
    onehot = np.zeros((n, n_classes), dtype=np.float32)
    onehot[np.arange(n), train_y] = 1.0
    weights = np.zeros((d, n_classes), dtype=np.float32)
    bias = np.zeros(n_classes, dtype=np.float32)
    vel_w = np.zeros_like(weights)
    vel_b = np.zeros_like(bias)
    # Step 1/L, with L = 0.5 * largest eigenvalue of the features' second moment (plus
    # the bias column): the softmax cross-entropy's smoothness bound.
    second_moment = (x.T @ x) / n
    smoothness = 0.5 * (float(np.linalg.eigvalsh(second_moment)[-1]) + 1.0) + l2
    lr, mom = 1.0 / smoothness, 0.9
    for _ in range(steps):
        look_w, look_b = weights + mom * vel_w, bias + mom * vel_b
        logits = x @ look_w + look_b
        logits -= logits.max(axis=1, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=1, keepdims=True)
        err = (prob - onehot) / n
        grad_w = x.T @ err + l2 * look_w
        grad_b = err.sum(axis=0)
        vel_w = mom * vel_w - lr * grad_w
        vel_b = mom * vel_b - lr * grad_b
        weights += vel_w
        bias += vel_b

    return LogisticModel(weights.astype(np.float32), bias.astype(np.float32), scale)


@dataclass(frozen=True)
class LogisticModel:
    weights: npt.NDArray[np.float32]
    bias: npt.NDArray[np.float32]
    scale: float

    def __call__(self, test_x: F32) -> I64:
        feats = l2_normalise(test_x) * np.float32(self.scale)
        return np.asarray(np.argmax(feats @ self.weights + self.bias, axis=1), np.int64)


CLASSIFIERS = ("centroid", "logreg")


# --- the protocol ----------------------------------------------------------------------


@dataclass(frozen=True)
class Protection:
    """Protection for one attacker, one condition: per classifier, mean over identities."""

    by_classifier: dict[str, float]
    per_identity: dict[str, dict[str, float]]  # classifier -> identity -> share not identified


def protection(
    clean_uploads: dict[str, F32],
    probes: dict[str, F32],
    cloaked_uploads: dict[str, F32] | None,
) -> Protection:
    """Run the protocol on embeddings (one attacker). `cloaked_uploads=None`: the baseline.

    Each identity in `cloaked_uploads` takes its turn as the protected person; with `None`
    every identity is scored with everyone's uploads clean.
    """
    identities = list(clean_uploads)
    index = {ident: i for i, ident in enumerate(identities)}
    turns = identities if cloaked_uploads is None else list(cloaked_uploads)
    per: dict[str, dict[str, float]] = {name: {} for name in CLASSIFIERS}
    x, y = _training_set(clean_uploads, index, None, None)
    base_centroid = nearest_centroid(x, y, len(identities))
    base_logreg = logistic_regression(x, y, len(identities))
    for ident in turns:
        if cloaked_uploads is None:
            models: dict[str, Callable[[F32], I64]] = {
                "centroid": base_centroid,
                "logreg": base_logreg,
            }
        else:
            x, y = _training_set(clean_uploads, index, ident, cloaked_uploads[ident])
            models = {
                "centroid": nearest_centroid(x, y, len(identities)),
                "logreg": logistic_regression(x, y, len(identities)),
            }
        for name, predict in models.items():
            predicted = predict(probes[ident])
            per[name][ident] = float(np.mean(predicted != index[ident]))
    means = {name: float(np.mean(list(scores.values()))) for name, scores in per.items()}
    return Protection(means, per)


def _training_set(
    clean: dict[str, F32], index: dict[str, int], protected: str | None, cloaked: F32 | None
) -> tuple[F32, I64]:
    xs, ys = [], []
    for ident, emb in clean.items():
        use = cloaked if ident == protected and cloaked is not None else emb
        xs.append(use)
        ys.append(np.full(len(use), index[ident], dtype=np.int64))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


# --- caches under bench-out/ -------------------------------------------------------------


def embed_all(model: Attacker, crops: U8, batch: int = 32) -> F32:
    out = [model.embed(to_float(crops[i : i + batch])) for i in range(0, len(crops), batch)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)


def _digest(crops: U8) -> str:
    return hashlib.sha256(crops.tobytes()).hexdigest()[:16]


class EmbeddingCache:
    """Embeddings of crop batches per attacker, on disk, keyed by the crops' content."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def embed(self, model: Attacker, crops: U8) -> F32:
        # A rebuilt model embeds differently: its fingerprint (where it has one) is in the key.
        version = getattr(model, "fingerprint", "")
        path = self.folder / f"{model.name}-{version}-{_digest(crops)}.npy"
        if path.exists():
            return np.asarray(np.load(path), dtype=np.float32)
        emb = embed_all(model, crops)
        _atomic_save(path, lambda f: np.save(f, emb))
        return emb


def _atomic_save(path: Path, write: Callable[[BinaryIO], None]) -> None:
    # Several eval processes may share the cache: never expose a half-written file.
    write_atomically(path, write)


def _npz_writer(cloaked: U8, seconds: float) -> Callable[[BinaryIO], None]:
    def write(handle: BinaryIO) -> None:
        np.savez(handle, cloaked=cloaked, seconds=seconds)

    return write


@dataclass(frozen=True)
class CloakRun:
    """Cloaked uploads for one cloaking configuration, and what they cost."""

    tag: str
    uploads: dict[str, U8]
    seconds_per_face: float
    crop_ssim: float
    crop_dssim: float


def cloak_uploads(
    faces: FaceSet,
    tag: str,
    cloak: Callable[[F32, int], F32],
    cache_dir: Path,
    *,
    batch: int = 25,
    log: Callable[[str], None] = print,
) -> CloakRun:
    """Cloak every identity's uploads with `cloak(crops, seed)`, cached per identity.

    The cache key is `tag` (the caller puts every setting that changes the output in it)
    plus the identity and the content of its uploads.
    """
    from veil.optimizer import crop_ssim  # the same SSIM the optimiser budgets with

    folder = cache_dir / tag
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, U8] = {}
    seconds = 0.0
    count = 0
    ssims: list[float] = []
    for n_ident, ident in enumerate(faces.identities):
        clean = faces.uploads[ident]
        path = folder / f"{ident}-{_digest(clean)}.npz"
        if path.exists():
            stored = np.load(path)
            cloaked, spent = stored["cloaked"], float(stored["seconds"])
        else:
            started = time.perf_counter()
            parts = []
            for i in range(0, len(clean), batch):
                parts.append(to_uint8(cloak(to_float(clean[i : i + batch]), 1000 * n_ident + i)))
            cloaked = np.concatenate(parts)
            spent = time.perf_counter() - started
            _atomic_save(path, _npz_writer(cloaked, spent))
            log(f"  cloaked {ident}: {len(clean)} crops in {spent:.1f} s")
        out[ident] = cloaked
        seconds += spent
        count += len(clean)
        ssims.extend(crop_ssim(to_float(clean), to_float(cloaked)).tolist())
    mean_ssim = float(np.mean(ssims))
    return CloakRun(tag, out, seconds / max(count, 1), mean_ssim, (1 - mean_ssim) / 2)


def attack(
    model: Attacker,
    faces: FaceSet,
    cloaked: dict[str, U8] | None,
    reencode: str,
    cache: EmbeddingCache,
) -> Protection:
    """Protection against one attacker after one re-encode (`cloaked=None`: baseline)."""
    clean = {i: cache.embed(model, faces.uploads[i]) for i in faces.identities}
    probes = {i: cache.embed(model, faces.probes[i]) for i in faces.identities}
    if cloaked is None:
        return protection(clean, probes, None)
    transform = REENCODES[reencode]
    attacked = {i: cache.embed(model, transform(cloaked[i])) for i in faces.identities}
    return protection(clean, probes, attacked)


def save_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
