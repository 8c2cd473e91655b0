"""Turn a PyTorch face recogniser into an ONNX "gradient graph" (build time only).

Every recogniser graph Veil ships has the same contract:

- input  `image`     float32 [N,3,112,112], RGB, values in [0,1], ArcFace-aligned crop;
- input  `target`    float32 [N,D], unit-norm embedding;
- output `embedding` float32 [N,D], L2-normalised;
- output `loss`      float32 [N]   = cosine(embedding, target);
- output `grad`      float32 [N,3,112,112] = d(sum(loss)) / d(image).

The model-specific preprocessing (channel order, scaling, resize to the native size) lives
inside `preprocess`, so callers never know a model's quirks.

How: the forward and backward pass are traced together into one aten graph with
`make_fx` (core aten decompositions plus our own decomposition of `convolution_backward`
into a transposed convolution, which the ONNX exporter has no rule for), then exported with
the dynamo ONNX exporter with a dynamic batch dimension.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def stub_torchvision() -> None:
    """onnx2torch imports torchvision for NMS/RoIAlign converters we never use.

    The torchvision wheel that pip pairs with torch 2.13 CPU fails to import (missing C
    operators), so a stand-in module keeps onnx2torch importable.
    """
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "__veil_stub__"):
        return
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")

    def _missing(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("torchvision is stubbed at build time")

    ops.roi_align = _missing  # type: ignore[attr-defined]
    ops.nms = _missing  # type: ignore[attr-defined]
    ops.box_convert = _missing  # type: ignore[attr-defined]
    tv.ops = ops  # type: ignore[attr-defined]
    tv.__veil_stub__ = True  # type: ignore[attr-defined]
    sys.modules["torchvision"] = tv
    sys.modules["torchvision.ops"] = ops


def _decompositions() -> dict[Any, Callable[..., Any]]:
    import torch
    from torch._decomp import core_aten_decompositions

    aten = torch.ops.aten
    table: dict[Any, Callable[..., Any]] = dict(core_aten_decompositions())

    def conv_backward(
        grad_output: Any,
        inp: Any,
        weight: Any,
        bias_sizes: Any,
        stride: list[int],
        padding: list[int],
        dilation: list[int],
        transposed: bool,
        output_padding: list[int],
        groups: int,
        output_mask: list[bool],
    ) -> tuple[Any, Any, Any]:
        # Only the input gradient is wanted: weights are frozen, so the masks for weight
        # and bias are False. A transposed convolution with the same weight is exactly
        # d(conv)/d(input).
        if transposed or output_mask[1] or output_mask[2]:
            raise NotImplementedError("only grad_input of a plain convolution is supported")
        nd = len(stride)
        out_pad = []
        for i in range(nd):
            size_in = inp.shape[2 + i]
            size_out = grad_output.shape[2 + i]
            k = weight.shape[2 + i]
            full = (size_out - 1) * stride[i] - 2 * padding[i] + dilation[i] * (k - 1) + 1
            out_pad.append(size_in - full)
        grad_input = aten.convolution.default(
            grad_output,
            weight,
            None,
            stride,
            padding,
            dilation,
            True,
            out_pad,
            groups,
        )
        return grad_input, None, None

    def max_pool_backward(
        grad_output: Any,
        inp: Any,
        kernel_size: Any,
        stride: Any,
        padding: Any,
        dilation: Any,
        ceil_mode: bool,
        indices: Any,
    ) -> Any:
        # The forward pass's argmax indices are flat per (n, c) plane: route each output
        # gradient back to its argmax with a scatter-add (ONNX ScatterElements, add).
        n, c, h, w = inp.shape
        flat_grad = grad_output.reshape(n, c, -1)
        flat_idx = indices.reshape(n, c, -1)
        grad_input = inp.new_zeros((n, c, h * w)).scatter_add(2, flat_idx, flat_grad)
        return grad_input.reshape(n, c, h, w)

    table[aten.convolution_backward.default] = conv_backward
    table[aten.max_pool2d_with_indices_backward.default] = max_pool_backward
    return table


def fast_prelu(x: Any, slope: Any) -> Any:
    """PReLU written as x * where(x > 0, 1, slope), for the gradient graphs' speed.

    Same values as `torch.nn.functional.prelu`, but autograd's backward is one multiply by
    the factor the forward pass already computed; torch's own decomposition traces a
    Greater, a Mul and a Where forward and a Mul and a Where backward, and ONNX Runtime's
    Where costs about three Muls. `slope` broadcasts against NCHW `x` ([1,C,1,1] or scalar).
    """
    import torch

    return x * torch.where(x > 0, 1.0, slope)


def streamline(net: Any) -> Any:
    """An onnx2torch `GraphModule` rewritten for cheaper gradient graphs, same values.

    - Each BatchNorm that follows a convolution is folded into it. ONNX Runtime fuses them
      in the forward pass by itself, but the traced backward keeps the BatchNorm's scale as
      a separate Mul over a whole activation map.
    - Each PReLU becomes `fast_prelu`.
    """
    import torch
    from torch.fx.experimental.optimization import fuse

    class FastPReLU(torch.nn.Module):
        def forward(self, x: Any, slope: Any) -> Any:
            # ONNX slopes are [C], [C,1,1] or scalar; [C] would broadcast along the width.
            return fast_prelu(x, slope.reshape(-1, 1, 1) if slope.dim() == 1 else slope)

    fused = fuse(net.eval(), no_trace=True)
    for name, module in list(fused.named_modules()):
        if type(module).__name__ == "OnnxPReLU":
            parent_name, _, child = name.rpartition(".")
            parent = fused.get_submodule(parent_name) if parent_name else fused
            setattr(parent, child, FastPReLU())
    fused.recompile()
    return fused


class GradientGraph:
    """Wraps `net` (a torch Module mapping preprocessed input -> raw embedding)."""

    def __init__(self, net: Any, preprocess: Callable[[Any], Any]) -> None:
        import torch

        self.net = net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.preprocess = preprocess
        self.torch = torch

    def embed(self, image: Any) -> Any:
        torch = self.torch
        raw = self.net(self.preprocess(image))
        raw = raw.reshape(raw.shape[0], -1)
        return raw / torch.sqrt((raw * raw).sum(dim=1, keepdim=True) + 1e-12)

    def forward_backward(self, image: Any, target: Any) -> tuple[Any, Any, Any]:
        torch = self.torch
        with torch.enable_grad():
            image = image.detach().requires_grad_(True)
            embedding = self.embed(image)
            loss = (embedding * target).sum(dim=1)
            (grad,) = torch.autograd.grad(loss.sum(), image)
        return embedding.detach(), loss.detach(), grad

    def export(self, path: str, dim: int, batch: int = 2) -> None:
        """Trace forward+backward and export to ONNX with a dynamic batch."""
        import torch
        from torch.fx.experimental.proxy_tensor import make_fx

        image = torch.rand(batch, 3, 112, 112)
        target = torch.nn.functional.normalize(torch.randn(batch, dim), dim=1)

        def forward_backward(image: Any, target: Any) -> tuple[Any, Any, Any]:
            return self.forward_backward(image, target)

        traced = make_fx(
            forward_backward,
            decomposition_table=_decompositions(),
            tracing_mode="symbolic",
            _allow_non_fake_inputs=True,
        )(image, target)

        class Wrapped(torch.nn.Module):
            def __init__(self, gm: Any) -> None:
                super().__init__()
                self.gm = gm

            def forward(self, image: Any, target: Any) -> Any:
                return self.gm(image, target)

        n = torch.export.Dim("N", min=1, max=256)
        torch.onnx.export(
            Wrapped(traced),
            (image, target),
            path,
            input_names=["image", "target"],
            output_names=["embedding", "loss", "grad"],
            dynamic_shapes={"image": {0: n}, "target": {0: n}},
            dynamo=True,
            optimize=True,
            external_data=False,
        )
