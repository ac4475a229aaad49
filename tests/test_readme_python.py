"""The README's Python API runs as shown: each ```python block of its "Python API" section on its
own, in a fresh interpreter namespace, from a folder that holds the bundled sweep files (a new user
copies one block into a script; a block that used ``roofline`` without importing it failed so)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent


def _python_api_blocks() -> list[str]:
    readme = (PROJECT / "README.md").read_text()
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


BLOCKS = _python_api_blocks()
#: The evaluation-path block continues the sweep block before it: it reuses its ``scenario``.
CONTINUES_PREVIOUS = "ev = evaluate(scenario,"


def test_the_section_has_its_blocks() -> None:
    assert len(BLOCKS) == 4 and CONTINUES_PREVIOUS in BLOCKS[2]


@pytest.mark.filterwarnings("ignore::roofline.plots.PNGExportWarning")
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_python_api_block_runs_on_its_own(index: int, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "sweeps").symlink_to(PROJECT / "sweeps")
    monkeypatch.chdir(tmp_path)  # the block's runs/ folder goes there
    code = BLOCKS[index]
    if CONTINUES_PREVIOUS in code:
        code = BLOCKS[index - 1] + code
    exec(compile(code, f"README.md Python API block {index + 1}", "exec"), {"__name__": "readme"})
