"""Total cost of ownership per device-hour: capex amortised over the lifetime, energy and hosting.

``capex x CRF(i, L) / 8760 h + (P_device + P_host) x PUE x $/kWh + (TDP + P_host) x $/kW-month x 12 / 8760``,
with the capital-recovery factor ``CRF(i, L) = i / (1 - (1 + i)^-L)`` (``1 / L`` at ``i = 0``).
Hosting is paid on the provisioned power (TDP), energy on the average power.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from roofline.cost.parameters import CostParameters

__all__ = ["HOURS_PER_YEAR", "capital_recovery_factor", "tco_usd_per_device_hour"]

HOURS_PER_YEAR = 8760.0


def capital_recovery_factor(rate: float, years: float) -> float:
    """Share of a capital cost paid each year to repay it with interest over ``years``."""
    if rate == 0:
        return 1.0 / years
    return rate / (1.0 - (1.0 + rate) ** -years)


def tco_usd_per_device_hour(params: CostParameters, capex_usd: ArrayLike, average_power_w: ArrayLike,
                            tdp_w: float) -> Any:
    """TCO of one device per hour of its life (capex on the basis the caller chose)."""
    crf = capital_recovery_factor(params.value("tco.interest_rate"), params.value("tco.lifetime_years"))
    host_w = params.value("tco.host_power_w")
    capex_h = np.asarray(capex_usd, dtype=float) * crf / HOURS_PER_YEAR
    energy_h = ((np.asarray(average_power_w, dtype=float) + host_w) / 1e3 * params.value("tco.pue")
                * params.value("tco.usd_per_kWh"))
    hosting_h = (tdp_w + host_w) / 1e3 * params.value("tco.hosting_usd_per_kW_month") * 12 / HOURS_PER_YEAR
    return capex_h + energy_h + hosting_h
