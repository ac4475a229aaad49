"""Collective calibration carried to data it never saw: one dataset or one device left out.

The size split of :mod:`roofline.validation._split` holds out every other message size of a
device whose other sizes were fitted: it tests interpolation. Two stricter tests:

- :func:`leave_one_dataset_out`: a device's collectives of one dataset (nccl-tests, TensorRT-LLM
  custom all-reduce, vidur's torch.distributed, llmcompass, the 2-node run) predicted from the
  device's fit on its other datasets; what that fit has no key for falls back on its global
  values (``link_latency_us``, ``link_efficiency``, inter-node) or the datasheet.
- :func:`leave_one_device_out`: a device predicted from the other devices' fits only. Each donor
  device is fitted on all its collective rows
  (:func:`~roofline.validation._stage_collectives.stage_collectives`); the held-out device takes,
  per fitted key (collective, library, scope, GPU count, size regime):

- efficiencies relative to each donor's datasheet value (``link_efficiency`` over the spec's
  link efficiency, ``inter_node_bandwidth_GBps`` over the spec's NIC rate), times its own;
- latencies and launch costs as they are (NCCL's and the kernels' software costs, in us);
- the median over the donors that fitted the key (a size regime where most donors have one,
  at the most common threshold).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec, load_hardware
from roofline.validation._predict import COLLECTIVE_KINDS
from roofline.validation._predict_cases import predict_all
from roofline.validation._stage_collectives import stage_collectives

__all__ = ["transfer_collectives", "leave_one_device_out", "leave_one_dataset_out"]

#: Fitted values carried relative to the datasheet value (name -> the spec's value, same unit).
_RELATIVE = {
    "link_efficiency": lambda spec: spec.intra_node.efficiency,
    "inter_node_bandwidth_GBps": lambda spec: spec.inter_node.link_bandwidth_Bps / 1e9,
}


def _carry(name: str, values: Sequence[float], donors: Sequence[HardwareSpec], target: HardwareSpec) -> float:
    """The median of the donors' values, relative to their datasheet value when :data:`_RELATIVE`
    (an efficiency carried above 1 stops at 1: no link runs above its line rate)."""
    if name in _RELATIVE:
        ratios = [v / _RELATIVE[name](s) for v, s in zip(values, donors)]
        value = float(np.median(ratios) * _RELATIVE[name](target))
        return min(value, 1.0) if name.endswith("efficiency") else value
    return float(np.median(values))


def _merge(entries: Sequence[Mapping[str, float]], donors: Sequence[HardwareSpec],
           target: HardwareSpec) -> dict[str, float]:
    names = sorted({k for e in entries for k in e if not k.startswith("_")})
    out = {}
    for name in names:
        have = [(e[name], s) for e, s in zip(entries, donors) if name in e]
        out[name] = _carry(name, [v for v, _ in have], [s for _, s in have], target)
    return out


def transfer_collectives(target: HardwareSpec, fitted: Mapping[str, tuple[HardwareSpec, Mapping[str, Any]]]
                         ) -> dict[str, Any]:
    """Collective params for ``target`` from other devices' fits (``{device: (spec, params)}``).

    Returns a params mapping (``overrides`` and ``per_kind``) as :func:`stage_collectives` makes.
    A key is carried from the donors that fitted it; a per-GPU-count key takes a size regime
    (``_large_from_bytes`` and its ``:large`` entry) when most of those donors have one, at their
    most common threshold; a donor without a regime lends its one set to both sides.
    """
    donors = [spec for spec, _ in fitted.values()]
    params = [p for _, p in fitted.values()]
    overrides = _merge([p.get("overrides", {}) for p in params], donors, target)
    per_kind: dict[str, dict[str, float]] = {}
    keys = sorted({k for p in params for k in p.get("per_kind", {})
                   if k.split(":")[0] in COLLECTIVE_KINDS and not k.endswith(":large")})
    for key in keys:
        have = [(p["per_kind"], s) for p, s in zip(params, donors) if key in p["per_kind"]]
        entries, specs = [k[key] for k, _ in have], [s for _, s in have]
        per_kind[key] = _merge(entries, specs, target)
        thresholds = [e["_large_from_bytes"] for e in entries if "_large_from_bytes" in e]
        if len(thresholds) * 2 > len(entries):
            per_kind[key]["_large_from_bytes"] = Counter(thresholds).most_common(1)[0][0]
            large = [k.get(f"{key}:large", k[key]) for k, _ in have]
            per_kind[f"{key}:large"] = _merge(large, specs, target)
    return {"overrides": overrides, "per_kind": per_kind}


def leave_one_device_out(cases: pd.DataFrame, devices: Sequence[str]) -> pd.DataFrame:
    """Collective cases of ``devices`` with ``predicted_transfer``: each device predicted from the
    fits of the others (each fitted on all its collective rows), never from its own rows."""
    collective = cases[cases["kind"].isin(COLLECTIVE_KINDS) & cases["device"].isin(devices)]
    specs = {d: load_hardware(d) for d in devices}
    fits = {d: (specs[d], stage_collectives(specs[d], collective[collective["device"] == d], {"overrides": {}}))
            for d in devices}
    out = []
    for d in devices:
        mine = collective[collective["device"] == d].reset_index(drop=True)
        params = transfer_collectives(specs[d], {k: v for k, v in fits.items() if k != d})
        out.append(mine.assign(predicted_transfer=predict_all(mine, {d: params})))
    return pd.concat(out, ignore_index=True)


def leave_one_dataset_out(cases: pd.DataFrame, devices: Sequence[str]) -> pd.DataFrame:
    """Collective cases of ``devices`` with ``predicted_transfer``: each dataset of a device
    predicted from the device's fit on its other datasets (all their sizes)."""
    collective = cases[cases["kind"].isin(COLLECTIVE_KINDS) & cases["device"].isin(devices)]
    out = []
    for (device, dataset), mine in collective.groupby(["device", "dataset"]):
        spec = load_hardware(device)
        others = collective[(collective["device"] == device) & (collective["dataset"] != dataset)]
        params = stage_collectives(spec, others, {"overrides": {}})
        mine = mine.reset_index(drop=True)
        out.append(mine.assign(predicted_transfer=predict_all(mine, {device: params})))
    return pd.concat(out, ignore_index=True)
