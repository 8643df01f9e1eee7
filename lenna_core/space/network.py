"""Evaluation networks built from a genotype, with DARTS's signatures.

Both networks stack :class:`~lenna_core.space.cells.FixedCell` with the same
:func:`~lenna_core.space.cells.build_cell_stack` the supernet uses; only the stems differ.
``forward`` returns ``(logits, auxiliary_logits)``; the second is None unless the network
was built with ``auxiliary=True`` and is training.
"""

from __future__ import annotations

import torch
from torch import nn

from lenna_core.space.cells import FixedCell, build_cell_stack, check_input
from lenna_core.space.genotypes import Genotype


class AuxiliaryHead(nn.Sequential):
    """DARTS's auxiliary classifier at 2/3 depth (8x8 input for CIFAR, 14x14 for ImageNet)."""

    def __init__(self, C: int, num_classes: int, pool_stride: int, batch_norm_768: bool) -> None:
        layers = [
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
        ]
        if batch_norm_768:
            layers.append(nn.BatchNorm2d(768))
        layers += [nn.ReLU(inplace=False), nn.Flatten(), nn.Linear(768, num_classes)]
        super().__init__(*layers)


class _GenotypeNetwork(nn.Module):
    """Cells of one genotype behind a stem; subclasses provide the stem."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool,
                 genotype: Genotype, C_stem_prev_prev: int, C_stem_prev: int,
                 stem_reduces: bool, in_channels: int) -> None:
        super().__init__()
        if not isinstance(genotype, Genotype):
            raise ValueError("genotype must be a lenna_core.Genotype; "
                             f"got {type(genotype).__name__}")
        for name, value in (("C", C), ("num_classes", num_classes), ("layers", layers),
                            ("in_channels", in_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: must be a positive integer")
        self.genotype = genotype
        self.in_channels = in_channels
        self.drop_path_prob = 0.0
        self.cells, C_out, C_aux = build_cell_stack(
            layers, C, C_stem_prev_prev, C_stem_prev, stem_reduces,
            lambda cpp, cp, c, red, red_prev: FixedCell.from_genotype(
                genotype, cpp, cp, c, red, red_prev))
        self.auxiliary_index = 2 * layers // 3
        self.auxiliary_channels = C_aux
        self.auxiliary = auxiliary
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_out, num_classes)

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @property
    def stem_halvings(self) -> int:
        return 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        halvings = self.stem_halvings + sum(cell.reduction for cell in self.cells)
        check_input(x, self.in_channels, halvings)
        s0, s1 = self.stems(x)
        logits_aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.auxiliary_index and self.auxiliary and self.training:
                logits_aux = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), logits_aux


class NetworkCIFAR(_GenotypeNetwork):
    """The DARTS CIFAR network: a 3x3 stem and ``layers`` cells of ``genotype``."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool,
                 genotype: Genotype, *, in_channels: int = 3, stem_multiplier: int = 3) -> None:
        C_stem = stem_multiplier * C
        super().__init__(C, num_classes, layers, auxiliary, genotype, C_stem, C_stem, False,
                         in_channels)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C_stem, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(C_stem))
        if auxiliary:
            self.auxiliary_head = AuxiliaryHead(self.auxiliary_channels, num_classes,
                                                pool_stride=3, batch_norm_768=True)

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.stem(x)
        return s, s


class NetworkImageNet(_GenotypeNetwork):
    """The DARTS ImageNet (mobile) network: stems that reduce 224 px to 28 px, then cells."""

    def __init__(self, C: int, num_classes: int, layers: int, auxiliary: bool,
                 genotype: Genotype, *, in_channels: int = 3) -> None:
        super().__init__(C, num_classes, layers, auxiliary, genotype, C, C, True, in_channels)
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(C),
        )
        if auxiliary:
            # DARTS trained its ImageNet models without the BatchNorm after the 768-channel conv.
            self.auxiliary_head = AuxiliaryHead(self.auxiliary_channels, num_classes,
                                                pool_stride=2, batch_norm_768=False)

    @property
    def stem_halvings(self) -> int:
        return 3

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Number of parameters, by default without the auxiliary head (as DARTS reports sizes)."""
    return sum(p.numel() for name, p in model.named_parameters()
               if not (exclude_auxiliary and name.startswith("auxiliary_head")))
