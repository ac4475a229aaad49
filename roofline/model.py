"""Model specs: the shapes of a transformer, from a bundled YAML or a Hugging Face config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from roofline._specfile import (
    Block,
    bundled_names,
    name_from_stem,
    printable,
    read_json,
    read_yaml,
    resolve_spec,
)
from roofline.attention import (
    ATTENTION_KINDS,
    SOFTMAX_KINDS,
    AttendPattern,
    LinearAttentionSpec,
    SparseIndexerSpec,
)
from roofline.exceptions import SpecError
from roofline.hf_configs import HF_ARCHITECTURES, UnsupportedConfig, check_hf_values, hf_fields
from roofline.quantization import Quantization, parse_quantization_config

__all__ = ["MoESpec", "MLASpec", "ModelSpec", "LayerGroup", "BlockSparseSpec", "load_model", "list_models", "HF_ARCHITECTURES"]


#: Plausible upper bounds on structural fields: a typo such as ``num_layers: 1e30`` is a clean
#: error, not an hour of arithmetic (today's largest models are ~10x below each bound).
MAX_LAYERS = 10_000
MAX_WIDTH = 1_000_000  # hidden, intermediate and head sizes
MAX_HEADS = 100_000
MAX_EXPERTS = 100_000
MAX_VOCAB = 100_000_000
MAX_POSITIONS = 1_000_000_000


@dataclass(frozen=True)
class MoESpec:
    """Mixture-of-experts feed-forward layers."""

    num_experts: int
    experts_per_token: int
    expert_intermediate_size: int
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    first_dense_layers: int = 0
    moe_layer_interval: int = 1
    #: a sigmoid gate scales the shared experts' output per token: ``Linear(hidden, 1)`` (Qwen3-Next,
    #: Qwen3.5: transformers ``Qwen3NextSparseMoeBlock.shared_expert_gate``)
    shared_expert_gate: bool = False

    @classmethod
    def from_block(cls, b: Block) -> MoESpec:
        b.check_keys(["num_experts", "experts_per_token", "expert_intermediate_size"],
                     ["num_shared_experts", "shared_expert_intermediate_size", "first_dense_layers",
                      "moe_layer_interval", "shared_expert_gate"])
        expert_width = b.integer("expert_intermediate_size", maximum=MAX_WIDTH)
        shared = b.integer("num_shared_experts", minimum=0, default=0)
        spec = cls(
            num_experts=b.integer("num_experts", maximum=MAX_EXPERTS),
            experts_per_token=b.integer("experts_per_token"),
            expert_intermediate_size=expert_width,
            num_shared_experts=shared,
            # a shared expert is as wide as a routed one unless the spec says otherwise
            shared_expert_intermediate_size=b.integer("shared_expert_intermediate_size", minimum=0,
                                                      default=expert_width if shared else 0),
            first_dense_layers=b.integer("first_dense_layers", minimum=0, default=0, maximum=MAX_LAYERS),
            moe_layer_interval=b.integer("moe_layer_interval", default=1, maximum=MAX_LAYERS),
            shared_expert_gate=b.boolean("shared_expert_gate", default=False),
        )
        if spec.experts_per_token > spec.num_experts:
            raise b.error("experts_per_token", f"must be <= num_experts ({spec.num_experts})")
        if spec.shared_expert_gate and not spec.num_shared_experts:
            raise b.error("shared_expert_gate", "needs num_shared_experts >= 1 (it gates the shared experts)")
        return spec


@dataclass(frozen=True)
class MLASpec:
    """DeepSeek multi-head latent attention: a compressed KV cache."""

    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    @classmethod
    def from_block(cls, b: Block) -> MLASpec:
        keys = ["q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim"]
        b.check_keys(keys[1:], keys[:1])
        return cls(q_lora_rank=b.integer("q_lora_rank", minimum=0, default=0),
                   **{k: b.integer(k, maximum=MAX_WIDTH) for k in keys[1:]})


@dataclass(frozen=True)
class BlockSparseSpec:
    """Phi-3-small's block-sparse attention: ``local_blocks`` blocks of ``block_size`` tokens in
    full, and every ``vert_stride``-th block before them."""

    block_size: int
    local_blocks: int
    vert_stride: int

    @classmethod
    def from_block(cls, b: Block) -> BlockSparseSpec:
        keys = ["block_size", "local_blocks", "vert_stride"]
        b.check_keys(keys)
        return cls(**{k: b.integer(k, maximum=MAX_POSITIONS) for k in keys})


@dataclass(frozen=True)
class LayerGroup:
    """``count`` layers of one type: an attention kind (see :mod:`roofline.attention`) and a
    dense or MoE feed-forward."""

    count: int
    attention: str = "full"
    moe: bool = False

    @property
    def label(self) -> str:
        return f"{self.attention}/{'moe' if self.moe else 'dense'}"


def _linear_attention_from_block(b: Block) -> LinearAttentionSpec:
    keys = ["num_key_heads", "num_value_heads", "key_head_dim", "value_head_dim"]
    b.check_keys(keys, ["conv_kernel"])
    spec = LinearAttentionSpec(
        num_key_heads=b.integer("num_key_heads", maximum=MAX_HEADS),
        num_value_heads=b.integer("num_value_heads", maximum=MAX_HEADS),
        key_head_dim=b.integer("key_head_dim", maximum=MAX_WIDTH),
        value_head_dim=b.integer("value_head_dim", maximum=MAX_WIDTH),
        conv_kernel=b.integer("conv_kernel", default=4, maximum=1024))
    if spec.num_value_heads % spec.num_key_heads:
        raise b.error("num_value_heads", f"must be a multiple of num_key_heads ({spec.num_key_heads})")
    return spec


def _indexer_from_block(b: Block) -> SparseIndexerSpec:
    b.check_keys(["num_heads", "head_dim", "topk"])
    return SparseIndexerSpec(num_heads=b.integer("num_heads", maximum=MAX_HEADS),
                             head_dim=b.integer("head_dim", maximum=MAX_WIDTH),
                             topk=b.integer("topk", maximum=MAX_POSITIONS))


#: what each attention kind needs in the spec (the field, and the YAML key that sets it)
_KIND_NEEDS = {"sliding": ("sliding_window", "sliding_window"),
               "chunked": ("attention_chunk_size", "attention_chunk_size"),
               "block_sparse": ("block_sparse", "block_sparse"),
               "sparse": ("sparse_attention", "sparse_attention"),
               "linear": ("linear_attention", "linear_attention")}


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer's shapes.

    The layers are ``layers``: groups of identical layers with their counts (an attention kind
    and a dense or MoE feed-forward each), never one entry per layer, so costs are computed per
    layer type and weighted by its count. Without a ``layers`` list the model has one attention
    kind (``sliding`` when ``sliding_window`` is set, else ``full``) and the MoE placement of the
    ``moe`` block.
    """

    name: str
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    gated_mlp: bool = True
    activation: str = "silu"
    norm: str = "rmsnorm"
    qkv_bias: bool = False
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 0
    position_embedding: str = "rope"
    architecture: str = "llama"
    description: str = ""
    source: str = ""
    moe: MoESpec | None = None
    mla: MLASpec | None = None
    source_file: str = ""
    layers: tuple[LayerGroup, ...] = ()
    sliding_window: int = 0
    attention_chunk_size: int = 0
    block_sparse: BlockSparseSpec | None = None
    linear_attention: LinearAttentionSpec | None = None
    sparse_attention: SparseIndexerSpec | None = None
    attention_sinks: bool = False  # a learned per-head logit in the softmax (gpt-oss)
    attention_output_gate: bool = False  # sigmoid gate on the attention output (Qwen3-Next)
    qk_norm: str = "none"  # RMSNorm on q and k: per head (Qwen3, Gemma 3) or over the layer's width
    linear_bias: bool = False  # every linear layer has a bias (attention output, MLP, experts, router)
    lm_head_bias: bool = False
    embedding_norm: bool = False  # a LayerNorm right after the token embedding (BLOOM)
    norms_per_layer: int = 2
    #: attention and MLP read the same input and their outputs are summed, so tensor parallelism
    #: needs one all-reduce per layer (Falcon in vLLM and TensorRT-LLM), not two
    parallel_attention: bool = False
    attn_logit_softcapping: float = 0.0  # Gemma 2 (recorded: inside the fused attention kernel)
    final_logit_softcapping: float = 0.0
    quantization: Quantization | None = None  # the checkpoint's precision (HF quantization_config)

    # ---- derived shapes -------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    @cached_property
    def layer_groups(self) -> tuple[LayerGroup, ...]:
        """The layer types with their counts; the last group holds the model's last layer."""
        if self.layers:
            return self.layers
        kind = "sliding" if self.sliding_window else "full"
        moe_n = self._moe_layer_count
        dense = LayerGroup(self.num_layers - moe_n, kind, False)
        moe = LayerGroup(moe_n, kind, True)
        order = (dense, moe) if self.is_moe_layer(self.num_layers - 1) else (moe, dense)
        return tuple(g for g in order if g.count)

    def attention_summary(self) -> str:
        """Attention kinds with their layer counts, e.g. ``"sliding 18 + full 18"``."""
        counts: dict[str, int] = {}
        for g in self.layer_groups:
            counts[g.attention] = counts.get(g.attention, 0) + g.count
        return " + ".join(f"{kind} {n}" for kind, n in counts.items())

    def attend_pattern(self, kind: str) -> AttendPattern:
        """Which cached tokens a query of a softmax layer of ``kind`` attends."""
        if kind == "sliding":
            return AttendPattern(window=self.sliding_window, cache_window=self.sliding_window)
        if kind == "chunked":
            return AttendPattern(chunk=self.attention_chunk_size, cache_window=self.attention_chunk_size)
        if kind == "block_sparse":
            bs = self.block_sparse
            return AttendPattern(window=bs.block_size * bs.local_blocks, beyond=1.0 / bs.vert_stride)
        if kind == "sparse":
            return AttendPattern(window=self.sparse_attention.topk)
        return AttendPattern()

    def kv_elements_per_layer_token(self) -> int:
        """K and V elements one softmax layer caches per token (MLA: the latent and rope key)."""
        if self.mla is not None:
            return self.mla.kv_lora_rank + self.mla.qk_rope_head_dim
        return 2 * self.kv_dim

    def softmax_layers(self) -> int:
        return sum(g.count for g in self.layer_groups if g.attention in SOFTMAX_KINDS)

    def kv_elements_per_token(self) -> int:
        """K and V elements cached per token over all softmax-attention layers, as if every
        one kept the whole context (windowed layers keep less: see :meth:`kv_cache_bytes`)."""
        return self.softmax_layers() * self.kv_elements_per_layer_token()

    def kv_token_bytes(self, kind: str, kv_bytes: float, tp: int = 1) -> float:
        """Cache bytes per token of one layer of ``kind`` on one of ``tp`` tensor-parallel ranks:
        GQA heads are split over the ranks (replicated when tp exceeds them); MLA's latent and
        the sparse-attention indexer keys are replicated on every rank."""
        if kind == "linear":
            return 0.0
        per_token = self.kv_elements_per_layer_token() * kv_bytes
        if self.mla is None:
            per_token *= max(self.num_kv_heads // tp, 1) / self.num_kv_heads
        if kind == "sparse":
            per_token += self.sparse_attention.key_bytes_per_token()
        return per_token

    def linear_state_bytes(self, tp: int = 1) -> float:
        """One sequence's Gated DeltaNet state over all linear layers on one TP rank (heads split)."""
        n = sum(g.count for g in self.layer_groups if g.attention == "linear")
        return n * self.linear_attention.state_bytes() / tp if n else 0.0

    def kv_cache_bytes(self, context_len: int, kv_bytes: float, tp: int = 1) -> float:
        """Cache bytes of one sequence of ``context_len`` tokens on one TP rank, every layer:
        the KV cache (windowed layers keep at most their window) plus linear-attention state."""
        total = self.linear_state_bytes(tp)
        for g in self.layer_groups:
            if g.attention != "linear":
                total += g.count * self.attend_pattern(g.attention).cached(context_len) * self.kv_token_bytes(
                    g.attention, kv_bytes, tp)
        return total

    # ---- parameters ---------------------------------------------------------------------------
    def attention_params(self, kind: str = "full") -> int:
        """Parameters of one layer's token mixer of ``kind`` (norms excluded)."""
        h = self.hidden_size
        if kind == "linear":
            return self.linear_attention.params(h)
        if self.mla is not None:
            m = self.mla
            heads = self.num_attention_heads
            qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
            q = (h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * heads * qk_head
                 if m.q_lora_rank else h * heads * qk_head)
            kv = (h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
                  + m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim))
            params = q + kv + heads * m.v_head_dim * h
            if kind == "sparse":
                params += self.sparse_attention.params(h, m.q_lora_rank or h)  # wq_b reads the q latent, or x
        else:
            params = h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h
            if self.qkv_bias or self.linear_bias:
                params += self.q_dim + 2 * self.kv_dim
            if self.attention_output_gate:
                params += h * self.q_dim
        if self.linear_bias:
            params += h
        if self.qk_norm == "per_head":
            params += 2 * self.head_dim
        elif self.qk_norm == "per_layer":
            params += self.q_dim + self.kv_dim
        if self.attention_sinks:
            params += self.num_attention_heads
        return params

    def mlp_params(self, intermediate: int) -> int:
        params = (3 if self.gated_mlp else 2) * self.hidden_size * intermediate
        if self.linear_bias:
            params += (2 if self.gated_mlp else 1) * intermediate + self.hidden_size
        return params

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` is MoE by the ``moe`` block's placement rule (models without a
        ``layers`` list)."""
        m = self.moe
        return m is not None and layer >= m.first_dense_layers and (
            (layer - m.first_dense_layers) % m.moe_layer_interval == m.moe_layer_interval - 1)

    def num_moe_layers(self) -> int:
        return sum(g.count for g in self.layer_groups if g.moe)

    def op_classes(self) -> tuple[str, ...]:
        """The precision classes (:data:`roofline.workload.OP_CLASSES`, in its order) whose weights
        this model has: the operators :func:`roofline.workload.op_class` finds in its graph.
        ``mlp`` needs a dense feed-forward layer (DeepSeek-V3's first three; gpt-oss has none),
        ``experts`` and ``router`` a MoE layer, ``shared_experts`` a MoE block with shared experts;
        every model has attention (any token mixer), an embedding and an LM head (a tied one reads
        the embedding table)."""
        moe = self.moe
        has = {"attention": True, "mlp": self.num_moe_layers() < self.num_layers, "experts": moe is not None,
               "shared_experts": moe is not None and moe.num_shared_experts > 0, "router": moe is not None,
               "embedding": True, "lm_head": True}
        return tuple(c for c, present in has.items() if present)

    @cached_property
    def _moe_layer_count(self) -> int:
        # layers first_dense, first_dense + 1, ...: the (interval - 1)-th of every interval is MoE
        m = self.moe
        if m is None:
            return 0
        return max(self.num_layers - m.first_dense_layers, 0) // m.moe_layer_interval

    def moe_layer_params(self, active: bool) -> int:
        """One MoE feed-forward: routed experts (all, or the top-k), shared experts, router."""
        m = self.moe
        experts = m.experts_per_token if active else m.num_experts
        gate = self.hidden_size if m.shared_expert_gate else 0
        return (experts * self.mlp_params(m.expert_intermediate_size)
                + m.num_shared_experts * self.mlp_params(m.shared_expert_intermediate_size) + self.router_params()
                + gate)

    def router_params(self) -> int:
        m = self.moe
        return self.hidden_size * m.num_experts + (m.num_experts if self.linear_bias else 0)

    def norm_params(self) -> int:
        """One norm's parameters (LayerNorm has a bias)."""
        return self.hidden_size * (2 if self.norm == "layernorm" else 1)

    def layer_params(self, group: LayerGroup, active: bool = False) -> int:
        """Parameters of one layer of ``group``."""
        ffn = self.moe_layer_params(active) if group.moe else self.mlp_params(self.intermediate_size)
        return self.attention_params(group.attention) + ffn + self.norms_per_layer * self.norm_params()

    def _params(self, active: bool) -> int:
        layers = sum(g.count * self.layer_params(g, active) for g in self.layer_groups)
        embed = self.vocab_size * self.hidden_size
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        head += self.vocab_size if self.lm_head_bias else 0
        pos = self.max_position_embeddings * self.hidden_size if self.position_embedding == "learned" else 0
        norms = self.norm_params() * (2 if self.embedding_norm else 1)  # final (and embedding) norm
        return layers + embed + head + pos + norms

    def total_params(self) -> int:
        """All parameters, embeddings included."""
        return self._params(active=False)

    def active_params(self) -> int:
        """Parameters used per token (routed experts counted top-k times)."""
        return self._params(active=True)

    # ---- loading ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], file: Path | str = "<dict>") -> ModelSpec:
        b = Block(data, file)
        b.check_keys(
            ["name", "hidden_size", "num_layers", "num_attention_heads", "num_kv_heads",
             "intermediate_size", "vocab_size"],
            ["description", "source", "architecture", "head_dim", "gated_mlp", "activation", "norm",
             "qkv_bias", "tie_word_embeddings", "max_position_embeddings", "position_embedding",
             "moe", "mla", "notes", "layers", "sliding_window", "attention_chunk_size", "block_sparse",
             "linear_attention", "sparse_attention", "attention_sinks", "attention_output_gate", "qk_norm",
             "linear_bias", "lm_head_bias", "embedding_norm", "norms_per_layer", "parallel_attention",
             "attn_logit_softcapping", "final_logit_softcapping", "quantization_config"],
        )
        heads = b.integer("num_attention_heads", maximum=MAX_HEADS)
        hidden = b.integer("hidden_size", maximum=MAX_WIDTH)
        num_layers = b.integer("num_layers", maximum=MAX_LAYERS)
        spec = cls(
            name=b.string("name"),
            hidden_size=hidden,
            num_layers=num_layers,
            num_attention_heads=heads,
            num_kv_heads=b.integer("num_kv_heads", maximum=MAX_HEADS),
            head_dim=b.integer("head_dim", default=max(hidden // heads, 1), maximum=MAX_WIDTH),
            intermediate_size=b.integer("intermediate_size", maximum=MAX_WIDTH * 16),
            vocab_size=b.integer("vocab_size", maximum=MAX_VOCAB),
            gated_mlp=b.boolean("gated_mlp", default=True),
            activation=b.string("activation", default="silu"),
            norm=b.string("norm", choices=("rmsnorm", "layernorm"), default="rmsnorm"),
            qkv_bias=b.boolean("qkv_bias", default=False),
            tie_word_embeddings=b.boolean("tie_word_embeddings", default=False),
            max_position_embeddings=b.integer("max_position_embeddings", minimum=0, default=0,
                                              maximum=MAX_POSITIONS),
            position_embedding=b.string("position_embedding", choices=("rope", "learned", "alibi", "none"),
                                        default="rope"),
            architecture=b.string("architecture", default="llama"),
            description=str(b.raw("description", "")),
            source=str(b.raw("source", "")),
            moe=MoESpec.from_block(b.block("moe")) if b.has("moe") else None,
            mla=MLASpec.from_block(b.block("mla")) if b.has("mla") else None,
            source_file=str(file),
            layers=_layer_groups(b, num_layers) if b.has("layers") else (),
            sliding_window=b.integer("sliding_window", minimum=0, default=0, maximum=MAX_POSITIONS),
            attention_chunk_size=b.integer("attention_chunk_size", minimum=0, default=0, maximum=MAX_POSITIONS),
            block_sparse=BlockSparseSpec.from_block(b.block("block_sparse")) if b.has("block_sparse") else None,
            linear_attention=(_linear_attention_from_block(b.block("linear_attention"))
                              if b.has("linear_attention") else None),
            sparse_attention=_indexer_from_block(b.block("sparse_attention")) if b.has("sparse_attention") else None,
            attention_sinks=b.boolean("attention_sinks", default=False),
            attention_output_gate=b.boolean("attention_output_gate", default=False),
            qk_norm=b.string("qk_norm", choices=("none", "per_head", "per_layer"), default="none"),
            linear_bias=b.boolean("linear_bias", default=False),
            lm_head_bias=b.boolean("lm_head_bias", default=False),
            embedding_norm=b.boolean("embedding_norm", default=False),
            norms_per_layer=b.integer("norms_per_layer", minimum=0, default=2, maximum=16),
            parallel_attention=b.boolean("parallel_attention", default=False),
            attn_logit_softcapping=b.number("attn_logit_softcapping", default=0.0),
            final_logit_softcapping=b.number("final_logit_softcapping", default=0.0),
            quantization=(parse_quantization_config(b.raw("quantization_config"), file)
                          if b.has("quantization_config") else None),
        )
        if spec.num_kv_heads > heads or heads % spec.num_kv_heads:
            raise b.error("num_kv_heads", f"must divide num_attention_heads ({heads})")
        if not b.has("head_dim") and hidden % heads:  # a typo, not a head width: never floor it
            raise b.error("hidden_size", f"{hidden} is not a multiple of num_attention_heads ({heads}); fix it "
                                         "or give head_dim")
        _check_layers(spec, b)
        return spec


def _layer_groups(b: Block, num_layers: int) -> tuple[LayerGroup, ...]:
    raw = b.raw("layers")
    if not isinstance(raw, list) or not raw:
        raise b.error("layers", "expected a non-empty list of {count, attention, ffn}")
    groups = []
    for i, item in enumerate(raw):
        g = Block(item, b.file, f"layers[{i}]")
        g.check_keys(["count"], ["attention", "ffn"])
        groups.append(LayerGroup(count=g.integer("count", maximum=MAX_LAYERS),
                                 attention=g.string("attention", choices=ATTENTION_KINDS, default="full"),
                                 moe=g.string("ffn", choices=("dense", "moe"), default="dense") == "moe"))
    seen: dict[tuple[str, bool], int] = {}
    for i, g in enumerate(groups):
        first = seen.setdefault((g.attention, g.moe), i)
        if first != i:
            raise b.error("layers", f"entries {first} and {i} are the same layer type "
                                    f"({g.label}); give it once with their summed count")
    total = sum(g.count for g in groups)
    if total != num_layers:
        raise b.error("layers", f"the counts add up to {total}, not num_layers ({num_layers})")
    return tuple(groups)


def _check_layers(spec: ModelSpec, b: Block) -> None:
    """Every layer type has what it needs; MoE layers exist iff there is a ``moe`` block."""
    if spec.moe is not None and spec.num_moe_layers() == 0:
        if spec.layers:
            raise b.error("layers", "a moe block is given but no layer has ffn: moe")
        raise b.error("moe", f"no layer is a MoE layer: first_dense_layers ({spec.moe.first_dense_layers}) "
                             f"and moe_layer_interval leave none of the {spec.num_layers} layers")
    if spec.moe is None and spec.num_moe_layers():
        raise b.error("layers", "ffn: moe needs a moe block")
    if spec.layers and spec.moe is not None and (spec.moe.first_dense_layers or spec.moe.moe_layer_interval != 1):
        raise b.error("moe", "first_dense_layers and moe_layer_interval place the MoE layers of models "
                             "without a layers list; with one, its ffn entries do")
    for g in spec.layer_groups:
        need = _KIND_NEEDS.get(g.attention)
        if need and not getattr(spec, need[0]):
            raise b.error(need[1], f"missing: layers of attention {g.attention} need it")
        if g.attention == "sparse" and spec.mla is None:
            raise b.error("mla", "missing: sparse attention (DeepSeek's indexer) runs over MLA")
    if spec.sliding_window and spec.layers and not any(g.attention == "sliding" for g in spec.layers):
        raise b.error("sliding_window", "no layer has attention: sliding")


def model_from_hf_config(path: Path) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face ``config.json`` on disk (no network)."""
    cfg = read_json(path)
    model_type = cfg.get("model_type")
    if not isinstance(model_type, str) or model_type not in HF_ARCHITECTURES:
        supported = ", ".join(sorted(HF_ARCHITECTURES))
        raise SpecError(f"{path}: model_type: unsupported architecture {printable(repr(model_type))[:60]}; "
                        f"supported: {supported}")
    try:
        check_hf_values(cfg)
        fields = hf_fields(cfg)
    except KeyError as e:
        raise SpecError(f"{path}: {printable(e.args[0])}: missing required key for model_type {model_type}") from None
    except UnsupportedConfig as e:
        raise SpecError(f"{path}: {e} (model_type {model_type})") from None
    except (TypeError, ValueError, ZeroDivisionError, AttributeError, IndexError, OverflowError) as e:
        raise SpecError(f"{path}: a value has the wrong type or is zero for model_type {model_type} "
                        f"({printable(e)})") from None
    name = path.parent.name.lower() if path.name == "config.json" else path.stem.lower()
    text = cfg.get("text_config")
    # the checkpoint's precision, at the top level or with a nested language model's config
    fields["quantization_config"] = cfg.get("quantization_config") or (
        text.get("quantization_config") if isinstance(text, dict) else None)
    return ModelSpec.from_dict({"name": name, "architecture": model_type, "source": str(path), **fields}, path)


def load_model(name_or_path: str | Path) -> ModelSpec:
    """Load a bundled model by name (``llama-3-8b``), a YAML file, or a HF config.json / folder.

    Raises:
        SpecError: unknown name (with the closest names), a missing or invalid field, an
            unsupported Hugging Face architecture.
    """
    if isinstance(name_or_path, ModelSpec):
        return name_or_path
    path = resolve_spec(name_or_path, "model_specs", "model")
    if path.suffix.lower() == ".json":
        return model_from_hf_config(path)
    spec = ModelSpec.from_dict(read_yaml(path), path)
    name = name_from_stem(spec.name, path, "model")
    return spec if name == spec.name else dataclasses.replace(spec, name=name)


def list_models() -> list[str]:
    """Names of the bundled models."""
    return bundled_names("model_specs")
