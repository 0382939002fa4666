"""Gradient aggregations on the shared representation (``method.gradients: representation``, MGDA-UB).

Checked against autograd computed independently in the test: the encoder receives (∂Z/∂θ)ᵀ d_Z
with d_Z = Σ_τ w_τ ∂L_τ/∂Z and w the strategy's weights on the representation Gramian; each head
its own unweighted ∇L_τ; a fixed linear combination gives the same update in both modes (the
chain rule); the encoder is back-propagated once per step instead of once per task; and the
combinations that cannot work are refused naming the option.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import Tensor

from taskweight import weighting
from taskweight.config import load_config
from taskweight.data import batch_to_device, collate_batch, open_dataset
from taskweight.engine import TrainStep, check_gradients
from taskweight.errors import ConfigError
from taskweight.models import MultiTaskNet, resnet10_multitask
from taskweight.weighting import GramianAggregation
from taskweight.weighting.mgda import min_norm_coefficients

CPU = torch.device("cpu")


class FixedCombination(GramianAggregation):
    """d = 0.3 g_det + 0.7 g_seg whatever the Gramian: linear, so both modes must agree."""

    def gramian_weights(self, gramian: Tensor, losses: Tensor) -> Tensor:
        return torch.tensor([0.3, 0.7], dtype=gramian.dtype)


@pytest.fixture(scope="module")
def batch(tiny_kitti: Path) -> dict:
    data = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192))
    return batch_to_device(collate_batch([data[i] for i in range(4)]), torch.device("cpu"))


def close(a: Tensor, b: Tensor, tol: float = 1e-5) -> bool:
    """‖a − b‖ ≤ tol·‖b‖: fp32 sums taken in another order differ by rounding, not by more."""
    return float((a - b).norm()) <= tol * float(b.norm()) + 1e-12


def _model() -> MultiTaskNet:
    torch.manual_seed(0)
    return resnet10_multitask(width=0.25, image_height=64).train()


def _gradients_after_one_step(model: MultiTaskNet, strategy, batch: dict, gradients: str) -> dict[str, Tensor]:
    """The parameter gradients the step produced (lr 0: the optimiser leaves the parameters as they were)."""
    step = TrainStep(model, strategy, torch.optim.SGD(model.parameters(), lr=0.0), device=CPU, gradients=gradients)
    step(batch)
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def test_a_linear_combination_gives_the_same_update_in_both_modes(batch: dict) -> None:
    by_parameters = _gradients_after_one_step(_model(), FixedCombination(("det", "seg")), batch, "parameters")
    by_representation = _gradients_after_one_step(_model(), FixedCombination(("det", "seg")), batch, "representation")
    assert by_parameters.keys() == by_representation.keys()
    assert any(name.startswith("encoder.") for name in by_parameters)
    for name, grad in by_parameters.items():
        assert close(by_representation[name], grad), name


def test_mgda_on_the_representation_against_autograd_by_hand(batch: dict) -> None:
    model = _model()
    reference = copy.deepcopy(model)
    got = _gradients_after_one_step(model, weighting.get("mgda", normalization="none"), batch, "representation")

    # by hand: the per-task partial derivatives ∂L_τ/∂Z (the heads see Z = (s8, s16, s32) as inputs), their
    # Gramian and MGDA's weights w; then the encoder's gradient is ∇_θ Σ_τ w_τ L_τ on the uncut graph
    images = batch["image"]
    features = reference.encode(images)
    size = (images.shape[-2], images.shape[-1])
    cut = {name: value.detach().requires_grad_() for name, value in features.items()}
    cut_losses = reference.compute_losses(reference.decode(cut, size), batch)
    rows = []
    for task in ("det", "seg"):
        grads = torch.autograd.grad(cut_losses[task], list(cut.values()), retain_graph=True)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    jacobian = torch.stack(rows)
    w = min_norm_coefficients(jacobian @ jacobian.T)
    assert 0.0 < float(w[0]) < 1.0  # a real trade-off, not a vertex: the test would notice a swapped row
    losses = reference.compute_losses(reference.decode(features, size), batch)
    expected = torch.autograd.grad(
        w[0] * losses["det"] + w[1] * losses["seg"], list(reference.encoder.parameters()), retain_graph=True
    )
    for (name, _), grad in zip(reference.encoder.named_parameters(), expected, strict=True):
        assert close(got[f"encoder.{name}"], grad), name
    # each head receives its own unweighted task gradient
    for task, head in (("det", reference.det_head), ("seg", reference.seg_head)):
        own = torch.autograd.grad(losses[task], list(head.parameters()), retain_graph=True)
        for (name, _), grad in zip(head.named_parameters(), own, strict=True):
            assert close(got[f"{task}_head.{name}"], grad), (task, name)
    # and the update differs from MGDA on the parameters (a different Gramian)
    by_parameters = _gradients_after_one_step(
        _model(), weighting.get("mgda", normalization="none"), batch, "parameters"
    )
    assert not torch.allclose(by_parameters["encoder.conv1.weight"], got["encoder.conv1.weight"], rtol=1e-3)


@pytest.mark.parametrize(("gradients", "expected"), [("parameters", 2), ("representation", 1)])
def test_the_encoder_is_back_propagated_once_per_step_on_the_representation(
    batch: dict, gradients: str, expected: int
) -> None:
    model = _model()
    calls = []
    model.encoder.conv1.weight.register_hook(lambda grad: calls.append(1))
    _gradients_after_one_step(model, weighting.get("pcgrad"), batch, gradients)
    assert len(calls) == expected


def test_combinations_that_cannot_work_are_refused_naming_the_option() -> None:
    with pytest.raises(ConfigError, match="method.gradients.*'equal' weights the losses"):
        check_gradients("representation", weighting.get("equal"))
    with pytest.raises(ConfigError, match="method.gradients.*--nproc"):
        check_gradients("representation", weighting.get("mgda"), distributed=True)
    with pytest.raises(ConfigError, match="method.gradients.*must be one of"):
        check_gradients("features", weighting.get("mgda"))
    check_gradients("parameters", weighting.get("equal"))  # always fine
    for name in weighting.available():
        strategy = weighting.get(name)
        if isinstance(strategy, weighting.GradientAggregation) and strategy.representation_gradients:
            check_gradients("representation", strategy)
    with pytest.raises(ConfigError, match="method.gradients"):
        TrainStep(
            _model(),
            weighting.get("uncertainty"),
            torch.optim.SGD([torch.zeros(1)]),
            device=CPU,
            gradients="representation",
        )
    cfg = load_config("tiny", None, {"method": {"name": "mgda", "gradients": "representation"}})
    assert cfg.method.gradients == "representation"
    with pytest.raises(ConfigError, match="gradients"):
        load_config("tiny", None, {"method": {"gradients": "weights"}})
