"""What a resumed run restores, checked piece by piece (mutation survivors of trainer resume and checkpoint.py).

Checkpoint files: the error that names a bad file and why, the generation kept back (``last.prev.pt``),
loads that refuse a file of the wrong kind. The trainer: ``load_checkpoint`` restores every counter and
record a run keeps (epoch, global step, history, best-so-far, initial losses, train time, RNG, the
train step's state), ``_resume`` falls back to ``last.prev.pt`` and says so, ``weights.csv`` loses the
rows written after the checkpoint, ``resumable`` tells a run folder from another one. Values are set by
hand before a save and must come back bit for bit; a run stopped after a flush of ``weights.csv`` and
resumed must write the same file as the uninterrupted run.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console

from taskweight.checkpoint import CheckpointError, load_checkpoint, previous_of, save_checkpoint
from taskweight.config import TrainConfig
from taskweight.durable import FolderBusyError, FolderLock
from taskweight.errors import RunFolderError
from taskweight.trainer import RESUME_KEYS, Trainer, _truncate_weights, resumable
from test_resume_every_strategy import _Stop, _stop_at_step


def _trainer(config: TrainConfig, run: Path) -> tuple[Trainer, io.StringIO]:
    """A trainer whose console output is kept (plain text, one line per message)."""
    out = io.StringIO()
    console = Console(file=out, width=1000, color_system=None, highlight=False)
    return Trainer(config, run, show_progress=False, console=console), out


# ----------------------------------------------------------------------------- checkpoint.py
def test_checkpoint_error_keeps_the_path_and_names_it_first() -> None:
    exc = CheckpointError("runs/a/last.pt", "broken")
    assert exc.path == Path("runs/a/last.pt")
    assert str(exc) == "runs/a/last.pt: broken"


@pytest.mark.parametrize(
    ("name", "previous"),
    [("run/last.pt", "run/last.prev.pt"), ("best.pt", "best.prev.pt"), ("x/ckpt.v2.pt", "x/ckpt.v2.prev.pt")],
)
def test_the_previous_generation_gets_prev_before_the_suffix(name: str, previous: str) -> None:
    assert previous_of(name) == Path(previous)


def test_save_keeps_exactly_one_generation_back_only_when_asked(tmp_path: Path) -> None:
    last = tmp_path / "last.pt"
    prev = tmp_path / "last.prev.pt"

    def held(path: Path) -> int:
        return torch.load(path, weights_only=True)["model"]

    save_checkpoint({"model": 1}, last, keep_previous=True)  # nothing to keep yet
    assert held(last) == 1 and not prev.exists()
    save_checkpoint({"model": 2}, last, keep_previous=True)
    assert (held(last), held(prev)) == (2, 1)
    save_checkpoint({"model": 3}, last, keep_previous=True)  # one generation: 1 is gone
    assert (held(last), held(prev)) == (3, 2)
    save_checkpoint({"model": 4}, last)  # without keep_previous the kept generation is left alone
    assert (held(last), held(prev)) == (4, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.prev.pt", "last.pt"]  # no temporary left


def _write_list(path: Path) -> None:
    torch.save([1, 2], path)


def _write_garbage(path: Path) -> None:
    path.write_bytes(b"this is not a zip archive")  # 25 bytes


@pytest.mark.parametrize(
    ("make", "required", "said"),
    [
        (None, ("model",), "no such checkpoint file"),
        (lambda p: p.write_bytes(b""), ("model",), "the file is empty (0 bytes): a write was interrupted"),
        (_write_garbage, ("model",), "cannot be read as a PyTorch checkpoint (25 bytes; "),
        (_write_list, ("model",), "holds a list, not a checkpoint dictionary"),
        (
            lambda p: torch.save({"epoch": 1}, p),
            ("model",),
            "is not a taskweight checkpoint of this kind: missing model",
        ),
        (
            lambda p: torch.save({"model": {}, "epoch": 1}, p),
            ("model", "optimizer", "epoch", "best"),
            "is not a taskweight checkpoint of this kind: missing optimizer, best",  # in the order asked for
        ),
    ],
    ids=["missing", "empty", "garbage", "a-list", "no-model", "two-keys-missing"],
)
def test_every_defect_is_a_checkpoint_error_naming_the_file(tmp_path: Path, make, required, said: str) -> None:
    path = tmp_path / "last.pt"
    if make is not None:
        make(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, required=required)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: {said}")


def _first_line_torch_says(path: Path) -> str:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # whatever torch raises, its first line is quoted
        return str(exc).strip().splitlines()[0]
    raise AssertionError(f"{path} loaded")


@pytest.mark.parametrize("kind", ["garbage", "pickled-object", "zip-header"])
def test_an_unreadable_file_is_quoted_with_its_size_and_torchs_first_line(tmp_path: Path, kind: str) -> None:
    """A checkpoint holding any object beyond tensors and plain containers is refused (``weights_only``: loading
    it could run code); the message gives the size and what torch said, its first line cut at 200 characters."""
    path = tmp_path / "last.pt"
    if kind == "garbage":
        _write_garbage(path)
    elif kind == "pickled-object":
        torch.save({"model": {}, "args": argparse.Namespace(lr=0.1)}, path)
    else:
        path.write_bytes(b"PK\x03\x04")  # a zip's first bytes: torch's complaint runs over 200 characters
    said = _first_line_torch_says(path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    size = path.stat().st_size
    assert str(info.value) == f"{path}: cannot be read as a PyTorch checkpoint ({size} bytes; {said[:200]})"
    if kind == "pickled-object":
        assert said.startswith("Weights only load failed")
    if kind == "zip-header":
        assert len(said) > 200


def test_an_exception_that_says_nothing_is_named_by_its_type(tmp_path: Path) -> None:
    """A pickle cut after its 2-byte protocol header: torch raises an EOFError with an empty message."""
    path = tmp_path / "last.pt"
    path.write_bytes(b"\x80\x02")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(info.value) == f"{path}: cannot be read as a PyTorch checkpoint (2 bytes; EOFError)"


def test_the_default_requirement_is_a_model_and_a_good_file_comes_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "best.pt"
    torch.save({"model": {"w": torch.arange(3.0)}, "epoch": 2}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 2 and torch.equal(state["model"]["w"], torch.tensor([0.0, 1.0, 2.0]))
    torch.save({"epoch": 2}, path)
    with pytest.raises(CheckpointError, match="missing model"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- _truncate_weights
HEADER = "step,epoch,loss_det,loss_seg,weight_det,weight_seg\r\n"


def _rows(*steps: int) -> str:
    return "".join(f"{s},{s // 3 + 1},{s}.5,0.25,1,1\r\n" for s in steps)


def test_weights_csv_keeps_the_header_and_the_steps_before_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.csv"
    # steps 0..5, a blank line, then a torn line holding only a step (a kill during a write); checkpoint at step 3
    path.write_text(HEADER + _rows(0, 1, 2, 3, 4, 5) + "\r\n" + "6", newline="")
    _truncate_weights(path, 3)
    assert path.read_bytes() == (HEADER + _rows(0, 1, 2)).encode()
    _truncate_weights(path, 0)  # resumed from a checkpoint before any step: the header alone is left
    assert path.read_bytes() == HEADER.encode()


def test_weights_csv_already_at_the_checkpoint_is_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "weights.csv"
    text = HEADER + _rows(0, 1, 2)
    path.write_text(text, newline="")
    _truncate_weights(path, 3)
    assert path.read_bytes() == text.encode()


def test_a_missing_or_empty_weights_csv_is_not_created_or_changed(tmp_path: Path) -> None:
    missing = tmp_path / "weights.csv"
    _truncate_weights(missing, 3)
    assert not missing.exists()
    missing.write_text("")
    _truncate_weights(missing, 3)
    assert missing.read_bytes() == b""


# ----------------------------------------------------------------------------- resumable
@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ((), False),
        (("notes.txt",), False),
        (("config.yaml",), True),  # killed before its first checkpoint
        (("last.pt",), True),
        (("last.prev.pt",), True),
        (("weights.csv",), True),
        (("tensorboard/",), True),
    ],
)
def test_resumable_tells_a_run_folder_from_another_folder(
    tmp_path: Path, files: tuple[str, ...], expected: bool
) -> None:
    for name in files:
        target = tmp_path / name
        target.mkdir() if name.endswith("/") else target.write_text("x")
    assert resumable(tmp_path) is expected


def test_a_folder_that_does_not_exist_is_not_resumable(tmp_path: Path) -> None:
    assert resumable(tmp_path / "nowhere") is False


# ----------------------------------------------------------------------------- Trainer.load_checkpoint
def test_load_checkpoint_restores_every_record_bit_for_bit(tmp_path: Path, tiny_config: TrainConfig) -> None:
    saver, _ = _trainer(tiny_config, tmp_path / "a")
    with torch.no_grad():
        next(saver.model.parameters()).add_(0.125)  # parameters that a fresh model does not have
    saver.epoch, saver.global_step, saver.train_time = 1, 3, 12.5
    saver.history = [{"epoch": 1, "lr": 0.003, "val_geometric_mean": 0.25}]
    saver.best = {"epoch": 1, "metrics": {"geometric_mean": 0.25, "mAP": 0.5}}
    saver.initial_losses = {"det": [2.0, 1.5], "seg": [0.5]}
    torch.manual_seed(123)
    state = saver._state()
    expected_draw = torch.rand(4)  # what the saved generator draws next
    save_checkpoint(state, tmp_path / "a" / "last.pt")

    loader, _ = _trainer(tiny_config, tmp_path / "b")
    seen: list[Any] = []
    original = loader.step.load_state_dict
    loader.step.load_state_dict = lambda s: (seen.append(s), original(s))[1]  # type: ignore[method-assign]
    torch.manual_seed(999)
    loader.load_checkpoint(tmp_path / "a" / "last.pt")
    assert torch.equal(torch.rand(4), expected_draw)
    assert (loader.epoch, loader.global_step, loader.train_time) == (1, 3, 12.5)
    assert loader.history == [{"epoch": 1, "lr": 0.003, "val_geometric_mean": 0.25}]
    assert loader.best == {"epoch": 1, "metrics": {"geometric_mean": 0.25, "mAP": 0.5}}
    assert loader.initial_losses == {"det": [2.0, 1.5], "seg": [0.5]}
    for name, tensor in saver.model.state_dict().items():
        assert torch.equal(tensor, loader.model.state_dict()[name]), name
    assert seen == [state["step"]]  # the train step (its loss scale under fp16) gets its own saved state


def test_a_checkpoint_without_the_step_state_still_resumes(tmp_path: Path, tiny_config: TrainConfig) -> None:
    """Checkpoints written before the train step had a state hold no "step": the step starts afresh."""
    saver, _ = _trainer(tiny_config, tmp_path / "a")
    saver.epoch, saver.global_step = 1, 3
    state = saver._state()
    del state["step"]
    save_checkpoint(state, tmp_path / "a" / "last.pt")
    loader, _ = _trainer(tiny_config, tmp_path / "b")
    loader.load_checkpoint(tmp_path / "a" / "last.pt")
    assert (loader.epoch, loader.global_step) == (1, 3)


def test_a_segmentation_only_run_resumes(tmp_path: Path, tiny_config: TrainConfig) -> None:
    config = tiny_config.model_copy(update={"tasks": ["seg"]})
    saver, _ = _trainer(config, tmp_path / "a")
    saver.epoch, saver.global_step = 1, 3
    save_checkpoint(saver._state(), tmp_path / "a" / "last.pt")
    loader, _ = _trainer(config, tmp_path / "b")
    loader.load_checkpoint(tmp_path / "a" / "last.pt")
    assert (loader.epoch, loader.global_step) == (1, 3)


def test_a_best_checkpoint_is_refused_as_a_resume_point(tmp_path: Path, tiny_config: TrainConfig) -> None:
    trainer, _ = _trainer(tiny_config, tmp_path / "a")
    best = tmp_path / "a" / "best.pt"
    save_checkpoint({"model": trainer.model.state_dict(), "epoch": 1, "metrics": "{}"}, best)
    with pytest.raises(CheckpointError) as info:
        trainer.load_checkpoint(best)
    assert info.value.path == best
    missing = ", ".join(k for k in RESUME_KEYS if k not in ("model", "epoch"))  # best.pt: model, epoch, metrics
    assert str(info.value) == f"{best}: is not a taskweight checkpoint of this kind: missing {missing}"


def test_a_checkpoint_of_another_model_names_the_file_and_the_first_mismatch(
    tmp_path: Path, tiny_config: TrainConfig
) -> None:
    wider = tiny_config.model_copy(update={"model": tiny_config.model.model_copy(update={"width": 0.5})})
    saver, _ = _trainer(wider, tmp_path / "wide")
    path = tmp_path / "wide" / "last.pt"
    save_checkpoint(saver._state(), path)
    trainer, _ = _trainer(tiny_config, tmp_path / "narrow")
    with pytest.raises(CheckpointError) as info:
        trainer.load_checkpoint(path)
    assert info.value.path == path
    said = str(info.value)
    assert said.startswith(f"{path}: does not fit this run's configuration (model, optimiser or method differ): ")
    assert "Error(s) in loading state_dict for MultiTaskNet: size mismatch for " in said  # torch's first detail
    assert "\n" not in said


# ----------------------------------------------------------------------------- Trainer._resume
def _two_generations(config: TrainConfig, run: Path) -> None:
    """last.pt after epoch 2 (step 6), last.prev.pt after epoch 1 (step 3), as a run leaves them."""
    trainer, _ = _trainer(config, run)
    for epoch in (1, 2):
        trainer.epoch, trainer.global_step = epoch, 3 * epoch
        save_checkpoint(trainer._state(), run / "last.pt", keep_previous=True)


def test_resume_takes_last_pt_and_says_after_which_epoch(tmp_path: Path, tiny_config: TrainConfig) -> None:
    run = tmp_path / "run"
    _two_generations(tiny_config, run)
    trainer, out = _trainer(tiny_config, run)
    assert trainer._resume() is True
    assert (trainer.epoch, trainer.global_step) == (2, 6)
    assert out.getvalue() == f"resuming {run} after epoch 2\n"


def test_an_unreadable_last_pt_falls_back_to_the_previous_one_and_says_so(
    tmp_path: Path, tiny_config: TrainConfig
) -> None:
    run = tmp_path / "run"
    _two_generations(tiny_config, run)
    (run / "last.pt").write_bytes(b"")
    trainer, out = _trainer(tiny_config, run)
    assert trainer._resume() is True
    assert (trainer.epoch, trainer.global_step) == (1, 3)
    assert out.getvalue().splitlines() == [
        f"warning: {run / 'last.pt'}: the file is empty (0 bytes): a write was interrupted",
        "warning: resuming from the previous checkpoint last.prev.pt instead",
        f"resuming {run} after epoch 1",
    ]


def test_a_missing_last_pt_falls_back_to_the_previous_one(tmp_path: Path, tiny_config: TrainConfig) -> None:
    """A kill between moving last.pt aside and renaming the new file into place leaves last.prev.pt alone."""
    run = tmp_path / "run"
    _two_generations(tiny_config, run)
    (run / "last.pt").unlink()
    trainer, out = _trainer(tiny_config, run)
    assert trainer._resume() is True
    assert (trainer.epoch, trainer.global_step) == (1, 3)
    assert out.getvalue() == f"resuming {run} after epoch 1\n"  # nothing was unreadable: no warning


def test_no_checkpoint_at_all_is_a_fresh_start(tmp_path: Path, tiny_config: TrainConfig) -> None:
    run = tmp_path / "run"
    run.mkdir()
    trainer, out = _trainer(tiny_config, run)
    assert trainer._resume() is False
    assert (trainer.epoch, trainer.global_step, trainer.history) == (0, 0, [])
    assert out.getvalue() == ""


def test_both_generations_unreadable_is_one_error_naming_both(tmp_path: Path, tiny_config: TrainConfig) -> None:
    run = tmp_path / "run"
    _two_generations(tiny_config, run)
    last, prev = run / "last.pt", run / "last.prev.pt"
    last.write_bytes(b"")
    _write_garbage(prev)
    reasons = []
    for path in (last, prev):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path, required=RESUME_KEYS)
        reasons.append(str(info.value))
    trainer, _ = _trainer(tiny_config, run)
    with pytest.raises(CheckpointError) as info:
        trainer._resume()
    assert info.value.path == last
    assert str(info.value) == (
        f"{last}: cannot resume: no readable checkpoint in the run folder ({reasons[0]}; {reasons[1]})"
    )


# ----------------------------------------------------------------------------- a real stop and resume
def _reference_and_stopped_run(
    tiny_config: TrainConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop_at: int = 5
) -> tuple[TrainConfig, Trainer]:
    """log_every 1; the uninterrupted run in ``ref`` and a run stopped at its ``stop_at``-th step in ``cut``."""
    config = tiny_config.model_copy(update={"log_every": 1})
    reference = Trainer(config, tmp_path / "ref", show_progress=False)
    reference.fit()
    _stop_at_step(monkeypatch, stop_at)
    with pytest.raises(_Stop):
        Trainer(config, tmp_path / "cut", show_progress=False).fit()
    monkeypatch.undo()
    return config, reference


def test_rows_flushed_after_the_checkpoint_are_dropped_on_resume(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """log_every=1: every step reaches weights.csv at once. tiny: 3 steps an epoch; the stop comes at the
    5th step (global step 4), after step 3's row was written but after the epoch-1 checkpoint (step 3 next):
    the resumed run trains step 3 again and must not keep its first row."""
    config, reference = _reference_and_stopped_run(tiny_config, tmp_path, monkeypatch)
    written = (tmp_path / "cut" / "weights.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in written[1:]] == ["0", "1", "2", "3"]  # step 3's row is there
    resumed = Trainer(config, tmp_path / "cut", show_progress=False)
    resumed.fit(resume=True)
    assert (tmp_path / "cut" / "weights.csv").read_bytes() == (tmp_path / "ref" / "weights.csv").read_bytes()
    assert resumed.best == reference.best and resumed.global_step == reference.global_step == 6

    def timeless(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in rows]

    assert timeless(resumed.history) == timeless(reference.history)


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar of a run folder as read back by TensorBoard itself (which drops the
    events a ``purge_step`` declares stale), tag → [(step, value)]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_resumed_run_leaves_the_tensorboard_log_of_the_uninterrupted_run(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """tiny: 3 steps an epoch, 2 epochs, log_every 1. The stop at the 5th step comes after step 3 was logged
    and after the epoch-1 checkpoint (global step 3): the resumed writer must purge step 3 onwards, or
    TensorBoard shows step 3 twice. The learning rate is logged once an epoch at the epoch's last step (at the
    next one, the purge would take epoch 1's value away)."""
    config, reference = _reference_and_stopped_run(tiny_config, tmp_path, monkeypatch)
    stale = _scalars(tmp_path / "cut")
    Trainer(config, tmp_path / "cut", show_progress=False).fit(resume=True)
    expected, resumed = _scalars(tmp_path / "ref"), _scalars(tmp_path / "cut")
    assert resumed == expected
    assert [step for step, _ in expected["loss/det"]] == [0, 1, 2, 3, 4, 5]
    assert [step for step, _ in stale["loss/det"]] == [0, 1, 2, 3]  # what the purge had to remove: step 3
    lrs = [row["lr"] for row in reference.history]
    assert [step for step, _ in expected["lr"]] == [2, 5]
    assert [value for _, value in expected["lr"]] == pytest.approx(lrs, rel=1e-6)  # float32 in the event file
    assert lrs[1] < lrs[0] < config.optim.lr  # the schedule decays: these are learning rates, not step counts


def test_a_run_killed_after_validating_but_before_its_checkpoint_logs_each_epochs_scores_once(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kill comes while epoch 2's checkpoint is written: its validation scores are already in the event
    file, the run resumes from epoch 1 (global step 3) and validates epoch 2 again. Logged at the epoch's last
    step (5), the first scores fall under the resumed writer's purge; logged at the epoch number (2), they
    would stay and TensorBoard would show epoch 2 twice."""
    import taskweight.trainer as trainer_module

    config = tiny_config.model_copy(update={"log_every": 1})
    Trainer(config, tmp_path / "ref", show_progress=False).fit()

    def save_unless_epoch_2(state: dict[str, Any], path: Path, **kwargs: Any) -> None:
        if path.name == "last.pt" and state.get("epoch") == 2:
            raise _Stop
        save_checkpoint(state, path, **kwargs)

    monkeypatch.setattr(trainer_module, "save_checkpoint", save_unless_epoch_2)
    with pytest.raises(_Stop):
        Trainer(config, tmp_path / "cut", show_progress=False).fit()
    monkeypatch.undo()
    stale = _scalars(tmp_path / "cut")
    assert [step for step, _ in stale["val/mAP"]] == [2, 5]  # epoch 2 was validated and logged before the kill
    Trainer(config, tmp_path / "cut", show_progress=False).fit(resume=True)
    expected, resumed = _scalars(tmp_path / "ref"), _scalars(tmp_path / "cut")
    assert [step for step, _ in expected["val/mAP"]] == [2, 5]
    assert resumed == expected


def _scripted_validation(monkeypatch: pytest.MonkeyPatch, means: list[float]) -> list[dict[str, float]]:
    """Make ``Trainer._validate`` return these geometric means, one an epoch (mAP and mIoU alongside)."""
    scores = [{"mAP": gm / 2, "mIoU": gm, "geometric_mean": gm} for gm in means]
    queue = list(scores)
    monkeypatch.setattr(Trainer, "_validate", lambda self: dict(queue.pop(0)))
    return scores


@pytest.mark.parametrize(
    ("means", "best_epoch"),
    [
        ([0.5, 0.7, 0.6], 2),  # a later, better epoch replaces the best; a worse one does not
        ([float("nan"), 0.4, 0.4], 2),  # NaN never wins, so the first finite mean does; a tie keeps it
    ],
)
def test_best_pt_holds_the_epoch_with_the_highest_geometric_mean(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch, means: list[float], best_epoch: int
) -> None:
    config = tiny_config.model_copy(update={"epochs": 3})
    scores = _scripted_validation(monkeypatch, means)
    trainer = Trainer(config, tmp_path / "run", show_progress=False)
    trainer.fit()
    assert trainer.best["epoch"] == best_epoch and trainer.best["metrics"] == scores[best_epoch - 1]
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert best["epoch"] == best_epoch
    assert json.loads(best["metrics"]) == pytest.approx(scores[best_epoch - 1], nan_ok=True)
    # last.pt is the final epoch and keeps one generation back: last.prev.pt, the epoch before
    assert torch.load(tmp_path / "run" / "last.pt", weights_only=True)["epoch"] == 3
    assert torch.load(tmp_path / "run" / "last.prev.pt", weights_only=True)["epoch"] == 2


# ----------------------------------------------------------------------------- the run folder: claim, replace, lock


def test_fit_makes_the_folders_it_needs_and_by_default_neither_resumes_nor_replaces_a_run(
    tmp_path: Path, tiny_config: TrainConfig
) -> None:
    config = tiny_config.model_copy(update={"epochs": 1})
    run = tmp_path / "runs" / "kitti" / "equal"  # neither parent exists yet
    Trainer(config, run, show_progress=False).fit()
    finished = (run / "last.pt").read_bytes()
    with pytest.raises(RunFolderError, match=rf"^{re.escape(str(run))} already holds a run \(.*--resume.*--overwrite"):
        Trainer(config, run, show_progress=False).fit()
    assert (run / "last.pt").read_bytes() == finished  # neither resumed nor replaced


def test_overwrite_replaces_a_finished_run_files_and_folders_alike(tmp_path: Path, tiny_config: TrainConfig) -> None:
    run = tmp_path / "run"
    Trainer(tiny_config, run, show_progress=False).fit()  # 2 epochs
    Trainer(tiny_config.model_copy(update={"epochs": 1}), run, show_progress=False).fit(overwrite=True)
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 1
    assert not (run / "last.prev.pt").exists()  # the old run's previous generation went with it
    assert len(list((run / "tensorboard").iterdir())) == 1  # one event file: the old run's folder was removed
    assert (run / "history.csv").read_text().count("\n") == 1 + 1


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_its_start(
    tmp_path: Path, tiny_config: TrainConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its partial files (config.yaml, weights.csv, TensorBoard) are replaced, and it ends as an uninterrupted run."""
    config, reference = _reference_and_stopped_run(tiny_config, tmp_path, monkeypatch, stop_at=2)  # no checkpoint
    assert not (tmp_path / "cut" / "last.pt").exists() and (tmp_path / "cut" / "weights.csv").is_file()
    resumed = Trainer(config, tmp_path / "cut", show_progress=False)
    resumed.fit(resume=True)
    assert (tmp_path / "cut" / "weights.csv").read_bytes() == (tmp_path / "ref" / "weights.csv").read_bytes()
    assert resumed.best == reference.best and resumed.global_step == reference.global_step


def test_a_run_folder_in_use_is_refused_naming_it_and_its_holder(tmp_path: Path, tiny_config: TrainConfig) -> None:
    run = tmp_path / "run"
    with FolderLock(run, "held"), pytest.raises(FolderBusyError) as info:
        Trainer(tiny_config, run, show_progress=False).fit()
    assert str(info.value) == (
        f"{run}: this run folder is in use by PID {os.getpid()}; wait for it to finish or use another folder"
    )
    assert not (run / "config.yaml").exists()


def test_check_folder_lists_a_runs_outputs_and_refuses_them_unless_overwriting(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert Trainer.check_folder(run) == []  # not there yet: nothing to refuse
    (run / "tensorboard").mkdir(parents=True)
    for name in ("weights.csv", "last.pt", "config.yaml", "notes.txt"):  # config.yaml and notes are not outputs
        (run / name).write_text("x")
    with pytest.raises(RunFolderError) as info:
        Trainer.check_folder(run)
    assert str(info.value) == (
        f"{run} already holds a run (last.pt, weights.csv, tensorboard); pass --resume to continue it, "
        "--overwrite to replace it, or choose another --out"
    )
    assert Trainer.check_folder(run, overwrite=True) == ["last.pt", "weights.csv", "tensorboard"]


def test_a_trainer_without_a_console_shows_its_progress_and_messages_on_stderr(
    tmp_path: Path, tiny_config: TrainConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """stdout stays free for what a command prints as its result; the bars are on by default."""
    Trainer(tiny_config.model_copy(update={"epochs": 1}), tmp_path / "run").fit()
    Trainer(tiny_config.model_copy(update={"epochs": 1}), tmp_path / "run").fit(resume=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert re.search(r"^epochs ━+ 1/1 ", err, flags=re.MULTILINE)
    assert f"resuming {tmp_path / 'run'} after epoch 1" in " ".join(err.split())  # wrapped at the width
