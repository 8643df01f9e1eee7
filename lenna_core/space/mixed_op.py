"""The mixed edge of the supernet, in DARTS (softmax) and ProxylessNAS (binary-gate) modes.

Softmax mode returns ``sum_j p_j * o_j(x)``: every candidate runs and stays in memory.
Binary mode runs only the sampled candidate ``o_k``; the gates ``g = onehot(k)`` make the
output ``sum_j g_j o_j(x)``, and the alpha gradient is ProxylessNAS's estimate

    dL/dalpha_i = sum_j dL/dg_j * p_j * (delta_ij - p_i),   dL/dg_j = <dL/dy, o_j(x)>.

The inner products ``<dL/dy, o_j(x)>`` need the candidates' outputs, which the backward pass
recomputes without building a graph, so memory stays that of one path. With ``involved``
(ProxylessNAS's two-path update) only two candidates enter the estimate, renormalised
between themselves, which saves recomputing the other candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from lenna_core.space.operations import make_op


class _BinaryGateGradient(torch.autograd.Function):
    """Identity on the sampled path's output; turns gate gradients into alpha gradients."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, x: torch.Tensor, out: torch.Tensor,
                candidates: nn.ModuleList, active: int, involved: Sequence[int]) -> torch.Tensor:
        ctx.candidates, ctx.active, ctx.involved = candidates, active, list(involved)
        ctx.save_for_backward(alpha, x, out)
        return out.view_as(out)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        alpha, x, out = ctx.saved_tensors
        with torch.no_grad():
            gate_grads = torch.stack([
                (grad_out * (out if k == ctx.active else ctx.candidates[k](x))).sum()
                for k in ctx.involved
            ]).to(alpha.dtype)
            p = F.softmax(alpha[ctx.involved], dim=-1)
            grad_alpha = torch.zeros_like(alpha)
            grad_alpha[ctx.involved] = p * (gate_grads - (p * gate_grads).sum())
        return grad_alpha, None, grad_out, None, None, None


class MixedOp(nn.Module):
    """All candidate operations of one edge of the supernet."""

    def __init__(self, C: int, stride: int, primitives: Sequence[str]) -> None:
        super().__init__()
        ops = []
        for name in primitives:
            op = make_op(name, C, stride, affine=False)
            if "pool" in name:
                # Pooling has no weights to rescale its output; DARTS normalises it instead.
                op = nn.Sequential(op, nn.BatchNorm2d(C, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Softmax mode: the probability-weighted sum of every candidate."""
        return sum(w * op(x) for w, op in zip(weights, self.ops))

    def forward_path(self, x: torch.Tensor, active: int, alpha: torch.Tensor,
                     involved: Sequence[int] | None = None) -> torch.Tensor:
        """Binary mode: run only candidate ``active``; alpha gets the gate-based gradient.

        ``involved`` lists the candidates whose gates enter the gradient (default: all).
        """
        out = self.ops[active](x)
        if torch.is_grad_enabled() and alpha.requires_grad:
            involved = range(len(self.ops)) if involved is None else involved
            out = _BinaryGateGradient.apply(alpha, x.detach(), out, self.ops, active, involved)
        return out
