"""A torch module as an ONNX model in memory, or a ValueError naming the op and submodule that
cannot be exported.

The exporter is torch's TorchScript-based one (``dynamo=False``): it traces one eval-mode pass
on inputs of fixed shapes, which is what a latency measurement times, and needs no extra
package. When it fails on an op it names the op but not where it sits; tracing the module once
more with scopes finds the submodule, so the error says which part of a network to change.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence

import torch
from torch import nn

#: The ONNX opset every export uses: every DARTS primitive exports with it, and ONNX Runtime
#: 1.32 runs it.
OPSET = 17


def example_inputs(input_shapes: Sequence[Sequence[int]], seed: int = 0) -> list[torch.Tensor]:
    """Seeded standard-normal float32 inputs of ``input_shapes``."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(tuple(shape), generator=generator) for shape in input_shapes]


def export_onnx(module: nn.Module, input_shapes: Sequence[Sequence[int]],
                opset: int = OPSET) -> bytes:
    """``module`` in eval mode as a serialized ONNX model with inputs ``input0``, ``input1``, ...
    of ``input_shapes``; raises a ValueError naming the op and submodule the exporter refused."""
    inputs = tuple(example_inputs(input_shapes))
    names = [f"input{i}" for i in range(len(inputs))]
    was_training = module.training
    module.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The exporter warns that it is the legacy one (chosen: see the module docstring),
            # and the tracer that the networks' input checks become constants (true, and
            # harmless: the shapes are fixed).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(module, inputs, buffer, dynamo=False, opset_version=opset,
                              input_names=names, training=torch.onnx.TrainingMode.EVAL)
    except Exception as err:  # the exporter raises several types; all mean "cannot export"
        raise ValueError(_explain(module, inputs, opset, err)) from err
    finally:
        module.train(was_training)
    return buffer.getvalue()


def _explain(module: nn.Module, inputs: tuple[torch.Tensor, ...], opset: int,
             err: Exception) -> str:
    found = re.search(r"operator '([\w:.]+)'", str(err))
    what = f"{type(module).__name__} cannot be exported to ONNX (opset {opset})"
    if found is None:
        return f"{what}: {type(err).__name__}: {str(err).splitlines()[0]}"
    op = found.group(1)
    where = failing_submodule(module, inputs, op)
    if where is None:
        place = "(tracing could not place it in a submodule)"
    elif where:
        place = f"in submodule {where!r} ({type(module.get_submodule(where)).__name__})"
    else:
        place = "in the module's own forward"
    return f"{what}: the exporter does not support the op {op!r} {place}"


def failing_submodule(module: nn.Module, inputs: Sequence[torch.Tensor],
                      op: str) -> str | None:
    """The dotted name of the innermost submodule whose forward calls ``op`` (as the exporter
    names it, e.g. ``aten::cummax``): "" for the module itself, None where tracing cannot tell."""
    name = op.split("::")[-1]
    with warnings.catch_warnings(), torch.no_grad():
        # The tracer is deprecated in favour of torch.export, whose graphs lose the module
        # scopes this search reads; the exporter (dynamo=False) itself still traces.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        try:
            graph = torch.jit.trace(module, tuple(inputs), check_trace=False).inlined_graph
        except Exception:  # untraceable: the exporter's own message has to do
            return None
    for node in graph.nodes():
        kind = node.kind().split("::")[-1]
        # The tracer may keep a namespaced alias (special_i0) that the exporter reports as i0.
        if kind == name or kind.endswith("_" + name):
            scope = node.scopeName().split("/")[-1]
            return scope.removeprefix("__module").removeprefix(".")
    return None
