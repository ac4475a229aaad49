"""What is served (batch, prompt and output lengths, data types) and how it is split (TP, PP, EP, DP)."""

from __future__ import annotations

from dataclasses import dataclass

from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.model import ModelSpec

__all__ = ["DTYPE_BYTES", "WEIGHT_DTYPES", "ACTIVATION_DTYPES", "MOE_PREFETCH", "Workload", "Parallelism"]

#: Bytes per element of each data type.
DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}
WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4")
ACTIVATION_DTYPES = ("bf16", "fp16", "fp8", "int8")
KV_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4")
#: What prefetching may bring into L2 for MoE layers (see docs/moe.md).
MOE_PREFETCH = ("none", "shared", "predicted")


def _check_choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"workload: {field}: {value!r} is not allowed; choose one of {', '.join(allowed)}")


@dataclass(frozen=True)
class Workload:
    """One batch of requests: ``batch`` sequences of ``input_len`` prompt tokens, ``output_len`` generated.

    ``weight_dtype`` and ``activation_dtype`` set the GEMM precision: W8A8 int8 or fp8 runs on the
    int8/fp8 units; int4 (weight-only) GEMMs run at the activation dtype's rate.

    Mixture-of-experts traffic (ignored by dense models, see docs/moe.md):

    - ``moe_skew``: Zipf exponent of expert popularity (0 = uniform routing). It sets how many
      distinct experts a batch activates, hence the expert weight bytes read in decode.
    - ``moe_prefetch``: what PRESERVE may prefetch for MoE layers. ``"none"``: no expert
      weights; ``"shared"`` (default): shared experts, plus routed experts where the routing is
      already known when the collective starts (the EP dispatch all-to-all); ``"predicted"``:
      routed experts everywhere (their expected distinct bytes, as if the routing were known
      before the router runs: an upper bound for expert-prediction schemes).
    """

    batch: int = 1
    input_len: int = 2048
    output_len: int = 128
    weight_dtype: str = "bf16"
    activation_dtype: str = "bf16"
    kv_dtype: str | None = None  # defaults to the activation dtype
    comm_dtype: str = "bf16"  # all-reduces sum in 16 bit even for 8-bit activations
    moe_skew: float = 0.0
    moe_prefetch: str = "shared"

    def __post_init__(self) -> None:
        for name in ("batch", "input_len", "output_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"workload: {name}: must be a positive integer, got {value!r}")
        _check_choice("weight_dtype", self.weight_dtype, WEIGHT_DTYPES)
        _check_choice("activation_dtype", self.activation_dtype, ACTIVATION_DTYPES)
        _check_choice("kv_dtype", self.kv, KV_DTYPES)
        _check_choice("comm_dtype", self.comm_dtype, ACTIVATION_DTYPES + ("fp32",))
        _check_choice("moe_prefetch", self.moe_prefetch, MOE_PREFETCH)
        skew = self.moe_skew
        if isinstance(skew, bool) or not isinstance(skew, (int, float)) or not 0 <= skew < float("inf"):
            raise SpecError(f"workload: moe_skew: must be a finite number >= 0, got {skew!r}")

    @classmethod
    def with_dtype(cls, dtype: str, **kwargs: object) -> Workload:
        """Weights, activations and KV cache all in ``dtype`` (int4: weight-only, bf16 activations)."""
        act = "bf16" if dtype == "int4" else dtype
        return cls(weight_dtype=dtype, activation_dtype=act, kv_dtype=kwargs.pop("kv_dtype", None) or act,
                   **kwargs)  # type: ignore[arg-type]

    @property
    def kv(self) -> str:
        return self.kv_dtype or self.activation_dtype

    @property
    def compute_dtype(self) -> str:
        """Data type of the GEMM units used: the activation dtype (weights are converted to it)."""
        return self.activation_dtype

    @property
    def weight_bytes(self) -> float:
        return DTYPE_BYTES[self.weight_dtype]

    @property
    def act_bytes(self) -> float:
        return DTYPE_BYTES[self.activation_dtype]

    @property
    def kv_bytes(self) -> float:
        return DTYPE_BYTES[self.kv]

    @property
    def comm_bytes(self) -> float:
        return DTYPE_BYTES[self.comm_dtype]


@dataclass(frozen=True)
class Parallelism:
    """How the model is split over devices.

    ``tp`` shards heads and MLP columns (all-reduce after O-proj and down-proj), ``pp`` splits the
    layers into stages (send/recv between them; ``microbatches`` fills the pipeline), ``ep`` spreads
    MoE experts, ``dp`` replicates the whole arrangement.

    Expert parallelism reuses the devices of attention: a MoE layer runs on ``max(ep, tp)``
    devices, each holding ``num_experts / ep`` experts split ``max(tp / ep, 1)`` ways. With
    ``ep > tp`` the experts span ``ep / tp`` of the ``dp`` attention replicas (DP attention),
    whose tokens meet in all-to-all dispatch and combine (see docs/moe.md).
    """

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    microbatches: int | None = None  # pipeline micro-batches; default min(batch, pp)
    tp_comm: str = "allreduce"  # allreduce | rs_ag (reduce-scatter + all-gather, sequence parallel)

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "ep"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SpecError(f"parallelism: {name}: must be a positive integer, got {value!r}")
        if self.tp_comm not in ("allreduce", "rs_ag"):
            raise SpecError(f"parallelism: tp_comm: {self.tp_comm!r} is not allowed; choose allreduce or rs_ag")

    @property
    def devices(self) -> int:
        """Devices of one replica times replicas (EP reuses the TP x DP devices of attention)."""
        return self.tp * self.pp * self.dp

    def pipeline_microbatches(self, batch: int) -> int:
        m = self.microbatches if self.microbatches is not None else min(batch, self.pp)
        return max(1, min(m, batch))

    def check(self, model: ModelSpec) -> None:
        """Raise InfeasibleConfigError when the model cannot be split this way."""
        m = model
        if m.num_attention_heads % self.tp:
            raise InfeasibleConfigError(
                f"tp={self.tp} does not divide the {m.num_attention_heads} attention heads of {m.name}; "
                f"use a tp that divides {m.num_attention_heads}")
        if m.mla is None and m.num_kv_heads % self.tp and self.tp % m.num_kv_heads:
            raise InfeasibleConfigError(
                f"tp={self.tp} and the {m.num_kv_heads} KV heads of {m.name}: one must divide the other")
        if self.pp > m.num_layers:
            raise InfeasibleConfigError(f"pp={self.pp} exceeds the {m.num_layers} layers of {m.name}")
        if self.ep > 1:
            if m.moe is None:
                raise InfeasibleConfigError(f"ep={self.ep} needs a mixture-of-experts model; {m.name} is dense")
            if m.moe.num_experts % self.ep:
                raise InfeasibleConfigError(
                    f"ep={self.ep} does not divide the {m.moe.num_experts} experts of {m.name}")
            if self.ep > self.tp * self.dp:
                raise InfeasibleConfigError(
                    f"ep={self.ep} exceeds the tp*dp={self.tp * self.dp} devices that hold the experts")
            if self.ep < self.tp and self.tp % self.ep:
                raise InfeasibleConfigError(
                    f"ep={self.ep} must divide tp={self.tp} (each expert is then split tp/ep ways)")
            if self.ep > self.tp and (self.ep % self.tp or self.dp % (self.ep // self.tp)):
                raise InfeasibleConfigError(
                    f"ep={self.ep} larger than tp={self.tp} must be tp times a divisor of dp={self.dp} "
                    f"(the experts then span ep/tp attention replicas)")
