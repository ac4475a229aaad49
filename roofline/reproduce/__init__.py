"""Reproductions of the PRESERVE paper's experiments (Yuzuguler, Zhuang, Cavigelli; arXiv 2501.08192).

Two experiments, each driven by sweep files under ``sweeps/`` and run with the vectorized engine
(:func:`roofline.sweep.sweep_frame`):

``preserve`` (``sweeps/preserve_ascend.yaml``, ``sweeps/preserve_gpus.yaml``)
    End-to-end prefetch speedup (baseline e2e / e2e) of the paper's six models with tensor
    parallelism 8, batch 1-64, total sequence 2K-32K of which 2/3 is prompt and 1/3 generated,
    prefetch off and on: 8x Ascend 910B (int8) as in the paper, and four GPU nodes. A sweep file
    cannot pair ``input_len`` with ``output_len``, so each file holds one sequence length and
    :func:`expand_sequences` makes one copy per length of :data:`PAPER_SEQUENCES`.
    Also: speedup against the ratio of collective time to prefetch time (:func:`decode_ratio`),
    and a one-at-a-time sensitivity table of the 910B main point (batch 4, 16K).

The design-space answer under three objectives (:func:`dse_objectives`, :func:`tornado_figure`):
optima of L2, HBM bandwidth and link speed under perf per manufacturing cost, per price and per
TCO dollar for :data:`DSE_SETUPS`, and how far each moves over each estimate's range
(``benchmarks/dse_objectives.py``, docs/dse_l2.md).

``dse-l2`` (``sweeps/dse_l2_ascend.yaml``)
    Performance per cost (tokens/s per 1000 USD of system cost) against L2 size, 0-256 MiB, with
    and without prefetching, on the 910B set-up; the optimal L2 size with and without prefetch,
    the gain, and how the optimum moves with the cost model's SRAM density and host/interconnect
    share.

Example::

    from roofline.reproduce import reproduce_preserve, reproduce_dse_l2
    result = reproduce_preserve("runs/preserve", devices=["ascend-910b"])
    result.summary["devices"]["ascend-910b"]["speedup_max"]

One private module per part (import everything from ``roofline.reproduce``): ``_paper`` (what
the paper ran and reports, the experiments' set-ups), ``_grid`` (the experiment grid: sequence
lengths, runnable tensor parallelism), ``_ratio`` (collective time / prefetch time), ``_preserve``
(the speedup tables), ``_sensitivity`` (one parameter at a time), ``_dse`` (performance per cost
against L2 size), ``_report`` (markdown), ``_figures`` (the plots), ``_output`` (the output folder
and its files) and ``_run`` (:func:`reproduce_preserve`, :func:`reproduce_dse_l2`).
"""

from __future__ import annotations

from roofline.reproduce._dse import (
    DSE_OBJECTIVES,
    DSE_POINTS,
    DSE_SERVING_OBJECTIVES,
    DSE_SETUPS,
    dse_curve,
    dse_frame,
    dse_objectives,
    dse_optima,
    dse_sensitivity,
    tornado_figure,
)
from roofline.reproduce._grid import (
    Run,
    expand_sequences,
    fallback_tp,
    plan_runs,
    sequence_grid,
    split_sequence,
    with_hardware,
)
from roofline.reproduce._output import Reproduction, check_out_dir
from roofline.reproduce._paper import (
    DSE_COST_VARIANTS,
    DSE_MODEL_VARIANTS,
    DSE_SWEEP,
    EXPERIMENTS,
    MAIN_BATCH,
    MAIN_SEQUENCE,
    PAPER,
    PAPER_BATCHES,
    PAPER_SEQUENCES,
    PRESERVE_SWEEPS,
    PRESERVE_VARIANTS,
    PROMPT_FRACTION,
    SENSITIVITY,
    SWEEPS_DIR,
)
from roofline.reproduce._preserve import (
    RATIO_BINS,
    preserve_frame,
    preserve_summary,
    preserve_table,
)
from roofline.reproduce._ratio import decode_ratio
from roofline.reproduce._report import markdown_table
from roofline.reproduce._run import reproduce_dse_l2, reproduce_dse_objectives, reproduce_preserve
from roofline.reproduce._sensitivity import _spec_values as _spec_values
from roofline.reproduce._sensitivity import sensitivity_pivot, sensitivity_table

__all__ = [
    "PAPER_SEQUENCES", "PAPER_BATCHES", "PROMPT_FRACTION", "MAIN_BATCH", "MAIN_SEQUENCE", "PAPER",
    "PRESERVE_SWEEPS", "DSE_SWEEP", "SENSITIVITY", "PRESERVE_VARIANTS", "DSE_COST_VARIANTS",
    "DSE_MODEL_VARIANTS", "with_hardware",
    "split_sequence", "sequence_grid", "expand_sequences", "fallback_tp", "plan_runs", "decode_ratio",
    "preserve_frame", "preserve_table", "preserve_summary", "sensitivity_table", "dse_frame",
    "dse_optima", "dse_curve", "dse_sensitivity", "dse_objectives", "tornado_figure", "DSE_SETUPS",
    "DSE_OBJECTIVES", "DSE_SERVING_OBJECTIVES", "DSE_POINTS", "check_out_dir", "reproduce_preserve",
    "reproduce_dse_l2", "reproduce_dse_objectives", "Reproduction", "EXPERIMENTS", "markdown_table",
    # constants and helpers
    "RATIO_BINS", "Run", "SWEEPS_DIR", "sensitivity_pivot",
]
