"""STCH, smooth Tchebycheff scalarisation (Lin, Zhang, Zhang, Liu & Zhang, "Smooth Tchebycheff
Scalarization for Multi-Objective Optimization", ICML 2024; the multi-task form of its authors' code
and of LibMTL's ``STCH``).

The Tchebycheff scalarisation min_x max_τ (f_τ(x) − z_τ) reaches every Pareto-optimal point but is
not smooth; the paper replaces the max by its smooth upper bound μ log Σ exp(·/μ), which tends to
it as μ → 0. For multi-task learning the objectives are the log losses relative to a nadir point
z_τ, uniform preferences:

    L_STCH = T μ log Σ_τ exp( log(L_τ / z_τ) / μ )
    ∂L_STCH/∂L_τ = T softmax( log(L/z) / μ )_τ / L_τ

so the task furthest above its nadir, relative to it, gets almost all the weight when μ is small.
z_τ is the mean of L_τ over the last warm-up epoch; during the ``warmup_epochs`` warm-up epochs the
network is trained on Σ_τ log L_τ (weights 1/L_τ). The reported weight of task τ is the effective
one, ∂(objective)/∂L_τ, detached; the backward pass differentiates the objective itself. log
needs positive losses: 1e-20 is added inside the logarithms, as in LibMTL.

Defaults: μ = 1 is LibMTL's (``STCH_mu``). LibMTL's ``STCH_warmup_epoch = 4`` counts from 0 and
trains epochs 0–4 on Σ log L, taking z from epoch 4: that is ``warmup_epochs = 5`` here. The
default is 1 (z from the first epoch's mean losses): this project trains for 12 epochs, not
LibMTL's hundreds, and five would spend over 40 % of them in the warm-up. Differences from LibMTL, which
needs every task in every batch: T is the number of tasks present in the batch (LibMTL's task
count when all are), the sum runs over them, and z_τ is the mean of L_τ over the batches of the
last warm-up epoch where τ was present; if some task was never present there, the warm-up goes
on (and the means keep accumulating) until every task has been. The loss sums (buffer), their
counts, z (buffer), whether z is set, and the epoch counter travel in the ``state_dict``. The
scalarisation is computed with ``logsumexp``: its value differs from LibMTL's (which subtracts
the detached max inside the exponentials) by that max, its gradient does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register

EPS = 1e-20


@register("stch", title="STCH")
class STCHWeighting(LossWeighting):
    """STCH: T μ log Σ exp(log(L_τ/z_τ)/μ) after a warm-up on Σ log L_τ that sets the nadir z (Lin et al. 2024)."""

    loss_sums: Tensor
    nadir: Tensor

    def __init__(self, tasks: Sequence[str], *, mu: float = 1.0, warmup_epochs: int = 1) -> None:
        super().__init__(tasks)
        if not mu > 0:
            raise ValueError(f"option 'mu' must be > 0, got {mu}")
        if not warmup_epochs >= 1:
            raise ValueError(f"option 'warmup_epochs' must be >= 1, got {warmup_epochs}")
        self.mu = float(mu)
        self.warmup_epochs = int(warmup_epochs)
        n = len(self.tasks)
        self.register_buffer("loss_sums", torch.zeros(n))
        self.register_buffer("nadir", torch.ones(n))
        self.counts = [0] * n
        self.has_nadir = False
        self._last: dict[str, float | Tensor] = {t: 1.0 for t in self.tasks}

    def current_weights(self) -> dict[str, float]:
        return {t: float(w) for t, w in self._last.items()}

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The effective weights ∂(objective)/∂L_τ; accumulates the losses during the last warm-up epoch."""
        present = [i for i, t in enumerate(self.tasks) if t in losses]
        values = torch.stack([losses[self.tasks[i]].detach() for i in present])
        if self.has_nadir:
            nadir = self.nadir[present].to(values)
            share = torch.softmax(torch.log(values / nadir + EPS) / self.mu, dim=0)
            effective = len(present) * share / (values + EPS * nadir)
        else:
            if self.epoch_count >= self.warmup_epochs - 1:
                for i in present:
                    self.loss_sums[i] += losses[self.tasks[i]].detach().to(self.loss_sums.dtype)
                    self.counts[i] += 1
            effective = 1 / (values + EPS)
        used = {self.tasks[i]: effective[k] for k, i in enumerate(present)}
        self._last.update(used)
        return used

    def objective(self, losses: Mapping[str, Tensor], weights: Mapping[str, Tensor], active: Sequence[str]) -> Tensor:
        """T μ logsumexp(log(L/z)/μ) over the tasks present; Σ log L_τ during the warm-up."""
        values = torch.stack([losses[t] for t in active])
        if not self.has_nadir:
            return torch.log(values + EPS).sum()
        nadir = self.nadir[[self.tasks.index(t) for t in active]].to(values.dtype)
        return len(active) * self.mu * torch.logsumexp(torch.log(values / nadir + EPS) / self.mu, dim=0)

    def on_epoch_end(self) -> None:
        super().on_epoch_end()
        if not self.has_nadir and self.epoch_count >= self.warmup_epochs and all(self.counts):
            counts = torch.tensor(self.counts, dtype=self.loss_sums.dtype, device=self.loss_sums.device)
            self.nadir.copy_(self.loss_sums / counts)
            self.has_nadir = True

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "counts": list(self.counts), "has_nadir": self.has_nadir}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.counts = list(state.get("counts", self.counts))
        self.has_nadir = bool(state.get("has_nadir", self.has_nadir))
