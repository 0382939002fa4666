"""Task-weighting strategies behind one small contract (paper §IV and the field).

``get(name, tasks=config.tasks, **options)`` (default tasks: ``classes.DEFAULT_TASKS``) builds a
strategy; every strategy is an
``nn.Module`` with ``backward(losses, shared_params, last_shared_layer) -> weights``,
``on_step_end()``, ``on_epoch_end()`` and ``trainable_parameters()`` (see :mod:`.base`): a
:class:`LossWeighting` implements ``weights(losses)``, a :class:`GradientAggregation`
``aggregate(jacobian)`` (or ``gramian_weights(G)``).

=================  =========================================================  ==========
name               rule                                                       source
=================  =========================================================  ==========
equal              Σ L_τ                                                      §IV-A1
handcrafted        w_τ = L_det(0)/L_τ(0), mean of the first N iterations      Eq. 3–4
dynamic_scaling    w_τ = previous epoch's mean L_det / mean L_τ               Eq. 5–6
uncertainty        ½e^{−s}L + ½s, s = log σ² learned (Kendall et al.)         §IV-A4
gradnorm           balance ‖∇_W w_τL_τ‖ on the last shared layer, Σw = T      §IV-A5
geometric          (Π L_τ)^{1/T}                                              Eq. 7
weight_learning    αL_seg + (1−α)L_det, α = sigmoid(w) learned                Eq. 8–9
static             w̄_τ = w'_τ/Σ w'_j (weights from the user or the search)   §IV-C
async              w̄_τ on steps t with t mod ν_τ = 0, else 0                 Eq. 10–12
pcgrad             project conflicting shared gradients                       Yu 2020
mgda               min-norm convex combination of gradients                   Sener 2018
dwa                w = T·softmax(r/2), r = ratio of the last epochs' losses   Liu 2019
rlw                w = softmax(λ), λ ~ N(0, I) every step                     Lin 2022
imtl_l             e^{s}L − s, s learned                                      Liu 2021
famo               ∇Σ(z/c) log L, z = softmax(ξ) stepped on log-loss falls   Liu 2023
upgrad             mean of gradients projected on the dual cone               Quinton 2024
imtl_g             equal projection on every unit task gradient               Liu 2021
aligned_mtl        gradients aligned to condition number 1, then averaged     Senushkin 2023
dualproj           mean gradient projected on the dual cone                   Lopez-Paz 2017
config             direction equally aligned with every unit gradient         Liu 2025
gradvac            lift gradients towards EMA target cosines                  Wang 2021
graddrop           per element, keep one sign drawn by its purity             Chen 2020
fairgrad           α-fair update: G w = w^{−1/α}                              Ban 2024
cagrad             best worst-case improvement in a ball around the mean      Liu 2021
nash_mtl           Nash bargaining: α ⊙ Gα = 1                                Navon 2022
sdmgrad            simplex-SGD weights pulled towards the mean direction      Xiao 2023
db_mtl             EMA log-loss gradients rescaled to the largest norm        Lin 2023
moco               tracked gradients, λ stepped on the simplex                Fernando 2023
stch               smooth Tchebycheff: μ log Σ exp(log(L/z)/μ)                Lin 2024
=================  =========================================================  ==========
"""

from taskweight.weighting import (  # noqa: F401  (each module registers its strategy)
    aligned_mtl,
    asynchronous,
    cagrad,
    config,
    db_mtl,
    dualproj,
    dwa,
    dynamic_scaling,
    equal,
    fairgrad,
    famo,
    geometric,
    graddrop,
    gradnorm,
    gradvac,
    handcrafted,
    imtl_g,
    imtl_l,
    mgda,
    moco,
    nash_mtl,
    pcgrad,
    rlw,
    sdmgrad,
    static,
    stch,
    uncertainty,
    upgrad,
    weight_learning,
)
from taskweight.weighting.base import GradientAggregation, GramianAggregation, LossWeighting, WeightingStrategy
from taskweight.weighting.registry import available, get, option_names, parse_options, register, strategy_class

__all__ = [
    "GradientAggregation",
    "GramianAggregation",
    "LossWeighting",
    "WeightingStrategy",
    "available",
    "get",
    "option_names",
    "parse_options",
    "register",
    "strategy_class",
]
