"""`roofline list hardware|models|networks`: the bundled specs."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from roofline.cli._common import print_table, user_errors
from roofline.hardware import (
    hardware_sources,
    list_hardware,
    list_networks,
    load_hardware,
    network_values,
)
from roofline.model import list_models, load_model

app = typer.Typer()


class Kind(str, Enum):
    hardware = "hardware"
    models = "models"
    networks = "networks"


@app.command("list")
@user_errors
def list_command(
    kind: Annotated[Kind, typer.Argument(help="hardware, models or networks (measured clusters' scale-out networks)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    sources: Annotated[bool, typer.Option(
        "--sources", help="Hardware: every number of each device with its source or estimate.")] = False,
) -> None:
    """List the bundled devices, models or scale-out networks with their key numbers.

    Peaks are dense (no 2:4 sparsity); link bandwidth is per device and direction.

    Example: roofline list hardware --sources
    """
    if kind is Kind.hardware:
        rows = []
        for name in list_hardware():
            h = load_hardware(name)
            cited = hardware_sources(name)
            n_est = sum(c.kind == "estimate" for c in cited)
            peaks = h.compute.peak_flops
            rows.append({"name": name, **{f"{d}_tflops": peaks[d] / 1e12 if d in peaks else None
                                          for d in ("bf16", "fp8", "fp4")},
                         "hbm_GiB": h.memory.hbm_capacity_bytes / 2**30,
                         "hbm_GBps": h.memory.hbm_bandwidth_Bps / 1e9,
                         "l2_MiB": h.memory.l2_capacity_bytes / 2**20,
                         "link_GBps": h.intra_node.device_bandwidth_Bps / 1e9,
                         "domain": h.devices_per_node,
                         "topology": h.intra_node.topology,
                         "sources": f"{len(cited) - n_est} sourced, {n_est} estimated",
                         "description": h.description})
            if sources:
                rows[-1]["numbers"] = [{"key": c.key, "value": c.value, c.kind: c.text} for c in cited]
    elif kind is Kind.networks:
        keys = ("bandwidth_GBps", "latency_us", "efficiency", "nccl_protocols")
        rows = [{"name": r["name"], **{k: r.get(k) for k in keys}, "description": r["description"]}
                for r in map(network_values, list_networks())]
        for r in rows:
            if isinstance(r["nccl_protocols"], list):
                r["nccl_protocols"] = ",".join(r["nccl_protocols"])
    else:
        rows = []
        for name in list_models():
            m = load_model(name)
            rows.append({"name": name, "params_B": m.total_params() / 1e9,
                         "active_B": m.active_params() / 1e9, "layers": m.num_layers,
                         "hidden": m.hidden_size, "heads": m.num_attention_heads, "kv_heads": m.num_kv_heads,
                         "moe": m.moe is not None, "mla": m.mla is not None,
                         "attention": m.attention_summary()})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if sources:
        for r in rows:
            numbers = r.pop("numbers", [])
            print_table(f"{r['name']}: {r['description']}", ["field", "value", "kind", "from"],
                        [[n["key"], n["value"], "estimate" if "estimate" in n else "source",
                          n.get("source", n.get("estimate"))] for n in numbers])
    # descriptions are long: JSON and --sources show them
    cols = [c for c in rows[0] if c != "description"] if rows else ["name"]
    print_table(f"bundled {kind.value}", cols, [["-" if r[c] is None else r[c] for c in cols] for r in rows])
