"""Mixed precision: which precision `auto` picks, loss scaling, and every strategy's update
under bf16 autocast pointing the way of its fp32 update."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from taskweight import weighting
from taskweight.data import batch_to_device, collate_batch, open_dataset
from taskweight.engine import TrainStep
from taskweight.models import resnet10_multitask
from taskweight.precision import LossScaler, cpu_has_native_bf16, resolve_precision

CPU = torch.device("cpu")
OPTIONS = {
    "static": {"weights": {"det": 1, "seg": 30}},
    "async": {"weights": {"det": 1, "seg": 30}, "frequencies": {"det": 1, "seg": 2}},
    "handcrafted": {"iterations": 1},
}


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / f"cpuinfo-{abs(hash(flags))}"
    path.write_text(f"processor\t: 0\nmodel name\t: test\nflags\t\t: fpu sse2 {flags}\n\nprocessor\t: 1\n")
    return path


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "amx_tile amx_bf16"))
    assert not cpu_has_native_bf16(_cpuinfo(tmp_path, "avx512f avx512bw"))  # bf16 only emulated there
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_auto_precision_per_device(monkeypatch):
    import taskweight.precision as precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", CPU) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("bf16", CPU) == "bf16"  # asked for explicitly: honoured
    with pytest.raises(ValueError, match="option 'precision': fp16 needs a CUDA device"):
        resolve_precision("fp16", CPU)
    with pytest.raises(ValueError, match="option 'precision'"):
        resolve_precision("fp8", CPU)
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", cuda) == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_precision("auto", cuda) == "fp16"


def test_loss_scaling_keeps_loss_values_and_scales_gradients_only():
    scaler = LossScaler("fp16", CPU)  # torch's GradScaler also runs on a CPU, which lets this be tested here
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    losses = {"det": (3 * x).sum(), "seg": (x * x).sum()}
    scaled = scaler.scale_gradients(losses)
    scale = float(scaler.scale())
    assert scale == 2.0**16
    assert {t: float(v.detach()) for t, v in scaled.items()} == {t: float(v.detach()) for t, v in losses.items()}
    (grad,) = torch.autograd.grad(scaled["det"] + scaled["seg"], x)
    assert grad.tolist() == [scale * (3 + 2 * 1.0), scale * (3 + 2 * -2.0)]
    plain = LossScaler("bf16", CPU)
    assert plain.scale() == 1.0 and plain.scale_gradients(losses) is losses


def test_gradnorm_divides_its_norms_by_the_gradient_scale():
    """GradNorm fed loss-scaled gradients (S = 2^16) ends with the same weights as unscaled."""
    results = []
    for scale in (1.0, 2.0**16):
        torch.manual_seed(0)
        W = torch.nn.Parameter(torch.randn(3))
        s = weighting.get("gradnorm", tasks=("det", "seg"), lr=0.1)
        s.gradient_scale = torch.tensor(scale)
        for step in range(4):
            losses = {
                "det": (W * torch.tensor([1.0, 2.0, 3.0])).sum() ** 2 + 5 - step,
                "seg": (W * torch.tensor([0.5, -1.0, 0.2])).sum() ** 2 + 1,
            }
            scaler_losses = {t: _scaled(v, scale) for t, v in losses.items()}
            W.grad = None
            s.backward(scaler_losses, [W], [W])
        results.append((s.weights.detach().clone(), W.grad / scale))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-5)


def _scaled(value: torch.Tensor, scale: float) -> torch.Tensor:
    from taskweight.precision import _ScaleGradient

    return _ScaleGradient.apply(value, torch.tensor(scale))


@pytest.fixture(scope="module")
def batch(tiny_kitti: Path) -> dict:
    data = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192))
    return batch_to_device(collate_batch([data[i] for i in range(8)]), torch.device("cpu"))


def _shared_update(name: str, batch: dict, precision: str, channels_last: bool) -> torch.Tensor:
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64).train()
    strategy = weighting.get(name, tasks=model.tasks, **OPTIONS.get(name, {}))
    optimizer = torch.optim.SGD([*model.parameters(), *strategy.trainable_parameters()], lr=0.0)
    step = TrainStep(model, strategy, optimizer, device=CPU, precision=precision, channels_last=channels_last)
    step(copy.deepcopy(batch))
    return torch.cat([p.grad.reshape(-1) for p in model.shared_parameters() if p.grad is not None])


@pytest.mark.parametrize("name", weighting.available())
def test_bf16_update_points_the_way_of_the_fp32_update(name: str, batch: dict):
    """The shared-parameter update of one step under bf16 autocast + channels-last points the
    way of the fp32 update, in fp32.

    Measured on this network at initialisation: cosine 0.968–0.975 for every strategy; the
    difference comes from the encoder's bf16 backward itself (the same 0.97 with both heads
    run in fp32, and at widths 0.25–1.0), and it is an order of magnitude below SGD's own noise
    (the cosine between the fp32 gradients of two batches is 0.2–0.35 in the first 40 steps).
    A lost loss scale, a wrong layout or a strategy step in bf16 gone wrong would fall far
    below 0.95.
    """
    fp32 = _shared_update(name, batch, "fp32", channels_last=False)
    bf16 = _shared_update(name, batch, "bf16", channels_last=True)
    assert fp32.shape == bf16.shape and fp32.dtype == bf16.dtype == torch.float32
    cosine = torch.nn.functional.cosine_similarity(fp32, bf16, dim=0)
    assert cosine >= 0.95, (name, float(cosine))


def test_a_step_returns_fp32_losses_and_weights_under_bf16(batch: dict):
    for name in ("gradnorm", "mgda", "uncertainty", "geometric"):
        model = resnet10_multitask(width=0.25, image_height=64).train()
        strategy = weighting.get(name, tasks=model.tasks)
        optimizer = torch.optim.SGD([*model.parameters(), *strategy.trainable_parameters()], lr=0.0)
        out = TrainStep(model, strategy, optimizer, device=CPU, precision="bf16", channels_last=True)(batch)
        assert {t: v.dtype for t, v in out.losses.items()} == {"det": torch.float32, "seg": torch.float32}
        assert all(not isinstance(w, torch.Tensor) or w.dtype == torch.float32 for w in out.weights.values()), name
