"""The ratio of collective time to prefetch time.

For each configuration :func:`decode_ratio` reads the decode-phase segment table of
:func:`roofline.predict` (the middle decode step). Each segment (the operators between two
collectives) has ``collective_to_prefetch_ratio`` = time of the collective before it / time to
read the segment's weights and KV cache from HBM. The column ``collective_to_prefetch_ratio`` is
the mean over segments weighted by each segment's share of the baseline decode step
(``count * baseline time``), skipping segments with nothing to prefetch;
``collective_to_prefetch_ratio_pooled`` is ``sum(count * collective) / sum(count * prefetch
time)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from roofline.predict import predict
from roofline.timing import SWEEPABLE

__all__ = ["decode_ratio"]


def decode_ratio(segments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collective-to-prefetch ratio of a decode step from :attr:`Prediction.segments` ``["decode"]``.

    Returns:
        ``collective_to_prefetch_ratio``: mean of the segments' ratios weighted by count x baseline
        time (segments with nothing to prefetch are skipped); ``collective_to_prefetch_ratio_pooled``:
        sum(count x collective) / sum(count x prefetch time); ``limited_by``: the limit that holds
        for the largest share of the baseline step time. NaN / "" without segments.
    """
    w_sum = wr_sum = coll_sum = pre_sum = 0.0
    limits: dict[str, float] = {}
    for s in segments:
        ratio = float(s["collective_to_prefetch_ratio"])
        count = float(s["count"])
        weight = count * float(s["baseline_us"])
        limits[s["limited_by"]] = limits.get(s["limited_by"], 0.0) + weight
        if not math.isfinite(ratio) or ratio <= 0:
            continue
        w_sum += weight
        wr_sum += weight * ratio
        coll_sum += count * float(s["collective_us"])
        pre_sum += count * float(s["collective_us"]) / ratio
    return {
        "collective_to_prefetch_ratio": wr_sum / w_sum if w_sum > 0 else float("nan"),
        "collective_to_prefetch_ratio_pooled": coll_sum / pre_sum if pre_sum > 0 else float("nan"),
        "limited_by": max(limits, key=limits.get) if limits else "",
    }


def _row_ratio(row: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    p = predict(row["model"], row["hardware"], tp=int(row["tp"]), pp=int(row["pp"]), dp=int(row["dp"]),
                ep=int(row["ep"]), batch=int(row["batch"]), input_len=int(row["input_len"]),
                output_len=int(row["output_len"]), dtype=str(row["dtype"]), kv_dtype=str(row["kv_dtype"]),
                prefetch=True, check_memory=False, datasheet=True,  # as the reproduction's sweep files ask
                **{k: float(row[k]) for k in overrides})
    return decode_ratio(p.segments["decode"])


def _add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    overrides = [c for c in df.columns if c in SWEEPABLE]
    extra = pd.DataFrame([_row_ratio(r, overrides) for r in df.to_dict("records")], index=df.index)
    return pd.concat([df, extra], axis=1)
