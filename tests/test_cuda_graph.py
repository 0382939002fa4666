"""The CUDA-graph training step (:class:`taskweight.engine.CudaGraphs`, option ``cuda_graph``).

On the CPU: when the option turns graphs on, the error that names what stands against them, the
padded target sizes, that padding the detection targets further leaves the loss unchanged, and the
promise behind ``cuda_graph_safe`` (a strategy's backward leaves its host-side state as it was).
On a CUDA device (``TASKWEIGHT_TEST_DEVICE=cuda``, ``benchmarks/gpu.sh``): graphed steps train the
same parameters as eager steps, a resumed step re-captures, and a strategy that is not capture-safe
runs eagerly.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from taskweight import weighting
from taskweight.data import collate_batch, open_dataset
from taskweight.engine import CudaGraphs, StepOutput, TrainStep, cuda_graph_obstacle, padded_size, use_cuda_graph
from taskweight.errors import ConfigError
from taskweight.models import resnet10_multitask
from taskweight.models.detection import YoloDetectionHead, pad_detection_targets

DEVICE = torch.device(os.environ.get("TASKWEIGHT_TEST_DEVICE", "cpu"))
CUDA = torch.device("cuda")
OPTIONS: dict[str, dict[str, Any]] = {"static": {"weights": {"det": 1, "seg": 30}}}
SAFE = [  # the flag of an instance: PCGrad and MGDA are capture-safe with two tasks only
    name
    for name in weighting.available()
    if weighting.get(name, tasks=("det", "seg"), **OPTIONS.get(name, {})).cuda_graph_safe
]
needs_cuda = pytest.mark.skipif(DEVICE.type != "cuda", reason="needs TASKWEIGHT_TEST_DEVICE=cuda")


def _obstacle(**changes: Any) -> str | None:
    options: dict[str, Any] = {
        "device": CUDA,
        "precision": "bf16",
        "strategy": weighting.get("equal", tasks=("det", "seg")),
        "distributed": False,
        "gradients": "parameters",
        "compile": False,
    }
    return cuda_graph_obstacle(**{**options, **changes})


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"device": torch.device("cpu")}, "CUDA device"),
        ({"precision": "fp16"}, "fp16"),
        ({"distributed": True}, "several processes"),
        ({"gradients": "representation"}, "representation"),
        ({"compile": True}, "torch.compile"),
        ({"strategy": weighting.get("pcgrad", tasks=("det", "seg", "depth"))}, "'pcgrad'"),
        ({"strategy": weighting.get("mgda", tasks=("det", "seg", "depth"))}, "'mgda'"),
        ({"strategy": weighting.get("upgrad", tasks=("det", "seg"))}, "'upgrad'"),
        ({"strategy": weighting.get("handcrafted", tasks=("det", "seg"))}, "'handcrafted'"),
    ],
)
def test_what_stands_against_a_graph_is_named(changes: dict[str, Any], named: str):
    assert _obstacle() is None  # the reference setting: CUDA, bf16, one process, equal
    obstacle = _obstacle(**changes)
    assert obstacle is not None and named in obstacle
    options = {
        "device": CUDA,
        "precision": "bf16",
        "strategy": weighting.get("equal", tasks=("det", "seg")),
        "distributed": False,
        "gradients": "parameters",
        "compile": False,
        **changes,
    }
    assert use_cuda_graph("auto", **options) is False  # auto steps aside
    assert use_cuda_graph("off", **options) is False
    with pytest.raises(ConfigError, match=r"option 'cuda_graph': on, but .*" + named.replace("'", ".")):
        use_cuda_graph("on", **options)


def test_graph_modes():
    options: dict[str, Any] = {
        "device": CUDA,
        "precision": "fp32",
        "strategy": weighting.get("gradnorm", tasks=("det", "seg")),
        "distributed": False,
        "gradients": "parameters",
        "compile": False,
    }
    assert use_cuda_graph("auto", **options) is True
    assert use_cuda_graph("on", **options) is True
    assert use_cuda_graph("off", **options) is False
    with pytest.raises(ConfigError, match="option 'cuda_graph' must be one of auto, on, off, got 'yes'"):
        use_cuda_graph("yes", **options)


def test_a_cpu_step_never_captures():
    model = resnet10_multitask(width=0.25, image_height=64)
    strategy = weighting.get("equal", tasks=model.tasks)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    assert TrainStep(model, strategy, optimizer, device=torch.device("cpu"), cuda_graph="auto").graphs is None
    with pytest.raises(ConfigError, match="option 'cuda_graph': on, but CUDA graphs need a CUDA device"):
        TrainStep(model, strategy, optimizer, device=torch.device("cpu"), cuda_graph="on")


@pytest.mark.parametrize(("count", "size"), [(0, 8), (1, 8), (8, 8), (9, 16), (16, 16), (17, 32), (40, 64)])
def test_padded_sizes_are_powers_of_two_from_eight(count: int, size: int):
    assert padded_size(count) == size


def test_extra_padding_leaves_the_detection_loss_unchanged():
    """The graph pads every batch's targets to a bucket size; the loss and its terms must not see it."""
    torch.manual_seed(0)
    anchors = torch.tensor([[10.0, 8.0], [20.0, 30.0], [40.0, 24.0]])
    head = YoloDetectionHead({"s8": 8, "s16": 8, "s32": 8}, num_classes=3, anchors=anchors)
    raw = torch.randn(3, 3, 4, 6, 8, dtype=torch.float64)  # B=3, A=3, a 4×6 grid of stride 8 (32×48 px)
    boxes = [
        torch.tensor([[2.0, 3.0, 14.0, 12.0], [20.0, 4.0, 44.0, 30.0]]),
        torch.zeros(0, 4),
        torch.tensor([[8.0, 8.0, 24.0, 24.0]]),
    ]
    labels = [torch.tensor([0, 2]), torch.zeros(0, dtype=torch.long), torch.tensor([1])]
    ignore = [None, torch.tensor([[0.0, 0.0, 16.0, 16.0]]), None]
    labelled = torch.tensor([True, True, False])
    tight = pad_detection_targets(boxes, labels, ignore, device=torch.device("cpu"))
    loose = pad_detection_targets(boxes, labels, ignore, device=torch.device("cpu"), num_boxes=8, num_ignore=8)
    assert tight.boxes.shape == (3, 2, 4) and tight.ignore.shape == (3, 1, 4)
    assert loose.boxes.shape == (3, 8, 4) and loose.ignore.shape == (3, 8, 4)
    assert loose.valid.sum(dim=1).tolist() == [2, 0, 1] and loose.ignore_valid.sum(dim=1).tolist() == [0, 1, 0]
    d_tight: dict = {}
    d_loose: dict = {}
    a = head.loss_on_targets(raw, tight, details=d_tight, labelled=labelled)
    b = head.loss_on_targets(raw, loose, details=d_loose, labelled=labelled)
    assert b.item() == pytest.approx(a.item(), rel=1e-12)
    for term in ("det_box", "det_cls", "det_obj"):
        assert float(d_loose[term]) == pytest.approx(float(d_tight[term]), rel=1e-12)
    # and both are the list-taking loss of the same batch
    listed = head.loss(raw, boxes, labels, ignore, labelled=labelled)
    assert listed.item() == pytest.approx(a.item(), rel=1e-12)
    assert listed.item() > 0


def _host_state(strategy: weighting.WeightingStrategy) -> dict[str, Any]:
    """The strategy's attributes that are neither tensors nor modules (what a graph replay cannot change)."""
    state = {}
    for key, value in vars(strategy).items():
        if key.startswith("_") and key in ("_parameters", "_buffers", "_modules"):
            continue
        if isinstance(value, torch.Tensor | torch.nn.Module | torch.optim.Optimizer | torch.Generator):
            continue
        if isinstance(value, dict) and any(isinstance(v, torch.Tensor) for v in value.values()):
            value = {k: "tensor" if isinstance(v, torch.Tensor) else v for k, v in value.items()}
        state[key] = repr(value)
    return state


def _backward_twice(strategy: weighting.WeightingStrategy) -> tuple[dict[str, Any], dict[str, Any]]:
    x = torch.zeros(2, requires_grad=True)
    strategy.backward({"det": x[0] + 2.0, "seg": 2 * x[1] + 0.5}, [x], [x])
    first = _host_state(strategy)
    y = torch.zeros(2, requires_grad=True)
    strategy.backward({"det": 3 * y[0] + 5.0, "seg": y[1] + 0.25}, [y], [y])
    return first, _host_state(strategy)


@pytest.mark.parametrize("name", SAFE)
def test_capture_safe_strategies_keep_no_host_state_that_a_replay_would_skip(name: str):
    """A replay runs the kernels of the captured ``backward`` and none of its Python: any host-side
    attribute that a second call with other losses changes would go stale under a graph."""
    first, second = _backward_twice(weighting.get(name, tasks=("det", "seg"), **OPTIONS.get(name, {})))
    assert first == second


@pytest.mark.parametrize("name", ["handcrafted", "dynamic_scaling", "dwa"])
def test_the_host_state_check_sees_strategies_that_count_on_the_host(name: str):
    """The check above can fail: these strategies accumulate loss sums and counts on the host."""
    options = {"handcrafted": {"iterations": 3}}.get(name, {})
    strategy = weighting.get(name, tasks=("det", "seg"), **options)
    assert not strategy.cuda_graph_safe
    first, second = _backward_twice(strategy)
    assert first != second


def test_the_capture_safe_set_covers_the_paper_baseline_and_gradnorm():
    assert {"equal", "gradnorm", "uncertainty", "pcgrad", "mgda"} <= set(SAFE)


@pytest.mark.parametrize("name", ["pcgrad", "mgda"])
def test_gradient_aggregations_are_capture_safe_for_two_tasks_only(name: str):
    """Two tasks: PCGrad has no order to draw and MGDA a closed form. Three: PCGrad draws its orders from
    a host generator and MGDA's Frank-Wolfe reads the device to choose its vertex and to stop."""
    assert weighting.get(name, tasks=("det", "seg")).cuda_graph_safe
    assert not weighting.get(name, tasks=("det", "seg", "depth")).cuda_graph_safe
    assert not weighting.strategy_class(name).cuda_graph_safe  # the class makes no promise for every T


def test_pcgrad_draws_no_order_for_two_tasks():
    """A replay would skip a draw that an eager call makes: with two tasks the generator stays put, with
    three it moves (and the order changes the result, test_aggregation_options)."""
    for tasks, moves in ((("det", "seg"), False), (("det", "seg", "depth"), True)):
        strategy = weighting.get("pcgrad", tasks=tasks)
        assert strategy.generator is not None
        before = strategy.generator.get_state()
        x = torch.zeros(3, requires_grad=True)
        strategy.backward({t: (i + 1) * x[i] - x[(i + 1) % 3] for i, t in enumerate(tasks)}, [x])
        assert (not torch.equal(strategy.generator.get_state(), before)) is moves, tasks


@pytest.mark.parametrize("name", ["pcgrad", "mgda"])
def test_an_aggregation_keeps_its_weights_in_one_tensor(name: str):
    """``current_weights`` reads tensors that later steps overwrite in place, so a graph replay (which
    runs the copy, not the Python) updates them too; they are copies, not views of a step's buffers."""
    strategy = weighting.get(name, tasks=("det", "seg"))
    x = torch.zeros(2, requires_grad=True)
    used = strategy.backward({"det": x[0] + 2.0, "seg": 2 * x[1] + 0.5}, [x])
    first = strategy.current_weights()
    kept = dict(strategy._last)
    assert all(isinstance(v, torch.Tensor) for v in kept.values())
    assert all(kept[t].data_ptr() != used[t].data_ptr() for t in used)
    y = torch.zeros(2, requires_grad=True)  # conflicting gradients: MGDA's α moves off its first value
    later = strategy.backward({"det": 3 * y[0] - y[1] + 1.0, "seg": y[1] - 4 * y[0] + 2.0}, [y])
    assert all(strategy._last[t] is kept[t] for t in kept)
    assert strategy.current_weights() == {t: float(v) for t, v in later.items()}
    if name == "mgda":
        assert strategy.current_weights() != first


@pytest.fixture(scope="module")
def batches(tiny_kitti: Path) -> list[dict]:
    data = open_dataset("kitti", tiny_kitti, "train", image_size=(64, 192))
    items = [data[i] for i in range(len(data))]
    return [collate_batch(items[i : i + 4]) for i in range(0, 4 * (len(items) // 4), 4)]


class _ReplayedOnTheHost(CudaGraphs):
    """The graph bookkeeping with the CUDA runtime replaced by its host equivalent: a "capture" runs the
    step once (on a GPU the replay that follows it does), and a replay runs it again on the same input
    buffers and writes the results into the captured output tensors, as a graph replay does."""

    def prepare_optimizers(self) -> None:
        for group in self.step.optimizer.param_groups:  # what the schedule must now fill in place
            group["lr"] = torch.tensor(float(group["lr"]))

    def on_side_stream(self, work):
        return work()

    def record(self, work):
        output = work()
        first = [True]

        def replay() -> None:
            if first[0]:  # the capture's own execution stands for the first replay
                first[0] = False
                return
            again: StepOutput = work()
            for static, new in ((output.losses, again.losses), (output.weights, again.weights)):
                for task, value in new.items():
                    static[task].copy_(value)

        return replay, output


@pytest.mark.parametrize("name", ["equal", "gradnorm", "uncertainty", "pcgrad", "mgda"])
def test_graph_bookkeeping_replays_each_batch_on_the_host(name: str, batches: list[dict]):
    """Warm-up, capture, copying each batch into the buffers, the copies of the outputs and the learning
    rate as a tensor: the emulated graph step trains as the eager step (to float rounding of the padding)."""

    def run(graphed: bool) -> tuple[torch.nn.Module, list[dict], TrainStep]:
        torch.manual_seed(0)
        model = resnet10_multitask(width=0.25, image_height=64).train()
        strategy = weighting.get(name, tasks=model.tasks)
        optimizer = torch.optim.AdamW([*model.parameters(), *strategy.trainable_parameters()], lr=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
        step = TrainStep(model, strategy, optimizer, device=torch.device("cpu"), scheduler=scheduler)
        if graphed:
            step.graphs = _ReplayedOnTheHost(step)
        return model, [step(b).losses for _ in range(3) for b in batches], step

    torch.manual_seed(0)
    initial = resnet10_multitask(width=0.25, image_height=64).state_dict()
    eager_model, eager_losses, _ = run(False)
    graph_model, graph_losses, step = run(True)
    assert step.graphs is not None and len(step.graphs.graphs) == 1  # one signature: 4 images, det + seg, 8 boxes
    assert len(graph_losses) == 18  # 3 passes over 6 batches: 2 warm-up steps, the capture, 15 more replays
    # padding to 8 boxes changes only the order of float sums (a stale batch in a buffer moves losses by ~5 %);
    # the aggregations amplify that rounding (PCGrad projects only where a dot product is negative, and one
    # near zero can flip; MGDA's α follows the Gramian), so their losses drift further: 2.3e-4 measured
    aggregation = isinstance(step.strategy, weighting.GradientAggregation)
    for a, b in zip(eager_losses, graph_losses, strict=True):
        expected = pytest.approx({t: v.item() for t, v in a.items()}, rel=1e-3 if aggregation else 1e-4)
        assert {t: v.item() for t, v in b.items()} == expected
    # AdamW turns a rounding-level gradient near zero into a step of up to lr in either direction, so single
    # weights may differ by ~1e-4; each tensor's whole update agrees to 0.1 % (2e-5 measured; a learning
    # rate left at its captured value or a stale batch moves it by tens of per cent), 1 % for the
    # aggregations (PCGrad 2.4e-3 measured, MGDA 1.7e-4)
    tolerance = 1e-2 if aggregation else 1e-3
    eager_state, graph_state = eager_model.state_dict(), graph_model.state_dict()
    for key, start in initial.items():
        if not start.is_floating_point():
            assert torch.equal(graph_state[key], eager_state[key]), key
            continue
        eager_update, graph_update = eager_state[key] - start, graph_state[key] - start
        gap = torch.linalg.vector_norm(graph_update - eager_update).item()
        assert gap <= tolerance * torch.linalg.vector_norm(eager_update).item() + 1e-7, (key, gap)
    assert float(step.optimizer.param_groups[0]["lr"]) == pytest.approx(1e-3 / 19)  # the schedule after 18 steps


# -- on a CUDA device -------------------------------------------------------------------------


def _steps(name: str, batches: list[dict], cuda_graph: str, rounds: int, state: dict | None = None):
    torch.manual_seed(0)
    model = resnet10_multitask(width=0.25, image_height=64).to(DEVICE).train()
    strategy = weighting.get(name, tasks=model.tasks, **OPTIONS.get(name, {})).to(DEVICE)
    optimizer = torch.optim.AdamW([*model.parameters(), *strategy.trainable_parameters()], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    step = TrainStep(
        model, strategy, optimizer, device=DEVICE, precision="fp32", scheduler=scheduler, cuda_graph=cuda_graph
    )
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        strategy.load_state_dict(state["strategy"])
        step.load_state_dict(state["step"])
    losses = [step(b).losses for _ in range(rounds) for b in batches]
    saved = {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "scheduler": scheduler.state_dict(),
        "strategy": copy.deepcopy(strategy.state_dict()),
        "step": step.state_dict(),
    }
    return model, strategy, step, losses, saved


def _max_relative_gap(got: list[dict], expected: list[dict]) -> float:
    """The largest relative difference between two runs' per-step task losses."""
    assert len(got) == len(expected)
    return max(abs(g[t].item() - e[t].item()) / abs(e[t].item()) for g, e in zip(got, expected, strict=True) for t in e)


@needs_cuda
@pytest.mark.parametrize("name", SAFE)
def test_graphed_steps_train_as_eager_steps(name: str, batches: list[dict]):
    """Per-step losses of 24 graphed steps against eager ones. Eager CUDA steps are not bit-reproducible
    (atomic adds in convolution and gather backward passes), so the gap is judged against the gap
    between two eager runs: a replay on a stale or wrong batch moves the losses by percents."""
    *_, eager_step, eager_losses, _ = _steps(name, batches, "off", rounds=4)
    *_, again_losses, _ = _steps(name, batches, "off", rounds=4)
    *_, graph_strategy, graph_step, graph_losses, _ = _steps(name, batches, "on", rounds=4)
    assert eager_step.graphs is None and graph_step.graphs is not None
    assert graph_step.graphs.graphs, "no step was captured"
    noise = _max_relative_gap(again_losses, eager_losses)
    assert _max_relative_gap(graph_losses, eager_losses) <= max(10 * noise, 2e-3), noise
    assert all(math.isfinite(w) for w in graph_strategy.current_weights().values())


@needs_cuda
def test_a_resumed_graph_step_recaptures_and_continues(batches: list[dict]):
    *_, straight_losses, _ = _steps("gradnorm", batches, "on", rounds=6)
    *_, first = _steps("gradnorm", batches, "on", rounds=3)
    _, _, step, resumed_losses, _ = _steps("gradnorm", batches, "on", rounds=3, state=first)
    *_, fresh_losses, _ = _steps("gradnorm", batches, "on", rounds=3)  # what forgetting the state would give
    assert step.graphs is not None and step.graphs.graphs
    later = straight_losses[len(resumed_losses) :]
    assert _max_relative_gap(resumed_losses, later) <= 2e-3
    assert _max_relative_gap(fresh_losses, later) > 2e-2  # the comparison can tell a resume from a restart


@needs_cuda
def test_a_strategy_that_is_not_capture_safe_runs_eagerly(batches: list[dict]):
    _, _, step, losses, _ = _steps("upgrad", batches, "auto", rounds=1)
    assert step.graphs is None and all(torch.isfinite(v).all() for out in losses for v in out.values())
