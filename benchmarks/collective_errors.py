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
"""

from __future__ import annotations

import pandas as pd

from roofline.validation import (
    leave_one_dataset_out,
    leave_one_device_out,
    load_cases,
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


def main() -> None:
    cases = load_cases()
    cases = cases[(cases["family"] == "collective") & cases["device"].isin(DEVICES)]
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
