"""The personal cloak (issue 19): enrolment, the stored profile, matching, and what the
engine gives an enrolled person's face, with the real models on real photos.

Enrolment here runs 2 optimiser steps per strength (the product runs `EnrolPlan.steps`):
the tests check the plumbing and the properties that do not depend on how long the
cloak was optimised; protection is measured by `veil-research personal`, not here.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine_support import enrol_matt_damon, faces_dir
from veil import personal
from veil.engine import Engine
from veil.enrolment import EnrolPhoto, enrolment_faces
from veil.errors import (
    EnrolError,
    EnrolFaceAmbiguousError,
    ErrorCode,
    ProfileNotFoundError,
    ProfileUnreadableError,
)
from veil.profiles import (
    LEGACY_MATCH_TOP,
    MATCH_TOP,
    MATCHING_VERSION,
    PROFILES_FOLDER,
    ProfileBook,
    forget_profile,
    list_profiles,
    load_profile,
    save_profile,
    set_strength,
)
from veil.results import Mode

REPO = Path(__file__).resolve().parents[1]


def photos_of(person: str) -> list[Path]:
    return sorted((faces_dir() / "photos" / person).glob("*.jpg"))


def read(path: Path) -> bytes:
    return path.read_bytes()


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load()


@pytest.fixture(scope="module")
def matt(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """Matt Damon enrolled from three of his photos; img33 is kept back as an upload."""
    config = tmp_path_factory.mktemp("veil-config")
    profile = enrol_matt_damon(engine)
    save_profile(config, profile)
    return config, profile


def test_profile_is_private_complete_and_says_nothing_biometric(
    matt: tuple[Path, object],
) -> None:
    config, profile = matt
    folder = config / PROFILES_FOLDER
    files = list(folder.glob("*.npz"))
    assert len(files) == 1
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert "me" not in files[0].name  # the file name is a random id, not the person's name
    loaded = load_profile(files[0])
    assert loaded.universal.shape == (112, 112)
    assert set(loaded.embeddings) == {"mobilefacenet", "sface"}
    # Three enrolment faces, each also mirrored (`gallery_embeddings`), matched on the top 5.
    assert {len(e) for e in loaded.embeddings.values()} == {6}
    assert loaded.matching == MATCHING_VERSION and loaded.match_top == MATCH_TOP
    np.testing.assert_array_equal(loaded.universal, profile.universal)  # type: ignore[attr-defined]
    summary = loaded.summary()
    assert set(summary) == {"id", "name", "strength", "created", "photos"}
    assert summary["photos"] == 3


def test_each_strength_stays_within_its_budget(matt: tuple[Path, object]) -> None:
    _, profile = matt
    for level, budget in personal.STRENGTHS.items():
        cloak = replace(profile, strength=level).cloak  # type: ignore[type-var]
        assert np.abs(cloak).max() <= budget.linf + 1e-6
        assert np.abs(cloak).max() > 0  # something was computed


def test_an_enrolled_face_gets_its_personal_cloak_and_strangers_do_not(
    engine: Engine, matt: tuple[Path, object]
) -> None:
    config, _ = matt
    engine.profiles = ProfileBook(config, None)
    try:
        own = engine.cloak_bytes(read(faces_dir() / "photos" / "Matt_Damon" / "img33.jpg"))
        assert own.face_count == 1
        assert own.faces[0].profile == "me"
        assert own.faces[0].strength == "medium"
        for stranger in (
            faces_dir() / "photos" / "Scarlett_Johansson" / "img49.jpg",
            faces_dir() / "scenes" / "couple.jpg",
        ):
            result = engine.cloak_bytes(read(stranger), mode=Mode.LOW)
            assert result.face_count >= 1
            assert all(face.profile is None for face in result.faces), stranger.name
    finally:
        engine.profiles = None


def test_personal_cloak_is_brightness_only_and_moves_every_upload_the_same_way(
    engine: Engine, matt: tuple[Path, object]
) -> None:
    """Two different uploads of the person: brightness-only changes that push both away
    from the person's fixed direction, the same way."""
    _, profile = matt
    from veil.align import alignment_matrix, warp_crop

    crops = []
    for name in ("img33.jpg", photos_of("Matt_Damon")[0].name):
        rgb = np.asarray(Image.open(faces_dir() / "photos" / "Matt_Damon" / name).convert("RGB"))
        face = engine.find_faces(rgb)[0]
        crops.append(warp_crop(rgb, alignment_matrix(face.landmarks, 112), 112))
    book = ProfileBook.fixed([profile])  # type: ignore[list-item]
    engine.profiles = book
    try:
        matches = engine.match_faces(np.stack(crops))
        assert all(m is not None for m in matches)
        deltas = engine.personal_deltas(np.stack(crops), matches, seed=1)  # type: ignore[arg-type]
    finally:
        engine.profiles = None
    for crop, delta in zip(crops, deltas, strict=True):
        # Brightness only: R, G and B change alike, except where a channel hit 0 or 1.
        after = crop + delta
        unclipped = np.all((after > 1e-6) & (after < 1 - 1e-6), axis=2)
        assert unclipped.mean() > 0.9
        spread = np.abs(delta - delta.mean(axis=2, keepdims=True)).max(axis=2)
        assert spread[unclipped].max() < 1e-5
    # Consistency: both uploads move away from the person's own direction, and their
    # embeddings move the same way (far more alike than two default cloaks' moves).
    from veil import optimizer
    from veil.paste import face_mask

    x = np.stack(crops)
    default = optimizer.cloak_crops(x, Mode.MID, engine.surrogates, seed=3, region=face_mask(112))
    for model in engine.surrogates:
        target = profile.targets[model.name]  # type: ignore[attr-defined]
        before, after = model.embed(x), model.embed(np.clip(x + deltas, 0, 1))
        assert np.all(after @ target < before @ target - 0.02), model.name
        moves = _unit(after - before)
        default_moves = _unit(model.embed(default) - before)
        together, apart = float(moves[0] @ moves[1]), float(default_moves[0] @ default_moves[1])
        print(f"{model.name}: personal moves cos {together:.2f}, default moves {apart:.2f}")
        assert together > apart + 0.2, model.name


def test_the_personal_cloak_keeps_to_its_shading_zones(
    engine: Engine, matt: tuple[Path, object]
) -> None:
    """Under the eyes, between the brows and under the cheekbones the personal cloak darkens
    little (shading there read as bruises, a frown, hollow cheeks): the stored cloak and
    the refining steps at upload both keep to `veil.shading_zones`, and the zones are what
    holds the darkening back there (without them the same steps darken it far more)."""
    from veil.align import alignment_matrix, warp_crop
    from veil.shading_zones import PERSONAL_ZONES, zone_bounds

    _, profile = matt
    dark, light = zone_bounds(112, PERSONAL_ZONES)
    universal = profile.universal  # type: ignore[attr-defined]
    linf = personal.ENROL_BUDGET.linf
    assert np.all(universal >= -linf * dark - 1e-6) and np.all(universal <= linf * light + 1e-6)

    rgb = np.asarray(Image.open(faces_dir() / "photos" / "Matt_Damon" / "img33.jpg").convert("RGB"))
    face = engine.find_faces(rgb)[0]
    crop = warp_crop(rgb, alignment_matrix(face.landmarks, 112), 112)
    strong = personal.STRENGTHS[personal.Strength.STRONG]
    targets = profile.targets  # type: ignore[attr-defined]
    start = np.zeros((112, 112), np.float32)
    held_back = dark < 0.3  # under the eyes and between the brows
    darkening = {}
    for label, look in (("zones", strong), ("none", replace(strong, zones=()))):
        delta = personal.personal_delta(
            crop, start, personal.Strength.STRONG, engine.refiners, targets, seed=4, look=look
        )
        luma = delta.mean(axis=2)
        darkening[label] = float(np.mean(np.minimum(luma, 0)[held_back]))
        elsewhere = float(np.mean(np.abs(luma)[dark > 0.99]))
        print(
            f"{label}: darkening where held back {darkening[label] * 255:.2f}/255, "
            f"|change| elsewhere {elsewhere * 255:.2f}/255"
        )
        assert elsewhere > 1 / 255  # the steps did change the face
    # Both negative; measured 1.6/255 against 2.8/255 on this crop.
    assert darkening["zones"] > 0.7 * darkening["none"]
    assert darkening["none"] < -0.5 / 255


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True))


def test_a_damaged_profile_fails_closed(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / PROFILES_FOLDER
    folder.mkdir()
    (folder / "0123456789abcdef.npz").write_bytes(b"not a profile")
    with pytest.raises(ProfileUnreadableError):
        list_profiles(tmp_path)
    engine.profiles = ProfileBook(tmp_path, None)
    try:
        # Never the default cloak in silence while the person believes they are protected.
        with pytest.raises(ProfileUnreadableError):
            engine.cloak_bytes(read(faces_dir() / "photos" / "Matt_Damon" / "img33.jpg"))
    finally:
        engine.profiles = None
    forget_profile(tmp_path, "0123456789abcdef")
    assert list_profiles(tmp_path) == []


def test_a_profile_from_another_model_version_is_refused(
    matt: tuple[Path, object], tmp_path: Path
) -> None:
    _, profile = matt
    save_profile(tmp_path, replace(profile, models={"sface": "other", "mobilefacenet": "x"}))  # type: ignore[type-var]
    with pytest.raises(ProfileUnreadableError, match="another version"):
        list_profiles(tmp_path, {"sface": "current", "mobilefacenet": "current"})
    save_profile(tmp_path, replace(profile, algorithm=0))  # type: ignore[type-var]
    with pytest.raises(ProfileUnreadableError):
        list_profiles(tmp_path)


def test_a_profile_enrolled_before_mirrored_faces_keeps_its_own_rule(
    engine: Engine, matt: tuple[Path, object], tmp_path: Path
) -> None:
    """A version-1 profile (no mirror images stored, nothing saying so) still matches its
    person, on the top 3 of what it holds, and is not refused: its cloak is unchanged."""
    _, profile = matt
    taken = {m: e[:3] for m, e in profile.embeddings.items()}  # type: ignore[attr-defined]
    path = save_profile(tmp_path, replace(profile, embeddings=taken, matching=1))  # type: ignore[type-var]
    with np.load(path) as data:
        arrays = dict(data)
    meta = json.loads(bytes(arrays["meta"]).decode())
    del meta["matching"]  # as written before the field existed
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path.with_suffix(""), **arrays)  # savez appends .npz
    old = load_profile(path)
    assert old.matching == 1 and old.match_top == LEGACY_MATCH_TOP
    engine.profiles = ProfileBook(tmp_path, None)
    try:
        result = engine.cloak_bytes(read(faces_dir() / "photos" / "Matt_Damon" / "img33.jpg"))
    finally:
        engine.profiles = None
    assert [f.profile for f in result.faces] == ["me"]


def test_strength_change_and_forget(matt: tuple[Path, object], tmp_path: Path) -> None:
    _, profile = matt
    save_profile(tmp_path, profile)  # type: ignore[arg-type]
    assert set_strength(tmp_path, "ME", personal.Strength.STRONG).strength == "strong"
    assert list_profiles(tmp_path)[0].strength == personal.Strength.STRONG
    forget_profile(tmp_path, "me")
    assert not list((tmp_path / PROFILES_FOLDER).glob("*"))
    with pytest.raises(ProfileNotFoundError):
        forget_profile(tmp_path, "me")


def test_enrolment_refuses_too_few_photos_and_photos_without_a_face(engine: Engine) -> None:
    one = read(photos_of("Matt_Damon")[0])
    with pytest.raises(EnrolError) as too_few:
        enrolment_faces(engine, [EnrolPhoto("a.jpg", one)] * 2)
    assert too_few.value.code == ErrorCode.ENROL_TOO_FEW_PHOTOS
    blank = io.BytesIO()
    Image.new("RGB", (400, 300), (90, 120, 150)).save(blank, "JPEG")
    with pytest.raises(EnrolError) as no_face:
        enrolment_faces(
            engine, [EnrolPhoto("a.jpg", one)] * 2 + [EnrolPhoto("sky.jpg", blank.getvalue())]
        )
    assert no_face.value.code == ErrorCode.ENROL_NO_FACE
    assert "sky.jpg" in no_face.value.message


def test_a_photo_with_several_faces_asks_which_one(engine: Engine) -> None:
    couple = read(faces_dir() / "scenes" / "couple.jpg")
    with pytest.raises(EnrolFaceAmbiguousError) as asked:
        enrolment_faces(engine, [EnrolPhoto("couple.jpg", couple)] * 3)
    assert asked.value.code == ErrorCode.ENROL_FACE_AMBIGUOUS
    assert len(asked.value.boxes) == 2
    chosen = enrolment_faces(engine, [EnrolPhoto("couple.jpg", couple, face=1)] * 3)
    assert [f.box for f in chosen] == [asked.value.boxes[1]] * 3


def _veil(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, VEIL_CONFIG_DIR=str(config))
    return subprocess.run(
        [sys.executable, "-m", "veil.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_veil_enrol_then_cloak_then_forget(tmp_path: Path) -> None:
    """The command line as a person would use it: enrol, cloak a folder, list, forget."""
    config = tmp_path / "config"
    aligned = faces_dir() / "aligned" / "Tom_Hanks"
    crops = sorted(aligned.glob("*.png"))
    enrolled = _veil(
        "enrol",
        "--aligned",
        *map(str, crops[:5]),
        "--name",
        "me",
        "--strength",
        "light",
        "--steps",
        "1",
        config=config,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    assert "Enrolled 'me' from 5 photos at strength light" in enrolled.stdout
    listed = _veil("enrol", "--list", config=config)
    assert listed.stdout.startswith("me  strength=light  photos=5")
    out = tmp_path / "out"
    upload = crops[-1]
    cloaked = _veil("cloak", "--aligned", str(upload), "-o", str(out), config=config)
    assert cloaked.returncode == 0, cloaked.stderr
    assert "personal=me/light" in cloaked.stdout
    doctor = _veil("doctor", config=config)
    assert "1 enrolled" in doctor.stdout
    forgot = _veil("enrol", "--forget", "me", config=config)
    assert forgot.returncode == 0 and "Forgot 'me'" in forgot.stdout
    assert not list((config / PROFILES_FOLDER).glob("*.npz"))
    again = _veil("cloak", "--aligned", str(upload), "-o", str(out), config=config)
    assert "personal=" not in again.stdout


def test_matching_has_no_false_matches_over_the_aligned_corpus(engine: Engine) -> None:
    """The shipped threshold on the 24 people of `aligned/`: each enrols with its first
    fifth (and its mirror images, as the profile keeps them); no crop of anyone else
    matches them, and at least 95% of their own crops do (the issue's target)."""
    from veil.enrolment import gallery_embeddings
    from veil.profiles import MATCH_THRESHOLD, match_scores

    root = faces_dir() / "aligned"
    people = sorted(p for p in root.iterdir() if p.is_dir())
    enrolled, rest = {}, {}
    for person in people:
        files = sorted(person.glob("*.png"))
        n = max(3, round(len(files) / 5))
        crops = [np.asarray(Image.open(f).convert("RGB"), np.float32) / 255 for f in files]
        emb = {s.name: s.embed(np.stack(crops)) for s in engine.surrogates}
        enrolled[person.name] = gallery_embeddings(engine, np.stack(crops[:n]))
        rest[person.name] = {m: e[n:] for m, e in emb.items()}
    own, strangers = [], []
    for a in enrolled:
        for b in rest:
            scores = match_scores(rest[b], enrolled[a])
            (own if a == b else strangers).append(scores)
    own_rate = float(np.mean(np.concatenate(own) >= MATCH_THRESHOLD))
    false = int(np.sum(np.concatenate(strangers) >= MATCH_THRESHOLD))
    print(f"own crops matched {own_rate:.3f}, false matches {false}")
    assert false == 0
    assert own_rate >= 0.95
