"""The package's layers: a module imports only modules of its own layer or of lower ones, and
nothing imports a command-line module except the ``lenna`` command itself.

    0 the search space and networks   1 latency   2 search   3 figures and the book's helpers
    4 command line

Every module of ``lenna_core`` must be placed here, so a new one is placed deliberately.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lenna_core"
COMMAND_LINE = 4
LAYERS = {
    0: ("__init__", "operations", "genotypes", "search_space", "cells", "mixed_op", "supernet",
        "single_path", "network", "data"),
    1: ("timing_perturbation", "profiler", "device_identity", "blocks", "reference_clock",
        "convergence", "rule_choice", "block_checks", "file_checks", "dataset_files",
        "dataset", "encoder", "labeller", "rule_replay", "op_timing", "lookup_table",
        "additivity", "linear_model", "mlp_training", "mlp_model", "metrics", "label_noise",
        "transfer", "device_folder"),
    2: ("penalty", "estimators", "search_step", "search", "evaluation", "sweep"),
    3: ("plotting", "baseline_plots", "convergence_plots", "search_plots", "book",
        "transfer_report", "results_page", "modelling_report"),
    COMMAND_LINE: ("cli", "generate_dataset", "device_transfer"),
}
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}


def package_imports(path: Path) -> set[str]:
    """The lenna_core modules that ``path`` imports (relative or absolute)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                imported.add((node.module or "__init__").split(".")[0])
                if node.module is None:  # from . import a, b
                    imported |= {alias.name for alias in node.names}
            elif node.level == 0 and node.module == "lenna_core":  # from lenna_core import a
                imported |= {"__init__"} | {alias.name for alias in node.names}
            elif node.level == 0 and (node.module or "").startswith("lenna_core."):
                imported.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[1] for alias in node.names
                         if alias.name.startswith("lenna_core.")}
    return imported - {"__init__"} if path.stem != "__init__" else imported


def layer_violations(package: Path = PACKAGE) -> list[str]:
    """Every import that goes up a layer or into a command-line module, as readable lines."""
    found = []
    for path in sorted(package.glob("*.py")):
        mine = LAYER_OF[path.stem]
        for other in sorted(package_imports(path)):
            theirs = LAYER_OF.get(other)
            if theirs is None:
                continue
            if theirs > mine or (theirs == COMMAND_LINE and path.stem != "cli"):
                found.append(f"{path.stem} (layer {mine}) imports {other} (layer {theirs})")
    return found


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert not modules - set(LAYER_OF), f"place these modules in LAYERS: {modules - set(LAYER_OF)}"
    assert not set(LAYER_OF) - modules, f"LAYERS names missing modules: {set(LAYER_OF) - modules}"


def test_no_module_imports_a_higher_layer_or_a_command_line_module():
    assert layer_violations() == []


def test_the_check_sees_an_upward_import(tmp_path):
    for path in PACKAGE.glob("*.py"):
        (tmp_path / path.name).write_text(path.read_text())
    profiler = tmp_path / "profiler.py"  # layer 1 importing the search loop (layer 2)
    profiler.write_text(profiler.read_text() + "\nfrom .search import SearchConfig\n")
    dataset = tmp_path / "dataset.py"  # layer 1 importing the labelling command
    dataset.write_text(dataset.read_text() + "\nfrom lenna_core import generate_dataset\n")
    assert layer_violations(tmp_path) == [
        "dataset (layer 1) imports generate_dataset (layer 4)",
        "profiler (layer 1) imports search (layer 2)"]


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layers_are_listed_once(layer):
    assert len(set(LAYERS[layer])) == len(LAYERS[layer])


def test_the_readme_names_every_module():
    readme = (PACKAGE.parent / "README.md").read_text()
    unnamed = sorted(m for m in LAYER_OF if m != "__init__" and f"`{m}`" not in readme)
    assert not unnamed, f"README.md's table of lenna_core does not name {unnamed}"
