"""Where the knee is: measured against predicted saturation onset, and the largest concurrency meeting an SLO.

Run from the project root (needs ``../shared/validation``; about a minute on the 2-core machine)::

    .venv/bin/python benchmarks/serving_knee.py OUT_DIR [--force]

For every measured sweep (rows of :func:`roofline.validation._serving_fit.load_serving_rows` with equal
:data:`SWEEP` columns, over concurrency) it compares where the measured TTFT jumps with where the
held-out prediction (the fit that left the row's model out: the ``model`` split of
``benchmarks/serving_validation.py``) and the simulator's ``saturated_model`` put it, and the largest
concurrency meeting a few SLOs, measured against predicted. The same again with vLLM's rows simulated
under ``kv_admission="reserve"`` (TensorRT-LLM's policy) instead of its own on-demand allocation.
Writes ``OUT_DIR/serving_knee.md`` (the tables of docs/serving.md "Saturation: where the knee is"),
``OUT_DIR/serving_knee.csv`` (one row per sweep) and ``OUT_DIR/serving_knee.png`` (and ``.html``).
Existing files are replaced only with ``--force``.

Definitions (:func:`ttft_jumps`, :func:`knee_index`, :func:`slo_max_index`):

- **TTFT jump** at a sweep's point k >= 1: ``TTFT_k > JUMP_FACTOR x (c_k / c_{k-1}) x TTFT_{k-1}``,
  i.e. more than twice the growth in proportion to concurrency. Below saturation TTFT grows at most
  about in proportion to concurrency (at worst every prompt waits for the others' prefill, as
  AIConfigurator's SGLang rows do: about ``c x`` one prefill); a request that queues for KV-cache blocks
  or a sequence slot waits for another to finish, a share of a whole request's life (``osl x TPOT``,
  far more than one prefill), which jumps well beyond proportional. For a doubling this is
  InferenceX's own ``ttft_jump`` flag (TTFT more than 4x the previous concurrency's; its README),
  and a step of 4x (AIConfigurator's 16 -> 64) needs 8x.
- **Knee**: the smallest concurrency of the sweep with a TTFT jump; none when no point jumps. The
  measured knee reads the measured means, the predicted knee the held-out predicted TTFT by the same
  rule; the simulator's knee is the smallest concurrency whose simulated mean running batch stays
  below 90 % of the concurrency (``saturated_model`` of ``serving_features``, the rule
  ``mark_saturated`` applies to AIConfigurator's rows).
- **Largest concurrency meeting an SLO** (mean TTFT <= T and mean TPOT <= :data:`SLO_TPOT_MS`):
  the largest concurrency of the sweep whose means meet both, as ``serve``'s
  ``slo_max_concurrency`` takes the largest that meets it (not the first that breaks it).
- Outcomes are counted in steps of the sweep's own concurrency grid (mostly doublings).
  Sweeps of a single concurrency have neither a jump nor a step and are left out.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

#: Columns that make one measured sweep (its rows differ in concurrency only).
SWEEP = ("dataset", "model", "device", "framework", "dtype", "kv_dtype", "tp", "ep", "isl", "osl")
#: A TTFT jump is a rise of more than this times the rise in proportion to concurrency (4x a doubling).
JUMP_FACTOR = 2.0
#: SLOs of the table: mean TTFT (ms) at most each of these, with mean TPOT at most SLO_TPOT_MS.
SLO_TTFT_MS = (1000.0, 2000.0, 5000.0)
SLO_TPOT_MS = 50.0
#: Outcome names, in the order the tables list them.
KNEE_OUTCOMES = ("exact", "1 step early", "1 step late", "2+ early", "2+ late", "missed", "false knee", "none")
SLO_OUTCOMES = ("exact", "1 step low", "1 step high", "2+ low", "2+ high", "none predicted", "none measured",
                "neither")
FILES = ("serving_knee.md", "serving_knee.csv", "serving_knee.png")


def ttft_jumps(concurrency: Sequence[float] | np.ndarray, ttft_ms: Sequence[float] | np.ndarray,
               factor: float = JUMP_FACTOR) -> np.ndarray:
    """Per point of one sweep (concurrency strictly increasing): True where the mean TTFT exceeds
    ``factor x (c_k / c_{k-1})`` times the previous point's; the first point is never a jump (nothing
    before it), nor is a point whose TTFT or the previous one's is missing (NaN).

    >>> ttft_jumps([4, 8, 16], [100.0, 390.0, 2000.0]).tolist()    # 3.9x, then 5.1x a doubling
    [False, False, True]
    >>> ttft_jumps([16, 64], [1000.0, 7000.0]).tolist()           # 7x a 4x step: below 8x
    [False, False]
    """
    c = np.asarray(concurrency, dtype=float)
    t = np.asarray(ttft_ms, dtype=float)
    if c.shape != t.shape or c.ndim != 1:
        raise ValueError(f"concurrency and ttft_ms must be 1-d of one length, got {c.shape} and {t.shape}")
    if np.any(np.diff(c) <= 0):
        raise ValueError(f"concurrency must increase strictly within a sweep, got {c.tolist()}")
    out = np.zeros(len(c), dtype=bool)
    with np.errstate(invalid="ignore"):
        out[1:] = t[1:] > factor * (c[1:] / c[:-1]) * t[:-1]  # NaN compares False
    return out


def knee_index(flags: Sequence[bool] | np.ndarray) -> int | None:
    """Index of the first flagged point (the knee), None when none is."""
    hit = np.flatnonzero(np.asarray(flags, dtype=bool))
    return int(hit[0]) if len(hit) else None


def slo_max_index(ttft_ms: Sequence[float] | np.ndarray, tpot_ms: Sequence[float] | np.ndarray,
                  slo_ttft_ms: float, slo_tpot_ms: float) -> int | None:
    """Index of the largest concurrency (points sorted by it) whose mean TTFT and TPOT meet the SLO
    (``<=``), None when no point does; a break below it does not stop the search.

    >>> slo_max_index([500, 900, 3000, 1500], [20, 30, 40, 45], 2000, 50)
    3
    """
    ok = (np.asarray(ttft_ms, dtype=float) <= slo_ttft_ms) & (np.asarray(tpot_ms, dtype=float) <= slo_tpot_ms)
    hit = np.flatnonzero(ok)
    return int(hit[-1]) if len(hit) else None


def transient(concurrency: Sequence[float] | np.ndarray, ttft_ms: Sequence[float] | np.ndarray, k: int | None,
              factor: float = JUMP_FACTOR) -> bool:
    """The jump at point ``k`` is transient: the next point's TTFT is back within ``factor x`` the
    proportional growth from the point before the jump (a stall of one run, not a queue that lasts;
    False when ``k`` is None, the first or the last point).

    >>> transient([4, 8, 16, 32], [400.0, 500.0, 11000.0, 980.0], 2)    # 980 <= 2 x (32 / 8) x 500
    True
    """
    c = np.asarray(concurrency, dtype=float)
    t = np.asarray(ttft_ms, dtype=float)
    if k is None or k < 1 or k + 1 >= len(c):
        return False
    return bool(t[k + 1] <= factor * (c[k + 1] / c[k - 1]) * t[k - 1])


def knee_outcome(measured: int | None, predicted: int | None) -> str:
    """How a predicted knee (sweep index, None: none) stands against the measured one."""
    if measured is None:
        return "none" if predicted is None else "false knee"
    if predicted is None:
        return "missed"
    return _steps_off(predicted - measured, "early", "late")


def slo_outcome(measured: int | None, predicted: int | None) -> str:
    """How the predicted largest concurrency meeting an SLO (sweep index, None: none) stands
    against the measured one: low is conservative (a user would deploy fewer), high optimistic."""
    if measured is None:
        return "neither" if predicted is None else "none measured"
    if predicted is None:
        return "none predicted"
    return _steps_off(predicted - measured, "low", "high")


def _steps_off(d: int, below: str, above: str) -> str:
    """``exact``, ``1 step <below|above>`` or ``2+ <below|above>`` for a prediction ``d`` grid steps off."""
    if d == 0:
        return "exact"
    return f"{'1 step' if abs(d) == 1 else '2+'} {below if d < 0 else above}"


def _at(c: np.ndarray, i: int | None) -> float:
    return float(c[i]) if i is not None else np.nan


def sweep_table(frame: pd.DataFrame, slos_ttft_ms: Sequence[float] = SLO_TTFT_MS,
                slo_tpot_ms: float = SLO_TPOT_MS, factor: float = JUMP_FACTOR) -> pd.DataFrame:
    """One row per sweep of ``frame`` (columns :data:`SWEEP`, ``concurrency``, ``ttft_ms``,
    ``tpot_ms``, ``pred_ttft_ms``, ``pred_tpot_ms``, ``saturated_model`` and ``ttft_jump_flag``, the
    dataset's own flag, False where it has none): the measured, flagged, predicted and simulated
    knees (concurrency, NaN: none; jumps by ``factor``), whether the measured jump is
    :func:`transient`, the outcomes, and per SLO the largest concurrency measured and predicted with
    its outcome. Sweeps of a single concurrency are left out."""
    out = []
    for key, g in frame.groupby(list(SWEEP), sort=True):
        if len(g) < 2:
            continue
        g = g.sort_values("concurrency")
        c = g["concurrency"].to_numpy(float)
        meas = knee_index(ttft_jumps(c, g["ttft_ms"], factor))
        pred = knee_index(ttft_jumps(c, g["pred_ttft_ms"], factor))
        sim = knee_index(g["saturated_model"].to_numpy(bool))
        row = dict(zip(SWEEP, key)) | {
            "concurrencies": ",".join(str(int(x)) for x in c), "points": len(c),
            "gap_analysis": bool(g["gap_analysis"].any()) if "gap_analysis" in g else False,
            "knee_measured": _at(c, meas), "knee_flagged": _at(c, knee_index(g["ttft_jump_flag"].to_numpy(bool))),
            "knee_transient": transient(c, g["ttft_ms"], meas, factor),
            "knee_predicted": _at(c, pred), "knee_simulator": _at(c, sim),
            "knee_outcome": knee_outcome(meas, pred), "simulator_outcome": knee_outcome(meas, sim)}
        for slo in slos_ttft_ms:
            m = slo_max_index(g["ttft_ms"], g["tpot_ms"], slo, slo_tpot_ms)
            p = slo_max_index(g["pred_ttft_ms"], g["pred_tpot_ms"], slo, slo_tpot_ms)
            row |= {f"slo{slo / 1e3:g}s_measured": _at(c, m), f"slo{slo / 1e3:g}s_predicted": _at(c, p),
                    f"slo{slo / 1e3:g}s_outcome": slo_outcome(m, p)}
        out.append(row)
    return pd.DataFrame(out)


def outcome_counts(table: pd.DataFrame, column: str, by: Sequence[str], order: Sequence[str]) -> pd.DataFrame:
    """Sweeps per group of ``by`` and outcome (``column``), outcomes in ``order`` (those that occur)
    and a ``sweeps`` total; one ``all`` row below the groups."""
    counts = pd.crosstab([table[b] for b in by], table[column])
    counts = counts.reindex(columns=[o for o in order if o in counts.columns], fill_value=0)
    total = counts.sum().to_frame().T
    total.index = pd.MultiIndex.from_tuples([("all",) * len(by)], names=by) if len(by) > 1 else pd.Index(
        ["all"], name=by[0])
    counts = pd.concat([counts, total])
    counts.insert(0, "sweeps", counts.sum(axis=1))
    return counts


def _markdown(frame: pd.DataFrame) -> str:
    frame = frame.reset_index()
    frame.columns = [str(c) for c in frame.columns]
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    cells = frame.astype(object).where(frame.notna(), "-")
    return head + "".join("| " + " | ".join(str(v) for v in r) + " |\n" for r in cells.itertuples(index=False))


@contextmanager
def _admission(framework: str, policy: str) -> Iterator[None]:
    """``serving_features`` simulating ``framework``'s rows under KV admission ``policy``: the fit
    module's engine defaults are swapped for the time of the block (the fit itself is not changed;
    its per-key cache is cleared on entry and exit so no setup of the other policy is reused)."""
    from roofline.validation import _serving_fit as fit

    original = fit.engine_defaults

    def defaults(fw: str = "vllm"):  # noqa: ANN202
        s = original(fw)
        return s.with_overrides(kv_admission=policy) if fw == framework else s

    fit.engine_defaults = defaults
    fit._setup.cache_clear()
    try:
        yield
    finally:
        fit.engine_defaults = original
        fit._setup.cache_clear()


def held_out_frame(rows: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (as loaded) with the held-out predictions of the model split (the fit on the other
    models' rows, saturated rows as ``serving_report`` marks them), ``saturated_model`` and the
    dataset's own ``ttft_jump_flag``."""
    from roofline.validation._serving_fit import held_out_errors, mark_saturated

    marked = mark_saturated(rows, feats)
    pred = held_out_errors(marked, feats, "model")
    # before mark_saturated, "saturated" is InferenceX's ttft_jump flag (False on AIConfigurator's rows)
    return rows.assign(ttft_jump_flag=rows["saturated"].astype(bool), saturated=marked["saturated"],
                       saturated_model=feats["saturated_model"].astype(bool)).join(pred)


def compute(rows: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """The sweep tables under each framework's own KV admission (``own``) and with vLLM's rows under
    ``reserve`` (``vllm_reserve``), from one simulation of every row and one more of vLLM's."""
    from roofline.validation._serving_fit import load_serving_rows, serving_features

    rows = load_serving_rows() if rows is None else rows
    feats = serving_features(rows)
    vllm = rows["framework"] == "vllm"
    with _admission("vllm", "reserve"):
        reserve = feats.copy()
        reserve.loc[vllm] = serving_features(rows[vllm]).to_numpy()
    own, res = held_out_frame(rows, feats), held_out_frame(rows, reserve)
    return {"rows": own, "rows_reserve": res, "own": sweep_table(own), "vllm_reserve": sweep_table(res),
            "single": pd.DataFrame({"sweeps": rows.groupby(list(SWEEP)).size().eq(1).sum()}, index=[0])}


def _outcome_rows(tables: dict[str, pd.DataFrame], columns: dict[str, str], order: Sequence[str]) -> pd.DataFrame:
    """Sweeps per outcome (``order``, those that occur) of each table (name -> sweep table) and
    outcome column (name -> column)."""
    rows = [{"variant": name, "what": what} | tab[col].value_counts().reindex(order, fill_value=0).to_dict()
            for name, tab in tables.items() for what, col in columns.items()]
    frame = pd.DataFrame(rows).set_index(["variant", "what"])
    return frame.loc[:, frame.sum() > 0]


def sensitivity(frame: pd.DataFrame, factors: Sequence[float] = (1.5, 2.0, 3.0)) -> pd.DataFrame:
    """Knee outcomes (held-out TTFT) for other jump factors (3x / 4x / 6x a doubling)."""
    tables = {f"jump > {2 * f:g}x a doubling": sweep_table(frame, factor=f) for f in factors}
    return _outcome_rows(tables, {"knee": "knee_outcome"}, KNEE_OUTCOMES)


def summary_table(own: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and framework (and ``all``): sweeps, measured knees, the held-out knee exact /
    one step off / missed / false, and per SLO the largest concurrency exact / within one step."""
    def one(g: pd.DataFrame) -> dict[str, object]:
        k = g["knee_outcome"]
        row: dict[str, object] = {
            "sweeps": len(g), "measured knees": int(g["knee_measured"].notna().sum()),
            "knee exact": int((k == "exact").sum()), "knee 1 step off": int(k.isin(["1 step early", "1 step late"]).sum()),
            "knee missed": int((k == "missed").sum()), "false knees": int((k == "false knee").sum())}
        for slo in SLO_TTFT_MS:
            o = g[f"slo{slo / 1e3:g}s_outcome"]
            near = int(o.isin(["exact", "1 step low", "1 step high", "neither"]).sum())
            row[f"SLO {slo / 1e3:g} s: exact / within 1 step"] = f"{int(o.isin(['exact', 'neither']).sum())} / {near}"
        return row

    rows = {key: one(g) for key, g in own.groupby(["dataset", "framework"])} | {("all", "all"): one(own)}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(["dataset", "framework"])


def knee_classes(own: pd.DataFrame) -> pd.DataFrame:
    """Measured knees by what they are (AIConfigurator's gap-analysis harness; a transient stall,
    :func:`transient`; else a queue of the engine) and held-out outcome."""
    k = own[own["knee_measured"].notna()]
    kind = np.where(k["gap_analysis"], "gap-analysis harness (AIConfigurator)",
                    np.where(k["knee_transient"], "transient (back at the next concurrency)", "other"))
    counts = pd.crosstab([k["dataset"], pd.Series(kind, index=k.index, name="kind")], k["knee_outcome"])
    return counts.reindex(columns=[o for o in KNEE_OUTCOMES if o in counts.columns], fill_value=0)


def report_markdown(t: dict[str, pd.DataFrame]) -> str:
    """Every table of the report, markdown."""
    own, res = t["own"], t["vllm_reserve"]
    by = ["dataset", "framework"]
    ix = own[own["dataset"] == "inferencex"]
    same = int((ix["knee_measured"].fillna(-1) == ix["knee_flagged"].fillna(-1)).sum())
    knees = own[own["knee_measured"].notna()]
    parts = [f"Sweeps with at least two concurrencies: {len(own)} (left out: {int(t['single']['sweeps'][0])} of one "
             f"concurrency). InferenceX: the TTFT-jump rule gives the knee of the dataset's own `ttft_jump` flag in "
             f"{same} of {len(ix)} sweeps. Measured knees: {len(knees)}, of which {int(knees['knee_transient'].sum())} "
             "transient (the next concurrency's TTFT is back within the proportional growth) and "
             f"{int((knees['dataset'] == 'aiconfigurator').sum())} on AIConfigurator's rows "
             f"({int(knees['gap_analysis'].sum())} of its gap-analysis harness).\n"]
    parts.append("#### Summary: knee and largest concurrency meeting the SLO (TPOT <= 50 ms), held out\n\n"
                 + _markdown(summary_table(own)))
    parts.append("#### Measured knees by kind and held-out outcome\n\n" + _markdown(knee_classes(own)))
    parts.append("#### Knee: held-out predicted TTFT against measured, sweeps by outcome\n\n"
                 + _markdown(outcome_counts(own, "knee_outcome", by, KNEE_OUTCOMES)))
    parts.append("#### Knee: the simulator's saturated_model against the measured TTFT jump\n\n"
                 + _markdown(outcome_counts(own, "simulator_outcome", by, KNEE_OUTCOMES)))
    parts.append("#### Knee outcomes for other jump factors (held-out TTFT, all sweeps)\n\n"
                 + _markdown(sensitivity(t["rows"])))
    for slo in SLO_TTFT_MS:
        col = f"slo{slo / 1e3:g}s_outcome"
        parts.append(f"#### Largest concurrency with mean TTFT <= {slo / 1e3:g} s and TPOT <= {SLO_TPOT_MS:g} ms: "
                     "predicted (held out) against measured\n\n" + _markdown(outcome_counts(own, col, by, SLO_OUTCOMES)))
    vllm = {"on demand (vLLM's own)": own[own["framework"] == "vllm"], "reserve": res[res["framework"] == "vllm"]}
    parts.append("#### vLLM sweeps, knee: on-demand KV admission against reserve (each refitted, held out)\n\n"
                 + _markdown(_outcome_rows(vllm, {"held-out TTFT": "knee_outcome", "simulator": "simulator_outcome"},
                                           KNEE_OUTCOMES)))
    parts.append("#### vLLM sweeps, largest concurrency meeting the SLO: on demand against reserve\n\n"
                 + _markdown(_outcome_rows(vllm, {f"TTFT <= {s / 1e3:g} s": f"slo{s / 1e3:g}s_outcome"
                                                  for s in SLO_TTFT_MS}, SLO_OUTCOMES)))
    shown = own[own["knee_measured"].notna() | own["knee_predicted"].notna() | own["knee_simulator"].notna()]
    shown = shown.merge(res[[*SWEEP, "knee_predicted", "knee_simulator"]], on=list(SWEEP), suffixes=("", "_reserve"))
    shown.loc[shown["framework"] != "vllm", ["knee_predicted_reserve", "knee_simulator_reserve"]] = np.nan
    cols = [*SWEEP, "concurrencies", "knee_measured", "knee_transient", "knee_predicted", "knee_simulator",
            "knee_outcome", "simulator_outcome", "knee_predicted_reserve", "knee_simulator_reserve"]
    parts.append("#### Sweeps with a measured, predicted or simulated knee (reserve: vLLM under reserve)\n\n"
                 + _markdown(shown[cols].set_index(list(SWEEP))))
    return "\n".join(parts)


#: Where "none" goes on the figure's axes (outside every sweep's grid: 1 to 512).
_NONE_KNEE, _NONE_SLO = 1024.0, 0.5


def figure(own: pd.DataFrame, path: Path, slo_ttft_ms: float = 2000.0) -> list[Path]:
    """Measured against predicted knee, and against predicted largest concurrency meeting one SLO,
    one marker per (measured, predicted, framework), sized by its sweeps."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from roofline.plots import FigureWriter

    key = f"slo{slo_ttft_ms / 1e3:g}s"
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "knee (TTFT jump): held-out prediction against measured",
        f"largest concurrency meeting TTFT <= {slo_ttft_ms / 1e3:g} s, TPOT <= {SLO_TPOT_MS:g} ms"))
    colors = {"vllm": "#1f77b4", "sglang": "#2ca02c", "trtllm": "#ff7f0e"}
    dodge = {"sglang": 0.8, "trtllm": 1.0, "vllm": 1.25}  # side by side on the measured axis, not on top
    panels = ((1, "knee_measured", "knee_predicted", _NONE_KNEE), (2, f"{key}_measured", f"{key}_predicted", _NONE_SLO))
    for col, xm, yp, none in panels:
        d = own.assign(x=own[xm].fillna(none), y=own[yp].fillna(none))
        for fw, g in d.groupby("framework"):
            n = g.groupby(["x", "y"]).size().reset_index(name="sweeps")
            fig.add_trace(go.Scatter(
                x=n["x"] * dodge.get(fw, 1.0), y=n["y"], mode="markers+text", customdata=n["x"], text=n["sweeps"].astype(str),
                textposition="middle right", textfont={"size": 9, "color": colors.get(fw, "#7f7f7f")},
                marker={"size": 5 + 2 * np.sqrt(n["sweeps"]), "color": colors.get(fw, "#7f7f7f"), "opacity": 0.6},
                name=fw, legendgroup=fw, showlegend=col == 1,
                hovertemplate="measured %{customdata}<br>predicted %{y}<br>sweeps: %{text}"), row=1, col=col)
        grid = [none, *(2.0 ** k for k in range(0, 10))] if none < 1 else [*(2.0 ** k for k in range(0, 10)), none]
        labels = ["none" if v == none else f"{v:g}" for v in grid]
        lo, hi = min(grid) / 1.6, max(grid) * 1.6
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"color": "#999", "dash": "dot"},
                                 showlegend=False, hoverinfo="skip"), row=1, col=col)
        for axis in (fig.update_xaxes, fig.update_yaxes):
            axis(type="log", tickvals=grid, ticktext=labels, range=[np.log10(lo), np.log10(hi)], row=1, col=col)
        fig.update_xaxes(title_text="measured (concurrency)", row=1, col=col)
        fig.update_yaxes(title_text="predicted (concurrency)", row=1, col=col)
    fig.update_layout(title=f"Where the knee is: {len(own)} measured sweeps, prediction with the model left out "
                            "(numbers: sweeps per marker)", template="plotly_white",
                      legend={"orientation": "h", "y": -0.18})
    with FigureWriter(width=1100, height=560) as out:
        return out.write(fig, path)


def main(argv: list[str]) -> int:
    from _args import out_dir

    force = "--force" in argv
    out = out_dir(argv, __doc__, flags=("--force",))
    files = [out / f for f in FILES]
    if not force and any(f.exists() for f in files):
        print(f"{out}: files exist; pass --force to replace them", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    t = compute()
    files[0].write_text(report_markdown(t))
    both = t["own"].merge(t["vllm_reserve"], on=list(SWEEP), how="left", suffixes=("", "_vllm_reserve"))
    # the measured columns are the same under either policy: keep the predicted ones and outcomes
    both = both.drop(columns=[c for c in both if c.endswith("_vllm_reserve")
                              and not any(k in c for k in ("_predicted", "_simulator", "_outcome"))])
    both.to_csv(files[1], index=False)
    written = figure(t["own"], out / "serving_knee")
    print(f"{time.perf_counter() - t0:.0f} s; wrote {files[0]}, {files[1]}, " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
