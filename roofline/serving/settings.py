"""Engine settings of a serving framework: token budget, sequence cap, memory share, KV block.

Each framework's defaults are the values its server uses when the user passes nothing, with where
they come from; every field can be overridden (``EngineSettings.with_overrides``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from roofline.exceptions import SpecError
from roofline.workload import ENGINE_FRAMEWORKS

__all__ = ["EngineSettings", "FRAMEWORKS", "engine_defaults", "SpeculativeDecoding"]

FRAMEWORKS = ENGINE_FRAMEWORKS


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


@dataclass(frozen=True)
class EngineSettings:
    """What the scheduler of one engine replica may do per step.

    - ``max_num_batched_tokens``: token budget of one step (decode tokens + prefill chunk tokens);
    - ``max_num_seqs``: running sequences at most;
    - ``gpu_memory_utilization``: share of HBM for weights, activations and KV cache;
    - ``block_tokens``: tokens per KV-cache block (paged attention);
    - ``attention_dp``: attention data-parallel ranks inside the TP group (MoE serving: each rank
      keeps the KV cache of its own sequences; the experts use the whole group);
    - ``prefill_first``: while prompts wait or are being prefilled, a step runs prefill chunks only
      and the decoding sequences wait (SGLang's default scheduler); otherwise every step carries
      all decode tokens and prefill chunks fill the rest of the budget (vLLM, TensorRT-LLM).
    """

    framework: str = "vllm"
    max_num_batched_tokens: int = 8192
    max_num_seqs: int = 1024
    gpu_memory_utilization: float = 0.9
    block_tokens: int = 16
    attention_dp: int = 1
    prefill_first: bool = False
    speculative: SpeculativeDecoding = SpeculativeDecoding()
    sources: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise SpecError(f"engine: framework: {self.framework!r} is not allowed; choose one of "
                            f"{', '.join(FRAMEWORKS)}")
        for name in ("max_num_batched_tokens", "max_num_seqs", "block_tokens", "attention_dp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"engine: {name}: must be a positive integer, got {value!r}")
        if not isinstance(self.prefill_first, bool):
            raise SpecError(f"engine: prefill_first: must be true or false, got {self.prefill_first!r}")
        u = self.gpu_memory_utilization
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not 0.0 < u <= 1.0:
            raise SpecError(f"engine: gpu_memory_utilization: must be in (0, 1], got {u!r}")

    def with_overrides(self, **values: object) -> EngineSettings:
        """These settings with the non-None ``values`` replaced (sources say 'user')."""
        given = {k: v for k, v in values.items() if v is not None}
        sources = tuple((k, s) for k, s in self.sources if k not in given) + tuple((k, "user") for k in given)
        return replace(self, **given, sources=sources)  # type: ignore[arg-type]


_VLLM = EngineSettings(
    framework="vllm", max_num_batched_tokens=8192, max_num_seqs=1024, gpu_memory_utilization=0.9, block_tokens=16,
    sources=(
        ("max_num_batched_tokens", "source: vllm/engine/arg_utils.py EngineArgs._set_default_args (V1, "
                                   "OpenAI server, GPU >= 70 GiB: 8192); the vLLM rows of "
                                   "../shared/validation/inferencex log 8192"),
        ("max_num_seqs", "source: vllm/engine/arg_utils.py EngineArgs._set_default_args (V1, OpenAI server, "
                         "GPU >= 70 GiB: 1024)"),
        ("gpu_memory_utilization", "source: vllm/engine/arg_utils.py (default 0.9)"),
        ("block_tokens", "source: vllm CacheConfig.block_size (default 16 on CUDA)"),
    ))
_SGLANG = EngineSettings(
    framework="sglang", max_num_batched_tokens=8192, max_num_seqs=4096, gpu_memory_utilization=0.88, block_tokens=1,
    prefill_first=True,
    sources=(
        ("max_num_batched_tokens", "source: sglang/srt/server_args.py chunked_prefill_size (8192 on 80-160 GB "
                                   "GPUs)"),
        ("max_num_seqs", "estimate: sglang derives max_running_requests from the KV pool; 4096 stands for "
                         "'no separate cap'"),
        ("gpu_memory_utilization", "estimate: sglang mem_fraction_static is chosen from GPU memory and TP "
                                   "(0.79-0.88 for 80-141 GB at TP 1-8); 0.88"),
        ("block_tokens", "source: sglang/srt/server_args.py page_size (default 1: token-granular radix cache)"),
        ("prefill_first", "source: sglang/srt/managers/scheduler.py get_next_batch_to_run (a new prefill batch "
                          "runs before the running decode batch whenever prompts wait) with enable_mixed_chunk "
                          "off by default (sglang/srt/server_args.py)"),
    ))
_TRTLLM = EngineSettings(
    framework="trtllm", max_num_batched_tokens=8192, max_num_seqs=2048, gpu_memory_utilization=0.9,
    block_tokens=32,
    sources=(
        ("max_num_batched_tokens", "source: tensorrt_llm BuildConfig.max_num_tokens (default 8192), as "
                                   "trtllm-serve uses"),
        ("max_num_seqs", "source: trtllm-serve --max_batch_size (default 2048)"),
        ("gpu_memory_utilization", "source: tensorrt_llm KvCacheConfig.free_gpu_memory_fraction (default 0.9)"),
        ("block_tokens", "source: tensorrt_llm KvCacheConfig tokens_per_block (default 32)"),
    ))

_DEFAULTS = {"vllm": _VLLM, "sglang": _SGLANG, "trtllm": _TRTLLM}


def engine_defaults(framework: str = "vllm") -> EngineSettings:
    """The default settings of ``framework`` (``vllm``, ``sglang``, ``trtllm``) with their sources."""
    if framework not in _DEFAULTS:
        raise SpecError(f"--framework: {framework!r} is not allowed; choose one of {', '.join(FRAMEWORKS)}")
    return _DEFAULTS[framework]
