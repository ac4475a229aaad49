"""The metric registry: every metric is declared completely, every output column is registered and
every registered metric is produced by something."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.engine import METRICS as ENGINE_METRICS
from roofline.engine import Scenario, evaluate_configs
from roofline.metrics import (
    CONSTRAINTS,
    METRICS,
    STAGES,
    descriptions,
    is_maximized,
    metric_labels,
    metric_names,
)
from roofline.workload import Parallelism, Workload


@pytest.mark.parametrize("name", list(METRICS))
def test_every_metric_is_declared_completely(name: str) -> None:
    m = METRICS[name]
    assert m.name == name and m.stage in STAGES and m.kind in ("number", "flag", "category")
    assert m.label and m.description
    if m.kind == "number":
        assert m.unit and m.unit in m.label, "a number's axis title carries its unit"
    if m.kind == "category":
        assert m.direction == ""
        with pytest.raises(ValueError, match="no direction"):
            is_maximized(name)
    elif m.stage != "segment":  # a ratio of the breakdown is read, not optimized
        assert m.direction in ("min", "max")
    assert m.limit in ("", "max", "min")
    if m.limit:  # a constraint bounds the bad side: an upper bound on what is minimized
        assert m.limit == ("max" if m.direction == "min" else "min")


def test_constraints_name_their_metric_and_bound() -> None:
    assert CONSTRAINTS["max_tpot_ms"].metric == "tpot_ms" and CONSTRAINTS["max_tpot_ms"].upper
    assert CONSTRAINTS["min_goodput_tok_s"].metric == "goodput_tok_s"
    assert not CONSTRAINTS["min_goodput_tok_s"].upper
    assert CONSTRAINTS["memory_fit"].metric == "fits"
    for name, c in CONSTRAINTS.items():
        assert c.metric in METRICS and c.description
        if name != "memory_fit":
            assert name == f"{'max' if c.upper else 'min'}_{c.metric}"


def test_labels_and_descriptions_come_from_the_registry() -> None:
    from roofline.cli._common import LABELS as TABLE_LABELS
    from roofline.plots import LABELS as AXIS_LABELS
    from roofline.plots import axis_label

    assert metric_labels("axis").items() <= AXIS_LABELS.items()
    assert metric_labels("short").items() <= TABLE_LABELS.items()
    assert axis_label("tpot_ms") == "TPOT (ms per token)" and axis_label("decode_bound") == "decode bound"
    with pytest.raises(ValueError, match="style"):
        metric_labels("long")
    with pytest.raises(KeyError, match="unknown metric 'bogus'"):
        is_maximized("bogus")
    assert descriptions("economics") == roofline.economics.ECONOMIC_METRICS


def test_usd_metrics_print_to_the_dollar() -> None:
    from roofline.cli._common import _fmt

    assert _fmt(1234567.4, "system_cost_usd") == "1,234,567"
    assert _fmt(1234.5678, "tpot_ms") == "1,235"  # four significant digits
    assert _fmt(0.123456, "tpot_ms") == "0.1235"


def test_engine_columns_are_the_registered_engine_and_economics_metrics() -> None:
    m, hw = roofline.load_model("llama-3-8b"), roofline.load_hardware("h100-sxm")
    out = evaluate_configs(Scenario(m, Workload(batch=1, input_len=256, output_len=8), Parallelism(), hw), 2,
                           l2_capacity_MiB=np.array([25.0, 50.0]))
    assert tuple(out) == metric_names("engine", "economics") == tuple(ENGINE_METRICS)


def test_sweep_serving_and_segment_columns_are_registered() -> None:
    from roofline.sweep import sweep_frame
    from roofline.sweepfile import METRIC_NAMES, sweep_from_dict

    spec = sweep_from_dict({
        "hardware": "h100-sxm", "model": "llama-3.1-8b",
        "workload": {"input_len": 512, "output_len": 64, "dtype": "fp8"},
        "sweep": {"l2_capacity_MiB": [25, 100]}, "serving": {"concurrency": 8},
        "objective": {"maximize": "goodput_tok_s"}}, "s.yaml")
    df = sweep_frame(spec)
    produced = set(df.columns)
    for stage in ("engine", "economics", "serving"):
        assert set(metric_names(stage)) <= produced, stage
    # every number a sweep file may optimize or bound is a registered number of these stages
    assert set(METRIC_NAMES) == {n for n in metric_names("engine", "economics", "serving")
                                 if METRICS[n].kind == "number"}
    p = roofline.predict("llama-3-8b", "h100-sxm", tp=2, input_len=256, output_len=8, prefetch=True)
    assert set(metric_names("segment")) <= set(p.segments["decode"][0])


def test_serve_outputs_are_registered() -> None:
    from roofline.serving import serve

    r = serve("llama-3.1-8b", "h100-sxm", dtype="fp8", input_len=256, output_len=16, concurrency=4,
              num_requests=16, simulate_events=True)
    row = r.rows[0]
    assert set(metric_names("serve")) <= set(row)
    # every number of the row but the load it was run at is a registered metric
    assert {k for k in row if k not in ("concurrency", "rate_rps")} <= set(metric_names())


def _cli_json(capsys, *args: str) -> dict:
    import json

    from roofline.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out = capsys.readouterr()
    assert e.value.code in (0, None), out.err
    return json.loads(out.out)


def test_every_printed_and_json_column_has_a_registry_entry(capsys) -> None:
    """Tables and JSON name a metric (roofline.metrics) or a parameter (roofline.registry), and their
    headers and definitions come from there: the sizing table printed raw goodput_tok_s_per_device."""
    from roofline.cli._common import LABELS as TABLE_LABELS
    from roofline.cli._serve_disagg import SIZING_COLUMNS
    from roofline.cli.serve import COLUMNS, COST_COLUMNS
    from roofline.cli.sweep import SERVING_SHOW, SHOW
    from roofline.economics import SERVING_ECONOMIC_METRICS
    from roofline.metrics import definition
    from roofline.registry import is_parameter
    from roofline.serving import DEFINITIONS as SERVE_DEFINITIONS
    from roofline.serving.disagg import DISAGG_DEFINITIONS

    for column in (*SHOW, *SERVING_SHOW, *COLUMNS, *COST_COLUMNS, *SIZING_COLUMNS, "kv_transfer_ms"):
        assert column in METRICS or is_parameter(column), column
        assert column in TABLE_LABELS or METRICS.get(column, None) is None or METRICS[column].short == "", column
    assert TABLE_LABELS["goodput_tok_s_per_device"] == "goodput/dev" and TABLE_LABELS["rate_rps"] == "rate req/s"
    # the serve-side texts are the registry's meanings in roofline serve's rows
    for texts, context in ((SERVE_DEFINITIONS, "serve"), (DISAGG_DEFINITIONS, "disagg"),
                           (SERVING_ECONOMIC_METRICS, "serve")):
        for name, text in texts.items():
            assert name == "percentiles" or text == definition(name, context), name
    assert "decode instances" in DISAGG_DEFINITIONS["kv_utilization"]  # the prefill pools' cache is not counted
    assert definition("ttft_ms", "disagg") == definition("ttft_ms", "serve")  # falls back to serve's text
    assert definition("tpot_ms", "serve") != definition("tpot_ms")  # per request, not per decode step
    # the sizing search: every key of its JSON rows is registered and defined, every sizing metric produced
    data = _cli_json(capsys, "serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--disagg", "--isl", "2048",
                     "--osl", "256", "--max-devices", "4", "--json")
    keys = {k for r in data["rows"] for k in r}
    assert {"hardware", "tp"} <= keys and all(k in METRICS or is_parameter(k) for k in keys)
    assert {k for k in keys if k in METRICS} == set(data["definitions"])
    assert data["definitions"]["rate_rps"] == definition("rate_rps", "sizing")
    assert set(metric_names("sizing")) <= keys | {"configuration"}  # the table's description of a row
    # roofline serve: every definition names a registered metric, or says how to read the others
    data = _cli_json(capsys, "serve", "-m", "llama-3.1-8b", "-H", "h100-sxm", "--isl", "512", "--osl", "32",
                     "--concurrency", "4", "--json")
    assert set(data["definitions"]) - set(METRICS) == {"percentiles", "evaluator", "cost_basis"}
    assert all(k in METRICS for r in data["rows"] for k in r)
