"""The LM head of a quantized checkpoint stays in bf16 by default (roofline.workload.checkpoint_op_dtypes),
as the shipped checkpoints keep it and as the serving validation's rows are labelled; ``lm_head_dtype="same"``
restores the head in the weights' precision. (The input embedding follows the same rule:
tests/test_embedding_dtype.py; here it is set apart where a test compares heads.)"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofline.hardware import load_hardware
from roofline.model import load_model
from roofline.predict import predict
from roofline.sweep import sweep_frame
from roofline.sweepfile import sweep_from_dict
from roofline.validation import CHECKPOINT_KEPT_BF16
from roofline.validation import checkpoint_op_dtypes as validation_rule
from roofline.workload import QUANTIZED_WEIGHT_DTYPES, Workload, checkpoint_op_dtypes
from tests.conftest import one_line_error

# Llama-3.1-70B (model_specs/llama-3.1-70b.yaml): vocab 128,256, hidden 8,192, head not tied
VOCAB, HIDDEN = 128_256, 8_192
HEAD_PARAMS = VOCAB * HIDDEN  # 1,050,673,152
# parameters: per layer q 8192^2 + k, v 2 x 8192 x 1024 + o 8192^2 + MLP 3 x 8192 x 28672 + 2 norms x 8192
# = 67,108,864 + 16,777,216 + 67,108,864 + 704,643,072 + 16,384 = 855,654,400; x 80 layers = 68,452,352,000;
# + embedding and head 2 x 1,050,673,152 + final norm 8,192 = 70,553,706,496
PARAMS = 80 * 855_654_400 + 2 * HEAD_PARAMS + HIDDEN
FAST = dict(datasheet=True, check_memory=False, input_len=1024, output_len=128)


def test_weight_bytes_of_llama_70b_fp8_by_hand() -> None:
    # every weight 1 byte in fp8 but the head and the embedding, 2 bytes in bf16:
    # 70,553,706,496 + 2 x 1,050,673,152 = 72,655,052,800 B; "same" quantizes the head only: 71,604,379,648 B
    assert PARAMS == 70_553_706_496
    default = predict("llama-3.1-70b", "h100-sxm", dtype="fp8", **FAST)
    same = predict("llama-3.1-70b", "h100-sxm", dtype="fp8", lm_head_dtype="same", **FAST)
    every = predict("llama-3.1-70b", "h100-sxm", dtype="fp8", lm_head_dtype="same", op_dtypes="embedding=fp8", **FAST)
    assert default.memory.weights_bytes == PARAMS + 2 * HEAD_PARAMS == 72_655_052_800
    assert same.memory.weights_bytes == PARAMS + HEAD_PARAMS == 71_604_379_648
    assert every.memory.weights_bytes == PARAMS  # the old, all-fp8 figure
    # TP 4 splits the head's vocabulary: 1,050,673,152 / 4 = 262,668,288 B more per device
    tp4 = [predict("llama-3.1-70b", "h100-sxm", dtype="fp8", tp=4, lm_head_dtype=h, **FAST) for h in (None, "same")]
    assert tp4[0].memory.weights_bytes - tp4[1].memory.weights_bytes == HEAD_PARAMS / 4 == 262_668_288


def test_decode_step_delta_is_the_head_bytes_over_bandwidth() -> None:
    # batch 1 on an H100 (datasheet: 3.35 TB/s x 0.84 efficiency = 2.814 TB/s), TP 4. The head GEMM is memory
    # bound either way (2 x 1 x 32,064 x 8,192 = 525 MFLOP is 0.5 us at 989 TFLOP/s); in bf16 instead of fp8 it
    # reads one more byte per weight, 128,256 x 8,192 / 4 = 262,668,288 B, and per activation: the input
    # 8,192 and the logits 32,064 one more byte each = 40,256 B; 262,708,544 B / 2.814e12 B/s = 93.358 us
    hw = load_hardware("h100-sxm")
    bandwidth_Bps = hw.memory.hbm_bandwidth_Bps * hw.memory.hbm_efficiency
    assert bandwidth_Bps == pytest.approx(2.814e12)
    extra_bytes = HEAD_PARAMS / 4 + (HIDDEN + VOCAB // 4)
    p = [predict("llama-3.1-70b", hw, dtype="fp8", tp=4, lm_head_dtype=h, **FAST) for h in (None, "same")]
    assert p[0].tpot_s - p[1].tpot_s == pytest.approx(extra_bytes / bandwidth_Bps, rel=1e-9)
    assert extra_bytes / bandwidth_Bps == pytest.approx(93.358e-6, rel=1e-4)
    head = [next(r for r in x.breakdown["decode"] if r["op"] == "lm_head") for x in p]
    assert head[0]["weight_bytes"] == 2 * head[1]["weight_bytes"] == HEAD_PARAMS / 2
    assert head[0]["bound"] == head[1]["bound"] == "memory"


def test_same_restores_the_old_result_exactly() -> None:
    # before this rule, --dtype fp8 quantized every GEMM and the embedding: a Workload built field by field
    # still does; "same" with the embedding named in fp8 gives it back
    old = Workload(weight_dtype="fp8", activation_dtype="fp8", kv_dtype="fp8", batch=8, input_len=1024, output_len=128)
    by_workload = predict("llama-3.1-70b", "h100-sxm", workload=old, tp=4)
    same = predict("llama-3.1-70b", "h100-sxm", dtype="fp8", lm_head_dtype="same", op_dtypes="embedding=fp8", tp=4,
                   batch=8, input_len=1024, output_len=128)
    assert (same.ttft_s, same.tpot_s, same.memory.weights_bytes) == (
        by_workload.ttft_s, by_workload.tpot_s, by_workload.memory.weights_bytes)
    assert same.workload.precision("lm_head") == ("fp8", "fp8")


KEPT = "embedding=bf16:bf16,"  # the embedding of a quantized checkpoint (tests/test_embedding_dtype.py)


@pytest.mark.parametrize("dtype, head, spec", [
    ("fp8", None, KEPT + "lm_head=bf16:bf16"), ("nvfp4", None, KEPT + "lm_head=bf16:bf16"),
    ("int4", None, KEPT + "lm_head=bf16:bf16"), ("mxfp4:bf16", None, KEPT + "lm_head=bf16:bf16"), ("bf16", None, ""),
    ("fp16", None, ""), ("bf16:fp8", None, ""), ("fp8", "same", KEPT + "lm_head=fp8:fp8"), ("bf16", "same", ""),
    ("nvfp4", "fp8", KEPT + "lm_head=fp8:fp8"), ("bf16", "fp8", "lm_head=fp8:fp8"),
    ("int4", "same", KEPT + "lm_head=int4:bf16"),
])
def test_the_rule_per_dtype(dtype: str, head: str | None, spec: str) -> None:
    w = Workload.for_model(load_model("llama-3.1-70b"), dtype, lm_head_dtype=head)
    assert w.op_dtypes_spec == spec
    # the op_dtypes text alone rebuilds it (sweep columns, search replays, report commands)
    assert Workload.with_dtype(dtype, op_dtypes=spec or None).op_dtypes == w.op_dtypes


def test_other_classes_and_an_explicit_op_dtype_are_kept() -> None:
    m = load_model("llama-3.1-70b")
    w = Workload.for_model(m, "nvfp4", op_dtypes="attention=fp8")
    assert w.op_dtypes_spec == "attention=fp8:fp8,embedding=bf16:bf16,lm_head=bf16:bf16"
    assert Workload.for_model(m, "fp8", op_dtypes="lm_head=nvfp4").precision("lm_head") == ("nvfp4", "nvfp4")
    # the same head given both ways agrees; two different ones are refused
    assert Workload.for_model(m, "fp8", op_dtypes="lm_head=fp8", lm_head_dtype="same").precision("lm_head") == (
        "fp8", "fp8")


@pytest.mark.parametrize("head, op_dtypes, pattern", [
    ("fp7", None, "lm_head_dtype: 'fp7' is not allowed; choose same"),
    ("fp8:fp3", None, "lm_head_dtype activations: 'fp3' is not allowed"),
    ("same", "lm_head=nvfp4", "contradicts op_dtypes lm_head=nvfp4:nvfp4"),
])
def test_bad_lm_head_dtype(head: str, op_dtypes: str | None, pattern: str) -> None:
    from roofline.exceptions import SpecError

    with pytest.raises(SpecError, match=pattern.replace("(", r"\(")):
        Workload.for_model(load_model("llama-3.1-70b"), "fp8", op_dtypes=op_dtypes, lm_head_dtype=head)


def test_a_checkpoint_keeps_its_head_and_same_quantizes_it() -> None:
    # gpt-oss ships MXFP4 experts with the head in its modules_to_not_convert: bf16 either way by default
    m = load_model("gpt-oss-120b")
    assert Workload.for_model(m).precision("lm_head") == ("bf16", "bf16")
    assert Workload.for_model(m, lm_head_dtype="same").precision("lm_head") == (m.quantization.weight_dtype,
                                                                               m.quantization.activation_dtype)


def test_validation_rows_keep_their_op_dtypes() -> None:
    # the serving rows' labels are the user default's rule (the fitted scales were fitted on them):
    # fp8 and NVFP4 rows keep the embedding and the head in bf16, bf16 rows have no class apart
    dtypes = np.array(["fp8", "nvfp4", "bf16", "fp8"])
    kept = CHECKPOINT_KEPT_BF16
    assert kept == "embedding=bf16,lm_head=bf16"
    assert validation_rule is checkpoint_op_dtypes
    assert checkpoint_op_dtypes(dtypes).tolist() == [kept, kept, "", kept]
    assert checkpoint_op_dtypes("fp8") == kept and checkpoint_op_dtypes("bf16") == ""
    assert set(QUANTIZED_WEIGHT_DTYPES) == {"fp8", "mxfp8", "int8", "int4", "mxfp6", "nvfp4", "mxfp4"}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from(["fp8", "nvfp4", "int4", "int8", "mxfp4:bf16"]), batch=st.integers(1, 64),
       input_len=st.integers(16, 8192), tp=st.sampled_from([1, 2, 8]))
def test_same_is_never_slower(dtype: str, batch: int, input_len: int, tp: int) -> None:
    # a bf16 head reads at least as many bytes at no higher peak than a quantized one
    kw = dict(dtype=dtype, batch=batch, input_len=input_len, output_len=64, tp=tp, check_memory=False)
    kept, same = (predict("llama-3-8b", "b200", lm_head_dtype=h, **kw) for h in (None, "same"))
    assert same.tpot_s <= kept.tpot_s and same.ttft_s <= kept.ttft_s
    assert same.memory.weights_bytes < kept.memory.weights_bytes


def test_sweep_file_lm_head_dtype() -> None:
    base = {"name": "t", "hardware": "h100-sxm", "model": "llama-3-8b",
            "workload": {"batch": 4, "input_len": 512, "output_len": 64, "dtype": "fp8"}, "parallelism": {"tp": 1},
            "sweep": {"hbm_bandwidth_GBps": [3350]}}
    kept = sweep_frame(sweep_from_dict(base, "t.yaml"))
    same = sweep_frame(sweep_from_dict(base | {"workload": base["workload"] | {"lm_head_dtype": "same"}}, "t.yaml"))
    assert kept["op_dtypes"].tolist() == [KEPT + "lm_head=bf16:bf16"]
    assert same["op_dtypes"].tolist() == [KEPT + "lm_head=fp8:fp8"]
    assert same["tpot_ms"].iloc[0] < kept["tpot_ms"].iloc[0]
    one = predict("llama-3-8b", "h100-sxm", dtype="fp8", lm_head_dtype="same", batch=4, input_len=512, output_len=64)
    assert same["tpot_ms"].iloc[0] == pytest.approx(one.tpot_s * 1e3, rel=1e-9)
    from roofline.exceptions import SpecError

    with pytest.raises(SpecError, match="t.yaml: workload.lm_head_dtype: .*'fp7' is not allowed"):
        sweep_from_dict(base | {"workload": base["workload"] | {"lm_head_dtype": "fp7"}}, "t.yaml")
    with pytest.raises(SpecError, match="t.yaml: sweep.lm_head_dtype: .*'fp7' is not allowed"):
        sweep_from_dict(base | {"sweep": {"lm_head_dtype": ["same", "fp7"]}}, "t.yaml")


@pytest.mark.parametrize("command", [
    ["predict", "-m", "llama-3-8b", "-H", "h100-sxm"],
    ["compare", "-m", "llama-3-8b", "-H", "h100-sxm"],
    ["serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4"],
    ["serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--concurrency", "4", "--prefill", "tp=1", "--decode", "tp=1"],
])
def test_cli_bad_lm_head_dtype(cli, command: list[str]) -> None:
    one_line_error(cli(*command, "--dtype", "fp8", "--lm-head-dtype", "fp7"), "lm_head_dtype", "'fp7'", "same")


def test_cli_lm_head_dtype_same(cli) -> None:
    import json

    args = ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--dtype", "fp8", "--json"]
    kept, same = (json.loads(cli(*args, *extra)[1]) for extra in ([], ["--lm-head-dtype", "same"]))
    assert same["tpot_ms"] < kept["tpot_ms"]
    code, out, _ = cli("serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--dtype", "fp8", "--concurrency", "4", "--json",
                       "--lm-head-dtype", "same")
    assert code == 0 and json.loads(out)["summary"]["op_dtypes"] == [["embedding", "bf16", "bf16"],
                                                                    ["lm_head", "fp8", "fp8"]]
