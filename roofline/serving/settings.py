"""Engine settings of a serving framework: token budget, sequence cap, memory share, KV block.

Each framework's defaults are the values its server uses when the user passes nothing, with where
they come from; every field can be overridden (``EngineSettings.with_overrides``).

The memory share means what each server means by it (``KV_MEMORY_RULES``, applied by
:mod:`roofline.serving.capacity`): vLLM's ``gpu_memory_utilization`` is a share of the whole HBM;
TensorRT-LLM's ``free_gpu_memory_fraction`` a share of the memory left free after the weights and
a profiling step's activations; SGLang's ``mem_fraction_static`` a share of the whole HBM for the
weights and the KV cache only, chosen at start-up from the GPU memory, the token budget, the CUDA
graphs and TP (:func:`sglang_mem_fraction_static`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from roofline.exceptions import SpecError
from roofline.workload import ENGINE_FRAMEWORKS

__all__ = ["EngineSettings", "FRAMEWORKS", "engine_defaults", "SpeculativeDecoding", "KV_MEMORY_RULES",
           "sglang_mem_fraction_static", "sglang_chunked_prefill_tokens", "memory_fraction", "sglang_cuda_graph_max_bs",
           "batch_wait_holds", "batch_wait_holds_any", "KV_ADMISSION", "SglangRatio", "SGLANG_RATIO",
           "speculative_options", "batch_wait_options", "SGLANG_RESERVED_DECODE_TOKENS"]

FRAMEWORKS = ENGINE_FRAMEWORKS

#: How an engine sizes its KV pool from the device's HBM, with u = ``gpu_memory_utilization``:
#: the formula (per device) and the server's parameter it reads.
KV_MEMORY_RULES = {
    "total": "KV = u x HBM - weights - activations (vLLM gpu_memory_utilization: a share of the whole HBM)",
    "free": "KV = u x (HBM - weights - activations) (TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction: a share "
            "of the memory free after the model is loaded and a profiling step ran)",
    "static": "KV = u x HBM - weights (SGLang mem_fraction_static: weights and KV cache; the rest is its reserve for "
              "activations and CUDA graphs; u from the GPU memory, token budget and TP unless given)",
}

#: When an engine gives a request its KV-cache blocks (``EngineSettings.kv_admission``), read by the
#: event simulator (:mod:`roofline.serving.simulator`) and the analytic model's sequences per KV cache.
KV_ADMISSION = {
    "reserve": "a request is admitted when blocks for its whole prompt + output are free, reserved at admission; "
               "no preemption (TensorRT-LLM's GUARANTEED_NO_EVICT capacity scheduler)",
    "on_demand": "blocks are allocated as tokens are scheduled (prompt chunks, then one block per block_tokens "
                 "decoded); a request is admitted when its prompt fits; when a running sequence cannot get its "
                 "next block the most recently admitted one is preempted: its blocks are freed, it goes to the "
                 "front of the queue and its prompt plus generated tokens are prefilled again (vLLM V1)",
    "sglang_ratio": "SGLang's scheduler: blocks allocated as tokens are scheduled; a request is admitted when its "
                    "prompt + min(max_new_tokens, 4096) fits beside the running requests' min(tokens left, 4096) x "
                    "new_token_ratio (0.7, less 0.001 per decode step down to 0.098, back to 0.7 when idle); a "
                    "failed admission waits for a request to finish; when a decode step's tokens do not fit, the "
                    "requests with the fewest generated tokens are retracted (freed, to the back of the queue, "
                    "prompt + generated tokens prefilled again) and the ratio is raised to (generated + 20 n) / "
                    "max_new_tokens of those left",
}


@dataclass(frozen=True)
class SglangRatio:
    """SGLang's ``new_token_ratio`` admission constants (``kv_admission = "sglang_ratio"``).

    Source: sgl-project/sglang ``python/sglang/srt/environ.py`` (``SGLANG_INIT_NEW_TOKEN_RATIO`` 0.7,
    ``SGLANG_MIN_NEW_TOKEN_RATIO_FACTOR`` 0.14, ``SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS`` 600,
    ``SGLANG_RETRACT_DECODE_STEPS`` 20, ``SGLANG_CLIP_MAX_NEW_TOKENS_ESTIMATION`` 4096, read at
    00550cd1; earlier 0.5.x releases read them from ``global_config.default_*``) and ``Scheduler.init_new_token_ratio``
    (``scheduler.py``: init = min(0.7 x ``schedule_conservativeness``, 1), floor = init x 0.14, decay =
    (init - floor) / 600 per decode step; ``server_args.schedule_conservativeness`` default 1.0).
    """

    init: float = 0.7
    min_factor: float = 0.14
    decay_steps: int = 600
    retract_decode_steps: int = 20
    clip_tokens: float = 4096.0
    conservativeness: float = 1.0

    @property
    def start(self) -> float:
        """The ratio at start and after an idle spell (``init_new_token_ratio``)."""
        return min(self.init * self.conservativeness, 1.0)

    @property
    def floor(self) -> float:
        """``min_new_token_ratio``: 0.098 by default."""
        return min(self.start * self.min_factor, 1.0)

    @property
    def decay(self) -> float:
        """``new_token_ratio_decay``: the ratio falls by this per decode step (0.001003 by default)."""
        return (self.start - self.floor) / self.decay_steps

    def after(self, ratio: float, steps: int | float) -> float:
        """The ratio after ``steps`` decode steps without retraction, from ``ratio`` (closed form of
        ``max(ratio - decay, floor)`` applied ``steps`` times)."""
        return max(ratio - steps * self.decay, self.floor) if steps > 0 else ratio


SGLANG_RATIO = SglangRatio()

#: Tokens SGLang's disaggregated decode server sets aside for each active request's future decode
#: tokens when it pre-allocates a request's KV (``kv_admission = "sglang_ratio"`` in a decode pool).
#: Source: sgl-project/sglang ``python/sglang/srt/server_args.py`` ``num_reserved_decode_tokens: int =
#: 512``, read by ``disaggregation/decode.py`` ``DecodePreallocQueue`` (0035ca42).
SGLANG_RESERVED_DECODE_TOKENS = 512

_MiB = 2**20
#: SGLang's tiers of GPU memory (MiB, nvidia-smi memory.total) for its defaults: upper bound,
#: chunked_prefill_size, cuda_graph_max_bs at tp < 4 and at tp >= 4. Source: sglang 0.5.8.post1
#: python/sglang/srt/server_args.py ServerArgs._handle_gpu_memory_settings (CUDA branches; the same
#: in 0.5.6.post2; introduced by sgl-project/sglang PR 10975, 2025-09-27).
_SGLANG_GPU_TIERS = ((20 * 1024, 2048, 8, 8), (35 * 1024, 2048, 24, 80), (60 * 1024, 4096, 32, 160),
                     (160 * 1024, 8192, 256, 512), (float("inf"), 16384, 512, 512))


def _sglang_tier(hbm_capacity_bytes: np.ndarray | float) -> np.ndarray:
    mib = np.asarray(hbm_capacity_bytes, dtype=float) / _MiB
    return np.searchsorted(np.array([t[0] for t in _SGLANG_GPU_TIERS]), mib, side="right")


def sglang_chunked_prefill_tokens(hbm_capacity_bytes: np.ndarray | float) -> np.ndarray:
    """SGLang's default ``chunked_prefill_size`` for a GPU of ``hbm_capacity_bytes`` (broadcasts):
    2,048 below 35 GiB, 4,096 below 60, 8,192 below 160 (H100, H200), else 16,384 (B200, MI300)."""
    return np.array([t[1] for t in _SGLANG_GPU_TIERS])[_sglang_tier(hbm_capacity_bytes)]


def sglang_cuda_graph_max_bs(hbm_capacity_bytes: np.ndarray | float, tp: int) -> np.ndarray:
    """SGLang's default ``cuda_graph_max_bs`` (broadcasts): e.g. 256 at tp < 4 and 512 at tp >= 4
    on 60-160 GiB GPUs, 512 above."""
    return np.array([t[2] if tp < 4 else t[3] for t in _SGLANG_GPU_TIERS])[_sglang_tier(hbm_capacity_bytes)]


def sglang_mem_fraction_static(hbm_capacity_bytes: np.ndarray | float, *, tp: int, pp: int = 1,
                               chunked_prefill_tokens: int | None = None, attention_dp: int = 1) -> np.ndarray:
    """SGLang's default ``mem_fraction_static`` for a GPU of ``hbm_capacity_bytes`` (broadcasts).

    Source: sglang 0.5.8.post1 ``ServerArgs._handle_gpu_memory_settings`` (also 0.5.6.post2), in
    MiB: ``reserved = 512 + 1.5 max(chunked_prefill_size, 2048) + 2 cuda_graph_max_bs
    + 1024 tp pp / 8``, with DP attention (``attention_dp`` = d > 1) ``+ 3 cuda_graph_max_bs d``
    and ``+ 1.5 cuda_graph_max_bs d`` more when ``cuda_graph_max_bs > 300``; at least 10,240 on
    GPUs above 60 GiB; ``mem_fraction_static = round((gpu_mem - reserved) / gpu_mem, 3)``.
    ``chunked_prefill_tokens`` (the token budget) defaults to SGLang's for the GPU.

    Example: 80 GiB H100 at TP 1: 512 + 12,288 + 512 + 128 = 13,440 MiB reserved, u =
    round(68,480 / 81,920, 3) = 0.836. (SGLang 0.5.1 used ``(9.5 + tp pp / 2) GiB`` on 35-90 GiB
    GPUs and ``(12 + tp pp / 2) GiB`` on 90-160: 0.875 at TP 1 on an H100; not modelled.)
    """
    gpu_mib = np.asarray(hbm_capacity_bytes, dtype=float) / _MiB
    chunk = sglang_chunked_prefill_tokens(hbm_capacity_bytes) if chunked_prefill_tokens is None \
        else np.asarray(chunked_prefill_tokens, dtype=float)
    graphs = sglang_cuda_graph_max_bs(hbm_capacity_bytes, tp).astype(float)
    reserved = 512.0 + 1.5 * np.maximum(chunk, 2048) + 2.0 * graphs + 1024.0 * tp * pp / 8
    if attention_dp > 1:
        reserved = reserved + 3.0 * graphs * attention_dp + np.where(graphs > 300, 1.5 * graphs * attention_dp, 0.0)
    reserved = np.where(gpu_mib > 60 * 1024, np.maximum(reserved, 10 * 1024), reserved)
    return np.round((gpu_mib - reserved) / gpu_mib, 3)


def memory_fraction(gpu_memory_utilization: float | None, hbm_capacity_bytes: np.ndarray | float, *, tp: int,
                    pp: int = 1, chunked_prefill_tokens: int, attention_dp: int = 1) -> np.ndarray:
    """``gpu_memory_utilization`` on each device of ``hbm_capacity_bytes`` (broadcasts), or when it
    is None SGLang's default (:func:`sglang_mem_fraction_static`) for the token budget
    ``chunked_prefill_tokens``."""
    if gpu_memory_utilization is not None:
        return np.full(np.shape(hbm_capacity_bytes), float(gpu_memory_utilization))
    return sglang_mem_fraction_static(hbm_capacity_bytes, tp=tp, pp=pp, chunked_prefill_tokens=chunked_prefill_tokens,
                                      attention_dp=attention_dp)


def batch_wait_holds_any(timeout_iters: int, max_tokens_ratio: float) -> bool:
    """Whether TensorRT-LLM's batch waiting can hold a prompt back at all: its release test
    ``count >= timeout_iters or tokens >= ratio x max_num_tokens`` is true at once when either is 0."""
    return timeout_iters > 0 and max_tokens_ratio > 0.0


def batch_wait_holds(held_iters: int, scheduled_tokens: float, *, timeout_iters: int, max_tokens_ratio: float,
                     max_num_tokens: int) -> bool:
    """TensorRT-LLM's batch waiting: hold this step's context (prompt) requests back?

    Source: NVIDIA/TensorRT-LLM 9521caf4 ``tensorrt_llm/_torch/pyexecutor/py_executor.py``
    ``PyExecutor._schedule`` and ``_waiting_requests``: only when the step has both context and
    generation requests (no attention DP), the scheduled tokens (every scheduled context request's
    whole prompt, ``len(get_tokens(0))``, plus ``1 + draft tokens`` per generation request) are
    compared with ``batch_wait_max_tokens_ratio x max_num_tokens``; the context requests go when
    they reach it or when ``batch_wait_iters_count >= batch_wait_timeout_iters``, which then resets
    to 0, else the count rises by one and the step runs the generation requests alone. The count
    changes only in such steps. ``held_iters``: that count; ``scheduled_tokens``: those tokens.
    (``batch_wait_timeout_ms``, also default 0, is a different wait: the request queue's for new
    requests to arrive; not modelled.)
    """
    if not batch_wait_holds_any(timeout_iters, max_tokens_ratio):
        return False
    return not (held_iters >= timeout_iters or scheduled_tokens >= max_tokens_ratio * max_num_tokens)


@dataclass(frozen=True)
class SpeculativeDecoding:
    """Draft ``draft_tokens`` per step, each accepted with probability ``acceptance`` (i.i.d.).

    Expected tokens a sequence emits per step (Leviathan et al. 2023, eq. 1):
    ``(1 - a**(k + 1)) / (1 - a)``; the verification pass processes ``k + 1`` tokens per sequence.
    The draft model's own cost is not modelled (MTP / EAGLE heads are a small share of a step).
    """

    draft_tokens: int = 0
    acceptance: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.draft_tokens, bool) or not isinstance(self.draft_tokens, int) or self.draft_tokens < 0:
            raise SpecError(f"speculative: draft_tokens: must be an integer >= 0, got {self.draft_tokens!r}")
        if not 0.0 <= float(self.acceptance) < 1.0:
            raise SpecError(f"speculative: acceptance: must be in [0, 1), got {self.acceptance!r}")

    @property
    def tokens_per_step(self) -> float:
        a, k = float(self.acceptance), self.draft_tokens
        return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)

    @property
    def verify_tokens(self) -> int:
        return self.draft_tokens + 1


def speculative_options(draft_tokens: int, acceptance: float | None) -> SpeculativeDecoding | None:
    """``draft_tokens`` and ``acceptance`` as a user gives them (``roofline serve --draft-tokens
    --acceptance``, :func:`roofline.serving.serve`): None without draft tokens. Each needs the other:
    draft tokens with no acceptance rate ran with every draft rejected (slower than none, silently),
    and an acceptance rate without draft tokens is ignored."""
    if draft_tokens and acceptance is None:
        raise SpecError(f"--draft-tokens {draft_tokens}: needs --acceptance A, the share of draft tokens accepted, "
                        "in [0, 1)")
    if acceptance and not draft_tokens:
        raise SpecError(f"--acceptance {acceptance:g}: needs --draft-tokens N (speculative decoding's draft tokens "
                        "per step)")
    return SpeculativeDecoding(draft_tokens, acceptance or 0.0) if draft_tokens else None


def batch_wait_options(timeout_iters: int | None, max_tokens_ratio: float | None,
                       names: tuple[str, str] = ("--batch-wait-iters", "--batch-wait-tokens-ratio")) -> None:
    """Refuse one of TensorRT-LLM's two batch-wait settings without the other (``names``: the options
    or keys they came from): a wait needs both positive (:func:`batch_wait_holds_any`), so one
    alone changed nothing, silently."""
    named = dict(zip(names, (timeout_iters, max_tokens_ratio)))
    given = [k for k, v in named.items() if v]
    if len(given) == 1:
        other = next(k for k in named if k != given[0])
        what = f"{other} above 0 (got 0)" if named[other] is not None else f"{other} too"
        raise SpecError(f"{given[0]} {named[given[0]]:g}: needs {what} (TensorRT-LLM holds prompts back only "
                        "when both are positive)")


@dataclass(frozen=True)
class EngineSettings:
    """What the scheduler of one engine replica may do per step.

    - ``max_num_batched_tokens``: token budget of one step (decode tokens + prefill chunk tokens);
    - ``max_num_seqs``: running sequences at most;
    - ``gpu_memory_utilization``: the engine's memory share, read by ``kv_memory_rule`` (one of
      ``KV_MEMORY_RULES``: ``total`` vLLM, ``free`` TensorRT-LLM, ``static`` SGLang); None (only
      with ``static``): SGLang's default from the GPU memory (:func:`sglang_mem_fraction_static`);
    - ``block_tokens``: tokens per KV-cache block (paged attention);
    - ``attention_dp``: attention data-parallel ranks inside the TP group (MoE serving: each rank
      keeps the KV cache of its own sequences; the experts use the whole group);
    - ``prefill_first``: while prompts wait or are being prefilled, a step runs prefill chunks only
      and the decoding sequences wait (SGLang's default scheduler); otherwise every step carries
      all decode tokens and prefill chunks fill the rest of the budget (vLLM, TensorRT-LLM);
    - ``batch_wait_timeout_iters`` and ``batch_wait_max_tokens_ratio``: TensorRT-LLM's batch
      waiting (:func:`batch_wait_holds`): while sequences decode, the prompts scheduled in a step
      are held back until their prompt tokens plus the decode tokens reach ``ratio x
      max_num_batched_tokens`` or ``iters`` steps have been held; 0 (the default, as TensorRT-LLM's)
      turns it off, and as in its source a wait needs both to be positive;
    - ``kv_admission``: when a request gets its KV-cache blocks, one of ``KV_ADMISSION``:
      ``reserve`` (its prompt + output at admission, no preemption: TensorRT-LLM), ``on_demand``
      (as tokens are scheduled, preempting and recomputing the newest request when blocks run out:
      vLLM) or ``sglang_ratio`` (on demand, admitted against the ``new_token_ratio`` reservation and
      retracting the least advanced requests: SGLang, :class:`SglangRatio`).
    """

    framework: str = "vllm"
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 1024
    gpu_memory_utilization: float | None = 0.9
    block_tokens: int = 16
    attention_dp: int = 1
    prefill_first: bool = False
    speculative: SpeculativeDecoding = SpeculativeDecoding()
    kv_memory_rule: str = "total"
    batch_wait_timeout_iters: int = 0
    batch_wait_max_tokens_ratio: float = 0.0
    kv_admission: str = "reserve"
    sources: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise SpecError(f"engine: framework: {self.framework!r} is not allowed; choose one of "
                            f"{', '.join(FRAMEWORKS)}")
        for name in ("max_num_batched_tokens", "max_num_seqs", "block_tokens", "attention_dp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"engine: {name}: must be a positive integer, got {value!r}")
        it = self.batch_wait_timeout_iters
        if isinstance(it, bool) or not isinstance(it, int) or it < 0:
            raise SpecError(f"engine: batch_wait_timeout_iters: must be an integer >= 0, got {it!r}")
        ratio = self.batch_wait_max_tokens_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio <= 1.0:
            raise SpecError(f"engine: batch_wait_max_tokens_ratio: must be in [0, 1], got {ratio!r}")
        if not isinstance(self.prefill_first, bool):
            raise SpecError(f"engine: prefill_first: must be true or false, got {self.prefill_first!r}")
        # a name, not a list or a mapping (unhashable: the dict lookup would raise TypeError)
        if not isinstance(self.kv_admission, str) or self.kv_admission not in KV_ADMISSION:
            raise SpecError(f"engine: kv_admission: {self.kv_admission!r} is not allowed; choose one of "
                            f"{', '.join(KV_ADMISSION)}")
        if not isinstance(self.kv_memory_rule, str) or self.kv_memory_rule not in KV_MEMORY_RULES:
            raise SpecError(f"engine: kv_memory_rule: {self.kv_memory_rule!r} is not allowed; choose one of "
                            f"{', '.join(KV_MEMORY_RULES)}")
        u = self.gpu_memory_utilization
        if u is None and self.kv_memory_rule == "static":
            return  # SGLang's default, from the GPU memory (memory_fraction)
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not 0.0 < u <= 1.0:
            raise SpecError(f"engine: gpu_memory_utilization: must be in (0, 1], got {u!r}")

    def memory_fraction(self, hbm_capacity_bytes: np.ndarray | float, tp: int, pp: int = 1) -> np.ndarray:
        """The memory share ``kv_memory_rule`` reads on devices of ``hbm_capacity_bytes``
        (broadcasts): ``gpu_memory_utilization``, or SGLang's default when it is None."""
        return memory_fraction(self.gpu_memory_utilization, hbm_capacity_bytes, tp=tp, pp=pp,
                               chunked_prefill_tokens=self.max_num_batched_tokens, attention_dp=self.attention_dp)

    @property
    def batch_waiting(self) -> bool:
        """Prompts can be held back (TensorRT-LLM's batch waiting): both of its settings positive."""
        return batch_wait_holds_any(self.batch_wait_timeout_iters, self.batch_wait_max_tokens_ratio)

    @property
    def batch_wait_iters_applied(self) -> int:
        """The batch wait's timeout as the scheduler applies it: TensorRT-LLM holds prompts back only
        without attention DP (``PyExecutor._schedule``), so 0 (off) with it."""
        return self.batch_wait_timeout_iters if self.attention_dp == 1 else 0

    @property
    def budget_from_device(self) -> bool:
        """The token budget is the framework's default for the device (SGLang, not set by the user)."""
        return self.framework == "sglang" and dict(self.sources).get("max_num_batched_tokens") != "user"

    def for_device(self, hbm_capacity_bytes: float) -> EngineSettings:
        """These settings on a GPU of ``hbm_capacity_bytes``: SGLang's token budget
        (``chunked_prefill_size``) follows the GPU memory (:func:`sglang_chunked_prefill_tokens`:
        16,384 from 160 GiB, B200 and MI300) unless the user set it; other frameworks unchanged."""
        if not self.budget_from_device:
            return self
        return replace(self, max_num_batched_tokens=int(sglang_chunked_prefill_tokens(hbm_capacity_bytes)))

    def with_overrides(self, **values: object) -> EngineSettings:
        """These settings with the non-None ``values`` replaced (sources say 'user')."""
        given = {k: v for k, v in values.items() if v is not None}
        sources = tuple((k, s) for k, s in self.sources if k not in given) + tuple((k, "user") for k in given)
        return replace(self, **given, sources=sources)  # type: ignore[arg-type]


# vLLM's memory rule ("total", the default): vllm/v1/worker/gpu_worker.py determine_available_memory
# (requested memory = gpu_memory_utilization x total memory, less the weights and the profiled peak
# activations); not listed in its sources, so that serve's JSON for vLLM stays as it was.
_VLLM = EngineSettings(
    framework="vllm", max_num_batched_tokens=8192, max_num_seqs=1024, gpu_memory_utilization=0.9, block_tokens=16,
    kv_admission="on_demand",
    sources=(
        ("max_num_batched_tokens", "source: vllm/engine/arg_utils.py EngineArgs._set_default_args (V1, "
                                   "OpenAI server, GPU >= 70 GiB: 8192); the vLLM rows of "
                                   "../shared/validation/inferencex log 8192"),
        ("max_num_seqs", "source: vllm/engine/arg_utils.py EngineArgs._set_default_args (V1, OpenAI server, "
                         "GPU >= 70 GiB: 1024)"),
        ("gpu_memory_utilization", "source: vllm/engine/arg_utils.py (default 0.9)"),
        ("block_tokens", "source: vllm CacheConfig.block_size (default 16 on CUDA)"),
        ("kv_admission", "source: vllm/v1/core/sched/scheduler.py Scheduler.schedule (vllm-project/vllm 00024d31): "
                         "kv_cache_manager.allocate_slots for the tokens scheduled this step (a prompt chunk, a "
                         "decode token); when a running request gets none, self.running.pop() (the newest) is "
                         "preempted (_preempt_request: blocks freed, num_computed_tokens = 0, to the front of "
                         "waiting) and no waiting request is admitted that step; a resumed request prefills "
                         "num_tokens = prompt + output so far"),
    ))
_SGLANG = EngineSettings(
    framework="sglang", max_num_batched_tokens=8192, max_num_seqs=4096, gpu_memory_utilization=None, block_tokens=1,
    prefill_first=True, kv_memory_rule="static", kv_admission="sglang_ratio",
    sources=(
        ("max_num_batched_tokens", "source: sglang 0.5.8.post1 python/sglang/srt/server_args.py "
                                   "_handle_gpu_memory_settings chunked_prefill_size by GPU memory (2048 below 35 "
                                   "GiB, 4096 below 60, 8192 below 160, 16384 from 160: EngineSettings.for_device)"),
        ("max_num_seqs", "estimate: sglang derives max_running_requests from the KV pool; 4096 stands for "
                         "'no separate cap'"),
        ("gpu_memory_utilization", "source: sglang 0.5.8.post1 python/sglang/srt/server_args.py "
                                   "_handle_gpu_memory_settings: mem_fraction_static = (GPU memory - reserve) / GPU "
                                   "memory, the reserve from chunked_prefill_size, cuda_graph_max_bs and TP "
                                   "(0.836 on an 80 GiB H100 at TP 1)"),
        ("kv_memory_rule", "source: sglang 0.5.8.post1 python/sglang/srt/model_executor/model_runner_kv_cache_mixin.py "
                           "profile_max_num_token (KV = free memory after loading - total x (1 - "
                           "mem_fraction_static))"),
        ("block_tokens", "source: sglang/srt/server_args.py page_size (default 1: token-granular radix cache)"),
        ("prefill_first", "source: sglang/srt/managers/scheduler.py get_next_batch_to_run (a new prefill batch "
                          "runs before the running decode batch whenever prompts wait) with enable_mixed_chunk "
                          "off by default (sglang/srt/server_args.py)"),
        ("kv_admission", "source: sgl-project/sglang (read at 00550cd1; the 0.5.x scheduler the same in these "
                         "rules) python/sglang/srt/managers/schedule_policy.py PrefillAdder.add_one_req: a request "
                         "is admitted when extend_input_len + min(max_new_tokens - generated, "
                         "CLIP_MAX_NEW_TOKENS=4096) < rem_total_tokens, the free KV less every running request's "
                         "min(max_new_tokens - generated, 4096) x new_token_ratio "
                         "(_get_running_request_total_token_offset) and the requests admitted before it in the "
                         "pass; NO_TOKEN sets batch_is_full, cleared when the running batch shrinks "
                         "(scheduler.py update_running_batch); update_running_batch lowers new_token_ratio by "
                         "new_token_ratio_decay each decode step (0.7 -> 0.098 in 600 steps), "
                         "self_check_during_idle resets it; when check_decode_mem fails, "
                         "schedule_batch.py ScheduleBatch.retract_decode retracts at least one request, the fewest "
                         "output_ids first (ties: longest prompt), until the rest fit the next decode step, frees "
                         "their KV (cache_finished_req is_insert=False), appends them to the waiting queue "
                         "(_add_request_to_queue) to prefill prompt + output_ids again, and sets the ratio to "
                         "min(1, (decoded + 20 x reqs) / (max_new_tokens + 1)) of those left"),
    ))
_TRTLLM = EngineSettings(
    framework="trtllm", max_num_batched_tokens=8192, max_num_seqs=2048, gpu_memory_utilization=0.9,
    block_tokens=32, kv_memory_rule="free",
    sources=(
        ("max_num_batched_tokens", "source: tensorrt_llm BuildConfig.max_num_tokens (default 8192), as "
                                   "trtllm-serve uses"),
        ("max_num_seqs", "source: trtllm-serve --max_batch_size (default 2048)"),
        ("gpu_memory_utilization", "source: tensorrt_llm KvCacheConfig.free_gpu_memory_fraction (default 0.9)"),
        ("block_tokens", "source: tensorrt_llm KvCacheConfig tokens_per_block (default 32)"),
        ("kv_memory_rule", "source: tensorrt_llm/_torch/pyexecutor/_util.py KvCacheCreator cal_max_tokens "
                           "(available KV memory = (total GPU memory - peak memory of the profiling step) x "
                           "free_gpu_memory_fraction)"),
        ("batch_wait_timeout_iters", "source: tensorrt_llm/llmapi/llm_args.py TorchLlmArgs.batch_wait_timeout_iters "
                                     "(default 0: off; NVIDIA/TensorRT-LLM 9521caf4)"),
        ("batch_wait_max_tokens_ratio", "source: tensorrt_llm/llmapi/llm_args.py "
                                        "TorchLlmArgs.batch_wait_max_tokens_ratio (default 0.0: off; "
                                        "NVIDIA/TensorRT-LLM 9521caf4)"),
        ("kv_admission", "source: tensorrt_llm/llmapi/llm_args.py SchedulerConfig.capacity_scheduler_policy (default "
                         "CapacitySchedulerPolicy.GUARANTEED_NO_EVICT: a request is scheduled only when the KV cache "
                         "can hold it to its max tokens; no eviction)"),
    ))

_DEFAULTS = {"vllm": _VLLM, "sglang": _SGLANG, "trtllm": _TRTLLM}


def engine_defaults(framework: str = "vllm") -> EngineSettings:
    """The default settings of ``framework`` (``vllm``, ``sglang``, ``trtllm``) with their sources."""
    if framework not in _DEFAULTS:
        raise SpecError(f"--framework: {framework!r} is not allowed; choose one of {', '.join(FRAMEWORKS)}")
    return _DEFAULTS[framework]
