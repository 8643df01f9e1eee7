"""Latency penalties for the architecture loss: how CE and E[latency] are combined.

Every penalty compares the estimated latency ``E`` with a reference ``ref`` in the same
unit (ms for measured latency, millions of multiply-adds for the FLOPs proxy), so one
``lam`` means the same thing whatever the device or the size of the target network:

* :class:`LinearPenalty` (LENNA, DARTS + latency): ``CE + lam * E / ref``.
* :class:`MultiplicativePenalty` (ProxylessNAS's log form): ``CE * (log E / log ref) ** lam``
  (ProxylessNAS's beta is our lam); it needs ``E`` and ``ref`` above 1 in the estimator's
  unit (milliseconds on a CPU; use a smaller unit for devices that run blocks in under 1 ms).
* :class:`HingePenalty` (a latency budget): ``CE + lam * max(0, E / ref - 1)``: no pull
  once the estimate is under the target ``ref``.

``lam = 0`` is plain DARTS for all three. ``ref=None`` lets the search set it to the
estimate at its starting point (uniform alphas) and record it.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Penalty:
    """Base: a weight ``lam`` >= 0 and a reference ``ref`` > 0 (or None: set at search start)."""

    lam: float = 0.0
    ref: float | None = None

    kind = "base"

    def __post_init__(self) -> None:
        if isinstance(self.lam, numbers.Real) and not isinstance(self.lam, bool | int | float):
            object.__setattr__(self, "lam", float(self.lam))  # numpy scalars: np.float32(1.0)
        if isinstance(self.lam, bool) or not isinstance(self.lam, int | float) \
                or not math.isfinite(self.lam) or self.lam < 0:
            raise ValueError(f"lam={self.lam!r}: the latency weight must be a finite number "
                             ">= 0 (0 is plain DARTS)")
        if self.ref is not None and (not math.isfinite(self.ref) or self.ref <= 0):
            raise ValueError(f"ref={self.ref!r}: the reference latency must be positive, "
                             "in the estimator's unit (or None to use the starting estimate)")

    def with_ref(self, ref: float) -> Penalty:
        """The same penalty with ``ref`` set (keeps one already given)."""
        return self if self.ref is not None else type(self)(self.lam, float(ref))

    def _ratio(self, expected: torch.Tensor) -> torch.Tensor:
        if self.ref is None:
            raise ValueError("ref is not set: call with_ref(starting estimate) first")
        return expected / self.ref

    def __call__(self, ce: torch.Tensor, expected: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(architecture loss, the part of it the latency adds) for CE and the estimate E."""
        loss = self.combine(ce, expected)
        return loss, float(loss.detach() - ce.detach())

    def combine(self, ce: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        """The architecture loss."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """JSON-ready description (for logs and checkpoints)."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class LinearPenalty(Penalty):
    """``CE + lam * E / ref`` (LENNA's loss with the latency normalised by a reference)."""

    kind = "linear"

    def combine(self, ce: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        """The architecture loss."""
        return ce + self.lam * self._ratio(expected)


@dataclass(frozen=True)
class MultiplicativePenalty(Penalty):
    """``CE * (log E / log ref) ** lam``: ProxylessNAS's multiplicative log form."""

    kind = "multiplicative"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ref is not None and self.ref <= 1.0:
            raise ValueError(f"ref={self.ref!r}: the log form needs a reference above 1 in the "
                             "estimator's unit (express latency in a smaller unit)")

    def combine(self, ce: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        """The architecture loss (estimates at or below 1 are held just above it)."""
        if self.ref is None:
            raise ValueError("ref is not set: call with_ref(starting estimate) first")
        ratio = torch.log(expected.clamp_min(1.0 + 1e-6)) / math.log(self.ref)
        return ce * ratio ** self.lam


@dataclass(frozen=True)
class HingePenalty(Penalty):
    """``CE + lam * max(0, E / ref - 1)``: pushes only while the estimate exceeds ``ref``."""

    kind = "hinge"

    def combine(self, ce: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
        """The architecture loss."""
        return ce + self.lam * torch.relu(self._ratio(expected) - 1.0)


PENALTIES = {cls.kind: cls for cls in (LinearPenalty, MultiplicativePenalty, HingePenalty)}


def make_penalty(kind: str, lam: float, ref: float | None = None) -> Penalty:
    """The penalty of the given ``kind`` (linear, multiplicative or hinge)."""
    if kind not in PENALTIES:
        raise ValueError(f"penalty kind={kind!r}: allowed kinds are {', '.join(PENALTIES)}")
    return PENALTIES[kind](lam, ref)
