"""Energy of serving: the dynamic energy of one engine step, and the average power of a replica.

A step's dynamic energy splits like its time (:mod:`roofline.serving.step_cost`), from the same
operator tables and :func:`roofline.power.pass_energy_j` (FLOPs, HBM, L2, link and prefetch bytes
at their energies per operation):

- the **body** for ``T`` tokens and the **head** for ``S`` sampled sequences, tabulated on a
  coarse grid of token counts and interpolated (energy, unlike time, has no ``max``: it is affine
  in ``T`` for dense models; only the distinct experts of a MoE layer bend it);
- **attention**: ``e_kv * K + e_seq * B + e_pair * pairs + e_ctx * ctx + e_tok * P``, the
  compute and the memory energy together (time takes their maximum; energy pays both).

A serving operating point is a stream of steps. From its throughput (requests/s) and its mean step
time, :func:`serving_power_w` builds the *mean step* (tokens, sampled sequences, KV tokens read,
prefill pairs per step) and charges its energy at the step rate; the engine is busy a share
``min(1, mean running requests)`` of the time (an open loop at a low rate idles between requests).
Power = idle + busy share x busy power + dynamic (:class:`roofline.power.EnergyRates`: a device
draws its idle power at all times and its busy power while the engine runs steps); where the
dynamic power would exceed the TDP headroom left by idle and busy power, the replica runs slower,
as in ``predict`` (:func:`roofline.power.tdp_capped_s`): the sustained throughput is the serving
throughput times ``(TDP - idle - busy) / dynamic``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from roofline.evaluate import evaluate_pass
from roofline.graph import OpTable, build_phase
from roofline.model import ModelSpec
from roofline.power import EnergyRates, pass_energy_j
from roofline.serving.step_cost import HEAD_OPS
from roofline.serving.workload import decode_steps
from roofline.timing import HardwareArrays, op_times
from roofline.workload import Parallelism, Workload

__all__ = ["StepEnergy", "build_step_energy", "energy_grid", "ServingPower", "serving_power_w"]

#: Token counts of the energy tables: geometric, ratio about 1.5 (energy is nearly affine in T).
_GRID_POINTS_PER_DECADE = 6
_BYTE_FIELDS = ("weight_bytes", "kv_read_bytes", "kv_read_per_kv", "kv_write_bytes", "act_bytes",
                "prefetch_weight_bytes")
_WORK_FIELDS = ("flops", "flops_per_kv", *_BYTE_FIELDS)
_PREFILL_REF_TOKENS = 2048


def energy_grid(max_tokens: int) -> np.ndarray:
    """Token counts where the body and head energies are tabulated: 1, then geometric to ``max_tokens``."""
    points = max(2, int(np.ceil(np.log10(max(max_tokens, 2)) * _GRID_POINTS_PER_DECADE)) + 1)
    return np.unique(np.round(np.geomspace(1, max(max_tokens, 2), points))).astype(float)


def _only(table: OpTable, keep: np.ndarray) -> OpTable:
    """``table`` with the work (FLOPs, bytes, collectives) of the operators ``keep`` only."""
    changes = {f: getattr(table, f) * keep for f in _WORK_FIELDS}
    return replace(table, **changes, comm_bytes=table.comm_bytes * keep)


@dataclass(frozen=True)
class StepEnergy:
    """Dynamic energy coefficients of one engine step per device (joules), ``n`` configurations.

    ``tokens`` (g,) is the grid; ``body_j`` and ``head_j`` are (n, g); the attention coefficients (n,).
    """

    tokens: np.ndarray
    body_j: np.ndarray
    head_j: np.ndarray
    kv_token_j: np.ndarray  # per KV token a decode sequence attends (its FLOPs and its KV read)
    seq_j: np.ndarray  # per decode sequence (the part of its KV read that does not grow)
    pair_j: np.ndarray  # per causal query-key pair of a prefill chunk
    context_token_j: np.ndarray  # per cached token a prefill chunk reads
    chunk_token_j: np.ndarray  # per prefill-chunk token (its own K and V)

    def step_j(self, tokens: np.ndarray, sampled: np.ndarray, kv_tokens: np.ndarray, decode_seqs: np.ndarray,
               pairs: np.ndarray, context_tokens: np.ndarray, chunk_tokens: np.ndarray) -> np.ndarray:
        """(n,) dynamic energy of a step of ``tokens`` tokens (see :meth:`ScalarStepCost.step_s`)."""
        body = _interp(self.tokens, self.body_j, np.asarray(tokens, dtype=float))
        head = _interp(self.tokens, self.head_j, np.asarray(sampled, dtype=float))
        return (body + head + self.kv_token_j * kv_tokens + self.seq_j * decode_seqs + self.pair_j * pairs
                + self.context_token_j * context_tokens + self.chunk_token_j * chunk_tokens)


def _interp(grid: np.ndarray, table: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row-wise linear interpolation of ``table`` (n, g) at ``x`` (one table row for every x when
    n = 1); 0 at x <= 0, linear extrapolation beyond the grid."""
    x = np.atleast_1d(x)
    if table.shape[0] > 1:
        x = np.broadcast_to(x, (table.shape[0],))
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    rows = np.arange(len(x)) if table.shape[0] > 1 else np.zeros(len(x), dtype=int)
    lo, hi = table[rows, i], table[rows, i + 1]
    return np.where(x <= 0, 0.0, lo + (x - grid[i]) / (grid[i + 1] - grid[i]) * (hi - lo))


def _decode(model: ModelSpec, workload: Workload, par: Parallelism, tokens: float) -> OpTable:
    return build_phase(model, replace(workload, batch=int(tokens)), par, "decode")


def build_step_energy(model: ModelSpec, workload: Workload, par: Parallelism, hw: HardwareArrays,
                      rates: EnergyRates, max_tokens: int, attention_dp: int = 1) -> StepEnergy:
    """Energy tables of ``model`` on every configuration of ``hw`` (``workload`` gives the data types)."""
    from dataclasses import replace

    grid = energy_grid(max_tokens)
    body = np.empty((hw.n, len(grid)))
    head = np.empty((hw.n, len(grid)))
    for j, t in enumerate(grid):  # one operator table per grid point, not per configuration
        table = _decode(model, workload, par, t)
        is_attn = np.array([k == "attention" for k in table.kinds])
        is_head = np.array([name in HEAD_OPS for name in table.names])
        body_table = _only(table, ~is_attn & ~is_head)
        res = evaluate_pass(body_table, hw)  # prefetching (where enabled) moves bytes from HBM to L2
        body[:, j] = pass_energy_j(body_table, res.times, res.prefetch, rates)
        head_table = _only(table, is_head)
        head[:, j] = pass_energy_j(head_table, op_times(head_table, hw), None, rates)
    one = _decode(model, workload, par, 1)
    attn_one = _only(one, np.array([k == "attention" for k in one.kinds]))
    f0, b0 = _flops_and_bytes_j(attn_one, hw, rates, np.zeros(hw.n))
    f1, b1 = _flops_and_bytes_j(attn_one, hw, rates, np.ones(hw.n))
    pre = build_phase(model, replace(workload, batch=1, input_len=_PREFILL_REF_TOKENS), par, "prefill")
    pre_f, pre_b = _flops_and_bytes_j(_only(pre, np.array([k == "attention" for k in pre.kinds])), hw, rates)
    s, d = float(_PREFILL_REF_TOKENS), float(attention_dp)
    # attention data parallelism (d ranks): as in the step time, each rank reads only the KV of its
    # own sequences (bytes / d) and computes d times more heads for d times fewer sequences (FLOPs x 1)
    return StepEnergy(
        tokens=grid, body_j=body, head_j=head,
        kv_token_j=(f1 - f0) + (b1 - b0) / d, seq_j=f0 + b0 / d,
        pair_j=pre_f / (s * (s + 1) / 2), context_token_j=(b1 - b0) / d, chunk_token_j=pre_b / s / d,
    )


def _flops_and_bytes_j(table: OpTable, hw: HardwareArrays, rates: EnergyRates,
                       kv_len: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n,) energy of the FLOPs of ``table`` and (n,) energy of its memory traffic, apart."""
    total = pass_energy_j(table, op_times(table, hw, kv_len), None, rates)
    no_bytes = replace(table, **{f: getattr(table, f) * 0 for f in _BYTE_FIELDS})
    flops = pass_energy_j(no_bytes, op_times(no_bytes, hw, kv_len), None, rates)
    return flops, total - flops


@dataclass(frozen=True)
class ServingPower:
    """Average power of one device of a replica at a serving operating point, (n,) arrays."""

    power_w: np.ndarray  # idle + busy share x busy + dynamic, at the sustained rate
    dynamic_w: np.ndarray  # what the dynamic part would need at the modelled step times
    step_j: np.ndarray  # dynamic energy of the mean step
    sustained_scale: np.ndarray  # 1, or (TDP - static) / dynamic where the TDP binds


def serving_power_w(energy: StepEnergy, rates: EnergyRates, *, throughput_rps: np.ndarray, mean_step_s: np.ndarray,
                    mean_running: np.ndarray, prompt: np.ndarray, prefill: np.ndarray, output: np.ndarray,
                    max_num_batched_tokens: np.ndarray, verify_tokens: np.ndarray | float = 1.0,
                    tokens_per_step: np.ndarray | float = 1.0) -> ServingPower:
    """Average power per device at an operating point of ``throughput_rps`` requests/s whose steps
    take ``mean_step_s`` on average (all arrays broadcast to (n,)).

    Per request: ``prefill`` prompt tokens computed (``prompt - prefill`` cached), ``d = output - 1`` decode steps
    (``ceil((output - 1) / tokens_per_step)`` with speculative decoding, ``decode_steps``) of ``verify_tokens`` tokens each attending ``prompt + output / 2``
    KV tokens on average, ``d + 1`` sampled tokens, and a prompt chunked into ``ceil(prefill /
    max_num_batched_tokens)`` pieces, each reading the KV of the cached prefix and of the earlier pieces.
    """
    rps = np.asarray(throughput_rps, dtype=float)
    prompt, prefill, output = (np.asarray(x, dtype=float) for x in (prompt, prefill, output))
    d = decode_steps(output, tokens_per_step)
    busy = np.minimum(np.asarray(mean_running, dtype=float), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        steps_per_s = np.where(mean_step_s > 0, busy / mean_step_s, 0.0)
        per_step = np.where(steps_per_s > 0, rps / steps_per_s, 0.0)  # requests' work per step
    cached = prompt - prefill
    chunks = np.maximum(np.ceil(prefill / np.asarray(max_num_batched_tokens, dtype=float) - 1e-9), 1.0)
    step_j = energy.step_j(
        tokens=per_step * (prefill + d * verify_tokens), sampled=per_step * (d + 1),
        kv_tokens=per_step * d * verify_tokens * (prompt + output / 2.0), decode_seqs=per_step * d,
        pairs=per_step * (prefill * cached + prefill * (prefill + 1) / 2),
        context_tokens=per_step * (chunks * cached + (chunks - 1) * prefill / 2), chunk_tokens=per_step * prefill)
    dynamic_w = step_j * steps_per_s
    headroom_w = rates.tdp_w - rates.static_w
    if rates.tdp_w > 0 and headroom_w > 0:
        scale = np.where(dynamic_w > headroom_w, headroom_w / np.maximum(dynamic_w, 1e-300), 1.0)
    else:
        scale = np.ones_like(dynamic_w)
    return ServingPower(rates.idle_w + busy * rates.busy_w + dynamic_w * scale, dynamic_w, step_j, scale)
