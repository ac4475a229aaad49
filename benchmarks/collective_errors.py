"""Collective errors by algorithm family, 2 KB to 256 MB (the docs/validation.md tables).

Four columns per family:
- datasheet: the bundled specs only, every row;
- calibrated, size split: the shipped profiles, on the rows their fit held out (every other size);
- calibrated, one dataset out: each dataset of a device predicted from the device's collective
  fit on its other datasets (``roofline.validation.leave_one_dataset_out``);
- calibrated, one device out: each device predicted from the other devices' collective fits,
  never from its own rows.
Rows that span nodes are reported apart (their networks are the measuring clusters', see
docs/validation.md). Needs ../shared/validation; takes a few minutes (16 collective fits).

    python benchmarks/collective_errors.py
    python benchmarks/collective_errors.py --datasheet   # where the datasheet error sits (seconds)
    python benchmarks/collective_errors.py --datasheet --set b200.link_latency_us=1.1   # a what-if

``--datasheet`` breaks the datasheet error of the issue's rows down (no fit): MAPE, bias (mean
signed error, negative = too fast) and *points*, each group's share of the scope's MAPE (the sum
of its absolute percentage errors over the scope's row count, so the points of a table add up to
the scope's MAPE), by dataset, device, collective and span, then by message-size band and GPU count.
``--set DEVICE.PARAMETER=VALUE`` (repeatable; any sweepable hardware parameter) prints the same
breakdown with that value in place of the bundled spec's, and the MAPE before and after: a what-if,
not a fit (docs/validation.md uses it for the changes it tried and did not adopt).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

import numpy as np
import pandas as pd

from roofline.exceptions import RooflineError
from roofline.validation import (
    leave_one_dataset_out,
    leave_one_device_out,
    load_cases,
    predict_all,
    run_validation,
)

DEVICES = ("a100-sxm-80gb", "h100-sxm", "h200-sxm", "b200")
FAMILY = {"aiconfigurator/nccl": "NCCL (nccl-tests)", "aiconfigurator/custom_allreduce": "custom (TRT-LLM one/two-shot)",
          "vidur/network": "NCCL (torch.distributed, vidur)", "llmcompass/allreduce": "NCCL (nccl-tests, llmcompass)",
          "llmcompass/gpt3_layer": "NCCL (nccl-tests, llmcompass)", "nccl_tests/allreduce_2node": "NCCL (nccl-tests)"}


def _in_window(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[(frame["size_bytes"] >= 2048) & (frame["size_bytes"] <= 256 * 2**20)].copy()
    scope = (frame["n_gpus"] > frame["devices_per_node"]).map({True: " (nodes)", False: ""})
    frame["family_name"] = frame["dataset"].map(FAMILY).fillna(frame["dataset"]) + " " + frame["kind"] + scope
    return frame


def _issue_scope(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows issue 16 names: aiconfigurator's nccl_collectives.csv and
    trtllm_custom_allreduce.csv, vidur's all_reduce_*.csv (2 KB-256 MB, every GPU count)."""
    aiconfigurator = frame["dataset"].isin(("aiconfigurator/nccl", "aiconfigurator/custom_allreduce"))
    vidur = (frame["dataset"] == "vidur/network") & (frame["kind"] == "allreduce")
    return frame[aiconfigurator | vidur]


def _ape(frame: pd.DataFrame, column: str) -> pd.Series:
    return (frame[column] / frame["measured_s"] - 1).abs() * 100


#: Message-size bands of the breakdown, bytes: (upper edges, labels); each band is (previous, edge].
SIZE_BANDS = ((2**14, 2**17, 2**20, 2**23, 2**26, 2**28),
              ("2-16 KiB", "16-128 KiB", "128 KiB-1 MiB", "1-8 MiB", "8-64 MiB", "64-256 MiB"))


def size_band(size_bytes: pd.Series) -> pd.Series:
    """The :data:`SIZE_BANDS` label of each message size (2 KiB to 256 MiB; NaN outside)."""
    edges, labels = SIZE_BANDS
    return pd.cut(size_bytes, (2**11 - 1, *edges), labels=labels)


def datasheet_breakdown(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Rows, MAPE, bias and points of the signed datasheet error ``err_pct`` per group of ``by``.

    Points are the group's share of the frame's MAPE: its summed absolute error over all the
    frame's rows, so they add up to the frame's MAPE over the groups."""
    grouped = frame.groupby(by, observed=True)["err_pct"]
    return pd.DataFrame({
        "rows": grouped.size(),
        "mape": grouped.apply(lambda e: e.abs().mean()),
        "bias": grouped.mean(),
        "points": grouped.apply(lambda e: e.abs().sum()) / len(frame),
    }).round(2)


def datasheet_errors(cases: pd.DataFrame,
                     overrides: Mapping[str, Mapping[str, float]] | None = None) -> pd.DataFrame:
    """The collective ``cases`` of 2 KiB-256 MiB with their datasheet prediction, signed error
    in % (``err_pct``), size band, span (``"nodes"`` or ``"node"``) and family name.
    ``overrides`` maps a device to hardware parameters set in place of its spec's (a what-if)."""
    overrides = overrides or {}
    frame = _in_window(cases).reset_index(drop=True)
    frame["predicted_datasheet"] = predict_all(
        frame, {d: ({"overrides": dict(overrides[d])} if d in overrides else {}) for d in DEVICES})
    frame["err_pct"] = (frame["predicted_datasheet"] / frame["measured_s"] - 1) * 100
    frame["band"] = size_band(frame["size_bytes"])
    frame["span"] = np.where(frame["n_gpus"] > frame["devices_per_node"], "nodes", "node")
    return frame


def parse_override(text: str) -> tuple[str, str, float]:
    """``DEVICE.PARAMETER=VALUE`` -> (device, parameter, value); ``ValueError`` names what is wrong."""
    target, _, value = text.partition("=")
    device, _, name = target.rpartition(".")
    if device not in DEVICES or not name or not value:
        raise ValueError(f"--set {text!r}: expected DEVICE.PARAMETER=VALUE with DEVICE one of "
                         f"{', '.join(DEVICES)}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"--set {text!r}: VALUE must be a number") from None
    if not np.isfinite(number):
        raise ValueError(f"--set {text!r}: VALUE must be finite")
    return device, name, number


def print_datasheet_breakdown(cases: pd.DataFrame,
                              overrides: Mapping[str, Mapping[str, float]] | None = None) -> None:
    """Where the datasheet error of the issue's rows sits (docs/validation.md); with
    ``overrides``, the breakdown under them and the scope's MAPE before and after."""
    frame = datasheet_errors(cases, overrides)
    scope = _issue_scope(frame)
    print(f"issue 16 scope: {len(scope)} rows, datasheet MAPE {scope['err_pct'].abs().mean():.2f}%, "
          f"bias {scope['err_pct'].mean():.2f}%")
    if overrides:
        bundled = datasheet_errors(cases)
        print(f"  with {dict(overrides)}; the bundled specs: "
              f"{_issue_scope(bundled)['err_pct'].abs().mean():.2f}%; all collectives "
              f"{bundled['err_pct'].abs().mean():.2f}% -> {frame['err_pct'].abs().mean():.2f}%")
    print(datasheet_breakdown(scope, ["dataset", "device", "kind", "span"]).to_string())
    points = scope.assign(points=scope["err_pct"].abs() / len(scope)).pivot_table(
        index=["dataset", "device", "span"], columns="band", values="points", aggfunc="sum", observed=True)
    print("\npoints by size band:\n" + points.round(2).to_string())
    print("\nbias by size band and GPU count (nccl-tests):")
    nccl = scope[scope["dataset"] == "aiconfigurator/nccl"]
    bias = nccl.pivot_table(index=["device", "kind", "n_gpus"], columns="band", values="err_pct",
                            aggfunc="mean", observed=True)
    print(bias.round(1).to_string())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasheet", action="store_true",
                        help="only the datasheet breakdown of the issue's rows (no fit, seconds)")
    parser.add_argument("--set", action="append", default=[], metavar="DEVICE.PARAMETER=VALUE",
                        help="with --datasheet: a hardware parameter in place of the spec's (a what-if)")
    args = parser.parse_args()
    overrides: dict[str, dict[str, float]] = {}
    try:
        for text in args.set:
            device, name, value = parse_override(text)
            overrides.setdefault(device, {})[name] = value
    except ValueError as error:
        parser.error(str(error))
    if overrides and not args.datasheet:
        parser.error("--set needs --datasheet")
    cases = load_cases()
    cases = cases[(cases["family"] == "collective") & cases["device"].isin(DEVICES)]
    if args.datasheet:
        try:
            print_datasheet_breakdown(cases, overrides)
        except RooflineError as error:  # an unknown or out-of-range parameter: one line, exit 2
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        return
    shipped = _in_window(run_validation(cases=cases).cases)
    shipped["ape_datasheet"] = _ape(shipped, "predicted_datasheet")
    held = shipped[shipped["held_out"] & shipped["predicted_calibrated"].notna()].copy()
    held["ape_size_split"] = _ape(held, "predicted_calibrated")
    dataset_out = _in_window(leave_one_dataset_out(cases, DEVICES))
    dataset_out["ape_transfer"] = _ape(dataset_out, "predicted_transfer")
    device_out = _in_window(leave_one_device_out(cases, DEVICES))
    device_out["ape_transfer"] = _ape(device_out, "predicted_transfer")

    def table(by: list[str]) -> pd.DataFrame:
        return pd.DataFrame({
            "rows": shipped.groupby(by).size(),
            "datasheet": shipped.groupby(by)["ape_datasheet"].mean(),
            "size_split_rows": held.groupby(by).size(),
            "size_split": held.groupby(by)["ape_size_split"].mean(),
            "one_dataset_out": dataset_out.groupby(by)["ape_transfer"].mean(),
            "one_device_out": device_out.groupby(by)["ape_transfer"].mean(),
        }).round(1)

    print(table(["family_name", "device"]).to_string())
    print(table(["family_name"]).to_string())
    scopes = {
        "one node": lambda frame: frame[~frame["family_name"].str.endswith("(nodes)")],
        "issue 16 scope (aiconfigurator nccl + custom, vidur all-reduce)": _issue_scope,
        "all": lambda frame: frame,
    }
    for name, pick in scopes.items():
        print(f"{name}: {len(pick(shipped))} rows, datasheet {pick(shipped)['ape_datasheet'].mean():.1f}%, "
              f"size split {pick(held)['ape_size_split'].mean():.1f}% ({len(pick(held))} rows), "
              f"one dataset out {pick(dataset_out)['ape_transfer'].mean():.1f}%, "
              f"one device out {pick(device_out)['ape_transfer'].mean():.1f}%")


if __name__ == "__main__":
    main()
