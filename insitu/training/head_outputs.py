"""Expose a model's MC-dropout head to the numba kernel of :mod:`insitu.model.mc_head`.

The exported graph (:mod:`.export`) multiplies the head's input by the ``dropout_mask``
input and runs the head on (atoms x passes) rows. When that head is one dense layer
(``Mul(mask) -> Reshape -> Gemm -> Softmax``, the MLP's), :func:`expose_head` adds three
graph outputs: the dropout's input and the layer's weight and bias. Nothing else changes,
so every existing output is computed as before. A deeper head (the Neighbors Map CNNs':
dense, ReLU, BatchNorm, dense) is left alone: the kernel was measured slower than
onnxruntime there, its masks being a small part of those networks' cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from insitu.model.mc_dropout import MASK_INPUT
from insitu.model.mc_head import HEAD_BIAS, HEAD_INPUT, HEAD_WEIGHT

__all__ = ["expose_head", "linear_head", "expose_head_file", "hide_head"]


def _readers(graph, name: str) -> list:
    """Nodes reading tensor ``name``, Shape nodes left out (they read its shape only)."""
    return [n for n in graph.node if name in n.input and n.op_type != "Shape"]


def _attribute(node, name: str, default):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def linear_head(proto) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(name of the dropout's input tensor, weight (K, units), bias (K,)) of a graph whose
    MC-dropout head is one dense layer; None for any other graph."""
    from onnx import numpy_helper

    graph = proto.graph
    producers = {o: n for n in graph.node for o in n.output}
    muls = [n for n in _readers(graph, MASK_INPUT) if n.op_type == "Mul"]
    if len(muls) != 1:
        return None
    source = producers.get([i for i in muls[0].input if i != MASK_INPUT][0])
    if source is None or source.op_type != "Unsqueeze":
        return None
    chain, node = [], muls[0]
    for _ in range(3):  # Reshape, Gemm, Softmax
        readers = _readers(graph, node.output[0])
        if len(readers) != 1:
            return None
        node = readers[0]
        chain.append(node)
    if [n.op_type for n in chain] != ["Reshape", "Gemm", "Softmax"]:
        return None
    gemm = chain[1]
    if (_attribute(gemm, "alpha", 1.0), _attribute(gemm, "beta", 1.0),
            _attribute(gemm, "transA", 0)) != (1.0, 1.0, 0) or len(gemm.input) != 3:
        return None
    inits = {i.name: i for i in graph.initializer}
    if gemm.input[1] not in inits or gemm.input[2] not in inits:
        return None
    weight = numpy_helper.to_array(inits[gemm.input[1]])
    weight = weight if _attribute(gemm, "transB", 0) else weight.T
    return source.input[0], weight, numpy_helper.to_array(inits[gemm.input[2]])


def expose_head(proto) -> bool:
    """Add :data:`HEAD_INPUT`, :data:`HEAD_WEIGHT` and :data:`HEAD_BIAS` as graph outputs,
    in place; False (graph unchanged) when the head is not one dense layer or is exposed
    already."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    exposed = any(HEAD_INPUT in n.output for n in graph.node)
    found = None if exposed else linear_head(proto)
    if found is None:
        return False
    source, weight, bias = found
    graph.node.append(helper.make_node("Identity", [source], [HEAD_INPUT],
                                       name="mc_head/input"))
    graph.output.append(helper.make_tensor_value_info(HEAD_INPUT, TensorProto.FLOAT,
                                                      ["batch", int(weight.shape[1])]))
    for name, value in ((HEAD_WEIGHT, weight), (HEAD_BIAS, bias)):
        graph.initializer.append(numpy_helper.from_array(
            np.ascontiguousarray(value, np.float32), f"mc_head/{name}"))
        graph.node.append(helper.make_node("Identity", [f"mc_head/{name}"], [name],
                                           name=f"mc_head/{name}/out"))
        graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                                          list(value.shape)))
    return True


def expose_head_file(path) -> bool:
    """:func:`expose_head` on the model file ``path``, rewritten in place (metadata kept);
    False when there was nothing to expose (the file is untouched)."""
    import onnx

    proto = onnx.load(str(path))
    if not expose_head(proto):
        return False
    onnx.checker.check_model(proto)
    tmp = Path(path).with_suffix(".tmp.onnx")
    onnx.save(proto, str(tmp))
    tmp.replace(path)
    return True


def hide_head(proto) -> None:
    """Remove what :func:`expose_head` added, in place: the graph of a model exported
    before, whose MC passes run through onnxruntime (benchmarks compare the two paths)."""
    graph = proto.graph
    for field in (graph.output, graph.node, graph.initializer):
        keep = [e for e in field if not e.name.startswith("mc_head")]
        del field[:]
        field.extend(keep)
