"""Hugging Face ``config.json`` files turned into the fields of a model spec (no network).

One function per ``model_type``; each returns the keys of :meth:`roofline.model.ModelSpec.from_dict`.
Multimodal configs that nest the language model under ``text_config`` (Llama 4, Gemma 3,
Qwen3.5) are read from it: the vision tower is not modeled. Layer types come from the config's
``layer_types`` list, or from its rule (``full_attention_interval``, ``sliding_window_pattern``,
``no_rope_layers``, ``dense_attention_every_n_layers``, ``first_k_dense_replace``) and are
grouped with their counts: the spec never holds one entry per layer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from roofline._specfile import Field, printable

__all__ = ["HF_ARCHITECTURES", "UnsupportedConfig", "hf_fields", "MAX_CONFIG_LAYERS", "check_hf_values"]

Config = dict[str, Any]

#: configs naming more layers than this are refused before any per-layer rule is evaluated
MAX_CONFIG_LAYERS = 10_000

#: Hugging Face ``layer_types`` names -> attention kinds of :mod:`roofline.attention`
_HF_LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding", "linear_attention": "linear",
                   "chunked_attention": "chunked"}


def _ints(low: int, high: int, *keys: str) -> dict[str, Field]:
    return {k: Field(k, "", low, high, kind="integer") for k in keys}


#: Types and plausible bounds of the config.json numbers the converters read, checked before any
#: arithmetic (a string, zero or 1e30 is a one-line error, never a traceback or an hour of work).
#: The model spec then applies its own bounds to what the converter builds.
_WIDTH, _HEADS, _POSITIONS = 1_000_000, 100_000, 1_000_000_000
HF_FIELDS: dict[str, Field] = {
    **_ints(1, _WIDTH, "hidden_size", "n_embd", "n_embed", "head_dim", "v_head_dim", "kv_lora_rank",
            "qk_nope_head_dim", "qk_rope_head_dim", "moe_intermediate_size", "shared_expert_intermediate_size",
            "linear_key_head_dim", "linear_value_head_dim", "index_head_dim", "word_embed_proj_dim"),
    **_ints(1, 16 * _WIDTH, "intermediate_size", "intermediate_size_mlp", "ff_intermediate_size", "ffn_dim",
            "n_inner", "ffn_hidden_size"),
    **_ints(1, _HEADS, "num_attention_heads", "n_head", "num_key_value_heads", "num_kv_heads",
            "linear_num_key_heads", "linear_num_value_heads", "index_n_heads", "num_local_experts",
            "num_experts", "n_routed_experts", "num_experts_per_tok", "experts_per_token"),
    **_ints(0, _HEADS, "n_shared_experts", "q_lora_rank"),
    **_ints(1, 100_000_000, "vocab_size"),
    **_ints(0, _POSITIONS, "max_position_embeddings", "n_positions", "sliding_window", "attention_chunk_size",
            "index_topk", "blocksparse_block_size", "blocksparse_num_local_blocks", "blocksparse_vert_stride"),
    **_ints(0, MAX_CONFIG_LAYERS, "first_k_dense_replace", "decoder_sparse_step", "full_attention_interval",
            "interleave_moe_layer_step", "no_rope_layer_interval", "dense_attention_every_n_layers",
            "moe_layer_freq", "sliding_window_pattern", "linear_conv_kernel_dim"),
    **_ints(1, MAX_CONFIG_LAYERS, "num_hidden_layers", "n_layer", "num_layers"),
}
#: list-valued keys: each entry's declaration
HF_LIST_FIELDS = {
    **_ints(0, MAX_CONFIG_LAYERS, "mlp_only_layers", "moe_layers", "no_rope_layers"),
}


def check_hf_values(cfg: Config) -> None:
    """Types and bounds of the declared keys (top level and ``text_config``); raises
    UnsupportedConfig naming the key. ``None`` means absent, as in transformers."""
    text = cfg.get("text_config")
    if text is not None and not isinstance(text, dict):
        raise UnsupportedConfig(f"text_config: expected a JSON object, got {type(text).__name__}")
    for scope, config in (("", cfg), ("text_config.", text or {})):
        for key, value in config.items():
            if value is None:
                continue
            if key in HF_FIELDS:
                problem = HF_FIELDS[key].problem(value)
                if problem:
                    raise UnsupportedConfig(f"{scope}{key}: {problem}")
            elif key in HF_LIST_FIELDS:
                if not isinstance(value, list) or len(value) > MAX_CONFIG_LAYERS:
                    raise UnsupportedConfig(f"{scope}{key}: expected a list of layer indices")
                for item in value:
                    problem = HF_LIST_FIELDS[key].problem(item)
                    if problem:
                        raise UnsupportedConfig(f"{scope}{key}: entry {problem}")
            elif key == "layer_types" and not (isinstance(value, list) and len(value) <= MAX_CONFIG_LAYERS
                                               and all(isinstance(t, str) for t in value)):
                raise UnsupportedConfig(f"{scope}{key}: expected a list of layer type names, "
                                        f"got {printable(repr(value))[:60]}")


class UnsupportedConfig(Exception):
    """A config value the spec format cannot express (turned into a SpecError by the loader)."""


def _text(cfg: Config) -> Config:
    """The language model's config: ``text_config`` when nested (multimodal models)."""
    text = cfg.get("text_config")
    if text is None:
        return cfg
    if not isinstance(text, dict):
        raise KeyError("text_config")
    return {**{k: v for k, v in cfg.items() if k != "text_config"}, **text}


def _num_layers(cfg: Config, key: str = "num_hidden_layers") -> int:
    n = cfg[key]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_CONFIG_LAYERS:
        raise UnsupportedConfig(f"{key}: must be an integer from 1 to {MAX_CONFIG_LAYERS}, got {n!r}")
    return n


def _groups(kinds: Sequence[str], moe: Sequence[bool]) -> list[dict[str, Any]]:
    """``layers`` entries from per-layer attention kinds and MoE flags: one entry per distinct
    (kind, ffn) with its count; the entry holding the last layer is listed last."""
    pairs = list(zip(kinds, moe, strict=True))
    counts = Counter(pairs)
    order = sorted(counts, key=lambda p: (p == pairs[-1], pairs.index(p)))
    return [{"count": counts[p], "attention": p[0], "ffn": "moe" if p[1] else "dense"} for p in order]


def _layer_kinds(cfg: Config, n: int, rule: Callable[[int], str]) -> list[str]:
    """Per-layer attention kinds from ``layer_types`` when present, else from ``rule(i)``."""
    types = cfg.get("layer_types")
    if types is None:
        return [rule(i) for i in range(n)]
    if len(types) != n:
        raise UnsupportedConfig(f"layer_types: {len(types)} entries for {n} layers")
    unknown = sorted({t for t in types if t not in _HF_LAYER_TYPES})
    if unknown:
        raise UnsupportedConfig(f"layer_types: unsupported {unknown}; supported: {', '.join(_HF_LAYER_TYPES)}")
    return [_HF_LAYER_TYPES[t] for t in types]


def _llama_like(cfg: Config) -> Config:
    hidden = cfg["hidden_size"]
    heads = cfg["num_attention_heads"]
    return {
        "hidden_size": hidden,
        "num_layers": _num_layers(cfg),
        "num_attention_heads": heads,
        "num_kv_heads": cfg.get("num_key_value_heads") or heads,
        "head_dim": cfg.get("head_dim") or hidden // heads,
        "intermediate_size": cfg["intermediate_size"],
        "vocab_size": cfg["vocab_size"],
        "gated_mlp": True,
        "activation": cfg.get("hidden_act") or cfg.get("hidden_activation") or "silu",
        "norm": "rmsnorm",
        "qkv_bias": bool(cfg.get("attention_bias", False)),
        "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
        "max_position_embeddings": cfg.get("max_position_embeddings", 0),
    }


def _mistral(cfg: Config) -> Config:
    """Mistral: every layer attends a sliding window when ``sliding_window`` is set (v0.1: 4096)."""
    spec = _llama_like(cfg)
    if cfg.get("sliding_window"):
        spec["sliding_window"] = cfg["sliding_window"]
    return spec


def _qwen2(cfg: Config) -> Config:
    return {**_llama_like(cfg), "qkv_bias": True}


def _phi3(cfg: Config) -> Config:
    spec = _llama_like(cfg)
    if cfg.get("model_type") != "phi3small":
        return spec
    spec.update(activation=cfg.get("hidden_act", "gegelu"), norm="layernorm", qkv_bias=True,
                intermediate_size=cfg.get("ff_intermediate_size") or cfg["intermediate_size"])
    spec["tie_word_embeddings"] = bool(cfg.get("tie_word_embeddings", True))  # PretrainedConfig default
    every = cfg.get("dense_attention_every_n_layers")
    if every:
        # modeling_phi3_small: layer i is dense iff (i + 1) % dense_attention_every_n_layers == 0
        n = spec["num_layers"]
        kinds = ["full" if (i + 1) % every == 0 else "block_sparse" for i in range(n)]
        spec["layers"] = _groups(kinds, [False] * n)
        spec["block_sparse"] = {"block_size": cfg["blocksparse_block_size"],
                                "local_blocks": cfg["blocksparse_num_local_blocks"],
                                "vert_stride": cfg["blocksparse_vert_stride"]}
    return spec


def _mixtral(cfg: Config) -> Config:
    spec = _mistral(cfg)
    spec["moe"] = {
        "num_experts": cfg["num_local_experts"],
        "experts_per_token": cfg["num_experts_per_tok"],
        "expert_intermediate_size": cfg["intermediate_size"],
    }
    return spec


def _qwen3(cfg: Config) -> Config:
    """Qwen3 dense: Llama-like with a per-head RMSNorm on q and k (transformers
    ``models/qwen3/modeling_qwen3.py``, ``Qwen3Attention``: ``q_norm = Qwen3RMSNorm(self.head_dim)``)."""
    return {**_llama_like(cfg), "qk_norm": "per_head"}


def _qwen3_moe(cfg: Config) -> Config:
    """Qwen3 MoE: the per-head q/k RMSNorm of Qwen3 (``Qwen3MoeAttention``) and MoE layers."""
    spec = _qwen3(cfg)
    step = cfg.get("decoder_sparse_step") or 1
    dense = sorted(cfg.get("mlp_only_layers") or [])
    # transformers: layer i is MoE iff i not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0
    if dense and (step != 1 or dense != list(range(len(dense)))):
        raise UnsupportedConfig("mlp_only_layers: only a leading run of dense layers (0, 1, ..., n-1) with "
                                f"decoder_sparse_step 1 is supported, got {dense} with step {step}")
    spec["moe"] = {
        "num_experts": cfg["num_experts"],
        "experts_per_token": cfg["num_experts_per_tok"],
        "expert_intermediate_size": cfg["moe_intermediate_size"],
        "first_dense_layers": len(dense),
        "moe_layer_interval": step,
    }
    return spec


def _qwen3_next(cfg: Config) -> Config:
    """Qwen3-Next and Qwen3.5 (dense and MoE): Gated DeltaNet layers with gated full attention
    every ``full_attention_interval``-th layer; MoE with one shared expert (its sigmoid gate, one
    hidden-wide vector per layer, is not counted)."""
    cfg = _text(cfg)
    # Qwen3.5 MoE configs have no dense width: every layer is MoE
    spec = _llama_like({"intermediate_size": cfg.get("moe_intermediate_size"), **cfg})
    n = spec["num_layers"]
    interval = cfg.get("full_attention_interval") or 4
    kinds = _layer_kinds(cfg, n, lambda i: "full" if (i + 1) % interval == 0 else "linear")
    step = cfg.get("decoder_sparse_step") or 1
    dense = set(cfg.get("mlp_only_layers") or [])
    moe = [cfg.get("num_experts", 0) > 0 and i not in dense and (i + 1) % step == 0 for i in range(n)]
    spec["layers"] = _groups(kinds, moe)
    if any(moe):
        spec["moe"] = {"num_experts": cfg["num_experts"], "experts_per_token": cfg["num_experts_per_tok"],
                       "expert_intermediate_size": cfg["moe_intermediate_size"], "num_shared_experts": 1,
                       "shared_expert_intermediate_size": cfg["shared_expert_intermediate_size"],
                       "shared_expert_gate": True}  # Qwen3NextSparseMoeBlock.shared_expert_gate
    spec["linear_attention"] = {"num_key_heads": cfg["linear_num_key_heads"],
                                "num_value_heads": cfg["linear_num_value_heads"],
                                "key_head_dim": cfg["linear_key_head_dim"],
                                "value_head_dim": cfg["linear_value_head_dim"],
                                "conv_kernel": cfg.get("linear_conv_kernel_dim") or 4}
    spec["attention_output_gate"] = bool(cfg.get("attn_output_gate", True))
    spec["qk_norm"] = "per_head"
    return spec


def _llama4(cfg: Config) -> Config:
    """Llama 4 (Scout, Maverick): the text decoder of ``text_config`` (the vision tower is not modeled).

    Layers with RoPE (``no_rope_layers[i] == 1``; by default all but every 4th) attend within
    chunks of ``attention_chunk_size``; the NoPE layers attend globally.
    """
    text = _text(cfg)
    spec = _llama_like({**text, "intermediate_size": text["intermediate_size_mlp"]})
    spec["tie_word_embeddings"] = bool(text.get("tie_word_embeddings", False))
    n = spec["num_layers"]
    step = text.get("interleave_moe_layer_step") or 1
    expected = list(range(step - 1, n, step))  # transformers' default moe_layers
    if text.get("moe_layers") is not None and sorted(text["moe_layers"]) != expected:
        raise UnsupportedConfig(f"moe_layers: only every interleave_moe_layer_step-th layer ({step}) is supported")
    moe = [(i + 1) % step == 0 for i in range(n)]
    chunk = text.get("attention_chunk_size", 8192)
    interval = text.get("no_rope_layer_interval") or 4
    rope = text.get("no_rope_layers") or [int((i + 1) % interval != 0) for i in range(n)]
    if len(rope) != n:
        raise UnsupportedConfig(f"no_rope_layers: {len(rope)} entries for {n} layers")
    kinds = ["chunked" if r and chunk else "full" for r in rope]
    spec["layers"] = _groups(kinds, moe)
    if chunk and "chunked" in kinds:
        spec["attention_chunk_size"] = chunk
    spec["moe"] = {
        "num_experts": text["num_local_experts"],
        "experts_per_token": text.get("num_experts_per_tok", 1),
        "expert_intermediate_size": text["intermediate_size"],
        "num_shared_experts": 1,  # Llama 4 always adds one shared expert of the routed width
        "shared_expert_intermediate_size": text["intermediate_size"],
    }
    return spec


def _deepseek_moe(cfg: Config) -> Config:
    """The MoE block of DeepSeek-style configs (DeepSeek-V3, Kimi K2, GLM-4.5, GLM-5): routed
    experts, shared experts of the routed width, ``first_k_dense_replace`` dense layers first."""
    return {
        "num_experts": cfg["n_routed_experts"],
        "experts_per_token": cfg["num_experts_per_tok"],
        "expert_intermediate_size": cfg["moe_intermediate_size"],
        "num_shared_experts": cfg.get("n_shared_experts") or 0,
        "shared_expert_intermediate_size": cfg["moe_intermediate_size"],
        "first_dense_layers": cfg.get("first_k_dense_replace") or 0,
    }


def _deepseek_v3(cfg: Config) -> Config:
    """DeepSeek-V3 and Kimi K2 (MLA, dense then MoE layers); DeepSeek-V3.2 and GLM-5 add the
    sparse-attention indexer (``index_n_heads``, ``index_head_dim``, ``index_topk``).
    The multi-token-prediction layers (``num_nextn_predict_layers``) are not counted. Kimi K2.5
    nests the K2 decoder under ``text_config``."""
    cfg = _text(cfg)
    freq = cfg.get("moe_layer_freq") or 1
    if freq != 1:
        # transformers: MoE iff i >= first_k_dense_replace and i % moe_layer_freq == 0
        raise UnsupportedConfig(f"moe_layer_freq: only 1 is supported, got {freq}")
    spec = _llama_like(cfg)
    spec["num_kv_heads"] = cfg["num_attention_heads"]
    spec["head_dim"] = cfg["v_head_dim"]
    spec["moe"] = {**_deepseek_moe(cfg), "moe_layer_interval": 1}
    spec["mla"] = {k: cfg[k] for k in ("kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim")}
    spec["mla"]["q_lora_rank"] = cfg.get("q_lora_rank") or 0
    if cfg.get("index_topk"):
        spec["sparse_attention"] = {"num_heads": cfg["index_n_heads"], "head_dim": cfg["index_head_dim"],
                                    "topk": cfg["index_topk"]}
        dense = spec["moe"].pop("first_dense_layers")
        spec["moe"].pop("moe_layer_interval")
        spec["layers"] = _groups(["sparse"] * spec["num_layers"],
                                 [i >= dense for i in range(spec["num_layers"])])
    return spec


def _glm4_moe(cfg: Config) -> Config:
    """GLM-4.5 / 4.6: GQA (q/k/v biases, optional q/k norm), dense then MoE layers with one
    shared expert. The MTP layers (``num_nextn_predict_layers``) are not counted."""
    spec = _llama_like(cfg)
    spec["moe"] = _deepseek_moe(cfg)
    if cfg.get("use_qk_norm"):
        spec["qk_norm"] = "per_head"
    return spec


def _gpt_oss(cfg: Config) -> Config:
    """gpt-oss: alternating sliding-window (``sliding_window``) and full attention, learned
    attention sinks, biases on every linear layer and the router, all layers MoE. The MXFP4
    experts come from ``quantization_config`` (read by :mod:`roofline.quantization`)."""
    spec = _llama_like(cfg)
    n = spec["num_layers"]
    kinds = _layer_kinds(cfg, n, lambda i: "sliding" if i % 2 == 0 else "full")
    spec["layers"] = _groups(kinds, [True] * n)
    if "sliding" in kinds:
        spec["sliding_window"] = cfg["sliding_window"]
    spec.update(qkv_bias=False, linear_bias=bool(cfg.get("attention_bias", True)), attention_sinks=True)
    spec["moe"] = {"num_experts": cfg["num_local_experts"],
                   "experts_per_token": cfg.get("num_experts_per_tok") or cfg["experts_per_token"],
                   "expert_intermediate_size": cfg["intermediate_size"]}
    return spec


def _minimax_m2(cfg: Config) -> Config:
    """MiniMax-M2 / M2.5: GQA with q/k RMSNorm over the whole layer width, all layers MoE
    (``intermediate_size`` is the expert width). The MTP modules are not counted."""
    cfg = _text(cfg)
    spec = _llama_like(cfg)
    spec["moe"] = {"num_experts": cfg["num_local_experts"], "experts_per_token": cfg["num_experts_per_tok"],
                   "expert_intermediate_size": cfg["intermediate_size"]}
    if cfg.get("use_qk_norm"):
        spec["qk_norm"] = "per_layer" if cfg.get("qk_norm_type", "per_layer") == "per_layer" else "per_head"
    return spec


def _gemma(cfg: Config) -> Config:
    """Gemma 2 and 3: local sliding-window and global layers (Gemma 2 alternates; Gemma 3 has
    ``sliding_window_pattern - 1`` local layers per global one), four norms per layer, tied
    embeddings; Gemma 2 soft-caps the attention and final logits, Gemma 3 normalizes q and k."""
    text = _text(cfg)
    spec = _llama_like(text)
    n = spec["num_layers"]
    gemma3 = text.get("model_type", cfg.get("model_type")) in ("gemma3", "gemma3_text")
    pattern = text.get("sliding_window_pattern") or (6 if gemma3 else 2)
    # transformers: layer i is global iff (i + 1) % sliding_window_pattern == 0
    kinds = _layer_kinds(text, n, lambda i: "full" if (i + 1) % pattern == 0 else "sliding")
    spec["layers"] = _groups(kinds, [False] * n)
    if "sliding" in kinds:
        spec["sliding_window"] = text["sliding_window"]
    spec.update(norms_per_layer=4, tie_word_embeddings=bool(text.get("tie_word_embeddings", True)))
    if gemma3:
        spec["qk_norm"] = "per_head"
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if text.get(key):
            spec[key] = text[key]
    return spec


def _gptj(cfg: Config) -> Config:
    """GPT-J: parallel attention and MLP after one LayerNorm, partial rotary embeddings, no
    attention biases, MLP and LM-head biases, untied embeddings."""
    hidden = cfg["n_embd"]
    return {"hidden_size": hidden, "num_layers": _num_layers(cfg, "n_layer"), "num_attention_heads": cfg["n_head"],
            "num_kv_heads": cfg["n_head"], "intermediate_size": cfg.get("n_inner") or 4 * hidden,
            "vocab_size": cfg["vocab_size"], "gated_mlp": False, "activation": cfg.get("activation_function", "gelu_new"),
            "norm": "layernorm", "norms_per_layer": 1, "linear_bias": True, "lm_head_bias": True,
            "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
            "max_position_embeddings": cfg.get("n_positions", 0)}


def _falcon(cfg: Config) -> Config:
    """Falcon: parallel attention and MLP (one TP all-reduce per layer, as vLLM and TensorRT-LLM
    run it); the new decoder architecture (40B, 180B) has
    ``num_kv_heads`` KV groups and two LayerNorms per layer, the old one (7B) multi-query
    attention and one LayerNorm. No biases; tied embeddings."""
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    new_arch = bool(cfg.get("new_decoder_architecture", False))
    if new_arch:
        kv = cfg.get("num_kv_heads") or heads
    else:
        kv = 1 if cfg.get("multi_query", True) else heads
    return {"hidden_size": hidden, "num_layers": _num_layers(cfg), "num_attention_heads": heads, "num_kv_heads": kv,
            "intermediate_size": cfg.get("ffn_hidden_size") or 4 * hidden, "vocab_size": cfg["vocab_size"],
            "gated_mlp": False, "activation": cfg.get("activation", "gelu"), "norm": "layernorm",
            "norms_per_layer": 2 if new_arch else 1, "linear_bias": bool(cfg.get("bias", False)),
            "parallel_attention": bool(cfg.get("parallel_attn", True)),
            "qkv_bias": bool(cfg.get("bias", False)),
            "position_embedding": "alibi" if cfg.get("alibi") else "rope",
            "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", True)),
            "max_position_embeddings": cfg.get("max_position_embeddings", 2048)}


def _opt(cfg: Config) -> Config:
    """OPT: learned positions (``max_position_embeddings`` + 2 rows: OPT offsets positions by
    2), biases everywhere, ReLU MLP of ``ffn_dim``, tied embeddings."""
    if cfg.get("word_embed_proj_dim", cfg["hidden_size"]) != cfg["hidden_size"]:
        raise UnsupportedConfig("word_embed_proj_dim: only equal to hidden_size is supported (opt-350m is not)")
    return {"hidden_size": cfg["hidden_size"], "num_layers": _num_layers(cfg),
            "num_attention_heads": cfg["num_attention_heads"], "num_kv_heads": cfg["num_attention_heads"],
            "intermediate_size": cfg["ffn_dim"], "vocab_size": cfg["vocab_size"], "gated_mlp": False,
            "activation": cfg.get("activation_function", "relu"), "norm": "layernorm",
            "linear_bias": bool(cfg.get("enable_bias", True)), "position_embedding": "learned",
            "max_position_embeddings": cfg["max_position_embeddings"] + 2,
            "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", True))}


def _gpt_neox(cfg: Config) -> Config:
    """GPT-NeoX (Pythia, GPT-NeoX-20B): biases everywhere, partial rotary, untied embeddings."""
    return {"hidden_size": cfg["hidden_size"], "num_layers": _num_layers(cfg),
            "num_attention_heads": cfg["num_attention_heads"], "num_kv_heads": cfg["num_attention_heads"],
            "intermediate_size": cfg["intermediate_size"], "vocab_size": cfg["vocab_size"], "gated_mlp": False,
            "activation": cfg.get("hidden_act", "gelu"), "norm": "layernorm",
            "linear_bias": bool(cfg.get("attention_bias", True)), "qkv_bias": bool(cfg.get("attention_bias", True)),
            "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", False)),
            "max_position_embeddings": cfg.get("max_position_embeddings", 0)}


def _bloom(cfg: Config) -> Config:
    """BLOOM: ALiBi (no position parameters), a LayerNorm after the embedding, biases
    everywhere, tied embeddings, 4x GELU MLP."""
    hidden = cfg.get("hidden_size") or cfg["n_embed"]
    heads = cfg.get("n_head") or cfg["num_attention_heads"]
    return {"hidden_size": hidden, "num_layers": _num_layers(cfg, "n_layer"), "num_attention_heads": heads,
            "num_kv_heads": heads, "intermediate_size": 4 * hidden, "vocab_size": cfg["vocab_size"],
            "gated_mlp": False, "activation": "gelu", "norm": "layernorm", "linear_bias": True, "qkv_bias": True,
            "embedding_norm": True, "position_embedding": "alibi",
            "tie_word_embeddings": bool(cfg.get("tie_word_embeddings", True))}


#: Hugging Face ``model_type`` values that load directly, and how.
HF_ARCHITECTURES: dict[str, Callable[[Config], Config]] = {
    "llama": _llama_like,
    "mistral": _mistral,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "phi3": _phi3,
    "phi3small": _phi3,
    "mixtral": _mixtral,
    "qwen3_moe": _qwen3_moe,
    "qwen3_next": _qwen3_next,
    "qwen3_5": _qwen3_next,
    "qwen3_5_text": _qwen3_next,
    "qwen3_5_moe": _qwen3_next,
    "qwen3_5_moe_text": _qwen3_next,
    "deepseek_v3": _deepseek_v3,
    "deepseek_v32": _deepseek_v3,
    "kimi_k2": _deepseek_v3,
    "kimi_k25": _deepseek_v3,
    "glm_moe_dsa": _deepseek_v3,
    "glm4_moe": _glm4_moe,
    "gpt_oss": _gpt_oss,
    "minimax_m2": _minimax_m2,
    "llama4": _llama4,
    "llama4_text": _llama4,
    "gemma2": _gemma,
    "gemma3": _gemma,
    "gemma3_text": _gemma,
    "gptj": _gptj,
    "falcon": _falcon,
    "opt": _opt,
    "gpt_neox": _gpt_neox,
    "bloom": _bloom,
}


def hf_fields(cfg: Config) -> Config:
    """The spec fields of a parsed ``config.json`` (raises KeyError for a missing key,
    UnsupportedConfig for a value the spec format cannot express)."""
    return HF_ARCHITECTURES[cfg["model_type"]](cfg)
