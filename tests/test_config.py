"""Config: presets load, bad values name the file, the line and the option."""

from __future__ import annotations

import pytest

from taskweight.config import available_presets, dump_config, load_config
from taskweight.errors import ConfigError


def test_presets_are_valid():
    assert {"quick", "tiny", "paper"} <= set(available_presets())
    for name in available_presets():
        cfg = load_config(name)
        assert all(v % 32 == 0 for v in cfg.data.image_size)


def test_bad_yaml_value_names_file_line_and_option(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\noptim:\n  name: adam\n  lr: -1\n")
    with pytest.raises(ConfigError) as err:
        load_config("quick", path)
    assert f"{path}:4: option 'optim.lr'" in str(err.value)


def test_unknown_option_and_bad_image_size(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("data:\n  image_size: [100, 416]\nepochz: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(None, path)
    text = str(err.value)
    assert f"{path}:2: option 'data.image_size'" in text and "multiples of 32" in text
    assert f"{path}:3: option 'epochz'" in text


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="quick"):
        load_config("nope")


def test_overrides_and_round_trip(tmp_path):
    cfg = load_config("tiny", overrides={"epochs": 5, "method": {"name": "static", "options": {"weights": {"det": 1, "seg": 3}}}})
    assert cfg.epochs == 5 and cfg.method.name == "static"
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(path=tmp_path / "c.yaml") == cfg
