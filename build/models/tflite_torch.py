"""Run a float32 TFLite model as a PyTorch module (build time only).

Only the operators that MobileFaceNet uses are implemented (CONV_2D,
DEPTHWISE_CONV_2D, ADD, SUB, MUL, RELU, ABS, RESHAPE); anything else raises. Tensors
are kept NCHW inside torch; the batch is dynamic, unlike the .tflite file which pins it.
Parsing uses the `tflite` package (flatbuffer bindings for the TFLite schema).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import tflite
import torch
import torch.nn.functional as F

from gradgraph import fast_prelu

_OPS = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
_FLOAT32 = tflite.TensorType.FLOAT32


def _same_pad(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    eff = (k - 1) * dilation + 1
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


def _activation(x: torch.Tensor, fused: int) -> torch.Tensor:
    if fused == tflite.ActivationFunctionType.NONE:
        return x
    if fused == tflite.ActivationFunctionType.RELU:
        return F.relu(x)
    if fused == tflite.ActivationFunctionType.RELU6:
        return F.hardtanh(x, 0.0, 6.0)
    raise NotImplementedError(f"fused activation {fused}")


class TFLiteModule(torch.nn.Module):
    """`forward(x)` with x float32 NCHW; returns the model's (first) output tensor."""

    def __init__(self, path: str) -> None:
        super().__init__()
        with open(path, "rb") as f:
            buf = f.read()
        model = tflite.Model.GetRootAsModel(buf, 0)
        graph = model.Subgraphs(0)
        self.input_index = int(graph.Inputs(0))
        self.output_index = int(graph.Outputs(0))
        self.tflite_batch = int(graph.Tensors(self.input_index).ShapeAsNumpy()[0])
        self.ops: list[tuple[str, list[int], int, Any]] = []
        consts: dict[int, np.ndarray] = {}
        for i in range(graph.TensorsLength()):
            t = graph.Tensors(i)
            data = model.Buffers(t.Buffer()).DataAsNumpy()
            if isinstance(data, np.ndarray) and data.size:
                if t.Type() != _FLOAT32:
                    continue  # e.g. int32 RESHAPE targets, read from the output shape instead
                shape = t.ShapeAsNumpy() if t.ShapeLength() else []
                consts[i] = np.frombuffer(data.tobytes(), dtype=np.float32).reshape(shape)
        self._const_shapes = {i: a.shape for i, a in consts.items()}
        for j in range(graph.OperatorsLength()):
            op = graph.Operators(j)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = _OPS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
            inputs = [int(v) for v in op.InputsAsNumpy()]
            output = int(op.OutputsAsNumpy()[0])
            opts = op.BuiltinOptions()
            params: dict[str, Any] = {}
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                cls = tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions
                o = cls()
                o.Init(opts.Bytes, opts.Pos)
                w = consts[inputs[1]]
                # CONV_2D [O,kh,kw,I] and DEPTHWISE [1,kh,kw,O] both become [O,I/g,kh,kw].
                order = (0, 3, 1, 2) if name == "CONV_2D" else (3, 0, 1, 2)
                weight = w.transpose(order)
                params = {
                    "stride": (o.StrideH(), o.StrideW()),
                    "dilation": (o.DilationHFactor(), o.DilationWFactor()),
                    "same": o.Padding() == tflite.Padding.SAME,
                    "act": o.FusedActivationFunction(),
                    "w": f"w{j}",
                    "b": f"b{j}" if len(inputs) > 2 and inputs[2] >= 0 else None,
                    "depthwise": name == "DEPTHWISE_CONV_2D",
                }
                # Padding from the file's static shapes: computing it from traced (symbolic)
                # sizes makes torch's shape reasoning crawl.
                _, in_h, in_w, in_c = (int(v) for v in graph.Tensors(inputs[0]).ShapeAsNumpy())
                kh, kw = weight.shape[2], weight.shape[3]
                pad = (0, 0, 0, 0)
                if params["same"]:
                    top, bottom = _same_pad(in_h, kh, params["stride"][0], params["dilation"][0])
                    left, right = _same_pad(in_w, kw, params["stride"][1], params["dilation"][1])
                    pad = (left, right, top, bottom)
                params["pad"] = pad
                params["groups"] = in_c if name == "DEPTHWISE_CONV_2D" else 1
                self.register_buffer(f"w{j}", torch.from_numpy(weight.copy()))
                if params["b"]:
                    self.register_buffer(f"b{j}", torch.from_numpy(consts[inputs[2]].copy()))
            elif name in ("ADD", "SUB", "MUL"):
                cls = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions}
                act = tflite.ActivationFunctionType.NONE
                if opts is not None:
                    o = cls[name]()
                    o.Init(opts.Bytes, opts.Pos)
                    act = o.FusedActivationFunction()
                params = {"act": act, "consts": {}}
                for k, idx in enumerate(inputs):
                    if idx in consts:
                        c = consts[idx]
                        # NHWC constants become NCHW-broadcastable.
                        if c.ndim == 1:
                            c = c.reshape(1, -1, 1, 1)
                        elif c.ndim == 4:
                            c = c.transpose(0, 3, 1, 2)
                        elif c.ndim == 3:
                            c = c.transpose(2, 0, 1)[None]
                        self.register_buffer(f"c{j}_{k}", torch.from_numpy(c.copy()))
                        params["consts"][k] = f"c{j}_{k}"
            elif name in ("RELU", "ABS"):
                pass
            elif name == "RESHAPE":
                shape = [int(s) for s in graph.Tensors(output).ShapeAsNumpy()]
                params = {"shape": shape}
            else:
                raise NotImplementedError(f"TFLite op {name} is not supported")
            self.ops.append((name, inputs, output, params))
        self.ops = self._fuse_prelu(self.ops)

    def _fuse_prelu(
        self, ops: list[tuple[str, list[int], int, Any]]
    ) -> list[tuple[str, list[int], int, Any]]:
        """Replace TFLite's spelled-out PReLU, relu(x) + c * (x - abs(x)), by one PRELU op
        with slope 2c (`gradgraph.fast_prelu`): 5 ops forward and 8 backward become 3 and 1
        in the gradient graph. Only where the intermediates feed nothing else."""
        by_output = {op[2]: op for op in ops}
        uses: dict[int, int] = {}
        for _, inputs, _, _ in ops:
            for i in inputs:
                uses[i] = uses.get(i, 0) + 1
        none = tflite.ActivationFunctionType.NONE

        def single(idx: int, name: str) -> tuple[str, list[int], int, Any] | None:
            op = by_output.get(idx)
            return op if op and op[0] == name and uses.get(idx) == 1 else None

        dropped: set[int] = set()
        fused: dict[int, tuple[str, list[int], int, Any]] = {}
        for j, (name, inputs, output, p) in enumerate(ops):
            if name != "ADD" or p["consts"] or p["act"] != none or len(inputs) != 2:
                continue
            for relu_idx, mul_idx in (inputs, inputs[::-1]):
                relu, mul = single(relu_idx, "RELU"), single(mul_idx, "MUL")
                if not relu or not mul or mul[3]["act"] != none or len(mul[3]["consts"]) != 1:
                    continue
                ((k_const, const_name),) = mul[3]["consts"].items()
                sub = single(mul[1][1 - k_const], "SUB")
                if not sub or sub[3]["consts"] or sub[3]["act"] != none:
                    continue
                x = relu[1][0]
                absolute = single(sub[1][1], "ABS")
                if sub[1][0] != x or not absolute or absolute[1][0] != x:
                    continue
                self.register_buffer(f"slope{j}", 2.0 * getattr(self, const_name))
                fused[j] = ("PRELU", [x], output, {"slope": f"slope{j}"})
                dropped.update({relu[2], mul[2], sub[2], absolute[2]})
                break
        return [fused.get(j, op) for j, op in enumerate(ops) if op[2] not in dropped]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, torch.Tensor] = {self.input_index: x}
        for name, inputs, output, p in self.ops:
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                h = values[inputs[0]]
                w = getattr(self, p["w"])
                b = getattr(self, p["b"]) if p["b"] else None
                left, right, top, bottom = p["pad"]
                if left == right and top == bottom:
                    y = F.conv2d(h, w, b, p["stride"], (top, left), p["dilation"], p["groups"])
                else:
                    h = F.pad(h, p["pad"])
                    y = F.conv2d(h, w, b, p["stride"], 0, p["dilation"], p["groups"])
                values[output] = _activation(y, p["act"])
            elif name in ("ADD", "SUB", "MUL"):
                a, b2 = (
                    getattr(self, p["consts"][k]) if k in p["consts"] else values[idx]
                    for k, idx in enumerate(inputs)
                )
                y = a + b2 if name == "ADD" else (a - b2 if name == "SUB" else a * b2)
                values[output] = _activation(y, p["act"])
            elif name == "PRELU":
                values[output] = fast_prelu(values[inputs[0]], getattr(self, p["slope"]))
            elif name == "RELU":
                values[output] = F.relu(values[inputs[0]])
            elif name == "ABS":
                values[output] = torch.abs(values[inputs[0]])
            elif name == "RESHAPE":
                h = values[inputs[0]]
                if h.dim() == 4:
                    h = h.permute(0, 2, 3, 1)  # back to NHWC, the layout TFLite reshapes in
                shape = list(p["shape"])
                shape[0] = -1 if shape[0] == self.tflite_batch else shape[0]
                values[output] = h.reshape(shape)
        return values[self.output_index]
