"""Homoscedastic-uncertainty weighting (Kendall et al., CVPR 2018; paper §IV-A4).

Each task learns s_τ = log σ_τ² (initialised to ``init``), trained by the main optimiser with
the network. Two forms:

``form="kendall"`` (default), per task type:
    regression-type      ½ e^{−s_τ} L_τ + ½ s_τ     (optimum σ_τ² = L_τ, effective weight ½e^{−s_τ})
    classification-type    e^{−s_τ} L_τ + ½ s_τ     (optimum σ_τ² = 2 L_τ, effective weight e^{−s_τ})

``form="positive"``: L_τ / (2σ_τ²) + log(1 + σ_τ²), the positive-regulariser variant in
Valeo's public multi-task code for the same group's networks; its regulariser never goes
negative, so the objective stays bounded below by 0. Optimum: σ⁴ / (1 + σ²) = L_τ / 2.

Default: the Kendall form with *every* task treated as regression-type (``task_types``
changes it per task). Why: both of our losses mix classification and regression terms
(the detection loss is GIoU + BCE, segmentation is per-pixel cross-entropy), so neither
type is exact; the regression form treats the two tasks symmetrically and has the clean
optimum σ² = L, i.e. it drives every weighted loss towards ½, which is the behaviour the
method is known for. The classification form would only double the effective weight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from taskweight.weighting.base import LossWeighting
from taskweight.weighting.registry import register

FORMS = ("kendall", "positive")
TASK_TYPES = ("regression", "classification")


@register("uncertainty", title="Uncertainty weighting")
class UncertaintyWeighting(LossWeighting):
    """Learned homoscedastic uncertainty: ½e^{−s}L + ½s per task, s = log σ² (Kendall et al. 2018)."""

    cuda_graph_safe = True  # device arithmetic only: see WeightingStrategy.cuda_graph_safe

    def __init__(
        self,
        tasks: Sequence[str],
        *,
        form: str = "kendall",
        task_types: Mapping[str, str] | None = None,
        init: float = 0.0,
    ) -> None:
        super().__init__(tasks)
        if form not in FORMS:
            raise ValueError(f"option 'form' must be one of {FORMS}, got {form!r}")
        self.form = form
        types = dict(task_types or {})
        unknown = set(types) - set(self.tasks)
        if unknown:
            raise ValueError(f"option 'task_types': unknown task(s) {sorted(unknown)}")
        for task, kind in types.items():
            if kind not in TASK_TYPES:
                raise ValueError(f"option 'task_types': {task!r} must be one of {TASK_TYPES}, got {kind!r}")
        self.task_types = {t: types.get(t, "regression") for t in self.tasks}
        self.log_vars = nn.Parameter(torch.full((len(self.tasks),), float(init)))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [self.log_vars]

    def _scale(self, index: int, task: str) -> Tensor:
        """The effective weight of task τ as a differentiable tensor."""
        s = self.log_vars[index]
        if self.form == "positive" or self.task_types[task] == "regression":
            return 0.5 * torch.exp(-s)
        return torch.exp(-s)

    def _regulariser(self, index: int) -> Tensor:
        s = self.log_vars[index]
        if self.form == "positive":
            return torch.log1p(torch.exp(s))
        return 0.5 * s

    def weights(self, losses: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """The effective weights (differentiable in s_τ)."""
        return {t: self._scale(i, t).to(losses[t].dtype) for i, t in enumerate(self.tasks) if t in losses}

    def objective(
        self,
        losses: Mapping[str, Tensor],
        weights: Mapping[str, Tensor] | None = None,
        active: Sequence[str] | None = None,
    ) -> Tensor:
        """Σ_τ scale_τ(s_τ) L_τ + reg(s_τ) over the tasks present."""
        weights = self.weights(losses) if weights is None else weights
        terms = [weights[t] * losses[t] + self._regulariser(i) for i, t in enumerate(self.tasks) if t in losses]
        return torch.stack(terms).sum()

    def current_weights(self) -> dict[str, float]:
        with torch.no_grad():
            return {t: float(self._scale(i, t)) for i, t in enumerate(self.tasks)}

    def variances(self) -> dict[str, float]:
        """σ_τ² = e^{s_τ}."""
        with torch.no_grad():
            return {t: float(torch.exp(self.log_vars[i])) for i, t in enumerate(self.tasks)}
