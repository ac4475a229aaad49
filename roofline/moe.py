"""Mixture of experts: how many distinct experts a batch activates, and how experts are placed.

In decode a MoE layer reads the weights of every expert that at least one token of the batch
was routed to, not all experts and not ``top_k`` of them. With ``T`` tokens, each routed to
``k`` of ``E`` experts, and expert ``i`` chosen by a token with probability ``q_i``
(``sum(q) = k``, ``q_i <= 1``), tokens independent of each other, the expected number of
distinct experts is

    D(T) = sum_i [1 - (1 - q_i)^T]

which under uniform routing (``q_i = k/E``) is the closed form ``E * (1 - (1 - k/E)^T)``.
Only the per-token inclusion probabilities matter, not how a token's ``k`` experts are drawn
jointly (expectation is linear over experts).

Skew: expert popularity follows a Zipf law ``p_i ~ (i + 1)^-s`` with ``s = moe_skew``
(``s = 0`` is uniform). A token's inclusion probabilities are ``q_i = min(1, c * p_i)`` with
``c`` chosen so that ``sum(q) = k`` (water-filling: the most popular experts saturate at 1
and the rest share what is left in proportion to ``p``). Skew lowers ``D``: the batch keeps
hitting the same popular experts.

Placement: with expert parallelism ``ep`` each device holds ``E / ep`` experts, dealt
round-robin by popularity (expert ``i`` on device ``i mod ep``). The layer's step waits for the
slowest device, so the model uses the expected **maximum** over the ``ep`` devices of the
distinct experts (weights read) and of the routed rows (FLOPs) per device, not their mean
(:func:`expected_max_distinct_experts`, :func:`expected_max_rows`). Under uniform routing the
maximum is about 1.7x the mean at 4 tokens on DeepSeek-V3's 256 experts over 8 devices and
1.2x at 32 tokens; it tends to the mean as the batch grows.

The functions broadcast over ``tokens`` (array_like in, same shape out; scalar in, float out).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "zipf_popularity",
    "inclusion_probabilities",
    "expected_distinct_experts",
    "uniform_distinct_experts",
    "sample_distinct_experts",
    "expected_max_distinct_experts",
    "expected_max_rows",
    "sample_max_per_device",
    "ExpertLayout",
]


def zipf_popularity(num_experts: int, skew: float = 0.0) -> np.ndarray:
    """Routing popularity of each expert, shape (num_experts,), summing to 1.

    ``p_i ~ (i + 1)^-skew``: ``skew = 0`` is uniform, ``skew = 1`` is the classic Zipf law.
    """
    _check(num_experts, 1, skew)
    if skew == 0:
        return np.full(num_experts, 1.0 / num_experts)
    p = np.arange(1, num_experts + 1, dtype=float) ** -float(skew)
    return p / p.sum()


def inclusion_probabilities(num_experts: int, experts_per_token: int, skew: float = 0.0) -> np.ndarray:
    """Probability that one token is routed to each expert, shape (num_experts,).

    ``q_i = min(1, c * p_i)`` with ``sum(q) = experts_per_token`` (see the module docstring).

    Example:
        >>> inclusion_probabilities(8, 2)
        array([0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25, 0.25])
    """
    _check(num_experts, experts_per_token, skew)
    k = experts_per_token
    if skew == 0:
        return np.full(num_experts, k / num_experts)
    p = zipf_popularity(num_experts, skew)
    q = np.zeros(num_experts)
    saturated = np.zeros(num_experts, dtype=bool)
    for _ in range(k + 1):  # each pass saturates at least one more expert, at most k in all
        free = ~saturated
        q[free] = (k - saturated.sum()) * p[free] / p[free].sum()
        over = free & (q > 1.0)
        if not over.any():
            break
        saturated |= over
        q[over] = 1.0
    return q


def uniform_distinct_experts(num_experts: int, experts_per_token: int, tokens: ArrayLike) -> np.ndarray | float:
    """Closed form under uniform routing: ``E * (1 - (1 - k/E)^T)``.

    Example:
        >>> uniform_distinct_experts(8, 2, 1)
        2.0
        >>> uniform_distinct_experts(256, 8, [1, 1000]).round(2)
        array([  8.  , 256.  ])
    """
    _check(num_experts, experts_per_token, 0.0)
    t = _tokens(tokens)
    e, k = float(num_experts), float(experts_per_token)
    out = e * (1.0 - (1.0 - k / e) ** t)
    return out[()] if out.ndim == 0 else out


def expected_distinct_experts(num_experts: int, experts_per_token: int, tokens: ArrayLike,
                              skew: float = 0.0) -> np.ndarray | float:
    """Expected number of distinct experts that ``tokens`` tokens are routed to.

    Args:
        num_experts: routed experts ``E`` of the layer.
        experts_per_token: ``k`` (top-k).
        tokens: tokens routed together (one decode step: the batch), array_like, >= 0;
            fractional values are allowed (expected token counts).
        skew: Zipf exponent of the expert popularity (0: uniform).

    Returns:
        ``sum_i 1 - (1 - q_i)^T``, the shape of ``tokens`` (a float for a scalar).
    """
    if skew == 0:
        return uniform_distinct_experts(num_experts, experts_per_token, tokens)
    q = inclusion_probabilities(num_experts, experts_per_token, skew)
    t = _tokens(tokens)
    out = np.sum(1.0 - (1.0 - q) ** t[..., None], axis=-1)
    return out[()] if out.ndim == 0 else out


def sample_distinct_experts(num_experts: int, experts_per_token: int, tokens: int, skew: float = 0.0,
                            trials: int = 1000, rng: np.random.Generator | None = None) -> np.ndarray:
    """Monte Carlo draw of the distinct experts ``tokens`` tokens hit, shape (trials,).

    Each token draws its ``k`` experts by systematic sampling on the inclusion probabilities
    (one uniform offset ``u``; the experts whose cumulative-probability interval holds
    ``u, u + 1, ..., u + k - 1``): exactly ``k`` distinct experts with marginals ``q_i``.
    A check of :func:`expected_distinct_experts`, not used by the model.
    """
    rng = rng or np.random.default_rng(0)
    q = inclusion_probabilities(num_experts, experts_per_token, skew)
    edges = np.cumsum(q)
    edges[-1] = experts_per_token  # guard the last edge against rounding
    u = rng.random((trials, tokens, 1)) + np.arange(experts_per_token)
    chosen = np.minimum(np.searchsorted(edges, u, side="right"), num_experts - 1)
    hit = np.zeros((trials, num_experts), dtype=bool)
    hit[np.arange(trials)[:, None], chosen.reshape(trials, -1)] = True
    return hit.sum(axis=1)


def _device_of_expert(num_experts: int, devices: int) -> np.ndarray:
    """Round-robin placement by popularity rank: expert ``i`` on device ``i mod devices``."""
    return np.arange(num_experts) % devices


def expected_max_distinct_experts(num_experts: int, experts_per_token: int, tokens: float, devices: int,
                                  skew: float = 0.0) -> float:
    """Expected maximum over ``devices`` expert-parallel devices of the distinct local experts hit.

    Device ``d``'s count is a sum of independent Bernoulli indicators, expert ``i`` hit with
    probability ``1 - (1 - q_i)^T`` (a Poisson-binomial law, computed exactly by convolution).
    Treating the devices as independent (a token's k experts are drawn without replacement, which
    correlates devices only weakly), ``P(max <= x) = prod_d F_d(x)`` and
    ``E[max] = sum_{x >= 0} (1 - prod_d F_d(x))``. A seeded Monte Carlo checks it in the tests.
    """
    _check(num_experts, experts_per_token, skew)
    if devices <= 1:
        return float(expected_distinct_experts(num_experts, experts_per_token, tokens, skew))
    q = inclusion_probabilities(num_experts, experts_per_token, skew)
    hit = 1.0 - (1.0 - q) ** float(_tokens(tokens))
    owner = _device_of_expert(num_experts, devices)
    size = int(np.bincount(owner).max()) + 1
    cdf = np.ones(size)
    for d in range(devices):  # ep devices (<= a few hundred), not configurations
        pmf = np.zeros(size)
        pmf[0] = 1.0
        for p in hit[owner == d]:  # Poisson-binomial by convolution
            pmf[1:] = pmf[1:] * (1 - p) + pmf[:-1] * p
            pmf[0] *= 1 - p
        cdf *= np.minimum(np.cumsum(pmf), 1.0)
    return float(np.sum(1.0 - cdf))


def expected_max_rows(num_experts: int, experts_per_token: int, tokens: float, devices: int,
                      skew: float = 0.0) -> float:
    """Expected maximum over ``devices`` of the (token, expert) rows routed to one device.

    Device ``d`` receives ``sum_i Binomial(T, q_i)`` rows over its experts: mean
    ``mu_d = T sum q_i``, variance ``sigma_d^2 = T sum q_i (1 - q_i)``. Each count is taken as
    normal and the devices as independent, so ``P(max <= x) = prod_d Phi((x - mu_d) / sigma_d)``
    and ``E[max] = lo + integral_lo^inf (1 - prod_d Phi) dx`` (numerically, on a fine grid; exact
    as T grows, checked against Monte Carlo in the tests).
    """
    from scipy.special import ndtr

    _check(num_experts, experts_per_token, skew)
    t = float(_tokens(tokens))
    q = inclusion_probabilities(num_experts, experts_per_token, skew)
    if devices <= 1:
        return t * experts_per_token
    owner = _device_of_expert(num_experts, devices)
    mean = t * np.bincount(owner, weights=q, minlength=devices)
    sd = np.sqrt(t * np.bincount(owner, weights=q * (1 - q), minlength=devices))
    if not np.any(sd > 0):
        return float(mean.max())
    lo, hi = float(np.min(mean - 8 * sd)), float(np.max(mean + 8 * sd))
    x = np.linspace(lo, hi, 4001)
    safe = np.where(sd > 0, sd, 1.0)
    cdf = np.where(sd[:, None] > 0, ndtr((x[None, :] - mean[:, None]) / safe[:, None]),
                   (x[None, :] >= mean[:, None]).astype(float)).prod(axis=0)
    tail = 1.0 - cdf
    return float(lo + np.sum((tail[1:] + tail[:-1]) / 2 * np.diff(x)))  # trapezoid rule (numpy >= 1.24)


def sample_max_per_device(num_experts: int, experts_per_token: int, tokens: int, devices: int,
                          skew: float = 0.0, trials: int = 1000,
                          rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo of the slowest device: per trial, the maximum over devices of the distinct
    local experts hit and of the rows received, shapes (trials,) each. Each token draws its ``k``
    experts by systematic sampling on the inclusion probabilities taken in a fresh random order
    (exactly ``k`` distinct experts, marginals ``q_i``, and no link between a token's experts and
    their placement). A check of the closed forms, not used by the model."""
    rng = rng or np.random.default_rng(0)
    q = inclusion_probabilities(num_experts, experts_per_token, skew)
    order = np.argsort(rng.random((trials, tokens, num_experts)), axis=-1)
    edges = np.cumsum(q[order], axis=-1)
    edges[..., -1] = experts_per_token  # guard the last edge against rounding
    u = rng.random((trials, tokens, 1)) + np.arange(experts_per_token)
    pos = np.minimum((edges[..., None, :] <= u[..., None]).sum(axis=-1), num_experts - 1)
    chosen = np.take_along_axis(order, pos, axis=-1).reshape(trials, -1)
    counts = np.zeros((trials, num_experts))
    np.add.at(counts, (np.arange(trials)[:, None], chosen), 1.0)
    owner = _device_of_expert(num_experts, devices)
    per_device = np.stack([counts[:, owner == d] for d in range(devices)], axis=1)  # (trials, dev, E/dev)
    return (per_device > 0).sum(axis=2).max(axis=1), per_device.sum(axis=2).max(axis=1)


class ExpertLayout:
    """Where the routed experts of one MoE layer run, per device.

    The MoE layer uses ``group = max(ep, tp)`` devices of one pipeline stage: ``ep`` expert
    shards, each expert also split ``etp = group / ep`` ways by tensor parallelism (``ep = 1``:
    every expert split over the TP group, as a dense MLP). When ``ep > tp`` the group spans
    ``group / tp`` attention replicas (DP for attention), each with its own batch.

    Args:
        num_experts, experts_per_token: the layer's ``E`` and ``k``.
        tokens: tokens of one attention replica in this pass (``T``).
        tp, ep: tensor and expert parallelism.
        skew: Zipf exponent of expert popularity.
    """

    def __init__(self, num_experts: int, experts_per_token: int, tokens: float, tp: int, ep: int,
                 skew: float = 0.0) -> None:
        self.num_experts, self.k, self.tp, self.ep = num_experts, experts_per_token, tp, ep
        self.group = max(ep, tp)
        self.etp = self.group // ep  # expert tensor parallelism
        self.replicas = self.group // tp  # attention replicas whose tokens meet in the group
        self.local_experts = num_experts // ep
        self.tokens = float(tokens)
        self.group_tokens = self.tokens * self.replicas
        # each device dispatches (or, for ep = 1, owns a 1/tp share of) T / tp tokens
        self.device_tokens = self.tokens / tp
        self.skew = skew

    @property
    def rows(self) -> float:
        """(token, expert) rows the slowest device computes. An EP slot's devices compute every
        row routed to its experts (each at width ``I / etp``): on average ``T/tp * k * etp`` (=
        group tokens x k / ep); with ``ep > 1`` the expected maximum over the ``ep`` slots."""
        if self.ep == 1:
            return self.mean_rows
        return expected_max_rows(self.num_experts, self.k, self.group_tokens, self.ep, self.skew)

    @property
    def mean_rows(self) -> float:
        """Expected rows of the average device: ``T/tp * k * etp``."""
        return self.device_tokens * self.k * self.etp

    @property
    def distinct_experts(self) -> float:
        """Distinct local experts the group's tokens activate on the slowest device: the expected
        maximum over the ``ep`` devices (the step waits for it)."""
        return expected_max_distinct_experts(self.num_experts, self.k, self.group_tokens, self.ep, self.skew)

    @property
    def mean_distinct_experts(self) -> float:
        """Expected distinct local experts of the average device, ``D / ep``."""
        total = expected_distinct_experts(self.num_experts, self.k, self.group_tokens, self.skew)
        return float(total) / self.ep

    @property
    def rows_per_expert(self) -> float:
        """Mean GEMM rows of one active expert (the grouped GEMM's ``m``)."""
        d = self.distinct_experts
        return self.rows / d if d > 0 else 0.0

    def dispatch_elements(self, hidden: int) -> float:
        """Elements in the all-to-all buffer of the busiest device: on average its tokens, k copies,
        to etp ranks each (``T/tp * k * etp``); with EP, the rows the slowest EP slot receives
        (the all-to-all ends when that device has its rows)."""
        return self.rows * hidden


def _tokens(tokens: ArrayLike) -> np.ndarray:
    t = np.asarray(tokens, dtype=float)
    if np.any(t < 0) or np.any(~np.isfinite(t)):
        raise ValueError(f"tokens must be finite and >= 0, got {tokens!r}")
    return t


def _check(num_experts: int, k: int, skew: float) -> None:
    if num_experts < 1 or not 1 <= k <= num_experts:
        raise ValueError(f"need 1 <= experts_per_token <= num_experts, got k={k}, E={num_experts}")
    if not np.isfinite(skew) or skew < 0:
        raise ValueError(f"moe skew must be a finite number >= 0, got {skew!r}")
