"""The batch model: Silero's own graph run once per window inside one ONNX ``Scan``.

The v6 export fixes its recurrent state to a batch of one, so the windows of many calls cannot
share one forward pass. Scored one ``run`` at a time in a worker thread, each window costs the
worker a return to Python, and with it the GIL, which the busy event loop then holds for up to
the interpreter's switch interval (5 ms): measured at 200 calls, a worker spent two thirds of its
time waiting for the GIL. Wrapped in ``Scan``, onnxruntime loops over the windows itself: one
``run`` per batch, the GIL released once, and each window is still the unchanged graph with its
own call's state (bit-identical results, and a little faster per window).

The wrapper is written as protobuf bytes around the verified model's own bytes, so no ONNX
tooling is needed at run time. Only the fields used here are encoded (see onnx.proto).
"""

from __future__ import annotations

from collections.abc import Iterator

INPUTS = ("windows", "hs", "cs")
"""The batch model's inputs: ``[batch, 1, 576]`` windows, ``[batch, 1, 1, 128]`` h and c."""
OUTPUTS = ("probs", "hns", "cns")
"""Its outputs: ``[batch, 1]`` probabilities, the next ``h`` and ``c`` per window."""

# Field numbers of onnx.proto.
_MODEL_GRAPH = 7
_GRAPH_NODE, _GRAPH_NAME, _GRAPH_INPUT, _GRAPH_OUTPUT = 1, 2, 11, 12
_NODE_INPUT, _NODE_OUTPUT, _NODE_NAME, _NODE_OP, _NODE_ATTRIBUTE = 1, 2, 3, 4, 5
_ATTR_NAME, _ATTR_INT, _ATTR_GRAPH, _ATTR_TYPE = 1, 3, 6, 20
_ATTR_IS_INT, _ATTR_IS_GRAPH = 2, 5
_VALUE_NAME, _VALUE_TYPE = 1, 2
_TYPE_TENSOR, _TENSOR_ELEM, _TENSOR_SHAPE, _SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 1, 1, 2, 1, 1, 2
_FLOAT = 1
_VARINT, _BYTES = 0, 2


def batch_model(model: bytes) -> bytes:
    """``model`` (a Silero ONNX file with inputs input/h/c and outputs speech_probs/hn/cn) wrapped
    to score a batch of windows in one run: see :data:`INPUTS` and :data:`OUTPUTS`."""
    graph: bytes | None = None
    kept = bytearray()  # every other field of the model (versions, opsets) as it was
    for number, value, raw in _fields(model):
        if number == _MODEL_GRAPH and isinstance(value, bytes):
            graph = value
        else:
            kept += raw
    if graph is None:
        raise ValueError("not an ONNX model: no graph")
    scan = (
        b"".join(_bytes(_NODE_INPUT, name.encode()) for name in INPUTS)
        + b"".join(_bytes(_NODE_OUTPUT, name.encode()) for name in OUTPUTS)
        + _bytes(_NODE_NAME, b"windows_of_many_calls")
        + _bytes(_NODE_OP, b"Scan")
        + _bytes(_NODE_ATTRIBUTE, _bytes(_ATTR_NAME, b"body") + _bytes(_ATTR_GRAPH, graph)
                 + _varint_field(_ATTR_TYPE, _ATTR_IS_GRAPH))
        + _bytes(_NODE_ATTRIBUTE, _bytes(_ATTR_NAME, b"num_scan_inputs") + _varint_field(_ATTR_INT, len(INPUTS))
                 + _varint_field(_ATTR_TYPE, _ATTR_IS_INT))
    )
    shapes: tuple[list[int | str], ...] = (["batch", 1, 576], ["batch", 1, 1, 128], ["batch", 1, 1, 128])
    outer = (
        _bytes(_GRAPH_NODE, scan)
        + _bytes(_GRAPH_NAME, b"silero_batch")
        + b"".join(_bytes(_GRAPH_INPUT, _value_info(name, dims)) for name, dims in zip(INPUTS, shapes, strict=True))
        + b"".join(_bytes(_GRAPH_OUTPUT, _value_info(name, None)) for name in OUTPUTS)
    )
    return bytes(kept) + _bytes(_MODEL_GRAPH, outer)


def _value_info(name: str, dims: list[int | str] | None) -> bytes:
    """A float tensor's name and type; ``dims`` None leaves the shape to the model."""
    tensor = _varint_field(_TENSOR_ELEM, _FLOAT)
    if dims is not None:
        tensor += _bytes(_TENSOR_SHAPE, b"".join(
            _bytes(_SHAPE_DIM, _bytes(_DIM_PARAM, d.encode()) if isinstance(d, str) else _varint_field(_DIM_VALUE, d))
            for d in dims))
    return _bytes(_VALUE_NAME, name.encode()) + _bytes(_VALUE_TYPE, _bytes(_TYPE_TENSOR, tensor))


def _fields(message: bytes) -> Iterator[tuple[int, int | bytes, bytes]]:
    """The top-level fields of a protobuf message: (number, value, the field's own bytes)."""
    i = 0
    while i < len(message):
        start = i
        key, i = _read_varint(message, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, i = _read_varint(message, i)
        elif wire == _BYTES:
            size, i = _read_varint(message, i)
            value, i = message[i : i + size], i + size
        elif wire in (1, 5):  # fixed 64 / 32 bits
            width = 8 if wire == 1 else 4
            value, i = message[i : i + width], i + width
        else:
            raise ValueError(f"not an ONNX model: protobuf wire type {wire}")
        if i > len(message):
            raise ValueError("not an ONNX model: truncated")
        yield number, value, message[start:i]


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if not value:
            out.append(low)
            return bytes(out)
        out.append(low | 0x80)


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3 | _VARINT) + _varint(value)


def _bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _BYTES) + _varint(len(payload)) + payload
