"""YuNet face detection on ONNX Runtime: boxes, scores and five landmarks per face.

The post-processing mirrors OpenCV's `FaceDetectorYN` for YuNet 2023mar: anchor-free
heads at strides 8, 16 and 32, score = sqrt(cls * obj), boxes and landmarks decoded
relative to each grid cell, then greedy NMS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from veil.modelstore import ModelStore, get_store

MODEL_NAME = "yunet"
STRIDES = (8, 16, 32)
# YuNet's heads need H and W divisible by the largest stride.
SIZE_MULTIPLE = 32
DEFAULT_SCORE_THRESHOLD = 0.6
DEFAULT_NMS_THRESHOLD = 0.3
DEFAULT_TOP_K = 5000


@dataclass(frozen=True)
class DetectedFace:
    """One face in the pixel coordinates of the image given to `FaceDetector.detect`.

    `landmarks` is float32 [5,2] (x, y) in ArcFace template order: the eye on the
    image's left, the eye on the image's right, nose tip, mouth corner on the image's
    left, mouth corner on the image's right.
    """

    box: tuple[float, float, float, float]  # x, y, width, height
    score: float
    landmarks: npt.NDArray[np.float32]

    def scaled(self, factor: float) -> DetectedFace:
        """The same face in an image `factor` times larger (e.g. 1/downscale)."""
        x, y, w, h = self.box
        return DetectedFace(
            box=(x * factor, y * factor, w * factor, h * factor),
            score=self.score,
            landmarks=(self.landmarks * np.float32(factor)).astype(np.float32),
        )


def _as_rgb_uint8(image: npt.NDArray[np.generic]) -> npt.NDArray[np.uint8]:
    if image.dtype != np.uint8:
        raise ValueError(f"detect() wants uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim == 3 and image.shape[2] == 3:
        return image.astype(np.uint8, copy=False)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3]).astype(np.uint8, copy=False)
    raise ValueError(f"detect() wants an HxWx3 RGB image, got shape {image.shape}")


def _nms(
    boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], threshold: float
) -> list[int]:
    """Greedy non-maximum suppression on (x, y, w, h) boxes; returns kept indices."""
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = x1 + boxes[:, 2], y1 + boxes[:, 3]
    areas = np.maximum(boxes[:, 2], 0) * np.maximum(boxes[:, 3], 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= threshold]
    return keep


class FaceDetector:
    """Thin YuNet wrapper; one ONNX Runtime session shared through the model store."""

    name = MODEL_NAME

    @classmethod
    def load(cls, models_dir: Path | None = None) -> FaceDetector:
        """The detector from a models folder (default: `veil.config.models_dir()`)."""
        return cls(get_store(models_dir))

    def __init__(
        self,
        store: ModelStore | None = None,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        nms_threshold: float = DEFAULT_NMS_THRESHOLD,
        top_k: int = DEFAULT_TOP_K,
    ) -> None:
        self.store = store or get_store()
        self.session = self.store.session(MODEL_NAME, "model")
        self.input_name: str = self.session.get_inputs()[0].name
        self.output_names: list[str] = [o.name for o in self.session.get_outputs()]
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.top_k = top_k

    def detect(self, image_rgb_uint8: npt.NDArray[np.generic]) -> list[DetectedFace]:
        """Faces in an RGB uint8 image of any size, best score first."""
        rgb = _as_rgb_uint8(image_rgb_uint8)
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            return []
        pad_h = -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE
        pad_w = -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE
        # YuNet was trained on BGR 0..255 without normalisation; pad bottom/right with
        # zeros as OpenCV does, so coordinates need no shift.
        blob = np.zeros((1, 3, pad_h, pad_w), dtype=np.float32)
        blob[0, :, :height, :width] = rgb[:, :, ::-1].transpose(2, 0, 1)
        outputs = dict(
            zip(self.output_names, self.session.run(None, {self.input_name: blob}), strict=True)
        )
        boxes, scores, landmarks = [], [], []
        for stride in STRIDES:
            cols = pad_w // stride
            cls = np.clip(outputs[f"cls_{stride}"][0, :, 0], 0.0, 1.0)
            obj = np.clip(outputs[f"obj_{stride}"][0, :, 0], 0.0, 1.0)
            score = np.sqrt(cls * obj)
            idx = np.nonzero(score >= self.score_threshold)[0]
            if idx.size == 0:
                continue
            r = (idx // cols).astype(np.float32)
            c = (idx % cols).astype(np.float32)
            bbox = outputs[f"bbox_{stride}"][0, idx]
            kps = outputs[f"kps_{stride}"][0, idx].reshape(-1, 5, 2)
            cx = (c + bbox[:, 0]) * stride
            cy = (r + bbox[:, 1]) * stride
            w = np.exp(bbox[:, 2]) * stride
            h = np.exp(bbox[:, 3]) * stride
            boxes.append(np.stack([cx - w / 2, cy - h / 2, w, h], axis=1))
            scores.append(score[idx])
            lx = (kps[:, :, 0] + c[:, None]) * stride
            ly = (kps[:, :, 1] + r[:, None]) * stride
            landmarks.append(np.stack([lx, ly], axis=2))
        if not boxes:
            return []
        all_boxes = np.concatenate(boxes).astype(np.float32)
        all_scores = np.concatenate(scores).astype(np.float32)
        all_landmarks = np.concatenate(landmarks).astype(np.float32)
        if all_scores.size > self.top_k:
            top = np.argsort(-all_scores)[: self.top_k]
            all_boxes, all_scores, all_landmarks = (
                all_boxes[top],
                all_scores[top],
                all_landmarks[top],
            )
        keep = _nms(all_boxes, all_scores, self.nms_threshold)
        return [
            DetectedFace(
                box=(
                    float(all_boxes[i, 0]),
                    float(all_boxes[i, 1]),
                    float(all_boxes[i, 2]),
                    float(all_boxes[i, 3]),
                ),
                score=float(all_scores[i]),
                landmarks=all_landmarks[i].copy(),
            )
            for i in keep
        ]
