"""Run the real `roofline` entry point in-process and check what a user would see."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import pytest

from roofline.cli.main import main

#: NaN or Infinity as Python, numpy, JSON or pandas print them
NON_FINITE = re.compile(r"(?<![A-Za-z_])(nan|NaN|NAN|inf|Inf|INF|Infinity|-Infinity)(?![A-Za-z_])")


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str
    warnings: list[str]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """``roofline ARGS``: exit code, output and the warnings raised; any exception other than
    SystemExit propagates (a traceback is the bug)."""
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    out = capsys.readouterr()
    return Run(code, out.out, out.err, [f"{w.category.__name__}: {w.message}" for w in caught
                                        if issubclass(w.category, RuntimeWarning)])


def assert_one_line_error(run: Run, *fragments: str) -> None:
    """Exit 2, one line on stderr starting with ``error:`` and holding each fragment."""
    lines = run.stderr.strip().splitlines()
    assert run.exit_code == 2, (run.exit_code, run.stderr[-2000:], run.stdout[-500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert not run.warnings, run.warnings


def assert_clean(run: Run) -> None:
    """A valid result or a one-line error; never NaN/Infinity, a traceback or a RuntimeWarning."""
    if run.exit_code != 0:
        assert_one_line_error(run)  # the message may quote the bad value ("got inf")
        return
    assert "Traceback" not in run.stderr
    assert not NON_FINITE.search(run.stdout), run.stdout[:2000]
    assert not NON_FINITE.search(run.stderr), run.stderr[:2000]
    assert not run.warnings, run.warnings
