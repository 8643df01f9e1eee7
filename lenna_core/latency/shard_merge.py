"""One dataset from the shard files a farm of devices labelled (``lenna label --shard i/n``).

:func:`merge_shards` checks, before it writes anything, that the files are every shard of one
split once each, that each shard's last labelling session finished, that every row belongs to
its file's shard, and that the shards agree on what makes their rows one dataset: the schema,
the settings (seed, sampling spec, search space, labelling rule with its reference latency,
run tag, threads) and the device (:mod:`lenna_core.latency.device_identity`: processor, kernel
path, torch build, threads, batch size; and whether timings were perturbed). A refusal names the
file and every field that differs. The merged CSV holds the shards' rows byte for byte, in
row-id order, as one process would have written them; its ``.meta.json`` has the common
settings, the first shard's machine, every shard's sessions and a ``merged_from`` record of the
files (name, shard, rows, checksum, machine).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from lenna_core.latency.dataset_files import (
    SCHEMA_VERSION,
    format_row,
    metadata_path,
    read_dataset,
    read_metadata,
    record_rows_file,
    write_json_atomically,
)
from lenna_core.latency.device_folder import dataset_identity
from lenna_core.latency.device_identity import (
    describe_device,
    describe_differences,
    identity_differences,
)
from lenna_core.latency.file_checks import file_sha256
from lenna_core.latency.shards import Shard, check_shard, describe_shard

_SAME_COMMAND = ("Shards of one dataset come from one `lenna label` command (the same --seed, "
                 "--run-tag, sampling, rule and --scale-from, each device with its own "
                 "--shard I/N) on identical devices.")


def merge_shards(paths: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Combine the shard files ``paths`` of one dataset into ``out`` (a CSV and its
    ``.meta.json``); a ValueError, naming the file and what differs, when they are not one
    dataset's shards. Returns counts of rows and failed rows, the shards and the device."""
    paths, out = [Path(p) for p in paths], Path(out)
    if not paths:
        raise ValueError("paths is empty: give every shard file of the dataset")
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) < len(paths):
        raise ValueError(f"paths={[str(p) for p in paths]} name a file more than once")
    if out.resolve() in resolved:
        raise ValueError(f"out={out} is one of the shards: write the merge to a new file")
    _refuse_to_replace(out)
    metas = {p: read_metadata(p) for p in paths}  # checks each file's schema and checksum
    by_index, count = _every_shard_once({p: _shard_of(p, m) for p, m in metas.items()})
    first = by_index[0]
    for path in by_index[1:]:
        differences = list(_differences(first, metas[first], path, metas[path]))
        if differences:
            raise ValueError(f"{path} and {first} are not shards of one dataset: they differ "
                             f"in {'; '.join(differences)}. {_SAME_COMMAND}")
    rows, failed, header = [], 0, None
    for index, path in enumerate(by_index):
        _refuse_unfinished(path, metas[path], (index, count))
        frame = read_dataset(path)  # every row checked
        stray = frame.loc[frame["row_id"] % count != index, "row_id"]
        if len(stray):
            row = int(stray.iloc[0])
            raise ValueError(f"{path} holds row_id {row}, which shard {row % count}/{count} "
                             f"labels, not its shard {index}/{count}: the file was edited or "
                             "belongs to another split")
        failed += int((frame["status"] == "failed").sum())
        lines = list(csv.reader(io.StringIO(path.read_text(), newline="")))
        header = lines[0]
        rows += lines[1:]
    rows.sort(key=lambda row: int(row[0]))  # row_id is the first column
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(format_row(row) for row in [header, *rows]))
    os.replace(tmp, out)
    meta = _merged_metadata(by_index, metas, count)
    record_rows_file(out, meta)
    write_json_atomically(metadata_path(out), meta)
    return {"rows": len(rows), "failed": failed, "shards": count,
            "device": describe_device(dataset_identity(first))}


def _shard_of(path: Path, meta: Mapping) -> Shard:
    shard = meta["settings"].get("shard")
    if shard is None:
        raise ValueError(f"{path} was not labelled as a shard (its settings record no "
                         "shard): label each device's share with `lenna label --shard I/N`")
    try:
        return check_shard((shard.get("index"), shard.get("count")))
    except (AttributeError, ValueError) as err:
        raise ValueError(f"{path}: its metadata records the shard {shard!r}, which is not "
                         f"one ({err}); restore the file") from None


def _every_shard_once(shards: Mapping[Path, Shard]) -> tuple[list[Path], int]:
    """The files in shard order, and the number of shards; a ValueError unless every shard
    of one split is there once."""
    counts = sorted({count for _, count in shards.values()})
    if len(counts) > 1:
        listed = ", ".join(f"{p.name}: {i}/{n}" for p, (i, n) in shards.items())
        raise ValueError(f"the files come from splits into different numbers of shards "
                         f"({listed}): merge the shards of one split")
    count = counts[0]
    by_index: dict[int, list[Path]] = {}
    for path, (index, _) in shards.items():
        by_index.setdefault(index, []).append(path)
    twice = {i: [p.name for p in ps] for i, ps in by_index.items() if len(ps) > 1}
    if twice:
        raise ValueError(f"shards given more than once: {twice} (shard index: files)")
    missing = sorted(set(range(count)) - set(by_index))
    if missing:
        raise ValueError(f"shards {missing} of {count} are missing: label them (`lenna label "
                         f"--shard {missing[0]}/{count}` ...) and merge all {count}")
    return [by_index[i][0] for i in range(count)], count


def _differences(first: Path, a: Mapping, path: Path, b: Mapping) -> Iterator[str]:
    """What differs between two shards' metadata, one 'field: first vs this' each."""
    if a.get("schema_version") != b.get("schema_version"):
        yield f"schema_version: {a.get('schema_version')} vs {b.get('schema_version')}"
    settings = [{k: v for k, v in m["settings"].items() if k != "shard"} for m in (a, b)]
    yield from _nested_differences(*settings)
    device = identity_differences(dataset_identity(first), dataset_identity(path))
    if device:
        yield f"device ({describe_differences(device)})"
    perturbed = [m["machine"].get("timing_perturbation") for m in (a, b)]
    if perturbed[0] != perturbed[1]:
        yield f"timing_perturbation: {perturbed[0]} vs {perturbed[1]}"


def _nested_differences(a: object, b: object, prefix: str = "") -> Iterator[str]:
    """``key.subkey: a vs b`` for every leaf where two JSON records differ."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        for key in sorted(set(a) | set(b)):
            yield from _nested_differences(a.get(key), b.get(key),
                                           f"{prefix}.{key}" if prefix else str(key))
    elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
        yield f"{prefix}: {a!r} vs {b!r}"


def _refuse_unfinished(path: Path, meta: Mapping, shard: Shard) -> None:
    sessions = meta.get("sessions") or []
    if not sessions or "finished" not in sessions[-1]:
        raise ValueError(f"{path}: its last labelling session did not finish (it is still "
                         "running, or was interrupted), so the shard may lack rows: run its "
                         f"`lenna label ... --shard {shard[0]}/{shard[1]}` command again (it "
                         "resumes), then merge")


def _refuse_to_replace(out: Path) -> None:
    """A merge may replace an earlier merge, never a dataset labelled into ``out``."""
    meta = metadata_path(out)
    if not out.exists() and not meta.exists():
        return
    if not meta.exists() or "merged_from" not in read_metadata(out):
        raise ValueError(f"out={out} exists and is not a merge of shards: write the merge to "
                         "a new file (a merge replaces only an earlier merge)")


def _merged_metadata(paths: Sequence[Path], metas: Mapping[Path, dict], count: int) -> dict:
    first = metas[paths[0]]
    return {
        "schema_version": SCHEMA_VERSION, "units": first.get("units"),
        "description": first.get("description"),
        "settings": {k: v for k, v in first["settings"].items() if k != "shard"},
        "machine": first["machine"],
        "sessions": [dict(session, shard=describe_shard((index, count)))
                     for index, path in enumerate(paths) for session in metas[path]["sessions"]],
        "merged_from": [{"file": path.name, "shard": describe_shard((index, count)),
                         "sha256": file_sha256(path), "machine": metas[path]["machine"]}
                        for index, path in enumerate(paths)],
    }
