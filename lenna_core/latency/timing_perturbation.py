"""A test mode that perturbs every measured time, to prove that checked outputs never depend
on one.

The chapters are regression-tested by re-executing them and comparing their outputs with the
committed ones (nbval). Any compared line that is computed from a live timing passes on the
machine that committed it and fails, by chance, on another. Setting ``LENNA_PERTURB_TIMINGS``
to an integer seed multiplies every time the package measures (the profiler's passes on CPU
and CUDA, the thread-CPU clock of the additivity experiment, the wall time of a gate reset)
by its own factor drawn uniformly from ``[1 - a, 1 + a]``, with ``a`` from
``LENNA_PERTURB_AMPLITUDE`` (default 0.3). The draws come from a generator seeded by the
variable, so a perturbed run is repeatable; a chapter that still matches its committed
outputs under it compares nothing that a measurement can change.

Never label data with it on: :func:`perturbation_settings` is recorded in every machine
fingerprint, so data measured under it says so.
"""

from __future__ import annotations

import os

import numpy as np

SEED_VARIABLE = "LENNA_PERTURB_TIMINGS"
AMPLITUDE_VARIABLE = "LENNA_PERTURB_AMPLITUDE"
DEFAULT_AMPLITUDE = 0.3

# One generator per process and setting: re-created when the variables change, so a test can
# switch the mode on and off with monkeypatch.setenv.
_generator: dict[tuple[int, float], np.random.Generator] = {}


def perturbation_settings() -> dict | None:
    """The active perturbation as ``{"seed", "amplitude"}``, or None when the mode is off."""
    raw_seed = os.environ.get(SEED_VARIABLE, "").strip()
    if not raw_seed:
        return None
    try:
        seed = int(raw_seed)
    except ValueError:
        seed = -1
    if seed < 0:
        raise ValueError(f"{SEED_VARIABLE}={raw_seed!r}: set it to an integer seed >= 0, or "
                         "unset it to time without perturbation")
    raw_amplitude = os.environ.get(AMPLITUDE_VARIABLE, "").strip() or str(DEFAULT_AMPLITUDE)
    try:
        amplitude = float(raw_amplitude)
    except ValueError:
        amplitude = float("nan")
    if not 0.0 <= amplitude < 1.0:
        raise ValueError(f"{AMPLITUDE_VARIABLE}={raw_amplitude!r}: must be a number in [0, 1) "
                         "(the largest relative change of a timing)")
    return {"seed": seed, "amplitude": amplitude}


def perturb(duration: float) -> float:
    """``duration`` (any unit) times a seeded random factor in ``[1 - a, 1 + a]`` when
    ``LENNA_PERTURB_TIMINGS`` is set; unchanged otherwise."""
    settings = perturbation_settings()
    if settings is None:
        return duration
    key = (settings["seed"], settings["amplitude"])
    if key not in _generator:
        _generator.clear()
        _generator[key] = np.random.default_rng(settings["seed"])
    a = settings["amplitude"]
    return duration * float(_generator[key].uniform(1.0 - a, 1.0 + a))
