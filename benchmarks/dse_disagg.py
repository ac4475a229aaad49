"""The design-space answer of docs/disaggregation.md: where disaggregated prefill/decode beats
aggregated serving, how the answer moves with the KV link bandwidth, and what a heterogeneous
pair of devices buys per dollar (analytic model, the sizing search of roofline.serving).

    .venv/bin/python benchmarks/dse_disagg.py [OUT_DIR]   # default runs/dse_disagg

Writes wins.csv, link.csv, pairs.csv, checks.csv, dynamo.csv and link_bandwidth.html/.png, pairs_<workload>.html/.png
into OUT_DIR and prints the tables and the wall time.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

import roofline
from roofline.serving import engine_defaults, load_overheads
from roofline.serving.disagg_sizing import SizingProblem, build_candidates, size_disagg
from roofline.validation import calibrated_hardware, list_profiles

WORKLOADS = {"prompt-heavy 8k/1k": (8192, 1024), "decode-heavy 1k/8k": (1024, 8192)}
SLOS = {"relaxed (TTFT 2 s, TPOT 50 ms)": (2000.0, 50.0), "tight (TTFT 1 s, TPOT 20 ms)": (1000.0, 20.0)}
#: (model, devices, tp options, device budget)
MODELS = {"llama-3.1-70b": ("h200-sxm", (1, 2, 4, 8), 16), "deepseek-v3": ("h200-sxm", (8,), 32)}
#: the issue's range is 25-900 GB/s per device; 1-10 show where the link starts to matter
LINKS_GBPS = (1, 2, 5, 10, 25, 50, 100, 200, 400, 900)
PAIR_DEVICES = ("h100-sxm", "h200-sxm", "b200", "mi300x")
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def device(name: str) -> roofline.HardwareSpec:
    """The device as `roofline serve` uses it: its calibrated profile where one ships."""
    return calibrated_hardware(name) if name in list_profiles() else roofline.load_hardware(name)


def problem(model: str, hw: tuple, tps: tuple[int, ...], budget: int, isl: int, osl: int,
            slo: tuple[float, float], dtype: str = "fp8", **kw: object) -> SizingProblem:
    m = roofline.load_model(model)
    return SizingProblem(m, roofline.Workload.with_dtype(dtype, kv_dtype=dtype), engine_defaults("vllm"),
                         load_overheads("vllm"), float(isl), float(osl), hw, hw, tps=tps, max_devices=budget,
                         slo_ttft_ms=slo[0], slo_tpot_ms=slo[1], **kw)


def config(row: dict | None, devices: bool = False) -> str:
    if row is None:
        return "none meets the SLO"
    if row["mode"] == "agg":
        return f"tp={row['tp']} replicas"
    return (f"{row['prefill_instances']}P tp={row['prefill_tp']} + {row['decode_instances']}D tp={row['decode_tp']}"
            + (f" ({row['prefill_hardware']} + {row['decode_hardware']})"
               if devices or row["prefill_hardware"] != row["decode_hardware"] else ""))


def wins() -> pd.DataFrame:
    rows = []
    for model, (hw_name, tps, budget) in MODELS.items():
        hw = (device(hw_name),)
        cands = None
        for wl, (isl, osl) in WORKLOADS.items():
            for slo_name, slo in SLOS.items():
                p = problem(model, hw, tps, budget, isl, osl, slo)
                cands = cands or build_candidates(p)
                r = size_disagg(p, cands)
                agg = r.best_agg["objective"] if r.best_agg else 0.0
                dis = r.best_disagg["objective"] if r.best_disagg else 0.0
                rows.append({"model": model, "device": hw_name, "workload": wl, "slo": slo_name,
                             "agg_config": config(r.best_agg), "agg_tok_s_per_device": agg,
                             "disagg_config": config(r.best_disagg), "disagg_tok_s_per_device": dis,
                             "kv_transfer_ms": r.best_disagg["kv_transfer_ms"] if r.best_disagg else None,
                             "disagg_over_agg": dis / agg if agg > 0 else float("inf") if dis > 0 else None})
    return pd.DataFrame(rows)


def link() -> pd.DataFrame:
    rows = []
    slo = SLOS["tight (TTFT 1 s, TPOT 20 ms)"]
    for model, (hw_name, tps, budget) in MODELS.items():
        hw = (device(hw_name),)
        cands = None
        for wl, (isl, osl) in WORKLOADS.items():
            base = problem(model, hw, tps, budget, isl, osl, slo, kv_path="inter")
            cands = cands or build_candidates(base)
            for overlap in (False, True):
                for gbps in LINKS_GBPS:
                    r = size_disagg(replace(base, kv_bandwidth_GBps=float(gbps), kv_overlap=overlap), cands)
                    agg = r.best_agg["objective"] if r.best_agg else 0.0
                    dis = r.best_disagg["objective"] if r.best_disagg else 0.0
                    rows.append({"model": model, "workload": wl, "overlap": overlap, "link_GBps": gbps,
                                 "disagg_config": config(r.best_disagg), "disagg_tok_s_per_device": dis,
                                 "agg_tok_s_per_device": agg, "disagg_over_agg": dis / agg if agg else None,
                                 "kv_transfer_ms": r.best_disagg["kv_transfer_ms"] if r.best_disagg else None})
    return pd.DataFrame(rows)


def pairs() -> pd.DataFrame:
    rows = []
    hws = tuple(device(n) for n in PAIR_DEVICES)
    slo = SLOS["relaxed (TTFT 2 s, TPOT 50 ms)"]
    for wl, (isl, osl) in WORKLOADS.items():
        every = problem("llama-3.1-70b", hws, (1, 2, 4, 8), 16, isl, osl, slo, objective="per_kusd",
                        cost_basis="price")
        cands = build_candidates(every)
        for a in hws:
            for b in hws:
                r = size_disagg(replace(every, prefill_hardware=(a,), decode_hardware=(b,)), cands)
                best = r.best_disagg
                rows.append({"workload": wl, "prefill": a.name, "decode": b.name,
                             "tok_s_per_kusd": best["objective"] if best else 0.0, "config": config(best),
                             "agg_tok_s_per_kusd_prefill_device": next(
                                 (x["objective"] for x in r.agg_rows if x["hardware"] == a.name), 0.0)})
    return pd.DataFrame(rows)


def checks() -> pd.DataFrame:
    """Our model on the set-ups of published disaggregation results (docs/disaggregation.md
    lists the sources): the best disagg over the best agg goodput per device (or per dollar)."""
    cases = [  # (name, model, prefill devices, decode devices, tps, budget, ISL, OSL, SLO, objective, dtype)
        ("Dynamo: R1-Distill-Llama-70B FP8, H100, 3k/150, one node", "llama-3.1-70b", ("h100-sxm",), ("h100-sxm",),
         (1, 2, 4, 8), 8, 3000, 150, (1000.0, 25.0), "per_device", "fp8"),
        ("Dynamo: the same on two nodes", "llama-3.1-70b", ("h100-sxm",), ("h100-sxm",), (1, 2, 4, 8), 16, 3000,
         150, (1000.0, 25.0), "per_device", "fp8"),
        ("TensorRT-LLM blog 5: DeepSeek-R1, GB200, 8k/256, 50 tok/s/user", "deepseek-v3", ("gb200-nvl72",),
         ("gb200-nvl72",), (4, 8), 32, 8192, 256, (2000.0, 20.0), "per_device", "fp8"),
        ("TensorRT-LLM blog 5: DeepSeek-R1, GB200, 4k/1k, 50 tok/s/user", "deepseek-v3", ("gb200-nvl72",),
         ("gb200-nvl72",), (4, 8), 32, 4096, 1024, (2000.0, 20.0), "per_device", "fp8"),
        ("Splitwise: Llama-2-70B FP16, H100 and A100, per dollar", "llama-2-70b", ("h100-sxm", "a100-sxm-80gb"),
         ("h100-sxm", "a100-sxm-80gb"), (2, 4, 8), 16, 1500, 300, (2000.0, 50.0), "per_kusd", "bf16"),
    ]
    rows = []
    for name, model, pre, dec, tps, budget, isl, osl, slo, objective, dtype in cases:
        p = problem(model, (), tps, budget, isl, osl, slo, dtype, objective=objective, cost_basis="price")
        p = replace(p, prefill_hardware=tuple(device(n) for n in pre), decode_hardware=tuple(device(n) for n in dec))
        r = size_disagg(p)
        agg = r.best_agg["objective"] if r.best_agg else 0.0
        dis = r.best_disagg["objective"] if r.best_disagg else 0.0
        rows.append({"case": name, "agg_config": config(r.best_agg) + (f" {r.best_agg['hardware']}" if r.best_agg
                                                                        else ""),
                     "disagg_config": config(r.best_disagg, devices=True), "agg": agg, "disagg": dis,
                     "disagg_over_agg": dis / agg if agg else None})
    return pd.DataFrame(rows)


def dynamo_recipe() -> pd.DataFrame:
    """The Dynamo Llama-3.3-70B recipe's topologies at 16 concurrency per GPU, 8k/1k, FP8: aggregated
    TP-4 (c = 64) against 2x TP-2 prefill + 1x TP-4 decode (c = 128), event simulator, our model."""
    from roofline.serving import serve, serve_disagg

    rows = []
    for hw in ("h100-sxm", "h200-sxm"):
        common = dict(dtype="fp8", kv_dtype="fp8", input_len=8192, output_len=1024, simulate_events=True)
        agg = serve("llama-3.1-70b", hw, tp=4, concurrency=64, **common).rows[0]
        dis = serve_disagg("llama-3.1-70b", device(hw), prefill="tp=2,count=2", decode="tp=4", concurrency=128,
                           **common).rows[0]
        for name, r in (("agg TP-4, c=64", agg), ("2x TP-2 P + 1x TP-4 D, c=128", dis)):
            rows.append({"device": hw, "topology": name, "tok_s_per_gpu": r["throughput_tok_s_per_device"],
                         "ttft_ms": r["ttft_ms"], "itl_ms": r["itl_ms"], "kv_transfer_ms": r.get("kv_transfer_ms", 0.0)})
    return pd.DataFrame(rows)


def figures(link_df: pd.DataFrame, pairs_df: pd.DataFrame, out: Path) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from roofline.plots import FigureWriter

    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "best disagg / best agg goodput per device", "mean KV transfer of the best disagg (ms)"))
    for i, ((model, wl, overlap), g) in enumerate(link_df.groupby(["model", "workload", "overlap"])):
        style = {"dash": "dot" if overlap else "solid", "color": PALETTE[i // 2 % len(PALETTE)]}
        name = f"{model}, {wl}{', overlap' if overlap else ''}"
        fig.add_trace(go.Scatter(x=g["link_GBps"], y=g["disagg_over_agg"], mode="lines+markers", line=style,
                                 name=name, legendgroup=name), row=1, col=1)
        fig.add_trace(go.Scatter(x=g["link_GBps"], y=g["kv_transfer_ms"], mode="lines+markers", line=style,
                                 name=name, legendgroup=name, showlegend=False), row=1, col=2)
    fig.add_hline(y=1.0, line={"color": "gray", "dash": "dash"}, row=1, col=1)
    for col in (1, 2):
        fig.add_vrect(x0=25, x1=900, fillcolor="lightgray", opacity=0.2, line_width=0, row=1, col=col)
        fig.update_xaxes(type="log", title_text="KV link, GB/s per device per direction", row=1, col=col)
    fig.update_yaxes(type="log", row=1, col=2)
    fig.update_layout(title="KV link bandwidth (H200, FP8, TTFT <= 1 s, TPOT <= 20 ms; shaded: 25-900 GB/s)",
                      template="plotly_white", legend={"orientation": "h", "y": -0.25})
    figs = [(fig, out / "link_bandwidth")]
    for wl, g in pairs_df.groupby("workload"):
        table = g.pivot(index="prefill", columns="decode", values="tok_s_per_kusd")
        heat = go.Figure(go.Heatmap(z=table.values, x=list(table.columns), y=list(table.index), colorscale="Viridis",
                                    text=[[f"{v:.1f}" for v in row] for row in table.values], texttemplate="%{text}",
                                    colorbar={"title": "tok/s per kUSD"}))
        heat.update_layout(title=f"Llama-3.1-70B FP8, {wl}: goodput per 1000 USD (price) of the best pair",
                           xaxis_title="decode device", yaxis_title="prefill device", template="plotly_white")
        figs.append((heat, out / f"pairs_{wl.split()[0]}"))
    with FigureWriter(width=1200, height=650) as writer:
        for f, stem in figs:
            for path in writer.write(f, stem):
                print(f"wrote {path}")


def main() -> None:
    from _args import out_dir

    out = out_dir(sys.argv[1:], __doc__, default="runs/dse_disagg")
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    tables = {"wins": wins(), "link": link(), "pairs": pairs(), "checks": checks(), "dynamo": dynamo_recipe()}
    seconds = time.perf_counter() - start
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 20)
    pd.set_option("display.max_colwidth", 60)
    for name, df in tables.items():
        df.to_csv(out / f"{name}.csv", index=False)
        print(f"\n== {name}\n{df.to_string(index=False)}")
    figures(tables["link"], tables["pairs"], out)
    print(f"\nevaluated in {seconds:.1f} s")


if __name__ == "__main__":
    main()
