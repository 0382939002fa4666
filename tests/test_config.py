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
    cfg = load_config(
        "tiny", overrides={"epochs": 5, "method": {"name": "static", "options": {"weights": {"det": 1, "seg": 3}}}}
    )
    assert cfg.epochs == 5 and cfg.method.name == "static"
    dump_config(cfg, tmp_path / "c.yaml")
    assert load_config(path=tmp_path / "c.yaml") == cfg


def test_duplicate_yaml_keys_name_file_line_and_key(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("epochs: 3\noptim:\n  name: adam\n  lr: 0.01\n  lr: 0.1\n")
    with pytest.raises(ConfigError) as err:
        load_config("quick", path)
    assert str(err.value) == f"{path}:5: invalid YAML: duplicate key 'lr' (first given on line 4)"
    path.write_text("epochs: 3\nseed: 1\nepochs: 30\n")
    with pytest.raises(
        ConfigError, match=rf"^{path}:3: invalid YAML: duplicate key 'epochs' \(first given on line 1\)$"
    ):
        load_config(None, path)
    # the same key in two different mappings is fine
    path.write_text("epochs: 2\noptim:\n  name: adam\nmethod:\n  name: static\n")
    assert load_config(None, path).optim.name == "adam"


def test_load_yaml_is_safe_load_but_rejects_duplicate_keys(tmp_path):
    import yaml

    from taskweight.yamlio import DuplicateKeyError, load_yaml

    text = "a: 1\nb: &x {c: 1, d: [1, 2]}\ne:\n  <<: *x\n  c: 2\nf: 2024-01-01\ng: null\n"
    assert load_yaml(text) == yaml.safe_load(text)
    with pytest.raises(DuplicateKeyError) as err:
        load_yaml("a:\n  - {k: 1, k: 2}\n", "list.yaml")
    assert (err.value.line, err.value.key, err.value.first_line) == (2, "k", 2)
    assert str(err.value).startswith("list.yaml:2: duplicate key 'k'")
    file = tmp_path / "m.yaml"
    file.write_text("x: 1\n1: a\n1: b\n")
    with pytest.raises(yaml.YAMLError, match=rf"{file}:3: duplicate key 1 \(first given on line 2\)"):
        load_yaml(file)
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object:os.system {}")  # still the safe loader


def test_duplicate_keys_in_a_mapping_file_and_a_bench_preset(tmp_path):
    from taskweight.bench.runner import load_bench_preset
    from taskweight.data import open_dataset
    from taskweight.errors import DataFormatError

    mapping = tmp_path / "map.yaml"
    mapping.write_text("detection:\n  Car: car\n  Van: car\n  Car: pedestrian\n")
    (tmp_path / "kitti/training/image_2").mkdir(parents=True)
    with pytest.raises(DataFormatError) as err:
        open_dataset("kitti", tmp_path / "kitti", "all", mapping=mapping)
    assert err.value.path == mapping and err.value.line == 4 and "duplicate key 'Car'" in str(err.value)
    preset = tmp_path / "bench.yaml"
    preset.write_text("seeds: [0]\nseeds: [1, 2]\n")
    with pytest.raises(ConfigError, match=rf"^{preset}:2: invalid YAML: duplicate key 'seeds'"):
        load_bench_preset(preset)
