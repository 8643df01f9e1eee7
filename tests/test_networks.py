"""Tests for lenna_core.space.network and the stack builder it shares with the supernet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lenna_core.space.cells import FixedCell, build_cell_stack, check_input, reduction_layers
from lenna_core.space.genotypes import DARTS_V1, DARTS_V2
from lenna_core.space.network import NetworkCIFAR, NetworkImageNet, count_parameters
from lenna_core.space.operations import FactorizedReduce
from lenna_core.space.supernet import SearchNetwork


def test_darts_v2_cifar_parameter_count():
    # DARTS reports 3.3M parameters; quark0/darts cnn/train.py prints "param size = 3.349342MB"
    # for NetworkCIFAR(36, 10, 20, True, DARTS_V2), counting without the auxiliary head.
    net = NetworkCIFAR(36, 10, 20, True, DARTS_V2)
    assert count_parameters(net) == 3349342
    aux = sum(p.numel() for p in net.auxiliary_head.parameters())
    assert aux > 0
    assert count_parameters(net, exclude_auxiliary=False) == 3349342 + aux


def test_darts_v2_imagenet_parameter_count():
    # DARTS reports 4.7M parameters for the mobile ImageNet setting (48 channels, 14 cells).
    assert count_parameters(NetworkImageNet(48, 1000, 14, True, DARTS_V2)) == 4718752


def test_parameter_count_does_not_depend_on_auxiliary_flag():
    with_aux = NetworkCIFAR(8, 10, 5, True, DARTS_V1)
    without = NetworkCIFAR(8, 10, 5, False, DARTS_V1)
    assert count_parameters(with_aux) == count_parameters(without)
    assert not hasattr(without, "auxiliary_head")


def test_cifar_forward_and_auxiliary_only_when_training():
    torch.manual_seed(0)
    net = NetworkCIFAR(8, 10, 5, True, DARTS_V2)
    x = torch.randn(2, 3, 32, 32)
    net.train()
    logits, aux = net(x)
    assert logits.shape == (2, 10)
    assert aux is not None and aux.shape == (2, 10)
    net.eval()
    logits, aux = net(x)
    assert logits.shape == (2, 10) and aux is None
    # Without an auxiliary head there are never auxiliary logits.
    plain = NetworkCIFAR(8, 10, 5, False, DARTS_V2).train()
    logits, aux = plain(x)
    assert logits.shape == (2, 10) and aux is None


def test_cifar_drop_path_only_in_training():
    torch.manual_seed(0)
    net = NetworkCIFAR(4, 3, 3, False, DARTS_V2, in_channels=1).eval()
    x = torch.randn(2, 1, 8, 8)
    reference, _ = net(x)
    net.drop_path_prob = 0.9
    again, _ = net(x)
    torch.testing.assert_close(again, reference)
    net.train()
    net.drop_path_prob = 0.0
    trained, _ = net(x)
    net.drop_path_prob = 0.9
    dropped, _ = net(x)
    assert not torch.allclose(trained, dropped)


def test_imagenet_forward():
    torch.manual_seed(0)
    net = NetworkImageNet(8, 7, 3, True, DARTS_V2).eval()
    logits, aux = net(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 7) and aux is None
    # In training mode the auxiliary head sits at 2/3 depth, where DARTS expects 14x14 maps at
    # 224 px; at C=8 and 3 cells a 224 px forward is still cheap.
    net.train()
    logits, aux = net(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 7) and aux.shape == (2, 7)


def test_input_too_small_or_odd_for_the_reductions():
    net = NetworkCIFAR(4, 10, 3, False, DARTS_V2, in_channels=1).eval()
    assert sum(cell.reduction for cell in net.cells) == 2
    net(torch.randn(1, 1, 4, 4))  # the smallest size that halves twice
    for side in (2, 6, 10):       # 2x2 halves once only; 6 -> 3 is odd at the second halving
        with pytest.raises(ValueError, match="multiples of 4"):
            net(torch.randn(1, 1, side, side))
    with pytest.raises(ValueError, match="8x6"):
        net(torch.randn(1, 1, 8, 6))
    imagenet = NetworkImageNet(8, 10, 3, False, DARTS_V2).eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        imagenet(torch.randn(1, 3, 48, 48))


def test_wrong_channel_count_or_rank():
    net = NetworkCIFAR(4, 10, 3, False, DARTS_V2).eval()
    with pytest.raises(ValueError, match=r"\(batch, 3, H, W\)"):
        net(torch.randn(1, 1, 8, 8))
    with pytest.raises(ValueError, match="expected"):
        net(torch.randn(3, 8, 8))
    search = SearchNetwork(C=4, num_classes=3, layers=3, in_channels=1)
    with pytest.raises(ValueError, match=r"\(batch, 1, H, W\)"):
        search(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="multiples of 4"):
        search(torch.randn(1, 1, 6, 6))


@pytest.mark.parametrize("bad", [{"C": 0}, {"layers": 0}, {"num_classes": 0},
                                 {"genotype": "DARTS_V2"}])
def test_bad_network_arguments(bad):
    kwargs = {"C": 4, "num_classes": 10, "layers": 3, "auxiliary": False, "genotype": DARTS_V2}
    kwargs.update(bad)
    with pytest.raises(ValueError, match=next(iter(bad))):
        NetworkCIFAR(**kwargs)


def test_check_input_directly():
    check_input(torch.zeros(1, 3, 8, 8), 3, 3)
    with pytest.raises(ValueError):
        check_input(torch.zeros(1, 3, 8, 8), 3, 4)


@pytest.mark.parametrize(("layers", "expected"),
                         [(1, (0,)), (2, (0, 1)), (3, (1, 2)), (5, (1, 3)), (8, (2, 5)),
                          (20, (6, 13)), (14, (4, 9))])
def test_reduction_layers_at_one_and_two_thirds(layers, expected):
    assert reduction_layers(layers) == expected


def test_build_cell_stack_rejects_no_layers():
    with pytest.raises(ValueError, match="layers=0"):
        build_cell_stack(0, 4, 12, 12, False, lambda *a: None)


def preprocess_shapes(cell: nn.Module) -> tuple:
    """The weight shapes of a cell's two preprocessing convolutions (or factorized reduce)."""
    p0 = cell.preprocess0
    if isinstance(p0, FactorizedReduce):
        shape0 = ("FR", tuple(p0.conv_1.weight.shape), tuple(p0.conv_2.weight.shape))
    else:
        shape0 = ("RCB", tuple(p0[1].weight.shape))
    return shape0, ("RCB", tuple(cell.preprocess1[1].weight.shape))


def test_search_and_evaluation_networks_share_the_stack():
    search = SearchNetwork(C=4, num_classes=10, layers=5)
    evaluation = NetworkCIFAR(4, 10, 5, False, DARTS_V2)
    assert len(search.cells) == len(evaluation.cells) == 5
    red = [i for i, c in enumerate(search.cells) if c.reduction]
    assert red == [i for i, c in enumerate(evaluation.cells) if c.reduction]
    assert tuple(red) == reduction_layers(5) == (1, 3)
    assert [c.reduction_prev for c in search.cells] == [c.reduction_prev
                                                        for c in evaluation.cells]
    search_shapes = [preprocess_shapes(c) for c in search.cells]
    assert search_shapes == [preprocess_shapes(c) for c in evaluation.cells]
    # The bookkeeping itself: stem 3C = 12; each cell outputs 4 * C_curr, C doubling at reductions.
    assert search_shapes == [
        (("RCB", (4, 12, 1, 1)), ("RCB", (4, 12, 1, 1))),
        (("RCB", (8, 12, 1, 1)), ("RCB", (8, 16, 1, 1))),
        (("FR", (4, 16, 1, 1), (4, 16, 1, 1)), ("RCB", (8, 32, 1, 1))),
        (("RCB", (16, 32, 1, 1)), ("RCB", (16, 32, 1, 1))),
        (("FR", (8, 32, 1, 1), (8, 32, 1, 1)), ("RCB", (16, 64, 1, 1))),
    ]
    assert search.classifier.in_features == evaluation.classifier.in_features == 64


def test_auxiliary_head_channels_at_two_thirds_depth():
    net = NetworkCIFAR(4, 10, 5, True, DARTS_V2)
    # Index 2 * 5 // 3 = 3, after the second reduction: 4 nodes x 16 channels.
    assert net.auxiliary_index == 3
    assert net.auxiliary_channels == 64
    assert net.auxiliary_head[2].in_channels == 64


def test_fixed_cell_from_genotype_uses_its_edges():
    cell = FixedCell.from_genotype(DARTS_V2, 8, 8, 4, reduction=False, reduction_prev=False)
    assert [op for op, _, _ in cell.edges] == [op for op, _ in DARTS_V2.normal]
    assert [src for _, src, _ in cell.edges] == [src for _, src in DARTS_V2.normal]
    assert [dst for _, _, dst in cell.edges] == [2, 2, 3, 3, 4, 4, 5, 5]
    out = cell(torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8))
    assert out.shape == (2, 16, 8, 8)
    red = FixedCell.from_genotype(DARTS_V2, 8, 8, 4, reduction=True, reduction_prev=False)
    assert red(torch.randn(2, 8, 8, 8), torch.randn(2, 8, 8, 8)).shape == (2, 16, 4, 4)
