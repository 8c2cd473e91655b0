"""Enrolled people ("Protect my face"): what Veil keeps to recognise a person and cloak them.

A profile is biometric data, kept like the pairing tokens: one file per person,
`<config dir>/profiles/<id>.npz`, mode 0600 in a 0700 folder, written atomically, never
logged, never sent to the extension (the API lists names and strengths only). It holds:

- per matching recogniser (`MATCH_MODELS`), the embeddings of the person's enrolment faces:
  what the engine compares faces with (`ProfileBook.match`), and nothing else about the
  photos (no crops, no pixels);
- per surrogate, the direction the person's cloak pushes every upload away from
  (`veil.personal`);
- the person's universal cloak (`veil.personal`), from which every strength starts, so
  that a change of strength is
  instant;
- the strength the person chose, the algorithm version and the fingerprints of the models
  it was computed with. A profile made with other models or another algorithm is refused
  (`ProfileUnreadableError`), never used silently: re-enrol.

`ProfileBook` is what the engine holds: it re-reads the folder when it changes, so a running
`veil serve` sees `veil enrol` and `veil enrol --forget` on its next photo.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from veil.errors import ProfileNotFoundError, ProfileUnreadableError
from veil.fileio import write_atomically
from veil.personal import PERSONAL_ALGORITHM_VERSION, Strength, strength_cloak

F32 = npt.NDArray[np.float32]

PROFILES_FOLDER = "profiles"
NAME_MAX = 60

MATCH_THRESHOLD = 0.51
"""A face is the enrolled person when its score reaches this: per matching recogniser, the
mean cosine to the person's `MATCH_TOP` most similar enrolment faces (each enrolment face
counted twice: as taken and mirrored), averaged over the recognisers. Calibrated on the
corpus (`veil-research match`): at 0.51 no face of another of its 24 people matched anyone
(the highest scored 0.502), and 95.1% of people's own aligned crops matched (94.7% without
the mirrored faces and with the top 3; the nearest centroid took strangers up to 0.58);
docs/personal-cloak.md gives the figures."""

MATCH_TOP = 5
LEGACY_MATCH_TOP = 3
"""The rule of profiles enrolled before `MATCHING_VERSION` 2 (no mirrored faces stored)."""

MATCHING_VERSION = 2
"""Stored with every profile: 2 = the enrolment faces' embeddings and their mirror images'
(`veil.enrolment.gallery_embeddings`), matched on the top `MATCH_TOP`. A version-1 profile
keeps working with its own rule; the cloak is the same either way."""

EMPTY = np.zeros((112, 112), np.float32)

MATCH_MODELS = ("mobilefacenet", "sface")
"""The recognisers faces are matched with: the engine's own surrogates, already loaded."""


@dataclass(frozen=True)
class Profile:
    profile_id: str  # random, the file name; never derived from the name
    name: str  # the label the person gave ("me", "Alex")
    created: float  # Unix seconds
    strength: Strength
    algorithm: int
    models: Mapping[str, str]  # recogniser -> fingerprint it was computed with
    embeddings: Mapping[str, F32]  # matching recogniser -> [N,D] unit enrolment embeddings
    targets: Mapping[str, F32]  # surrogate -> [D] unit direction the cloak lowers
    universal: F32  # [112,112] brightness change, premasked (`personal.ENROL_BUDGET`)
    photos: int  # how many enrolment photos it was computed from
    matching: int = MATCHING_VERSION  # the matching rule its embeddings were stored for

    @property
    def match_top(self) -> int:
        """How many of the most similar enrolment embeddings a face's score averages."""
        return MATCH_TOP if self.matching >= 2 else LEGACY_MATCH_TOP

    @property
    def cloak(self) -> F32:
        """The start of this person's cloak at their chosen strength."""
        return strength_cloak(self.universal, self.strength)

    def summary(self) -> dict[str, object]:
        """What may leave the companion: no embedding, no cloak."""
        return {
            "id": self.profile_id,
            "name": self.name,
            "strength": self.strength.value,
            "created": int(self.created),
            "photos": self.photos,
        }


def new_profile_id() -> str:
    return secrets.token_hex(8)


def check_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned or len(cleaned) > NAME_MAX or not cleaned.isprintable():
        raise ProfileNotFoundError(f"a profile name is 1 to {NAME_MAX} printable characters")
    return cleaned


def profiles_dir(config_dir: Path) -> Path:
    folder = config_dir / PROFILES_FOLDER
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    return folder


def save_profile(config_dir: Path, profile: Profile) -> Path:
    """Write (or replace) the profile file atomically, mode 0600."""
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    for model, emb in profile.embeddings.items():
        arrays[f"embeddings:{model}"] = np.asarray(emb, np.float32)
    for model, target in profile.targets.items():
        arrays[f"target:{model}"] = np.asarray(target, np.float32)
    arrays["universal"] = np.asarray(profile.universal, np.float32)
    meta = {
        "name": profile.name,
        "created": profile.created,
        "strength": profile.strength.value,
        "algorithm": profile.algorithm,
        "models": dict(profile.models),
        "photos": profile.photos,
        "matching": profile.matching,
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    path = profiles_dir(config_dir) / f"{profile.profile_id}.npz"
    write_atomically(path, buffer.getvalue(), mode=0o600)
    return path


def load_profile(path: Path, fingerprints: Mapping[str, str] | None = None) -> Profile:
    """Read one profile; `fingerprints` (recogniser -> fingerprint of the installed model)
    makes a profile computed with other models unreadable."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            embeddings = _prefixed(data, "embeddings:")
            targets = _prefixed(data, "target:")
            universal = np.asarray(data["universal"], np.float32)
        profile = Profile(
            profile_id=path.stem,
            name=str(meta["name"]),
            created=float(meta["created"]),
            strength=Strength(meta["strength"]),
            algorithm=int(meta["algorithm"]),
            models={str(k): str(v) for k, v in dict(meta["models"]).items()},
            embeddings=embeddings,
            targets=targets,
            universal=universal,
            photos=int(meta["photos"]),
            matching=int(meta.get("matching", 1)),
        )
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ProfileUnreadableError(
            f"the enrolment profile {path.name} is damaged; forget it and enrol again"
        ) from exc
    _check_usable(profile, fingerprints)
    return profile


def _prefixed(data: Mapping[str, npt.NDArray[np.generic]], prefix: str) -> dict[str, F32]:
    return {
        key[len(prefix) :]: np.asarray(data[key], np.float32)
        for key in data
        if key.startswith(prefix)
    }


def _check_usable(profile: Profile, fingerprints: Mapping[str, str] | None) -> None:
    if profile.algorithm != PERSONAL_ALGORITHM_VERSION:
        raise ProfileUnreadableError(
            f"{profile.name!r} was enrolled with an older version of the personal cloak; "
            "enrol again (`veil enrol`) to recompute it"
        )
    cloak = profile.universal
    if cloak.shape != (112, 112) or not np.all(np.isfinite(cloak)):
        raise ProfileUnreadableError(f"{profile.name!r}: the stored cloak is damaged; re-enrol")
    if fingerprints is not None:
        for model in MATCH_MODELS:
            if model in fingerprints and profile.models.get(model) != fingerprints[model]:
                raise ProfileUnreadableError(
                    f"{profile.name!r} was enrolled with another version of the {model} "
                    "model; enrol again to recompute the cloak"
                )
            if model in fingerprints and model not in profile.embeddings:
                raise ProfileUnreadableError(f"{profile.name!r}: no {model} embeddings; re-enrol")


def list_profiles(config_dir: Path, fingerprints: Mapping[str, str] | None = None) -> list[Profile]:
    """Every usable profile, oldest first; raises on a damaged or stale one (fail closed)."""
    folder = config_dir / PROFILES_FOLDER
    if not folder.is_dir():
        return []
    profiles = [load_profile(p, fingerprints) for p in sorted(folder.glob("*.npz"))]
    return sorted(profiles, key=lambda p: p.created)


def profile_summaries(
    config_dir: Path, fingerprints: Mapping[str, str] | None = None
) -> list[dict[str, object]]:
    """Every profile file's `Profile.summary()`, oldest first, for the API's list. Unlike
    `list_profiles` a damaged or stale profile does not hide the others: it is listed with
    `"unusable": <why>` (and its name when that can still be read), so that the person can
    see it and forget it."""
    folder = config_dir / PROFILES_FOLDER
    if not folder.is_dir():
        return []
    out: list[tuple[float, dict[str, object]]] = []
    for path in sorted(folder.glob("*.npz")):
        try:
            profile = load_profile(path, fingerprints)
        except ProfileUnreadableError as exc:
            entry: dict[str, object] = {"id": path.stem, "name": path.stem, "unusable": exc.message}
            created = 0.0
            try:
                stale = load_profile(path)  # readable, only made with other models
                entry = {**stale.summary(), "unusable": exc.message}
                created = stale.created
            except ProfileUnreadableError:
                pass
            out.append((created, entry))
            continue
        out.append((profile.created, profile.summary()))
    return [entry for _, entry in sorted(out, key=lambda item: item[0])]


def find_profile(config_dir: Path, key: str) -> Profile:
    """A profile by id or by name (case-insensitive)."""
    for profile in list_profiles(config_dir):
        if key in (profile.profile_id,) or profile.name.lower() == key.lower():
            return profile
    raise ProfileNotFoundError(f"no enrolled person called {key!r}")


def forget_profile(config_dir: Path, key: str) -> Profile:
    """Delete one profile's file (overwritten with zeros first)."""
    folder = config_dir / PROFILES_FOLDER
    for path in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            profile = load_profile(path)
        except ProfileUnreadableError:
            if path.stem == key:
                _erase(path)
                return Profile(key, key, 0.0, Strength.MEDIUM, 0, {}, {}, {}, EMPTY, 0)
            continue
        if key in (profile.profile_id,) or profile.name.lower() == key.lower():
            _erase(path)
            return profile
    raise ProfileNotFoundError(f"no enrolled person called {key!r}")


def forget_all(config_dir: Path) -> int:
    folder = config_dir / PROFILES_FOLDER
    paths = sorted(folder.glob("*.npz")) if folder.is_dir() else []
    for path in paths:
        _erase(path)
    return len(paths)


def set_strength(config_dir: Path, key: str, strength: Strength) -> Profile:
    profile = replace(find_profile(config_dir, key), strength=Strength(strength))
    save_profile(config_dir, profile)
    return profile


def _erase(path: Path) -> None:
    # Best effort on journalled or copy-on-write file systems; the unlink is what counts.
    try:
        size = path.stat().st_size
        with open(path, "r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Match:
    profile: Profile
    score: float  # see `MATCH_THRESHOLD`


class ProfileBook:
    """The enrolled people as the engine sees them, re-read when the folder changes."""

    def __init__(
        self, config_dir: Path | None, fingerprints: Mapping[str, str] | None = None
    ) -> None:
        self.config_dir = config_dir
        self.fingerprints = dict(fingerprints or {})
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[str, float, int], ...] | None = None
        self._profiles: list[Profile] = []
        self._fixed: list[Profile] | None = None

    @classmethod
    def fixed(cls, people: Sequence[Profile]) -> ProfileBook:
        """A book of these profiles only, never read from disk (previews, research)."""
        book = cls(None)
        book._fixed = list(people)
        return book

    def _folder_stamp(self) -> tuple[tuple[str, float, int], ...]:
        if self.config_dir is None:
            return ()
        folder = self.config_dir / PROFILES_FOLDER
        if not folder.is_dir():
            return ()
        entries = []
        for path in sorted(folder.glob("*.npz")):
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            entries.append((path.name, st.st_mtime, st.st_size))
        return tuple(entries)

    def profiles(self) -> list[Profile]:
        """The current profiles; raises `ProfileUnreadableError` while one is unusable."""
        if self._fixed is not None:
            return list(self._fixed)
        with self._lock:
            stamp = self._folder_stamp()
            if stamp != self._stamp or self._stamp is None:
                if self.config_dir is None:
                    self._profiles = []
                else:
                    self._profiles = list_profiles(self.config_dir, self.fingerprints)
                self._stamp = stamp
            return list(self._profiles)

    def match(self, embeddings: Mapping[str, F32]) -> list[Match | None]:
        """For each face (rows of each model's [N,D] embeddings), the enrolled person it is,
        or None. A face matching several people goes to the closest."""
        profiles = self.profiles()
        count = len(next(iter(embeddings.values()))) if embeddings else 0
        if not profiles or count == 0:
            return [None] * count
        scores = np.zeros((count, len(profiles)), np.float32)
        for j, profile in enumerate(profiles):
            scores[:, j] = match_scores(embeddings, profile.embeddings, top=profile.match_top)
        out: list[Match | None] = []
        for i in range(count):
            j = int(np.argmax(scores[i]))
            ok = scores[i, j] >= MATCH_THRESHOLD
            out.append(Match(profiles[j], float(scores[i, j])) if ok else None)
        return out


def match_scores(
    faces: Mapping[str, F32], enrolled: Mapping[str, F32], *, top: int = MATCH_TOP
) -> F32:
    """[N] scores of faces (model -> [N,D]) against one person's enrolment embeddings
    (`top`: how many of the most similar ones each score averages)."""
    parts = []
    for model in MATCH_MODELS:
        if model not in faces or model not in enrolled:
            continue
        sims = faces[model] @ enrolled[model].T  # [N, enrolment faces]
        nearest = min(top, sims.shape[1])
        parts.append(np.sort(sims, axis=1)[:, -nearest:].mean(axis=1))
    if not parts:
        raise ProfileUnreadableError("no recogniser in common with the enrolment profile")
    return np.asarray(np.mean(parts, axis=0), np.float32)


def profile_fingerprints(models: Sequence[object]) -> dict[str, str]:
    """recogniser name -> fingerprint, for the models the engine has loaded."""
    out = {}
    for model in models:
        name = getattr(model, "name", None)
        fingerprint = getattr(model, "fingerprint", None)
        if isinstance(name, str) and isinstance(fingerprint, str):
            out[name] = fingerprint
    return out
