"""Anchor clustering (``kmeans_anchors``) and the head's top-down path (``YoloDetectionHead.forward``).

Every expectation is worked out by hand in the comments (or, for the top-down path with random
features, recomputed in the test with ``F.interpolate(mode="nearest")`` and an explicit sum).

Shape IoU of two boxes (w1, h1), (w2, h2) placed at a common corner:
    IoU = min(w1, w2)·min(h1, h2) / (w1·h1 + w2·h2 − min(w1, w2)·min(h1, h2)).
With equal heights it is simply min(w1, w2) / max(w1, w2), i.e. exp(−|ln w1 − ln w2|): the
nearest anchor is then the nearest one in log-width.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from taskweight.models.detection import YoloDetectionHead, kmeans_anchors


def _f32(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def _widths(anchors: torch.Tensor) -> tuple[float, ...]:
    return tuple(anchors[:, 0].tolist())


# ------------------------------------------------------------------ kmeans_anchors: clusters


def test_separated_groups_of_identical_shapes_are_the_anchors_sorted_by_area() -> None:
    # Groups: (40, 20) ×4 (area 800), (10, 10) ×3 (area 100), (20, 80) ×5 (area 1600).
    # k-means++: a box of the first centre's group is at distance 1 − IoU = 0, so each further centre
    # comes from a group not yet chosen; every box then has IoU 1 with its own group's centre (cross
    # IoUs: 10·10/800 = .125, 10·10/1600 = .0625, 20·20/(800 + 1600 − 400) = .2), the medians are the
    # group shapes themselves and the loop stops. Sorted by area (not by width 10, 40, 20 nor by
    # height 10, 20, 80): (10, 10), (40, 20), (20, 80) — for every seed.
    wh = [[40, 20]] * 4 + [[10, 10]] * 3 + [[20, 80]] * 5
    expected = _f32([[10, 10], [40, 20], [20, 80]])
    for seed in range(12):
        anchors = kmeans_anchors(wh, 3, seed=seed)
        assert anchors.dtype == torch.float32
        assert torch.equal(anchors, expected), (seed, anchors)
        # the k-means++ initialisation alone (no iteration) already holds one centre per group
        assert torch.equal(kmeans_anchors(wh, 3, iterations=0, seed=seed), expected), seed


def test_a_lone_different_shape_is_always_the_second_centre() -> None:
    # wh = A, A, A, B with A = (8, 8), B = (16, 16): IoU(A, B) = 64/256 = 1/4.
    # Whatever the first centre, the D² weights are 0 for the boxes of its own shape and
    # (1 − 1/4)² = 9/16 for the other shape (sum 9/16 ≤ 1 or 3·9/16): the second centre is the other shape.
    wh = [[8.0, 8.0]] * 3 + [[16.0, 16.0]]
    for seed in range(16):
        assert torch.equal(kmeans_anchors(wh, 2, iterations=0, seed=seed), _f32([[8, 8], [16, 16]])), seed
        assert torch.equal(kmeans_anchors(wh, 2, seed=seed), _f32([[8, 8], [16, 16]])), seed


def test_groups_with_spread_get_the_coordinate_wise_median() -> None:
    # Tall group (20, 88), (24, 72), (16, 80) and wide group (40, 12), (36, 8), (44, 10).
    # Cross IoUs are small, e.g. tall (20, 88) vs wide (40, 12): 20·12 = 240 / (1760 + 480 − 240) = .12,
    # within a group large, e.g. (20, 88) vs (24, 72): 20·72 = 1440 / (1760 + 1728 − 1440) = .70.
    # Final clusters: the two groups; the medians are taken per coordinate, so neither anchor is a box:
    #   tall: median w of 20, 24, 16 = 20, median h of 88, 72, 80 = 80 → (20, 80), area 1600
    #   wide: median w of 40, 36, 44 = 40, median h of 12, 8, 10 = 10 → (40, 10), area 400
    wh = [[20, 88], [40, 12], [24, 72], [36, 8], [16, 80], [44, 10]]
    for seed in range(12):
        assert torch.equal(kmeans_anchors(wh, 2, seed=seed), _f32([[40, 10], [20, 80]])), seed


def test_one_anchor_is_the_median_shape() -> None:
    # k = 1: whichever box starts, all boxes join the one cluster; median w of 1, 2, 3 = 2 and median h
    # of 3, 1, 2 = 2 → (2, 2), which is none of the boxes; the next step keeps (2, 2) and the loop stops.
    wh = [[1.0, 3.0], [2.0, 1.0], [3.0, 2.0]]
    for seed in range(6):
        assert torch.equal(kmeans_anchors(wh, 1, seed=seed), _f32([[2, 2]])), seed


def test_shape_iou_decides_the_assignment() -> None:
    # wh (h = 1 for all): widths 2, 4, 5, 20. Only two partitions are fixed points for k = 2:
    #   {2, 4, 5} | {20}: centres 4 (median) and 20; 2 → IoU 2/4 = .5 vs 2/20 = .1, 5 → 4/5 = .8 vs 5/20 = .25
    #   {2} | {4, 5, 20}: centres 2 and 5 (median of 4, 5, 20); 4 → 2/4 = .5 vs 4/5 = .8 → stays with 5
    #   ({2, 4} | {5, 20} is not: centres 2 (lower median of 2, 4) and 5, and 4 moves to 5).
    # Every seed ends in one of the two (which one depends on the k-means++ start), and both occur.
    wh = [[2.0, 1.0], [4.0, 1.0], [5.0, 1.0], [20.0, 1.0]]
    fixed_points = {(2.0, 5.0), (4.0, 20.0)}
    seen = Counter(_widths(kmeans_anchors(wh, 2, seed=seed)) for seed in range(20))
    assert set(seen) == fixed_points, seen


def test_an_empty_cluster_keeps_its_centre() -> None:
    # Two identical boxes, k = 2 (exactly k boxes is enough): the D² weights are all 0, so the second centre
    # is drawn uniformly — the same shape again. Both centres tie for every box; argmax takes the first, so
    # the second cluster is empty and keeps its centre (a median of nothing is undefined).
    anchors = kmeans_anchors([[6.0, 9.0], [6.0, 9.0]], 2, seed=0)
    assert torch.equal(anchors, _f32([[6, 9], [6, 9]]))
    # the same with a third, different shape: k = 3 over 2 distinct shapes
    wh = [[6.0, 9.0], [6.0, 9.0], [30.0, 30.0]]
    for seed in range(8):
        anchors = kmeans_anchors(wh, 3, seed=seed)
        assert anchors.shape == (3, 2)
        assert {tuple(r) for r in anchors.tolist()} == {(6.0, 9.0), (30.0, 30.0)}, (seed, anchors)


# ------------------------------------------------------------------ kmeans_anchors: arguments


def test_fewer_boxes_than_anchors_is_an_error_and_exactly_k_boxes_are_enough() -> None:
    with pytest.raises(ValueError, match=r"need at least 3 boxes to cluster 3 anchors, got 2"):
        kmeans_anchors([[1.0, 2.0], [3.0, 4.0]], 3)
    # exactly k distinct boxes: k-means++ takes each of them (the others are at distance 0); sorted by area
    anchors = kmeans_anchors([[5.0, 6.0], [1.0, 2.0], [3.0, 4.0]], 3)
    assert torch.equal(anchors, _f32([[1, 2], [3, 4], [5, 6]]))


def test_half_precision_boxes_are_clustered_in_double() -> None:
    # 300·300 = 90 000 overflows float16 (max 65 504): the areas must be computed after the cast to float64.
    # Groups of identical shapes (300, 300) ×3, (30, 40) ×2, (100, 60) ×2 (all exact in float16); cross IoUs
    # 1200/6000 = .2, 1200/90 000 = .013, 6000/90 000 = .067 → the anchors are the three shapes by area.
    wh = torch.tensor([[300, 300]] * 3 + [[30, 40]] * 2 + [[100, 60]] * 2, dtype=torch.float16)
    for seed in range(8):
        anchors = kmeans_anchors(wh, 3, seed=seed)
        assert anchors.dtype == torch.float32
        assert torch.equal(anchors, _f32([[30, 40], [100, 60], [300, 300]])), (seed, anchors)


def test_default_iterations_is_sixty() -> None:
    # A chain on which every iteration moves the small anchor by one box (heights all 10, so the nearest
    # centre is the nearest in log-width). Pile: 131 boxes of width M = 1000; chain: 130 boxes
    # w_j = M·exp(−q_j), q_j = 2/(j + 2.5), increasing towards M.
    # With centres (w_t, M), box j goes to w_t iff q_t − q_j < q_j, i.e. q_j > q_t/2 = 2/(2t + 5),
    # i.e. j + 2.5 < 2t + 5, i.e. j ≤ 2t + 2: the small cluster is boxes 0 … 2t + 2 (2t + 3 boxes,
    # median box t + 1) and the large one keeps the pile as its median (131 > 127 chain boxes).
    # So from the start (w_0, M) iteration n ends at (w_n, M) until the chain runs out (box 64).
    m, n_chain, n_pile = 1000.0, 130, 131
    w = [m * math.exp(-2 / (j + 2.5)) for j in range(n_chain)]
    wh = torch.tensor([[x, 10.0] for x in w] + [[m, 10.0]] * n_pile, dtype=torch.float64)
    seed = 2  # a seed whose k-means++ start is (w_0, M), checked here:
    assert torch.equal(kmeans_anchors(wh, 2, iterations=0, seed=seed), _f32([[w[0], 10], [m, 10]]))
    for n in (1, 2, 59):
        assert torch.equal(kmeans_anchors(wh, 2, iterations=n, seed=seed), _f32([[w[n], 10], [m, 10]])), n
    assert torch.equal(kmeans_anchors(wh, 2, seed=seed), _f32([[w[60], 10], [m, 10]]))
    # converged: the whole chain (130 boxes) is the small cluster, lower median box 64
    assert torch.equal(kmeans_anchors(wh, 2, iterations=500, seed=seed), _f32([[w[64], 10], [m, 10]]))


# ------------------------------------------------------------------ kmeans_anchors: seeding


def test_result_depends_on_the_seed_only_and_the_default_seed_is_zero() -> None:
    # The 2, 4, 5, 20 widths of test_shape_iou_decides_the_assignment: seed 0 starts at (2, 5), seed 1 at
    # (4, 20) (both drawn by torch's seeded generator), and each start is a fixed point.
    wh = [[2.0, 1.0], [4.0, 1.0], [5.0, 1.0], [20.0, 1.0]]
    assert torch.equal(kmeans_anchors(wh, 2, seed=0), _f32([[2, 1], [5, 1]]))
    assert torch.equal(kmeans_anchors(wh, 2, seed=1), _f32([[4, 1], [20, 1]]))
    assert torch.equal(kmeans_anchors(wh, 2), _f32([[2, 1], [5, 1]]))
    assert torch.equal(kmeans_anchors(wh, 2, seed=0), kmeans_anchors(wh, 2, seed=0))  # and repeatable


def test_the_global_random_state_does_not_matter() -> None:
    # Widths 4, 5, 20 (h = 1), k = 2, no iteration: the start varies with the seed (see the next test), so a
    # draw from the global generator instead of the seeded one would show here.
    wh = [[4.0, 1.0], [5.0, 1.0], [20.0, 1.0]]
    with torch.random.fork_rng():
        for seed in range(4):
            runs = set()
            for global_seed in range(10):
                torch.manual_seed(global_seed)
                runs.add(_widths(kmeans_anchors(wh, 2, iterations=0, seed=seed)))
            assert len(runs) == 1, (seed, runs)


def test_kmeans_plus_plus_draws_the_second_centre_by_squared_distance() -> None:
    # Widths A = 4, B = 5, C = 20 (h = 1): 1 − IoU is AB 1 − 4/5 = 1/5, AC 1 − 4/20 = 4/5, BC 1 − 5/20 = 3/4.
    # First centre uniform (1/3 each), second with probability ∝ (1 − IoU)²:
    #   A first: B 1/25, C 16/25          → P(B) = 1/17
    #   B first: A 1/25, C 9/16           → P(A) = (1/25)/(1/25 + 9/16) = 16/241
    #   C first: A 16/25, B 9/16          → P(A) = 256/481, P(B) = 225/481
    # P({A, B}) = (1/17 + 16/241)/3 = .04173;  P({A, C}) = (16/17 + 256/481)/3 = .4911;  P({B, C}) = .4671.
    # (Weights ∝ distance would give P({A, B}) = (1/5 + 4/19)/3 ≈ .137 (1 − IoU: A first B 1/5 vs C 4/5 → 1/5;
    # B first A 1/5 vs C 3/4 → 4/19); the cube ≈ .011.) Over 3000 seeds, ±5 standard deviations:
    wh = [[4.0, 1.0], [5.0, 1.0], [20.0, 1.0]]
    n = 3000
    counts = Counter(_widths(kmeans_anchors(wh, 2, iterations=0, seed=seed)) for seed in range(n))
    assert set(counts) == {(4.0, 5.0), (4.0, 20.0), (5.0, 20.0)}  # never the same shape twice
    for pair, p in (((4.0, 5.0), (1 / 17 + 16 / 241) / 3), ((4.0, 20.0), (16 / 17 + 256 / 481) / 3)):
        sd = math.sqrt(n * p * (1 - p))
        assert abs(counts[pair] - n * p) < 5 * sd, (pair, counts[pair], n * p)


# ------------------------------------------------------------------ forward: the top-down path
#
# Encoder maps of a 40×56 image: s8 5×7, s16 3×4, s32 2×2 — not exact multiples of each other.
# Nearest-neighbour resizing takes source index ⌊dst·in/out⌋:
#   s32 → s16: rows 2 → 3: 0, ⌊2/3⌋ = 0, ⌊4/3⌋ = 1;          cols 2 → 4: 0, 0, 1, 1
#   s16 → s8:  rows 3 → 5: 0, ⌊.6⌋ = 0, ⌊1.2⌋ = 1, ⌊1.8⌋ = 1, ⌊2.4⌋ = 2
#              cols 4 → 7: 0, ⌊.57⌋ = 0, ⌊1.14⌋ = 1, ⌊1.71⌋ = 1, ⌊2.29⌋ = 2, ⌊2.86⌋ = 2, ⌊3.43⌋ = 3


def _one_channel_head() -> YoloDetectionHead:
    chans = {"s8": 1, "s16": 1, "s32": 1}
    head = YoloDetectionHead(chans, num_classes=1, anchors=torch.tensor([[8.0, 8.0]]), channels=1)
    with torch.no_grad():  # lateral 1×1 convolutions: s32 ×100, s16 ×10, s8 ×1, no bias → digits of the sum
        for name, scale in (("s32", 100.0), ("s16", 10.0), ("s8", 1.0)):
            head.lateral[name].weight.fill_(scale)
            head.lateral[name].bias.zero_()
    return head.eval()


S32 = [[1, 2], [3, 4]]
S16 = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 8, 7, 6]]
S8 = [
    [1, 2, 3, 4, 5, 6, 7],
    [8, 9, 1, 2, 3, 4, 5],
    [6, 7, 8, 9, 1, 2, 3],
    [4, 5, 6, 7, 8, 9, 1],
    [2, 3, 4, 5, 6, 7, 8],
]
# 100·s32 resized to 3×4, plus 10·s16:
#   [[110, 120, 230, 240], [150, 160, 270, 280], [390, 380, 470, 460]]
# resized to 5×7 (rows 0, 0, 1, 1, 2; cols 0, 0, 1, 1, 2, 2, 3), plus s8:
FUSED = [
    [111, 112, 123, 124, 235, 236, 247],
    [118, 119, 121, 122, 233, 234, 245],
    [156, 157, 168, 169, 271, 272, 283],
    [154, 155, 166, 167, 278, 279, 281],
    [392, 393, 384, 385, 476, 477, 468],
]


def _grid(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)[None, None]


def test_top_down_sum_by_hand() -> None:
    head = _one_channel_head()
    seen: list[torch.Tensor] = []
    head.fuse.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    features = {"s8": _grid(S8), "s16": _grid(S16), "s32": _grid(S32)}
    with torch.no_grad():
        raw = head(features)
    assert len(seen) == 1
    assert torch.equal(seen[0], _grid(FUSED))
    # and what follows is fuse → pred → (B, A, H, W, 5 + K) on that map
    with torch.no_grad():
        expected = head.pred(head.fuse(_grid(FUSED))).view(1, 1, 6, 5, 7).permute(0, 1, 3, 4, 2)
    assert raw.shape == (1, 1, 5, 7, 6)
    assert torch.equal(raw, expected)


def test_top_down_matches_nearest_upsample_and_add() -> None:
    with torch.random.fork_rng():  # seeded weights and features, without touching the global state after
        torch.manual_seed(0)
        _check_top_down_against_reference()


def _check_top_down_against_reference() -> None:
    chans = {"s8": 3, "s16": 5, "s32": 7}
    head = YoloDetectionHead(chans, num_classes=2, anchors=torch.tensor([[8.0, 8.0], [16.0, 12.0]]), channels=4).eval()
    with torch.no_grad():
        for conv in head.lateral.values():
            conv.bias.uniform_(-1.0, 1.0)
    sizes = {"s8": (9, 11), "s16": (5, 6), "s32": (3, 3)}
    features = {k: torch.randn(2, chans[k], *sizes[k]) for k in chans}
    seen: list[torch.Tensor] = []
    head.fuse.register_forward_pre_hook(lambda _module, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        raw = head(features)
        lat = {k: head.lateral[k](features[k]) for k in chans}
        p16 = F.interpolate(lat["s32"], size=(5, 6), mode="nearest") + lat["s16"]
        p8 = F.interpolate(p16, size=(9, 11), mode="nearest") + lat["s8"]
        # the reference is sensitive to what it checks: a bilinear resize or a difference gives another map
        other = F.interpolate(p16, size=(9, 11), mode="bilinear", align_corners=False) + lat["s8"]
        assert not torch.allclose(other, p8)
        assert not torch.allclose(F.interpolate(p16, size=(9, 11), mode="nearest") - lat["s8"], p8)
    assert raw.shape == (2, 2, 9, 11, 7)
    torch.testing.assert_close(seen[0], p8, rtol=0, atol=1e-6)
