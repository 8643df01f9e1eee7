"""Command line: fit chapter 4's latency models on one device folder and save its model there.

    lenna fit --device-folder data/devices/onnxruntime-xeon-6-167
    python -m lenna_core.cli.fit --device-folder /tmp/xeon-6-167 --seed 1 --max-epochs 300

It trains on the folder's pool (standard labels; blocks that are also evaluation blocks left
out), scores every model against the mean of the two precise labellings beside their noise
floor and a perfect predictor's ceiling, prints the table, and saves the MLP on the lookup table,
calibrated to the precise labels' session (a power, printed), as ``mlp_latency.*`` with the
scores as ``predictor_metrics_precise.csv``, named in the folder's ``manifest.json`` (all in
:mod:`lenna_core.latency.device_models`).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from lenna_core.latency.device_models import (
    METRICS_FILE,
    MODEL_PREFIX,
    SESSION_CALIBRATED,
    fit_device_models,
    save_device_model,
)
from lenna_core.latency.session_calibration import SessionCalibration

#: The columns printed, most telling first (the CSV keeps all of them).
SHOWN = ["within_10_pct", "mape_pct", "kendall_tau", "rmse_ms", "n"]


def _widths(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give layer widths such as 256,128") from None
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: every layer width must be >= 1")
    return widths


def state_note(state: dict) -> str:
    """What the pool's own labels of the evaluation blocks say about the pool's machine state
    against the precise labels' (``DeviceModels.state``), and what a model trained on it
    inherits."""
    return (f"precise labels = pool labels ^ {state['slope']:.3f} over the {state['blocks']} "
            f"blocks both label (small blocks {(state['ratio_small'] - 1) * 100:+.1f}%, large "
            f"{(state['ratio_large'] - 1) * 100:+.1f}%, residual {state['residual_sd'] * 100:.1f}%"
            "): a power away from 1 is a change in the machine's state between the two "
            "labellings, which a model trained on the pool inherits")


def session_note(session: SessionCalibration) -> str:
    """The power the saved model applies to reach the precise labels' session
    (``DeviceModels.session``)."""
    return (f"saved model = MLP on lookup table calibrated to the precise labels' session: "
            f"ms -> {np.exp(session.log_offset):.3f} x ms ^ {session.slope:.3f} (fitted on "
            f"{session.blocks} blocks; the row '{SESSION_CALIBRATED}' scores it, each block "
            "calibrated on the other half)")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, fit and score the models of one device folder, save its model."""
    parser = argparse.ArgumentParser(
        prog="lenna fit", description="Fit chapter 4's latency models on a device folder's "
        "pool, score them against its precise labels (ms of that device), and save the MLP "
        "on the lookup table and the scores into the folder.")
    parser.add_argument("--device-folder", required=True,
                        help="folder with manifest.json, pool.csv, precise.csv, "
                             "precise_repeat.csv and the op table (data/README.md, 'Devices')")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every model and of the ceiling's draws (default: "
                             "%(default)s)")
    parser.add_argument("--max-epochs", type=int, default=600,
                        help="upper bound on MLP training epochs; early stopping decides "
                             "(default: %(default)s)")
    parser.add_argument("--hidden", type=_widths, default=(256, 128),
                        help="MLP hidden layer widths, comma-separated (default: 256,128)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        result = fit_device_models(args.device_folder, hidden=args.hidden,
                                   max_epochs=args.max_epochs, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    seconds = time.perf_counter() - started
    sizes = result.sizes
    print(result.manifest["description"])
    print(f"trained on {sizes['train']} pool blocks ({sizes['left_out']} left out: evaluation "
          f"blocks); scored on {sizes['evaluation']} blocks labelled precisely twice, against "
          f"their mean (ms)")
    with pd.option_context("display.width", 200):
        print(result.metrics[SHOWN].round(3).to_string())
    if result.state is not None:
        print(state_note(result.state))
    if result.session is not None:
        print(session_note(result.session))
    manifest = save_device_model(result)
    print(f"fitted and scored in {seconds:.1f} s; saved {MODEL_PREFIX}.* and {METRICS_FILE} in "
          f"{result.folder} (manifest models: {manifest['models']})")


if __name__ == "__main__":
    main()
