"""Layer 2, latency-aware search: penalties, estimators of a network's latency from its blocks,
one search step, the search loop with checkpoints (on one process, or on several under
torchrun), evaluation of derived cells, and sweeps (in this process, a local pool, or on any
executor: Dask, Slurm through submitit).

May import lenna_core.space and lenna_core.latency; never book or cli.
"""
