"""Rewrites of exported gradient graphs that compute the same values faster on ONNX Runtime CPU.

The traced backward pass of a convolution is a `ConvTranspose`. ONNX Runtime's CPU
`ConvTranspose` is an im2col/col2im kernel without the blocked (NCHWc) layout that its `Conv`
uses, so every one of them costs its own time plus a layout reorder on each side. A stride-1
transposed convolution is exactly a convolution with the kernel transposed per group and
flipped in space, padded by `k - 1 - p`: that is what `convtranspose_to_conv` writes. The
kernel rearrangement is expressed as Reshape/Transpose/Slice nodes on the weight, which ONNX
Runtime folds into a constant when the session is created, so the weights file is unchanged.

    build/work/venv/bin/python build/models/graph_speedups.py models/sface.grad.onnx [...]

rewrites the given graphs in place and checks each against the original on random inputs.
`build/models/export_models.py` applies the same rewrite to every graph it exports.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# Largest |difference| accepted between the original and the rewritten graph's gradient,
# relative to the gradient's own largest magnitude (float32 summation order differs).
MAX_RELATIVE_ERROR = 1e-4


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _weight_dims(model: Any, name: str) -> list[int] | None:
    """Dims of an initializer, also through the fp16 storage Cast (`<name>__fp16`)."""
    for init in model.graph.initializer:
        if init.name in (name, name + "__fp16"):
            return list(init.dims)
    return None


def convtranspose_to_conv(model: Any) -> int:
    """Replace every stride-1 ConvTranspose by the equivalent Conv; returns how many."""
    import numpy as np
    from onnx import helper, numpy_helper

    nodes = list(model.graph.node)
    new_nodes: list[Any] = []
    extra_inits: list[Any] = []
    rewritten = 0
    for index, node in enumerate(nodes):
        if node.op_type != "ConvTranspose":
            new_nodes.append(node)
            continue
        attrs = _attrs(node)
        dims = _weight_dims(model, node.input[1])
        kernel = list(attrs.get("kernel_shape") or (dims[2:] if dims else []))
        strides = list(attrs.get("strides", [1] * len(kernel)))
        dilations = list(attrs.get("dilations", [1] * len(kernel)))
        output_padding = list(attrs.get("output_padding", [0] * len(kernel)))
        pads = list(attrs.get("pads", [0] * (2 * len(kernel))))
        conv_pads = [k - 1 - p for k, p in zip(kernel * 2, pads, strict=True)]
        if (
            dims is None
            or len(dims) != 4
            or any(s != 1 for s in strides)
            or any(d != 1 for d in dilations)
            or any(o != 0 for o in output_padding)
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or "output_shape" in attrs
            or any(p < 0 for p in conv_pads)
        ):
            new_nodes.append(node)
            continue
        group = int(attrs.get("group", 1))
        c_in, c_out_per_group, kh, kw = dims
        prefix = f"{node.name or node.output[0]}__as_conv{index}"
        weight = node.input[1]
        if c_out_per_group == 1 and c_in == group:
            # Depthwise: [C,1,kh,kw] is already the Conv layout.
            arranged = weight
        elif group == 1:
            arranged = prefix + "_w_t"
            new_nodes.append(helper.make_node("Transpose", [weight], [arranged], perm=[1, 0, 2, 3]))
        else:
            shape5 = numpy_helper.from_array(
                np.array([group, c_in // group, c_out_per_group, kh, kw], dtype=np.int64),
                prefix + "_shape5",
            )
            shape4 = numpy_helper.from_array(
                np.array([group * c_out_per_group, c_in // group, kh, kw], dtype=np.int64),
                prefix + "_shape4",
            )
            extra_inits += [shape5, shape4]
            new_nodes += [
                helper.make_node("Reshape", [weight, shape5.name], [prefix + "_w5"]),
                helper.make_node(
                    "Transpose", [prefix + "_w5"], [prefix + "_w5t"], perm=[0, 2, 1, 3, 4]
                ),
                helper.make_node("Reshape", [prefix + "_w5t", shape4.name], [prefix + "_w_t"]),
            ]
            arranged = prefix + "_w_t"
        if kh > 1 or kw > 1:
            consts = {
                "starts": [-1, -1],
                "ends": [np.iinfo(np.int64).min] * 2,
                "axes": [2, 3],
                "steps": [-1, -1],
            }
            names = []
            for key, values in consts.items():
                tensor = numpy_helper.from_array(
                    np.array(values, dtype=np.int64), f"{prefix}_{key}"
                )
                extra_inits.append(tensor)
                names.append(tensor.name)
            new_nodes.append(helper.make_node("Slice", [arranged, *names], [prefix + "_w_flip"]))
            arranged = prefix + "_w_flip"
        conv_inputs = [node.input[0], arranged] + ([node.input[2]] if len(node.input) > 2 else [])
        new_nodes.append(
            helper.make_node(
                "Conv",
                conv_inputs,
                list(node.output),
                name=prefix,
                kernel_shape=[kh, kw],
                pads=conv_pads,
                group=group,
                strides=[1, 1],
            )
        )
        rewritten += 1
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    model.graph.initializer.extend(extra_inits)
    return rewritten


def speed_up(model: Any) -> dict[str, int]:
    """Apply every rewrite in this module to a loaded ONNX model (in place)."""
    return {"convtranspose_to_conv": convtranspose_to_conv(model)}


def _session(path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def compare(original: Path, rewritten: Path, batch: int = 2) -> float:
    """Largest |grad difference| / max |grad| between two graphs on random inputs."""
    import numpy as np

    before, after = _session(original), _session(rewritten)
    rng = np.random.default_rng(0)
    feeds: dict[str, Any] = {}
    for spec in before.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in spec.shape]
        data = rng.random(shape, dtype=np.float32)
        if spec.name == "target":
            data = data - 0.5
            data /= np.linalg.norm(data, axis=1, keepdims=True)
        feeds[spec.name] = data
    worst = 0.0
    for a, b in zip(before.run(None, feeds), after.run(None, feeds), strict=True):
        scale = float(np.max(np.abs(a))) or 1.0
        worst = max(worst, float(np.max(np.abs(a - b))) / scale)
    return worst


def rewrite_file(path: Path) -> tuple[dict[str, int], float]:
    """Rewrite one graph file in place (external weights untouched); verified before saving."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts = speed_up(model)
    # Saved beside the original: ONNX Runtime only reads external weights from the graph's
    # own folder.
    candidate = path.with_name(path.name + ".candidate")
    onnx.save(model, str(candidate))
    try:
        error = compare(path, candidate)
        if error > MAX_RELATIVE_ERROR:
            raise SystemExit(f"{path}: rewritten graph differs by {error:.2e} (relative)")
        candidate.replace(path)
    finally:
        candidate.unlink(missing_ok=True)
    return counts, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graphs", nargs="+", type=Path)
    parser.add_argument(
        "--update-manifest",
        action="store_true",
        help="record the rewritten files' sha256 and size in models/manifest.json",
    )
    args = parser.parse_args(argv)
    for path in args.graphs:
        counts, error = rewrite_file(path)
        print(f"{path}: {counts}, max relative difference {error:.2e}")
    if args.update_manifest:
        _update_manifest(args.graphs)
    return 0


def _update_manifest(paths: list[Path]) -> None:
    import json

    from export_models import MODELS, file_entry, update_manifest

    rewritten = {p.name: p for p in paths if p.resolve().parent == MODELS.resolve()}
    if len(rewritten) != len(paths):
        raise SystemExit(f"--update-manifest needs graphs in {MODELS}")
    manifest = json.loads((MODELS / "manifest.json").read_text())
    for name, entry in manifest["models"].items():
        if not any(item["path"] in rewritten for item in entry["files"]):
            continue
        entry["files"] = [
            file_entry(rewritten[item["path"]], item["kind"]) if item["path"] in rewritten else item
            for item in entry["files"]
        ]
        entry.setdefault("produced_by", {})["rewrites"] = (
            "build/models/graph_speedups.py (stride-1 ConvTranspose -> Conv)"
        )
        update_manifest(name, entry)


if __name__ == "__main__":
    sys.exit(main())
