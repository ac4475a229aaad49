"""Shared fixtures: bundled specs loaded once, a small set of configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

import roofline

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def h100() -> roofline.HardwareSpec:
    return roofline.load_hardware("h100-sxm")


@pytest.fixture(scope="session")
def llama8b() -> roofline.ModelSpec:
    return roofline.load_model("llama-3-8b")


@pytest.fixture(scope="session")
def llama70b() -> roofline.ModelSpec:
    return roofline.load_model("llama-3-70b")
