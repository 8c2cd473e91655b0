"""A minimal reader for frozen TensorFlow GraphDef files (build time only).

Decodes the protobuf wire format directly (GraphDef -> NodeDef -> AttrValue ->
TensorProto), so no TensorFlow install is needed. Only the fields frozen inference
graphs use are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# tensorflow/core/framework/types.proto
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 9: np.int64, 10: np.bool_}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) for every field of one message."""
    out = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val = buf[pos : pos + 8]
            pos += 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val = buf[pos : pos + n]
            pos += n
        elif wt == 5:
            val = buf[pos : pos + 4]
            pos += 4
        else:
            raise ValueError(f"wire type {wt}")
        out.append((num, wt, val))
    return out


def _shape(buf: bytes) -> list[int]:
    dims = []
    for num, _, val in fields(buf):
        if num == 2:  # Dim
            size = 0
            for n2, _, v2 in fields(val):
                if n2 == 1:
                    size = v2 - (1 << 64) if v2 >= 1 << 63 else v2
            dims.append(size)
    return dims


def _tensor(buf: bytes) -> np.ndarray:
    dtype = np.float32
    shape: list[int] = []
    content = b""
    floats: list[float] = []
    ints: list[int] = []
    for num, wt, val in fields(buf):
        if num == 1:
            dtype = DTYPES[val]
        elif num == 2:
            shape = _shape(val)
        elif num == 4:
            content = val
        elif num == 5:  # float_val
            if wt == 2:
                floats.extend(np.frombuffer(val, dtype=np.float32).tolist())
            else:
                floats.append(float(np.frombuffer(val, dtype=np.float32)[0]))
        elif num in (7, 10):  # int_val, int64_val
            if wt == 2:
                p = 0
                while p < len(val):
                    v, p = _varint(val, p)
                    ints.append(v - (1 << 64) if v >= 1 << 63 else v)
            else:
                ints.append(val - (1 << 64) if val >= 1 << 63 else val)
    count = int(np.prod(shape)) if shape else 1
    if content:
        return np.frombuffer(content, dtype=dtype).reshape(shape).copy()
    values = floats if floats else ints
    arr = np.array(values, dtype=dtype)
    if arr.size == count:
        return arr.reshape(shape)
    return np.full(shape, arr[0] if arr.size else 0, dtype=dtype)


def _attr(buf: bytes) -> Any:
    for num, _, val in fields(buf):
        if num == 2:
            return val.decode()
        if num == 3:
            return val - (1 << 64) if val >= 1 << 63 else val
        if num == 4:
            return float(np.frombuffer(val, dtype=np.float32)[0])
        if num == 5:
            return bool(val)
        if num == 6:
            return DTYPES.get(val, val)
        if num == 7:
            return _shape(val)
        if num == 8:
            return _tensor(val)
        if num == 1:  # ListValue
            items: list[Any] = []
            for n2, wt2, v2 in fields(val):
                if n2 == 2:
                    items.append(v2.decode())
                elif n2 == 3:
                    if wt2 == 2:
                        p = 0
                        while p < len(v2):
                            v, p = _varint(v2, p)
                            items.append(v)
                    else:
                        items.append(v2)
                elif n2 == 4:
                    items.extend(np.frombuffer(v2, dtype=np.float32).tolist())
            return items
    return None


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str] = field(default_factory=list)
    attr: dict[str, Any] = field(default_factory=dict)


def read_graphdef(path: str) -> list[Node]:
    with open(path, "rb") as f:
        data = f.read()
    nodes = []
    for num, _, val in fields(data):
        if num != 1:
            continue
        node = Node("", "")
        for n2, _, v2 in fields(val):
            if n2 == 1:
                node.name = v2.decode()
            elif n2 == 2:
                node.op = v2.decode()
            elif n2 == 3:
                node.inputs.append(v2.decode())
            elif n2 == 5:  # map entry: key=1, value=2
                key, value = "", None
                for n3, _, v3 in fields(v2):
                    if n3 == 1:
                        key = v3.decode()
                    elif n3 == 2:
                        value = _attr(v3)
                node.attr[key] = value
        nodes.append(node)
    return nodes
