"""The optimiser moves real faces' SFace embeddings far, within its budget, reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from veil import optimizer
from veil.errors import CloakFailedError
from veil.recognizers import Recognizer
from veil.results import Mode

IDENTITIES = ("Barack_Obama", "Tina_Fey")


@pytest.fixture(scope="module")
def crops(faces_dir: Path) -> np.ndarray:
    """One aligned crop of each of two people, RGB float32 in [0, 1]."""
    first = [sorted((faces_dir / "aligned" / i).glob("*.png"))[0] for i in IDENTITIES]
    return np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in first])


@pytest.fixture(scope="module")
def sface() -> Recognizer:
    return Recognizer("sface")


@pytest.fixture(scope="module")
def cloaked(crops: np.ndarray, sface: Recognizer) -> np.ndarray:
    return optimizer.cloak_crops(crops, Mode.LOW, [sface], seed=7)


def test_cloak_moves_the_embedding_away(
    crops: np.ndarray, cloaked: np.ndarray, sface: Recognizer
) -> None:
    """Even the faintest mode moves the face in its surrogate's eyes far more than random
    brightness noise of the same size does: the change is aimed, not just added."""
    before, after = sface.embed(crops), sface.embed(cloaked)
    moved = 1.0 - np.sum(before * after, axis=1)
    delta = cloaked - crops
    rms = np.sqrt(np.mean(delta**2, axis=(1, 2, 3), keepdims=True))
    noise = np.random.default_rng(0).standard_normal((*crops.shape[:3], 1)).astype(np.float32)
    noisy = np.clip(crops + noise * rms, 0.0, 1.0)
    moved_by_noise = 1.0 - np.sum(before * sface.embed(noisy), axis=1)
    assert np.all(moved > 0.03), moved
    assert np.all(moved > 5 * moved_by_noise), (moved, moved_by_noise)


def test_stronger_modes_move_the_embedding_further(crops: np.ndarray, sface: Recognizer) -> None:
    before = sface.embed(crops[:1])
    moved = []
    for mode in (Mode.LOW, Mode.HIGH):
        out = optimizer.cloak_crops(crops[:1], mode, [sface], seed=5)
        moved.append(1.0 - float(np.sum(before * sface.embed(out))))
    assert moved[1] > 1.5 * moved[0], moved


def test_cloak_respects_the_budget(crops: np.ndarray, cloaked: np.ndarray) -> None:
    budget = optimizer.mode_budget(Mode.LOW)
    assert cloaked.shape == crops.shape and cloaked.dtype == np.float32
    assert cloaked.min() >= 0.0 and cloaked.max() <= 1.0
    # The texture mask scales the L-inf cap by at most texture_high, luminance adaptation by
    # at most 3 (shadows).
    factor = budget.texture_high * (3.0 if budget.luminance_adapt else 1.0)
    assert np.max(np.abs(cloaked - crops)) <= factor * budget.linf + 1e-6
    assert np.all(optimizer.crop_ssim(crops, cloaked) >= budget.min_crop_ssim - 1e-6)
    assert np.mean(np.abs(cloaked - crops)) > budget.linf / 10  # it did change the crops


def test_same_seed_same_cloak(crops: np.ndarray, sface: Recognizer) -> None:
    quick = optimizer.with_overrides(optimizer.mode_budget(Mode.MID), steps=2, copies=2)
    first = optimizer.cloak_crops(crops[:1], Mode.MID, [sface], seed=3, budget=quick)
    again = optimizer.cloak_crops(crops[:1], Mode.MID, [sface], seed=3, budget=quick)
    other = optimizer.cloak_crops(crops[:1], Mode.MID, [sface], seed=4, budget=quick)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_bad_crops_raise_a_typed_error(sface: Recognizer) -> None:
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(np.zeros((1, 112, 112)), Mode.MID, [sface], seed=0)
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(np.full((1, 112, 112, 3), 2.0), Mode.MID, [sface], seed=0)
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(np.zeros((1, 112, 112, 3)), Mode.MID, [], seed=0)


def test_budgets_grow_with_the_mode() -> None:
    low, mid, high = (optimizer.mode_budget(m) for m in (Mode.LOW, Mode.MID, Mode.HIGH))
    # Stronger modes may change more (the cap); how far they move a face is tested above.
    assert low.linf < mid.linf < high.linf
    assert low.min_face_ssim >= mid.min_face_ssim >= high.min_face_ssim


@pytest.fixture(scope="module")
def default_cloak(crops: np.ndarray, sface: Recognizer) -> np.ndarray:
    from veil.paste import face_mask

    return optimizer.cloak_crops(crops, Mode.MID, [sface], seed=11, region=face_mask(112))


def test_default_cloak_changes_brightness_only(
    crops: np.ndarray, default_cloak: np.ndarray
) -> None:
    """No colour tint: the default cloak moves R, G and B together (luma only)."""
    grey, colour = optimizer.split_grey_colour(default_cloak - crops)
    # Clipping at 0 or 1 (a saturated highlight) is the only source of colour left.
    assert np.sqrt(np.mean(colour**2)) < 0.1 * np.sqrt(np.mean(grey**2))
    assert np.sqrt(np.mean(grey**2)) > 0.5 / 255  # and it did change the crops


def test_default_cloak_hides_in_texture_not_on_flat_skin(
    crops: np.ndarray, default_cloak: np.ndarray, sface: Recognizer
) -> None:
    """Contrast masking: more change where local texture hides it than on flat skin, and
    the texture mask is what puts it there."""
    from veil.paste import face_mask

    inside = face_mask(112) > 0.9
    x = np.asarray(crops, np.float32)
    texture = optimizer._texture_mask(x)[..., 0]
    # Luminance adaptation (more change allowed in shadows) is divided out: this is about
    # texture, and dark flat areas would otherwise blur the comparison.
    shade = optimizer._luminance_factor(x)[..., 0]

    def busy_over_flat(cloak: np.ndarray) -> list[float]:
        change = np.abs(cloak - crops).mean(axis=3) / shade
        out = []
        for i in range(len(crops)):
            t, c = texture[i][inside], change[i][inside]
            flat, busy = t <= np.quantile(t, 0.25), t >= np.quantile(t, 0.75)
            out.append(float(c[busy].mean() / c[flat].mean()))
        return out

    unmasked = optimizer.cloak_crops(
        crops,
        Mode.MID,
        [sface],
        seed=11,
        region=face_mask(112),
        budget=optimizer.with_overrides(
            optimizer.mode_budget(Mode.MID), texture_low=1.0, texture_high=1.0
        ),
    )
    # Measured 1.26 / 1.19 with the mask, 0.54 / 0.37 without (the gradient alone puts
    # more change on the smooth cheeks and forehead).
    with_mask, without = busy_over_flat(default_cloak), busy_over_flat(unmasked)
    assert min(with_mask) > 1.0, with_mask
    assert all(a > 1.8 * b for a, b in zip(with_mask, without, strict=True)), (with_mask, without)


def test_edge_map_marks_coherent_edges_not_flat_areas() -> None:
    x = np.full((1, 112, 112, 3), 0.6, np.float32)
    x[:, :, 56:] = 0.2  # one vertical step edge
    edges = optimizer._edge_map(x)[0, :, :, 0]
    assert edges[:, 53:59].max(axis=1).min() > 0.75
    assert edges[:, :40].max() == 0.0 and edges[:, 72:].max() == 0.0


def test_luminance_factor_allows_more_change_in_shadows() -> None:
    levels = np.linspace(0.02, 0.98, 12, dtype=np.float32)
    x = np.broadcast_to(levels[:, None, None, None], (12, 16, 16, 3)).copy()
    factor = optimizer._luminance_factor(x)[:, 8, 8, 0]
    assert factor.min() >= 1.0 - 1e-6 and factor.max() <= 3.0 + 1e-6
    assert factor[0] > 2.0 > factor[5]  # deep shadow against mid-grey skin


def test_concurrent_gradients_equal_one_call_per_surrogate(crops: np.ndarray) -> None:
    # The optimiser splits work over threads (per surrogate, and per batch slice when there
    # are fewer surrogates than cores); the pieces must come back whole and in order.
    models = [Recognizer("sface"), Recognizer("mobilefacenet")]
    batch = np.concatenate([crops, crops[::-1] * 0.9]).astype(np.float32)
    targets = [m.embed(crops[::-1].repeat(2, axis=0)) for m in models]
    for chosen in (models, models[:1]):
        got = optimizer.parallel_gradients(chosen, batch, targets[: len(chosen)])
        for model, target, grad in zip(chosen, targets, got, strict=False):
            expected = model.loss_and_grad(batch, target)[2]
            assert grad.shape == batch.shape
            np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-7)


def test_colour_blotches_are_capped_and_fine_detail_kept() -> None:
    budget = optimizer.with_overrides(
        optimizer.mode_budget(Mode.MID), colour_low_share=0.2, colour_sigma=4.0
    )
    rng = np.random.default_rng(0)
    size = 112
    yy = np.linspace(-1, 1, size, dtype=np.float32)[:, None]
    smooth = np.zeros((1, size, size, 3), np.float32)
    smooth[..., 0] = budget.linf * (yy > 0)  # a red patch over half the face: a blotch
    fine = rng.choice([-1.0, 1.0], (1, size, size, 3)).astype(np.float32) * budget.linf / 2
    grey = np.full((1, size, size, 1), budget.linf / 2, np.float32)
    out = optimizer._limit_colour_blotches(smooth + fine + grey, budget, 1.0)

    def low_colour(v: np.ndarray) -> np.ndarray:
        colour = v - v.mean(axis=3, keepdims=True)
        return optimizer._blur(np.ascontiguousarray(colour, np.float32), 4.0)

    assert np.abs(low_colour(smooth)).max() > 0.5 * budget.linf
    # Approximate (see the function): within 1.5x the cap, from over 3x.
    assert np.abs(low_colour(out)).max() <= 0.2 * budget.linf * 1.5
    # The grey (brightness) part is untouched, and most of the fine colour grain survives.
    np.testing.assert_allclose(out.mean(axis=3), (smooth + fine + grey).mean(axis=3), atol=1e-6)
    kept = np.corrcoef((out - low_colour(out)).ravel(), fine.ravel())[0, 1]
    assert kept > 0.8, kept


def test_delta_blur_softens_edges_within_the_cap() -> None:
    # Coarse cells at opposite caps (what signed steps produce) meet in a hard edge; the
    # blur turns the step into a ramp and never leaves the per-pixel bounds.
    sharp = optimizer.with_overrides(optimizer.mode_budget(Mode.LOW), delta_blur=0.0)
    soft = optimizer.with_overrides(sharp, delta_blur=1.0)
    grid = 56
    # Saturated cells (the coarse grid is clipped at 1.5 L-inf) over flat skin (cap 0.5 L-inf).
    coarse = np.full((1, grid, grid, 3), 1.5 * sharp.linf, np.float32)
    coarse[:, :, grid // 2 :] *= -1  # + on the left half, - on the right half
    cap = np.full((1, 112, 112, 3), 0.5 * sharp.linf, np.float32)
    hard, smooth = optimizer._delta(coarse, cap, sharp), optimizer._delta(coarse, cap, soft)
    assert np.abs(smooth).max() <= 0.5 * sharp.linf + 1e-7
    jump = np.abs(np.diff(hard[0, 56, :, 0])).max()
    assert jump >= 0.5 * sharp.linf  # half the swing in one pixel
    assert np.abs(np.diff(smooth[0, 56, :, 0])).max() < 0.5 * jump
    np.testing.assert_allclose(smooth[0, :, :20], hard[0, :, :20], atol=1e-6)  # far from it


def test_region_confines_the_cloak_and_it_still_works(crops: np.ndarray, sface: Recognizer) -> None:
    """The engine's paste mask passed as `region` (at the default mode): nothing changes
    where it is 0, and the cloak that remains (what reaches a photo) still moves the face."""
    from veil.paste import face_mask

    region = face_mask(112)
    out = optimizer.cloak_crops(crops, Mode.MID, [sface], seed=7, region=region)
    outside = region == 0
    assert outside.any()
    np.testing.assert_array_equal(out[:, outside], crops[:, outside])
    assert np.mean(np.abs(out - crops)[:, region == 1]) > optimizer.mode_budget(Mode.MID).linf / 4
    cosine = np.sum(sface.embed(crops) * sface.embed(out), axis=1)
    assert np.all(cosine < 0.95), cosine
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(crops, Mode.LOW, [sface], seed=7, region=np.ones((56, 56)))
    with pytest.raises(CloakFailedError):
        optimizer.cloak_crops(crops, Mode.LOW, [sface], seed=7, region=region * 2)


def test_texture_mask_range_is_a_budget_parameter(crops: np.ndarray) -> None:
    x = np.asarray(crops, np.float32)
    default = optimizer._texture_mask(x)
    wide = optimizer._texture_mask(x, 0.25, 2.0)
    assert default.min() >= 0.5 - 1e-6 and default.max() <= 1.5 + 1e-6
    assert 0.25 - 1e-6 <= wide.min() < default.min()
    assert default.max() < wide.max() <= 2.0 + 1e-6


def test_strength_scales_each_crops_budget(crops: np.ndarray, sface: Recognizer) -> None:
    """A face with half strength (one that fills a large photo, `veil.prominence`) gets at
    most half the change, while its neighbour in the same batch keeps its full budget."""
    quick = optimizer.with_overrides(optimizer.mode_budget(Mode.MID), steps=4)
    full = optimizer.cloak_crops(crops, Mode.MID, [sface], seed=2, budget=quick)
    half = optimizer.cloak_crops(
        crops, Mode.MID, [sface], seed=2, budget=quick, strength=[1.0, 0.5]
    )
    factor = quick.texture_high * 3.0  # texture mask and luminance adaptation, at most
    assert np.max(np.abs(half[1] - crops[1])) <= 0.5 * factor * quick.linf + 1e-6
    change_full = np.mean(np.abs(full[1] - crops[1]))
    change_half = np.mean(np.abs(half[1] - crops[1]))
    assert change_half < 0.7 * change_full, (change_half, change_full)
    assert np.mean(np.abs(half[0] - crops[0])) > 0.8 * np.mean(np.abs(full[0] - crops[0]))


def test_bad_strength_raises_a_typed_error(crops: np.ndarray, sface: Recognizer) -> None:
    for strength in ([1.0], [1.0, 0.0], [1.0, 1.5], [1.0, float("nan")]):
        with pytest.raises(CloakFailedError):
            optimizer.cloak_crops(crops, Mode.MID, [sface], seed=0, strength=strength)


def test_shared_views_get_one_change(crops: np.ndarray, sface: Recognizer) -> None:
    """Two views of one face (a video track's keyframes) optimised with `shared` get the
    same change (uniform caps here, so nothing but the optimiser could make them differ),
    and it moves both views away; without `shared` each view gets its own change."""
    face = crops[0]
    views = np.stack([face, np.roll(face, 2, axis=1)])
    budget = optimizer.with_overrides(
        optimizer.mode_budget(Mode.HIGH),
        texture_low=1.0,
        texture_high=1.0,
        luminance_adapt=False,
        edge_protect=0.0,
        min_crop_ssim=0.0,
        steps=6,
    )
    inside = (views > 0.05) & (views < 0.95)  # away from clipping
    for shared in (True, False):
        out = optimizer.cloak_crops(views, Mode.HIGH, [sface], seed=3, budget=budget, shared=shared)
        change = out - views
        gap = np.abs(change[0] - change[1])[inside[0] & inside[1]]
        size = np.abs(change[0]).mean()
        if shared:
            assert gap.max() < 1e-4 * max(size, 1e-3) + 1e-6, gap.max()
            before = sface.embed(views)
            after = sface.embed(out)
            assert np.all(np.sum(before * after, axis=1) < 0.95)
        else:
            assert np.median(gap) > 0.1 * size
