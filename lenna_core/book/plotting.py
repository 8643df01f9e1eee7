"""Figures: a genotype's cell drawn as a DAG with matplotlib (no graphviz needed)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lenna_core.space.genotypes import Genotype
from lenna_core.space.operations import PRIMITIVES

# One colour per primitive, stable across figures.
OP_COLOURS = dict(zip(PRIMITIVES, plt.get_cmap("tab10").colors))


def _node_positions(steps: int) -> dict[str, tuple[float, float]]:
    """Inputs on the left, intermediate nodes on a zig-zag in the middle, output on the right."""
    pos = {"c_{k-2}": (0.0, 1.0), "c_{k-1}": (0.0, -1.0)}
    for i in range(steps):
        pos[str(i)] = (2.4 * (i + 1), 1.8 if i % 2 == 0 else -1.8)
    pos["c_{k}"] = (2.4 * (steps + 1), 0.0)
    return pos


def draw_cell(genotype: Genotype, reduction: bool = False, ax: Axes | None = None,
              title: str | None = None) -> Figure:
    """Draw the normal (or reduction) cell of ``genotype``; edges are coloured by operation."""
    gene = genotype.reduce if reduction else genotype.normal
    concat = genotype.reduce_concat if reduction else genotype.normal_concat
    steps = genotype.steps
    if ax is None:
        _, ax = plt.subplots(figsize=(2.4 * (steps + 2), 4.0))
    names = ["c_{k-2}", "c_{k-1}"] + [str(i) for i in range(steps)]
    pos = _node_positions(steps)
    arrow = dict(arrowstyle="-|>", lw=1.6, shrinkA=16, shrinkB=16)
    for position, (op, src) in enumerate(gene):
        start, end = pos[names[src]], pos[names[position // 2 + 2]]
        bend = 0.15 if position % 2 else -0.15
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(
            arrow, color=OP_COLOURS.get(op, "black"), connectionstyle=f"arc3,rad={bend}"))
        # The label sits on the arc: a quadratic Bezier's midpoint (equal aspect keeps it there).
        dx, dy = end[0] - start[0], end[1] - start[1]
        mid = ((start[0] + end[0]) / 2 + 0.5 * bend * dy, (start[1] + end[1]) / 2 - 0.5 * bend * dx)
        ax.text(*mid, op, fontsize=7.5, ha="center", va="center", color=OP_COLOURS.get(op, "k"),
                bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.9))
    for node in concat:
        ax.annotate("", xy=pos["c_{k}"], xytext=pos[names[node]],
                    arrowprops=dict(arrow, color="0.6", linestyle="--"))
    for name, (x, y) in pos.items():
        is_io = name.startswith("c_")
        ax.text(x, y, f"${name}$" if is_io else name, ha="center", va="center", fontsize=11,
                bbox=dict(boxstyle="round,pad=0.4", fc="#cde4f7" if is_io else "#fde9b6",
                          ec="0.3"))
    ax.set_xlim(-0.8, 2.4 * (steps + 1) + 0.8)
    ax.set_ylim(-2.6, 2.6)
    ax.set_aspect("equal")
    ax.set_axis_off()
    kind = "reduction" if reduction else "normal"
    ax.set_title(title or f"{kind} cell")
    return ax.figure
