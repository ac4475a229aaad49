"""The package follows the data flow: no module imports a later stage, nor another package's
private module (DESIGN.md: specs -> graph -> timing -> prefetch -> evaluate -> serving -> explore
-> plots -> cli). Imports only a type checker sees (``if TYPE_CHECKING:``) are not counted."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import roofline

PACKAGE = Path(roofline.__file__).parent
STAGES = ("specs", "graph", "timing", "prefetch", "evaluate", "serving", "explore", "plots", "cli")

#: Stage of each module or package (the longest matching prefix wins).
STAGE_OF = {
    # specs: spec files and their parsing, the workload, the metric registry, shared utilities
    "roofline.exceptions": "specs", "roofline._specfile": "specs", "roofline._paths": "specs",
    "roofline._json": "specs", "roofline.hardware": "specs", "roofline.model": "specs",
    "roofline.hf_configs": "specs", "roofline.quantization": "specs", "roofline.dtypes": "specs",
    "roofline.workload": "specs", "roofline.attention": "specs", "roofline.moe": "specs",
    "roofline.metrics": "specs", "roofline.registry": "specs", "roofline.edge": "specs",
    "roofline._runfiles": "specs", "roofline._runlock": "specs", "roofline._outdir": "specs",
    "roofline._lifeline": "specs", "roofline._malloc": "specs", "roofline._testhooks": "specs",
    "roofline.pareto": "specs", "roofline._memo": "specs",
    "roofline.graph": "graph",
    "roofline.timing": "timing", "roofline.collectives": "timing", "roofline.placement": "timing",
    "roofline.fitted": "timing",
    "roofline.prefetch": "prefetch",
    "roofline.evaluate": "evaluate", "roofline.power": "evaluate", "roofline.cost": "evaluate",
    "roofline.economics": "evaluate", "roofline.engine": "evaluate", "roofline.predict": "evaluate",
    "roofline.static_kernel": "evaluate", "roofline._static_numba": "evaluate",
    "roofline.serving": "serving",
    "roofline.sweep": "explore", "roofline.sweepfile": "explore", "roofline.search": "explore",
    "roofline.validation": "explore", "roofline._fingerprint": "explore", "roofline._cluster": "explore",
    "roofline._dataset": "explore",
    # the public API re-exports the stages up to validation
    "roofline": "explore",
    "roofline.plots": "plots", "roofline.report": "plots", "roofline.reproduce": "plots",
    "roofline.cli": "cli",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _stage(module: str) -> str:
    """The stage of ``module``: its own entry or its package's (``roofline`` alone is the API)."""
    parts = module.split(".")
    for i in range(len(parts), 1, -1):
        if ".".join(parts[:i]) in STAGE_OF:
            return STAGE_OF[".".join(parts[:i])]
    if module == "roofline":
        return STAGE_OF[module]
    raise KeyError(f"{module} has no stage in STAGE_OF")


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of the imports inside ``if TYPE_CHECKING:`` blocks."""
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            lines |= {n.lineno for b in node.body for n in ast.walk(b) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return lines


def _is_module(name: str) -> bool:
    return (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    found = []
    for node in ast.walk(tree):
        if node.lineno in skip if hasattr(node, "lineno") else False:
            continue
        if isinstance(node, ast.ImportFrom) and node.module == "roofline":  # from roofline import predict
            found += [(node.lineno, f"roofline.{a.name}" if _is_module(a.name) else "roofline") for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
    return [(line, m) for line, m in found if m == "roofline" or m.startswith("roofline.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_stage() -> None:
    for path in MODULES:
        _stage(_module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_no_module_imports_a_later_stage_or_a_private_module_of_another_package(path: Path) -> None:
    module = _module_name(path)
    rank = STAGES.index(_stage(module))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for line, imported in _imports(path):
        later = STAGES.index(_stage(imported))
        assert later <= rank, f"{module}:{line} imports {imported} ({STAGES[later]} comes after {STAGES[rank]})"
        # roofline._x are the package's own shared internals; roofline.pkg._x are pkg's alone
        owner, _, last = imported.rpartition(".")
        if last.startswith("_") and owner != "roofline":
            assert package == owner or package.startswith(owner + "."), \
                f"{module}:{line} imports {imported}, a private module of {owner}"


def test_the_layering_check_finds_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from roofline.cli import main\n"
                   "from roofline.sweep import run_sweep\nfrom roofline.validation._profile import x\n")
    assert [m for _, m in _imports(bad)] == ["roofline.sweep", "roofline.validation._profile"]
