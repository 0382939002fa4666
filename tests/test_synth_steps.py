"""The named steps of the scene sampler and the writers' shared parts: properties each one keeps.

No hashes of generated files: those would break on every intended change of the generator.
What is pinned instead is what the steps promise: the layout does not depend on the rendered
size (only the skyline draws from a stream of its own), placed road users never overlap, each
one gets a fixed number of tries, the weather table's ranges hold, and generate_dataset hands a
checked request to the writer registered for the preset's layout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from taskweight.synth import PRESETS, generate_dataset, writers
from taskweight.synth import scene as sc
from taskweight.synth.actors import Car, Cyclist, Pedestrian
from taskweight.synth.output import Request, tally

SEEDS = range(24)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0, seed])


def _road_user_key(u: Any) -> tuple:
    return (type(u).__name__, tuple(u.loc), tuple(u.dims), u.ry)


def test_layout_apart_from_camera_and_skyline_does_not_depend_on_the_rendered_size() -> None:
    for seed in range(8):
        small, large = sc._sample_layout(_rng(seed), (64, 192)), sc._sample_layout(_rng(seed), (250, 828))
        assert small.road == large.road
        assert small.cam.height == large.cam.height
        assert small.cam.cy / 64 == pytest.approx(large.cam.cy / 250)
        assert (small.weather, small.roadside, small.tile) == (large.weather, large.roadside, large.tile)
        np.testing.assert_array_equal(small.light.sun, large.light.sun)
        assert [_road_user_key(u) for u in small.road_users] == [_road_user_key(u) for u in large.road_users]
        for a, b in ((small.background, large.background), (small.foreground, large.foreground)):
            assert [(type(x), tuple(x.loc)) for x in a] == [(type(x), tuple(x.loc)) for x in b]
        assert len(small.marks) == len(large.marks)
        for m, n in zip(small.marks, large.marks, strict=True):
            np.testing.assert_array_equal(m, n)
        np.testing.assert_array_equal(small.mark_colour, large.mark_colour)
        assert small.post.keys() == large.post.keys()
        assert all(np.array_equal(small.post[k], large.post[k]) for k in small.post)
        assert not np.array_equal(small.skyline[0][0], large.skyline[0][0])  # the skyline is in pixels


def test_road_and_camera_steps_stay_in_their_ranges() -> None:
    for seed in SEEDS:
        rng = _rng(seed)
        cam = sc._sample_camera(rng, (100, 300))
        road = sc._sample_road(rng)
        assert cam.f == sc.focal_length((100, 300)) and 40 <= cam.cy <= 49 and 1.58 <= cam.height <= 1.72
        assert road.lanes in (2, 3, 4) and 3.0 <= road.lane_width <= 3.7 and 0.1 <= road.curb <= 0.18
        assert road.park_left in (0.0, 2.2) and road.park_right in (0.0, 2.2)
        for side in (-1, 1):
            assert 1.8 <= road.walk_width(side) <= 4.5
        assert (road.curb_a(-1), road.curb_a(1)) == (0.0, road.width)


def test_weather_step_follows_its_table() -> None:
    seen = set()
    for seed in range(60):
        w = sc._sample_weather(_rng(seed))
        seen.add(w.name)
        assert np.linalg.norm(w.light.sun) == pytest.approx(1.0)
        if w.name == "overcast":
            assert not w.light.cast_shadows and w.light.shadow_factor == 1.0
            np.testing.assert_array_equal(w.light.sun, [0.0, 1.0, 0.0])
        else:
            elevation, ambient, shadow, *_ = sc._SUNLIT[w.name]
            lo, hi = np.radians(elevation)
            assert w.light.cast_shadows and lo <= np.arcsin(w.light.sun[1]) <= hi + 1e-12
            assert ambient[0] <= w.light.ambient <= ambient[1] and shadow[0] <= w.light.shadow_factor <= shadow[1]
            assert w.tint == sc._SUNLIT[w.name][-1]
    assert seen == {"sunny", "overcast", "low_sun"}


def test_placed_road_users_never_overlap() -> None:
    classes = set()
    for seed in SEEDS:
        rng = _rng(seed)
        road, occ = sc._sample_road(rng), sc._Occupancy()
        users = sc._sample_road_users(rng, road, 1.65, 1.5, occ, None)
        classes |= {type(u) for u in users}
        assert len(occ.rects) == len(users) >= 2
        for i, (a, z, ha, hz) in enumerate(occ.rects):
            for ra, rz, rha, rhz in occ.rects[:i]:
                assert abs(a - ra) >= ha + rha or abs(z - rz) >= hz + rhz
    assert classes == {Car, Pedestrian, Cyclist}


def test_each_actor_gets_twelve_tries() -> None:
    answers = iter([None] * 11 + ["a"] + [None] * 12 + ["b"])
    calls = []

    def sample() -> Any:
        calls.append(1)
        return next(answers)

    assert sc._place(3, sample) == ["a", "b"]  # the second one gave up after 12 tries
    assert len(calls) == 25


def test_crosswalk_and_tree_row_geometry() -> None:
    crossings = 0
    for seed in range(80):
        rng = _rng(seed)
        road = sc._sample_road(rng)
        crosswalk, stripes = sc._sample_crosswalk(rng, road, 1.6)
        if crosswalk is None:
            assert stripes == []
            continue
        crossings += 1
        z0, z1 = crosswalk
        assert 9 <= z0 <= 30 and 2.5 <= z1 - z0 <= 4.0 and stripes
        for poly in stripes:
            assert poly[:, 2].min() == pytest.approx(z0) and poly[:, 2].max() == pytest.approx(z1)
    assert crossings > 0
    rng = _rng(1)
    road = sc._sample_road(rng)
    side = sc._Side(road, 1.6, 1, "green", np.array([0.2, 0.3, 0.1]))
    trees = sc._tree_row(rng, side, start=(0, 10), stop=90, offset=(2.5, 7), step=(5, 14))
    zs = [t.loc[2] for t in trees]
    assert zs == sorted(zs) and 0 <= zs[0] <= 10 and zs[-1] < 90
    assert all(5 <= b - a <= 14 for a, b in zip(zs, zs[1:], strict=False))


# ------------------------------------------------------------------------- writers
def test_every_preset_layout_has_a_registered_writer() -> None:
    assert {p["format"] for p in PRESETS.values()} <= set(writers.WRITERS)
    for layout, write in writers.WRITERS.items():
        assert write.__module__ == f"taskweight.synth.{layout}_writer" and write.__name__ == "write_dataset"


def test_generate_dataset_hands_a_checked_request_to_the_layouts_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[Request] = []
    monkeypatch.setitem(writers.WRITERS, "woodscape", lambda req: received.append(req) or {"done": True})
    out = tmp_path / "ws"
    summary = generate_dataset(
        str(out), preset="synth-woodscape", train=np.int64(2), val=0, test=1, seed=np.int64(3), depth=1
    )
    assert summary == {"done": True} and not out.exists()
    (req,) = received
    assert req.out == out and req.preset == "synth-woodscape"
    assert req.counts == {"train": 2, "val": 0, "test": 1} and req.total == 3
    assert req.size == PRESETS["synth-woodscape"]["size"] and type(req.seed) is int and req.depth is True
    with pytest.raises(ValueError, match="single_label_fraction is only supported by synth-kitti"):
        generate_dataset(out, preset="synth-woodscape", train=1, val=0, test=0, single_label_fraction=0.5)
    assert len(received) == 1


def test_tally_puts_the_fixed_keys_first() -> None:
    totals, per_split = tally(["train", "val", "train"], [{"b": 1}, {"a": 2}, {"c": 1, "b": 1}], keys=("a", "b"))
    assert per_split == {"train": {"a": 0, "b": 2, "c": 1}, "val": {"a": 2, "b": 0}, "test": {"a": 0, "b": 0}}
    assert list(totals.items()) == [("a", 2), ("b", 2), ("c", 1)]


def test_request_documents_start_with_the_shared_fields() -> None:
    req = Request(out=Path("x"), preset="synth-kitti", counts={"train": 1, "val": 0, "test": 2}, seed=4, size=(20, 30))
    params = req.params(7, extra=1)
    assert list(params) == ["generator", "format_version", "preset", "seed", "size", "splits", "extra"]
    assert params["format_version"] == 7 and params["size"] == [20, 30]
    summary = req.summary({"Car": 1}, {}, detection_only=0)
    assert list(summary)[-3:] == ["detection_only", "seconds", "scenes_per_second"]
    assert summary["images"] == 3 and summary["out"] == "x"
