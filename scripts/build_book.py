"""Execute the chapters in order with papermill, then render the HTML book with jupyter-book.

    python scripts/build_book.py                         # every chapter, embedded defaults
    python scripts/build_book.py --params gpu-cifar10    # a named set: book/params/<name>.yaml
    python scripts/build_book.py --from 04 -p seed 1     # chapters 04.. with seed=1 where defined
    python scripts/build_book.py --only 05 -f my.yaml    # one chapter, parameters from a file
    python scripts/build_book.py --render-only           # HTML from the executed notebooks

A chapter's executed notebook replaces the committed one only when the whole chapter ran;
a failing chapter stops the build with the chapter, the cell and the error named, and
nothing already produced (notebooks, figures, data) is deleted.
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"


def chapter_parameters(source: Path) -> set[str]:
    """Names assigned in the chapter's cell tagged ``parameters``."""
    text = source.read_text()
    marker = '# %% tags=["parameters"]'
    if marker not in text:
        return set()
    cell = text.split(marker, 1)[1].split("\n# %%", 1)[0]
    return {target.id for node in ast.parse(cell).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)}


def parameters_for(stem: str, known: set[str], named: dict, given: dict) -> dict:
    """The chapter's parameters: the named set's section, then -f / -p values it defines."""
    params = dict(named.get(stem, {}))
    params.update({k: v for k, v in given.items() if k in known})
    unknown = set(named.get(stem, {})) - known
    if unknown:
        raise SystemExit(f"error: book/params sets {sorted(unknown)} for {stem}, which has no "
                         f"such parameter (it has: {', '.join(sorted(known))})")
    return params


def synced_copy(source: Path, scratch: Path) -> Path:
    """A scratch copy of the paired .ipynb, updated from the .py source with jupytext (the
    committed notebook itself is only replaced once the chapter has run)."""
    notebook = source.with_suffix(".ipynb")
    target = scratch / f"{source.stem}-input.ipynb"
    command = [sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb"]
    if notebook.exists():
        shutil.copyfile(notebook, target)
        command.append("--update")
    subprocess.run([*command, "--output", str(target), str(source)], check=True)
    return target


def execute(source: Path, params: dict) -> None:
    """Run one chapter into a scratch file; replace the notebook only on success."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = source.with_suffix(".ipynb")
    folder = Path(tempfile.mkdtemp(prefix="lenna-book-"))
    scratch = folder / notebook.name
    started = time.perf_counter()
    try:
        papermill.execute_notebook(str(synced_copy(source, folder)), str(scratch),
                                   parameters=params,
                                   cwd=str(BOOK), progress_bar=True, kernel_name="python3")
    except PapermillExecutionError as err:
        given = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "none (defaults)"
        last = err.evalue.strip().splitlines()[-1] if err.evalue.strip() else ""
        raise SystemExit(
            f"\nerror: chapter {source.stem} failed in cell {err.cell_index} "
            f"(execution count {err.exec_count}): {err.ename}: {last}\n"
            f"  parameters given: {given}\n"
            f"  cell source starts: {err.source.strip().splitlines()[0][:90]!r}\n"
            f"  the partly executed copy is at {scratch}; {notebook.name} and everything "
            f"earlier chapters wrote are unchanged") from None
    shutil.move(scratch, notebook)  # may cross file systems: not a rename
    print(f"   {source.stem}: {time.perf_counter() - started:.0f} s")


def parse_value(text: str):
    """A -p value as YAML (numbers, lists, dicts, null), else the plain string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, execute the chosen chapters and render the book."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", help="named parameter set: book/params/<name>.yaml")
    parser.add_argument("-f", "--parameters-file", action="append", default=[],
                        help="YAML of parameters, applied to every chapter that defines them")
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"), help="one parameter (YAML value)")
    parser.add_argument("--only", action="append", default=[],
                        help="run only chapters with this number (repeatable)")
    parser.add_argument("--from", dest="start", help="run chapters from this number on")
    parser.add_argument("--render-only", action="store_true", help="skip execution")
    args = parser.parse_args(argv)

    named: dict = {}
    if args.params:
        path = BOOK / "params" / f"{args.params}.yaml"
        if not path.exists():
            sets = sorted(p.stem for p in (BOOK / "params").glob("*.yaml"))
            raise SystemExit(f"error: no parameter set {args.params!r}; known: {sets}")
        named = yaml.safe_load(path.read_text()) or {}
    given: dict = {}
    for file in args.parameters_file:
        given.update(yaml.safe_load(Path(file).read_text()) or {})
    given.update({name: parse_value(value) for name, value in args.parameter})

    sources = sorted(BOOK.glob("[0-9][0-9]_*.py"))
    if args.only:
        sources = [s for s in sources if s.name[:2] in {o.zfill(2) for o in args.only}]
    if args.start:
        sources = [s for s in sources if s.name[:2] >= args.start.zfill(2)]
    if not args.render_only:
        known_anywhere = set().union(*(chapter_parameters(s) for s in sources)) if sources \
            else set()
        stray = set(given) - known_anywhere
        if stray:
            raise SystemExit(f"error: no chapter run here has a parameter named "
                             f"{sorted(stray)}; see the table at the top of each chapter")
        for source in sources:
            params = parameters_for(source.stem, chapter_parameters(source), named, given)
            print(f"== executing {source.stem}"
                  + (f" with {json.dumps(params)}" if params else ""), flush=True)
            execute(source, params)
    print("== rendering HTML", flush=True)
    subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build",
                    "--warningiserror", "--keep-going", "."], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    print(f"book: {ROOT / '_build' / 'html' / 'index.html'}")


if __name__ == "__main__":
    main()
