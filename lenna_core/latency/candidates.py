"""The latency models chapter 4 compares, fitted side by side on the same training blocks."""

from __future__ import annotations

import pandas as pd

from lenna_core.latency.linear_model import ElasticNetLatency
from lenna_core.latency.lookup_table import LookupTableModel, OpLatencyTable
from lenna_core.latency.mlp_model import MLPLatency

#: The model chapter 4 saves for the search by default: the MLP correcting the lookup table.
MLP_ON_TABLE = "MLP on lookup table"


def candidate_models(mlp: MLPLatency, table: OpLatencyTable, train: pd.DataFrame, *,
                     hidden: tuple[int, ...], max_epochs: int, seed: int
                     ) -> dict[str, object]:
    """The models chapter 4 compares, fitted on ``train`` (``mlp`` is fitted already)."""
    models = {
        "MLP": mlp,
        # The same MLP learning log(latency / calibrated table) instead of log(latency).
        MLP_ON_TABLE: MLPLatency(hidden=hidden, max_epochs=max_epochs, random_state=seed,
                                 prior=table),
        "ElasticNet": ElasticNetLatency(random_state=seed),
        "lookup table": LookupTableModel(table),
        # The table's sums with a least-squares scale and offset fitted on the training blocks.
        "lookup table, calibrated": LookupTableModel(table, calibrate=True),
    }
    for model in models.values():
        if model is not mlp:
            model.fit(train, train["latency_ms"])
    return models
