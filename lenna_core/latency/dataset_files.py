"""A latency dataset's files: the CSV's columns, reading it back with every row checked, and
the metadata beside it.

Rows are appended one complete line at a time by :func:`lenna_core.latency.dataset.label_dataset`;
the ``.meta.json`` beside the CSV holds the settings, the machine, the sessions and, after each
session, the CSV's size and checksum, so a later read tells an append from an edit. Every
error names the file, the line and, where there is one, the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from lenna_core.latency.block_checks import check_blocks, probability_columns
from lenna_core.latency.file_checks import (
    DataIntegrityWarning,
    check_schema_version,
    file_sha256,
    read_json,
    verify_digest,
    with_digest,
)
from lenna_core.space.search_space import DARTS_SPACE, SearchSpace

SCHEMA_VERSION = 1
ALPHA_KINDS = ("near_uniform", "uniform", "peaked", "onehot", "derived")
CONTEXT_COLUMNS = ("reduction", "reduction_prev", "C_prev_prev", "C_prev", "C", "spatial",
                   "batch_size")
LABEL_COLUMNS = ("latency_ms", "label_rel_se", "resets", "forward_passes", "seconds")


def dataset_columns(space: SearchSpace = DARTS_SPACE) -> list[str]:
    """All CSV columns, in file order."""
    return (["row_id", "status", "alpha_kind", *CONTEXT_COLUMNS, *probability_columns(space),
             *LABEL_COLUMNS, "error"])


# ---------------------------------------------------------------------------- file handling


def metadata_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def write_json_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(with_digest(data), indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def record_rows_file(path: Path, meta: dict) -> None:
    """Record the CSV's size and checksum in ``meta``: later reads then tell an append (the
    recorded bytes are a prefix of the file) from an edit."""
    meta["rows_file"] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def _check_rows_file(path: Path, meta: dict, data: bytes) -> None:
    recorded = meta.get("rows_file")
    if not recorded:  # written before checksums were recorded
        return
    if len(data) < recorded["bytes"] or \
            hashlib.sha256(data[:recorded["bytes"]]).hexdigest() != recorded["sha256"]:
        warnings.warn(f"{path} changed after its last labelling session ended: rows were "
                      "edited or deleted, not only appended. If nobody edited it on purpose, "
                      "restore it from version control or a backup.", DataIntegrityWarning,
                      stacklevel=3)


def format_row(values: list) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def repair_tail(path: Path) -> bool:
    """Drop a trailing partial line left by an interrupted write; True if one was dropped."""
    size = path.stat().st_size
    if size == 0:
        return False
    with open(path, "rb+") as f:
        content = f.read()
        if content.endswith(b"\n"):
            return False
        f.truncate(content.rfind(b"\n") + 1)
        f.flush()
        os.fsync(f.fileno())
    return True


def read_dataset(path: str | os.PathLike, space: SearchSpace | None = None) -> pd.DataFrame:
    """Read a dataset CSV, checking its schema version, header and every row."""
    path = Path(path)
    meta_path = metadata_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; generate it with "
                                f"`lenna label --out {path}`")
    if not meta_path.exists():
        raise ValueError(f"{path} has no metadata file {meta_path.name}; it was not written by "
                         "lenna_core.latency.dataset (or the metadata was lost)")
    meta = read_metadata(path)
    data = path.read_bytes()  # read once: checked against the recorded checksum, then parsed
    _check_rows_file(path, meta, data)
    space = space or SearchSpace(**meta["settings"]["space"])
    columns = dataset_columns(space)
    text = _decode(path, data)
    if text and not text.endswith("\n"):
        # A write in progress or an interrupted one: that row is not complete yet.
        warnings.warn(f"{path}: ignoring a partial last line (a run is writing or was killed)",
                      stacklevel=2)
        text = text[:text.rfind("\n") + 1]
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or rows[0] != columns:
        raise ValueError(f"{path}: the header does not match schema version {SCHEMA_VERSION} "
                         "for this search space")
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(columns):
            raise ValueError(f"{path}, line {line}: {len(row)} fields instead of {len(columns)}; "
                             "the row is corrupted. Delete that line (the row will be measured "
                             "again on the next run) and resume.")
    frame = pd.DataFrame(rows[1:], columns=columns)
    numeric = [c for c in columns if c not in ("status", "alpha_kind", "error")]
    # Failed rows have empty labels: those, and only those, become NaN.
    raw = frame[numeric].replace("", np.nan)
    converted = raw.apply(pd.to_numeric, errors="coerce")
    bad = converted.isna() & raw.notna()
    if bad.to_numpy().any():
        i, j = np.argwhere(bad.to_numpy())[0]
        raise ValueError(f"{path}, line {i + 2}, column {numeric[j]}: {raw.iat[i, j]!r} is not "
                         f"a number; the row is corrupted. {_DELETE_LINE}")
    frame[numeric] = converted
    frame = frame.copy()  # one consolidated block instead of 130 column insertions
    _check_rows(frame, space, path)
    frame[["reduction", "reduction_prev"]] = frame[["reduction", "reduction_prev"]].astype(bool)
    return frame


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}, line {line}: byte {err.start} is not text (the file is "
                         f"damaged). {_DELETE_LINE}") from None


_DELETE_LINE = "Delete that line (the row is measured again on the next run) and resume."


def _check_rows(frame: pd.DataFrame, space: SearchSpace, path: Path) -> None:
    """Every row's id, status, kind, block and label in range; errors name the file line."""
    if frame.empty:
        return
    ids = frame["row_id"].to_numpy(dtype=float)
    wrong = np.isnan(ids) | (ids < 0) | (ids != np.round(ids))
    if wrong.any():
        i = int(wrong.argmax())
        raise ValueError(f"{path}, line {i + 2}: row_id={ids[i].item()!r} must be a "
                         f"non-negative integer. {_DELETE_LINE}")
    first = frame["row_id"].duplicated(keep="first")
    if first.any():
        i = int(first.to_numpy().argmax())
        earlier = int(np.flatnonzero(frame["row_id"].to_numpy() == frame["row_id"].iat[i])[0])
        raise ValueError(f"{path}, line {i + 2}: row_id {int(frame['row_id'].iat[i])} appears "
                         f"again (first on line {earlier + 2}). {_DELETE_LINE}")
    for column, allowed in (("status", ("ok", "failed")), ("alpha_kind", ALPHA_KINDS)):
        wrong = ~frame[column].isin(allowed).to_numpy()
        if wrong.any():
            i = int(wrong.argmax())
            raise ValueError(f"{path}, line {i + 2}: {column}={frame[column].iat[i]!r} must be "
                             f"one of {list(allowed)}. {_DELETE_LINE}")
    check_blocks(frame, space, str(path), first_line=2)
    ok = (frame["status"] == "ok").to_numpy()
    latency = frame["latency_ms"].to_numpy(dtype=float)
    wrong = ok & ~(np.isfinite(latency) & (latency > 0))
    if wrong.any():
        i = int(wrong.argmax())
        raise ValueError(f"{path}, line {i + 2}: latency_ms={latency[i].item()!r} must be a "
                         f"positive number of milliseconds in a row with status 'ok'. "
                         f"{_DELETE_LINE}")


def drop_failed_rows(path: str | os.PathLike) -> list[int]:
    """Remove the rows a run failed on from a dataset CSV, so that resuming labels them again.

    The other lines are kept byte for byte and the file is replaced atomically; returns the
    dropped row ids. No run may be writing the file meanwhile.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):
        raise ValueError(f"{path} ends in a partial line: a run is writing it, or was killed "
                         "(resume it once to repair the file), so its rows cannot be rewritten")
    frame = read_dataset(path)  # checks the schema and every row first
    failed = frame.loc[frame["status"] == "failed", "row_id"].astype(int).tolist()
    if failed:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        status = rows[0].index("status")
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(format_row(row) for row in rows if row[status] != "failed"))
        os.replace(tmp, path)
        meta = read_metadata(path)
        record_rows_file(path, meta)
        write_json_atomically(metadata_path(path), meta)
    return failed


def refuse_rows_without_metadata(path: str | os.PathLike) -> None:
    """Raise a ValueError if ``path`` holds rows but its .meta.json is gone: the rows' seed,
    tag, rule and reference latency are then unknown, and appending would mix two datasets."""
    path = Path(path)
    meta_path = metadata_path(path)
    if not meta_path.exists() and path.exists() and len(path.read_bytes().splitlines()) > 1:
        raise ValueError(f"{path} holds rows but its metadata file {meta_path.name} is missing, "
                         "so its settings and reference latency are unknown: restore the "
                         f"metadata, or move {path.name} away to start a new dataset")


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata written next to a dataset CSV (settings, machine, sessions)."""
    meta_path = metadata_path(Path(path))
    if not meta_path.exists():
        raise FileNotFoundError(f"no metadata file {meta_path}")
    remedy = "restore it from version control or a backup (it cannot be rebuilt from the rows)"
    meta = read_json(meta_path, remedy)
    check_schema_version(meta, meta_path, SCHEMA_VERSION,
                         remedy="Regenerate the dataset or use the lenna_core version that "
                                "wrote it.")
    verify_digest(meta, meta_path, remedy)
    for key in ("settings", "machine"):
        if key not in meta:
            raise ValueError(f"{meta_path} lacks the key {key!r}; it was edited or truncated: "
                             "restore it")
    return meta
