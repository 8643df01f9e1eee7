"""The MLP latency model's network and its training step, shared by fitting from scratch
(:class:`lenna_core.latency.mlp_model.MLPLatency`) and fine-tuning on a new device
(:mod:`lenna_core.latency.transfer`)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def train_step(net: nn.Module, optimiser: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
    """One optimiser step on the mean squared error of ``net(x)`` against ``y``; the loss."""
    loss = nn.functional.mse_loss(net(x).squeeze(1), y)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    return loss


def validation_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The mean squared error of ``net(x)`` against ``y``, in eval mode, without gradients."""
    net.eval()
    with torch.no_grad():
        return nn.functional.mse_loss(net(x).squeeze(1), y).item()


def network(n_in: int, hidden: Sequence[int]) -> nn.Sequential:
    """Linear + ReLU layers of the given widths, then one output: the log-latency."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(n_in, width), nn.ReLU()]
        n_in = width
    layers.append(nn.Linear(n_in, 1))
    return nn.Sequential(*layers)
