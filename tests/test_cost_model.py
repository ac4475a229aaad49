"""The honest cost model: links and memory cost money in proportion to what they deliver, die area
comes from its parts, and the cost basis (manufacturing or price) is named and fitted."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from roofline.cost import (
    basis_total_usd,
    fit_margin,
    hardware_cost,
    hardware_cost_totals,
    load_cost_parameters,
    stack_usd,
)
from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec, list_hardware, load_hardware

GB_PER_GiB = 2**30 / 1e9


@pytest.fixture(scope="module")
def params():
    return load_cost_parameters()


PRICED = [n for n in list_hardware() if load_hardware(n).die is not None]


@pytest.mark.parametrize("name", PRICED)
def test_link_and_memory_cost_monotone_in_bandwidth(params, name: str) -> None:
    spec = load_hardware(name)
    bandwidth = np.linspace(100, 16000, 400)
    by_hbm = hardware_cost(params, spec, hbm_bandwidth_GBps=bandwidth)
    assert np.all(np.diff(by_hbm.hbm_usd + by_hbm.assembly_loss_usd + by_hbm.packaging_usd) >= -1e-9)
    assert np.all(np.diff(by_hbm.total_usd) >= -1e-9) and by_hbm.total_usd[-1] > by_hbm.total_usd[0]
    by_capacity = hardware_cost(params, spec, hbm_capacity_GiB=np.linspace(8, 400, 200))
    assert np.all(np.diff(by_capacity.total_usd) >= -1e-9)
    by_link = hardware_cost(params, spec, link_bandwidth_GBps=np.linspace(0, 2000, 100))
    assert np.all(np.diff(by_link.interconnect_usd) > 0)  # full meshes too: board and PHYs
    assert np.all(np.diff(by_link.total_usd) > 0)


@pytest.mark.parametrize("name", PRICED)
def test_the_totals_path_equals_the_breakdown(params, name: str) -> None:
    """A sweep prices with hardware_cost_totals (no breakdown lines): the same total to the bit and
    the module (summed in another order after a generation upgrade) to 1e-13, on every device, with stack upgrades (bandwidth past the stock stacks), more dies' worth of
    L2, scale-out links and swept memory tiers."""
    spec = load_hardware(name)
    rng = np.random.default_rng(7)
    n = 300
    swept = dict(l2_MiB=rng.uniform(0, 512, n), hbm_capacity_GiB=rng.uniform(8, 400, n),
                 hbm_bandwidth_GBps=rng.uniform(100, 20000, n), link_bandwidth_GBps=rng.uniform(0, 2000, n),
                 tier_capacity_GiB={t.name: rng.uniform(0, 900, n) for t in spec.memory.extra_tiers})
    for spans_nodes in (False, True):
        full = hardware_cost(params, spec, spans_nodes=spans_nodes, **swept)
        totals = hardware_cost_totals(params, spec, spans_nodes=spans_nodes, **swept)
        np.testing.assert_array_equal(totals.total_usd, full.total_usd)
        np.testing.assert_allclose(totals.module_usd, full.module_usd, rtol=1e-13)
        price = params.with_overrides({"basis.cost": "price"})
        np.testing.assert_allclose(basis_total_usd(price, spec, totals), basis_total_usd(price, spec, full), rtol=1e-13)
    one = hardware_cost_totals(params, spec)
    assert np.ndim(one.total_usd) == 0 and float(one.total_usd) == float(hardware_cost(params, spec).total_usd)


def test_every_bundled_device_has_a_cost_including_a100_40gb_and_l40s(params) -> None:
    assert "a100-sxm-40gb" in PRICED and "l40s" in PRICED
    for name in PRICED:
        assert math.isfinite(float(hardware_cost(params, load_hardware(name)).total_usd)), name


def test_memory_cost_of_known_configurations_by_hand(params) -> None:
    # H100: 5 HBM3 stacks x 16 GiB = 85.9 GB at $12/GB = $1,030.79
    assert float(hardware_cost(params, load_hardware("h100-sxm")).hbm_usd) == pytest.approx(
        5 * 16 * GB_PER_GiB * 12)
    # A100 40GB: 5 HBM2 stacks x 8 GiB = 42.9 GB at $17.5/GB = $751.62
    a100 = hardware_cost(params, load_hardware("a100-sxm-40gb"))
    assert int(a100.hbm_stacks) == 5 and float(a100.hbm_usd) == pytest.approx(751.62, abs=0.01)
    # L40S: 24 GDDR6 chips x 2 GiB = 51.54 GB at $3.4/GB = $175.23, on the board: no interposer
    l40s = hardware_cost(params, load_hardware("l40s"))
    assert int(l40s.hbm_stacks) == 24 and float(l40s.hbm_usd) == pytest.approx(175.23, abs=0.01)
    assert float(l40s.interposer_area_mm2) == 0.0
    # HBM3e is priced apart from HBM3: 24 GiB x 1.0737 x $13.2 = $340.2 a stack
    assert stack_usd(params, "HBM3e") == pytest.approx(24 * GB_PER_GiB * 13.2)
    assert params.value("hbm.usd_per_GB.HBM3e") > params.value("hbm.usd_per_GB.HBM3")


def test_more_bandwidth_buys_more_stacks_or_a_faster_generation(params) -> None:
    h100 = load_hardware("h100-sxm")
    # 6,700 GB/s: 10 HBM3 stacks (6,700 / 670) = $2,061.6 beat 7 HBM3e stacks = $2,381.6
    double = hardware_cost(params, h100, hbm_bandwidth_GBps=6700)
    assert int(double.hbm_stacks) == 10 and params.hbm_generations[int(double.hbm_generation)] == "HBM3"
    assert float(double.hbm_usd) == pytest.approx(10 * 16 * GB_PER_GiB * 12)
    # 5,000 GB/s: 8 HBM3 stacks ($1,649 + 3 more interposer sites) lose to 5 HBM3e stacks ($1,700.8)
    faster = hardware_cost(params, h100, hbm_bandwidth_GBps=5000)
    assert params.hbm_generations[int(faster.hbm_generation)] == "HBM3e" and int(faster.hbm_stacks) == 5
    # as sold, a device keeps its own generation (A100 40GB stays HBM2 though HBM2e is cheaper)
    assert params.hbm_generations[int(hardware_cost(params, load_hardware("a100-sxm-40gb")).hbm_generation)] == "HBM2"


def _with_l2(spec: HardwareSpec, mib: float) -> HardwareSpec:
    return dataclasses.replace(spec, memory=dataclasses.replace(spec.memory, l2_capacity_bytes=mib * 2**20))


def test_die_area_is_derived_from_its_parts(params, tmp_path) -> None:
    h100 = load_hardware("h100-sxm")
    stock = hardware_cost(params, h100)
    # logic 769.6 + 50 MiB x 0.54 + 450 GB/s x 0.0386 = 814.0 mm2, the published GH100 area
    assert float(stock.die_area_mm2) == pytest.approx(814.0, abs=0.05)
    # a copied spec with 128 MiB of L2: +78 MiB x 0.54 = +42.1 mm2 and a dearer die
    text = Path(h100.source_file).read_text()
    copied = tmp_path / "h100-big-l2.yaml"
    copied.write_text(text.replace("l2_capacity_MiB: {value: 50,", "l2_capacity_MiB: {value: 128,")
                      .replace("name: h100-sxm", "name: h100-big-l2"))
    big = hardware_cost(params, load_hardware(copied))
    assert float(big.die_area_mm2) == pytest.approx(814.0 + 78 * 0.54, abs=0.05)
    assert float(big.total_usd) > float(stock.total_usd)
    # exactly as in a sweep over L2
    assert float(big.total_usd) == pytest.approx(float(hardware_cost(params, h100, l2_MiB=128).total_usd))


def test_legacy_die_area_and_both_areas(tmp_path) -> None:
    doc = yaml.safe_load(Path(load_hardware("h100-sxm").source_file).read_text())
    doc["die"].pop("logic_area_mm2")
    doc["die"]["die_area_mm2"] = {"value": 814, "source": "GH100 814 mm2"}
    legacy = tmp_path / "legacy.yaml"
    legacy.write_text(yaml.safe_dump({**doc, "name": "legacy"}))
    params = load_cost_parameters()
    assert float(hardware_cost(params, load_hardware(legacy)).die_area_mm2) == pytest.approx(814.0)
    doc["die"]["logic_area_mm2"] = {"value": 700, "estimate": "x"}
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match=r"die\.logic_area_mm2: give exactly one of"):
        load_hardware(both)


def test_margin_fit_and_held_out_error_by_hand(params) -> None:
    fit = fit_margin(params)
    assert set(fit.devices) == {"h100-sxm", "b200", "a100-sxm-80gb", "mi300x", "h20", "ascend-910b"}
    ratios = np.array(fit.price_usd) / np.array(fit.module_usd)
    assert fit.margin == pytest.approx(math.exp(np.log(ratios).mean()))
    for i in range(len(ratios)):  # leave device i out: the geometric mean of the other five
        margin = math.exp(np.log(np.delete(ratios, i)).mean())
        assert fit.held_out_error[i] == pytest.approx(fit.module_usd[i] * margin / fit.price_usd[i] - 1)
    # the first four prices alone (docs/cost_model.md: 79%); the two Reuters prices bring it to 57%
    first = [fit.devices.index(d) for d in ("h100-sxm", "b200", "a100-sxm-80gb", "mi300x")]
    r4 = ratios[first]
    loo4 = [math.exp(np.log(np.delete(r4, i)).mean()) / r4[i] - 1 for i in range(4)]
    assert np.mean(np.abs(loo4)) == pytest.approx(0.795, abs=0.005)
    assert fit.mean_abs_held_out_error == pytest.approx(0.566, abs=0.005)


def test_price_basis(params) -> None:
    price = params.with_overrides({"basis.cost": "price"})
    h100 = load_hardware("h100-sxm")
    b = hardware_cost(price, h100)
    # the bundled H100's module at its sourced $27,500, the rest at cost
    expected = 27500 + float(b.total_usd) - float(b.module_usd)
    assert float(basis_total_usd(price, h100, b)) == pytest.approx(expected)
    # a variant pays the fitted margin on the manufacturing-cost difference
    more = hardware_cost(price, h100, hbm_bandwidth_GBps=6700)
    delta = float(more.module_usd) - float(b.module_usd)
    got = float(basis_total_usd(price, h100, more))
    assert got == pytest.approx(27500 + fit_margin(price).margin * delta + float(more.total_usd) - float(more.module_usd))
    # a device without a sourced price: module x fitted margin
    h200 = load_hardware("h200-sxm")
    c = hardware_cost(price, h200)
    assert float(basis_total_usd(price, h200, c)) == pytest.approx(
        fit_margin(price).margin * float(c.module_usd) + float(c.total_usd) - float(c.module_usd))
    # manufacturing basis: the total
    assert float(basis_total_usd(params, h100, b)) == pytest.approx(float(b.total_usd))


def test_bad_basis_and_range(tmp_path) -> None:
    with pytest.raises(SpecError, match=r"basis\.cost: 'retail' is not allowed; choose one of manufacturing, price"):
        load_cost_parameters(overrides={"basis.cost": "retail"})
    from roofline.cost.parameters import DEFAULT_COST_SPEC

    doc = yaml.safe_load(DEFAULT_COST_SPEC.read_text())
    doc["tco"]["pue"]["range"] = [2.0, 1.0]
    path = tmp_path / "cost.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match=r"tco\.pue\.range: \[2\.0, 1\.0\]; allowed: \[low, high\]"):
        load_cost_parameters(path)


def test_design_space_optima_under_the_three_objectives() -> None:
    from roofline.reproduce import DSE_OBJECTIVES, DSE_POINTS, DSE_SETUPS, dse_objectives

    key = "interconnect.board_usd_per_GBps"
    optima, tornado = dse_objectives({"h100-sxm": DSE_SETUPS["h100-sxm"]}, estimates=[key])
    assert (optima["gain_vs_stock"] > 1).all()  # the grid's best beats the stock device
    for point in DSE_POINTS:
        at = optima[optima["point"] == point]
        assert list(at["objective"]) == list(DSE_OBJECTIVES)
        for objective in DSE_OBJECTIVES:
            base = at.set_index("objective").loc[objective, "value"]
            t = tornado[(tornado["point"] == point) & (tornado["objective"] == objective)].set_index("end")
            # every configuration gets cheaper as the board cost falls, so the best perf per dollar rises
            assert t.loc["low", "value"] >= base >= t.loc["high", "value"]
            assert t.loc["low", "parameter_value"] == 0.3 and t.loc["high", "parameter_value"] == 3.0
    serving = optima[optima["point"] == "serving"]
    # at the serving point each configuration runs at its busiest SLO-meeting concurrency, far above
    # the static batch of 16
    assert (serving["concurrency"] > 16).all() and (serving["stock_concurrency"] > 16).all()


def test_a_copied_spec_with_more_l2_is_dearer_on_the_price_basis_too(tmp_path) -> None:
    price = load_cost_parameters(overrides={"basis.cost": "price"})
    h100 = load_hardware("h100-sxm")
    # keeps name: h100-sxm, and so its stem (the stem is the name; a differing stem would make it
    # a new device, priced with the fitted margin instead of the H100's sourced price)
    copied = tmp_path / "h100-sxm.yaml"
    copied.write_text(Path(h100.source_file).read_text().replace(
        "l2_capacity_MiB: {value: 50,", "l2_capacity_MiB: {value: 128,"))
    big = load_hardware(copied)
    stock_total = float(basis_total_usd(price, h100, hardware_cost(price, h100)))
    big_total = float(basis_total_usd(price, big, hardware_cost(price, big)))
    sweep_total = float(basis_total_usd(price, h100, hardware_cost(price, h100, l2_MiB=128)))
    assert big_total > stock_total and big_total == pytest.approx(sweep_total)


def test_memory_tiers_and_the_grace_share_by_hand(params) -> None:
    from roofline.cost.device import memory_tiers_usd

    gh200, gb200, h100 = load_hardware("gh200"), load_hardware("gb200-nvl72"), load_hardware("h100-sxm")
    # GH200: 480 GiB of LPDDR5X = 515.4 GB x $3.6/GB = $1,855.43, plus one Grace ($700: its 480 GiB
    # behind one CPU) = $2,555.43
    assert memory_tiers_usd(params, gh200) == pytest.approx(480 * 2**30 / 1e9 * 3.6 + 700)
    assert float(hardware_cost(params, gh200).memory_tiers_usd) == pytest.approx(2555.43, abs=0.01)
    # a GB200 GPU: 240 GiB and half a Grace
    assert memory_tiers_usd(params, gb200) == pytest.approx(240 * 2**30 / 1e9 * 3.6 + 350)
    # in the total, and nothing for a device without tiers
    b = hardware_cost(params, gh200)
    lines = (b.die_usd + b.hbm_usd + b.packaging_usd + b.assembly_loss_usd + b.interconnect_usd
             + b.board_system_usd + b.memory_tiers_usd)
    assert float(b.total_usd) == pytest.approx(float(lines))
    assert float(hardware_cost(params, h100).memory_tiers_usd) == 0.0
    # monotone in a swept tier capacity; the spec's own cost_usd_per_GiB wins over the cost file
    swept = hardware_cost(params, gh200, tier_capacity_GiB={"lpddr": np.array([120.0, 240.0, 480.0])})
    assert np.all(np.diff(np.asarray(swept.total_usd)) > 0)
    own = dataclasses.replace(gh200.memory.extra_tiers[0], cost_usd_per_GiB=2.0)
    spec = dataclasses.replace(gh200, memory=dataclasses.replace(gh200.memory, extra_tiers=(own,)))
    assert memory_tiers_usd(params, spec) == pytest.approx(480 * 2.0 + 700)


def test_a_cost_file_written_before_the_tiers_section_still_loads_with_a_notice(tmp_path) -> None:
    """Users' cost files from before memory tiers were priced lack ``tiers:``; they load with the
    bundled section and one notice naming the file, and give the same costs as the default."""
    import yaml

    from roofline.cost.parameters import DEFAULT_COST_SPEC
    from roofline.exceptions import SpecDeprecationWarning

    doc = yaml.safe_load(DEFAULT_COST_SPEC.read_text())
    del doc["tiers"]
    old = tmp_path / "my_costs.yaml"
    old.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.warns(SpecDeprecationWarning, match=r"my_costs.yaml: no tiers section"):
        params = load_cost_parameters(old)
    default = load_cost_parameters()
    assert params.table("tiers.usd_per_GB") == default.table("tiers.usd_per_GB")
    spec = load_hardware("h100-sxm")
    assert float(hardware_cost(params, spec).total_usd) == float(hardware_cost(default, spec).total_usd)


def test_a_cost_file_without_the_busy_power_and_on_chip_path_takes_the_bundled_values(tmp_path) -> None:
    import yaml

    from roofline.cost.parameters import DEFAULT_COST_SPEC
    from roofline.exceptions import SpecDeprecationWarning

    doc = yaml.safe_load(Path(DEFAULT_COST_SPEC).read_text())
    del doc["energy"]["busy_fraction_of_tdp"], doc["energy"]["noc_pj_per_byte"]
    doc["energy"]["static_fraction_of_tdp"]["value"] = 0.12  # the user's own value is kept
    f = tmp_path / "older_costs.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.warns(SpecDeprecationWarning, match=r"older_costs.yaml: no energy.busy_fraction_of_tdp, "
                                                     r"energy.noc_pj_per_byte; using the bundled"):
        params = load_cost_parameters(f)
    assert params.value("energy.busy_fraction_of_tdp") == 0.25 and params.value("energy.noc_pj_per_byte") == 7.2
    assert params.value("energy.static_fraction_of_tdp") == 0.12
