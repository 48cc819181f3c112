"""Trajectory recording: a sampler callback that keeps (step, x, x0_pred) every k steps."""
from __future__ import annotations

from typing import Optional

import torch


class TrajectoryRecorder:
    """Callback keeping (step, x, x0_pred) every `every` steps (i % every == 0) plus the last step seen.

    `index` selects the batch elements kept (default all); frames are stored on the CPU.
    """

    def __init__(self, every: int, index=None):
        if every < 1:
            raise ValueError(f"record_every needs every >= 1, got {every}.")
        self.every = int(every)
        self.index = None if index is None else torch.as_tensor(index, dtype=torch.long)
        self._steps: list[int] = []
        self._x: list[torch.Tensor] = []
        self._x0: list[torch.Tensor] = []
        self._last: Optional[tuple[int, torch.Tensor, torch.Tensor]] = None

    def _take(self, t: torch.Tensor) -> torch.Tensor:
        t = t if self.index is None else t[self.index.to(t.device)]
        return t.detach().to("cpu", copy=True)

    def __call__(self, i: int, x: torch.Tensor, x0_pred: torch.Tensor) -> None:
        if i % self.every == 0:
            self._steps.append(int(i))
            self._x.append(self._take(x))
            self._x0.append(self._take(x0_pred))
            self._last = None
        else:
            self._last = (int(i), x, x0_pred)      # samplers never mutate x in place: a reference is safe

    def _frames(self) -> tuple[list[int], list[torch.Tensor], list[torch.Tensor]]:
        if self._last is None:
            return self._steps, self._x, self._x0
        i, x, x0 = self._last
        return self._steps + [i], self._x + [self._take(x)], self._x0 + [self._take(x0)]

    @property
    def steps(self) -> list[int]:
        return self._frames()[0]

    @property
    def x(self) -> torch.Tensor:
        """(F, B', C, H, W) states x at the kept steps."""
        return torch.stack(self._frames()[1])

    @property
    def x0_pred(self) -> torch.Tensor:
        """(F, B', C, H, W) predicted x0 at the kept steps."""
        return torch.stack(self._frames()[2])


def record_every(k: int, index=None) -> TrajectoryRecorder:
    """A callback recording the trajectory every k steps plus the last (see `TrajectoryRecorder`)."""
    return TrajectoryRecorder(k, index)
