"""Fitted software overheads per framework (the default of ``roofline serve``), with provenance.

Per framework: ``step_overhead_ms`` (scheduler, sampling, detokenisation, launch gaps: added to
every engine step), ``seq_overhead_us`` (per running sequence per step: per-request scheduling,
sampling and detokenisation work on the CPU), ``request_overhead_ms`` (API server and tokenisation: a request becomes
schedulable that long after it arrives), ``decode_scale`` (measured over modelled time of a step
without prefill chunks) and ``prefill_scale`` (the same for what prefill chunks add to a step:
kernels below their roofline, chunked-prefill attention) and ``moe_prefill_scale`` (a further
factor on the prefill part of mixture-of-experts models: their grouped expert GEMMs in prefill run
about 3x below the dense-GEMM efficiency at the same rows per expert, consistently in every
framework's data; :meth:`Overheads.for_model` applies it). They are fitted by
``roofline.validation.fit_serving`` on ``../shared/validation`` only and shipped in
``serving_specs/fitted_overheads.yaml``; ``datasheet=True`` (``--datasheet``) uses none of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from roofline.exceptions import SpecError
from roofline.model import ModelSpec

__all__ = ["Overheads", "OVERHEADS_FILE", "load_overheads", "DATASHEET", "overheads_provenance"]

OVERHEADS_FILE = Path(__file__).resolve().parents[2] / "serving_specs" / "fitted_overheads.yaml"
_FIELDS = ("step_overhead_ms", "seq_overhead_us", "request_overhead_ms", "decode_scale", "prefill_scale",
           "moe_prefill_scale")


@dataclass(frozen=True)
class Overheads:
    """Software overheads of one framework (see the module doc)."""

    step_overhead_ms: float = 0.0
    seq_overhead_us: float = 0.0
    request_overhead_ms: float = 0.0
    decode_scale: float = 1.0
    prefill_scale: float = 1.0
    moe_prefill_scale: float = 1.0
    source: str = "datasheet: no software overheads"

    def for_model(self, model: ModelSpec) -> Overheads:
        """These overheads as they apply to ``model``: a mixture-of-experts model's prefill scale
        is ``prefill_scale x moe_prefill_scale`` (then ``moe_prefill_scale`` is 1)."""
        if model.moe is None or self.moe_prefill_scale == 1.0:
            return self
        return replace(self, prefill_scale=self.prefill_scale * self.moe_prefill_scale, moe_prefill_scale=1.0)

    @property
    def step_overhead_s(self) -> float:
        return self.step_overhead_ms * 1e-3

    @property
    def seq_overhead_s(self) -> float:
        return self.seq_overhead_us * 1e-6

    @property
    def request_overhead_s(self) -> float:
        return self.request_overhead_ms * 1e-3


DATASHEET = Overheads()


@lru_cache(maxsize=4)
def _read(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        return {}
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise SpecError(f"{p}: expected a mapping with 'frameworks' and 'provenance'")
    return data


def overheads_provenance(path: str | Path | None = None) -> dict[str, Any]:
    return dict(_read(str(path or OVERHEADS_FILE)).get("provenance") or {})


def load_overheads(framework: str, path: str | Path | None = None) -> Overheads:
    """The fitted overheads of ``framework`` (datasheet values when the file has none for it)."""
    p = str(path or OVERHEADS_FILE)
    entry = (_read(p).get("frameworks") or {}).get(framework)
    if entry is None:
        return DATASHEET
    bad = [k for k in entry if k not in _FIELDS + ("train_rows",)]
    if bad:
        raise SpecError(f"{p}: frameworks.{framework}.{bad[0]}: unknown key; allowed: {', '.join(_FIELDS)}")
    values = {k: float(entry[k]) for k in _FIELDS if k in entry}
    return Overheads(**values, source=f"fitted: {Path(p).name} ({framework})")
