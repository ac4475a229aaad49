"""What is served (batch, prompt and output lengths, data types) and how it is split (TP, PP, EP, DP)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from roofline.dtypes import attention_unit, bytes_per_element, gemm_unit
from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.model import ModelSpec
from roofline.registry import COLLECTIVE_LIBRARIES, MOE_SKEW

if TYPE_CHECKING:  # numpy loads only when the rule runs on arrays: `roofline --help` stays light
    import numpy as np
    import numpy.typing as npt

__all__ = ["DTYPE_BYTES", "WEIGHT_DTYPES", "ACTIVATION_DTYPES", "KV_DTYPES", "OP_CLASSES", "MOE_PREFETCH",
           "COLLECTIVE_LIBRARIES", "FRAMEWORKS", "ENGINE_FRAMEWORKS", "DEFAULT_FRAMEWORK",
           "Workload", "Parallelism", "PrefetchSettings", "op_class", "parse_op_dtypes", "op_dtypes_text",
           "QUANTIZED_WEIGHT_DTYPES", "CHECKPOINT_KEPT_BF16", "LM_HEAD_SAME", "checkpoint_op_dtypes"]

WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "mxfp8", "int8", "int4", "mxfp6", "nvfp4", "mxfp4")
ACTIVATION_DTYPES = ("bf16", "fp16", "fp8", "mxfp8", "int8", "mxfp6", "nvfp4", "mxfp4")
KV_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4")
#: Bytes per element of each data type, block scales included (see :mod:`roofline.dtypes`).
DTYPE_BYTES = {d: bytes_per_element(d) for d in ("fp32",) + WEIGHT_DTYPES}
#: Serving engines with their own defaults (roofline.serving.settings) and fitted overheads.
ENGINE_FRAMEWORKS = ("vllm", "sglang", "trtllm")
#: Serving frameworks whose fitted software overheads a prediction adds (roofline.fitted); ``any``
#: is fitted on the rows of all of them, the default.
FRAMEWORKS = ("any", *ENGINE_FRAMEWORKS)
DEFAULT_FRAMEWORK = "any"
#: Weight-only formats: ``Workload.with_dtype`` keeps bf16 activations for them.
WEIGHT_ONLY = ("int4",)
#: Block-scaled activation formats have no KV-cache default of their own: FP8 KV (as the FP4
#: recipes of TensorRT-LLM and vLLM use).
_KV_DEFAULT = {"mxfp8": "fp8", "mxfp6": "fp8", "nvfp4": "fp8", "mxfp4": "fp8"}
#: Operator classes whose precision a workload may set on their own (mixed precision).
#: ``attention`` is every projection of the token mixer (QKV, O, MLA's projections), ``mlp`` the
#: dense feed-forward layers, ``experts`` the routed MoE experts, ``shared_experts`` the MoE
#: shared experts.
OP_CLASSES = ("attention", "mlp", "experts", "shared_experts", "router", "embedding", "lm_head")
#: Weight formats narrower than 16 bit: a checkpoint quantized to one of them keeps its input
#: embedding and LM head in bf16 (:func:`checkpoint_op_dtypes`).
QUANTIZED_WEIGHT_DTYPES = tuple(d for d in WEIGHT_DTYPES if DTYPE_BYTES[d] < 2)
#: The operator classes quantized checkpoints leave in bf16 (``op_dtypes`` text).
CHECKPOINT_KEPT_BF16 = "embedding=bf16,lm_head=bf16"
#: ``lm_head_dtype`` that puts the LM head in the weights' precision (the head quantized too).
LM_HEAD_SAME = "same"
#: What prefetching may bring into L2 for MoE layers (see docs/moe.md).
MOE_PREFETCH = ("none", "shared", "predicted")
#: COLLECTIVE_LIBRARIES (roofline.collectives, declared in roofline.registry): NCCL alone, or the custom
#: one-shot/two-shot all-reduce kernels that vLLM, SGLang and TensorRT-LLM use for small messages (their default).

_MLP_OPS = ("gate_up_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class PrefetchSettings:
    """PRESERVE prefetching, a runtime technique of the scenario (not a property of the device).

    Off by default: a plain prediction is the device as deployed today. ``threshold_fraction``
    caps the bytes prefetched per collective (a fraction of L2: PRESERVE keeps room for
    activations and collective buffers; the paper does not publish its threshold, 3/4 is our
    estimate); ``launch_gap_fraction`` is the share of kernel-launch gaps in which the prefetch
    stream may use HBM (never measured, so 0; docs/preserve_reproduction.md shows both answers).
    """

    enabled: bool = False
    threshold_fraction: float = 0.75
    weights: bool = True
    kv_cache: bool = True
    launch_gap_fraction: float = 0.0

    def __post_init__(self) -> None:
        for name in ("threshold_fraction", "launch_gap_fraction"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise SpecError(f"prefetch: {name}: must be a number from 0 to 1, got {value!r}")
        for name in ("enabled", "weights", "kv_cache"):
            if not isinstance(getattr(self, name), bool):
                raise SpecError(f"prefetch: {name}: must be true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, object], where: str) -> PrefetchSettings:
        """From a YAML mapping (a sweep file's ``scenario: {prefetch: ...}``); ``where`` names it."""
        allowed = ("enabled", "threshold_fraction", "weights", "kv_cache", "launch_gap_fraction")
        unknown = sorted(str(k) for k in data if k not in allowed)
        if unknown:
            raise SpecError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")
        try:
            return cls(**{str(k): v for k, v in data.items()})  # type: ignore[arg-type]
        except SpecError as e:
            raise SpecError(f"{where}: {str(e).removeprefix('prefetch: ')}") from None


def op_class(op_name: str) -> str:
    """The precision class of the operator graph's op ``op_name`` (see :data:`OP_CLASSES`)."""
    base = op_name.rsplit(".", 1)[-1]  # "dense." prefix of a MoE model's dense layers
    if base.startswith("expert_"):
        return "experts"
    if base.startswith("shared_"):
        return "shared_experts"
    if base in _MLP_OPS:
        return "mlp"
    if base in ("router", "embedding", "lm_head"):
        return base
    return "attention"


def checkpoint_op_dtypes(weight_dtype: npt.ArrayLike) -> str | np.ndarray:
    """The operator classes a checkpoint quantized to ``weight_dtype`` leaves in bf16, as
    ``op_dtypes`` text: :data:`CHECKPOINT_KEPT_BF16` (the input embedding and the LM head) for a
    weight format narrower than 16 bit (:data:`QUANTIZED_WEIGHT_DTYPES`), '' otherwise. A string
    in, a string out; an array (or Series) of dtypes in, an array of the same shape out.

    The checkpoints people serve keep the head in bf16:

    - NVIDIA's FP8 and FP4 checkpoints (nvidia/Llama-3.3-70B-Instruct-FP8 / -FP4, the InferenceX
      Llama runs) are ModelOpt exports, and every ModelOpt quantization recipe disables the LM
      head's quantizers (``_default_disabled_quantizer_cfg``: ``"*lm_head*": {"enable": False}``,
      NVIDIA/TensorRT-Model-Optimizer modelopt/torch/quantization/config.py at 09914046; their model
      cards: "Only the weights and activations of the linear operators within transformers blocks
      are quantized").
    - TensorRT-LLM quantizes through ModelOpt and keeps that exclusion unless asked:
      ``quantize_and_export(..., quantize_lm_head=False)`` deletes ``"*lm_head*"`` from the recipe
      only when ``quantize_lm_head`` is set (NVIDIA/TensorRT-LLM
      tensorrt_llm/quantization/quantize_by_modelopt.py at 042c510d).
    - llm-compressor (the RedHat/neuralmagic FP8 checkpoints vLLM serves) recipes pass
      ``ignore=["lm_head"]`` (vllm-project/llm-compressor
      examples/big_models_with_accelerate/cpu_offloading_fp8.py: ``QuantizationModifier(
      targets="Linear", scheme="FP8_DYNAMIC", ignore=["lm_head"])``).
    - DeepSeek-V3 keeps "the output head" in its original precision (technical report, section
      3.3.1).

    And the input embedding (an ``nn.Embedding``, not a linear layer) in bf16 too:

    - ModelOpt quantizes the module types it registers, ``nn.Linear`` in the version that exported
      the nvidia/*-FP8 and *-FP4 checkpoints (``QuantModuleRegistry.register({nn.Linear:
      "nn.Linear"})``, modelopt/torch/quantization/nn/modules/quant_linear.py at 09914046); their
      cards: "Only the weights and activations of the linear operators within transformers blocks
      are quantized". Newer ModelOpt registers ``nn.Embedding`` as well, and its recipes that name
      the embedding disable it (``"*embed_tokens*": {"enable": False}``); ModelOpt exports of other
      models list it in ``hf_quant_config.json``'s ``exclude_modules`` (tencent/Hunyuan-1.8B-Instruct-FP8:
      ``["lm_head", "model.embed_tokens"]``).
    - llm-compressor quantizes what its ``targets`` match, ``targets: [Linear]`` in the FP8 recipes
      (``recipe.yaml`` of neuralmagic/Llama-3.2-1B-FP8, RedHatAI/Llama-3.2-90B-Vision-Instruct-FP8-dynamic).
    - gpt-oss's MXFP4 checkpoint quantizes only the MoE experts: its ``modules_to_not_convert``
      lists ``model.embed_tokens`` and ``lm_head`` with the attention and the router (Hugging Face
      transformers docs, "MXFP4").
    - DeepSeek-V3 keeps "the embedding module" in its original precision too (section 3.3.1).

    In bf16 the head of Llama-3.1-70B (128,256 x 8,192) streams 2.1 GB per decode step instead of
    0.59 GB (NVFP4) or 1.05 GB (fp8), and its embedding table holds 2.1 GB instead of 1.05 GB
    (fp8) or 0.59 GB (NVFP4) per replica, room the KV cache does not have. A step's lookup reads
    ``t`` rows of ``hidden`` elements, 2 bytes each. A model whose embedding is tied to its head
    has one table in one precision (:meth:`Workload.for_model`). :meth:`Workload.for_model`
    applies this rule by default and the serving validation labels its rows with it
    (roofline.validation).

    >>> checkpoint_op_dtypes("fp8")
    'embedding=bf16,lm_head=bf16'
    >>> checkpoint_op_dtypes(["bf16", "nvfp4"]).tolist()
    ['', 'embedding=bf16,lm_head=bf16']
    """
    if isinstance(weight_dtype, str):
        return CHECKPOINT_KEPT_BF16 if weight_dtype in QUANTIZED_WEIGHT_DTYPES else ""
    import numpy as np

    kept = np.where(np.isin(np.asarray(weight_dtype), QUANTIZED_WEIGHT_DTYPES), CHECKPOINT_KEPT_BF16, "")
    return str(kept) if kept.ndim == 0 else kept


def _lm_head_classes(classes: Mapping[str, str], weight: str, act: str, lm_head_dtype: str | None) -> dict[str, str]:
    """``classes`` (class -> ``W:A`` text) with the embedding's and the LM head's precision settled.

    The embedding (and the head when ``lm_head_dtype`` is None) as the checkpoint ships
    (:func:`checkpoint_op_dtypes` of ``weight``), unless ``classes`` names it. ``lm_head_dtype``
    governs the head only: ``"same"``, as the weights ``weight:act`` (written out for quantized
    weights, so that the ``op_dtypes`` text alone rebuilds it); else ``W`` or ``W:A``.
    """
    out = dict(classes)
    for cls, w, a in parse_op_dtypes(checkpoint_op_dtypes(weight)):
        if cls != "lm_head" or lm_head_dtype is None:
            out.setdefault(cls, f"{w}:{a}")
    if lm_head_dtype is None:
        return out
    head = _lm_head_precision(lm_head_dtype, weight, act)
    given = out.get("lm_head")
    if given is not None and _split_precision(given, "op_dtypes.lm_head") != head:
        raise SpecError(f"workload: lm_head_dtype: {lm_head_dtype!r} contradicts op_dtypes lm_head={given}; "
                        f"give the LM head's precision once")
    out.pop("lm_head", None)
    if head != (weight, act) or weight in QUANTIZED_WEIGHT_DTYPES:
        out["lm_head"] = ":".join(head)
    return out


def _lm_head_precision(lm_head_dtype: str, weight: str, act: str) -> tuple[str, str]:
    """(weight, activation) of the head ``lm_head_dtype`` asks for: ``same`` or ``W[:A]``."""
    if lm_head_dtype == LM_HEAD_SAME:
        return weight, act
    if lm_head_dtype.partition(":")[0] not in WEIGHT_DTYPES:
        raise SpecError(f"workload: lm_head_dtype: {lm_head_dtype!r} is not allowed; choose {LM_HEAD_SAME} "
                        f"(as the weights) or W[:A] with W one of {', '.join(WEIGHT_DTYPES)}")
    return _split_precision(lm_head_dtype, "lm_head_dtype")


def _tied_table(model: ModelSpec, classes: dict[str, str], weight: str, act: str,
                lm_head_dtype: str | None) -> dict[str, str]:
    """``classes`` of a model whose LM head is its embedding table (``tie_word_embeddings``): one
    table, one precision. The one of the two classes named (``op_dtypes`` or ``lm_head_dtype``) sets
    both; both named differently is an error; neither named leaves both to the checkpoint rule."""
    out, table_classes = dict(classes), ("embedding", "lm_head")
    named = {c: _split_precision(v, f"op_dtypes.{c}") for c, v in out.items() if c in table_classes}
    if lm_head_dtype is not None:
        named.setdefault("lm_head", _lm_head_precision(lm_head_dtype, weight, act))
    if len(set(named.values())) > 1:
        given = ", ".join(f"{c}={':'.join(v)}" for c, v in sorted(named.items()))
        raise SpecError(f"workload: op_dtypes: {model.name} ties its embedding to its LM head (one table), "
                        f"but {given} differ; give the table one precision")
    if named:
        table = next(iter(named.values()))
        for c in table_classes:
            out.pop(c, None)
        if table != (weight, act) or weight in QUANTIZED_WEIGHT_DTYPES:  # as _lm_head_classes writes the head
            out["embedding"] = ":".join(table)
            if lm_head_dtype is None:
                out["lm_head"] = ":".join(table)
    return out


def _why_missing(model: ModelSpec, cls: str) -> str:
    """Why ``model`` has no operator class ``cls`` (a few words for :meth:`Workload.check`)."""
    if model.moe is None:
        return "a dense model"
    if cls == "mlp":
        return "every layer is a MoE layer"
    return "its MoE layers have routed experts only"


def _check_choice(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SpecError(f"workload: {field}: {value!r} is not allowed; choose one of {', '.join(allowed)}")


def _split_precision(text: str, where: str) -> tuple[str, str]:
    """``W`` or ``W:A`` -> (weight, activation); ``W`` alone follows ``Workload.with_dtype``."""
    weight, _, act = text.partition(":")
    act = act or ("bf16" if weight in WEIGHT_ONLY else weight)
    _check_choice(f"{where} weights", weight, WEIGHT_DTYPES)
    _check_choice(f"{where} activations", act, ACTIVATION_DTYPES)
    return weight, act


def parse_op_dtypes(spec: str | Mapping[str, str] | tuple | None) -> tuple[tuple[str, str, str], ...]:
    """Per-class precision as sorted (class, weight, activation) triples.

    Accepts ``"experts=nvfp4,attention=fp8"``, a mapping ``{experts: nvfp4}``, or triples.
    A value is ``W`` (weights and activations, int4 weight-only) or ``W:A`` (``mxfp4:bf16``:
    MXFP4 weights dequantised for a bf16 GEMM).
    """
    if not spec:
        return ()
    if isinstance(spec, tuple) and all(isinstance(t, tuple) and len(t) == 3 for t in spec):
        items = {c: f"{w}:{a}" for c, w, a in spec}
    elif isinstance(spec, Mapping):
        items = {str(k): str(v) for k, v in spec.items()}
    elif isinstance(spec, str):
        items = {}
        for part in spec.replace(";", ",").split(","):
            if not part.strip():
                continue
            cls, eq, value = part.strip().partition("=")
            if not eq or not value:
                raise SpecError(f"workload: op_dtypes: {part.strip()!r} is not CLASS=DTYPE "
                                f"(e.g. experts=nvfp4 or experts=mxfp4:bf16)")
            items[cls.strip()] = value.strip()
    else:
        raise SpecError(f"workload: op_dtypes: expected CLASS=DTYPE pairs, got {spec!r}")
    out = []
    for cls, value in items.items():
        _check_choice("op_dtypes class", cls, OP_CLASSES)
        out.append((cls, *_split_precision(value, f"op_dtypes.{cls}")))
    return tuple(sorted(out))


def op_dtypes_text(op_dtypes: tuple[tuple[str, str, str], ...]) -> str:
    """Per-class precisions as ``CLASS=W:A`` text ('' when there are none), as results tables hold them."""
    return ",".join(f"{c}={w}:{a}" for c, w, a in op_dtypes)


@dataclass(frozen=True)
class Workload:
    """One batch of requests: ``batch`` sequences of ``input_len`` prompt tokens, ``output_len`` generated.

    ``weight_dtype`` and ``activation_dtype`` set the GEMM precision (:func:`roofline.dtypes.gemm_unit`):
    W8A8 int8 or fp8 runs on the int8/fp8 units, W4A4 NVFP4/MXFP4 on the FP4 unit; weight-only
    formats (int4, or ``nvfp4``/``mxfp4`` weights with bf16 activations) run at the activation
    dtype's rate. Weight and KV bytes include block scales (NVFP4 4.5 bits, MXFP4 4.25).
    ``op_dtypes`` overrides the precision of operator classes (:data:`OP_CLASSES`), e.g. experts
    in NVFP4 and attention in FP8 (see :func:`parse_op_dtypes`).

    Mixture-of-experts traffic (ignored by dense models, see docs/moe.md):

    - ``moe_skew``: Zipf exponent of expert popularity (0 = uniform routing). It sets how many
      distinct experts a batch activates, hence the expert weight bytes read in decode.
    - ``moe_prefetch``: what PRESERVE may prefetch for MoE layers. ``"none"``: no expert
      weights; ``"shared"`` (default): shared experts, plus routed experts where the routing is
      already known when the collective starts (the EP dispatch all-to-all); ``"predicted"``:
      routed experts everywhere (their expected distinct bytes, as if the routing were known
      before the router runs: an upper bound for expert-prediction schemes).

    ``collective_library``: ``"custom"`` (default: vLLM, SGLang and TensorRT-LLM run their own
    one-shot/two-shot all-reduce for small messages and NCCL above) or ``"nccl"`` (NCCL only);
    see roofline.collectives.

    ``async_tp``: prefill TP all-reduces overlap the GEMM after them in chunks (asynchronous tensor
    parallelism; off by default: vLLM and SGLang do not do it by default); see
    roofline.timing.async_tp_saving_s.
    """

    batch: int = 1
    input_len: int = 2048
    output_len: int = 128
    weight_dtype: str = "bf16"
    activation_dtype: str = "bf16"
    kv_dtype: str | None = None  # default: the activation dtype (FP8 for block-scaled ones)
    comm_dtype: str = "bf16"  # all-reduces sum in 16 bit even for 8-bit activations
    moe_skew: float = 0.0
    moe_prefetch: str = "shared"
    op_dtypes: tuple[tuple[str, str, str], ...] = ()  # (class, weight, activation), sorted
    collective_library: str = "custom"
    async_tp: bool = False

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
        object.__setattr__(self, "op_dtypes", parse_op_dtypes(self.op_dtypes))
        _check_choice("collective_library", self.collective_library, COLLECTIVE_LIBRARIES)
        if not isinstance(self.async_tp, bool):
            raise SpecError(f"workload: async_tp: must be true or false, got {self.async_tp!r}")
        problem = MOE_SKEW.problem(self.moe_skew)  # the bound the CLI applies (roofline.registry)
        if problem:
            raise SpecError(f"workload: moe_skew: {problem}")

    @classmethod
    def with_dtype(cls, dtype: str, *, lm_head_dtype: str | None = None, **kwargs: object) -> Workload:
        """Weights and activations in ``dtype`` (int4: weight-only, bf16 activations); the KV cache
        in the activation dtype (FP8 for block-scaled formats) unless ``kv_dtype`` is given.

        The input embedding and the LM head stay in bf16 under quantized weights, as the shipped
        checkpoints keep them (:func:`checkpoint_op_dtypes`), unless ``op_dtypes`` names them;
        ``lm_head_dtype`` sets the head alone: ``"same"`` (as the weights) or ``W[:A]``. A
        :class:`Workload` built field by field is taken as written (no such rule); so is a tied
        table (:meth:`for_model` knows the model)."""
        weight, act = _split_precision(dtype, "dtype")
        kv = kwargs.pop("kv_dtype", None) or _KV_DEFAULT.get(act, act)
        classes = {c: f"{w}:{a}" for c, w, a in parse_op_dtypes(kwargs.pop("op_dtypes", None))}  # type: ignore[arg-type]
        classes = _lm_head_classes(classes, weight, act, lm_head_dtype)
        return cls(weight_dtype=weight, activation_dtype=act, kv_dtype=kv, op_dtypes=parse_op_dtypes(classes),
                   **kwargs)  # type: ignore[arg-type]

    @classmethod
    def for_model(cls, model: ModelSpec, dtype: str | None = None, *, kv_dtype: str | None = None,
                  op_dtypes: str | Mapping[str, str] | tuple | None = None, lm_head_dtype: str | None = None,
                  **kwargs: object) -> Workload:
        """The workload of ``model`` in ``dtype``; without one, in the precision its checkpoint
        ships in (HF ``quantization_config``, see :mod:`roofline.quantization`), else bf16.
        ``kv_dtype`` and ``op_dtypes`` given here override the checkpoint's. The embedding and the
        LM head follow :meth:`with_dtype`'s rule (bf16 under quantized weights unless
        ``op_dtypes`` names them; ``lm_head_dtype`` sets the head). A model with tied embeddings
        has one table: the precision named for either class is the other's too."""
        q = model.quantization
        asked = {c: f"{w}:{a}" for c, w, a in parse_op_dtypes(op_dtypes)}
        table = ("embedding", "lm_head")
        if dtype is None and q is not None:
            weight, act = q.weight_dtype, q.activation_dtype
            kv = kv_dtype or q.kv_dtype or _KV_DEFAULT.get(act, act)
            # a checkpoint's exclusions map to classes generically (``mlp`` -> mlp and shared_experts,
            # roofline.quantization): those the model lacks are ignored; only the ones asked are refused
            classes = {c: f"{w}:{a}" for c, w, a in q.op_dtypes if c in model.op_classes()}
            if lm_head_dtype is not None:
                classes.pop("lm_head", None)  # the checkpoint's own head gives way to the one asked for
            if model.tie_word_embeddings and (lm_head_dtype is not None or set(asked) & set(table)):
                classes = {c: v for c, v in classes.items() if c not in table}  # so does its tied table
            classes.update(asked)
        else:
            weight, act = _split_precision(dtype or "bf16", "dtype")
            kv, classes = kv_dtype, asked
        if model.tie_word_embeddings:
            classes = _tied_table(model, classes, weight, act, lm_head_dtype)
        workload = cls.with_dtype(f"{weight}:{act}", kv_dtype=kv, op_dtypes=parse_op_dtypes(classes),
                                  lm_head_dtype=lm_head_dtype, **kwargs)
        workload.check(model)  # here too, so the error comes before any memory or capacity check
        return workload

    def check(self, model: ModelSpec) -> None:
        """Raise InfeasibleConfigError when ``op_dtypes`` names a class ``model`` does not have
        (:meth:`ModelSpec.op_classes`): ``experts=fp8`` on a dense model changed nothing but the
        title. Defaults that do not apply never get here (:meth:`for_model` drops them)."""
        have = model.op_classes()
        for cls, weight, act in self.op_dtypes:
            if cls not in have:
                given = weight if act == _split_precision(weight, "op_dtypes")[1] else f"{weight}:{act}"
                raise InfeasibleConfigError(
                    f"workload: op_dtypes: {cls}={given}: {model.name} has no {cls} "
                    f"({_why_missing(model, cls)}); its operator classes: {', '.join(have)}")

    @property
    def kv(self) -> str:
        return self.kv_dtype or _KV_DEFAULT.get(self.activation_dtype, self.activation_dtype)

    def precision(self, op_cls: str) -> tuple[str, str]:
        """(weight dtype, activation dtype) of operator class ``op_cls``."""
        for c, weight, act in self.op_dtypes:
            if c == op_cls:
                return weight, act
        return self.weight_dtype, self.activation_dtype

    def weight_bytes_for(self, op_cls: str) -> float:
        """Bytes per weight of class ``op_cls``, block scales included."""
        return bytes_per_element(self.precision(op_cls)[0])

    def act_bytes_for(self, op_cls: str) -> float:
        return bytes_per_element(self.precision(op_cls)[1])

    def gemm_unit_for(self, op_cls: str) -> str:
        """Matrix unit (``compute.peak_tflops`` key) the GEMMs of ``op_cls`` run on."""
        return gemm_unit(*self.precision(op_cls))

    @property
    def attention_unit(self) -> str:
        """Matrix unit of attention's QK^T and PV (FP8 under 8-bit or narrower float activations)."""
        return attention_unit(self.precision("attention")[1])

    @property
    def compute_dtype(self) -> str:
        """Matrix unit of the GEMMs without a class override."""
        return gemm_unit(self.weight_dtype, self.activation_dtype)

    @property
    def weight_bytes(self) -> float:
        return bytes_per_element(self.weight_dtype)

    @property
    def act_bytes(self) -> float:
        return bytes_per_element(self.activation_dtype)

    @property
    def kv_bytes(self) -> float:
        return bytes_per_element(self.kv)

    @property
    def comm_bytes(self) -> float:
        return bytes_per_element(self.comm_dtype)

    @property
    def dtype_spec(self) -> str:
        """The ``--dtype`` text that rebuilds this precision with :meth:`with_dtype` (``nvfp4``,
        ``int4``, ``mxfp4:bf16``)."""
        return (self.weight_dtype if _split_precision(self.weight_dtype, "dtype")[1] == self.activation_dtype
                else f"{self.weight_dtype}:{self.activation_dtype}")

    @property
    def op_dtypes_spec(self) -> str:
        """``op_dtypes`` as ``CLASS=W:A`` text ('' when there are none)."""
        return op_dtypes_text(self.op_dtypes)

    def precision_label(self) -> str:
        """Short text for titles: ``nvfp4`` or ``bf16 weights/fp8 act`` plus class overrides."""
        base = (self.weight_dtype if self.weight_dtype == self.activation_dtype
                else f"{self.weight_dtype} weights/{self.activation_dtype} act")
        extra = ", ".join(f"{c} {w}" + ("" if w == a else f":{a}") for c, w, a in self.op_dtypes)
        return f"{base} ({extra})" if extra else base


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
