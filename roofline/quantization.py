"""The precision a Hugging Face checkpoint ships in, read from its ``quantization_config``.

Handled (anything else is a SpecError naming the field):

- ``quant_method: mxfp4`` (gpt-oss): MXFP4 weights, dequantised for bf16 GEMMs (weight-only),
  on every linear layer except ``modules_to_not_convert``.
- ``quant_method: fp8`` (DeepSeek-V3, Qwen3-FP8): W8A8 FP8 (128x128 block scales, negligible bytes).
- ``quant_method: modelopt`` (NVIDIA ModelOpt, e.g. ``nvidia/*-FP4``): ``quant_algo`` NVFP4 (W4A4)
  or FP8 (W8A8), ``kv_cache_quant_algo`` FP8/NVFP4, ``exclude_modules``.
- ``quant_method: compressed-tensors`` (llm-compressor): the ``weights`` / ``input_activations``
  of the first config group (float 4 bits in groups of 16: NVFP4, of 32: MXFP4; float 8: FP8;
  int 4 / 8), ``kv_cache_scheme``, ``ignore``.
- ``quant_method: awq | gptq``: ``bits`` 4 or 8, weight-only.

Excluded modules are mapped to the operator classes of :data:`roofline.workload.OP_CLASSES`
(``self_attn`` -> attention, ``router``/``mlp.gate`` -> router, ``embed_tokens`` -> embedding,
``lm_head``, ``shared_expert`` -> shared_experts, ``experts`` -> experts, ``mlp`` -> mlp and
shared experts) and kept in bf16.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roofline.exceptions import SpecError

__all__ = ["Quantization", "parse_quantization_config", "QUANT_METHODS"]

QUANT_METHODS = ("mxfp4", "fp8", "modelopt", "compressed-tensors", "awq", "gptq")
#: Module-name fragments of HF checkpoints and the operator classes they hold (first match wins).
_MODULE_CLASSES = (
    (r"lm_head", ("lm_head",)),
    (r"embed", ("embedding",)),
    (r"shared_expert", ("shared_experts",)),
    (r"router|mlp\.gate\b|block_sparse_moe\.gate\b", ("router",)),
    (r"experts", ("experts",)),
    (r"self_attn|attention|attn", ("attention",)),
    (r"mlp|feed_forward", ("mlp", "shared_experts")),
)
_MODELOPT_ALGOS = {"NVFP4": ("nvfp4", "nvfp4"), "FP8": ("fp8", "fp8"), "MXFP4": ("mxfp4", "mxfp4")}
_KV_ALGOS = {"FP8": "fp8", "NVFP4": "nvfp4"}


@dataclass(frozen=True)
class Quantization:
    """A checkpoint's precision: default weight and activation dtypes, the KV cache when the
    checkpoint sets it, and bf16 classes the quantisation leaves out."""

    method: str
    weight_dtype: str
    activation_dtype: str
    kv_dtype: str | None = None
    op_dtypes: tuple[tuple[str, str, str], ...] = ()  # (class, weight, activation), sorted

    def label(self) -> str:
        kept = ", ".join(c for c, _, _ in self.op_dtypes)
        return f"{self.method}: {self.weight_dtype} weights, {self.activation_dtype} activations" + (
            f" ({kept} in bf16)" if kept else "")


def _classes(modules: Any, where: str) -> tuple[str, ...]:
    if modules is None:
        return ()
    if not isinstance(modules, list) or not all(isinstance(m, str) for m in modules):
        raise SpecError(f"{where}: expected a list of module names")
    found: list[str] = []
    for module in modules:
        for pattern, classes in _MODULE_CLASSES:
            if re.search(pattern, module):
                found.extend(c for c in classes if c not in found)
                break
    return tuple(found)


def _float_or_int(scheme: Mapping[str, Any], where: str) -> str:
    """A compressed-tensors quantisation scheme as one of our formats."""
    bits, kind = scheme.get("num_bits"), scheme.get("type", "int")
    group = scheme.get("group_size")
    formats = {("float", 8): "fp8", ("int", 8): "int8", ("int", 4): "int4",
               ("float", 4): "mxfp4" if group == 32 else "nvfp4"}
    if (kind, bits) not in formats:
        raise SpecError(f"{where}: num_bits {bits!r} with type {kind!r} is not supported "
                        f"(supported: float 8, float 4, int 8, int 4)")
    return formats[(kind, bits)]


def _compressed_tensors(cfg: Mapping[str, Any], where: str) -> tuple[str, str, str | None, Any]:
    groups = cfg.get("config_groups")
    if not isinstance(groups, Mapping) or not groups:
        raise SpecError(f"{where}.config_groups: missing or empty")
    name, group = next(iter(groups.items()))
    if not isinstance(group, Mapping) or not isinstance(group.get("weights"), Mapping):
        raise SpecError(f"{where}.config_groups.{name}.weights: missing")
    weight = _float_or_int(group["weights"], f"{where}.config_groups.{name}.weights")
    acts = group.get("input_activations")
    act = _float_or_int(acts, f"{where}.config_groups.{name}.input_activations") if acts else "bf16"
    kv_scheme = cfg.get("kv_cache_scheme")
    kv = _float_or_int(kv_scheme, f"{where}.kv_cache_scheme") if kv_scheme else None
    return weight, act, kv, cfg.get("ignore")


def parse_quantization_config(cfg: Any, file: Path | str = "<config>") -> Quantization:
    """The :class:`Quantization` of a HF ``quantization_config`` mapping.

    Raises:
        SpecError: an unknown ``quant_method`` or an unsupported scheme (names the file and field).
    """
    where = f"{file}: quantization_config"
    if not isinstance(cfg, Mapping):
        raise SpecError(f"{where}: expected a mapping")
    method = str(cfg.get("quant_method", "")).lower()
    kv: str | None = None
    if method == "mxfp4":
        weight, act, excluded = "mxfp4", "bf16", cfg.get("modules_to_not_convert")
    elif method == "fp8":
        weight, act, excluded = "fp8", "fp8", cfg.get("modules_to_not_convert") or cfg.get("ignored_layers")
    elif method == "modelopt":
        algo = str(cfg.get("quant_algo", "")).upper()
        if algo not in _MODELOPT_ALGOS:
            raise SpecError(f"{where}.quant_algo: {algo or None!r} is not supported; "
                            f"supported: {', '.join(_MODELOPT_ALGOS)}")
        weight, act = _MODELOPT_ALGOS[algo]
        kv_algo = cfg.get("kv_cache_quant_algo")
        if kv_algo is not None and str(kv_algo).upper() not in _KV_ALGOS:
            raise SpecError(f"{where}.kv_cache_quant_algo: {kv_algo!r} is not supported; "
                            f"supported: {', '.join(_KV_ALGOS)}")
        kv = _KV_ALGOS[str(kv_algo).upper()] if kv_algo is not None else None
        excluded = cfg.get("exclude_modules") or cfg.get("ignore")
    elif method == "compressed-tensors":
        weight, act, kv, excluded = _compressed_tensors(cfg, where)
    elif method in ("awq", "gptq"):
        bits = cfg.get("bits", cfg.get("w_bit"))
        if bits not in (4, 8):
            raise SpecError(f"{where}.bits: {bits!r} is not supported; supported: 4, 8")
        weight, act, excluded = ("int4" if bits == 4 else "int8"), "bf16", cfg.get("modules_to_not_convert")
    else:
        raise SpecError(f"{where}.quant_method: {method or None!r} is not supported; "
                        f"supported: {', '.join(QUANT_METHODS)}")
    kept = _classes(excluded, f"{where}: excluded modules")
    return Quantization(method, weight, act, kv, tuple(sorted((c, "bf16", "bf16") for c in kept)))
