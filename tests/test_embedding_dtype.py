"""The input embedding of a quantized checkpoint stays in bf16 by default, as the LM head does
(roofline.workload.checkpoint_op_dtypes): ModelOpt and llm-compressor quantize linear layers only,
gpt-oss lists ``model.embed_tokens`` among its modules not converted. ``lm_head_dtype`` governs the
head alone; ``op_dtypes`` ``embedding=W`` sets the table; a tied table has one precision."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roofline.exceptions import SpecError
from roofline.graph.footprint import weight_params_by_class
from roofline.model import load_model
from roofline.predict import predict
from roofline.sweep import sweep_frame
from roofline.sweepfile import sweep_from_dict
from roofline.workload import Parallelism, Workload
from tests.conftest import one_line_error

FAST = dict(datasheet=True, check_memory=False, input_len=1024, output_len=128)
#: NVFP4: 4 bits per weight + one FP8 scale per 16 weights = 4.5 bits = 0.5625 B (roofline.dtypes)
NVFP4_BYTES = 0.5625

# Llama-3.1-8B (model_specs/llama-3.1-8b.yaml): vocab 128,256 x hidden 4,096 = 525,336,576 per table.
# Per layer q 4096^2 + k, v 2 x 4096 x 1024 + o 4096^2 + MLP 3 x 4096 x 14336 + 2 norms x 4096
# = 16,777,216 + 8,388,608 + 16,777,216 + 176,160,768 + 8,192 = 218,112,000; x 32 = 6,979,584,000;
# + final norm 4,096 = 6,979,588,096 outside the two tables (8,030,261,248 parameters in all).
TABLE_8B, REST_8B = 128_256 * 4_096, 32 * 218_112_000 + 4_096
# Llama-3.1-70B: 128,256 x 8,192 = 1,050,673,152 per table; 80 layers x 855,654,400 + final norm 8,192
# (the hand count of tests/test_lm_head_dtype.py)
TABLE_70B, REST_70B = 128_256 * 8_192, 80 * 855_654_400 + 8_192


@pytest.mark.parametrize("model, table, rest, dtype, weight_B, after_B", [
    # fp8: the rest 1 B each, both tables 2 B: 6,979,588,096 + 4 x 525,336,576 = 9,080,934,400
    ("llama-3.1-8b", TABLE_8B, REST_8B, "fp8", 1.0, 9_080_934_400),
    # nvfp4: 6,979,588,096 x 0.5625 = 3,926,018,304; + 4 x 525,336,576 = 6,027,364,608
    ("llama-3.1-8b", TABLE_8B, REST_8B, "nvfp4", NVFP4_BYTES, 6_027_364_608),
    # fp8: 68,452,360,192 + 4 x 1,050,673,152 = 72,655,052,800
    ("llama-3.1-70b", TABLE_70B, REST_70B, "fp8", 1.0, 72_655_052_800),
    # nvfp4: 68,452,360,192 x 0.5625 = 38,504,452,608; + 4 x 1,050,673,152 = 42,707,145,216
    ("llama-3.1-70b", TABLE_70B, REST_70B, "nvfp4", NVFP4_BYTES, 42_707_145_216),
])
def test_weight_bytes_before_and_after_by_hand(model: str, table: int, rest: int, dtype: str, weight_B: float,
                                               after_B: int) -> None:
    assert rest * weight_B + 2 * table * 2 == after_B
    after = predict(model, "b200", dtype=dtype, **FAST).memory.weights_bytes
    # before this rule the embedding was in the weights' format: asking for it gives that back
    before = predict(model, "b200", dtype=dtype, op_dtypes=f"embedding={dtype}", **FAST).memory.weights_bytes
    assert after == after_B
    # the difference is the embedding table, (2 - bytes per weight) more per parameter:
    # 8B fp8 525,336,576 B, 8B nvfp4 755,171,328 B, 70B fp8 1,050,673,152 B, 70B nvfp4 1,510,342,656 B
    assert after - before == table * (2 - weight_B)
    # TP shards the vocabulary: each of 8 devices holds an eighth of the difference
    tp8 = [predict(model, "b200", dtype=dtype, tp=8, op_dtypes=o, **FAST).memory.weights_bytes
           for o in (None, f"embedding={dtype}")]
    assert tp8[0] - tp8[1] == table * (2 - weight_B) / 8


def test_the_lookup_reads_two_bytes_per_element() -> None:
    # a decode step of batch 16 looks up 16 rows of 8,192 elements: 131,072 x 2 B = 262,144 B (131,072 B in fp8)
    p = predict("llama-3.1-70b", "h100-sxm", dtype="fp8", batch=16, **FAST)
    fp8 = predict("llama-3.1-70b", "h100-sxm", dtype="fp8", batch=16, op_dtypes="embedding=fp8", **FAST)
    rows = [next(r for r in x.breakdown["decode"] if r["op"] == "embedding") for x in (p, fp8)]
    assert rows[0]["weight_bytes"] == 16 * 8_192 * 2 == 262_144
    assert rows[1]["weight_bytes"] == 16 * 8_192 == 131_072
    assert p.tpot_s >= fp8.tpot_s  # 131 kB more per step: a few ns at 3.35 TB/s


@pytest.mark.parametrize("dtype, head, spec", [
    ("fp8", None, "embedding=bf16:bf16,lm_head=bf16:bf16"),
    # lm_head_dtype governs the head alone: the embedding stays as the checkpoint ships it
    ("fp8", "same", "embedding=bf16:bf16,lm_head=fp8:fp8"),
    ("nvfp4", "fp8", "embedding=bf16:bf16,lm_head=fp8:fp8"),
    ("bf16", None, ""), ("bf16", "same", ""), ("bf16", "fp8", "lm_head=fp8:fp8"),
])
def test_lm_head_dtype_governs_the_head_only(dtype: str, head: str | None, spec: str) -> None:
    m = load_model("llama-3.1-70b")
    w = Workload.for_model(m, dtype, lm_head_dtype=head)
    assert w.op_dtypes_spec == spec
    assert Workload.with_dtype(dtype, op_dtypes=spec or None).op_dtypes == w.op_dtypes  # the text rebuilds it
    # every class quantized, the workload before both rules, is two options away
    every = Workload.for_model(m, "fp8", lm_head_dtype="same", op_dtypes="embedding=fp8")
    assert every.precision("embedding") == every.precision("lm_head") == ("fp8", "fp8")


def test_a_tied_table_has_one_precision() -> None:
    # phi-3-small ties its embedding to its head: the footprint counts one table (under embedding), which the
    # head GEMM streams; 100,352 x 4,096 = 411,041,792 parameters, 2 B each under int8 weights by default
    m = load_model("phi-3-small")
    assert m.tie_word_embeddings and m.vocab_size * m.hidden_size == 411_041_792
    params = weight_params_by_class(m, Parallelism())
    assert params["lm_head"] == 0 and params["embedding"] == 411_041_792
    cases = {"default": {}, "same": {"lm_head_dtype": "same"}, "embedding": {"op_dtypes": "embedding=int8"},
             "head": {"op_dtypes": "lm_head=int8"}}
    w = {k: Workload.for_model(m, "int8", **kw) for k, kw in cases.items()}  # type: ignore[arg-type]
    assert w["default"].precision("embedding") == w["default"].precision("lm_head") == ("bf16", "bf16")
    # the one named, by either option or class, is the table's
    for k in ("same", "embedding", "head"):
        assert w[k].precision("embedding") == w[k].precision("lm_head") == ("int8", "int8"), k
    p = {k: predict(m, "h100-sxm", workload=w[k], **FAST) for k in ("default", "same")}
    assert p["default"].memory.weights_bytes - p["same"].memory.weights_bytes == 411_041_792  # 1 B more each
    head = [next(r for r in x.breakdown["decode"] if r["op"] == "lm_head") for x in p.values()]
    assert head[0]["weight_bytes"] == 2 * head[1]["weight_bytes"] == 2 * 411_041_792
    # a bf16 model asked for its bf16 head names nothing
    assert Workload.for_model(m, "bf16", lm_head_dtype="same").op_dtypes == ()
    with pytest.raises(SpecError, match=r"phi-3-small ties its embedding to its LM head \(one table\), but "
                                        r"embedding=fp8:fp8, lm_head=int8:int8 differ"):
        Workload.for_model(m, "int8", lm_head_dtype="same", op_dtypes="embedding=fp8")


def test_a_checkpoints_own_classes_and_a_tied_override() -> None:
    # gpt-oss lists model.embed_tokens in modules_to_not_convert: bf16 with or without the rule
    gpt = load_model("gpt-oss-120b")
    assert Workload.for_model(gpt).precision("embedding") == ("bf16", "bf16")
    assert Workload.for_model(gpt, lm_head_dtype="same").precision("embedding") == ("bf16", "bf16")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=st.sampled_from(["llama-3-8b", "mixtral-8x7b", "phi-3-small", "qwen2-7b"]),
       dtype=st.sampled_from(["fp8", "int8", "int4", "nvfp4", "mxfp4:bf16", "mxfp6"]), tp=st.sampled_from([1, 2, 4]),
       head=st.sampled_from([None, "same"]))
def test_the_rule_never_lowers_the_weight_bytes(model: str, dtype: str, tp: int, head: str | None) -> None:
    # the embedding in bf16 holds at least the bytes of any narrower format; for a tied model "same" quantizes
    # the one table, the head and the embedding together, both as before
    weight = dtype.partition(":")[0]
    kw = dict(dtype=dtype, tp=tp, lm_head_dtype=head, **FAST)
    now = predict(model, "b200", **kw).memory.weights_bytes  # type: ignore[arg-type]
    tied = load_model(model).tie_word_embeddings
    before = now if (tied and head) else predict(model, "b200", op_dtypes=f"embedding={weight}",
                                                 **kw).memory.weights_bytes  # type: ignore[arg-type]
    assert now >= before
    assert (now > before) or (tied and head)


def test_sweep_and_serve_carry_the_embedding() -> None:
    base = {"name": "t", "hardware": "h100-sxm", "model": "llama-3-8b",
            "workload": {"batch": 4, "input_len": 512, "output_len": 64, "dtype": "fp8", "lm_head_dtype": "same"},
            "parallelism": {"tp": 1}, "sweep": {"hbm_bandwidth_GBps": [3350]}}
    frame = sweep_frame(sweep_from_dict(base, "t.yaml"))
    assert frame["op_dtypes"].tolist() == ["embedding=bf16:bf16,lm_head=fp8:fp8"]
    one = predict("llama-3-8b", "h100-sxm", dtype="fp8", lm_head_dtype="same", batch=4, input_len=512, output_len=64)
    assert frame["tpot_ms"].iloc[0] == pytest.approx(one.tpot_s * 1e3, rel=1e-9)
    sweep_fp8 = sweep_frame(sweep_from_dict(base | {"workload": base["workload"] | {"op_dtypes": {"embedding": "fp8"}}},
                                            "t.yaml"))
    assert sweep_fp8["op_dtypes"].tolist() == ["embedding=fp8:fp8,lm_head=fp8:fp8"]


def test_cli(cli) -> None:
    code, out, err = cli("serve", "-m", "llama-3-8b", "-H", "h100-sxm", "--dtype", "fp8", "--concurrency", "4",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["summary"]["op_dtypes"] == [["embedding", "bf16", "bf16"], ["lm_head", "bf16", "bf16"]]
    args = ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--dtype", "fp8", "--json", "--lm-head-dtype", "same"]
    kept, quantized = (json.loads(cli(*args, *extra)[1]) for extra in ([], ["--op-dtype", "embedding=fp8"]))
    assert quantized["memory"]["weights_GiB"] < kept["memory"]["weights_GiB"]
    one_line_error(cli("predict", "-m", "phi-3-small", "-H", "h100-sxm", "--dtype", "int8", "--lm-head-dtype", "same",
                       "--op-dtype", "embedding=fp8"), "phi-3-small ties its embedding to its LM head", "one precision")
