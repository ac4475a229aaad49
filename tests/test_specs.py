"""Spec files: every bundled file loads and names its sources; bad files fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import roofline
from roofline.exceptions import SpecError
from roofline.model import ModelSpec

from .conftest import FIXTURES, PROJECT


@pytest.mark.parametrize("name", roofline.list_hardware())
def test_every_bundled_device_loads(name: str) -> None:
    hw = roofline.load_hardware(name)
    assert hw.name == name
    assert hw.memory.hbm_bandwidth_Bps > 1e11
    assert 0 < hw.compute.gemm_efficiency <= 1


def _leaves(node, path=""):
    if isinstance(node, dict) and "value" in node:
        yield path, node
    elif isinstance(node, dict):
        for k, v in node.items():
            if not path and k == "schema_version":  # the file layout's version, not a hardware number
                continue
            yield from _leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


@pytest.mark.parametrize("name", roofline.list_hardware())
def test_every_hardware_number_names_its_source(name: str) -> None:
    data = yaml.safe_load((PROJECT / "hardware_specs" / f"{name}.yaml").read_text())
    leaves = list(_leaves(data))
    assert len(leaves) > 15
    for path, leaf in leaves:
        assert isinstance(leaf, dict), f"{name}: {path} is a bare number without a source"
        assert leaf.get("source") or leaf.get("estimate"), f"{name}: {path} has no source or estimate"


@pytest.mark.parametrize("name", roofline.list_models())
def test_every_bundled_model_loads_with_a_source(name: str) -> None:
    m = roofline.load_model(name)
    assert m.name == name
    assert m.source.startswith("http") or "Brown" in m.source or m.source


def test_the_required_devices_and_models_are_bundled() -> None:
    devices = {"a100-sxm-80gb", "h100-sxm", "h200-sxm", "b200", "mi300x", "ascend-910b"}
    assert devices <= set(roofline.list_hardware())
    models = {"llama-2-7b", "llama-2-13b", "llama-2-70b", "llama-3-8b", "llama-3-70b", "llama-3.1-8b",
              "llama-3.1-70b", "llama-3.1-405b", "qwen2-7b", "qwen2-72b", "phi-3-small", "phi-3-medium",
              "gpt-3-175b"}
    assert models <= set(roofline.list_models())


@pytest.mark.parametrize(("name", "published"), [
    ("llama-3-8b", 8.03e9),  # Meta model card: 8.03B
    ("llama-3-70b", 70.6e9),  # Meta model card: 70.6B
    ("llama-2-7b", 6.74e9),  # HF checkpoint: 6,738,415,616
    ("llama-2-70b", 68.98e9),  # HF checkpoint: 68,976,648,192
    ("llama-3.1-405b", 405.85e9),  # Meta: 405B (HF checkpoint 405,853,388,800)
    ("qwen2-7b", 7.62e9),  # Qwen2 report: 7.6B
    ("qwen2-72b", 72.7e9),  # Qwen2 report: 72.7B
    ("gpt-3-175b", 175.0e9),  # Brown et al. 2020, Table 2.1
])
def test_parameter_counts_match_the_published_ones(name: str, published: float) -> None:
    assert roofline.load_model(name).total_params() == pytest.approx(published, rel=0.005)


def test_kv_bytes_per_token_by_hand(llama8b: ModelSpec, llama70b: ModelSpec) -> None:
    # Llama-3-8B: 32 layers x 2 (K,V) x 8 KV heads x 128 dims = 65,536 elements = 128 KiB in bf16
    assert llama8b.kv_elements_per_token() * 2 == 131_072
    # Llama-3-70B: 80 x 2 x 8 x 128 = 163,840 elements = 320 KiB in bf16
    assert llama70b.kv_elements_per_token() * 2 == 327_680


@pytest.mark.parametrize("folder", ["Meta-Llama-3-8B", "Mistral-7B-v0.1", "Qwen2-7B", "Phi-3-medium-4k-instruct"])
def test_hf_config_json_loads(folder: str) -> None:
    m = roofline.load_model(FIXTURES / "hf_configs" / folder / "config.json")
    assert m.num_layers > 0 and m.total_params() > 3e9


def test_hf_config_matches_bundled_yaml() -> None:
    hf = roofline.load_model(FIXTURES / "hf_configs" / "Meta-Llama-3-8B")
    assert hf.total_params() == roofline.load_model("llama-3-8b").total_params()
    assert roofline.load_model(FIXTURES / "hf_configs" / "Qwen2-7B").total_params() == pytest.approx(7.6156e9, rel=1e-3)


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(SpecError, match=r"unknown model 'llama-3-7b'.*did you mean.*llama-3-8b"):
        roofline.load_model("llama-3-7b")
    with pytest.raises(SpecError, match=r"unknown hardware 'h100'.*did you mean.*h100-sxm"):
        roofline.load_hardware("h100")


def _write(tmp_path: Path, data: dict, name: str = "dev.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _h100_dict() -> dict:
    return yaml.safe_load((PROJECT / "hardware_specs" / "h100-sxm.yaml").read_text())


def test_missing_field_names_file_and_key(tmp_path: Path) -> None:
    data = _h100_dict()
    del data["memory"]["hbm_bandwidth_GBps"]
    path = _write(tmp_path, data)
    with pytest.raises(SpecError, match=r"dev\.yaml: memory\.hbm_bandwidth_GBps: missing required key"):
        roofline.load_hardware(path)


def test_negative_field_is_rejected(tmp_path: Path) -> None:
    data = _h100_dict()
    data["memory"]["l2_capacity_MiB"]["value"] = -5
    with pytest.raises(SpecError, match=r"memory\.l2_capacity_MiB: must be >= 0, got -5"):
        roofline.load_hardware(_write(tmp_path, data))


def test_number_without_source_is_rejected(tmp_path: Path) -> None:
    data = _h100_dict()
    data["memory"]["l2_capacity_MiB"] = {"value": 50}
    with pytest.raises(SpecError, match="needs a 'source' or an 'estimate'"):
        roofline.load_hardware(_write(tmp_path, data))


def test_unknown_key_lists_the_allowed(tmp_path: Path) -> None:
    data = _h100_dict()
    data["memory"]["hbm_speed"] = 1
    with pytest.raises(SpecError, match=r"memory\.hbm_speed: unknown key; allowed keys are"):
        roofline.load_hardware(_write(tmp_path, data))


def test_bad_topology_lists_choices(tmp_path: Path) -> None:
    data = _h100_dict()
    data["interconnect"]["intra_node"]["topology"] = "torus"
    with pytest.raises(SpecError, match="choose one of switched, full_mesh"):
        roofline.load_hardware(_write(tmp_path, data))


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ncompute: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken\.yaml: line \d+: not valid YAML"):
        roofline.load_hardware(path)


def test_model_heads_must_be_divisible_by_kv_heads() -> None:
    with pytest.raises(SpecError, match="num_kv_heads: must divide num_attention_heads"):
        ModelSpec.from_dict({"name": "x", "hidden_size": 64, "num_layers": 1, "num_attention_heads": 6,
                             "num_kv_heads": 4, "intermediate_size": 128, "vocab_size": 10})


def test_unsupported_hf_architecture_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "mamba"}')
    with pytest.raises(SpecError, match="unsupported architecture 'mamba'; supported: .*llama"):
        roofline.load_model(path)


@pytest.mark.parametrize("name", roofline.list_hardware())
def test_the_die_count_and_l2_kind_cite_what_they_state(name: str) -> None:
    # a100-sxm-80gb, h100-sxm and h200-sxm cited "... uses HBM3" for their die count and L2 kind
    # (the memory generation's source copied beside them); b200 and mi300x said nothing of the L2
    die = yaml.safe_load((PROJECT / "hardware_specs" / f"{name}.yaml").read_text()).get("die")
    if die is None:  # tpu-v6e: no die block, no cost model
        return
    for key, words in (("num_dies", ("die", "XCD", "chiplet")), ("l2_sram", ("L2", "cache", "SRAM"))):
        cited = die[key].get("source") or die[key].get("estimate")
        assert any(w.lower() in cited.lower() for w in words), f"{name}: die.{key}: {cited!r} names no {words}"
