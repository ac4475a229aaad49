"""The two reproductions end to end: run the sweeps, write the tables (CSV, markdown), the summary
(JSON) and the plots (HTML, PNG) into an output folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from roofline._json import dumps as json_dumps
from roofline.economics import basis_text
from roofline.exceptions import SpecError
from roofline.hardware import load_hardware
from roofline.reproduce._dse import (
    DSE_POINTS,
    DSE_SETUPS,
    _curve_optimum,
    dse_curve,
    dse_frame,
    dse_objectives,
    dse_optima,
    dse_sensitivity,
    tornado_figure,
)
from roofline.reproduce._figures import _dse_figures, _preserve_figures
from roofline.reproduce._grid import _load, sequence_grid, with_hardware
from roofline.reproduce._output import (
    Reproduction,
    _csv,
    _figures,
    _slug,
    _write,
    check_out_dir,
)
from roofline.reproduce._paper import (
    DSE_SWEEP,
    PAPER,
    PAPER_SEQUENCES,
    PRESERVE_SWEEPS,
    PRESERVE_VARIANTS,
)
from roofline.reproduce._preserve import (
    _select_devices,
    preserve_frame,
    preserve_summary,
    preserve_table,
)
from roofline.reproduce._report import (
    _dse_report,
    _main_markdown,
    _objectives_report,
    _preserve_report,
    markdown_table,
)
from roofline.reproduce._sensitivity import sensitivity_pivot, sensitivity_table
from roofline.sweep import cost_parameters

__all__ = ["reproduce_dse_l2", "reproduce_dse_objectives", "reproduce_preserve"]


def reproduce_preserve(out: str | Path, *, force: bool = False, devices: Sequence[str] | None = None,
                       sequences: Iterable[int] = PAPER_SEQUENCES, plots: bool = True,
                       sweep_files: Sequence[str | Path] = PRESERVE_SWEEPS, sensitivity: bool = True,
                       fallback: bool = True,
                       progress: Callable[[str], None] | None = None) -> Reproduction:
    """Run the speedup experiment and write its tables (CSV, markdown) and plots (HTML, PNG).

    Files in ``out``: ``results.csv`` (every sweep row, prefetch off and on), ``speedups.csv`` (one
    row per configuration), ``sensitivity.csv`` (910B main point), ``report.md``, ``summary.json``
    and ``plots/`` (e2e speedup per model/batch/sequence and speedup against the ratio, per device).

    Raises:
        SpecError: ``out`` exists and is not empty without ``force``; unknown device.
    """
    say = progress or (lambda _m: None)
    specs = _select_devices([_load(f) for f in sweep_files], devices)
    if not specs:
        raise SpecError("no device selected")
    out_dir = check_out_dir(out, force)
    rep = Reproduction("preserve", out_dir)
    file_tp = {load_hardware(h).name: int(s.fixed["tp"]) for s in specs for h in s.hardware}
    say(f"sweeping {', '.join(file_tp)}")
    results, skipped = preserve_frame(specs, sequences=sequences, fallback=fallback)
    say(f"{len(results)} sweep rows; reading the decode segment tables")
    table = preserve_table(results, file_tp=file_tp)
    summary = preserve_summary(table, skipped)
    summary["sweep_files"] = [s.path for s in specs]
    summary["sequences"] = sequence_grid(sequences)
    summary["ratio_definition"] = ("collective_to_prefetch_ratio: mean over the decode segments (middle "
                                   "decode step) of collective time / time to read the segment's weights "
                                   "and KV cache from HBM, weighted by count x baseline segment time")
    _csv(out_dir, "results.csv", results, rep.files)
    _csv(out_dir, "speedups.csv", table, rep.files)
    rep.tables["speedups"] = table
    sens_md = ""
    ascend = [s for s in specs if any(load_hardware(h).name == "ascend-910b" for h in s.hardware)]
    if sensitivity and ascend:
        say("sensitivity of the 910B main point")
        spec = dataclasses.replace(ascend[0], hardware=tuple(h for h in ascend[0].hardware
                                                              if load_hardware(h).name == "ascend-910b"))
        sens = sensitivity_table(spec, fallback=fallback)
        _csv(out_dir, "sensitivity.csv", sens, rep.files)
        wide = sensitivity_pivot(sens)
        rep.tables["sensitivity"] = wide
        summary["sensitivity"] = {
            p: {"values": g["value"].tolist(), "mean_speedup": g["mean"].round(4).tolist()}
            for p, g in wide.groupby("parameter", sort=False)}
        sens_md = ("\n## Sensitivity (ascend-910b, batch 4, 16K; e2e speedup, one parameter at a time)\n\n"
                   + markdown_table(wide) + "\n")
        summary["variants"] = {}
        for name, overrides in PRESERVE_VARIANTS.items():
            say(f"910B grid with {name}")
            res_v, skipped_v = preserve_frame([with_hardware(spec, overrides)], sequences=sequences,
                                              fallback=fallback)
            tv = preserve_table(res_v, file_tp=file_tp)
            sv = preserve_summary(tv, skipped_v)["devices"]["ascend-910b"]
            summary["variants"][name] = sv
            slug = _slug(name)
            _csv(out_dir, f"variant_{slug}.csv", tv, rep.files)
            rep.tables[f"variant_{slug}"] = tv
            sens_md += (f"\n## Variant: ascend-910b grid with {name}\n\n"
                        f"e2e speedup {sv['speedup_min']:.2f}x-{sv['speedup_max']:.2f}x; main point "
                        f"{sv['main_min']:.2f}x-{sv['main_max']:.2f}x.\n\n" + _main_markdown(tv) + "\n\n"
                        + markdown_table(pd.DataFrame(sv["ratio_bins"])) + "\n")
    _write(out_dir, "report.md", _preserve_report(table, summary, skipped) + sens_md, rep.files)
    _write(out_dir, "summary.json", json_dumps(summary, indent=2), rep.files)
    rep.summary = summary
    if plots:
        say("plots")
        variants = {name: rep.tables[f"variant_{_slug(name)}"] for name in summary.get("variants", {})}
        figs = _preserve_figures(table, variants)
        _figures(out_dir, figs, rep)
    return rep


def reproduce_dse_l2(out: str | Path, *, force: bool = False, plots: bool = True,
                     sweep_file: str | Path = DSE_SWEEP, sensitivity: bool = True, fallback: bool = True,
                     progress: Callable[[str], None] | None = None) -> Reproduction:
    """Run the L2 design-space exploration and write its tables and plots.

    Files in ``out``: ``results.csv`` (every sweep row), ``optima.csv`` (per model), ``curve.csv``
    (all models, normalised), ``sensitivity.csv``, ``report.md``, ``summary.json`` and ``plots/``
    (perf/cost against L2 per model and for all models, optimum marked).
    """
    say = progress or (lambda _m: None)
    spec = _load(sweep_file)
    out_dir = check_out_dir(out, force)
    rep = Reproduction("dse-l2", out_dir)
    say(f"sweeping {spec.path}")
    df, skipped = dse_frame(spec, fallback=fallback)
    optima = dse_optima(df)
    curve = dse_curve(df)
    overall = _curve_optimum(curve)
    _csv(out_dir, "results.csv", df, rep.files)
    _csv(out_dir, "optima.csv", optima, rep.files)
    _csv(out_dir, "curve.csv", curve, rep.files)
    rep.tables |= {"optima": optima, "curve": curve}
    summary: dict[str, Any] = {
        "paper": PAPER, "sweep_file": spec.path, "all_models": overall,
        "per_model": optima.to_dict("records"),
        "skipped": sorted({(s["hardware"], s["model"], s["status"]) for s in skipped}),
        "normalisation": "geometric mean over models of tokens/s per kUSD divided by the model's value at "
                         "192 MiB without prefetch",
        "cost_basis": basis_text(cost_parameters(spec).basis),
    }
    sens = None
    if sensitivity:
        say("cost and model variants")
        sens = dse_sensitivity(spec, fallback=fallback)
        _csv(out_dir, "sensitivity.csv", sens, rep.files)
        rep.tables["sensitivity"] = sens
        summary["sensitivity"] = sens.to_dict("records")
    _write(out_dir, "report.md", _dse_report(optima, curve, overall, sens, skipped), rep.files)
    _write(out_dir, "summary.json", json_dumps(summary, indent=2), rep.files)
    rep.summary = summary
    if plots:
        say("plots")
        _figures(out_dir, _dse_figures(df, curve), rep)
    return rep


def reproduce_dse_objectives(out: str | Path, *, force: bool = False, plots: bool = True,
                             setups: dict[str, dict[str, Any]] | None = None, estimates: list[str] | None = None,
                             progress: Callable[[str], None] | None = None) -> Reproduction:
    """The design-space answer of docs/dse_l2.md: optima of L2 size, HBM bandwidth and link speed
    under perf per manufacturing cost, per price and per TCO dollar, at a static batch and at the
    serving operating point, and the tornado of each.

    Files in ``out``: ``optima.csv``, ``tornado.csv``, ``report.md`` (the markdown tables of the
    docs), ``summary.json`` and ``plots/tornado_<set-up>_<point>`` (HTML, PNG).
    """
    from roofline.cost import fit_margin, load_cost_parameters

    say = progress or (lambda _m: None)
    out_dir = check_out_dir(out, force)
    rep = Reproduction("dse-objectives", out_dir)
    chosen = setups or DSE_SETUPS
    optima, tornado = dse_objectives(chosen, estimates=estimates, progress=say)
    _csv(out_dir, "optima.csv", optima, rep.files)
    _csv(out_dir, "tornado.csv", tornado, rep.files)
    rep.tables |= {"optima": optima, "tornado": tornado}
    fit = fit_margin(load_cost_parameters())
    _write(out_dir, "report.md", _objectives_report(optima, tornado, fit), rep.files)
    rep.summary = {"setups": dict(chosen), "optima": optima.to_dict("records"),
                   "margin": fit.margin, "margin_held_out_mean_abs_error": fit.mean_abs_held_out_error}
    (out_dir / "summary.json").write_text(json_dumps(rep.summary, indent=2))
    rep.files.append(out_dir / "summary.json")
    if plots:
        say("tornado charts")
        figs = [(tornado_figure(optima, tornado, name, point), f"tornado_{_slug(name.split()[0])}_{_slug(point)}")
                for name in chosen for point in DSE_POINTS]
        _figures(out_dir, figs, rep, width=1500, height=1100)
    return rep
