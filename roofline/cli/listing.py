"""`roofline list hardware|models`: the bundled specs."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer

from roofline.cli._common import print_table, user_errors
from roofline.hardware import list_hardware, load_hardware
from roofline.model import list_models, load_model

app = typer.Typer()


class Kind(str, Enum):
    hardware = "hardware"
    models = "models"


@app.command("list")
@user_errors
def list_command(
    kind: Annotated[Kind, typer.Argument(help="hardware or models")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the bundled devices or models with their key numbers.

    Example: roofline list hardware
    """
    if kind is Kind.hardware:
        rows = []
        for name in list_hardware():
            h = load_hardware(name)
            rows.append({"name": name, "bf16_tflops": h.compute.peak_flops.get("bf16", 0) / 1e12,
                         "hbm_GiB": h.memory.hbm_capacity_bytes / 2**30,
                         "hbm_GBps": h.memory.hbm_bandwidth_Bps / 1e9,
                         "l2_MiB": h.memory.l2_capacity_bytes / 2**20,
                         "link_GBps": h.intra_node.device_bandwidth_Bps / 1e9,
                         "topology": h.intra_node.topology, "description": h.description})
    else:
        rows = []
        for name in list_models():
            m = load_model(name)
            rows.append({"name": name, "params_B": m.total_params() / 1e9,
                         "active_B": m.active_params() / 1e9, "layers": m.num_layers,
                         "hidden": m.hidden_size, "heads": m.num_attention_heads, "kv_heads": m.num_kv_heads,
                         "moe": m.moe is not None, "mla": m.mla is not None})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    cols = list(rows[0]) if rows else ["name"]
    print_table(f"bundled {kind.value}", cols, [[r[c] for c in cols] for r in rows])
