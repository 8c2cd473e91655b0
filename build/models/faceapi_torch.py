"""face-api.js's FaceRecognitionNet (dlib's ResNet-34 face descriptor) in PyTorch (build time).

A port of `src/faceRecognitionNet/*.ts` from the `@vladmandic/face-api` npm package,
reading its tfjs weights (`face_recognition_model.bin` + weights manifest; uint8
quantised tensors are dequantised as `q * scale + min`). Input: NCHW float32, already
normalised as the package does: (RGB 0..255 - mean_rgb) / 255 at 150x150.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 150


def load_weights(manifest_path: Path, bin_path: Path) -> dict[str, np.ndarray]:
    groups = json.loads(manifest_path.read_text())
    data = bin_path.read_bytes()
    if len(groups) != 1:
        raise NotImplementedError("one weights group expected")
    out: dict[str, np.ndarray] = {}
    pos = 0
    for spec in groups[0]["weights"]:
        count = int(np.prod(spec["shape"])) if spec["shape"] else 1
        quant = spec.get("quantization")
        if quant:
            if quant["dtype"] != "uint8":
                raise NotImplementedError(quant["dtype"])
            q = np.frombuffer(data, dtype=np.uint8, count=count, offset=pos)
            pos += count
            arr = q.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
        else:
            if spec["dtype"] != "float32":
                raise NotImplementedError(spec["dtype"])
            arr = np.frombuffer(data, dtype=np.float32, count=count, offset=pos).copy()
            pos += 4 * count
        out[spec["name"]] = arr.reshape(spec["shape"]).astype(np.float32)
    if pos != len(data):
        raise ValueError(f"read {pos} of {len(data)} weight bytes")
    return out


class FaceRecognitionNet(torch.nn.Module):
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self._names: dict[str, str] = {}
        for i, (name, arr) in enumerate(weights.items()):
            if arr.ndim == 4:  # tfjs HWIO -> torch OIHW
                arr = arr.transpose(3, 2, 0, 1)
            key = f"w{i}"
            self.register_buffer(key, torch.from_numpy(np.ascontiguousarray(arr)))
            self._names[name] = key

    def _w(self, name: str) -> torch.Tensor:
        return getattr(self, self._names[name])  # type: ignore[no-any-return]

    def _conv(
        self, x: torch.Tensor, prefix: str, stride: int, relu: bool, same: bool
    ) -> torch.Tensor:
        w = self._w(f"{prefix}/conv/filters")
        # 'same' with stride 1 and odd kernels pads k // 2 on each side.
        pad = w.shape[2] // 2 if same else 0
        out = F.conv2d(x, w, self._w(f"{prefix}/conv/bias"), stride, pad)
        out = out * self._w(f"{prefix}/scale/weights").reshape(1, -1, 1, 1)
        out = out + self._w(f"{prefix}/scale/biases").reshape(1, -1, 1, 1)
        return F.relu(out) if relu else out

    def _residual(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        out = self._conv(x, f"{prefix}/conv1", 1, True, True)
        out = self._conv(out, f"{prefix}/conv2", 1, False, True)
        return F.relu(out + x)

    def _residual_down(self, x: torch.Tensor, prefix: str) -> torch.Tensor:
        out = self._conv(x, f"{prefix}/conv1", 2, True, False)
        out = self._conv(out, f"{prefix}/conv2", 1, False, True)
        # 2x2/2 average pooling as a depthwise convolution: its gradient is then a
        # transposed convolution, which ONNX has (avg_pool2d_backward has no ONNX rule).
        channels = x.shape[1]
        pooled = F.conv2d(x, x.new_full((channels, 1, 2, 2), 0.25), None, 2, 0, 1, channels)
        if pooled.shape[2] != out.shape[2] or pooled.shape[3] != out.shape[3]:
            # face-api.js appends one zero row, then one zero column, to `out`.
            out = F.pad(out, (0, 1, 0, 1))
        if pooled.shape[1] != out.shape[1]:
            pooled = F.pad(pooled, (0, 0, 0, 0, 0, out.shape[1] - pooled.shape[1]))
        return F.relu(pooled + out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._conv(x, "conv32_down", 2, True, False)
        out = F.max_pool2d(out, 3, 2)
        for name in ("conv32_1", "conv32_2", "conv32_3"):
            out = self._residual(out, name)
        out = self._residual_down(out, "conv64_down")
        for name in ("conv64_1", "conv64_2", "conv64_3"):
            out = self._residual(out, name)
        out = self._residual_down(out, "conv128_down")
        for name in ("conv128_1", "conv128_2"):
            out = self._residual(out, name)
        out = self._residual_down(out, "conv256_down")
        for name in ("conv256_1", "conv256_2"):
            out = self._residual(out, name)
        out = self._residual_down(out, "conv256_down_out")
        pooled = out.mean(dim=(2, 3))
        return pooled @ self._w("fc")
