"""Face recognisers as seen by the optimiser: embeddings and cosine-loss gradients.

Every recogniser ships as two ONNX graphs sharing one weights file (see
`models/manifest.json`): `embed` (image -> embedding) and `grad` (image, target ->
embedding, loss = cosine(embedding, target), grad = d(sum(loss))/d(image)). The
model-specific preprocessing is inside the graphs; callers pass ArcFace-aligned
112x112 RGB crops in [0, 1], NHWC, and get NHWC gradients back.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from veil.modelstore import ModelStore, get_store

CROP_SIZE = 112
# Bounds the memory of one ONNX Runtime call; the backward pass keeps every activation.
MAX_BATCH = 32

FloatArray = npt.NDArray[np.float32]


def _check_crops(crops: npt.NDArray[np.generic]) -> FloatArray:
    if crops.ndim != 4 or crops.shape[1:] != (CROP_SIZE, CROP_SIZE, 3):
        raise ValueError(f"crops must be [N,112,112,3] RGB, got shape {crops.shape}")
    return np.asarray(crops, dtype=np.float32)


def _to_nchw(crops: FloatArray) -> FloatArray:
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2))


class Recognizer:
    """One face recogniser; sessions are created lazily and shared via the model store."""

    def __init__(self, name: str, store: ModelStore | None = None) -> None:
        self.store = store or get_store()
        entry = self.store.entry(name)
        if entry.role != "recogniser" or entry.embedding_dim is None:
            raise ValueError(f"model {name!r} is a {entry.role}, not a recogniser")
        self.name = name
        self.dim: int = entry.embedding_dim
        self.licence = entry.licence
        self.fingerprint = entry.fingerprint  # changes when the model files are rebuilt

    def __repr__(self) -> str:
        return f"Recognizer({self.name!r}, dim={self.dim})"

    def verify(self) -> None:
        """Load both graphs now (raises ModelMissingError if a file is missing or corrupt)."""
        self.store.session(self.name, "embed")
        self.store.session(self.name, "grad")

    def embed(self, crops: npt.NDArray[np.generic]) -> FloatArray:
        """L2-normalised embeddings [N,D] of [N,112,112,3] RGB crops in [0,1]."""
        x = _check_crops(crops)
        if len(x) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        session = self.store.session(self.name, "embed")
        out = [
            session.run(["embedding"], {"image": _to_nchw(x[i : i + MAX_BATCH])})[0]
            for i in range(0, len(x), MAX_BATCH)
        ]
        return np.concatenate(out).astype(np.float32, copy=False)

    def loss_and_grad(
        self, crops: npt.NDArray[np.generic], targets: npt.NDArray[np.generic]
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(embedding [N,D], loss [N] = cosine to targets, d loss / d crops [N,112,112,3]).

        Each row's gradient is that of its own loss (the graph differentiates the sum of
        independent per-row losses).
        """
        x = _check_crops(crops)
        t = np.asarray(targets, dtype=np.float32)
        if t.ndim == 1:
            t = np.broadcast_to(t, (len(x), t.shape[0]))
        if t.shape != (len(x), self.dim):
            raise ValueError(f"targets must be [{len(x)},{self.dim}], got shape {t.shape}")
        session = self.store.session(self.name, "grad")
        embs, losses, grads = [], [], []
        for i in range(0, len(x), MAX_BATCH):
            emb, loss, grad = session.run(
                ["embedding", "loss", "grad"],
                {
                    "image": _to_nchw(x[i : i + MAX_BATCH]),
                    "target": np.ascontiguousarray(t[i : i + MAX_BATCH]),
                },
            )
            embs.append(emb)
            losses.append(loss)
            grads.append(grad.transpose(0, 2, 3, 1))
        return (
            np.concatenate(embs).astype(np.float32, copy=False),
            np.concatenate(losses).astype(np.float32, copy=False),
            np.ascontiguousarray(np.concatenate(grads), dtype=np.float32),
        )


def load_recognizers(
    names: Iterable[str] | Path | None = None,
    store: ModelStore | None = None,
    *,
    models_dir: Path | None = None,
) -> list[Recognizer]:
    """Recognisers by name; by default the manifest's default surrogates.

    `names=None` gives the recognisers whose manifest entry has `"default_surrogate": true`
    (the ones the cloak is computed with); the others are kept out of the default so that
    they stay unseen attackers for transfer measurements. Pass names explicitly (e.g.
    `store.names(role="recogniser")`) for any other set. A `Path` in place of `names` is
    taken as the models folder (`load_recognizers(models_dir)` reads naturally).
    """
    if isinstance(names, Path):
        models_dir, names = names, None
    store = store or get_store(models_dir)
    if names is None:
        chosen = [n for n in store.names(role="recogniser") if store.entry(n).default_surrogate]
    else:
        chosen = list(names)
    return [Recognizer(name, store) for name in chosen]
