"""One DARTS step: weights on a training batch, then alphas on a validation batch.

The architecture loss is cross-entropy, optionally combined with a latency penalty by an
``objective`` (see :class:`lenna_core.search.loop.LatencyObjective`): ``objective(ce, net)``
returns the loss and a dict of what it added. The alpha gradient is first order by default;
:func:`unrolled_arch_step` is DARTS's second-order approximation (softmax mode only).

``average_gradients(params)``, when given, is called after the gradients of the group being
stepped are set and before anything reads them (clipping, the optimiser): a distributed search
averages them over its ranks there (:mod:`lenna_core.search.distributed`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch.func import functional_call

from lenna_core.space.supernet import SearchNetwork, frozen_arch

Objective = Callable[[torch.Tensor, SearchNetwork], tuple[torch.Tensor, dict]]
GradientHook = Callable[[list[torch.nn.Parameter]], None]


@dataclass
class ArchStep:
    """What one architecture step saw: its loss, the CE part and the objective's details."""

    loss: float
    ce: float
    correct: int
    details: dict = field(default_factory=dict)


def weight_step(net: SearchNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, grad_clip: float = 5.0,
                average_gradients: GradientHook | None = None) -> float:
    """Update the weights on (x, y) with alphas frozen; returns the training loss."""
    with frozen_arch(net):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    if average_gradients is not None:
        average_gradients(net.weight_parameters())
    torch.nn.utils.clip_grad_norm_(net.weight_parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def _arch_loss(logits: torch.Tensor, y: torch.Tensor, net: SearchNetwork,
               objective: Objective | None) -> tuple[torch.Tensor, torch.Tensor, dict]:
    ce = F.cross_entropy(logits, y)
    if objective is None:
        return ce, ce, {}
    loss, details = objective(ce, net)
    return loss, ce, details


def arch_step(net: SearchNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor, objective: Objective | None = None,
              average_gradients: GradientHook | None = None) -> ArchStep:
    """Update the alphas on (x, y), first order; weight gradients are not computed."""
    before = [p.detach().clone() for p in net.arch_parameters()]
    logits = net(x)
    loss, ce, details = _arch_loss(logits, y, net, objective)
    grads = torch.autograd.grad(loss, net.arch_parameters())
    for p, g in zip(net.arch_parameters(), grads):
        p.grad = g
    if average_gradients is not None:
        average_gradients(net.arch_parameters())
    optimizer.step()
    net.rescale_two_path_alphas(before)
    return ArchStep(loss.item(), ce.item(), int((logits.argmax(1) == y).sum()), details)


def unrolled_arch_step(net: SearchNetwork, optimizer: torch.optim.Optimizer,
                       weight_optimizer: torch.optim.SGD, train: tuple[torch.Tensor, torch.Tensor],
                       val: tuple[torch.Tensor, torch.Tensor],
                       objective: Objective | None = None, epsilon: float = 0.01) -> ArchStep:
    """DARTS's second-order alpha step: the validation loss after one virtual weight step.

    ``grad_alpha L_val(w', alpha)`` with ``w' = w - lr * (momentum + grad_w L_train + wd * w)``
    (the weight optimiser's own settings), the Hessian-vector product by central finite
    differences at ``w +/- r * grad_w' L_val``, ``r = epsilon / |grad_w' L_val|``.
    """
    if net.mode != "softmax":
        raise ValueError(f"second-order steps need mode='softmax' (got mode={net.mode!r}): the "
                         "binary gates sample a different path on every pass")
    group = weight_optimizer.param_groups[0]
    lr, momentum = group["lr"], group.get("momentum", 0.0)
    decay = group.get("weight_decay", 0.0)
    arch_ids = {id(p) for p in net.arch_parameters()}
    named = [(n, p) for n, p in net.named_parameters() if id(p) not in arch_ids]
    weights = [p for _, p in named]
    x_train, y_train = train
    with frozen_arch(net):
        grads = torch.autograd.grad(F.cross_entropy(net(x_train), y_train), weights)
    unrolled = {}
    for (name, w), g in zip(named, grads):
        buffer = weight_optimizer.state.get(w, {}).get("momentum_buffer")
        step = g + decay * w.detach() + (momentum * buffer if buffer is not None else 0.0)
        unrolled[name] = (w.detach() - lr * step).requires_grad_()
    # Copies of the BatchNorm statistics: the virtual step must not move the real ones.
    buffers = {n: b.clone() for n, b in net.named_buffers()}
    x_val, y_val = val
    logits = functional_call(net, {**unrolled, **buffers}, (x_val,))
    loss, ce, details = _arch_loss(logits, y_val, net, objective)
    alphas = net.arch_parameters()
    *direct, = torch.autograd.grad(loss, alphas, retain_graph=True)
    vector = torch.autograd.grad(loss, list(unrolled.values()), allow_unused=True)
    vector = [torch.zeros_like(w) if v is None else v for v, w in zip(vector, weights)]
    r = epsilon / torch.cat([v.flatten() for v in vector]).norm().clamp_min(1e-12)

    def alpha_grad_at(sign: float) -> list[torch.Tensor]:
        with torch.no_grad():
            for w, v in zip(weights, vector):
                w.add_(sign * r * v)
        loss_train = F.cross_entropy(net(x_train), y_train)
        out = torch.autograd.grad(loss_train, alphas)
        with torch.no_grad():
            for w, v in zip(weights, vector):
                w.sub_(sign * r * v)
        return list(out)

    saved = [b.clone() for b in net.buffers()]
    plus, minus = alpha_grad_at(1.0), alpha_grad_at(-1.0)
    with torch.no_grad():
        for b, old in zip(net.buffers(), saved):
            b.copy_(old)
    for p, d, gp, gm in zip(alphas, direct, plus, minus):
        p.grad = d - lr * (gp - gm) / (2 * r)
    optimizer.step()
    return ArchStep(loss.item(), ce.item(), int((logits.argmax(1) == y_val).sum()), details)
