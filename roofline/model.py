"""Model specs: the shapes of a transformer, from a bundled YAML or a Hugging Face config.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from roofline._specfile import Block, bundled_names, read_yaml, resolve_spec
from roofline.exceptions import SpecError
from roofline.quantization import Quantization, parse_quantization_config

__all__ = ["MoESpec", "MLASpec", "ModelSpec", "load_model", "list_models", "HF_ARCHITECTURES"]


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

    @classmethod
    def from_block(cls, b: Block) -> MoESpec:
        b.check_keys(["num_experts", "experts_per_token", "expert_intermediate_size"],
                     ["num_shared_experts", "shared_expert_intermediate_size", "first_dense_layers",
                      "moe_layer_interval"])
        expert_width = b.integer("expert_intermediate_size")
        shared = b.integer("num_shared_experts", minimum=0, default=0)
        spec = cls(
            num_experts=b.integer("num_experts"),
            experts_per_token=b.integer("experts_per_token"),
            expert_intermediate_size=expert_width,
            num_shared_experts=shared,
            # a shared expert is as wide as a routed one unless the spec says otherwise
            shared_expert_intermediate_size=b.integer("shared_expert_intermediate_size", minimum=0,
                                                      default=expert_width if shared else 0),
            first_dense_layers=b.integer("first_dense_layers", minimum=0, default=0),
            moe_layer_interval=b.integer("moe_layer_interval", default=1),
        )
        if spec.experts_per_token > spec.num_experts:
            raise b.error("experts_per_token", f"must be <= num_experts ({spec.num_experts})")
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
                   **{k: b.integer(k) for k in keys[1:]})


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer's shapes."""

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
    quantization: Quantization | None = None  # the checkpoint's precision (HF quantization_config)

    # ---- derived shapes -------------------------------------------------------------------
    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim

    def kv_elements_per_token(self) -> int:
        """K and V elements cached per token over all layers (MLA caches the latent and rope key)."""
        if self.mla is not None:
            return self.num_layers * (self.mla.kv_lora_rank + self.mla.qk_rope_head_dim)
        return self.num_layers * 2 * self.kv_dim

    def attention_params(self) -> int:
        h = self.hidden_size
        if self.mla is not None:
            m = self.mla
            heads = self.num_attention_heads
            qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
            q = (h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * heads * qk_head
                 if m.q_lora_rank else h * heads * qk_head)
            kv = (h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
                  + m.kv_lora_rank * heads * (m.qk_nope_head_dim + m.v_head_dim))
            return q + kv + heads * m.v_head_dim * h
        params = h * (self.q_dim + 2 * self.kv_dim) + self.q_dim * h
        if self.qkv_bias:
            params += self.q_dim + 2 * self.kv_dim
        return params

    def mlp_params(self, intermediate: int) -> int:
        return (3 if self.gated_mlp else 2) * self.hidden_size * intermediate

    def is_moe_layer(self, layer: int) -> bool:
        m = self.moe
        return m is not None and layer >= m.first_dense_layers and (
            (layer - m.first_dense_layers) % m.moe_layer_interval == m.moe_layer_interval - 1)

    def num_moe_layers(self) -> int:
        return self._moe_layer_count

    @cached_property
    def _moe_layer_count(self) -> int:
        # counted once per spec: parameter counts and memory checks ask on every prediction
        return sum(self.is_moe_layer(i) for i in range(self.num_layers))

    def _ffn_params(self, active: bool) -> int:
        dense_layers = self.num_layers - self.num_moe_layers()
        total = dense_layers * self.mlp_params(self.intermediate_size)
        if self.moe is not None:
            m = self.moe
            experts = m.experts_per_token if active else m.num_experts
            per_layer = (experts * self.mlp_params(m.expert_intermediate_size)
                         + m.num_shared_experts * self.mlp_params(m.shared_expert_intermediate_size)
                         + self.hidden_size * m.num_experts)  # router
            total += self.num_moe_layers() * per_layer
        return total

    def _other_params(self) -> int:
        norms = self.num_layers * 2 * self.hidden_size + self.hidden_size
        if self.norm == "layernorm":
            norms *= 2  # weight and bias
        embed = self.vocab_size * self.hidden_size
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        pos = self.max_position_embeddings * self.hidden_size if self.position_embedding == "learned" else 0
        return norms + embed + head + pos + self.num_layers * self.attention_params()

    def total_params(self) -> int:
        """All parameters, embeddings included."""
        return self._other_params() + self._ffn_params(active=False)

    def active_params(self) -> int:
        """Parameters used per token (routed experts counted top-k times)."""
        return self._other_params() + self._ffn_params(active=True)

    # ---- loading ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], file: Path | str = "<dict>") -> ModelSpec:
        b = Block(data, file)
        b.check_keys(
            ["name", "hidden_size", "num_layers", "num_attention_heads", "num_kv_heads",
             "intermediate_size", "vocab_size"],
            ["description", "source", "architecture", "head_dim", "gated_mlp", "activation", "norm",
             "qkv_bias", "tie_word_embeddings", "max_position_embeddings", "position_embedding",
             "moe", "mla", "notes", "quantization_config"],
        )
        heads = b.integer("num_attention_heads")
        hidden = b.integer("hidden_size")
        spec = cls(
            name=b.string("name"),
            hidden_size=hidden,
            num_layers=b.integer("num_layers"),
            num_attention_heads=heads,
            num_kv_heads=b.integer("num_kv_heads"),
            head_dim=b.integer("head_dim", default=hidden // heads),
            intermediate_size=b.integer("intermediate_size"),
            vocab_size=b.integer("vocab_size"),
            gated_mlp=b.boolean("gated_mlp", default=True),
            activation=b.string("activation", default="silu"),
            norm=b.string("norm", choices=("rmsnorm", "layernorm"), default="rmsnorm"),
            qkv_bias=b.boolean("qkv_bias", default=False),
            tie_word_embeddings=b.boolean("tie_word_embeddings", default=False),
            max_position_embeddings=b.integer("max_position_embeddings", minimum=0, default=0),
            position_embedding=b.string("position_embedding", choices=("rope", "learned"), default="rope"),
            architecture=b.string("architecture", default="llama"),
            description=str(b.raw("description", "")),
            source=str(b.raw("source", "")),
            moe=MoESpec.from_block(b.block("moe")) if b.has("moe") else None,
            mla=MLASpec.from_block(b.block("mla")) if b.has("mla") else None,
            source_file=str(file),
            quantization=(parse_quantization_config(b.raw("quantization_config"), file)
                          if b.has("quantization_config") else None),
        )
        if spec.num_attention_heads % spec.num_kv_heads:
            raise b.error("num_kv_heads", f"must divide num_attention_heads ({heads})")
        if spec.moe is not None and spec.num_moe_layers() == 0:
            raise b.error("moe", f"no layer is a MoE layer: first_dense_layers ({spec.moe.first_dense_layers}) "
                                 f"and moe_layer_interval leave none of the {spec.num_layers} layers")
        return spec


def _hf_llama_like(cfg: dict[str, Any]) -> dict[str, Any]:
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    return {
        "hidden_size": hidden,
        "num_layers": cfg["num_hidden_layers"],
        "num_attention_heads": heads,
        "num_kv_heads": cfg.get("num_key_value_heads") or heads,
        "head_dim": cfg.get("head_dim") or hidden // heads,
        "intermediate_size": cfg["intermediate_size"],
        "vocab_size": cfg["vocab_size"],
        "gated_mlp": True,
        "activation": cfg.get("hidden_act", "silu"),
        "norm": "rmsnorm",
        "qkv_bias": bool(cfg.get("attention_bias", False)),
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "max_position_embeddings": cfg.get("max_position_embeddings", 0),
    }


def _hf_qwen2(cfg: dict[str, Any]) -> dict[str, Any]:
    return {**_hf_llama_like(cfg), "qkv_bias": True}


def _hf_phi3(cfg: dict[str, Any]) -> dict[str, Any]:
    spec = _hf_llama_like(cfg)
    if cfg.get("model_type") == "phi3small":
        spec["activation"] = cfg.get("hidden_act", "gegelu")
        spec["norm"] = "layernorm"
        spec["qkv_bias"] = True
    return spec


def _hf_mixtral(cfg: dict[str, Any]) -> dict[str, Any]:
    spec = _hf_llama_like(cfg)
    spec["moe"] = {
        "num_experts": cfg["num_local_experts"],
        "experts_per_token": cfg["num_experts_per_tok"],
        "expert_intermediate_size": cfg["intermediate_size"],
    }
    return spec


class _Unsupported(Exception):
    """A config value the spec format cannot express (turned into a SpecError by the loader)."""


def _hf_qwen3_moe(cfg: dict[str, Any]) -> dict[str, Any]:
    spec = _hf_llama_like(cfg)
    step = cfg.get("decoder_sparse_step") or 1
    dense = sorted(cfg.get("mlp_only_layers") or [])
    # transformers: layer i is MoE iff i not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0
    if dense and (step != 1 or dense != list(range(len(dense)))):
        raise _Unsupported("mlp_only_layers: only a leading run of dense layers (0, 1, ..., n-1) with "
                           f"decoder_sparse_step 1 is supported, got {dense} with step {step}")
    spec["moe"] = {
        "num_experts": cfg["num_experts"],
        "experts_per_token": cfg["num_experts_per_tok"],
        "expert_intermediate_size": cfg["moe_intermediate_size"],
        "first_dense_layers": len(dense),
        "moe_layer_interval": step,
    }
    return spec


def _hf_llama4(cfg: dict[str, Any]) -> dict[str, Any]:
    """Llama 4 (Scout, Maverick): the text decoder of ``text_config`` (the vision tower is not modeled)."""
    text = cfg.get("text_config", cfg)
    if not isinstance(text, dict):
        raise KeyError("text_config")
    spec = _hf_llama_like({**text, "intermediate_size": text["intermediate_size_mlp"]})
    spec["tie_word_embeddings"] = bool(text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False)))
    step = text.get("interleave_moe_layer_step") or 1
    layers = text["num_hidden_layers"]
    expected = list(range(step - 1, layers, step))  # transformers' default moe_layers
    if text.get("moe_layers") is not None and sorted(text["moe_layers"]) != expected:
        raise _Unsupported(f"moe_layers: only every interleave_moe_layer_step-th layer ({step}) is supported")
    spec["moe"] = {
        "num_experts": text["num_local_experts"],
        "experts_per_token": text.get("num_experts_per_tok", 1),
        "expert_intermediate_size": text["intermediate_size"],
        "num_shared_experts": 1,  # Llama 4 always adds one shared expert of the routed width
        "shared_expert_intermediate_size": text["intermediate_size"],
        "moe_layer_interval": step,
    }
    return spec


def _hf_deepseek_v3(cfg: dict[str, Any]) -> dict[str, Any]:
    freq = cfg.get("moe_layer_freq") or 1
    if freq != 1:
        # transformers: MoE iff i >= first_k_dense_replace and i % moe_layer_freq == 0
        raise _Unsupported(f"moe_layer_freq: only 1 is supported, got {freq}")
    spec = _hf_llama_like(cfg)
    spec["num_kv_heads"] = cfg["num_attention_heads"]
    spec["head_dim"] = cfg["v_head_dim"]
    spec["moe"] = {
        "num_experts": cfg["n_routed_experts"],
        "experts_per_token": cfg["num_experts_per_tok"],
        "expert_intermediate_size": cfg["moe_intermediate_size"],
        "num_shared_experts": cfg.get("n_shared_experts") or 0,
        "shared_expert_intermediate_size": cfg["moe_intermediate_size"],
        "first_dense_layers": cfg.get("first_k_dense_replace") or 0,
        "moe_layer_interval": 1,
    }
    spec["mla"] = {k: cfg[k] for k in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")}
    spec["mla"]["q_lora_rank"] = cfg.get("q_lora_rank") or 0
    return spec


#: Hugging Face ``model_type`` values that load directly, and how.
HF_ARCHITECTURES = {
    "llama": _hf_llama_like,
    "mistral": _hf_llama_like,
    "qwen2": _hf_qwen2,
    "qwen3": _hf_llama_like,
    "phi3": _hf_phi3,
    "phi3small": _hf_phi3,
    "mixtral": _hf_mixtral,
    "qwen3_moe": _hf_qwen3_moe,
    "deepseek_v3": _hf_deepseek_v3,
    "llama4": _hf_llama4,
    "llama4_text": _hf_llama4,
}


def model_from_hf_config(path: Path) -> ModelSpec:
    """Build a ModelSpec from a Hugging Face ``config.json`` on disk (no network)."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    model_type = cfg.get("model_type")
    if model_type not in HF_ARCHITECTURES:
        supported = ", ".join(sorted(HF_ARCHITECTURES))
        raise SpecError(f"{path}: model_type: unsupported architecture {model_type!r}; supported: {supported}")
    try:
        fields = HF_ARCHITECTURES[model_type](cfg)
    except KeyError as e:
        raise SpecError(f"{path}: {e.args[0]}: missing required key for model_type {model_type}") from None
    except _Unsupported as e:
        raise SpecError(f"{path}: {e} (model_type {model_type})") from None
    name = path.parent.name.lower() if path.name == "config.json" else path.stem.lower()
    fields["quantization_config"] = cfg.get("quantization_config")
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
    return ModelSpec.from_dict(read_yaml(path), path)


def list_models() -> list[str]:
    """Names of the bundled models."""
    return bundled_names("model_specs")
