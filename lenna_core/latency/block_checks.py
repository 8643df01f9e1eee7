"""Checks of block frames: a dataset's rows as read from disk, or the blocks a model is asked
about. Every property must lie in its allowed range, and an error names the row (or the file's
line), the column, the value and what is allowed, so a silent truncation (C=12.7 read as 12,
reduction=5 read as True) or a NaN deep in torch never happens.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd

from lenna_core.space.search_space import DARTS_SPACE, SearchSpace

#: Context columns holding a count: a positive integer.
INTEGER_COLUMNS = ("C_prev_prev", "C_prev", "C", "spatial", "batch_size")
#: Context columns holding a flag: 0/1 or False/True.
FLAG_COLUMNS = ("reduction", "reduction_prev")
#: How far an edge's probabilities may sum from 1.
PROBABILITY_ATOL = 1e-4


class ExtrapolationWarning(UserWarning):
    """A model is asked about blocks outside the range of the blocks it was fit on."""


def probability_columns(space: SearchSpace = DARTS_SPACE) -> list[str]:
    """Feature column names ``p_<edge>_<op>`` for the probabilities, edge-major."""
    return [f"p_{e:02d}_{op}" for e in range(space.num_edges) for op in space.primitives]


def _shown(value: object) -> str:
    """repr of a value as the user typed it: 12.7, not np.float64(12.7)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _where(frame: pd.DataFrame, position: int, source: str, first_line: int | None) -> str:
    if first_line is not None:
        return f"{source}, line {first_line + position}"
    return f"{source}, row {position} (index {frame.index[position]!r})"


def check_blocks(frame: pd.DataFrame, space: SearchSpace = DARTS_SPACE, source: str = "X",
                 first_line: int | None = None, atol: float = PROBABILITY_ATOL) -> None:
    """Raise a ValueError for the first row whose context or probabilities are impossible.

    ``source`` names the frame in the message; ``first_line`` (the file line of the frame's
    first row) makes the message name file lines instead of row positions.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{source} must be a dataset frame (a pandas DataFrame with the "
                         f"dataset's columns), not {type(frame).__name__}")
    if len(frame) == 0:
        raise ValueError(f"{source} has no rows: pass at least one block")
    columns = probability_columns(space)
    missing = [c for c in (*FLAG_COLUMNS, *INTEGER_COLUMNS, *columns) if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} lacks {len(missing)} block columns, e.g. {missing[:3]}; "
                         "pass a frame read with lenna_core.latency.dataset.read_dataset")
    for column in INTEGER_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(values) | (values < 1) | (values != np.round(values))
        if bad.any():
            i = int(bad.argmax())
            raise ValueError(f"{_where(frame, i, source, first_line)}: {column}="
                             f"{_shown(frame[column].iloc[i])}: must be a positive integer")
    for column in FLAG_COLUMNS:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isin(values, (0.0, 1.0))
        if bad.any():
            i = int(bad.argmax())
            raise ValueError(f"{_where(frame, i, source, first_line)}: {column}="
                             f"{_shown(frame[column].iloc[i])}: must be 0 or 1 (False or True)")
    probs = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(probs) | (probs < 0) | (probs > 1)
    if bad.any():
        i, j = np.unravel_index(int(bad.argmax()), bad.shape)
        raise ValueError(f"{_where(frame, int(i), source, first_line)}: {columns[j]}="
                         f"{_shown(probs[i, j])}: a probability must lie in [0, 1]")
    sums = probs.reshape(len(frame), space.num_edges, space.num_ops).sum(axis=2)
    off = np.abs(sums - 1.0)
    if (off > atol).any():
        i, edge = np.unravel_index(int(off.argmax()), off.shape)
        raise ValueError(f"{_where(frame, int(i), source, first_line)}: the probabilities of "
                         f"edge {edge} (p_{edge:02d}_*) sum to {sums[i, edge]:.6g}; they must "
                         f"sum to 1 (within {atol})")


def observed_range(frame: pd.DataFrame, names: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """The (min, max) of each named column of ``frame``."""
    return {name: (int(frame[name].min()), int(frame[name].max())) for name in names}


def warn_outside_known_range(known: Mapping | None, observed: Mapping[str, tuple[int, int]],
                             what: str = "the target network has blocks") -> None:
    """Warn (:class:`ExtrapolationWarning`) when observed (min, max) ranges leave the ranges a
    model was fit on; ``known`` maps a column to its [low, high] at fit time."""
    if not known:
        warnings.warn("the latency model records no training range (saved by an older "
                      "version); cannot check that the target lies inside it",
                      ExtrapolationWarning, stacklevel=3)
        return
    outside = [f"{name} in [{low}, {high}] (model knows [{known[name][0]}, {known[name][1]}])"
               for name, (low, high) in observed.items()
               if name in known and (low < known[name][0] or high > known[name][1])]
    if outside:
        warnings.warn(f"{what} outside what the latency model was trained on: "
                      + "; ".join(outside) + ". Its estimates there are extrapolations; add "
                      "such blocks to the dataset (chapter 3)", ExtrapolationWarning,
                      stacklevel=3)


@contextlib.contextmanager
def extrapolation_expected() -> Iterator[None]:
    """Silence :class:`ExtrapolationWarning` where extrapolating is the point: learning curves
    and cross-validation score models fit on a few blocks on blocks outside their range."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtrapolationWarning)
        yield
