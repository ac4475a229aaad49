"""Held-out collective errors by algorithm family, 2 KB to 256 MB (docs/validation.md table).

Datasheet = the bundled specs; calibrated = the shipped profiles (fitted on the size-split
training rows only). Every error is on the held-out rows. Needs ../shared/validation.

    python benchmarks/collective_errors.py
"""

from __future__ import annotations

import pandas as pd

from roofline.validation import load_cases, run_validation

FAMILY = {"aiconfigurator/nccl": "NCCL (nccl-tests)", "aiconfigurator/custom_allreduce": "custom (TRT-LLM one/two-shot)",
          "vidur/network": "NCCL (torch.distributed, vidur)", "llmcompass/allreduce": "NCCL (nccl-tests, llmcompass)",
          "nccl_tests/allreduce_2node": "NCCL 2 nodes (hierarchical)"}


def main() -> None:
    cases = load_cases()
    cases = cases[(cases["family"] == "collective") & cases["device"].notna()]
    r = run_validation(cases=cases).cases
    r = r[r["held_out"] & r["predicted_calibrated"].notna()]
    r = r[(r["size_bytes"] >= 2048) & (r["size_bytes"] <= 256 * 2**20)]
    r["family_name"] = r["dataset"].map(FAMILY).fillna(r["dataset"]) + " " + r["kind"]
    for col in ("datasheet", "calibrated"):
        r[f"ape_{col}"] = (r[f"predicted_{col}"] / r["measured_s"] - 1).abs() * 100
    by = r.groupby(["family_name", "device"])
    table = pd.DataFrame({"rows": by.size(), "datasheet_mape": by["ape_datasheet"].mean(),
                          "calibrated_mape": by["ape_calibrated"].mean()}).round(1)
    print(table.to_string())
    fam = r.groupby("family_name")
    print(pd.DataFrame({"rows": fam.size(), "datasheet_mape": fam["ape_datasheet"].mean(),
                        "calibrated_mape": fam["ape_calibrated"].mean()}).round(1).to_string())
    print(f"all: {len(r)} rows, datasheet {r['ape_datasheet'].mean():.1f}%, calibrated {r['ape_calibrated'].mean():.1f}%")


if __name__ == "__main__":
    main()
