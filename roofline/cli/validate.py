"""`roofline validate` and `roofline calibrate`: error against measured data, and fitting it.

Heavy imports (pandas, scipy, plotly) happen inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from roofline.cli._common import check_output, user_errors
from roofline.exceptions import SpecError

app = typer.Typer()

DataOpt = Annotated[Path | None, typer.Option(
    "--data", help="Validation data folder (default: $ROOFLINE_VALIDATION_DATA, else ../shared/validation "
                   "next to the project root).", file_okay=False)]


def _pct(v: object) -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return "-" if f != f else f"{f:.1f}"


def _print(title: str, frame, columns: list[str]) -> None:  # noqa: ANN001 (pandas is imported lazily)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i < 3 and frame[col].dtype == object else "right")
    for row in frame[columns].itertuples(index=False):
        table.add_row(*[_pct(v) if isinstance(v, float) else str(v) for v in row])
    Console(width=160).print(table)


@app.command("validate")
@user_errors
def validate(
    data: DataOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write an HTML report with predicted-"
                                                "against-measured plots to this file.", dir_okay=False)] = None,
    device: Annotated[list[str] | None, typer.Option("--device", help="Only this bundled device "
                                                     "(repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --report file.")] = False,
    serving: Annotated[bool, typer.Option("--serving", help="Also the serving rows (InferenceX, AIConfigurator "
                                          "e2e): held-out error of roofline serve, leave one model / framework / "
                                          "device out, by concurrency bucket (a few minutes).")] = False,
) -> None:
    """Error of the model against measured data: MAPE, median and worst APE and bias per dataset
    and device, datasheet-only and with the shipped calibrated profiles, on held-out rows."""
    if report is not None:
        check_output(report, force)
    from roofline.validation import run_validation, write_report

    result = run_validation(data, devices=device or None)
    cols = ["family", "dataset", "device", "n_datasheet", "mape_datasheet", "mape_calibrated",
            "median_ape_calibrated", "worst_ape_calibrated", "bias_calibrated"]
    _print("held-out error (%), per dataset and device", result.summary(), cols)
    fam = result.family_summary()
    _print("held-out error (%) per family, devices with a calibrated profile", fam,
           ["family", "n_calibrated", "mape_datasheet", "mape_calibrated", "median_ape_calibrated",
            "bias_calibrated", "target_mape"])
    missing = result.unpredicted()
    if len(missing):
        typer.echo("not predicted (no bundled spec): " + ", ".join(
            f"{r.dataset} {r.source_device} ({r.rows} rows)" for r in missing.itertuples()))
    if report is not None:
        path = write_report(result, report)
        typer.echo(f"report: {path}")
    if serving:
        from roofline.validation import serving_report

        tables = serving_report(data, splits=("model", "framework", "device"))
        for split in ("model", "framework", "device"):
            frame = tables[f"{split}:bucket"].reset_index()
            frame["bucket"] = frame["bucket"].astype(str)
            _print(f"serving: held-out error (%), leave one {split} out", frame,
                   ["set", "dataset", "bucket", "rows", "tpot_mape", "tpot_bias", "ttft_mape", "ttft_bias"])


@app.command("calibrate")
@user_errors
def calibrate(
    hardware: Annotated[str, typer.Option("--hardware", help="Bundled device to calibrate, e.g. h100-sxm.")],
    data: DataOpt = None,
    split: Annotated[str, typer.Option("--split", help="Training split: 'size' (checkerboard over each "
                                       "dataset's size grid) or 'model' (hold out whole models).")] = "size",
    out: Annotated[Path | None, typer.Option("--out", help="Profile to write (default: "
                                             "hardware_specs/calibrated/<device>.yaml).", dir_okay=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Fit and report, write nothing.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing profile (the shipped one "
                                        "included).")] = False,
) -> None:
    """Fit a device's efficiency parameters on a training split of the measured data; report the
    error on the held-out rows only and write the calibrated profile."""
    from roofline.validation import PROFILE_DIR
    from roofline.validation import calibrate as run

    target = out or PROFILE_DIR / f"{hardware}.yaml"
    if not dry_run and target.exists() and not force:
        raise SpecError(f"{target} exists; pass --force to replace it, --out FILE to write elsewhere, "
                        f"or --dry-run")
    result = run(hardware, data_dir=data, split=split, out=out, write=not dry_run)
    cols = ["family", "dataset", "n_calibrated", "mape_datasheet", "mape_calibrated",
            "median_ape_calibrated", "worst_ape_calibrated", "bias_calibrated"]
    _print(f"{result.device}: held-out error (%), split '{split}'", result.summary("held_out"), cols)
    _print(f"{result.device}: training error (%)", result.summary("train"), cols)
    if not dry_run:
        typer.echo(f"profile: {out or PROFILE_DIR / f'{result.device}.yaml'}")
