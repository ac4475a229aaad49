"""Which model a prediction uses: the fitted model by default, the raw datasheet roofline on request.

The **fitted model** is

- the device's **calibrated profile** where one ships (``hardware_specs/calibrated/<device>.yaml``:
  GEMM and HBM efficiency, the small-GEMM curve, launch overhead, collective latency and link
  efficiency fitted by ``roofline calibrate`` on ``../shared/validation``; docs/validation.md), else
  its datasheet spec;
- the **software overheads** of a serving framework (``serving_specs/fitted_overheads.yaml``,
  fitted by ``roofline.validation.fit_serving``; framework ``any``, fitted on every framework's
  rows, unless one is named; docs/serving.md).

A static prediction applies the overheads with the definitions of the serving model
(:mod:`roofline.serving.analytic`), for a batch of ``B`` sequences per replica::

    TTFT        = request overhead + prefill_scale x prefill pass + step overhead + B x sequence overhead
    decode step = decode_scale x roofline decode step              + step overhead + B x sequence overhead

(``prefill_scale`` times ``moe_prefill_scale`` for a mixture-of-experts model; the step overhead
includes ``(tp - 1) x tp_step_overhead_ms``, :meth:`SoftwareOverheads.for_parallelism`). ``datasheet=True``
(``--datasheet``) is the raw roofline: the device spec as written and no overheads. A device spec
that differs from the bundled one of its name (a file of your own, an edited spec, a calibrated
spec already) is used as given, with the overheads.

The calibrated profiles and the overheads file are read here (the validation stage writes them);
:mod:`roofline.serving.overheads` and ``roofline.serve`` use this reader and :func:`fitted_model`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from roofline._specfile import PROJECT_ROOT, read_yaml
from roofline.collectives import VLLM_SWITCH, CustomSwitch, collective_time_s, trtllm_switch
from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec, list_hardware, load_hardware, with_network
from roofline.model import ModelSpec
from roofline.registry import with_values
from roofline.timing import SWEEPABLE, HardwareArrays
from roofline.workload import DEFAULT_FRAMEWORK, FRAMEWORKS

__all__ = ["FRAMEWORKS", "DEFAULT_FRAMEWORK", "DEFAULT_CHOICE", "OVERHEADS_FILE", "PROFILE_DIR", "SoftwareOverheads", "ModelChoice",
           "FittedModel", "fitted_model", "describe", "load_software_overheads", "list_profiles", "profile_path", "load_profile",
           "apply_overrides", "calibrated_hardware", "TRTLLM_ALLREDUCE_KEY", "calibrated_allreduce", "kind_overrides",
           "collective_keys", "large_from_bytes", "custom_switch", "capped_below_switch", "switched_collective_s", "profile_being_fitted"]

#: Where the calibrated profiles ship.
PROFILE_DIR = PROJECT_ROOT / "hardware_specs" / "calibrated"
#: The fitted software overheads per framework (also read by ``roofline serve``).
OVERHEADS_FILE = PROJECT_ROOT / "serving_specs" / "fitted_overheads.yaml"
_OVERHEAD_FIELDS = ("step_overhead_ms", "seq_overhead_us", "request_overhead_ms", "decode_scale", "prefill_scale",
                    "moe_prefill_scale", "tp_step_overhead_ms")


# --- calibrated profiles -------------------------------------------------------------------------

def profile_path(device: str | Path) -> Path:
    """The profile file of a bundled device name, or ``device`` itself when it is a YAML path."""
    text = str(device)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text).expanduser()
    return PROFILE_DIR / f"{text.lower()}.yaml"


#: Profiles being fitted (``roofline calibrate``), by device name: read in place of the file.
_FITTING: dict[str, dict[str, Any]] = {}


def list_profiles() -> list[str]:
    """Devices with a shipped calibrated profile (or one being fitted)."""
    shipped = {p.stem for p in PROFILE_DIR.glob("*.yaml")} if PROFILE_DIR.is_dir() else set()
    return sorted(shipped | set(_FITTING))


@contextmanager
def profile_being_fitted(device: str, profile: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, :func:`load_profile` of ``device`` returns ``profile`` instead of its file.

    ``roofline calibrate``'s serving stage simulates the device with what the stages before it
    just fitted; the parts of the serving step that read the profile by name (TensorRT-LLM's
    all-reduce, :func:`calibrated_allreduce`) must see those values too, not the file's older
    ones, or a recalibration would take two passes to reproduce itself."""
    name = str(device).lower()
    _FITTING[name] = dict(profile)
    _clear_profile_caches()
    try:
        yield
    finally:
        _FITTING.pop(name, None)
        _clear_profile_caches()


def _clear_profile_caches() -> None:
    for cached in (_has_entry, _allreduce_group, _allreduce_arrays, _calibrated):
        cached.cache_clear()


def load_profile(device: str | Path) -> dict[str, Any]:
    """The calibrated profile of ``device`` as a dict (fitted values named as
    :data:`roofline.timing.SWEEPABLE`, ``efficiency_curve_m``, provenance and errors).

    Raises:
        SpecError: no profile for this device, or the file is malformed.
    """
    if str(device).lower() in _FITTING:
        return _FITTING[str(device).lower()]
    path = profile_path(device)
    if not path.is_file():
        have = ", ".join(list_profiles()) or "none"
        raise SpecError(f"no calibrated profile for {device} ({path} not found; shipped: {have}); "
                        f"run `roofline calibrate --hardware {device}`")
    data = read_yaml(path)
    for key in SWEEPABLE:
        if key in data and not isinstance(data[key], (int, float)):
            raise SpecError(f"{path}: {key}: expected a number, got {data[key]!r}")
    curve = data.get("efficiency_curve_m")
    if curve is not None and not (isinstance(curve, list) and all(
            isinstance(p, list) and len(p) == 2 for p in curve)):
        raise SpecError(f"{path}: efficiency_curve_m: expected a list of [m, efficiency] pairs")
    return data


def apply_overrides(spec: HardwareSpec, overrides: Mapping[str, float],
                    curve: Sequence[Sequence[float]] | None = None) -> HardwareSpec:
    """``spec`` with SWEEPABLE-named ``overrides`` (and an efficiency curve) written into its blocks.

    Every device parameter of the registry is written where the spec keeps it
    (:func:`roofline.registry.with_values`), so that ``predict(model, apply_overrides(spec, o))``
    equals ``predict(model, spec, **o)``; prefetch settings belong to the scenario and are refused.
    """
    HardwareArrays.from_spec(spec, 1, **dict(overrides))  # the checks predict applies to overrides
    spec = with_values(spec, **dict(overrides))
    if curve:
        spec = replace(spec, compute=replace(spec.compute, efficiency_curve_m=tuple(
            (float(m), float(e)) for m, e in curve)))
    return spec


def calibrated_hardware(device: str | Path) -> HardwareSpec:
    """The bundled spec of ``device`` with its calibrated profile applied (curve included)."""
    data = load_profile(device)
    spec = load_hardware(data.get("name") or str(device))
    overrides = {k: float(data[k]) for k in SWEEPABLE if k in data}
    return apply_overrides(spec, overrides, data.get("efficiency_curve_m"))


#: The calibrated profiles' entry for TensorRT-LLM's own ``AllReduce`` op (strategy AUTO: its
#: one-shot / two-shot kernels or NCCL), fitted per group size (``:n<GPUs>``, and ``:large`` from
#: ``_large_from_bytes`` on) on aiconfigurator/trtllm_custom_allreduce.csv.
TRTLLM_ALLREDUCE_KEY = "allreduce:trtllm_custom:intra"


def calibrated_allreduce(spec: HardwareSpec, key: str = TRTLLM_ALLREDUCE_KEY) -> AllReduceFit | None:
    """The all-reduce ``key`` of the calibrated profile of ``spec``'s device, as ``roofline
    calibrate`` fitted and checked it, for a calibrated spec of the device: None for the datasheet
    spec as written (the raw roofline), a device without a shipped profile or without the entry,
    and a spec whose node has other wires than the measured one (link bandwidth, links per device,
    topology, devices per node). A spec being calibrated (``roofline calibrate``'s serving stage)
    counts as calibrated, so that the errors it records are the ones ``validate`` finds."""
    if spec.name not in list_profiles() or not _has_entry(spec.name, key):
        return None
    datasheet = _bundled(spec.name)
    if datasheet is None or spec == datasheet or not _same_wires(spec, datasheet):
        return None
    return AllReduceFit(spec.name, key)


def _same_wires(a: HardwareSpec, b: HardwareSpec) -> bool:
    x, y = a.intra_node, b.intra_node
    return (x.topology, x.link_bandwidth_Bps, x.links_per_device, a.devices_per_node) == \
        (y.topology, y.link_bandwidth_Bps, y.links_per_device, b.devices_per_node)


@lru_cache(maxsize=64)
def _has_entry(device: str, key: str) -> bool:
    return key in (load_profile(device).get("per_kind") or {})


@dataclass(frozen=True)
class AllReduceFit:
    """A calibrated profile's fit of one library's all-reduce, evaluated as the calibration
    harness evaluates it (``roofline.validation`` ``predict_batch``): the profile's parameters, then
    ``per_kind[key]``, ``per_kind[key:n<GPUs>]`` and, for messages of at least its
    ``_large_from_bytes``, ``per_kind[key:n<GPUs>:large]``; the custom-kernel algorithm choice of
    :func:`roofline.collectives.collective_time_s` where :func:`custom_switch` puts it, plus a
    launch; below the switch at most the ``:large`` time at it (:func:`capped_below_switch`)."""

    device: str
    key: str

    def time_s(self, size_bytes: float, n: int) -> float | None:
        """Seconds of one all-reduce of ``size_bytes`` over ``n`` devices; None for a group size
        the profile has no fit for."""
        fitted, threshold = _allreduce_group(self.device, self.key, int(n))
        if not fitted:
            return None
        t = switched_collective_s(self.key, np.array([float(size_bytes)]), threshold,
                                  lambda sizes, large: self._segment_s(sizes, int(n), large, threshold))
        return float(t[0])

    def _segment_s(self, size_bytes: np.ndarray, n: int, large: bool, threshold: float | None) -> np.ndarray:
        hw = _allreduce_arrays(self.device, self.key, n, large)
        t = collective_time_s("allreduce", size_bytes, n, hw.intra(), hw.inter(),
                              hw.devices_per_node, "custom", custom_switch(self.key, n, threshold))
        return np.asarray(t, dtype=float).reshape(-1) + hw.launch_s[0]


def switched_collective_s(key: str, size_bytes: np.ndarray, large_from: float | None,
                          segment_s: Callable[[np.ndarray, bool], np.ndarray]) -> np.ndarray:
    """Seconds of collectives ``key`` of ``size_bytes`` (one group size), each in its segment:
    ``segment_s(sizes, large)`` times sizes below ``large_from`` (:func:`large_from_bytes`) with the
    group's entry and sizes from it with its ``:large`` entry; below the switch, at most the large
    segment's time at it where :func:`capped_below_switch` says so. The serving path
    (:class:`AllReduceFit`, the profile on disk) and the calibration harness (the parameters being
    fitted) both evaluate a fit with this, so the two cannot drift apart."""
    sizes = np.asarray(size_bytes, dtype=float).reshape(-1)
    large = sizes >= large_from if large_from is not None else np.zeros(sizes.shape, dtype=bool)
    t = np.empty(sizes.shape)
    if large.any():
        t[large] = segment_s(sizes[large], True)
    if (~large).any():
        small = segment_s(sizes[~large], False)
        if capped_below_switch(key, large_from):
            small = np.minimum(small, segment_s(np.array([float(large_from)]), True))
        t[~large] = small
    return t


@lru_cache(maxsize=64)
def _allreduce_group(device: str, key: str, n: int) -> tuple[bool, float | None]:
    """(whether the profile fitted group ``n``, the size from which its ``:large`` entry applies)."""
    per_kind = load_profile(device).get("per_kind") or {}
    return per_kind.get(f"{key}:n{n}") is not None, large_from_bytes(per_kind, key, n)


@lru_cache(maxsize=64)
def _allreduce_arrays(device: str, key: str, n: int, large: bool) -> HardwareArrays:
    overrides = kind_overrides(load_profile(device).get("per_kind") or {}, collective_keys(key, n, large))
    return HardwareArrays.from_spec(_calibrated(device), 1, prefetch=False, **overrides)


def kind_overrides(per_kind: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The parameters of a profile's ``per_kind`` entries ``keys``, applied in order (a later entry
    wins); names starting with ``_`` are the fit's own settings (thresholds, tiles), not parameters."""
    out: dict[str, Any] = {}
    for key in keys:
        out.update({k: v for k, v in (per_kind.get(key) or {}).items() if not k.startswith("_")})
    return out


def collective_keys(key: str, n: int, large: bool = False) -> tuple[str, ...]:
    """The ``per_kind`` entries a collective of kind ``key`` over ``n`` devices takes, in order:
    the kind's, the group size's and, for a message at least :func:`large_from_bytes`, the group
    size's ``:large`` entry (NCCL's algorithm by GPU count and protocol by size, as calibrated)."""
    return (key, f"{key}:n{n}") + ((f"{key}:n{n}:large",) if large else ())


def custom_switch(key: str, n: int, large_from: float | None) -> CustomSwitch:
    """Where the custom all-reduce of collective ``key`` over ``n`` devices changes kernel, as
    calibrated: TensorRT-LLM's (``:trtllm_custom:``) runs one-shot below the group size's
    ``:large`` segment and two-shot from it (its AUTO table switches by size, not at vLLM's
    sizes), NCCL above its workspace; any other key, vLLM's sizes."""
    return trtllm_switch(n, large_from) if ":trtllm_custom:" in key else VLLM_SWITCH


def capped_below_switch(key: str, large_from: float | None) -> bool:
    """Whether a collective ``key`` below its ``:large`` segment takes at most the large
    segment's time at the switch: TensorRT-LLM's, whose AUTO strategy switches kernel where it
    measured the other to be faster, so more bytes are never faster (its one-shot segment,
    extrapolated past the last size it was fitted on, would otherwise exceed the two-shot time)."""
    return large_from is not None and ":trtllm_custom:" in key


def large_from_bytes(per_kind: Mapping[str, Any], key: str, n: int) -> float | None:
    """The message size (bytes) from which a collective of kind ``key`` over ``n`` devices takes its
    ``:large`` entry; None when the group size has none."""
    threshold = (per_kind.get(f"{key}:n{n}") or {}).get("_large_from_bytes")
    return None if threshold is None else float(threshold)


@lru_cache(maxsize=32)
def _bundled(name: str) -> HardwareSpec | None:
    return load_hardware(name) if name in list_hardware() else None


@lru_cache(maxsize=32)
def _calibrated(name: str) -> HardwareSpec:
    return calibrated_hardware(name)


# --- software overheads --------------------------------------------------------------------------

def extra_tp_workers(tp: Any) -> np.ndarray:
    """TP workers beyond the first (``tp - 1``, 0 at TP 1; broadcasts): what the per-step cost of
    the TP workers (``SoftwareOverheads.tp_step_overhead_ms``) multiplies, here and in the fit."""
    return np.maximum(np.asarray(tp, dtype=float), 1.0) - 1.0


@dataclass(frozen=True)
class SoftwareOverheads:
    """Fitted software overheads of one framework (the fields of ``serving_specs/fitted_overheads.yaml``)."""

    step_overhead_ms: float = 0.0  # per engine step: scheduler, sampling, launch gaps
    seq_overhead_us: float = 0.0  # per running sequence per step
    request_overhead_ms: float = 0.0  # per request: API server, tokenisation
    decode_scale: float = 1.0  # measured over modelled time of a decode step
    prefill_scale: float = 1.0  # the same for prefill work
    moe_prefill_scale: float = 1.0  # a further factor on the prefill of mixture-of-experts models
    tp_step_overhead_ms: float = 0.0  # per engine step and per TP worker beyond the first

    def for_model(self, model: ModelSpec) -> SoftwareOverheads:
        """As they apply to ``model``: an MoE model's prefill scale is ``prefill_scale x moe_prefill_scale``."""
        if model.moe is None or self.moe_prefill_scale == 1.0:
            return self
        return replace(self, prefill_scale=self.prefill_scale * self.moe_prefill_scale, moe_prefill_scale=1.0)

    def for_parallelism(self, tp: int) -> SoftwareOverheads:
        """As they apply to a TP group of ``tp`` devices: each step also pays
        ``tp_step_overhead_ms`` per TP worker beyond the first (the engine hands every step's
        schedule to each worker process and the ranks start the step apart: vllm-project/vllm
        PR 9856, issue 5792), folded into ``step_overhead_ms`` (idempotent)."""
        if self.tp_step_overhead_ms == 0.0:
            return self
        return replace(self, step_overhead_ms=self.step_overhead_ms + self.tp_step_overhead_ms * float(extra_tp_workers(tp)),
                       tp_step_overhead_ms=0.0)

    @property
    def step_overhead_s(self) -> float:
        return self.step_overhead_ms * 1e-3

    @property
    def seq_overhead_s(self) -> float:
        return self.seq_overhead_us * 1e-6

    @property
    def request_overhead_s(self) -> float:
        return self.request_overhead_ms * 1e-3


def load_software_overheads(framework: str, path: str | Path | None = None) -> SoftwareOverheads:
    """The fitted overheads of ``framework`` (``any``, ``vllm``, ``sglang``, ``trtllm``).

    Raises:
        SpecError: the file is missing or malformed, or has no entry for ``framework``.
    """
    p = Path(path or OVERHEADS_FILE)
    try:
        st = p.stat()
    except OSError:
        raise SpecError(f"{p}: the fitted overheads file is missing; pass --datasheet for the raw roofline") from None
    return _overheads(framework, str(p), (st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=16)
def _overheads(framework: str, path: str, stamp: tuple[int, int]) -> SoftwareOverheads:
    """The entry of ``framework`` in the file at ``path`` as modified at ``stamp`` (cached: a
    prediction would spend a tenth of its time checking the file again)."""
    p = Path(path)
    data = read_yaml(p)
    entry = (data.get("frameworks") or {}).get(framework) if isinstance(data, dict) else None
    if not isinstance(entry, dict):
        raise SpecError(f"{p}: frameworks.{framework}: no fitted overheads for this framework")
    bad = [k for k in entry if k not in (*_OVERHEAD_FIELDS, "train_rows")]
    if bad:
        raise SpecError(f"{p}: frameworks.{framework}.{bad[0]}: unknown key; allowed: {', '.join(_OVERHEAD_FIELDS)}")
    values = {}
    for k in _OVERHEAD_FIELDS:
        if k in entry:
            v = entry[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
                raise SpecError(f"{p}: frameworks.{framework}.{k}: expected a finite number >= 0, got {v!r}")
            values[k] = float(v)
    return SoftwareOverheads(**values)


# --- the choice and its provenance ---------------------------------------------------------------

@dataclass(frozen=True)
class ModelChoice:
    """Which model to predict with: the fitted model (default) or the raw datasheet roofline."""

    datasheet: bool = False
    framework: str = DEFAULT_FRAMEWORK

    def __post_init__(self) -> None:
        if not isinstance(self.datasheet, bool):
            raise SpecError(f"datasheet: expected true or false, got {self.datasheet!r}")
        if self.framework not in FRAMEWORKS:
            raise SpecError(f"framework: {self.framework!r} is not allowed; choose one of {', '.join(FRAMEWORKS)}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> ModelChoice:
        """``datasheet`` and ``framework`` of a sweep file's ``scenario:`` block (errors name ``where``)."""
        datasheet, framework = data.get("datasheet", False), data.get("framework", DEFAULT_FRAMEWORK)
        if not isinstance(datasheet, bool):
            raise SpecError(f"{where}.datasheet: expected true or false, got {datasheet!r}")
        if framework not in FRAMEWORKS:
            raise SpecError(f"{where}.framework: {framework!r} is not allowed; choose one of {', '.join(FRAMEWORKS)}")
        return cls(datasheet, framework)

    def input_files(self, devices: Sequence[str]) -> list[Path]:
        """The fitted files predictions of ``devices`` read under this choice (for fingerprints)."""
        if self.datasheet:
            return []
        profiles = set(list_profiles())
        return [PROFILE_DIR / f"{d}.yaml" for d in dict.fromkeys(devices) if d in profiles] + [OVERHEADS_FILE]


#: The default of every command and of ``roofline.predict``: the fitted model, framework ``any``.
DEFAULT_CHOICE = ModelChoice()


@lru_cache(maxsize=64)
def _relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class FittedModel:
    """The device and overheads a prediction uses, and where they come from."""

    hardware: HardwareSpec
    overheads: SoftwareOverheads | None  # None: the raw roofline
    device_profile: str | None  # the calibrated profile file applied, or None (datasheet spec)
    framework: str | None  # the framework of the overheads, or None
    network: str | None = None  # the cluster's scale-out network over the device's (hardware.with_network)

    @property
    def kind(self) -> str:
        return "datasheet" if self.overheads is None else "fitted"

    def provenance(self) -> dict[str, Any]:
        """What the prediction used, for JSON outputs and summaries."""
        o = self.overheads
        return {
            "model": self.kind,
            "hardware": self.hardware.name,
            "device_profile": self.device_profile,
            "overheads_file": None if o is None else _relative(OVERHEADS_FILE),
            "framework": self.framework,
            "overheads": None if o is None else {k: getattr(o, k) for k in _OVERHEAD_FIELDS},
        } | ({"network": self.network} if self.network else {})

    def describe(self) -> str:
        """One line for tables and reports (:func:`describe`)."""
        return describe(self.provenance())


def describe(provenance: Mapping[str, Any]) -> str:
    """One line saying which model a :meth:`FittedModel.provenance` names."""
    name = provenance.get("hardware")
    serving = provenance.get("serving_overheads_framework")  # a sweep's serving: block
    admission = provenance.get("serving_kv_admission")
    parts = [f"the fitted overheads of {serving}"] * bool(serving) + [f"KV admission {admission}"] * bool(admission)
    extra = f"; serving columns: {', '.join(parts)}" if parts else ""
    if provenance.get("model") != "fitted":
        return f"model: datasheet roofline ({name} spec as written, no fitted overheads{extra})"
    profile = provenance.get("device_profile")
    device = f"calibrated profile {profile}" if profile else f"datasheet spec (no calibrated profile for {name})"
    return (f"model: fitted ({device}; overheads {provenance.get('overheads_file')}, framework "
            f"{provenance.get('framework')}{extra}); --datasheet for the raw roofline")


def fitted_model(hardware: HardwareSpec | str | Path, choice: ModelChoice = DEFAULT_CHOICE,
                 network: str | Path | None = None) -> FittedModel:
    """The device and overheads of ``hardware`` under ``choice`` (see the module doc); ``network``:
    a cluster's scale-out network (:func:`roofline.hardware.with_network`), applied over the profile.

    Raises:
        SpecError: unknown device or network, or a malformed profile or overheads file.
    """
    spec = load_hardware(hardware)
    profile, overheads = None, None
    if not choice.datasheet:
        if spec.name in list_profiles() and spec == _bundled(spec.name):
            spec, profile = _calibrated(spec.name), _relative(PROFILE_DIR / f"{spec.name}.yaml")
        overheads = load_software_overheads(choice.framework)
    if network is not None:
        spec = with_network(spec, network)
    return FittedModel(spec, overheads, profile, None if choice.datasheet else choice.framework,
                       None if network is None else str(network))
