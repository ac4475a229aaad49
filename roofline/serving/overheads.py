"""Fitted software overheads per framework (the default of ``roofline serve``), with provenance.

Per framework: ``step_overhead_ms`` (scheduler, sampling, detokenisation, launch gaps: added to
every engine step), ``seq_overhead_us`` (per running sequence per step: per-request scheduling,
sampling and detokenisation work on the CPU), ``request_overhead_ms`` (API server and tokenisation: a request becomes
schedulable that long after it arrives), ``decode_scale`` (measured over modelled time of a step
without prefill chunks) and ``prefill_scale`` (the same for what prefill chunks add to a step:
kernels below their roofline, chunked-prefill attention) and ``moe_prefill_scale`` (a further
factor on the prefill part of mixture-of-experts models: their grouped expert GEMMs in prefill run
about 3x below the dense-GEMM efficiency at the same rows per expert, consistently in every
framework's data; :meth:`~roofline.fitted.SoftwareOverheads.for_model` applies it) and
``tp_step_overhead_ms`` (per step and per tensor-parallel worker beyond the first: the engine hands
every step's schedule to each worker process; :meth:`~roofline.fitted.SoftwareOverheads.for_parallelism`
adds ``(tp - 1)`` of it to ``step_overhead_ms``, as :class:`~roofline.serving.ServingSetup` and every
evaluator do). They are fitted by
``roofline.validation.fit_serving`` on ``../shared/validation`` only and shipped in
``serving_specs/fitted_overheads.yaml``; ``datasheet=True`` (``--datasheet``) uses none of them.

:class:`Overheads` is :class:`roofline.fitted.SoftwareOverheads` (the one reader of that file and its
checks) with the ``source`` serving summaries print.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from roofline.exceptions import SpecError
from roofline.fitted import OVERHEADS_FILE, SoftwareOverheads, load_software_overheads

__all__ = ["Overheads", "OVERHEADS_FILE", "load_overheads", "DATASHEET", "overheads_provenance"]


@dataclass(frozen=True)
class Overheads(SoftwareOverheads):
    """Software overheads of one framework (see the module doc), with where they come from."""

    source: str = "datasheet: no software overheads"


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
    """The fitted overheads of ``framework`` as :func:`roofline.fitted.load_software_overheads`
    reads them (datasheet values when the file has none for it)."""
    p = Path(path or OVERHEADS_FILE)
    if framework not in (_read(str(p)).get("frameworks") or {}):
        return DATASHEET
    fitted = load_software_overheads(framework, p)
    return Overheads(**asdict(fitted), source=f"fitted: {p.name} ({framework})")
