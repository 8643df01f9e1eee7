"""One place where every chapter sets seeds, determinism and display options."""

from __future__ import annotations

import os
import platform
import random
import warnings
from pathlib import Path

import numpy as np
import torch

from lenna_core.latency.device_identity import DeviceMismatchWarning
from lenna_core.latency.profiler import resolve_device
from lenna_core.validation import check_int


def setup_book(seed: int = 0, threads: int | None = 1, figures_dir: str | Path = "../figures"
               ) -> dict:
    """Seed every generator, fix CPU threads and plot style; returns what it set, for the record."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: must be a non-negative integer")
    # The chapters compare devices explicitly (chapter 5 prints both and what differs); a
    # warning would print on some machines and not on others, and nbval compares stderr.
    warnings.filterwarnings("ignore", category=DeviceMismatchWarning)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads={threads}: must be a positive integer or None")
        torch.set_num_threads(threads)
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid")
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight"})
    pd.set_option("display.precision", 4)
    pd.set_option("display.width", 120)
    figures = Path(figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    # cpu_capability: the kernels' code path (scripts/cpu_isa.sh pins AVX2), on which float
    # rounding, and with it chapter 6's derived cells, depends.
    return {"seed": seed, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "python": platform.python_version(), "figures_dir": os.fspath(figures)}


def check_int_parameters(**checks: tuple[object, int]) -> None:
    """Refuse, naming the chapter parameter, the first value that is not an integer >= its
    minimum: ``check_int_parameters(eval_epochs=(eval_epochs, 1))``. Chapters call this before
    any long work, so a bad value stops the chapter in seconds, not after its searches."""
    for name, (value, low) in checks.items():
        check_int(name, value, low, hint=" (the table at the top of the chapter gives "
                  "every parameter's range)")


def check_device_parameters(**devices: str) -> None:
    """Refuse, naming the chapter parameter, a device torch does not know or this machine
    lacks: ``check_device_parameters(search_device=search_device)``."""
    for name, value in devices.items():
        resolve_device(value, name)
