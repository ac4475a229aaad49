"""Today's and older published models: parameter counts against the published figures, the HF
configs against the bundled YAML, KV-cache bytes by hand per attention kind, and predictions on
every bundled device (or a clean refusal)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import roofline
from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.hardware import list_hardware
from roofline.hf_configs import HF_ARCHITECTURES
from roofline.model import ModelSpec
from roofline.predict import memory_per_device
from roofline.workload import Parallelism, Workload

FIXTURES = Path(__file__).parent / "fixtures" / "hf_configs"

#: bundled name -> the fixture config.json it was written from
PAIRS = {
    "gpt-oss-120b": "gpt-oss-120b", "gpt-oss-20b": "gpt-oss-20b", "qwen3-next-80b-a3b": "Qwen3-Next-80B-A3B-Instruct",
    "qwen3.5-397b-a17b": "Qwen3.5-397B-A17B", "glm-4.5": "GLM-4.5", "glm-5": "GLM-5", "minimax-m2": "MiniMax-M2",
    "minimax-m2.5": "MiniMax-M2.5", "kimi-k2": "Kimi-K2-Instruct", "deepseek-v3.2": "DeepSeek-V3.2",
    "gemma-3-27b": "gemma-3-27b-it", "gpt-j-6b": "gpt-j-6b", "falcon-7b": "falcon-7b", "falcon-40b": "falcon-40b",
    "falcon-180b": "falcon-180B", "opt-66b": "opt-66b", "gpt-neox-20b": "gpt-neox-20b", "bloom-176b": "bloom",
    "phi-3-small": "Phi-3-small-8k-instruct", "mistral-7b-v0.1": "Mistral-7B-v0.1",
    "qwen3-32b": "Qwen3-32B", "qwen3-30b-a3b": "Qwen3-30B-A3B",
}
#: the FP8 checkpoints' quantization_config stays in their fixtures (as for deepseek-v3.yaml): the
#: bundled specs default to bf16 on every device, FP8 is --dtype fp8
_SHAPE = [f.name for f in fields(ModelSpec) if f.name not in ("name", "description", "source", "source_file",
                                                               "quantization")]


@pytest.mark.parametrize(("bundled", "folder"), PAIRS.items())
def test_bundled_yaml_is_its_published_config(bundled: str, folder: str) -> None:
    hf = roofline.load_model(FIXTURES / folder / "config.json")
    yml = roofline.load_model(bundled)
    assert {k: getattr(hf, k) for k in _SHAPE} == {k: getattr(yml, k) for k in _SHAPE}
    if bundled.startswith("gpt-oss"):  # MXFP4 experts, as published
        assert hf.quantization == yml.quantization and yml.quantization.weight_dtype == "mxfp4"
    cfg = json.loads((FIXTURES / folder / "config.json").read_text())
    if folder != "Mistral-7B-v0.1":  # that one is a copy of the upstream file (model_specs/SOURCES.md)
        # fixtures copied verbatim (the Qwen3 ones) carry no _source: the bundled YAML names it
        assert cfg.get("_source", yml.source).startswith("https://huggingface.co/")


def _embedding(m: ModelSpec) -> int:
    return m.vocab_size * m.hidden_size


# Published figures and the counting rule that reproduces each: "all" counts every parameter
# with embeddings; "-embed" leaves out the input embedding table; "-embed-head" both the input
# embedding and the untied LM head. MTP layers and vision towers are never counted (see the YAML).
PUBLISHED = [
    # name, total published, rel. tolerance, active published, active rule, where published
    ("gpt-oss-120b", 116.83e9, 1e-4, 5.13e9, "-embed"),  # OpenAI gpt-oss model card: 116.83B / 5.13B
    ("gpt-oss-20b", 20.91e9, 1e-3, 3.61e9, "-embed"),  # OpenAI gpt-oss model card: 20.91B / 3.61B
    ("qwen3-next-80b-a3b", 80e9, 0.01, 3e9, "-embed-head"),  # Qwen3-Next model card: 80B / 3B activated
    ("qwen3.5-397b-a17b", 397e9, 0.01, 17e9, "all"),  # Qwen3.5 model card: 397B / 17B (the name)
    ("glm-4.5", 355e9, 0.01, 32e9, "-embed-head"),  # GLM-4.5 model card: 355B total, 32B active
    ("glm-5", 744e9, 0.01, 40e9, "-embed-head"),  # GLM-5 model card: 744B total, 40B active
    ("minimax-m2", 230e9, 0.01, 10e9, "-embed"),  # MiniMax-M2 model card: 230B total, 10B active
    ("minimax-m2.5", 229e9, 0.01, 10e9, "-embed"),  # MiniMax-M2.5 model card: 229B, 10B active
    ("kimi-k2", 1.0e12, 0.03, 32e9, "-embed"),  # Kimi K2 model card: 1T total (1.04T), 32B activated
    ("deepseek-v3.2", 685e9 - 14e9, 0.01, 37e9, "-embed"),  # HF 685B = main model + 14B MTP; 37B active
    ("gemma-3-27b", 27e9, 0.01, 27e9, "all"),  # Gemma 3 report: 27B (HF 27.4B incl. the 0.4B vision tower)
    ("gpt-j-6b", 6_053_381_344, 1e-3, 6_053_381_344, "all"),  # HF checkpoint total
    ("falcon-7b", 7.22e9 - 4544 * 65024, 2e-3, 6.92e9, "all"),  # HF page 7.22B counts the tied LM-head copy
    ("falcon-40b", 41.8e9 - 8192 * 65024, 3e-3, 41.3e9, "all"),  # HF page 41.8B counts the tied LM-head copy
    ("falcon-180b", 180e9, 0.01, 180e9, "all"),  # Falcon-180B model card: 180B
    ("opt-66b", 66e9, 0.01, 66e9, "all"),  # Zhang et al. 2022, Table 1: 66B
    ("gpt-neox-20b", 20_554_567_680, 1e-6, 20_554_567_680, "all"),  # HF checkpoint total
    ("bloom-176b", 176_247_271_424, 1e-9, 176_247_271_424, "all"),  # HF checkpoint total
    ("mistral-7b-v0.1", 7_241_732_096, 1e-9, 7_241_732_096, "all"),  # HF checkpoint total (paper: 7.3B)
]


@pytest.mark.parametrize(("name", "total", "rel", "active", "rule"), PUBLISHED)
def test_parameter_counts_match_the_published_figures(name: str, total: float, rel: float, active: float,
                                                      rule: str) -> None:
    m = roofline.load_model(name)
    assert m.total_params() == pytest.approx(total, rel=rel)
    act = m.active_params()
    if m.moe is None:  # dense: every parameter is active, the published figure is the total
        assert act == m.total_params()
        return
    if rule != "all":
        act -= _embedding(m)
    if rule == "-embed-head" and not m.tie_word_embeddings:
        act -= _embedding(m)
    # the published active count is rounded to the figure shown (two decimals where it has them)
    digits = 2 if active != round(active, -9) else 0
    assert round(act / 1e9, digits) == round(active / 1e9, digits)


def test_gpt_oss_120b_parameters_by_hand() -> None:
    """Per layer: q/k/v/o with biases 2880 x 64 x 64 + 2 x 2880 x 8 x 64 + 64 x 64 x 2880 + biases
    (4096 + 2 x 512 + 2880) = 36,872,000 ... counted term by term below."""
    h, q, kv, e, w = 2880, 64 * 64, 8 * 64, 128, 2880
    attention = h * (q + 2 * kv) + q * h + (q + 2 * kv) + h + 64  # weights, q/k/v biases, o bias, sinks
    expert = 3 * h * w + 2 * w + h  # gate/up/down with biases
    router = h * e + e
    layer = attention + e * expert + router + 2 * h  # two RMSNorms
    total = 36 * layer + 2 * 201088 * h + h  # embedding, LM head, final norm
    assert total == roofline.load_model("gpt-oss-120b").total_params() == 116_829_156_672


# ---- KV cache and state bytes by hand, one model per attention kind --------------------------------
def test_kv_bytes_sliding_window_gpt_oss() -> None:
    m = roofline.load_model("gpt-oss-120b")
    # per token and layer: K and V of 8 heads x 64 in bf16 = 2 x 8 x 64 x 2 = 2048 bytes;
    # 18 sliding layers keep 128 tokens, 18 full layers keep all 10,000
    assert m.kv_cache_bytes(10_000, 2.0) == 18 * 128 * 2048 + 18 * 10_000 * 2048 == 373_358_592
    # with tp=8 each rank holds one KV head
    assert m.kv_cache_bytes(10_000, 2.0, tp=8) == 373_358_592 / 8


def test_kv_bytes_multi_query_falcon_7b() -> None:
    m = roofline.load_model("falcon-7b")
    # 32 layers x (K, V) x 1 head x 64 x 2 bytes = 8192 bytes per token
    assert m.kv_cache_bytes(1, 2.0) == 8192
    assert m.kv_cache_bytes(1, 2.0, tp=1) == m.kv_elements_per_token() * 2


def test_kv_bytes_block_sparse_phi_3_small_keep_everything() -> None:
    m = roofline.load_model("phi-3-small")
    # 32 layers x 2 x 8 x 128 x 2 bytes = 131,072 per token, all cached (only the reads are sparse)
    assert m.kv_cache_bytes(8000, 2.0) == 8000 * 131_072


def test_kv_bytes_chunked_llama_4_scout() -> None:
    m = roofline.load_model("llama-4-scout-17b-16e")
    per = 2 * 8 * 128 * 2  # 4096 bytes per token and layer
    # 36 chunked layers keep one chunk of 8192, 12 global layers the whole 100,000
    assert m.kv_cache_bytes(100_000, 2.0) == (36 * 8192 + 12 * 100_000) * per


def test_kv_bytes_sparse_attention_deepseek_v3_2() -> None:
    m = roofline.load_model("deepseek-v3.2")
    # 61 layers x (latent 512 + rope 64 in bf16 = 1152 bytes + indexer key 128 FP8 bytes + 4-byte scale)
    assert m.kv_cache_bytes(1, 2.0) == 61 * (576 * 2 + 132) == 78_324
    assert m.kv_cache_bytes(1, 1.0) == 61 * (576 + 132)  # FP8 KV cache: the indexer keys are FP8 anyway


def test_state_bytes_linear_attention_qwen3_next() -> None:
    m = roofline.load_model("qwen3-next-80b-a3b")
    # recurrent state 32 value heads x 128 x 128 = 524,288; conv state 3 x (2 x 16 x 128 + 32 x 128) = 24,576;
    # bf16, 36 linear layers: 39,518,208 bytes per sequence whatever its length
    state = 36 * (524_288 + 24_576) * 2
    assert m.linear_state_bytes() == state == 39_518_208
    # plus 12 gated-attention layers x 2 x 2 KV heads x 256 x 2 bytes = 24,576 bytes per token
    assert m.kv_cache_bytes(1000, 2.0) == state + 1000 * 12 * 2048
    assert m.kv_elements_per_token() == 12 * 2 * 2 * 256


def test_memory_report_uses_the_windowed_cache() -> None:
    """gpt-oss-120b at 64 sequences of 32k tokens: the sliding layers hold 128 tokens each."""
    m = roofline.load_model("gpt-oss-120b")
    w = Workload(batch=64, input_len=32_000, output_len=768)
    mem = memory_per_device(m, w, Parallelism(tp=8), 80 * 2**30)
    assert mem.kv_cache_bytes == 64 * (18 * 128 + 18 * 32_768) * 2048 / 8


# ---- loaders -------------------------------------------------------------------------------------
def test_unknown_model_type_lists_the_supported(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "mamba"}')
    with pytest.raises(SpecError) as err:
        roofline.load_model(path)
    text = str(err.value)
    assert "\n" not in text and "unsupported architecture 'mamba'" in text
    for arch in ("gpt_oss", "qwen3_next", "qwen3_5_moe", "glm4_moe", "glm_moe_dsa", "minimax_m2", "kimi_k2",
                 "deepseek_v32", "gemma3", "gptj", "falcon", "opt", "gpt_neox", "bloom"):
        assert arch in text and arch in HF_ARCHITECTURES


@pytest.mark.parametrize(("folder", "change", "message"), [
    ("gpt-oss-20b", {"layer_types": ["full_attention"] * 3}, "layer_types: 3 entries for 24 layers"),
    ("gpt-oss-20b", {"layer_types": ["global"] * 24}, r"layer_types: unsupported \['global'\]"),
    ("gpt-oss-20b", {"num_hidden_layers": 10**30}, "num_hidden_layers: must be an integer >= 1 and <= 10000"),
    ("Qwen3.5-397B-A17B", {"text_config": 7}, "text_config: expected a JSON object"),
    ("GLM-5", {"index_n_heads": None}, "index_n_heads: missing required key"),
    ("opt-66b", {"word_embed_proj_dim": 512}, "word_embed_proj_dim: only equal to hidden_size"),
    ("falcon-40b", {"hidden_size": "big"}, "hidden_size: expected an integer"),
    ("gpt-j-6b", {"n_embd": {"width": 1}}, "n_embd: expected an integer"),
])
def test_bad_configs_are_one_line_errors(tmp_path: Path, folder: str, change: dict, message: str) -> None:
    cfg = json.loads((FIXTURES / folder / "config.json").read_text())
    for key, value in change.items():
        if value is None:
            del cfg[key]
        else:
            cfg[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    with pytest.raises(SpecError, match=message) as err:
        roofline.load_model(path)
    assert "\n" not in str(err.value)


def test_mistral_sliding_window_from_its_config() -> None:
    m = roofline.load_model(FIXTURES / "Mistral-7B-v0.1" / "config.json")
    assert m.sliding_window == 4096 and {g.attention for g in m.layer_groups} == {"sliding"}
    # 32 layers x 2 x 8 x 128 x 2 bytes = 131,072 per token, capped at the 4096-token window
    assert m.kv_cache_bytes(10_000, 2.0) == 4096 * 131_072


def test_gemma_3_layer_pattern() -> None:
    m = roofline.load_model("gemma-3-27b")
    # global iff (i + 1) % 6 == 0: layers 5, 11, ..., 59 (10 of them); layers 60 and 61 are local
    assert [(g.count, g.attention) for g in m.layer_groups] == [(10, "full"), (52, "sliding")]


# ---- predictions ---------------------------------------------------------------------------------
NEW = [*PAIRS, "llama-4-scout-17b-16e"]


@pytest.mark.parametrize("name", NEW)
def test_every_new_model_predicts_on_every_device_or_refuses_cleanly(name: str) -> None:
    """On each bundled device, the smallest tensor-parallel size (1 to 8, then 8 x pp 2) that fits
    gives finite times; where none fits the refusal is an InfeasibleConfigError of one line."""
    m = roofline.load_model(name)
    ran = 0
    for hw in list_hardware():
        dtype = "fp8" if "fp8" in roofline.load_hardware(hw).compute.peak_flops else "bf16"
        for tp, pp in ((1, 1), (2, 1), (4, 1), (8, 1), (8, 2)):
            ep = tp if m.moe is not None and m.moe.num_experts % tp == 0 else 1
            try:
                p = roofline.predict(m, hw, batch=4, input_len=1024, output_len=32, tp=tp, pp=pp, ep=ep, dtype=dtype)
            except InfeasibleConfigError as e:
                assert "\n" not in str(e)
                continue
            assert np.isfinite([p.ttft_s, p.tpot_s, p.e2e_s, p.throughput_tok_s]).all() and p.tpot_s > 0
            ran += 1
            break
    assert ran >= 3, f"{name} fits on fewer than 3 bundled devices"


def test_predict_refuses_a_model_that_does_not_fit_in_one_line(capsys) -> None:
    from roofline.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "-m", "kimi-k2", "-H", "h100-sxm"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "does not fit" in err


def test_sliding_window_makes_long_decode_cheaper() -> None:
    """gpt-oss-120b at 32k context: half the layers read 128 tokens instead of 32k."""
    m = roofline.load_model("gpt-oss-120b")
    data = roofline.model.read_yaml(m.source_file)
    full = ModelSpec.from_dict({**data, "sliding_window": 0, "layers": [{"count": 36, "ffn": "moe"}]})
    kw = dict(batch=64, input_len=32_000, output_len=64, tp=8, dtype="fp8", check_memory=False)
    windowed, unwindowed = roofline.predict(m, "h200-sxm", **kw), roofline.predict(full, "h200-sxm", **kw)
    assert windowed.tpot_s < unwindowed.tpot_s
    assert windowed.memory.kv_cache_bytes < 0.51 * unwindowed.memory.kv_cache_bytes


def test_gemma_2_alternates_and_soft_caps() -> None:
    m = roofline.load_model(FIXTURES / "gemma-2-27b" / "config.json")
    # transformers Gemma 2: even layers local (window 4096), odd layers global; the last (45) is global
    assert [(g.count, g.attention) for g in m.layer_groups] == [(23, "sliding"), (23, "full")]
    assert (m.attn_logit_softcapping, m.final_logit_softcapping) == (50.0, 30.0)
    assert m.total_params() == pytest.approx(27.2e9, rel=1e-3)  # Gemma 2 report / HF page: 27.2B


def test_qwen3_5_dense_hybrid() -> None:
    m = roofline.load_model(FIXTURES / "Qwen3.5-27B" / "config.json")
    assert m.moe is None and m.attention_summary() == "linear 48 + full 16"
    # text decoder 26.9B; the published 27B includes the vision tower
    assert m.total_params() == pytest.approx(27e9, rel=0.01)
    # state per sequence: 48 layers x (48 x 128 x 128 + 3 x (2 x 16 x 128 + 48 x 128)) x 2 bytes
    assert m.linear_state_bytes() == 48 * (48 * 128 * 128 + 3 * (2 * 16 * 128 + 48 * 128)) * 2


def test_falcon_parallel_attention_has_one_all_reduce_per_layer() -> None:
    from roofline.graph import build_phase

    w, par = Workload(batch=2, input_len=128, output_len=8), Parallelism(tp=8)
    falcon = build_phase(roofline.load_model("falcon-40b"), w, par, "decode")
    assert "attn_allreduce" not in falcon.names and "mlp_allreduce" in falcon.names
    # 8192-wide bf16 partial sums of 2 sequences, once per layer (60 layers)
    i = falcon.names.index("mlp_allreduce")
    assert falcon.comm_bytes[i] == 2 * 8192 * 2 and falcon.count[i] == 60
    gptj = build_phase(roofline.load_model("gpt-j-6b"), w, par, "decode")  # vLLM reduces GPT-J twice
    assert "attn_allreduce" in gptj.names


def test_kimi_k2_5_reads_its_text_config(tmp_path: Path) -> None:
    """Kimi K2.5 wraps the K2 decoder in text_config (model_type kimi_k25); the vision tower is dropped."""
    k2 = json.loads((FIXTURES / "Kimi-K2-Instruct" / "config.json").read_text())
    path = tmp_path / "Kimi-K2.5" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"model_type": "kimi_k25", "vision_config": {"vt_num_hidden_layers": 27},
                                "text_config": {**k2, "max_position_embeddings": 262144}}))
    k25 = roofline.load_model(path)
    assert k25.architecture == "kimi_k25" and k25.total_params() == roofline.load_model("kimi-k2").total_params()
