"""How the labels of the same blocks move when the machine's state changes.

A label is a block's time over the reference cell's, so anything that slows every cell alike
cancels. What does not cancel is a change that weighs on large cells more than on small ones:
another tenant's load on the host's shared caches, say. The same 424 ONNX Runtime blocks,
labelled by the same command on the same virtual machine seven hours apart, kept their order
but not their scale: the later labels follow a power of the earlier ones (data/README.md,
``machine_state/``). :func:`state_stretch` measures that power on any two labellings of the
same blocks; a slope of 1 and no offset is an unchanged machine.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lenna_core.latency.metrics import latency_metrics

#: Fewest blocks both labellings must share for a slope worth reporting.
MIN_SHARED_BLOCKS = 10


def shared_labels(earlier: pd.DataFrame, later: pd.DataFrame) -> pd.DataFrame:
    """The blocks (``row_id``) both dataset frames labelled successfully, with both labels:
    ``latency_ms_earlier`` and ``latency_ms_later``."""
    columns = ["row_id", "latency_ms"]
    for name, frame in (("earlier", earlier), ("later", later)):
        missing = [c for c in ("status", *columns) if c not in frame.columns]
        if missing:
            raise ValueError(f"{name}: a dataset frame needs the columns {missing}")
    ok = [frame.loc[frame["status"] == "ok", columns] for frame in (earlier, later)]
    return ok[0].merge(ok[1], on="row_id", suffixes=("_earlier", "_later"))


def power_fit(x_ms: Sequence[float], y_ms: Sequence[float]) -> dict[str, float]:
    """Fit log(y) = offset + slope * log(x) over paired latencies (ms); the agreement within
    ±10% before and after the fit (the keys :func:`state_stretch` documents, ``blocks`` too)."""
    x, y = np.asarray(x_ms, dtype=float), np.asarray(y_ms, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x_ms and y_ms must be paired 1-d latencies, not shapes {x.shape} "
                         f"and {y.shape}")
    if len(x) < MIN_SHARED_BLOCKS:
        raise ValueError(f"{len(x)} paired latencies: a slope needs at least "
                         f"{MIN_SHARED_BLOCKS}")
    if not (np.isfinite(x).all() and np.isfinite(y).all() and (x > 0).all() and (y > 0).all()):
        raise ValueError("every latency must be a positive, finite number of ms")
    x, y = np.log(x), np.log(y)
    slope, offset = np.polyfit(x, y, 1)
    residual = y - (offset + slope * x)
    small, large = np.percentile(x, [5, 95])
    return {"blocks": int(len(x)), "slope": float(slope), "offset": float(offset),
            "residual_sd": float(residual.std(ddof=2)),
            "within_10_pct": latency_metrics(np.exp(x), np.exp(y))["within_10_pct"],
            "within_10_pct_fitted": latency_metrics(np.exp(y - residual),
                                                    np.exp(y))["within_10_pct"],
            "ratio_small": float(np.exp(offset + (slope - 1) * small)),
            "ratio_large": float(np.exp(offset + (slope - 1) * large))}


def state_stretch(earlier: pd.DataFrame, later: pd.DataFrame) -> dict[str, float]:
    """Fit log(later ms) = offset + slope * log(earlier ms) over the blocks (``row_id``) both
    dataset frames labelled successfully; the agreement within ±10% before and after the fit.

    Returns ``blocks``, ``slope``, ``offset``, ``residual_sd`` (of the log ratio after the fit),
    ``within_10_pct`` (later against earlier as labelled), ``within_10_pct_fitted`` (later
    against the fit), and the fit's ratio at the earlier labels' 5th and 95th percentile
    (``ratio_small``, ``ratio_large``): how much cheaper or dearer small and large blocks came
    out.
    """
    pairs = shared_labels(earlier, later)
    if len(pairs) < MIN_SHARED_BLOCKS:
        raise ValueError(f"earlier and later share {len(pairs)} labelled blocks: a slope needs "
                         f"at least {MIN_SHARED_BLOCKS} (label the same row ids in both)")
    return power_fit(pairs["latency_ms_earlier"], pairs["latency_ms_later"])
