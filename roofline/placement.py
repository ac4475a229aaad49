"""Where the weights and the KV cache live: HBM first, the rest spilled across the further tiers.

A device's placement tiers are HBM and its ``memory.tiers`` (L2 is a cache: it holds copies, not
placements). Activations stay in HBM. The weights, then the KV cache, fill what HBM leaves free and
spill in tier order (HBM, then e.g. Grace LPDDR5X); a block the user pins to a tier starts there
(and spills to the tiers after it), before the unpinned blocks are placed. The KV cache is placed
at its largest (the end of generation), and every decode step reads the same fraction of it from
each tier (pages spread evenly over the tiers; the timing stays affine in the KV length).

Vectorized over configurations (a sweep can vary a tier's capacity); the loop is over the few
tiers and the two blocks only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from roofline.exceptions import SpecError
from roofline.timing import HardwareArrays

__all__ = ["PLACED_BLOCKS", "place_blocks", "check_pins", "tier_rows"]

#: Blocks of bytes a user may pin to a tier (``--pin kv_cache=lpddr``).
PLACED_BLOCKS = ("weights", "kv_cache")


def check_pins(pins: Mapping[str, str], hw: HardwareArrays, device: str = "the device") -> None:
    """Raise SpecError unless every pin names a placed block and a placement tier of the device."""
    tiers = ("hbm", *hw.tier_names)
    for block, tier in pins.items():
        if block not in PLACED_BLOCKS:
            raise SpecError(f"pin {block}={tier}: {block!r} cannot be pinned; choose {' or '.join(PLACED_BLOCKS)}")
        if tier not in tiers:
            raise SpecError(f"pin {block}={tier}: {device} has no {tier!r} placement tier; "
                            f"its tiers are {', '.join(tiers)} (l2 is a cache)")


def place_blocks(hw: HardwareArrays, weights_bytes: float | np.ndarray, kv_cache_bytes: float | np.ndarray,
                 activation_bytes: float, pins: Mapping[str, str] | None = None,
                 device: str = "the device") -> HardwareArrays:
    """``hw`` with the fraction of the weights and of the KV cache each extra tier holds.

    What does not fit anywhere stays counted in HBM (the memory-fit check reports it). The block
    sizes are bytes, one for all configurations or one per configuration ((n,): a serving KV
    pool that depends on each configuration's HBM).

    Example: 96 GiB of HBM, 10 GiB of weights, 100 GiB of KV cache, 2 GiB of activations: HBM
    keeps the weights and 84 GiB of KV cache; LPDDR holds the other 16 GiB, a KV fraction of 0.16.
    """
    pins = dict(pins or {})
    check_pins(pins, hw, device)
    if not hw.tier_names:
        return hw
    n, k = hw.n, len(hw.tier_names)
    free = np.concatenate([np.maximum(hw.hbm_capacity_bytes - activation_bytes, 0.0)[:, None],
                           hw.tier_capacity_bytes], axis=1)  # (n, 1 + k): HBM, then the extra tiers
    tiers = ("hbm", *hw.tier_names)
    sizes = {"weights": np.broadcast_to(np.asarray(weights_bytes, dtype=float), (n,)),
             "kv_cache": np.broadcast_to(np.asarray(kv_cache_bytes, dtype=float), (n,))}
    placed = {block: np.zeros((n, k)) for block in PLACED_BLOCKS}
    order = [b for b in PLACED_BLOCKS if b in pins] + [b for b in PLACED_BLOCKS if b not in pins]
    for block in order:
        left = sizes[block].copy()
        for j in range(tiers.index(pins.get(block, "hbm")), 1 + k):
            put = np.minimum(left, free[:, j])
            free[:, j] -= put
            left -= put
            if j:
                placed[block][:, j - 1] = put
    fractions = {b: np.divide(placed[b], sizes[b][:, None], out=np.zeros_like(placed[b]),
                              where=sizes[b][:, None] > 0) for b in PLACED_BLOCKS}
    return hw.with_placement(fractions["weights"], fractions["kv_cache"])


def tier_rows(hw: HardwareArrays, weights_bytes: float, kv_cache_bytes: float,
              activation_bytes: float) -> list[dict[str, float | str]]:
    """Per placement tier of the first configuration: capacity and the bytes of each block it holds."""
    w_frac, kv_frac = hw.weight_tier_fraction[0], hw.kv_tier_fraction[0]
    rows = [{"tier": "hbm", "capacity_bytes": float(hw.hbm_capacity_bytes[0]),
             "bandwidth_GBps": float(hw.hbm_Bps[0]) / 1e9,
             "weights_bytes": weights_bytes * (1.0 - float(w_frac.sum())),
             "kv_cache_bytes": kv_cache_bytes * (1.0 - float(kv_frac.sum())),
             "activation_bytes": activation_bytes}]
    for j, name in enumerate(hw.tier_names):
        rows.append({"tier": name, "capacity_bytes": float(hw.tier_capacity_bytes[0, j]),
                     "bandwidth_GBps": float(hw.tier_Bps[0, j]) / 1e9,
                     "weights_bytes": weights_bytes * float(w_frac[j]),
                     "kv_cache_bytes": kv_cache_bytes * float(kv_frac[j]), "activation_bytes": 0.0})
    return rows
