"""The time of one engine step for a mixed batch, precomputed once per scenario.

A continuous-batching step runs every scheduled token through the model at once: ``B`` decode
sequences (``v`` tokens each: 1, or ``k + 1`` when verifying ``k`` speculative drafts) and prefill
chunks of the admitted prompts, ``T`` tokens in all. From the same operator graph and timing as
``roofline.predict`` (one decode-phase table per token count, evaluated by
``roofline.evaluate.evaluate_pass``) the step time splits into three parts:

- the **body**: every operator except attention and the head, for ``T`` tokens (GEMMs with
  ``m = T``, the expected distinct experts of ``T`` tokens, TP collectives of ``T`` rows,
  prefetching where the device enables it). It is tabulated on a grid of token counts and
  interpolated linearly between grid points (the body is a sum of maxima of affine terms in
  ``T`` whose kinks the grid resolves; between them only the small-GEMM efficiency curve bends);
- the **head**: final norm, LM head, logits all-gather and sampling for the ``S`` sequences that
  emit a token, on the same grid;
- **attention**, one kernel over the whole batch (varlen flash attention):
  ``max(compute, memory)`` with compute = ``c_kv * K + c_seq * B + c_pair * pairs`` and memory =
  ``m_kv * (K + ctx) + m_seq * B + m_tok * P``, where ``K`` is the sum over decode sequences
  of the tokens each attends (its KV length + 1), ``pairs`` the causal query-key pairs of the
  prefill chunks, ``ctx`` the cached tokens the chunks attend to and ``P`` the chunk tokens.
  The coefficients are read from the graph's attention operators (decode: the per-KV-token
  FLOPs and bytes; prefill: FLOPs per pair at a 2048-token prompt). The decode slope is read
  between contexts of 2,048 and 4,096 tokens, where serving runs, and the rest goes to the
  per-sequence terms, so that layers whose cost stops growing at a short window (gpt-oss's
  128-token sliding window, Gated DeltaNet's constant state, DeepSeek sparse attention's top-2048)
  are affine beyond it instead of growing from a KV length of 0; windows longer than 4,096 tokens
  (Mistral's 4,096, Llama-4's chunks of 8,192) count as full attention.

With attention data parallelism (``attention_dp`` = d, MoE serving) each of the d ranks keeps
and reads the KV cache of its own sequences, so the attention memory terms are divided by d;
the FLOPs per rank are unchanged (d times fewer sequences, d times more heads).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from roofline.evaluate import evaluate_pass
from roofline.fitted import calibrated_allreduce
from roofline.graph import OpTable, build_phase
from roofline.hardware import HardwareSpec
from roofline.model import ModelSpec
from roofline.timing import HardwareArrays, op_times
from roofline.workload import Parallelism, Workload

if TYPE_CHECKING:
    from roofline.serving.settings import EngineSettings

__all__ = ["StepCost", "build_step_cost", "token_grid", "engine_token_grid", "HEAD_OPS", "tp_allreduce"]

#: Seconds of one all-reduce of a message (bytes) over a group (devices); None: not measured there.
AllReduceTime = Callable[[float, int], "float | None"]
#: The link (and launch) parameters a calibrated collective fit belongs to (a configuration that
#: changes one is timed by the generic collective model).
_LINK_FIELDS = ("link_Bps", "links", "link_latency_s", "link_efficiency", "launch_s", "custom_latency_s")

#: Operators of the head: they run once per sequence that emits a token, not per token.
HEAD_OPS = ("final_norm", "lm_head", "logits_allgather", "sampling")
#: Prompt length at which the prefill attention FLOPs per pair are read (sets the m-curve point).
_PREFILL_REF_TOKENS = 2048
#: Context lengths between which the decode attention slope per KV token is read (typical serving
#: contexts: beyond short sliding windows and DeepSeek sparse attention's 2048 selected tokens).
_DECODE_REF_KV = (2048.0, 4096.0)
_WORK_FIELDS = ("flops", "flops_per_kv", "weight_bytes", "kv_read_bytes", "kv_read_per_kv", "kv_write_bytes",
                "act_bytes", "prefetch_weight_bytes")


def token_grid(max_tokens: int, ratio: float = 1.08) -> np.ndarray:
    """Token counts where the body is evaluated: every integer up to 32, then geometric."""
    small = np.arange(1, min(32, max_tokens) + 1)
    if max_tokens <= 32:
        return small.astype(float)
    n = int(np.ceil(np.log(max_tokens / 32) / np.log(ratio)))
    big = np.unique(np.round(32 * ratio ** np.arange(1, n + 1)).astype(int))
    return np.unique(np.concatenate([small, big[big < max_tokens], [max_tokens]])).astype(float)


def engine_token_grid(settings: EngineSettings) -> np.ndarray:
    """The grid of an engine's steps: up to the token budget plus one verify block per running
    sequence. ``roofline serve`` and a sweep's serving columns both read their step costs on it, so
    the two agree to rounding (a coarser grid for the sweep moved its TPOT by up to 0.3%)."""
    return token_grid(settings.max_num_batched_tokens + settings.max_num_seqs * settings.speculative.verify_tokens)


def _without(table: OpTable, ops: np.ndarray, drop_count: np.ndarray | None = None) -> OpTable:
    """``table`` with no work in the operators ``ops`` (their launches stay), and with the
    operators ``drop_count`` removed altogether (count 0)."""
    keep = ~ops
    changes = {f: getattr(table, f) * keep for f in _WORK_FIELDS}
    if drop_count is not None:
        changes["count"] = table.count * ~drop_count
        changes["stage_count"] = table.stage_count * ~drop_count
    return replace(table, **changes)


def _interp_rows(grid: np.ndarray, table: np.ndarray, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row ``rows[i]`` of ``table`` (n, g) interpolated linearly on ``grid`` at ``x[i]``; 0 where
    x <= 0 (two elements read per point: the (len(x), g) rows are never copied)."""
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    lo, hi = table[rows, i], table[rows, i + 1]
    return np.where(x <= 0, 0.0, lo + (x - grid[i]) / (grid[i + 1] - grid[i]) * (hi - lo))


@dataclass(frozen=True)
class StepCost:
    """Step-time coefficients of one scenario on ``n`` hardware configurations (times in seconds).

    ``tokens`` (g,) is the grid; ``body_s`` and ``head_s`` are (n, g); the attention coefficients
    are (n,). :meth:`scalar` gives one configuration's plain-float coefficients (the event
    simulator); :mod:`roofline.serving.analytic` evaluates them over configurations.
    """

    tokens: np.ndarray
    body_s: np.ndarray
    head_s: np.ndarray
    dec_compute_per_kv_s: np.ndarray
    dec_memory_per_kv_s: np.ndarray
    dec_memory_per_seq_s: np.ndarray
    dec_compute_per_seq_s: np.ndarray
    pre_compute_per_pair_s: np.ndarray
    pre_memory_per_token_s: np.ndarray

    @property
    def n(self) -> int:
        return self.body_s.shape[0]

    def step_s(self, hw: np.ndarray, tokens: np.ndarray, sampled: np.ndarray, kv_tokens: np.ndarray,
               decode_seqs: np.ndarray, pairs: np.ndarray | float = 0.0, context_tokens: np.ndarray | float = 0.0,
               chunk_tokens: np.ndarray | float = 0.0) -> np.ndarray:
        """Step times (s) of configurations ``hw`` (row indices), every argument broadcast to their
        shape: :meth:`ScalarStepCost.step_s` over arrays (body and head interpolated per row)."""
        compute = (self.dec_compute_per_kv_s[hw] * kv_tokens + self.dec_compute_per_seq_s[hw] * decode_seqs
                   + self.pre_compute_per_pair_s[hw] * pairs)
        memory = (self.dec_memory_per_kv_s[hw] * (kv_tokens + context_tokens)
                  + self.dec_memory_per_seq_s[hw] * decode_seqs + self.pre_memory_per_token_s[hw] * chunk_tokens)
        return (_interp_rows(self.tokens, self.body_s, hw, tokens) + _interp_rows(self.tokens, self.head_s, hw, sampled)
                + np.maximum(compute, memory))

    def scalar(self, row: int = 0) -> ScalarStepCost:
        """Plain-float coefficients of configuration ``row``, for the simulator's inner loop."""
        return ScalarStepCost(
            list(map(float, self.tokens)), list(map(float, self.body_s[row])), list(map(float, self.head_s[row])),
            float(self.dec_compute_per_kv_s[row]), float(self.dec_memory_per_kv_s[row]),
            float(self.dec_memory_per_seq_s[row]), float(self.dec_compute_per_seq_s[row]),
            float(self.pre_compute_per_pair_s[row]),
            float(self.pre_memory_per_token_s[row]))


@dataclass(frozen=True)
class ScalarStepCost:
    """One configuration's step cost as Python floats (no numpy call per step)."""

    tokens: list[float]
    body: list[float]
    head: list[float]
    c_kv: float
    m_kv: float
    m_seq: float
    c_seq: float
    c_pair: float
    m_tok: float

    def _interp(self, values: list[float], x: float) -> float:
        if x <= 0:
            return 0.0
        g = self.tokens
        i = min(max(bisect_right(g, x) - 1, 0), len(g) - 2)
        return values[i] + (x - g[i]) / (g[i + 1] - g[i]) * (values[i + 1] - values[i])

    def step_s(self, tokens: float, sampled: float, kv_tokens: float, decode_seqs: float, pairs: float = 0.0,
               context_tokens: float = 0.0, chunk_tokens: float = 0.0) -> float:
        """Time of one step: body(tokens) + head(sampled) + attention."""
        compute = self.c_kv * kv_tokens + self.c_seq * decode_seqs + self.c_pair * pairs
        memory = self.m_kv * (kv_tokens + context_tokens) + self.m_seq * decode_seqs + self.m_tok * chunk_tokens
        return self._interp(self.body, tokens) + self._interp(self.head, sampled) + max(compute, memory)

    def fixed_s(self, tokens: float, sampled: float) -> float:
        """body + head: the part of a decode-only step that does not grow with the KV cache."""
        return self._interp(self.body, tokens) + self._interp(self.head, sampled)


def _allreduce_delta_s(table: OpTable, total_s: np.ndarray, body: np.ndarray, allreduce_s: AllReduceTime,
                       where: np.ndarray | None) -> np.ndarray:
    """(n,) seconds the all-reduces of ``body`` ops take with ``allreduce_s`` beyond their
    modelled time ``total_s`` (collective + launch), 0 outside ``where``."""
    delta = np.zeros(total_s.shape[1])
    for i in np.flatnonzero(body & table.is_comm & (table.group > 1)):
        if table.collectives[i] != "allreduce":
            continue
        t = allreduce_s(float(table.comm_bytes[i]), int(table.group[i]))
        if t is not None:
            delta += table.count[i] * (t - total_s[i])
    return delta if where is None else np.where(where, delta, 0.0)


def tp_allreduce(framework: str, spec: HardwareSpec, hw: HardwareArrays) -> tuple[AllReduceTime | None, np.ndarray]:
    """The all-reduce ``framework`` runs, as measured on ``spec``'s device, and the configurations
    of ``hw`` it applies to: TensorRT-LLM's ``AllReduce`` op where the device's calibrated profile
    fitted it (:func:`roofline.fitted.calibrated_allreduce`), on the configurations whose links
    are the device's own (a swept or overridden link is timed by the generic model); None for
    the other frameworks (their kernels were not measured)."""
    fit = calibrated_allreduce(spec) if framework == "trtllm" else None
    if fit is None:
        return None, np.zeros(hw.n, dtype=bool)
    own = HardwareArrays.from_spec(spec, 1)
    same = np.ones(hw.n, dtype=bool)
    for name in _LINK_FIELDS:
        same &= np.isclose(_link_values(hw, name), _link_values(own, name)[0], rtol=1e-12, atol=0.0, equal_nan=True)
    return fit.time_s, same


def _link_values(hw: HardwareArrays, name: str) -> np.ndarray:
    value = getattr(hw, name)
    return np.full(hw.n, np.nan) if value is None else np.broadcast_to(np.asarray(value, dtype=float), (hw.n,))


def _phase(model: ModelSpec, workload: Workload, par: Parallelism, phase: str, tokens: int) -> OpTable:
    if phase == "decode":
        return build_phase(model, replace(workload, batch=int(tokens)), par, "decode")
    return build_phase(model, replace(workload, batch=1, input_len=int(tokens)), par, "prefill")


def build_step_cost(model: ModelSpec, workload: Workload, par: Parallelism, hw: HardwareArrays,
                    tokens: np.ndarray, attention_dp: int = 1, *, framework: str | None = None,
                    hardware: HardwareSpec | None = None) -> StepCost:
    """Evaluate the step-cost tables of ``model`` on every configuration of ``hw``.

    ``workload`` gives the data types (its batch and lengths are ignored); ``tokens`` is the grid
    of token counts (see :func:`token_grid`). With ``framework`` and ``hardware`` (the spec ``hw``
    was made of), the body's all-reduces take the framework's own measured all-reduce on that
    device where one was fitted (:func:`tp_allreduce`) instead of the generic collective model.
    """
    allreduce_s, allreduce_where = (None, None) if framework is None or hardware is None \
        else tp_allreduce(framework, hardware, hw)
    grid = np.asarray(tokens, dtype=float)
    body = np.empty((hw.n, len(grid)))
    head = np.empty((hw.n, len(grid)))
    for j, t in enumerate(grid):  # one operator table per grid point, not per configuration
        table = _phase(model, workload, par, "decode", int(t))
        is_attn = np.array([k == "attention" for k in table.kinds])
        is_head = np.array([n in HEAD_OPS for n in table.names])
        head_comm = is_head & table.is_comm
        body[:, j] = evaluate_pass(_without(table, is_attn | is_head, head_comm), hw).time_s
        ot = op_times(table, hw)
        if allreduce_s is not None:
            body[:, j] += _allreduce_delta_s(table, ot.total_s, ~is_head, allreduce_s, allreduce_where)
        work = np.where(table.is_comm[:, None], ot.total_s, ot.total_s - hw.launch_s)
        head[:, j] = (table.count * is_head) @ work
    one = _phase(model, workload, par, "decode", 1)
    att = np.array([k == "attention" for k in one.kinds]) * one.count
    lo, hi = _DECODE_REF_KV
    at_lo = op_times(one, hw, np.full(hw.n, lo))
    at_hi = op_times(one, hw, np.full(hw.n, hi))
    compute_per_kv = att @ (at_hi.compute_s - at_lo.compute_s) / (hi - lo)
    memory_per_kv = att @ (at_hi.memory_s - at_lo.memory_s) / (hi - lo)
    pre = _phase(model, workload, par, "prefill", _PREFILL_REF_TOKENS)
    pre_att = np.array([k == "attention" for k in pre.kinds]) * pre.count
    ot = op_times(pre, hw)
    s = float(_PREFILL_REF_TOKENS)
    d = float(attention_dp)
    return StepCost(
        tokens=grid, body_s=body, head_s=head,
        dec_compute_per_kv_s=compute_per_kv,
        dec_memory_per_kv_s=memory_per_kv / d,
        dec_memory_per_seq_s=np.maximum(att @ at_lo.memory_s - memory_per_kv * lo, 0.0) / d,
        dec_compute_per_seq_s=np.maximum(att @ at_lo.compute_s - compute_per_kv * lo, 0.0),
        pre_compute_per_pair_s=pre_att @ ot.compute_s / (s * (s + 1) / 2),
        pre_memory_per_token_s=pre_att @ ot.memory_s / s / d,
    )
