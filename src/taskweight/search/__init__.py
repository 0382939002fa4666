"""Evolutionary meta-learning of task weights and async backprop frequencies (paper §IV-C/D).

    from taskweight.search import run_search, task_weight_space, ToyEvaluator
    result = run_search(ToyEvaluator(), task_weight_space(async_frequencies=True),
                        budget=16, out_dir="runs/search", seed=0)
    result.best_config   # {"weights": {"det": ..., "seg": ...}, "frequencies": {...}, ...}

With the project's trainer: :func:`search_task_weights` (CLI: ``taskweight search``).
"""

from taskweight.search.errors import SearchError
from taskweight.search.evaluation import (
    Candidate,
    EvalResult,
    ToyEvaluator,
    TrainerEvaluator,
    target_of,
    training_config,
)
from taskweight.search.journal import JournalRecord, best_record, lineage, lineage_epochs, read_journal
from taskweight.search.optimizers import (
    CMAES,
    OPTIMIZERS,
    EvolutionStrategy,
    Optimizer,
    Proposal,
    RandomSearch,
    make_optimizer,
)
from taskweight.search.report import table1_markdown, write_report
from taskweight.search.search import (
    LocalExecutor,
    RayExecutor,
    SearchResult,
    run_search,
    search_task_weights,
)
from taskweight.search.space import (
    CategoricalGene,
    IntegerGene,
    NumericGene,
    SearchSpace,
    TaskWeightSpace,
    task_weight_space,
)

__all__ = [
    "CMAES",
    "OPTIMIZERS",
    "Candidate",
    "CategoricalGene",
    "EvalResult",
    "EvolutionStrategy",
    "IntegerGene",
    "JournalRecord",
    "LocalExecutor",
    "NumericGene",
    "Optimizer",
    "Proposal",
    "RandomSearch",
    "RayExecutor",
    "SearchError",
    "SearchResult",
    "SearchSpace",
    "TaskWeightSpace",
    "ToyEvaluator",
    "TrainerEvaluator",
    "best_record",
    "lineage",
    "lineage_epochs",
    "make_optimizer",
    "read_journal",
    "run_search",
    "search_task_weights",
    "table1_markdown",
    "target_of",
    "task_weight_space",
    "training_config",
    "write_report",
]
