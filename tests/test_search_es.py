"""Search space and evolution-strategy operators (taskweight.search.space / optimizers)."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from taskweight.search import (
    CategoricalGene,
    EvolutionStrategy,
    IntegerGene,
    NumericGene,
    SearchSpace,
    ToyEvaluator,
    make_optimizer,
    task_weight_space,
)
from taskweight.search.optimizers import Individual


# ------------------------------------------------------------------------- space
def test_samples_respect_bounds_and_rounding() -> None:
    space = task_weight_space(async_frequencies=True)
    rng = np.random.default_rng(0)
    freqs = set()
    for _ in range(3000):
        genes = space.sample(rng)
        assert -1 <= genes["log10_w_det"] <= 2 and -1 <= genes["log10_w_seg"] <= 3
        assert 1 <= genes["freq_det"] <= 10
        cfg = space.decode(genes)
        assert 0.1 <= cfg["raw_weights"]["det"] <= 100 and 0.1 <= cfg["raw_weights"]["seg"] <= 1000
        assert math.isclose(sum(cfg["weights"].values()), 1.0, rel_tol=1e-12)
        for f in cfg["frequencies"].values():
            assert isinstance(f, int) and 1 <= f <= 10
            freqs.add(f)
    assert freqs == set(range(1, 11))


def test_decode_power_normalisation_and_rounding() -> None:
    space = task_weight_space(async_frequencies=True)
    cfg = space.decode({"log10_w_det": 0.0, "log10_w_seg": 1.0, "freq_det": 2.4, "freq_seg": 2.5})
    assert cfg["raw_weights"] == pytest.approx({"det": 1.0, "seg": 10.0})
    assert cfg["weights"] == pytest.approx({"det": 1 / 11, "seg": 10 / 11})
    assert cfg["frequencies"] == {"det": 2, "seg": 3}
    assert cfg["genes"]["freq_det"] == 2.4  # raw gene values are kept
    assert "frequencies" not in task_weight_space().decode({"log10_w_det": 0.0, "log10_w_seg": 0.0})
    # out-of-range genes are clipped to the bounds when decoded
    assert space.decode({"log10_w_det": 5.0, "log10_w_seg": -9.0, "freq_det": 99, "freq_seg": -3})["frequencies"] == {
        "det": 10,
        "seg": 1,
    }


def test_unit_mapping_and_categorical_genes() -> None:
    space = SearchSpace(
        [
            NumericGene("lr", 1e-4, 1e-1, log=True),
            IntegerGene("k", 1, 5),
            CategoricalGene("opt", ("adam", "sgd", "adamw")),
        ]
    )
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(300):
        genes = space.sample(rng)
        unit, cats = space.to_unit(genes)
        assert np.all((unit >= 0) & (unit <= 1))
        back = space.from_unit(unit, cats)
        assert back["opt"] == genes["opt"] and back["lr"] == pytest.approx(genes["lr"])
        values = space.values(genes)
        assert 1e-4 <= values["lr"] <= 1e-1 and values["k"] in range(1, 6)
        seen.add(values["opt"])
    assert seen == {"adam", "sgd", "adamw"}
    a = {"lr": -2.0, "k": 2.2, "opt": "sgd"}
    assert space.distance(a, {"lr": -2.0, "k": 1.8, "opt": "sgd"}) == 0.0  # both round to 2
    assert space.distance(a, {"lr": -2.0, "k": 2.2, "opt": "adam"}) == 1.0
    with pytest.raises(ValueError):
        NumericGene("bad", 0.0, 1.0, log=True)


# --------------------------------------------------------------------- operators
def _es(space: SearchSpace | None = None, **opts: object) -> EvolutionStrategy:
    return EvolutionStrategy(space or task_weight_space(async_frequencies=True), seed=0, **opts)


def _ind(index: int, unit: list[float], fitness: float, sigma: float = 0.1) -> Individual:
    return Individual(index, np.array(unit, dtype=float), [], sigma, fitness)


def test_recombination_is_fitness_weighted() -> None:
    es = _es()
    rng = np.random.default_rng(3)
    closer = 0
    trials = 400
    for i in range(trials):
        f = rng.uniform(0.05, 1.0, size=2)
        a, b = _ind(2 * i, list(rng.random(4)), f[0]), _ind(2 * i + 1, list(rng.random(4)), f[1])
        es.population = [a, b]
        child, sigma, _ = es.recombine([a, b])
        lo, hi = np.minimum(a.unit, b.unit), np.maximum(a.unit, b.unit)
        assert np.all(child >= lo - 1e-12) and np.all(child <= hi + 1e-12)
        assert child == pytest.approx((f[0] * a.unit + f[1] * b.unit) / f.sum())
        fitter, weaker = (a, b) if f[0] > f[1] else (b, a)
        closer += np.linalg.norm(child - fitter.unit) < np.linalg.norm(child - weaker.unit)
    assert closer == trials
    # failed (non-positive) fitness: weights fall back to ranks, the fitter still dominates
    a, b = _ind(0, [0.0] * 4, -1.0), _ind(1, [1.0] * 4, float("-inf"))
    es.population = [a, b]
    child, _, _ = es.recombine([a, b])
    assert np.all(child < 0.5)


def test_parent_selection_prefers_fitter_individuals() -> None:
    es = _es()
    es.population = [_ind(i, [0.5] * 4, f) for i, f in enumerate([0.9, 0.7, 0.5, 0.1])]
    counts = np.zeros(4)
    for _ in range(4000):
        parents = es.select_parents()
        assert len({p.index for p in parents}) == 2
        for p in parents:
            counts[p.index] += 1
    assert counts[0] > counts[1] > counts[2] > counts[3] > 0


def test_mutation_self_adapts_sigma_lognormally() -> None:
    es = _es()  # 4 numeric genes → τ = 1/2
    assert es.tau == pytest.approx(0.5)
    sigma = 0.05
    unit = np.full(4, 0.5)
    log_ratio, steps = [], []
    for _ in range(4000):
        child, new_sigma = es.mutate(unit, sigma)
        log_ratio.append(math.log(new_sigma / sigma))
        steps.append((child - unit) / new_sigma)
    log_ratio = np.array(log_ratio)
    assert abs(log_ratio.mean()) < 0.03
    assert log_ratio.std() == pytest.approx(0.5, rel=0.06)
    steps = np.array(steps)
    assert steps.std(axis=0) == pytest.approx(np.ones(4), rel=0.06)
    assert np.abs(steps.mean(axis=0)).max() < 0.06


def test_mutation_clips_to_bounds() -> None:
    es = _es(sigma_max=0.3)
    children = np.array([es.mutate(np.array([0.0, 1.0, 0.02, 0.98]), 0.3)[0] for _ in range(2000)])
    assert children.min() >= 0.0 and children.max() <= 1.0
    assert (children == 0.0).any() and (children == 1.0).any()
    space = task_weight_space(async_frequencies=True)
    for child in children[:200]:
        genes = space.from_unit(child)
        assert -1 <= genes["log10_w_det"] <= 2 and 1 <= genes["freq_seg"] <= 10


def test_plus_selection_keeps_the_best_four() -> None:
    pool = [_ind(i, [0.5] * 4, f) for i, f in enumerate([0.3, float("-inf"), 0.9, 0.1, 0.8, 0.95, 0.2, 0.85])]
    assert [ind.index for ind in EvolutionStrategy.select_survivors(pool, 4)] == [5, 2, 7, 4]
    # through ask/tell: after one generation the population is the best 4 of all 8
    es = _es()
    toy = ToyEvaluator()
    fits: dict[int, float] = {}
    for _ in range(2):
        props = es.ask()
        f = [toy.metrics(es.space.decode(p.genes), p.genes)["geometric_mean"] for p in props]
        fits.update({p.index: v for p, v in zip(props, f, strict=True)})
        es.tell(props, f)
    best4 = sorted(fits, key=lambda i: -fits[i])[:4]
    assert [ind.index for ind in es.population] == best4


def test_nes_step_moves_mean_towards_higher_fitness() -> None:
    es = _es(nes_lr=1.0)
    rng = np.random.default_rng(5)
    direction = np.array([1.0, -2.0, 0.5, 1.5])
    cosines = []
    for _ in range(50):
        units = rng.random((8, 4))
        step = es.nes_step(units, list(units @ direction))
        assert step @ direction > 0
        cosines.append(step @ direction / np.linalg.norm(step) / np.linalg.norm(direction))
    assert np.mean(cosines) > 0.6
    assert np.all(_es(nes_lr=0.0).nes_step(units, list(units @ direction)) == 0)
    # in a run on a linear objective the population mean climbs
    space = SearchSpace([NumericGene(f"x{i}", 0.0, 1.0) for i in range(4)])
    es = EvolutionStrategy(space, seed=1)
    means = []
    for _ in range(6):
        props = es.ask()
        es.tell(props, [float(np.array(list(p.genes.values())) @ direction) for p in props])
        means.append(float(np.mean([ind.unit @ direction for ind in es.population])))
    assert means[-1] > means[0]


def test_tabu_resamples_close_candidates(caplog: pytest.LogCaptureFixture) -> None:
    space = task_weight_space()
    es = EvolutionStrategy(space, seed=0, tabu_radius=0.15)
    props = es.ask()
    es.tell(props, [0.5, 0.6, 0.7, 0.4])
    assert es.is_tabu(dict(props[0].genes))
    near = dict(props[0].genes)
    near["log10_w_det"] += 0.05  # 0.05 / 3 decades in unit space < 0.15
    assert es.is_tabu(near)
    seen = [dict(p.genes) for p in props]
    for _ in range(4):
        props = es.ask()
        for p in props:
            if p.info["tabu_resamples"] <= es.tabu_attempts:
                assert min(space.distance(p.genes, s) for s in seen) >= 0.15
            seen.append(dict(p.genes))
        es.tell(props, [0.5] * len(props))
    # nothing can be outside a huge radius: bounded attempts, then accepted with a warning
    es = EvolutionStrategy(space, seed=0, tabu_radius=10.0, tabu_attempts=3)
    with caplog.at_level(logging.WARNING, logger="taskweight.search"):
        es.tell(es.ask(), [0.1, 0.2, 0.3, 0.4])
        props = es.ask()
    assert all(p.info["tabu_resamples"] == 4 for p in props)
    assert "tabu" in caplog.text


def _best_after(name: str, space: SearchSpace, toy: ToyEvaluator, seed: int, budget: int) -> float:
    opt = make_optimizer(name, space, seed)
    best, done = -1.0, 0
    while done < budget:
        props = opt.ask()[: budget - done]
        fits = [toy.metrics(space.decode(p.genes), p.genes)["geometric_mean"] for p in props]
        opt.tell(props, fits)
        done += len(props)
        best = max(best, *fits)
    return best


def test_es_beats_random_search_on_a_smooth_objective() -> None:
    space = SearchSpace([NumericGene("a", -5, 5), NumericGene("b", -5, 5), NumericGene("c", 0.01, 100, log=True)])
    toy = ToyEvaluator(optimum={"a": 1.0, "b": -2.0, "c": 0.5})
    es = [_best_after("es", space, toy, s, 48) for s in range(6)]
    rnd = [_best_after("random", space, toy, s, 48) for s in range(6)]
    assert np.mean(es) > np.mean(rnd) + 0.1
    assert max(es) > 0.95  # found the optimum region


@pytest.mark.parametrize("name", ["es", "random", "cmaes"])
def test_same_seed_same_sequence(name: str) -> None:
    space = task_weight_space(async_frequencies=True)
    toy = ToyEvaluator()

    def sequence(seed: int) -> list[dict]:
        opt = make_optimizer(name, space, seed)
        out = []
        for _ in range(4):
            props = opt.ask()
            out += [p.genes for p in props]
            np.random.seed(123)  # global NumPy state must not matter (cma uses it)
            opt.tell(props, [toy.metrics(space.decode(p.genes), p.genes)["geometric_mean"] for p in props])
        return out

    assert sequence(7) == sequence(7)
    assert sequence(7) != sequence(8)


def test_ask_tell_protocol_errors() -> None:
    es = _es()
    props = es.ask()
    with pytest.raises(RuntimeError):
        es.ask()
    with pytest.raises(ValueError):
        es.tell(props[1:], [0.1] * 3)
    es.tell(props[:2], [0.1, None])  # a prefix is fine; None counts as failed
    assert es.population[-1].fitness == -math.inf
