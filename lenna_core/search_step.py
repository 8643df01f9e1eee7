"""One first-order DARTS step: weights on a training batch, then alphas on a validation batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .supernet import SearchNetwork, frozen_arch


def weight_step(net: SearchNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                y: torch.Tensor, grad_clip: float = 5.0) -> float:
    """Update the weights on (x, y) with alphas frozen; returns the training loss."""
    with frozen_arch(net):
        loss = F.cross_entropy(net(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
    torch.nn.utils.clip_grad_norm_(net.weight_parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def arch_step(net: SearchNetwork, optimizer: torch.optim.Optimizer, x: torch.Tensor,
              y: torch.Tensor) -> float:
    """Update the alphas on (x, y), first order; weight gradients are not computed."""
    before = [p.detach().clone() for p in net.arch_parameters()]
    loss = F.cross_entropy(net(x), y)
    grads = torch.autograd.grad(loss, net.arch_parameters())
    for p, g in zip(net.arch_parameters(), grads):
        p.grad = g
    optimizer.step()
    net.rescale_two_path_alphas(before)
    return loss.item()
