"""What a checkpoint that does not load says: torch's headline and its first detail, in one line.

Both places that load a state (scoring a checkpoint, resuming a run) word the error through
:func:`taskweight.checkpoint.load_complaint`; before it, both kept torch's first line only, the
generic "Error(s) in loading state_dict for ...:", which names no key.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taskweight.checkpoint import load_complaint


def test_a_state_dict_mismatch_names_the_key_and_both_shapes() -> None:
    model = nn.Sequential(nn.Linear(3, 2))
    state = {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(2)}
    with pytest.raises(RuntimeError) as info:
        model.load_state_dict(state)
    said = load_complaint(info.value)
    assert "\n" not in said
    assert said.startswith("Error(s) in loading state_dict for Sequential:")
    assert "0.weight" in said and "torch.Size([4, 3])" in said and "torch.Size([2, 3])" in said


def test_only_the_first_detail_is_kept_and_blank_lines_are_skipped() -> None:
    exc = RuntimeError("\n  headline:\n\n\tfirst detail\n\tsecond detail\n")
    assert load_complaint(exc) == "headline: first detail"


def test_an_exception_that_says_nothing_is_named_by_its_type() -> None:
    assert load_complaint(KeyError()) == "KeyError"
    assert load_complaint(ValueError("   \n ")) == "ValueError"


def test_the_line_is_cut_at_the_limit() -> None:
    exc = RuntimeError("a" * 10 + "\n" + "b" * 500)
    assert load_complaint(exc) == "a" * 10 + " " + "b" * 289  # 300 characters
    assert load_complaint(exc, limit=12) == "a" * 10 + " b"
