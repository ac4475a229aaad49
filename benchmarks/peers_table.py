"""The peers' error next to ours on the same serving rows (the table of docs/serving.md).

    .venv/bin/python benchmarks/peers_table.py OUT/serving_predictions.csv la.csv [aic.csv]

``OUT/serving_predictions.csv`` comes from ``benchmarks/serving_validation.py``; ``la.csv`` and
``aic.csv`` from ``benchmarks/peers_serving.py`` (on all the rows of ``load_serving_rows()`` or a
subset of them; rows are matched by configuration and measurement, :data:`KEYS`). Prints, per peer, a
markdown table of MAPE / bias (%) of TPOT and TTFT by dataset and concurrency bucket on the
unsaturated rows the peer predicts, next to roofline's held-out predictions (model left out;
device left out: the datasheet spec plus the overheads fitted on the other devices).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

PEERS = {"la": "llm-analysis", "aic": "AIConfigurator"}
OURS = {"model": "roofline (model out)", "device": "roofline (device out)"}


def _cell(pred: pd.Series, meas: pd.Series) -> str:
    err = (pred / meas - 1) * 100
    return f"{err.abs().mean():.1f} / {err.mean():+.1f}"


#: What identifies a measured row in both files: its configuration and its measurements (the row
#: numbers move when the loader drops or adds rows; engine settings the loader later gave a row,
#: such as a KV dtype read from its launch script, are not part of the key).
KEYS = ["dataset", "model", "device", "framework", "tp", "ep", "isl", "osl", "concurrency",
        "ttft_ms", "tpot_ms"]


def _key(frame: pd.DataFrame) -> pd.Series:
    cols = [frame[k].round(6) if frame[k].dtype.kind == "f" else frame[k] for k in KEYS]
    return pd.Series(list(zip(*(c.astype(str) for c in cols))), index=frame.index)


def table(pred: pd.DataFrame, peer: pd.DataFrame, prefix: str) -> str:
    peer = peer.assign(key=_key(peer)).drop_duplicates("key").set_index("key")
    d = pred.assign(key=_key(pred))
    d = d[d["key"].isin(peer.index)].copy()
    if d.empty:
        raise SystemExit("the peer's rows share no row with the predictions (export both from the same data)")
    d["peer_ttft_ms"] = pd.to_numeric(peer.loc[d["key"], f"{prefix}_ttft_ms"], errors="coerce").to_numpy()
    d["peer_tpot_ms"] = pd.to_numeric(peer.loc[d["key"], f"{prefix}_tpot_ms"], errors="coerce").to_numpy()
    d = d[~d["saturated"] & np.isfinite(d["peer_ttft_ms"]) & np.isfinite(d["peer_tpot_ms"])]
    d["bucket"] = pd.cut(d["concurrency"], [0, 8, 64, 1 << 30], labels=["1-8", "16-64", "128+"])
    name = PEERS[prefix]
    cols = ["dataset", "bucket", "rows"] + [f"{m} {who}" for m in ("TPOT", "TTFT")
                                            for who in (name, *OURS.values())]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for (dataset, bucket), g in d.groupby(["dataset", "bucket"], observed=True):
        cells = [dataset, str(bucket), str(len(g))]
        for m in ("tpot", "ttft"):
            cells.append(_cell(g[f"peer_{m}_ms"], g[f"{m}_ms"]))
            cells += [_cell(g[f"{split}_{m}_ms"], g[f"{m}_ms"]) for split in OURS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    pred = pd.read_csv(argv[0])
    pred = pred.set_index("row") if "row" in pred.columns else pred  # else: all rows, in order
    for path in argv[1:]:
        peer = pd.read_csv(path, index_col=0)
        prefix = next((p for p in PEERS if f"{p}_ttft_ms" in peer.columns), None)
        if prefix is None:
            print(f"{path}: no la_/aic_ columns", file=sys.stderr)
            return 2
        print(f"{PEERS[prefix]} ({path}): MAPE / bias in %\n\n{table(pred, peer, prefix)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
