"""Execute the chapters in order with papermill in a working copy, then render the HTML book.

    python scripts/build_book.py                         # every chapter, embedded defaults
    python scripts/build_book.py --params gpu-cifar10    # a named set: book/params/<name>.yaml
    python scripts/build_book.py --from 04 -p seed 1     # chapters 04.. with seed=1 where defined
    python scripts/build_book.py --only 05 -f my.yaml    # one chapter, parameters from a file
    python scripts/build_book.py --render-only           # HTML from the working copy as it is
    python scripts/build_book.py --committed --render-only   # HTML of the committed notebooks
    python scripts/build_book.py --refresh-reference     # developers: update the committed files

The chapters run in a working copy of book/, data/, figures/ and benchmarks/ under
_build/run/, never in the repository: the committed notebooks, data and figures are the
reference the test command compares with, and stay as they are. Later chapters read what
earlier chapters of the same build wrote there; _build/html shows this machine's outputs.
A full build starts from a fresh copy of the committed files; --only and --from reuse the
last build's outputs (a committed file newer than its copy replaces it). runs/ in the working
copy survives, so an interrupted sweep resumes. A failing chapter stops the build with the
chapter, the cell and the error named, and nothing already produced is deleted.

--refresh-reference copies what this build wrote (the executed notebooks, stripped of
papermill's timings so each .py/.ipynb pair stays in sync, and the data and figures files
that changed) back into the repository. It needs the embedded defaults: no parameters.
"""

from __future__ import annotations

import argparse
import filecmp
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
WORK = ROOT / "_build" / "run"
COMMITTED_WORK = ROOT / "_build" / "committed"  # --committed: what the test command renders
COPIED = ("book", "data", "figures", "benchmarks")  # what the chapters read and write
REFRESHED = ("data", "figures")  # what --refresh-reference copies back, besides notebooks
RENDERED = ("_config.yml", "_toc.yml")
SKIPPED = {"__pycache__", ".ipynb_checkpoints"}
# Metadata papermill and nbclient add to every executed notebook: timings that change on every
# run and that the paired .py does not carry (jupytext would call the pair out of sync).
VOLATILE_CELL_METADATA = ("papermill", "execution", "ExecuteTime")


def chapter_parameters(source: Path) -> set[str]:
    """Names assigned in the chapter's cell tagged ``parameters``."""
    import ast

    import jupytext

    cells = [c for c in jupytext.read(source).cells
             if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    return {target.id for cell in cells for node in ast.parse(cell.source).body
            if isinstance(node, ast.Assign)
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


def strip_volatile_metadata(notebook: dict) -> dict:
    """The notebook without papermill's and nbclient's per-run timings (changed in place)."""
    notebook.get("metadata", {}).pop("papermill", None)
    for cell in notebook.get("cells", []):
        for key in VOLATILE_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
    return notebook


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIPPED & set(path.relative_to(folder).parts):
            yield path


def prepare_work(work: Path, fresh: bool) -> None:
    """Fill the working copy from the repository: all of it when fresh, else only committed
    files that are missing there or newer than their copy (the last build's outputs stay)."""
    work.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if fresh:
            shutil.rmtree(work / name, ignore_errors=True)
        for source in _files(ROOT / name):
            copy = work / source.relative_to(ROOT)
            if not copy.exists() or source.stat().st_mtime > copy.stat().st_mtime:
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, copy)
    for name in RENDERED:
        shutil.copy2(ROOT / name, work / name)


def synced_copy(source: Path, scratch: Path) -> Path:
    """A scratch copy of the paired .ipynb, updated from the .py source with jupytext."""
    notebook = source.with_suffix(".ipynb")
    target = scratch / f"{source.stem}-input.ipynb"
    command = [sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb"]
    if notebook.exists():
        shutil.copyfile(notebook, target)
        command.append("--update")
    subprocess.run([*command, "--output", str(target), str(source)], check=True)
    return target


def execute(source: Path, params: dict) -> None:
    """Run one chapter of the working copy into a scratch file; replace its notebook on success."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebook = source.with_suffix(".ipynb")
    folder = Path(tempfile.mkdtemp(prefix="lenna-book-"))
    scratch = folder / notebook.name
    started = time.perf_counter()
    try:
        papermill.execute_notebook(str(synced_copy(source, folder)), str(scratch),
                                   parameters=params, cwd=str(source.parent),
                                   progress_bar=True, kernel_name="python3")
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


def refresh_reference(work: Path, executed: list[Path], since: float) -> list[Path]:
    """Copy this build's notebooks (without volatile metadata) and the data and figures files
    it wrote back into the repository; returns the repository paths written."""
    written = []
    for work_source in executed:
        notebook = json.loads(work_source.with_suffix(".ipynb").read_text())
        target = BOOK / work_source.with_suffix(".ipynb").name
        target.write_text(json.dumps(strip_volatile_metadata(notebook), indent=1,
                                     ensure_ascii=False) + "\n")
        written.append(target)
    for name in REFRESHED:
        for path in _files(work / name):
            target = ROOT / path.relative_to(work)
            if path.stat().st_mtime < since or (target.exists()
                                                and filecmp.cmp(path, target, shallow=False)):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            written.append(target)
    return written


def render(work: Path, output: Path) -> None:
    """Render the HTML book of the working copy into ``output``/_build/html."""
    print("== rendering HTML", flush=True)
    subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build",
                    "--warningiserror", "--keep-going", "--path-output", str(output),
                    str(work)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    print(f"book: {output / '_build' / 'html' / 'index.html'}")


def chosen_chapters(only: list[str], start: str | None) -> list[Path]:
    """The chapter sources --only / --from select; refuses numbers no chapter has."""
    sources = sorted(BOOK.glob("[0-9][0-9]_*.py"))
    numbers = [s.name[:2] for s in sources]
    for number in [*only, *([start] if start else [])]:
        if number.zfill(2) not in numbers:
            raise SystemExit(f"error: no chapter numbered {number!r}; the chapters are "
                             f"{', '.join(numbers)}")
    if only:
        sources = [s for s in sources if s.name[:2] in {o.zfill(2) for o in only}]
    if start:
        sources = [s for s in sources if s.name[:2] >= start.zfill(2)]
    return sources


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
    parser.add_argument("--render-only", action="store_true",
                        help="skip execution: render the working copy (the committed "
                             "notebooks where no build has run)")
    parser.add_argument("--no-render", action="store_true", help="execute only")
    parser.add_argument("--committed", action="store_true",
                        help="work on a fresh copy of the committed files in _build/committed "
                             "and render it to _build/committed/_build/html (the test command)")
    parser.add_argument("--refresh-reference", action="store_true",
                        help="copy this build's notebooks, data and figures into the "
                             "repository (embedded defaults only)")
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
    if args.refresh_reference and (named or given or args.render_only or args.committed):
        raise SystemExit("error: --refresh-reference records the embedded defaults: drop "
                         "--params, -p, -f, --render-only and --committed")

    sources = chosen_chapters(args.only, args.start)
    work = COMMITTED_WORK if args.committed else WORK
    prepare_work(work, fresh=args.committed or not (args.only or args.start
                                                     or args.render_only))
    if not args.render_only:
        known_anywhere = set().union(*(chapter_parameters(s) for s in sources))
        stray = set(given) - known_anywhere
        if stray:
            raise SystemExit(f"error: no chapter run here has a parameter named "
                             f"{sorted(stray)}; see the table at the top of each chapter")
        started = time.time()
        executed = []
        for source in sources:
            params = parameters_for(source.stem, chapter_parameters(source), named, given)
            print(f"== executing {source.stem}"
                  + (f" with {json.dumps(params)}" if params else ""), flush=True)
            work_source = work / "book" / source.name
            execute(work_source, params)
            executed.append(work_source)
        if args.refresh_reference:
            for path in refresh_reference(work, executed, started):
                print(f"   refreshed {path.relative_to(ROOT)}")
    if not args.no_render:
        render(work, ROOT if work == WORK else work)


def parse_value(text: str):
    """A -p value as YAML (numbers, lists, dicts, null), else the plain string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


if __name__ == "__main__":
    main()
