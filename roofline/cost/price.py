"""Cost basis: manufacturing cost, or price.

A bundled device's price is its sourced street or list price (``price.usd_per_device``). A
hypothetical device is priced at its manufacturing cost times a margin fitted to the bundled
devices' prices (the geometric mean of price / module cost); the fit reports its
leave-one-device-out error. A variant of a priced device (a sweep around it) keeps its sourced
price and pays the fitted margin on the manufacturing-cost difference, so prices are continuous
in every swept parameter and equal the sourced price at the stock configuration. Only the
accelerator module is priced this way; the switch share, links and host share stay at cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from roofline.cost.device import CostBreakdown, CostTotals, hardware_cost
from roofline.cost.parameters import CostParameters
from roofline.hardware import HardwareSpec, load_hardware

__all__ = ["MarginFit", "fit_margin", "module_price_usd", "basis_total_usd"]


@dataclass(frozen=True)
class MarginFit:
    """Price / manufacturing-cost margin fitted to the bundled devices' prices.

    Attributes:
        margin: geometric mean of ``price / module manufacturing cost`` over ``devices``.
        devices: bundled devices with a sourced price.
        price_usd, module_usd: their price and module manufacturing cost.
        held_out_error: per device, ``predicted / price - 1`` when the margin is fitted on the
            other devices only (leave one device out).
    """

    margin: float
    devices: tuple[str, ...]
    price_usd: tuple[float, ...]
    module_usd: tuple[float, ...]
    held_out_error: tuple[float, ...]

    @property
    def mean_abs_held_out_error(self) -> float:
        return float(np.mean(np.abs(self.held_out_error)))


_FITS: dict[int, tuple[CostParameters, MarginFit]] = {}


def fit_margin(params: CostParameters) -> MarginFit:
    """The margin fitted on the priced bundled devices (cached per parameter set)."""
    cached = _FITS.get(id(params))
    if cached is not None and cached[0] is params:  # ids are reused once an object is freed
        return cached[1]
    prices = {name: float(v) for name, v in params.table("price.usd_per_device").items()}
    names = tuple(prices)
    module = np.array([float(hardware_cost(params, load_hardware(n)).module_usd) for n in names])
    price = np.array([prices[n] for n in names])
    log_ratio = np.log(price / module)
    held_out = []
    for i in range(len(names)):  # a handful of devices
        others = np.delete(log_ratio, i)
        margin_without = float(np.exp(others.mean())) if len(others) else float("nan")
        held_out.append(module[i] * margin_without / price[i] - 1.0)
    fit = MarginFit(float(np.exp(log_ratio.mean())), names, tuple(price), tuple(module), tuple(held_out))
    _FITS[id(params)] = (params, fit)
    return fit


def module_price_usd(params: CostParameters, spec: HardwareSpec, module_usd: Any) -> Any:
    """Price of the accelerator module of ``spec`` at module manufacturing costs ``module_usd``.

    For a device named like a priced bundled device: its sourced price plus the fitted margin on
    the difference from that bundled device's module cost as sold; otherwise manufacturing cost
    times the fitted margin. Never below manufacturing cost.
    """
    fit = fit_margin(params)
    module = np.asarray(module_usd, dtype=float)
    if spec.name not in fit.devices:
        return fit.margin * module
    # anchored on the bundled device as sold, so a copied spec with more L2 is dearer here too
    i = fit.devices.index(spec.name)
    return np.maximum(fit.price_usd[i] + fit.margin * (module - fit.module_usd[i]), module)


def basis_total_usd(params: CostParameters, spec: HardwareSpec, breakdown: CostBreakdown | CostTotals) -> Any:
    """A device's total on the basis of ``params`` (``basis.cost``): manufacturing, or the module
    at its price plus the other lines at cost."""
    total = np.asarray(breakdown.total_usd, dtype=float)
    if params.basis == "manufacturing":
        return total
    module = np.asarray(breakdown.module_usd, dtype=float)
    return total - module + module_price_usd(params, spec, module)
