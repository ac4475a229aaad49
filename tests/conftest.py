"""Shared fixtures: bundled specs loaded once, a small set of configurations."""

from __future__ import annotations

import os
import pickle
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

import roofline
from roofline.validation import load_cases, run_validation
from roofline.validation._data import default_data_dir

# Property tests check laws, not speed: no per-example deadline and no "input generation is slow"
# health check, both of which fail on a loaded machine (a 2-core CI box running other jobs).
# A test's own @settings still overrides what it names.
settings.register_profile("roofline", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("roofline")

FIXTURES = Path(__file__).parent / "fixtures"
PROJECT = Path(__file__).resolve().parent.parent

#: Measured reference data, read in place (never copied into the project).
DATA = default_data_dir()
needs_data = pytest.mark.skipif(
    not DATA.is_dir(),
    reason=f"measured validation data not found at {DATA} (../shared/validation from the project root); "
           f"set ROOFLINE_VALIDATION_DATA to its location")


@pytest.fixture
def cli(capsys):
    """Run the real entry point in this process; return (exit code, stdout, stderr)."""
    from roofline.cli.main import main

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main(list(args))
        out = capsys.readouterr()
        return int(exit_info.value.code or 0), out.out, out.err

    return invoke


def one_line_error(result: tuple[int, str, str], *patterns: str) -> str:
    """Check exit code 2 and a single ``error:`` line on stderr holding every pattern."""
    code, _out, err = result
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), lines[0]
    for p in patterns:
        assert p in lines[0], lines[0]
    return lines[0]


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


#: Under pytest-xdist, the folder every worker of this run shares (the parent of the workers' own
#: temporary folders, which pytest removes with old runs); None in a single process.
_SHARED_DIR: Path | None = None


@pytest.fixture(scope="session", autouse=True)
def _shared_dir(tmp_path_factory):
    global _SHARED_DIR
    if os.environ.get("PYTEST_XDIST_WORKER"):
        _SHARED_DIR = tmp_path_factory.getbasetemp().parent


@lru_cache(maxsize=1)
def _validation():
    """The validation of every case with the shipped profiles, run once per test run: under
    pytest-xdist the first worker that needs it runs it and leaves it for the others (a file lock;
    pytest-xdist's recipe for a session fixture run once), which read it instead of running it again."""
    try:
        import fcntl
    except ImportError:  # no POSIX locks (Windows): each worker runs its own
        fcntl = None
    if _SHARED_DIR is None or fcntl is None:
        return run_validation(cases=_cases())
    path = _SHARED_DIR / "validation.pkl"
    with open(_SHARED_DIR / "validation.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return pickle.loads(path.read_bytes())
        result = run_validation(cases=_cases())
        partial = path.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(result))
        partial.replace(path)
        return result
