"""What the paper ran and reports, and the set-ups of the two experiments: sequence lengths and
batches, the main point, the sweep files, and the sensitivity ranges and variants.
"""

from __future__ import annotations

from roofline._specfile import PROJECT_ROOT

__all__ = ["DSE_COST_VARIANTS", "DSE_MODEL_VARIANTS", "DSE_SWEEP", "EXPERIMENTS", "MAIN_BATCH",
           "MAIN_SEQUENCE", "PAPER", "PAPER_BATCHES", "PAPER_SEQUENCES", "PRESERVE_SWEEPS",
           "PRESERVE_VARIANTS", "PROMPT_FRACTION", "SENSITIVITY", "SWEEPS_DIR"]


#: Total sequence lengths of the paper (tokens, prompt + generated).
PAPER_SEQUENCES = (2048, 4096, 8192, 16384, 32768)
#: Batch sizes of the paper.
PAPER_BATCHES = (1, 4, 16, 64)
#: Share of the sequence that is prompt; the rest is generated.
PROMPT_FRACTION = 2.0 / 3.0
#: The paper's main table.
MAIN_BATCH, MAIN_SEQUENCE = 4, 16384
#: What the paper reports (DESIGN.md, "The paper this starts from").
PAPER = {
    "speedup_e2e_min": 1.09, "speedup_e2e_max": 1.61,
    "l2_optimum_without_prefetch_MB": 8, "l2_optimum_with_prefetch_MB": 104,
    "perf_per_cost_gain": 1.25,
}

SWEEPS_DIR = PROJECT_ROOT / "sweeps"
#: Sweep files of the speedup experiment, in report order.
PRESERVE_SWEEPS = ("preserve_ascend.yaml", "preserve_gpus.yaml")
#: Sweep file of the L2 design-space exploration.
DSE_SWEEP = "dse_l2_ascend.yaml"

#: One-at-a-time sensitivity of the 910B main point: parameter -> values (the spec's value is
#: marked in the table). Ranges: see docs/preserve_reproduction.md.
SENSITIVITY: dict[str, tuple[float, ...]] = {
    "l2_bandwidth_GBps": (2375.0, 4750.0, 9500.0),
    "hbm_bandwidth_GBps": (1200.0, 1420.0, 1600.0, 2000.0),
    "link_bandwidth_GBps": (14.0, 28.0, 56.0),
    "link_latency_us": (1.5, 3.0, 6.0),
    "custom_latency_us": (1.5, 3.0, 6.0),
    "prefetch_launch_gap_fraction": (0.0, 1.0),
    "prefetch_threshold_fraction": (0.25, 0.5, 0.75, 1.0),
    "launch_overhead_us": (0.0, 3.0, 6.0, 10.0),
    "peak_tflops_int8": (353.8, 707.9),
    "activation_l2_hit": (0.0, 0.5, 1.0),
}

#: Cost-model variants of the L2 design-space exploration (dotted overrides of cost_specs/default.yaml).
DSE_COST_VARIANTS: dict[str, dict[str, float]] = {
    "default cost model": {},
    "SRAM 1.0 mm2/MiB": {"sram.macro_mm2_per_MiB.SMIC-7nm": 1.0},
    "SRAM 2.49 mm2/MiB (GPU-style L2 density)": {"sram.macro_mm2_per_MiB.SMIC-7nm": 2.49},
    "host share $0 (no server share)": {"system.host_share_usd": 0.0},
    "host share $8,000": {"system.host_share_usd": 8000.0},
    "mesh links priced like NVSwitch ($5.68 per GB/s)": {"interconnect.switch_usd_per_GBps.full_mesh": 5.68},
    "GPU-style SRAM and host share $0": {"sram.macro_mm2_per_MiB.SMIC-7nm": 2.49, "system.host_share_usd": 0.0},
}

#: Performance-model variants of the L2 design-space exploration (hardware overrides).
DSE_MODEL_VARIANTS: dict[str, dict[str, float]] = {
    "prefetch threshold 0.5 of L2": {"prefetch_threshold_fraction": 0.5},
    "prefetch threshold 1.0 of L2": {"prefetch_threshold_fraction": 1.0},
    "launch overhead 0 us": {"launch_overhead_us": 0.0},
    "launch gaps usable by the prefetch": {"prefetch_launch_gap_fraction": 1.0},
    "L2 of 8 MiB slices at 198 GB/s (bandwidth scales with capacity; 4750 GB/s at 192 MiB)":
        {"l2_capacity_per_slice_MiB": 8.0, "l2_bandwidth_per_slice_GBps": 4750.0 / 24},
    "no GEMM reuse through L2 (compulsory traffic only)": {"l2_gemm_reuse": 0.0},
    "activation L2 hit 1.0 (activations that fit are served by L2)": {"activation_l2_hit": 1.0},
}

#: Model variants of the 910B speedup grid, run in full beside the datasheet run: the per-operator
#: launch overhead (6 us on the 910B, an estimate) is part of every baseline operator and of every
#: collective, so it sets both the share of the step that prefetching can shorten and the collective
#: time it has (see docs/preserve_reproduction.md).
PRESERVE_VARIANTS: dict[str, dict[str, float]] = {
    "launch overhead 0 us": {"launch_overhead_us": 0.0},
    "launch gaps usable by the prefetch": {"prefetch_launch_gap_fraction": 1.0},
}

EXPERIMENTS = ("preserve", "dse-l2", "dse-objectives")
