"""Edge-of-range warnings for sweeps and searches."""

from __future__ import annotations

from roofline.edge import edge_warnings
from roofline.sweepfile import Parameter


def test_grid_values_at_each_edge_and_inside() -> None:
    l2 = Parameter("l2_capacity_MiB", values=(0, 64, 128, 256))
    assert edge_warnings([l2], {"l2_capacity_MiB": 64}) == []
    [low] = edge_warnings([l2], {"l2_capacity_MiB": 0})
    assert "lowest" in low and "[0, 256]" in low
    [high] = edge_warnings([l2], {"l2_capacity_MiB": 256.0})
    assert high.startswith("l2_capacity_MiB: the best value 256 is the highest")


def test_search_ranges_use_a_tolerance() -> None:
    hbm = Parameter("hbm_bandwidth_GBps", low=800, high=3200)
    assert edge_warnings([hbm], {"hbm_bandwidth_GBps": 3190}) != []  # within 1% of the span
    assert edge_warnings([hbm], {"hbm_bandwidth_GBps": 3000}) == []


def test_nothing_to_say() -> None:
    two = Parameter("link_bandwidth_GBps", values=(14, 28))  # no inside to an edge
    names = Parameter("hardware_name", values=("a", "b", "c"))
    flag = Parameter("prefetch", values=(True, False))
    best = {"link_bandwidth_GBps": 28, "hardware_name": "c", "prefetch": True}
    assert edge_warnings([two, names, flag], best) == []
    assert edge_warnings([Parameter("x", values=(1, 2, 3))], None) == []
    assert edge_warnings([Parameter("x", values=(1, 2, 3))], {"y": 1}) == []


def test_sweep_summary_reports_the_edge(tmp_path) -> None:
    import json

    import yaml

    from roofline.sweep import run_sweep
    from roofline.sweepfile import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "edge", "hardware": "h100-sxm", "model": "llama-3-8b",
        "workload": {"batch": 1, "input_len": 256, "output_len": 4}, "parallelism": {"tp": 2},
        "sweep": {"hbm_bandwidth_GBps": [1000, 2000, 4000]},
        "objective": {"minimize": "tpot_ms"}}))
    run_sweep(load_sweep(path), tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    [warning] = summary["edge_warnings"]  # faster HBM always lowers TPOT: the best is the top
    assert warning.startswith("hbm_bandwidth_GBps: the best value 4000 is the highest")


def _edge_file(tmp_path, **extra) -> str:
    import yaml

    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({
        "name": "edge", "hardware": "h100-sxm", "model": "llama-3-8b",
        "workload": {"batch": 1, "input_len": 256, "output_len": 4}, "parallelism": {"tp": 2},
        "sweep": {"hbm_bandwidth_GBps": [1000, 2000, 4000]},
        "objective": {"minimize": "tpot_ms"}, **extra}))
    return str(path)


def test_sweep_and_optimize_commands_print_the_edge(cli, tmp_path) -> None:
    # faster HBM always lowers TPOT: the best is the highest value, and both commands say so
    code, _, err = cli("sweep", _edge_file(tmp_path), "--out", str(tmp_path / "sweep"), "--no-plots")
    assert code == 0, err
    assert "note: hbm_bandwidth_GBps: the best value 4000 is the highest" in err
    search = {"search": {"trials": 6, "seed": 0, "batch_size": 6}}
    code, _, err = cli("optimize", _edge_file(tmp_path, **search), "--out", str(tmp_path / "search"), "--no-plots")
    assert code == 0, err
    assert "note: hbm_bandwidth_GBps: the best value 4000 is the highest" in err
