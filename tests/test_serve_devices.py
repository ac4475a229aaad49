"""Which device `roofline serve`'s disaggregated pools and the serving fit use: the choice of
:mod:`roofline.fitted` (calibrated profile of a bundled device unless datasheet; a YAML file as
written), as every other command."""

from __future__ import annotations

from pathlib import Path

import yaml

from roofline.cli._serve_disagg import _device
from roofline.fitted import ModelChoice, fitted_model
from roofline.hardware import load_hardware
from roofline.validation._serving_fit import serving_hardware

SPECS = Path(__file__).resolve().parents[1] / "hardware_specs"


def _edited_h100(tmp_path: Path) -> Path:
    """The bundled h100-sxm, same name, with 40 GiB of HBM instead of 80."""
    data = yaml.safe_load((SPECS / "h100-sxm.yaml").read_text())
    data["memory"]["hbm_capacity_GiB"] = {"value": 40, "estimate": "test: an edited copy"}
    path = tmp_path / "h100-sxm.yaml"  # the same name: the file stem is the device name
    path.write_text(yaml.safe_dump(data))
    return path


def test_disaggregated_pools_take_a_yaml_device_as_written(tmp_path: Path) -> None:
    """A user's edited copy of a bundled device keeps its edit: the calibrated profile is for the
    bundled spec only (before, the pools swapped the file for the calibrated bundled device)."""
    path = _edited_h100(tmp_path)
    spec = _device(str(path), datasheet=False)
    assert spec.memory.hbm_capacity_bytes == 40 * 2**30
    assert spec == fitted_model(str(path)).hardware == load_hardware(path)


def test_disaggregated_pools_and_the_serving_fit_use_the_fitted_device_choice() -> None:
    for datasheet in (False, True):
        want = fitted_model("h100-sxm", ModelChoice(datasheet)).hardware
        assert _device("h100-sxm", datasheet) == want
        assert serving_hardware("h100-sxm", datasheet) == want
    # the calibrated profile differs from the datasheet spec (else the test above proves nothing)
    assert _device("h100-sxm", False) != load_hardware("h100-sxm")
