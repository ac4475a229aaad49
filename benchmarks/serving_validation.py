"""Regenerate the held-out error tables and the predicted-vs-measured figure of docs/serving.md.

Run from the project root (needs ``../shared/validation``; a few minutes on a shared machine)::

    .venv/bin/python benchmarks/serving_validation.py OUT_DIR

writes ``OUT_DIR/serving_tables.md`` (every table of the "Held-out error" section, markdown),
``OUT_DIR/serving_predictions.csv`` (every row with its held-out predictions, for
``benchmarks/peers_serving.py`` and the comparisons) and ``OUT_DIR/serving_validation.png`` (and
``.html``): measured mean TTFT and TPOT over concurrency against the prediction of the fit that
left the row's model out, for a few scenarios of both datasets. Existing files in OUT_DIR are
replaced only with ``--force``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

SPLITS = ("datasheet", "model", "framework", "device")
TITLES = {
    "model": "Leave one model out",
    "framework": "Leave one framework out (the held-out framework gets the pooled fit of the others)",
    "device": "Leave one device out (the held-out device from its datasheet spec plus the others' overheads)",
    "datasheet": "Datasheet specs, no overheads (no fit at all)",
}
#: Scenarios of the figure: (dataset, model, device, framework, tp, isl, osl).
SCENARIOS = (
    ("inferencex", "llama-3.1-70b", "h200-sxm", "vllm", 8, 8192, 1024),
    ("inferencex", "llama-3.1-70b", "h200-sxm", "trtllm", 4, 1024, 1024),
    ("inferencex", "gpt-oss-120b", "h200-sxm", "vllm", 2, 1024, 1024),
    ("inferencex", "minimax-m2.5", "h200-sxm", "vllm", 8, 8192, 1024),
    ("inferencex", "glm-5", "h200-sxm", "sglang", 8, 1024, 1024),
    ("aiconfigurator", "qwen3-32b", "h100-sxm", "trtllm", 2, 4096, 512),
    ("aiconfigurator", "llama-3.1-70b", "b200", "vllm", 4, 1024, 1024),
    ("aiconfigurator", "qwen3-32b", "h100-sxm", "sglang", 4, 2048, 256),
)


def _markdown(frame) -> str:  # noqa: ANN001 (pandas is imported lazily)
    frame = frame.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(map(str, r)) + " |\n" for r in frame.itertuples(index=False))


def tables_markdown(tables: dict) -> str:
    out = []
    for split in SPLITS:
        out.append(f"#### {TITLES[split]}, by concurrency bucket\n\n{_markdown(tables[f'{split}:bucket'])}")
        isl = tables[f"{split}:isl_osl"]
        out.append(f"#### {TITLES[split]}, by ISL/OSL (cells with at least 20 rows)\n\n"
                   f"{_markdown(isl[isl['rows'] >= 20])}")
        if split == "model":
            out.append(f"#### {TITLES[split]}, by model and framework\n\n{_markdown(tables['model:model'])}")
    return "\n".join(out)


def figure(pred, path: Path) -> list[Path]:  # noqa: ANN001
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from roofline.plots import FigureWriter

    fig = make_subplots(rows=1, cols=2, subplot_titles=("mean TTFT (ms)", "mean TPOT (ms)"))
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
    for color, (dataset, model, device, fw, tp, isl, osl) in zip(colors, SCENARIOS):
        g = pred[(pred["dataset"] == dataset) & (pred["model"] == model) & (pred["device"] == device)
                 & (pred["framework"] == fw) & (pred["tp"] == tp) & (pred["isl"] == isl) & (pred["osl"] == osl)
                 & ~pred["saturated"]]
        g = g.groupby("concurrency", as_index=False)[["ttft_ms", "tpot_ms", "pred_ttft_ms", "pred_tpot_ms"]].mean()
        if g.empty:
            continue
        name = f"{model} {device} {fw} tp{tp} {isl}/{osl} ({dataset})"
        for col, (meas, est) in enumerate((("ttft_ms", "pred_ttft_ms"), ("tpot_ms", "pred_tpot_ms")), start=1):
            fig.add_trace(go.Scatter(x=g["concurrency"], y=g[meas], mode="markers", marker={"color": color},
                                     name=name, legendgroup=name, showlegend=col == 1), row=1, col=col)
            fig.add_trace(go.Scatter(x=g["concurrency"], y=g[est], mode="lines", line={"color": color, "dash": "dash"},
                                     name=name, legendgroup=name, showlegend=False), row=1, col=col)
    fig.update_xaxes(type="log", title_text="concurrency")
    fig.update_yaxes(type="log")
    fig.update_layout(title="Measured (dots) vs roofline serve (dashed, fitted with the model left out)",
                      template="plotly_white", legend={"orientation": "h", "y": -0.25})
    with FigureWriter(width=1000, height=720) as out:
        return out.write(fig, path)


def main(argv: list[str]) -> int:
    from _args import out_dir

    force = "--force" in argv
    out = out_dir(argv, __doc__, flags=("--force",))
    files = [out / "serving_tables.md", out / "serving_predictions.csv", out / "serving_validation.png"]
    if not force and any(f.exists() for f in files):
        print(f"{out}: files exist; pass --force to replace them", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    from roofline.validation import serving_report
    from roofline.validation._serving_fit import error_table

    t0 = time.perf_counter()
    tables = serving_report(splits=SPLITS)
    pred = tables["model:predictions"]
    tables["model:model"] = error_table(pred.drop(columns=["pred_ttft_ms", "pred_tpot_ms"]),
                                       pred[["pred_ttft_ms", "pred_tpot_ms"]], ["dataset", "model", "framework"])
    files[0].write_text(tables_markdown(tables))
    cols = ["dataset", "model", "device", "framework", "dtype", "kv_dtype", "tp", "ep", "isl", "osl", "concurrency",
            "saturated", "ttft_ms", "tpot_ms"]
    frame = pred[cols].copy()
    for split in SPLITS:
        p = tables[f"{split}:predictions"]
        frame[f"{split}_ttft_ms"], frame[f"{split}_tpot_ms"] = p["pred_ttft_ms"], p["pred_tpot_ms"]
    frame.to_csv(files[1], index_label="row")  # the row numbers of load_serving_rows()
    written = figure(pred, out / "serving_validation")
    print(f"{time.perf_counter() - t0:.0f} s; wrote {files[0]}, {files[1]}, " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
