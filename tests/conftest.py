"""Shared fixtures: bundled specs loaded once, a small set of configurations."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

import roofline
from roofline.validation import load_cases, run_validation
from roofline.validation._data import default_data_dir

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).resolve().parent.parent

#: Measured reference data, read in place (never copied into the project).
DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    not DATA.is_dir(),
    reason=f"measured validation data not found at {DATA} (../shared/validation from the project root); "
           f"set ROOFLINE_VALIDATION_DATA to its location")


@pytest.fixture(scope="session")
def h100() -> roofline.HardwareSpec:
    return roofline.load_hardware("h100-sxm")


@pytest.fixture(scope="session")
def llama8b() -> roofline.ModelSpec:
    return roofline.load_model("llama-3-8b")


@pytest.fixture(scope="session")
def llama70b() -> roofline.ModelSpec:
    return roofline.load_model("llama-3-70b")


@lru_cache(maxsize=1)
def _cases():
    """Every measured case, loaded once per test session."""
    return load_cases()


@lru_cache(maxsize=1)
def _validation():
    """The validation of every case with the shipped profiles, run once per test session."""
    return run_validation(cases=_cases())
