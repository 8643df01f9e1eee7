"""The package's layers are its subpackages: a module imports only modules of its own layer or of
lower ones, and nothing imports a command-line module but the command line itself.

    0 space (the search space and networks)   1 latency   2 search
    3 book (figures and the chapters' helpers)   4 cli (the ``lenna`` command)

The top-level modules are placed here by hand, so a new one is placed deliberately.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lenna_core"
SUBPACKAGES = ("space", "latency", "search", "book", "cli")
COMMAND_LINE = SUBPACKAGES.index("cli")
# lenna_core/__init__.py re-exports the search space; validation (argument checks) serves every
# layer; the two others keep old `python -m` names working.
TOP_LEVEL = {"__init__": 0, "validation": 0, "generate_dataset": COMMAND_LINE,
             "device_transfer": COMMAND_LINE}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``latency.dataset`` for lenna_core/latency/dataset.py, ``__init__`` for the top level."""
    return ".".join(path.relative_to(package).with_suffix("").parts)


def layer_of(module: str) -> int | None:
    """The layer of a module named as :func:`module_name` names it (None: not lenna_core's)."""
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    sub = module.split(".")[0]
    return SUBPACKAGES.index(sub) if sub in SUBPACKAGES else None


def package_imports(path: Path) -> set[str]:
    """The lenna_core modules ``path`` imports, as :func:`module_name` names them."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: use absolute imports (from lenna_core.x.y import z), "
                                 "which this check and a reader can place")
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "lenna_core":
            parts = node.module.split(".")[1:]
            if not parts:  # from lenna_core import DARTS_SPACE
                imported.add("__init__")
            elif len(parts) == 1 and parts[0] in SUBPACKAGES:  # from lenna_core.latency import x
                imported |= {f"{parts[0]}.{alias.name}" for alias in node.names}
            else:
                imported.add(".".join(parts))
        elif isinstance(node, ast.Import):
            imported |= {alias.name.split(".", 1)[1] for alias in node.names
                         if alias.name.startswith("lenna_core.")}
    return imported


def package_modules(package: Path = PACKAGE) -> list[Path]:
    """Every module of the package, subpackages' ``__init__`` files aside."""
    return sorted(p for p in package.rglob("*.py")
                  if p.stem != "__init__" or p.parent == package)


def layer_violations(package: Path = PACKAGE) -> list[str]:
    """Every import that goes up a layer or into a command-line module, as readable lines."""
    found = []
    for path in package_modules(package):
        mine = module_name(path, package)
        for other in sorted(package_imports(path)):
            theirs = layer_of(other)
            if theirs is None:
                continue
            if theirs > layer_of(mine) or (theirs == COMMAND_LINE
                                           and layer_of(mine) != COMMAND_LINE):
                found.append(f"{mine} (layer {layer_of(mine)}) imports {other} "
                             f"(layer {theirs})")
    return found


def test_every_module_has_a_layer():
    unplaced = [module_name(p) for p in package_modules() if layer_of(module_name(p)) is None]
    assert not unplaced, f"move these into a layer's subpackage or place them in TOP_LEVEL: " \
                         f"{unplaced}"


def test_every_subpackage_says_what_it_may_import():
    for sub in SUBPACKAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / sub / "__init__.py").read_text()))
        assert doc and f"Layer {SUBPACKAGES.index(sub)}" in doc, sub


def test_no_module_imports_a_higher_layer_or_a_command_line_module():
    assert layer_violations() == []


def test_the_check_sees_an_upward_import(tmp_path):
    copy = tmp_path / "lenna_core"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    profiler = copy / "latency" / "profiler.py"  # layer 1 importing the search loop (layer 2)
    profiler.write_text(profiler.read_text()
                        + "\nfrom lenna_core.search.loop import SearchConfig\n")
    dataset = copy / "latency" / "dataset.py"  # layer 1 importing the labelling command
    dataset.write_text(dataset.read_text() + "\nfrom lenna_core.cli import label\n")
    assert layer_violations(copy) == [
        "latency.dataset (layer 1) imports cli.label (layer 4)",
        "latency.profiler (layer 1) imports search.loop (layer 2)"]


def test_the_readme_names_every_module_under_its_subpackage():
    rows = {line.split("|")[1].strip(): line for line in
            (PACKAGE.parent / "README.md").read_text().splitlines()
            if line.startswith("| `lenna_core/")}
    for sub in SUBPACKAGES:
        row = rows.get(f"`lenna_core/{sub}/`", "")
        unnamed = sorted(p.stem for p in (PACKAGE / sub).glob("*.py")
                         if p.stem != "__init__" and f"`{p.stem}`" not in row)
        assert not unnamed, f"README.md's row for lenna_core/{sub}/ does not name {unnamed}"
