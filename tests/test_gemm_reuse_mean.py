"""The GEMM operand re-reads beyond L2 (roofline.timing.gemm_reuse_bytes) and the exact TPOT mean.

The exact mean over decode steps (roofline.evaluate.mean_over_steps) sees only the max/min that
go through the Recorder. gemm_reuse_bytes takes ``max(F/2 w/b - W, 0)`` and ``W > L2/2`` without
it: that is exact only while those kinks do not move with the KV length, i.e. while no GEMM it
applies to has KV-dependent FLOPs or bytes. Their position is set by the batch (m against the block
b) and the L2 size, which are the same at every decode step.
"""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.engine import Scenario, evaluate_configs
from roofline.evaluate import DecodeSteps
from roofline.graph import build_phase
from roofline.timing import HardwareArrays, gemm_reuse_bytes, gemm_reuse_unit_bytes
from roofline.workload import Parallelism, Workload


@pytest.mark.parametrize("name", roofline.list_models())
def test_the_reused_gemms_do_not_depend_on_the_kv_length(name: str) -> None:
    model = roofline.load_model(name)
    table = build_phase(model, Workload.for_model(model, None, batch=8, input_len=512, output_len=64),
                        Parallelism(), "decode")
    rows, _ = gemm_reuse_unit_bytes(table)
    assert not np.any(table.flops_per_kv[rows]) and not np.any(table.kv_read_per_kv[rows])


def test_the_exact_tpot_mean_equals_the_sum_over_every_step_with_gemm_re_reads() -> None:
    """Llama-3-8B fp8 (bf16 activations), batch 256, on H100s whose L2 runs from 0.05 to 50 MiB.
    The weights' re-read term m W / b - W with b = max(sqrt(L2 / (1 + 2 x 2) B), 128) is positive
    while b < m = 256 and crosses its kink at L2 = 5 x 256^2 B = 0.3125 MiB; the activations' term
    is on while they exceed L2 / 2; with 50 MiB every term is off. The engine's TPOT for every
    output length 2-48 equals the mean of the step times at every KV length to 1e-9. Every GEMM in fp8,
    the LM head too (``lm_head_dtype="same"``): a bf16 head (the default) keeps its activations' term on at
    50 MiB (b = sqrt(50 MiB / 6 B) = 2,956; 256 x 128,256 x 4,096 x 2 B / 2,956 = 91.0 MB read against its
    67.8 MB of activations)."""
    model = roofline.load_model("llama-3-8b")
    hardware = roofline.load_hardware("h100-sxm")
    l2_MiB = np.array([0.05, 0.2, 0.3125, 0.5, 4.0, 16.0, 50.0])
    n = len(l2_MiB)
    workload = Workload.for_model(model, "fp8", lm_head_dtype="same", batch=256, input_len=300, output_len=48)
    table = build_phase(model, workload, Parallelism(), "decode")
    hw = HardwareArrays.from_spec(hardware, n, l2_capacity_MiB=l2_MiB)
    reuse = gemm_reuse_bytes(table, table.flops[:, None] * np.ones(n), hw).sum(axis=0)
    assert np.all(np.diff(reuse) < 0) and reuse[-2] > 0 and reuse[-1] == 0  # on, shrinking, off
    steps = DecodeSteps(table, hw)
    lengths = np.arange(workload.input_len + 1, workload.input_len + workload.output_len)
    every = np.stack([steps.at(np.full(len(lengths), i), lengths).time_s for i in range(n)])  # (n, steps)
    for output_len in range(2, workload.output_len + 1):
        w = Workload.for_model(model, "fp8", lm_head_dtype="same", batch=256, input_len=300, output_len=output_len)
        tpot_s = evaluate_configs(Scenario(model, w, Parallelism(), hardware), n, l2_capacity_MiB=l2_MiB)["tpot_ms"] / 1e3
        brute_s = every[:, : output_len - 1].mean(axis=1)
        np.testing.assert_allclose(tpot_s, brute_s, rtol=1e-9, err_msg=f"output_len {output_len}")
