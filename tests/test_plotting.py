"""The book's figure conventions: cell drawings whose labels keep apart, plain log ticks,
legends beside the data, one colour per cell type."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from lenna_core.book.plotting import (  # noqa: E402
    CELL_COLOURS,
    LABEL_CLEARANCE,
    draw_cell,
    draw_cells,
    legend_outside,
    readable_log_axes,
)
from lenna_core.space.genotypes import DARTS_V1, DARTS_V2  # noqa: E402
from lenna_core.space.operations import PRIMITIVES  # noqa: E402


def _op_labels(ax):
    return [t for t in ax.texts if t.get_text() in PRIMITIVES]


@pytest.mark.parametrize("genotype", [DARTS_V1, DARTS_V2], ids=["V1", "V2"])
@pytest.mark.parametrize("reduction", [False, True])
def test_edge_labels_of_a_cell_keep_apart(genotype, reduction):
    fig = draw_cell(genotype, reduction=reduction)
    labels = _op_labels(fig.axes[0])
    assert len(labels) == len(genotype.reduce if reduction else genotype.normal)
    clashes = [(a.get_text(), b.get_text()) for a, b in itertools.combinations(labels, 2)
               if abs(a.get_position()[0] - b.get_position()[0]) <= LABEL_CLEARANCE[0]
               and abs(a.get_position()[1] - b.get_position()[1]) <= LABEL_CLEARANCE[1]]
    assert not clashes
    plt.close(fig)


def test_draw_cells_side_by_side_puts_each_genotype_in_its_own_column():
    fig = draw_cells({"torch": DARTS_V1, "onnx": DARTS_V2}, side_by_side=True)
    # Row by row: both normal cells on top, both reduction cells below.
    assert [ax.get_title() for ax in fig.axes] == ["torch: normal cell", "onnx: normal cell",
                                                   "torch: reduction cell",
                                                   "onnx: reduction cell"]
    plt.close(fig)


def test_draw_cells_draws_both_cells_of_each_genotype_in_rows():
    fig = draw_cells({"a": DARTS_V1, "b": DARTS_V2})
    assert [ax.get_title() for ax in fig.axes] == ["a: normal cell", "a: reduction cell",
                                                   "b: normal cell", "b: reduction cell"]
    plt.close(fig)
    with pytest.raises(ValueError, match="genotypes is empty"):
        draw_cells({})


def test_log_axes_get_plain_tick_labels():
    fig, ax = plt.subplots()
    ax.plot([1.5, 9.0], [20.0, 700.0])
    ax.set(xscale="log", yscale="log")
    readable_log_axes(ax)
    fig.canvas.draw()
    x = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    y = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert "2" in x and "5" in x and not any("10^" in t or "times" in t for t in x)
    assert {"50", "100", "200", "500"} <= set(y)
    with pytest.raises(ValueError, match="which='z'"):
        readable_log_axes(ax, "z")
    plt.close(fig)


def test_legend_outside_sits_right_of_the_axes():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="line")
    legend_outside(ax)
    fig.canvas.draw()
    box = ax.get_legend().get_window_extent()
    assert box.x0 >= ax.get_window_extent().x1
    plt.close(fig)


def test_cell_colours_differ_and_cover_both_types():
    assert set(CELL_COLOURS) == {"normal", "reduction"}
    assert CELL_COLOURS["normal"] != CELL_COLOURS["reduction"]
