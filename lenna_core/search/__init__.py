"""Layer 2, latency-aware search: penalties, estimators of a network's latency from its blocks,
one search step, the search loop with checkpoints (on one process, or on several under
torchrun), evaluation of derived cells, and sweeps.

May import lenna_core.space and lenna_core.latency; never book or cli.
"""
