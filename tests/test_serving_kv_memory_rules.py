"""Each framework's KV pool as its server sizes it (roofline.serving.settings.KV_MEMORY_RULES):
vLLM a share of the whole HBM, TensorRT-LLM a share of the memory the weights and activations
leave free, SGLang a static fraction chosen from the GPU memory and TP. Hand-worked numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roofline.exceptions import SpecError
from roofline.hardware import load_hardware
from roofline.model import load_model
from roofline.serving import ServingSetup, engine_defaults, serve
from roofline.serving.capacity import engine_hbm_share_bytes
from roofline.serving.settings import (
    EngineSettings,
    sglang_chunked_prefill_tokens,
    sglang_cuda_graph_max_bs,
    sglang_mem_fraction_static,
)
from roofline.workload import Parallelism, Workload

GiB = 2**30

#: Qwen3-32B bf16, one device. Weights, by hand from its config.json (hidden 5,120, 64 layers,
#: 64 query and 8 KV heads of 128, intermediate 25,600, vocabulary 151,936, untied head): per
#: layer q 5,120 x 8,192 + k, v 2 x 5,120 x 1,024 + o 8,192 x 5,120 + MLP 3 x 5,120 x 25,600
#: + 2 norms x 5,120 = 487,598,080; x 64 + 2 x 151,936 x 5,120 + 5,120 = 32,762,106,880 parameters
#: (the q/k norms' 256 per layer not counted), x 2 bytes. KV per token: 64 layers x 8 heads x 128
#: x 2 (K, V) x 2 bytes = 262,144 B.
QWEN_WEIGHTS_BYTES = 32_762_106_880 * 2
QWEN_KV_BYTES_PER_TOKEN = 262_144


def _setup(framework: str, device: str = "h100-sxm", tp: int = 1, **overrides: object) -> ServingSetup:
    w = Workload(weight_dtype="bf16", activation_dtype="bf16", kv_dtype="bf16")
    return ServingSetup(load_model("qwen3-32b"), load_hardware(device), w, Parallelism(tp=tp),
                        engine_defaults(framework).with_overrides(**overrides))


@pytest.mark.parametrize(("gib", "tp", "chunk", "expected"), [
    # reserved MiB = 512 + 1.5 x max(chunk, 2048) + 2 x cuda_graph_max_bs + 1024 x tp / 8
    (80, 1, None, 0.836),   # 512 + 12,288 + 2 x 256 + 128 = 13,440; 68,480 / 81,920 = 0.8359
    (80, 4, None, 0.825),   # 512 + 12,288 + 2 x 512 + 512 = 14,336; 67,584 / 81,920 = 0.825
    (141, 1, None, 0.907),  # 13,440 of 144,384 MiB: 130,944 / 144,384 = 0.9069
    (180, 1, None, 0.858),  # B200: chunk 16,384: 512 + 24,576 + 1,024 + 128 = 26,240; 158,080 / 184,320
    (40, 1, None, 0.833),   # A100-40GB: chunk 4,096, graphs 32: 512 + 6,144 + 64 + 128 = 6,848 (no 10 GiB floor)
    (80, 1, 2048, 0.875),   # 512 + 3,072 + 512 + 128 = 4,224, raised to the 10,240 floor above 60 GiB
])
def test_sglang_mem_fraction_static_by_hand(gib: float, tp: int, chunk: int | None, expected: float) -> None:
    got = sglang_mem_fraction_static(gib * GiB, tp=tp, chunked_prefill_tokens=chunk)
    assert float(got) == pytest.approx(expected, abs=1e-12)


def test_sglang_defaults_by_gpu_memory_and_dp_attention() -> None:
    hbm = np.array([16, 24, 40, 80, 141, 180]) * GiB
    assert sglang_chunked_prefill_tokens(hbm).tolist() == [2048, 2048, 4096, 8192, 8192, 16384]
    assert sglang_cuda_graph_max_bs(hbm, 1).tolist() == [8, 24, 32, 256, 256, 512]
    assert sglang_cuda_graph_max_bs(hbm, 8).tolist() == [8, 80, 160, 512, 512, 512]
    # DP attention 8 on an H200 at TP 8: 14,848 + 3 x 512 x 8 + 1.5 x 512 x 8 (graphs > 300) = 33,280 MiB
    dp = sglang_mem_fraction_static(141 * GiB, tp=8, attention_dp=8)
    assert float(dp) == pytest.approx(round((144_384 - 33_280) / 144_384, 3))


def test_qwen3_32b_tp1_h100_capacity_per_framework_by_hand() -> None:
    """80 GiB = 85,899,345,920 B. SGLang: 0.836 x HBM - weights = 6,287,639,429 B = 23,985 tokens
    (1-token pages). vLLM: 0.9 x HBM - weights - activations; TensorRT-LLM: 0.9 x (HBM - weights
    - activations), in 16- and 32-token blocks, with the activations of an 8,192-token step."""
    hbm = 80 * GiB
    sglang = _setup("sglang")
    assert sglang.memory_fraction() == pytest.approx(0.836)
    assert sglang.kv_capacity_tokens() == 23_985 == (0.836 * hbm - QWEN_WEIGHTS_BYTES) // QWEN_KV_BYTES_PER_TOKEN
    vllm, trtllm = _setup("vllm"), _setup("trtllm")
    act = 0.9 * hbm - QWEN_WEIGHTS_BYTES - vllm.kv_capacity_tokens() * QWEN_KV_BYTES_PER_TOKEN  # within one block
    assert 0 < act - 1.0e9 < 0.2e9  # activations of the step: about 1.1 GB
    free = hbm - QWEN_WEIGHTS_BYTES - act
    assert trtllm.kv_capacity_tokens() == pytest.approx(0.9 * free / QWEN_KV_BYTES_PER_TOKEN, abs=32 + 16 * 0.9)
    # the free-memory share is the larger pool here: 0.1 x (weights + activations) more
    assert trtllm.kv_capacity_tokens() > vllm.kv_capacity_tokens() > sglang.kv_capacity_tokens()


def test_engine_hbm_share_by_rule() -> None:
    hbm, w, a, u = np.array([100.0]), 60.0, 5.0, np.array([0.9])
    assert engine_hbm_share_bytes("total", u, hbm, w, a).tolist() == [90.0]  # KV 90 - 60 - 5 = 25
    assert engine_hbm_share_bytes("static", u, hbm, w, a).tolist() == [95.0]  # KV 90 - 60 = 30
    assert engine_hbm_share_bytes("free", u, hbm, w, a).tolist() == pytest.approx([96.5])  # KV 0.9 x 35 = 31.5
    # weights beyond what is free: no KV cache, the engine fills the HBM (nothing left to share)
    assert engine_hbm_share_bytes("free", u, hbm, 99.0, a).tolist() == [100.0]
    assert engine_hbm_share_bytes("static", np.array([0.99]), hbm, w, a).tolist() == [100.0]  # at most the HBM


def test_user_share_overrides_sglang_rule() -> None:
    s = _setup("sglang", gpu_memory_utilization=0.8)
    assert s.memory_fraction() == 0.8
    assert dict(s.settings.sources)["gpu_memory_utilization"] == "user"
    assert s.kv_capacity_tokens() == (0.8 * 80 * GiB - QWEN_WEIGHTS_BYTES) // QWEN_KV_BYTES_PER_TOKEN
    # the token budget feeds SGLang's reserve, as its chunked_prefill_size does
    assert _setup("sglang", max_num_batched_tokens=2048).memory_fraction() == pytest.approx(0.875)


def test_bad_memory_rule_or_missing_share_is_refused() -> None:
    with pytest.raises(SpecError, match="engine: kv_memory_rule: 'half' is not allowed; choose one of total, "
                                        "free, static"):
        EngineSettings(kv_memory_rule="half")
    with pytest.raises(SpecError, match=r"engine: gpu_memory_utilization: must be in \(0, 1\], got None"):
        EngineSettings(gpu_memory_utilization=None)  # None means SGLang's rule: only with "static"


def test_serve_shows_the_share_and_rule_of_each_framework() -> None:
    summary = {fw: serve("qwen3-32b", "h100-sxm", dtype="bf16", input_len=512, output_len=64, concurrency=2,
                         framework=fw).summary["engine"] for fw in ("sglang", "trtllm", "vllm")}
    assert summary["sglang"]["gpu_memory_utilization"] == 0.836
    assert "mem_fraction_static" in summary["sglang"]["sources"]["kv_memory_rule"]
    assert "free_gpu_memory_fraction" in summary["trtllm"]["sources"]["kv_memory_rule"]
    assert summary["vllm"]["gpu_memory_utilization"] == 0.9 and "kv_memory_rule" not in summary["vllm"]["sources"]
    json.dumps(summary, allow_nan=False)


def test_sglang_token_budget_follows_the_gpu_memory() -> None:
    """SGLang's chunked_prefill_size: 8,192 on an H100 or H200, 16,384 on a B200 (180 GiB), which
    also enlarges its reserve (0.858, not the 0.924 an 8,192 budget would give); a user's budget
    stays; vLLM and TensorRT-LLM keep theirs."""
    sglang = engine_defaults("sglang")
    assert sglang.for_device(80 * GiB).max_num_batched_tokens == 8192
    assert sglang.for_device(180 * GiB).max_num_batched_tokens == 16384
    assert sglang.with_overrides(max_num_batched_tokens=4096).for_device(180 * GiB).max_num_batched_tokens == 4096
    for fw in ("vllm", "trtllm"):
        assert engine_defaults(fw).for_device(180 * GiB) is engine_defaults(fw)
    r = serve("llama-3.1-8b", "b200", dtype="fp8", input_len=512, output_len=64, concurrency=2, framework="sglang",
              datasheet=True)
    assert r.summary["engine"]["max_num_batched_tokens"] == 16384
    assert r.summary["engine"]["gpu_memory_utilization"] == 0.858


def test_sweep_row_takes_serves_sglang_capacity() -> None:
    """A sweep's `serving:` block with SGLang on a B200 sizes the KV cache as `serve` does (token
    budget and memory share from the device's memory)."""
    from roofline.sweep import sweep_frame
    from roofline.sweepfile import sweep_from_dict

    spec = sweep_from_dict({
        "hardware": "b200", "model": "qwen3-32b", "workload": {"input_len": 4096, "output_len": 4096, "dtype": "bf16"},
        "sweep": {"hbm_bandwidth_GBps": [7700]}, "scenario": {"datasheet": True},
        "serving": {"concurrency": 256, "framework": "sglang"}, "objective": {"maximize": "goodput_tok_s"}}, "s.yaml")
    row = sweep_frame(spec).iloc[0]
    r = serve("qwen3-32b", "b200", dtype="bf16", input_len=4096, output_len=4096, concurrency=256,
              framework="sglang", datasheet=True)
    # 256 requests of 8,192 tokens need 2.1 M tokens, more than the pool: the KV cache sets the batch
    assert r.rows[0]["mean_batch"] < 256
    assert row.serving_mean_batch == pytest.approx(r.rows[0]["mean_batch"], rel=0.02)


def test_report_serve_command_leaves_sglang_device_defaults_to_serve(tmp_path, capsys) -> None:
    """`roofline report`'s serve command for an SGLang row on a B200 leaves the token budget and the
    memory share to serve (both derived from the device), and gives the sweep row's TPOT again."""
    import yaml

    from roofline.fitted import ModelChoice
    from roofline.report._details import PointSettings, serve_command
    from roofline.sweep import sweep_frame
    from roofline.sweepfile import load_sweep
    from tests._run_cli import run_cli

    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({
        "name": "s", "hardware": "b200", "model": "qwen3-32b",
        "workload": {"input_len": 4096, "output_len": 1024, "dtype": "bf16"}, "sweep": {"hbm_bandwidth_GBps": [7700]},
        "scenario": {"datasheet": True}, "serving": {"concurrency": 64, "framework": "sglang"},
        "objective": {"maximize": "goodput_tok_s"}}))
    spec = load_sweep(f)
    row = sweep_frame(spec).iloc[0]
    command = serve_command(row.to_dict(), PointSettings.of(spec, ModelChoice(datasheet=True, framework="sglang")))
    assert command is not None and "--framework sglang" in command and "--datasheet" in command
    assert "--max-num-batched-tokens" not in command and "--gpu-memory-utilization" not in command
    run = run_cli(capsys, *command.split()[1:], "--json")
    assert run.exit_code == 0, run.stderr
    assert json.loads(run.stdout)["rows"][0]["tpot_ms"] == pytest.approx(row.serving_tpot_ms, rel=1e-6)
