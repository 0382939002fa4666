"""Ask/tell optimisers: the paper's evolution strategy and two baselines.

Every optimiser is fully deterministic given its seed and the fitness values it is told:
all randomness comes from one seeded :class:`numpy.random.Generator` (CMA-ES: from a
private copy of NumPy's global state, swapped in around every call into ``cma``). That is
what lets a search resume by *replaying* its journal (re-telling recorded results) instead
of storing RNG states.

Protocol::

    opt = make_optimizer("es", space, seed=0)
    while budget_left:
        proposals = opt.ask()                 # one generation (any prefix may be evaluated)
        fitness = [evaluate(p.genes) for p in proposals]
        opt.tell(proposals, fitness)          # higher is better; NaN / None = failed

:class:`EvolutionStrategy` (``es``, paper §IV-C, after [38], [2], [54], [12]):

- initial population of ``initial_population`` = 4 configurations, uniform in bounds;
- each generation ``lambda_`` = 4 new configurations, each from ``n_parents`` = 2 parents
  drawn without replacement by **linear rank-based** fitness-proportional selection
  (probability ∝ μ − rank; invariant to the scale of the target and to failed runs);
- recombination: numeric genes are the fitness-weighted mean of the parents (weights ∝
  parents' fitness when both are positive and finite, else ∝ their rank weights); the
  child's step size is the weighted geometric mean of the parents' σ; each categorical gene
  is copied from one parent chosen with the same weights;
- NES-style step: from the last (μ+λ) pool, utilities ``u_k`` (NES fitness shaping:
  ``max(0, log(n/2+1) − log rank_k)`` normalised, minus ``1/n``) times offsets from the
  pool mean give ``Σ_k u_k (z_k − m)``, the natural-gradient step of the mean; every
  recombinant of the generation moves by ``nes_lr`` times it;
- self-adaptive Gaussian mutation: ``σ' = σ·exp(τ·N(0,1))`` with ``τ = 1/√n`` (clipped to
  ``[sigma_min, sigma_max]``), then ``z = r + σ'·N(0, I)`` clipped to the bounds (all in
  the unit cube of :meth:`SearchSpace.to_unit`); categorical genes are re-drawn uniformly
  with probability ``categorical_mutation``;
- tabu list: a candidate closer than ``tabu_radius`` (Euclidean, normalised gene space,
  integers rounded — :meth:`SearchSpace.distance`) to any evaluated or already proposed
  configuration is re-sampled, at most ``tabu_attempts`` times, then accepted with a
  logged warning;
- (μ+λ) survivor selection keeping the μ = 4 best of parents and offspring.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from taskweight.search.space import GeneValue, SearchSpace

log = logging.getLogger("taskweight.search")


@dataclass
class Proposal:
    """A configuration an optimiser asks to be evaluated."""

    index: int
    generation: int
    genes: dict[str, GeneValue]
    parents: list[int] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def sanitize_fitness(value: float | None) -> float:
    """Fitness to maximise; NaN, None (failed runs) and +inf become ``-inf``."""
    if value is None:
        return -math.inf
    value = float(value)
    return value if math.isfinite(value) else -math.inf


class Optimizer:
    """Base class; subclasses implement :meth:`_ask` and may extend :meth:`tell`."""

    name = "base"

    def __init__(self, space: SearchSpace, seed: int) -> None:
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.generation = 0
        self.next_index = 0
        self.evaluated: list[tuple[dict[str, GeneValue], float]] = []
        self._pending: list[Proposal] | None = None

    def options(self) -> dict[str, Any]:
        return {}

    def ask(self) -> list[Proposal]:
        """The next generation of proposals (call :meth:`tell` before asking again)."""
        if self._pending is not None:
            raise RuntimeError("tell() the results of the previous ask() before asking again")
        proposals = self._ask()
        self._pending = proposals
        return proposals

    def tell(self, proposals: Sequence[Proposal], fitnesses: Sequence[float | None]) -> None:
        """Report fitness (higher is better) for a prefix of the last ask()'s proposals."""
        if self._pending is None:
            raise RuntimeError("tell() without a pending ask()")
        if len(proposals) != len(fitnesses):
            raise ValueError("one fitness value per proposal is needed")
        if [p.index for p in proposals] != [p.index for p in self._pending[: len(proposals)]]:
            raise ValueError("tell() must receive a prefix of the proposals of the last ask(), in order")
        fit = [sanitize_fitness(f) for f in fitnesses]
        self.evaluated.extend((dict(p.genes), f) for p, f in zip(proposals, fit, strict=True))
        self._tell(list(proposals), fit)
        self._pending = None
        self.generation += 1

    # -- subclass hooks
    def _ask(self) -> list[Proposal]:
        raise NotImplementedError

    def _tell(self, proposals: list[Proposal], fitnesses: list[float]) -> None:
        pass

    def _new_proposal(self, genes: dict[str, GeneValue], parents: list[int] | None = None, **info: Any) -> Proposal:
        proposal = Proposal(self.next_index, self.generation, genes, list(parents or []), info)
        self.next_index += 1
        return proposal


# ---------------------------------------------------------------------- random search
class RandomSearch(Optimizer):
    """Uniform sampling in the bounds, ``batch`` configurations per generation."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int, *, batch: int = 4) -> None:
        super().__init__(space, seed)
        if batch < 1:
            raise ValueError("batch must be >= 1")
        self.batch = batch

    def options(self) -> dict[str, Any]:
        return {"batch": self.batch}

    def _ask(self) -> list[Proposal]:
        return [self._new_proposal(self.space.sample(self.rng)) for _ in range(self.batch)]


# -------------------------------------------------------------- evolution strategy
@dataclass
class Individual:
    index: int
    unit: np.ndarray
    cats: list[int]
    sigma: float
    fitness: float


class EvolutionStrategy(Optimizer):
    """The paper's extended evolution strategy (see the module docstring)."""

    name = "es"

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        *,
        mu: int = 4,
        lambda_: int = 4,
        initial_population: int = 4,
        n_parents: int = 2,
        sigma0: float = 0.15,
        sigma_min: float = 1e-3,
        sigma_max: float = 0.3,
        nes_lr: float = 0.5,
        tabu_radius: float = 0.02,
        tabu_attempts: int = 25,
        categorical_mutation: float = 0.2,
    ) -> None:
        super().__init__(space, seed)
        if min(mu, lambda_, initial_population, n_parents) < 1:
            raise ValueError("mu, lambda_, initial_population and n_parents must be >= 1")
        if not 0 < sigma_min <= sigma0 <= sigma_max:
            raise ValueError("need 0 < sigma_min <= sigma0 <= sigma_max")
        if tabu_radius < 0 or tabu_attempts < 0 or nes_lr < 0 or not 0 <= categorical_mutation <= 1:
            raise ValueError("tabu_radius, tabu_attempts and nes_lr must be >= 0, categorical_mutation in [0, 1]")
        self.mu, self.lambda_, self.initial_population, self.n_parents = mu, lambda_, initial_population, n_parents
        self.sigma0, self.sigma_min, self.sigma_max = sigma0, sigma_min, sigma_max
        self.nes_lr = nes_lr
        self.tabu_radius, self.tabu_attempts = tabu_radius, tabu_attempts
        self.categorical_mutation = categorical_mutation
        self.tau = 1.0 / math.sqrt(max(space.n_numeric, 1))
        self.population: list[Individual] = []
        self.pool: list[Individual] = []

    def options(self) -> dict[str, Any]:
        return {
            "mu": self.mu,
            "lambda_": self.lambda_,
            "initial_population": self.initial_population,
            "n_parents": self.n_parents,
            "sigma0": self.sigma0,
            "sigma_min": self.sigma_min,
            "sigma_max": self.sigma_max,
            "nes_lr": self.nes_lr,
            "tabu_radius": self.tabu_radius,
            "tabu_attempts": self.tabu_attempts,
            "categorical_mutation": self.categorical_mutation,
        }

    # ------------------------------------------------------------------- tabu
    def is_tabu(self, genes: dict[str, GeneValue], extra: Sequence[dict[str, GeneValue]] = ()) -> bool:
        """Whether ``genes`` lies within ``tabu_radius`` of an evaluated (or ``extra``) configuration."""
        if self.tabu_radius <= 0:
            return False
        seen = [g for g, _ in self.evaluated] + list(extra)
        return any(self.space.distance(genes, other) < self.tabu_radius for other in seen)

    # --------------------------------------------------------------- operators
    def rank_weights(self, individuals: Sequence[Individual]) -> np.ndarray:
        """Linear ranking: best gets n, worst 1 (ties broken by evaluation order)."""
        order = sorted(range(len(individuals)), key=lambda i: (-individuals[i].fitness, individuals[i].index))
        weights = np.empty(len(individuals))
        for rank, i in enumerate(order):
            weights[i] = len(individuals) - rank
        return weights

    def select_parents(self) -> list[Individual]:
        """``n_parents`` distinct parents, probability ∝ linear rank weight (fitness-proportional on ranks)."""
        pop = self.population
        k = min(self.n_parents, len(pop))
        w = self.rank_weights(pop)
        chosen = self.rng.choice(len(pop), size=k, replace=False, p=w / w.sum())
        return [pop[int(i)] for i in chosen]

    def recombination_weights(self, parents: Sequence[Individual]) -> np.ndarray:
        fit = np.array([p.fitness for p in parents], dtype=float)
        if np.all(np.isfinite(fit)) and np.all(fit > 0):
            w = fit
        else:
            all_w = self.rank_weights(self.population) if self.population else np.ones(len(parents))
            by_index = {ind.index: all_w[i] for i, ind in enumerate(self.population)}
            w = np.array([by_index.get(p.index, 1.0) for p in parents], dtype=float)
        return w / w.sum()

    def recombine(self, parents: Sequence[Individual]) -> tuple[np.ndarray, float, list[int]]:
        """Fitness-weighted recombinant: (unit vector, step size, categorical indices)."""
        w = self.recombination_weights(parents)
        unit = np.sum([wi * p.unit for wi, p in zip(w, parents, strict=True)], axis=0)
        sigma = float(math.exp(sum(wi * math.log(p.sigma) for wi, p in zip(w, parents, strict=True))))
        cats = [parents[int(self.rng.choice(len(parents), p=w))].cats[j] for j in range(len(self.space.categorical))]
        return np.asarray(unit, dtype=float), sigma, cats

    def mutate(self, unit: np.ndarray, sigma: float) -> tuple[np.ndarray, float]:
        """Self-adaptive Gaussian mutation: log-normal σ, then ``unit + σ'·N(0, I)`` clipped."""
        new_sigma = float(
            np.clip(sigma * math.exp(self.tau * self.rng.standard_normal()), self.sigma_min, self.sigma_max)
        )
        child = np.clip(unit + new_sigma * self.rng.standard_normal(len(unit)), 0.0, 1.0)
        return child, new_sigma

    def mutate_categorical(self, cats: Sequence[int]) -> list[int]:
        out = []
        for gene, c in zip(self.space.categorical, cats, strict=True):
            if self.rng.random() < self.categorical_mutation:
                c = int(self.rng.integers(len(gene.choices)))
            out.append(int(c))
        return out

    @staticmethod
    def nes_utilities(n: int) -> np.ndarray:
        """NES fitness shaping for ranks 1..n (best first); sums to zero."""
        raw = np.maximum(0.0, math.log(n / 2 + 1) - np.log(np.arange(1, n + 1)))
        return raw / raw.sum() - 1.0 / n

    def nes_step(self, units: np.ndarray, fitnesses: Sequence[float]) -> np.ndarray:
        """``nes_lr · Σ_k u_k (z_k − m)``: the natural-gradient step of the mean from samples ``z_k``."""
        units = np.asarray(units, dtype=float)
        if len(units) < 2 or self.nes_lr == 0:
            return np.zeros(self.space.n_numeric)
        order = sorted(range(len(units)), key=lambda i: -fitnesses[i])  # stable: earlier first on ties
        u = np.empty(len(units))
        u[order] = self.nes_utilities(len(units))
        mean = units.mean(axis=0)
        return self.nes_lr * np.sum(u[:, None] * (units - mean), axis=0)

    @staticmethod
    def select_survivors(pool: Sequence[Individual], mu: int) -> list[Individual]:
        """(μ+λ): the ``mu`` fittest of parents and offspring (ties: earlier evaluation wins)."""
        return sorted(pool, key=lambda ind: (-ind.fitness, ind.index))[:mu]

    # ----------------------------------------------------------------- ask/tell
    def _sample_until_free(self, draw: Any, batch: list[dict[str, GeneValue]]) -> tuple[dict[str, GeneValue], Any, int]:
        for attempt in range(self.tabu_attempts + 1):
            genes, extra = draw()
            if not self.is_tabu(genes, batch):
                return genes, extra, attempt
        log.warning(
            "tabu search: no configuration outside radius %.3g after %d re-samples; accepting %s",
            self.tabu_radius,
            self.tabu_attempts,
            genes,
        )
        return genes, extra, self.tabu_attempts + 1

    def _ask(self) -> list[Proposal]:
        batch: list[dict[str, GeneValue]] = []
        proposals: list[Proposal] = []
        if not self.population:
            for _ in range(self.initial_population):
                genes, _, resampled = self._sample_until_free(lambda: (self.space.sample(self.rng), None), batch)
                batch.append(genes)
                proposals.append(self._new_proposal(genes, [], sigma=self.sigma0, tabu_resamples=resampled))
            return proposals
        step = self.nes_step(np.array([ind.unit for ind in self.pool]), [ind.fitness for ind in self.pool])
        for _ in range(self.lambda_):
            parents = self.select_parents()
            unit, sigma, cats = self.recombine(parents)
            base = np.clip(unit + step, 0.0, 1.0)

            def draw(
                base: np.ndarray = base, sigma: float = sigma, cats: list[int] = cats
            ) -> tuple[dict[str, GeneValue], float]:
                child, child_sigma = self.mutate(base, sigma)
                return self.space.from_unit(child, self.mutate_categorical(cats)), child_sigma

            genes, child_sigma, resampled = self._sample_until_free(draw, batch)
            batch.append(genes)
            proposals.append(
                self._new_proposal(
                    genes,
                    [p.index for p in parents],
                    sigma=child_sigma,
                    tabu_resamples=resampled,
                    nes_step=[float(s) for s in step],
                )
            )
        return proposals

    def _tell(self, proposals: list[Proposal], fitnesses: list[float]) -> None:
        offspring = []
        for p, f in zip(proposals, fitnesses, strict=True):
            unit, cats = self.space.to_unit(p.genes)
            offspring.append(Individual(p.index, unit, cats, float(p.info.get("sigma", self.sigma0)), f))
        self.pool = self.population + offspring
        self.population = self.select_survivors(self.pool, self.mu)


# ------------------------------------------------------------------------- CMA-ES
class CMAES(Optimizer):
    """CMA-ES through the ``cma`` package on the unit cube (bounds by cma's ``bounds`` option).

    Integer genes are rounded at decode; a categorical gene is one more unit coordinate
    mapped to ``floor(u·k)``. ``cma`` draws from NumPy's global RNG, so a private copy of
    that state (seeded from ``seed``) is swapped in around every call. A partial last
    generation (budget not a multiple of ``popsize``) is not told to cma: the search ends.
    """

    name = "cmaes"

    def __init__(self, space: SearchSpace, seed: int, *, popsize: int = 4, sigma0: float = 0.3) -> None:
        super().__init__(space, seed)
        try:
            import cma
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from taskweight.search.errors import SearchError

            raise SearchError("the cmaes optimiser needs the cma package: pip install 'taskweight[cma]'") from exc
        self.popsize, self.sigma0 = popsize, sigma0
        self.dim = space.n_numeric + len(space.categorical)
        self._np_state = np.random.RandomState(int(self.rng.integers(1, 2**31 - 1))).get_state()
        x0 = self.rng.random(self.dim)
        cma_seed = int(self.rng.integers(1, 2**31 - 1))
        opts = {
            "bounds": [0.0, 1.0],
            "popsize": popsize,
            "seed": cma_seed,
            "verbose": -9,
            "verb_log": 0,
            "verb_disp": 0,
            "verb_filenameprefix": "",
            "CMA_diagonal": False,
        }
        with self._global_rng():
            self.es = cma.CMAEvolutionStrategy(x0, sigma0, opts)
        self._asked: list[np.ndarray] = []

    def options(self) -> dict[str, Any]:
        return {"popsize": self.popsize, "sigma0": self.sigma0}

    @contextlib.contextmanager
    def _global_rng(self) -> Iterator[None]:
        saved = np.random.get_state()
        np.random.set_state(self._np_state)
        try:
            yield
        finally:
            self._np_state = np.random.get_state()
            np.random.set_state(saved)

    def _decode(self, x: np.ndarray) -> dict[str, GeneValue]:
        x = np.clip(np.asarray(x, dtype=float), 0.0, 1.0)
        n = self.space.n_numeric
        cats = [
            min(int(u * len(g.choices)), len(g.choices) - 1) for g, u in zip(self.space.categorical, x[n:], strict=True)
        ]
        return self.space.from_unit(x[:n], cats)

    def _ask(self) -> list[Proposal]:
        with self._global_rng():
            self._asked = [np.array(x, dtype=float) for x in self.es.ask()]
        return [self._new_proposal(self._decode(x), [], sigma=float(self.es.sigma)) for x in self._asked]

    def _tell(self, proposals: list[Proposal], fitnesses: list[float]) -> None:
        if len(proposals) < len(self._asked):
            return
        finite = [f for f in fitnesses if math.isfinite(f)]
        worst = (min(finite) - 1.0) if finite else 0.0
        losses = [-(f if math.isfinite(f) else worst) for f in fitnesses]
        with self._global_rng():
            self.es.tell(self._asked, losses)


OPTIMIZERS: dict[str, type[Optimizer]] = {"es": EvolutionStrategy, "random": RandomSearch, "cmaes": CMAES}


def make_optimizer(name: str, space: SearchSpace, seed: int, **options: Any) -> Optimizer:
    """Build ``es``, ``random`` or ``cmaes`` for ``space`` with ``seed``."""
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        from taskweight.search.errors import SearchError

        raise SearchError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}") from None
    return cls(space, seed, **options)
