"""Figures: a genotype's cell drawn as a DAG with matplotlib (no graphviz needed), and the
conventions every figure of the book shares (colours per cell type, readable log axes)."""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from lenna_core.space.genotypes import Genotype
from lenna_core.space.operations import PRIMITIVES

# One colour per primitive, stable across figures.
OP_COLOURS = dict(zip(PRIMITIVES, plt.get_cmap("tab10").colors))
# One colour per cell type, the same in every chapter (seaborn: palette=CELL_COLOURS).
CELL_COLOURS = {"normal": plt.get_cmap("tab10").colors[0],
                "reduction": plt.get_cmap("tab10").colors[1]}
# Where along an edge its label may sit (the middle first), and how far apart two labels
# must be, in the drawing's units (a label is about 1.5 units wide at fontsize 8).
LABEL_POSITIONS = (0.5, 0.35, 0.65, 0.25, 0.75)
LABEL_CLEARANCE = (1.6, 0.45)


def readable_log_axes(ax: Axes, which: str = "both") -> None:
    """Plain-number ticks at 1, 2 and 5 per decade on the log axes ``which`` ("x", "y" or
    "both"), without the "3x10^0" minor labels that collide on a narrow range."""
    if which not in ("x", "y", "both"):
        raise ValueError(f"which={which!r}: use 'x', 'y' or 'both'")
    axes = {"x": [ax.xaxis], "y": [ax.yaxis], "both": [ax.xaxis, ax.yaxis]}[which]
    for axis in axes:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())


def legend_outside(ax: Axes, **kwargs: object) -> None:
    """The legend to the right of the axes, where it covers no data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)


def _node_positions(steps: int) -> dict[str, tuple[float, float]]:
    """Inputs on the left, intermediate nodes on a zig-zag in the middle, output on the right."""
    pos = {"c_{k-2}": (0.0, 1.0), "c_{k-1}": (0.0, -1.0)}
    for i in range(steps):
        pos[str(i)] = (2.4 * (i + 1), 1.8 if i % 2 == 0 else -1.8)
    pos["c_{k}"] = (2.4 * (steps + 1), 0.0)
    return pos


def _label_spot(start: tuple[float, float], end: tuple[float, float], bend: float,
                placed: list[tuple[float, float]]) -> tuple[float, float]:
    """A point on the edge's arc (matplotlib's arc3: a quadratic Bezier) for its label: the
    first of LABEL_POSITIONS clear of every label and node placed so far, else the middle."""
    dx, dy = end[0] - start[0], end[1] - start[1]
    control = ((start[0] + end[0]) / 2 + bend * dy, (start[1] + end[1]) / 2 - bend * dx)

    def on_arc(t: float) -> tuple[float, float]:
        return tuple((1 - t) ** 2 * s + 2 * t * (1 - t) * c + t ** 2 * e
                     for s, c, e in zip(start, control, end))

    for t in LABEL_POSITIONS:
        x, y = on_arc(t)
        if all(abs(x - px) > LABEL_CLEARANCE[0] or abs(y - py) > LABEL_CLEARANCE[1]
               for px, py in placed):
            return x, y
    return on_arc(0.5)


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
    placed = list(pos.values())  # labels keep clear of the nodes and of each other
    for position, (op, src) in enumerate(gene):
        start, end = pos[names[src]], pos[names[position // 2 + 2]]
        bend = 0.15 if position % 2 else -0.15
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(
            arrow, color=OP_COLOURS.get(op, "black"), connectionstyle=f"arc3,rad={bend}"))
        spot = _label_spot(start, end, bend, placed)
        placed.append(spot)
        ax.text(*spot, op, fontsize=8, ha="center", va="center", color=OP_COLOURS.get(op, "k"),
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


def draw_cells(genotypes: Mapping[str, Genotype], side_by_side: bool = False) -> Figure:
    """The normal and reduction cells of every named genotype, one drawing per row (wide
    enough to read the op names); ``side_by_side``: one column per genotype instead, its
    normal cell above its reduction cell, to compare cells found for different targets."""
    if not genotypes:
        raise ValueError("genotypes is empty: give at least one named genotype")
    n = len(genotypes)
    rows, columns = (2, n) if side_by_side else (2 * n, 1)
    fig, axes = plt.subplots(rows, columns, figsize=(11.0 * columns, 3.9 * rows), squeeze=False)
    for index, (name, genotype) in enumerate(genotypes.items()):
        for offset, reduction in enumerate((False, True)):
            ax = axes[offset, index] if side_by_side else axes[2 * index + offset, 0]
            draw_cell(genotype, reduction=reduction, ax=ax,
                      title=f"{name}: {'reduction' if reduction else 'normal'} cell")
    fig.tight_layout()
    return fig
