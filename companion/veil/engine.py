"""The cloaking engine: photo bytes in, cloaked photo bytes (same format and size) out.

Stages, one module each: `imaging.probe` -> `imaging.decode` (a small preview first, for
baseline JPEGs) -> `detector` (on the preview) -> `align` -> `optimizer` -> `paste` (full
resolution, feathered, budgeted) -> `imaging.encode` (input's format, mode, ICC, JPEG
quality/subsampling).

Photos without a face get only the metadata policy, applied to the container without
re-encoding pixels (JPEG, PNG, WebP), so they come back fast and losslessly.

Thread safety: an `Engine` holds only read-only state (ONNX Runtime sessions, whose `run` is
thread-safe), so one instance serves concurrent calls from a worker pool. Results are
deterministic: the optimiser's seed is derived from the input bytes and the mode.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from veil import imageio, optimizer, personal
from veil.align import Box, aligned_pixels, alignment_matrix, merge_boxes, warp_crop
from veil.cancel import checkpoint, guard_surrogates
from veil.errors import CloakFailedError, TooManyFacesError, UnsupportedFormatError
from veil.fileio import write_atomically
from veil.imageio import DEFAULT_MAX_PIXELS, DecodedImage, MetadataReport
from veil.paste import face_mask, paste, ssim_box
from veil.profiles import MATCH_MODELS, Match, ProfileBook, profile_fingerprints
from veil.prominence import face_strengths
from veil.quality import ssim, ssim_sum
from veil.results import DEFAULT_MODE, CloakResult, FaceReport, Mode
from veil.ssimulacra2 import face_ssimulacra2

DETECT_LONG_SIDE = 1024
"""Long side of the copy faces are detected on (12 MP photos are detected at ~1 MP)."""

MAX_FACES = 64
"""Most faces cloaked in one photo. The optimiser's time and memory grow with the number of
faces (a 16x16 mosaic of faces found 255 and ran 455 s at +1.9 GB); a photo with more is
refused whole with `too_many_faces` (422), never cloaked in part: an uncloaked face would
leave the machine while the user believes the photo is protected. 64 faces take about a
minute at `mid` on 2 cores, within the server's default 180 s time-out."""


GAIN_MAP_COSINE_MARGIN = 0.05
"""How much closer to the original face (recogniser cosine) the HDR rendition's face may be
than the SDR primary's, for the gain map to be kept (see `Engine.gain_map_check`)."""


@dataclass(frozen=True)
class GainMapCheck:
    """Worst-face cosines (original vs cloaked) per surrogate: the SDR faces shown at the
    HDR view's exposure, and the HDR rendition's faces."""

    keep: bool
    exposed_sdr: dict[str, float]
    hdr: dict[str, float]
    faces_in_gain_map: int = 0
    gain_map: bytes | None = None  # the flattened gain map to write, when kept


def _gain_map_pixels(gain_map: bytes, stored: tuple[int, int], orientation: int) -> Any:
    """The gain map as an upright RGB picture at the primary's size (for the detector)."""
    gain = cv2.imdecode(np.frombuffer(gain_map, np.uint8), cv2.IMREAD_COLOR)
    if gain is None:
        raise ValueError("the gain map is damaged")
    gain = cv2.resize(gain, stored, interpolation=cv2.INTER_LINEAR)
    return imageio.orient(cv2.cvtColor(gain, cv2.COLOR_BGR2RGB), orientation)


class Detector(Protocol):
    """What the engine needs from `veil.detector.FaceDetector`: boxes, scores, 5 landmarks."""

    def detect(self, rgb: npt.NDArray[np.uint8]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class ImageFace:
    """A detected face in full-resolution coordinates."""

    box: Box
    score: float
    landmarks: npt.NDArray[np.float64]


@dataclass
class StageTimer:
    """Seconds per stage of one call (for the speed benchmark)."""

    seconds: dict[str, float] = field(default_factory=dict)
    _last: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self._last
        self._last = now


def seed_for(data: bytes, mode: Mode) -> int:
    """The optimiser's seed: same photo and mode, same cloak."""
    digest = hashlib.sha256(mode.value.encode() + b"\x00" + data).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


class Engine:
    """Detector + surrogates, loaded once; `cloak_bytes` is safe to call from many threads."""

    def __init__(
        self,
        detector: Detector,
        surrogates: Sequence[optimizer.Surrogate],
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        detect_long_side: int = DETECT_LONG_SIDE,
        max_faces: int = MAX_FACES,
        profiles: ProfileBook | None = None,
        refiners: Sequence[optimizer.Surrogate] | None = None,
    ) -> None:
        if not surrogates:
            raise CloakFailedError("the engine needs at least one face-recognition surrogate")
        self.detector = detector
        self.surrogates = tuple(surrogates)
        self.max_pixels = max_pixels
        self.detect_long_side = detect_long_side
        self.max_faces = max_faces
        # Enrolled people (`veil enrol`): faces that match get their personal cloak.
        self.profiles = profiles
        # The recognisers an enrolled face's per-photo refining steps run through: more
        # than the default cloak's (the person chose a visible cloak and its transfer to
        # recognisers Veil does not have grows with the ensemble; docs/personal-cloak.md).
        self.refiners = tuple(refiners) if refiners else self.surrogates

    @classmethod
    def load(
        cls,
        models_dir: Path | None = None,
        *,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        surrogates: Sequence[str] | None = None,
        config_dir: Path | None = None,
        refiners: Sequence[str] | None = None,
    ) -> Engine:
        """Load the detector and the surrogates once (hashes verified by `veil.modelstore`).

        `surrogates` names the recognisers the cloak is computed with; by default the
        manifest's default surrogates (the others stay unseen attackers for evaluation).
        `config_dir` is where enrolled people's profiles are read from (None: nobody is
        enrolled for this engine). `refiners` names the recognisers of an enrolled face's
        refining steps; by default `personal.REFINE_MODELS`.
        """
        from veil.detector import FaceDetector
        from veil.memory import share_one_malloc_arena
        from veil.modelstore import get_store
        from veil.recognizers import load_recognizers

        share_one_malloc_arena()
        store = get_store(models_dir)
        detector = FaceDetector(store)
        recognizers = load_recognizers(list(surrogates) if surrogates else None, store)
        for recognizer in recognizers:
            # Build the sessions now, one at a time, before any photo is decoded: the first
            # photo is then as fast as the rest, and the memory a session needs while it is
            # built never adds to a photo's (measured: peak RSS on a 14 MP photo about 40 MB
            # lower than with the sessions built lazily, two at once, inside the first call).
            recognizer.verify()
        by_name = {r.name: r for r in recognizers}
        wanted = list(refiners) if refiners is not None else list(personal.REFINE_MODELS)
        extra = load_recognizers([n for n in wanted if n not in by_name], store)
        for recognizer in extra:
            recognizer.verify()
        by_name.update({r.name: r for r in extra})
        book = None
        if config_dir is not None:
            book = ProfileBook(config_dir, profile_fingerprints(recognizers))
        return cls(
            detector,
            recognizers,
            max_pixels=max_pixels,
            profiles=book,
            refiners=[by_name[n] for n in wanted],
        )

    def all_recognizers(self) -> list[optimizer.Surrogate]:
        """Every recogniser in the manifest (surrogates and held-out ones), for `veil check`."""
        from veil.modelstore import ModelStore
        from veil.recognizers import load_recognizers

        store = getattr(self.detector, "store", None)
        if not isinstance(store, ModelStore):
            return list(self.surrogates)
        return list(load_recognizers(store.names(role="recogniser"), store))

    # -- public API ---------------------------------------------------------------------

    def cloak_bytes(
        self,
        data: bytes,
        *,
        mode: Mode = DEFAULT_MODE,
        keep_metadata: bool = False,
        timer: StageTimer | None = None,
    ) -> CloakResult:
        """Cloak every face in a photo; raises a `VeilError` subclass on bad input."""
        mode = Mode(mode)
        start = time.perf_counter()
        timer = timer or StageTimer()
        checkpoint()  # cancelled while queued: do nothing at all
        info = imageio.probe(data, max_pixels=self.max_pixels)
        if info.format == "GIF" or info.frames > 1:  # every frame, one cloak per face track
            from veil.animated.pipeline import cloak_animation

            return cloak_animation(
                self, data, info, mode=mode, keep_metadata=keep_metadata, timer=timer
            )
        decoded: DecodedImage | None = None
        if info.format == "JPEG" and not info.progressive:
            preview, scale = imageio.decode_preview(
                data, self.detect_long_side, max_pixels=self.max_pixels
            )
        else:
            # No fast reduced decode: decode once and shrink. A progressive JPEG must decode
            # every scan even at 1/4 scale (measured on 12.6 MP: 102 ms against 157 ms for
            # the whole image, where a baseline one takes 21 against 76).
            decoded = imageio.decode(data, max_pixels=self.max_pixels)
            timer.lap("decode")
            preview, scale = shrink_for_detection(decoded.pixels, self.detect_long_side)
        timer.lap("decode_preview")
        checkpoint()
        faces = self.detect_faces(preview, scale)
        timer.lap("detect")
        if len(faces) > self.max_faces:
            raise TooManyFacesError(
                f"{len(faces)} faces found; Veil cloaks at most {self.max_faces} in one photo "
                "and never only some of them: crop the photo into smaller parts"
            )
        checkpoint()
        report = MetadataReport()
        if not faces:
            out = imageio.rewrite_metadata(
                data, info.format, keep_metadata=keep_metadata, report=report
            )
            if out is None:  # HEIC: no in-place rewrite, re-encode the untouched pixels
                decoded = decoded or imageio.decode(data, max_pixels=self.max_pixels)
                out = imageio.encode(
                    decoded,
                    decoded.pixels,
                    keep_metadata=keep_metadata,
                    report=report,
                    cloaked=False,
                )
            timer.lap("metadata")
            return CloakResult(
                data=out,
                media_type=info.media_type,
                width=info.width,  # the file as stored (the lossless path keeps orientation)
                height=info.height,
                faces=(),
                seconds=time.perf_counter() - start,
                ssim=None,
                metadata_removed=tuple(report.removed),
            )
        if decoded is None:
            decoded = imageio.decode(data, max_pixels=self.max_pixels)
        timer.lap("decode")
        gain_map = imageio.gain_map_of(data) if info.format == "JPEG" else None
        original = decoded.pixels.copy() if gain_map is not None else None
        checkpoint()
        reports, whole_ssim = self._cloak_faces(decoded, faces, mode, seed_for(data, mode), timer)
        checkpoint()
        if gain_map is not None and original is not None:
            check = self.gain_map_check(original, decoded, faces, gain_map)
            decoded.keep_gain_map = check.keep
            decoded.gain_map = check.gain_map
            timer.lap("gain_map")
            checkpoint()
        out = imageio.encode(decoded, decoded.pixels, keep_metadata=keep_metadata, report=report)
        timer.lap("encode")
        return CloakResult(
            data=out,
            media_type=info.media_type,
            width=decoded.width,
            height=decoded.height,
            faces=reports,
            seconds=time.perf_counter() - start,
            ssim=whole_ssim,
            metadata_removed=tuple(report.removed),
        )

    def cloak_aligned_bytes(self, data: bytes, *, mode: Mode = DEFAULT_MODE) -> CloakResult:
        """Cloak an already ArcFace-aligned face crop (no detection).

        The cloak covers the same feathered face mask as in a photo, so that a crop cloaked
        here (what `veil-research eval` measures) carries what the engine pastes into photos.
        """
        mode = Mode(mode)
        start = time.perf_counter()
        decoded = imageio.decode(data, max_pixels=self.max_pixels)
        if decoded.width != decoded.height:
            raise UnsupportedFormatError(
                f"--aligned expects square ArcFace crops, got {decoded.width}x{decoded.height}"
            )
        size = optimizer.CROP_SIZE
        maxval = np.float32(decoded.max_value)
        original = decoded.pixels.copy()
        crop = aligned_pixels(decoded.pixels, decoded.max_value, size)
        match = self.match_faces(crop[None])[0]
        if match is not None:
            delta = self.personal_deltas(crop[None], [match], seed_for(data, mode))[0]
        else:
            cloaked = optimizer.cloak_crops(
                crop[None], mode, self.surrogates, seed=seed_for(data, mode), region=face_mask(size)
            )
            delta = cloaked[0] - crop
        if decoded.width != size:
            delta = np.asarray(
                cv2.resize(delta, (decoded.width,) * 2, interpolation=cv2.INTER_CUBIC), np.float32
            )
        out_pixels = np.clip(np.rint(original.astype(np.float32) + delta * maxval), 0, maxval)
        decoded.pixels = out_pixels.astype(original.dtype)
        report = MetadataReport()
        out = imageio.encode(decoded, decoded.pixels, keep_metadata=False, report=report)
        crop_ssim = ssim(original, decoded.pixels, float(maxval))
        box = (0, 0, decoded.width, decoded.height)
        crop_s2 = face_ssimulacra2(original, decoded.pixels)
        return CloakResult(
            data=out,
            media_type=decoded.info.media_type,
            width=decoded.width,
            height=decoded.height,
            faces=(FaceReport(box, 1.0, crop_ssim, crop_s2, *_matched(match)),),
            seconds=time.perf_counter() - start,
            ssim=crop_ssim,
            metadata_removed=tuple(report.removed),
        )

    def cloak_file(
        self,
        src: Path,
        dst: Path,
        *,
        mode: Mode = DEFAULT_MODE,
        keep_metadata: bool = False,
        aligned: bool = False,
    ) -> CloakResult:
        """Cloak `src` into `dst`, atomically: `dst` is either the old file or the whole new one,
        with `src`'s permission bits."""
        data = Path(src).read_bytes()
        if aligned:
            result = self.cloak_aligned_bytes(data, mode=mode)
        else:
            result = self.cloak_bytes(data, mode=mode, keep_metadata=keep_metadata)
        # The output keeps the input's permission bits (in place or in another folder).
        write_atomically(Path(dst), result.data, like=Path(src))
        return result

    def gain_map_check(
        self,
        original: npt.NDArray[Any],
        cloaked: DecodedImage,
        faces: Sequence[ImageFace],
        gain_map: bytes,
    ) -> GainMapCheck:
        """Whether the gain map may stay after a cloak, and in what form.

        A gain map is a smaller picture of the same scene (grey or colour): seen alone it
        shows the uncloaked face. So the face regions of the gain map are first flattened
        to their mean gain (`gainmap.flatten_regions`); then the flattened gain map is kept
        only when (a) the detector finds no face in it and (b) the HDR rendition (cloaked
        primary x flattened gain map) carries the cloak as the primary does: for every
        surrogate and face, the cosine between the original's and the cloaked photo's HDR
        faces is at most `GAIN_MAP_COSINE_MARGIN` above the cosine of the two SDR faces
        shown at the same exposure (one constant gain, the face's mean). Rendered over the
        faces' region only, with one exposure for the whole photo. Without the flattening
        the original gain map re-adds the original's shading; figures in docs/metadata.md."""
        from veil.align import footprint
        from veil.imaging.gainmap import HdrRendition, flatten_regions
        from veil.paste import face_mask

        size = optimizer.CROP_SIZE
        height, width = original.shape[:2]
        matrices = [alignment_matrix(face.landmarks, size) for face in faces]
        face_boxes = [footprint(m, size, width, height).grow(8, width, height) for m in matrices]
        boxes = [b for b in face_boxes if not b.empty]
        if not boxes:
            return GainMapCheck(False, {}, {})
        x0, y0 = min(b.x0 for b in boxes), min(b.y0 for b in boxes)
        x1, y1 = max(b.x1 for b in boxes), max(b.y1 for b in boxes)
        stored = (cloaked.info.width, cloaked.info.height)
        # Where the gain map is flattened: each face's aligned-crop square (wider than the
        # pasted cloak), grown, so the whole head is covered.
        mask = np.zeros((height, width), np.float32)
        square = cv2.dilate(face_mask(size), np.ones((9, 9), np.uint8))
        square = np.maximum(square, cv2.GaussianBlur(np.ones((size, size), np.float32), (0, 0), 8))
        for matrix in matrices:
            inverse = cv2.invertAffineTransform(matrix)
            region = cv2.warpAffine(
                square, inverse, (width, height), flags=cv2.INTER_LINEAR, borderValue=0
            )
            np.maximum(mask, region, out=mask)
        try:
            flattened = flatten_regions(gain_map, mask, cloaked.orientation)
            rendition = HdrRendition(flattened, stored, cloaked.orientation, (x0, y0, x1, y1))
            gain_faces = self.find_faces(_gain_map_pixels(flattened, stored, cloaked.orientation))
        except Exception:  # an unreadable gain map is dropped, never trusted
            return GainMapCheck(False, {}, {})
        rendition.fix_scale(original)
        hdr_before = rendition.render(original)
        hdr_after = rendition.render(cloaked.pixels)
        shift = np.array([x0, y0], np.float64)
        exposed: dict[str, float] = {}
        hdr: dict[str, float] = {}
        for matrix, box in zip(matrices, face_boxes, strict=True):
            if box.empty:
                continue
            local = matrix.copy()
            local[:, 2] += matrix[:, :2] @ shift  # the crop of the region, not the photo
            boost = rendition.mean_boost((box.x0, box.y0, box.x1, box.y1))
            sdr_before = warp_crop(original, matrix, size)
            sdr_after = warp_crop(cloaked.pixels, matrix, size)
            crops = np.stack(
                [
                    rendition.expose(sdr_before, boost),
                    rendition.expose(sdr_after, boost),
                    warp_crop(hdr_before, local, size),
                    warp_crop(hdr_after, local, size),
                ]
            )
            for surrogate in self.surrogates:
                e = surrogate.embed(crops)
                name = surrogate.name
                exposed[name] = max(exposed.get(name, -1.0), float(e[0] @ e[1]))
                hdr[name] = max(hdr.get(name, -1.0), float(e[2] @ e[3]))
        keep = not gain_faces and all(hdr[n] <= exposed[n] + GAIN_MAP_COSINE_MARGIN for n in hdr)
        return GainMapCheck(keep, exposed, hdr, len(gain_faces), flattened if keep else None)

    # -- stages -------------------------------------------------------------------------

    def match_faces(self, crops: npt.NDArray[np.float32]) -> list[Match | None]:
        """For each aligned crop, the enrolled person it shows, or None."""
        return self._match_and_embed(crops)[0]

    def _match_and_embed(
        self, crops: npt.NDArray[np.float32]
    ) -> tuple[list[Match | None], dict[str, npt.NDArray[np.float32]]]:
        """`match_faces`, and the embeddings it computed (surrogate -> [N,D] unit vectors;
        empty when nobody is enrolled): the default cloak's targets for the faces that are
        nobody's, which would otherwise be computed a second time."""
        if self.profiles is None or not self.profiles.profiles():
            return [None] * len(crops), {}
        embeddings = {s.name: s.embed(crops) for s in self.surrogates if s.name in MATCH_MODELS}
        if not embeddings:
            raise CloakFailedError(
                "people are enrolled but no matching recogniser is loaded; refusing to guess"
            )
        return self.profiles.match(embeddings), embeddings

    def personal_deltas(
        self,
        crops: npt.NDArray[np.float32],
        matches: Sequence[Match],
        seed: int,
        scales: Sequence[float] | None = None,
    ) -> npt.NDArray[np.float32]:
        """Each enrolled face's personal cloak [N,S,S,3] (premasked, brightness only).

        `scales` (per face, 0..1) shrink a face's cloak where it would show most: the
        prominence rule of the default cloak (`veil.prominence`), for close-up portraits;
        aligned crops (`cloak_aligned_bytes`) keep the whole strength."""
        out = np.empty_like(crops, dtype=np.float32)
        for i, match in enumerate(matches):
            out[i] = personal.personal_delta(
                crops[i],
                match.profile.cloak,
                match.profile.strength,
                guard_surrogates(self.refiners),
                match.profile.targets,
                seed=seed + i,
                scale=1.0 if scales is None else float(scales[i]),
            )
        return out

    def personal_track_delta(
        self, crops: npt.NDArray[np.float32], match: Match, seed: int, scale: float
    ) -> npt.NDArray[np.float32]:
        """One personal cloak [S,S,3] for several views of one enrolled face (a video
        track's keyframes), optimised on all of them at once."""
        return personal.shared_personal_delta(
            crops,
            match.profile.cloak,
            match.profile.strength,
            guard_surrogates(self.refiners),
            match.profile.targets,
            seed=seed,
            scale=scale,
        )

    def find_faces(self, pixels: npt.NDArray[Any]) -> list[ImageFace]:
        """Faces in a decoded full-resolution image, searched on a shrunk copy."""
        return self.detect_faces(*shrink_for_detection(pixels, self.detect_long_side))

    def detect_faces(
        self, preview: npt.NDArray[np.uint8], scale: tuple[float, float]
    ) -> list[ImageFace]:
        """Faces on the preview, mapped to full-resolution coordinates."""
        sx, sy = scale
        faces = []
        for det in self.detector.detect(preview):
            x, y, w, h = (float(v) for v in det.box)
            landmarks = np.asarray(det.landmarks, dtype=np.float64).reshape(5, 2) / [sx, sy]
            box = Box(
                int(x / sx), int(y / sy), int(np.ceil((x + w) / sx)), int(np.ceil((y + h) / sy))
            )
            faces.append(ImageFace(box, float(det.score), landmarks))
        return faces

    def _cloak_faces(
        self,
        decoded: DecodedImage,
        faces: Sequence[ImageFace],
        mode: Mode,
        seed: int,
        timer: StageTimer,
    ) -> tuple[tuple[FaceReport, ...], float]:
        """Align, optimise and paste every face into `decoded.pixels`; (reports, whole SSIM)."""
        if not decoded.pixels.flags.writeable:  # arrays over Pillow's bytes are read-only
            decoded.pixels = decoded.pixels.copy()
        canvas = decoded.pixels
        height, width = canvas.shape[:2]
        size = optimizer.CROP_SIZE
        matrices = [alignment_matrix(face.landmarks, size) for face in faces]
        crops = np.stack([warp_crop(canvas, m, size) for m in matrices])
        timer.lap("align")
        # The optimiser works only where paste() will put the cloak (the feathered face
        # mask): budget spent on hair or background corners of the crop would never reach
        # the photo.
        # Faces that fill a large photo are seen large in a feed: less budget each.
        matches, embedded = self._match_and_embed(crops)
        timer.lap("match")
        strengths = face_strengths([face.box for face in faces], width, height)
        deltas = np.zeros_like(crops, dtype=np.float32)
        others = [i for i, m in enumerate(matches) if m is None]
        enrolled = [i for i, m in enumerate(matches) if m is not None]
        if others:
            # Each face's own embedding is the default cloak's target: reuse the matching's.
            reuse = all(model.name in embedded for model in self.surrogates)
            cloaked = optimizer.cloak_crops(
                crops[others],
                mode,
                guard_surrogates(self.surrogates),
                seed=seed,
                region=face_mask(size),
                strength=[strengths[i] for i in others],
                targets=[embedded[m.name][others] for m in self.surrogates] if reuse else None,
            )
            if cloaked.shape != crops[others].shape or not np.all(np.isfinite(cloaked)):
                raise CloakFailedError("the optimiser returned crops of the wrong shape or NaNs")
            deltas[others] = cloaked - crops[others]
        if enrolled:
            deltas[enrolled] = self.personal_deltas(
                crops[enrolled],
                [m for m in matches if m is not None],
                seed,
                scales=[strengths[i] for i in enrolled],
            )
        timer.lap("optimize")
        boxes = [ssim_box(m, size, width, height) for m in matrices]
        disjoint = len(merge_boxes(boxes)) == len(boxes)
        # Overlapping faces: keep the original pixels to measure the whole-image SSIM after.
        merged = [] if disjoint else merge_boxes(boxes)
        originals = [canvas[b.slices()].copy() for b in merged]
        budget = optimizer.mode_budget(mode)
        region_floor = _region_ssim_floor(budget.min_image_ssim, boxes, width * height)
        reports, outcomes = [], []
        for face, matrix, delta, reach, match in zip(
            faces, matrices, deltas, boxes, matches, strict=True
        ):
            if reach.empty:  # landmarks entirely outside the picture
                continue
            x0, y0 = max(face.box.x0, 0), max(face.box.y0, 0)
            x1, y1 = min(face.box.x1, width), min(face.box.y1, height)
            face_before = canvas[y0:y1, x0:x1].copy()
            outcome = paste(
                canvas,
                delta,
                matrix,
                face.box,
                # A personal cloak is as visible as the person chose: no floor scales it down.
                min_face_ssim=budget.min_face_ssim if match is None else 0.0,
                min_region_ssim=region_floor if match is None else 0.0,
                premasked=True,
            )
            outcomes.append(outcome)
            box = (x0, y0, x1 - x0, y1 - y0)
            # Judged on this face alone: a later, overlapping face's paste is not counted.
            visibility = face_ssimulacra2(face_before, canvas[y0:y1, x0:x1])
            reports.append(
                FaceReport(box, face.score, outcome.face_ssim, visibility, *_matched(match))
            )
        if not reports:
            raise CloakFailedError("faces were found but none could be cloaked")
        # Outside these boxes the pixels, hence the SSIM map (= 1), are unchanged.
        if disjoint:
            measured = [(o.box, o.ssim_sum) for o in outcomes]
        else:
            maxval = float(decoded.max_value)
            measured = [
                (b, ssim_sum(before, canvas[b.slices()], maxval))
                for b, before in zip(merged, originals, strict=True)
            ]
        total = float(width * height)
        area = sum(b.width * b.height for b, _ in measured)
        timer.lap("paste")
        return tuple(reports), (sum(v for _, v in measured) + total - area) / total


def _matched(match: Match | None) -> tuple[str | None, str | None]:
    if match is None:
        return None, None
    return match.profile.name, match.profile.strength.value


def _region_ssim_floor(min_image_ssim: float, regions: Sequence[Box], total: int) -> float:
    """The mean SSIM every pasted region must keep so that the whole photo keeps
    `min_image_ssim`: outside the regions SSIM is 1, so the regions may give up together
    (1 - floor) x total. Binding only for close-ups, where faces fill much of the photo."""
    area = sum(b.width * b.height for b in regions if not b.empty)
    if area == 0:
        return 0.0
    return max(0.0, 1.0 - (1.0 - min_image_ssim) * total / area)


def shrink_for_detection(
    pixels: npt.NDArray[Any], long_side: int
) -> tuple[npt.NDArray[np.uint8], tuple[float, float]]:
    rgb = (pixels >> 8).astype(np.uint8) if pixels.dtype == np.uint16 else pixels
    height, width = rgb.shape[:2]
    factor = min(1.0, long_side / max(width, height))
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb), (rgb.shape[1] / width, rgb.shape[0] / height)
