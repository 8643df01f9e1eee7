"""Single-path cells as ONNX models assembled from ops exported once per context.

Exporting every sampled cell through ``torch.onnx.export`` traces the whole cell each time.
A context's :class:`~lenna_core.latency.blocks.CellBank` holds every candidate op of every edge,
so each can be exported once; a sampled cell is then its two preprocessing graphs, the graph of
the chosen op on each edge (names prefixed so they cannot clash), a ``Sum`` per node and a
``Concat``: graph surgery with ``onnx.helper``, no tracing.
"""

from __future__ import annotations

import onnx
from onnx import GraphProto, NodeProto, TensorProto, helper
from torch import nn

from lenna_core.latency.blocks import CellBank
from lenna_core.latency.onnx_export import OPSET, export_onnx
from lenna_core.space.single_path import single_path_edges

_Part = tuple[list[NodeProto], list[TensorProto]]


def _rename(graph: GraphProto, source: str, output: str, prefix: str) -> _Part:
    """``graph``'s nodes and weights reading ``source`` and writing ``output``, every other
    name prefixed with ``prefix``."""
    old_in, old_out = graph.input[0].name, graph.output[0].name
    if old_in == old_out or not graph.node:  # a skip connection exports as no node at all
        return [helper.make_node("Identity", [source], [output], name=prefix + "id")], []

    def name(value: str) -> str:
        if not value:  # an optional input left out
            return value
        return source if value == old_in else output if value == old_out else prefix + value

    nodes = []
    for node in graph.node:
        renamed = NodeProto()
        renamed.CopyFrom(node)
        renamed.name = prefix + node.name
        renamed.input[:] = [name(v) for v in node.input]
        renamed.output[:] = [name(v) for v in node.output]
        nodes.append(renamed)
    weights = []
    for tensor in graph.initializer:
        renamed = TensorProto()
        renamed.CopyFrom(tensor)
        renamed.name = prefix + tensor.name
        weights.append(renamed)
    return nodes, weights


class OnnxCellComposer:
    """Every single-path cell of ``bank``'s context as an ONNX model, from graphs of the bank's
    modules exported once (inputs ``input0``, ``input1``; output ``output``)."""

    def __init__(self, bank: CellBank) -> None:
        self.bank = bank
        context = bank.context
        shape0, shape1 = context.input_shapes
        batch, C, side = context.batch_size, context.C, context.spatial
        out_side = side // 2 if context.reduction else side
        self.input_shapes = (shape0, shape1)
        self.output_shape = (batch, len(bank.space.concat) * C, out_side, out_side)
        self.ir_version = 0
        self.preprocess = [
            _rename(self._graph(bank.preprocess[i], shape), f"input{i}", f"state{i}", f"p{i}_")
            for i, shape in enumerate((shape0, shape1))]
        # Nodes 0 and 1 (the preprocessed inputs) keep the input size; later ones the output's.
        state_shapes = [(batch, C, side, side)] * 2 + [(batch, C, out_side, out_side)] * (
            max(dst for _, dst in bank.space.edges) - 1)
        self.ops = [
            [_rename(self._graph(op, state_shapes[src]), f"state{src}", f"edge{e}", f"e{e}k{k}_")
             for k, op in enumerate(ops)]
            for e, ((src, _), ops) in enumerate(zip(bank.space.edges, bank.ops))]

    def _graph(self, module: nn.Module, shape: tuple[int, ...]) -> GraphProto:
        model = onnx.load_from_string(export_onnx(module, [shape]))
        # The composed model claims the IR version its parts were exported with, one the
        # runtime reads (onnx's own default may be newer).
        self.ir_version = model.ir_version
        return model.graph

    def compose(self, active: list[int]) -> bytes:
        """The serialized ONNX model of the single-path cell with op ``active[e]`` on edge ``e``."""
        edges = single_path_edges(active, self.bank.space)  # checks ``active``
        nodes: list[NodeProto] = []
        weights: list[TensorProto] = []
        for part_nodes, part_weights in self.preprocess:
            nodes += part_nodes
            weights += part_weights
        # ONNX wants the nodes in topological order: each node's edges, then their sum.
        for dst in sorted({dst for _, _, dst in edges}):
            incoming = [e for e, (_, _, d) in enumerate(edges) if d == dst]
            for e in incoming:
                part_nodes, part_weights = self.ops[e][active[e]]
                nodes += part_nodes
                weights += part_weights
            nodes.append(helper.make_node("Sum", [f"edge{e}" for e in incoming],
                                          [f"state{dst}"], name=f"node{dst}"))
        nodes.append(helper.make_node(
            "Concat", [f"state{i}" for i in self.bank.space.concat], ["output"], axis=1,
            name="concat"))
        graph = helper.make_graph(
            nodes, "single_path_cell",
            [helper.make_tensor_value_info(f"input{i}", TensorProto.FLOAT, shape)
             for i, shape in enumerate(self.input_shapes)],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, self.output_shape)],
            weights)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  ir_version=self.ir_version)
        return model.SerializeToString()
