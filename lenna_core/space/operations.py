"""The DARTS candidate operations, as a registry of constructors.

Every constructor has the signature ``(C, stride, affine) -> nn.Module`` and maps a tensor
of ``C`` channels to ``C`` channels, halving the spatial size when ``stride == 2``.
Adding an operation to the search space is one line in :data:`OPS`: its cost features (the
multiply-adds the latency models and the FLOPs estimator use) are counted on the module it
builds (:func:`op_macs`), never parsed from its name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, batch norm: the preprocessing unit of a cell."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """Dilated depthwise-separable convolution: depthwise (dilated) then pointwise."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 dilation: int, affine: bool = True) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convolutions; only the first one strides."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int,
                 affine: bool = True) -> None:
        super().__init__(
            DilConv(C_in, C_in, kernel_size, stride, padding, dilation=1, affine=affine),
            DilConv(C_in, C_out, kernel_size, 1, padding, dilation=1, affine=affine),
        )


class Identity(nn.Module):
    """Returns its input: the stride-1 skip connection."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Zero(nn.Module):
    """The `none` operation: an all-zero output of the right shape (no edge)."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the spatial size with two offset stride-2 1x1 convolutions, concatenated."""

    def __init__(self, C_in: int, C_out: int, affine: bool = True) -> None:
        super().__init__()
        if C_out % 2:
            raise ValueError(
                f"C_out={C_out}: a reducing skip connection (FactorizedReduce) needs an even "
                "channel count, because it concatenates two halves; use an even C."
            )
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # The second path is shifted by one pixel so the two halves see different positions.
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


OpFactory = Callable[[int, int, bool], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda C, stride, affine: Zero(stride),
    "max_pool_3x3": lambda C, stride, affine: nn.MaxPool2d(3, stride=stride, padding=1),
    "avg_pool_3x3": lambda C, stride, affine: nn.AvgPool2d(
        3, stride=stride, padding=1, count_include_pad=False),
    "skip_connect": lambda C, stride, affine: (
        Identity() if stride == 1 else FactorizedReduce(C, C, affine=affine)),
    "sep_conv_3x3": lambda C, stride, affine: SepConv(C, C, 3, stride, 1, affine=affine),
    "sep_conv_5x5": lambda C, stride, affine: SepConv(C, C, 5, stride, 2, affine=affine),
    "dil_conv_3x3": lambda C, stride, affine: DilConv(C, C, 3, stride, 2, 2, affine=affine),
    "dil_conv_5x5": lambda C, stride, affine: DilConv(C, C, 5, stride, 4, 2, affine=affine),
}

#: The DARTS primitives, in the order DARTS indexes its architecture parameters.
PRIMITIVES: tuple[str, ...] = tuple(OPS)


def check_primitive(name: str) -> None:
    """Raise a ValueError unless ``name`` is a registered primitive."""
    if name not in OPS:
        raise ValueError(f"unknown primitive {name!r}; allowed: {', '.join(OPS)}")


def make_op(name: str, C: int, stride: int, affine: bool) -> nn.Module:
    """Build the primitive ``name`` for ``C`` channels and the given stride."""
    check_primitive(name)
    if C < 1:
        raise ValueError(f"C={C}: the channel count must be a positive integer")
    if stride not in (1, 2):
        raise ValueError(f"stride={stride}: allowed strides are 1 and 2")
    return OPS[name](C, stride, affine)



@functools.cache
def op_macs(name: str, C: int, spatial_out: int, stride: int) -> float:
    """Multiply-adds of one primitive per sample, producing a C x spatial_out^2 output.

    Counted on the built module, so a primitive added to :data:`OPS` is counted without
    further code: every convolution contributes ``output elements x (C_in / groups) x
    kernel area``, every pooling layer ``output elements x window area``; normalisation and
    activations are not counted. The module runs on torch's meta device (shapes only, no
    arithmetic), once per distinct argument set.
    """
    op = make_op(name, C, stride, affine=False).to("meta").eval()  # eval: BN on 1 sample
    side = spatial_out * stride
    total = 0

    def count(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * (module.in_channels // module.groups) * kh * kw
        elif isinstance(module, nn.MaxPool2d | nn.AvgPool2d):
            k = module.kernel_size
            kh, kw = (k, k) if isinstance(k, int) else k
            total += output.numel() * kh * kw

    hooks = [m.register_forward_hook(count) for m in op.modules()]
    try:
        out = op(torch.empty(1, C, side, side, device="meta"))
    finally:
        for hook in hooks:
            hook.remove()
    if tuple(out.shape[1:]) != (C, spatial_out, spatial_out):
        raise ValueError(f"primitive {name!r} maps (C={C}, {side}x{side}) at stride {stride} to "
                         f"{tuple(out.shape[1:])}, not ({C}, {spatial_out}, {spatial_out}): every "
                         "primitive must keep the channels and divide the size by its stride")
    return float(total)
