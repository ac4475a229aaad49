"""The regeneration scripts' output-folder argument (benchmarks/_args.py): a dash word is an option,
never a folder (``serving_validation.py --help`` once ran the whole validation into ./--help)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("_args", Path(__file__).parents[1] / "benchmarks" / "_args.py")
_args = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(_args)


def test_help_prints_the_doc_and_exits_0(capsys):
    with pytest.raises(SystemExit) as e:
        _args.out_dir(["--help"], "DOC", default="runs/x")
    assert e.value.code == 0 and capsys.readouterr().out.strip() == "DOC"


@pytest.mark.parametrize("argv", [["--bogus"], ["-x", "out"], ["a", "b"], []])
def test_unknown_options_and_wrong_counts_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _args.out_dir(argv, "DOC", default=None)
    assert e.value.code == 2 and "usage" in capsys.readouterr().err


def test_the_folder_the_default_and_the_flags():
    assert _args.out_dir(["out", "--force"], "DOC", flags=("--force",)) == Path("out")
    assert _args.out_dir([], "DOC", default="runs/x") == Path("runs/x")
