"""The DARTS search network (supernet), in softmax or binary-gate mode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from lenna_core.space.cells import CellBase, build_cell_stack, check_input
from lenna_core.space.genotypes import Genotype
from lenna_core.space.mixed_op import MixedOp
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace
from lenna_core.space.single_path import sample_active

MODES = ("softmax", "binary")
GATE_GRADIENTS = ("full", "two")


class SearchCell(CellBase):
    """A cell whose every edge is a :class:`MixedOp` over the space's primitives."""

    def __init__(self, space: SearchSpace, C_prev_prev: int, C_prev: int, C: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__(C_prev_prev, C_prev, C, reduction, reduction_prev, affine=False)
        self.space = space
        self.concat = space.concat
        self.edges = nn.ModuleList(
            MixedOp(C, 2 if reduction and src < 2 else 1, space.primitives)
            for src, _ in space.edges)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, alpha: torch.Tensor,
                active: list[int] | None = None,
                involved: list[list[int]] | None = None) -> torch.Tensor:
        """Softmax mode when ``active`` is None, else binary mode with one op per edge.

        ``involved[e]`` (binary mode, optional) lists the candidates of edge ``e`` whose gates
        enter the alpha gradient.
        """
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        weights = F.softmax(alpha, dim=-1) if active is None else None
        e = 0
        for node in range(2, self.space.steps + 2):
            terms = []
            for src in range(node):
                edge = self.edges[e]
                if active is None:
                    terms.append(edge(states[src], weights[e]))
                else:
                    terms.append(edge.forward_path(states[src], active[e], alpha[e],
                                                   None if involved is None else involved[e]))
                e += 1
            states.append(sum(terms))
        return torch.cat([states[i] for i in self.concat], dim=1)


class SearchNetwork(nn.Module):
    """Stem, ``layers`` search cells (reductions at 1/3 and 2/3 depth) and a classifier.

    The architecture parameters ``alphas_normal`` and ``alphas_reduce`` (edges x primitives)
    are shared by all cells of their type. In ``binary`` mode each forward pass samples one op
    per edge and per cell from softmax(alpha), using torch's global generator (seed it with
    ``torch.manual_seed``); the draw is kept in :attr:`last_active` for inspection.

    ``gate_gradient`` picks how binary mode estimates the alpha gradient when alphas need one:
    ``"full"`` uses every candidate's gate (the ProxylessNAS estimator; exact in expectation
    for a loss linear in the edge output), ``"two"`` is ProxylessNAS's cheaper update: per edge
    and cell type it samples two candidates, picks the active one between them, and estimates
    the gradient over those two only; call :meth:`rescale_two_path_alphas` after the optimiser
    step so the other candidates keep their probabilities.
    """

    def __init__(self, C: int = 16, num_classes: int = 10, layers: int = 8,
                 space: SearchSpace = DARTS_SPACE, *, in_channels: int = 3,
                 stem_multiplier: int = 3, mode: str = "softmax",
                 gate_gradient: str = "full", alpha_init_std: float = 1e-3) -> None:
        super().__init__()
        for name, value in (("C", C), ("num_classes", num_classes), ("layers", layers),
                            ("in_channels", in_channels), ("stem_multiplier", stem_multiplier)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: must be a positive integer")
        self.space = space
        self.in_channels = in_channels
        self.mode = mode
        if gate_gradient not in GATE_GRADIENTS:
            raise ValueError(f"gate_gradient={gate_gradient!r}: allowed values are "
                             f"{', '.join(GATE_GRADIENTS)}")
        self.gate_gradient = gate_gradient
        C_stem = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_stem))
        self.cells, C_out, _ = build_cell_stack(
            layers, C, C_stem, C_stem, False,
            lambda cpp, cp, c, red, red_prev: SearchCell(space, cpp, cp, c, red, red_prev))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_out, num_classes)
        shape = (space.num_edges, space.num_ops)
        self.alphas_normal = nn.Parameter(alpha_init_std * torch.randn(shape))
        self.alphas_reduce = nn.Parameter(alpha_init_std * torch.randn(shape))
        self.last_active: list[list[int]] = []
        self.last_pairs: dict[str, torch.Tensor] = {}

    @property
    def mode(self) -> str:
        """``softmax`` (DARTS) or ``binary`` (ProxylessNAS gates)."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode={value!r}: allowed modes are {', '.join(MODES)}")
        self._mode = value

    @property
    def num_reductions(self) -> int:
        """Number of reduction cells (each halves the spatial size)."""
        return sum(cell.reduction for cell in self.cells)

    def arch_parameters(self) -> list[nn.Parameter]:
        """The architecture parameters: [alphas_normal, alphas_reduce]."""
        return [self.alphas_normal, self.alphas_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter that is not an architecture parameter."""
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def probabilities(self) -> dict[str, torch.Tensor]:
        """softmax(alpha) per cell type, detached: {'normal': (E, K), 'reduce': (E, K)}."""
        return {"normal": F.softmax(self.alphas_normal.detach(), dim=-1),
                "reduce": F.softmax(self.alphas_reduce.detach(), dim=-1)}

    def genotype(self, max_skip: int | None = None) -> Genotype:
        """The discrete cell pair DARTS derives from the current alphas (see derive_cell)."""
        probs = self.probabilities()
        return self.space.derive_genotype(probs["normal"], probs["reduce"], max_skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels, self.num_reductions)
        pairs = self._sample_pairs() if self._uses_two_paths() else {}
        self.last_active, self.last_pairs = [], pairs
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            alpha = self.alphas_reduce if cell.reduction else self.alphas_normal
            active = involved = None
            if self.mode == "binary" and pairs:
                involved = pairs[kind].tolist()
                # Choose the active op between the two, by their renormalised probabilities.
                pair_probs = F.softmax(alpha.detach().cpu().gather(1, pairs[kind]), dim=-1)
                choice = torch.multinomial(pair_probs.double(), 1).squeeze(1).tolist()
                active = [pair[c] for pair, c in zip(involved, choice)]
            elif self.mode == "binary":
                active = sample_active(F.softmax(alpha.detach(), dim=-1), self.space)
            if active is not None:
                self.last_active.append(active)
            s0, s1 = s1, cell(s0, s1, alpha, active, involved)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def _uses_two_paths(self) -> bool:
        return (self.mode == "binary" and self.gate_gradient == "two" and self.space.num_ops > 1
                and torch.is_grad_enabled() and self.alphas_normal.requires_grad)

    def _sample_pairs(self) -> dict[str, torch.Tensor]:
        """Two distinct candidates per edge and cell type, drawn from softmax(alpha)."""
        return {kind: torch.multinomial(probs.double().cpu(), 2, replacement=False)
                for kind, probs in self.probabilities().items()}

    @torch.no_grad()
    def rescale_two_path_alphas(self, before: list[torch.Tensor]) -> None:
        """After a two-path update, keep every op outside each edge's pair where it was, and
        shift the pair's two logits so their joint probability is unchanged (ProxylessNAS).

        Optimisers with momentum or weight decay also move logits whose gradient is zero;
        restoring them keeps the update confined to the two sampled paths.
        """
        if not self.last_pairs:
            return
        for kind, alpha, old in zip(("normal", "reduce"), self.arch_parameters(), before):
            old = old.to(alpha.device)
            pairs = self.last_pairs[kind].to(alpha.device)
            outside = torch.ones_like(alpha, dtype=torch.bool).scatter_(1, pairs, False)
            alpha[outside] = old[outside]
            shift = (alpha.gather(1, pairs).logsumexp(dim=1, keepdim=True)
                     - old.gather(1, pairs).logsumexp(dim=1, keepdim=True))
            alpha.scatter_(1, pairs, alpha.gather(1, pairs) - shift)


@contextmanager
def frozen_arch(net: SearchNetwork) -> Iterator[None]:
    """Within the block alphas take no gradient: the weight step needs none and skips the cost."""
    flags = [p.requires_grad for p in net.arch_parameters()]
    for p in net.arch_parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(net.arch_parameters(), flags):
            p.requires_grad_(flag)
