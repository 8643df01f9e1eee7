"""One folder per device: its labelled blocks, with a manifest that says which device it is.

    data/devices/<name>/manifest.json     the device identity and the role of every file
    data/devices/<name>/pool.csv          blocks to calibrate a transfer from (standard labels)
    data/devices/<name>/precise.csv       held-out blocks, precise labels (and precise_repeat)

Keeping devices apart is what lets one user hold several: :func:`read_device_folder` checks
that every file the manifest names exists and was measured on the device the manifest names
(each dataset's ``.meta.json`` records its machine, threads and batch size), and raises a
``ValueError`` naming the file and the fields that differ otherwise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from lenna_core.latency.dataset import read_dataset, read_metadata
from lenna_core.latency.device_identity import (
    describe_device,
    describe_differences,
    identity_differences,
    identity_from_record,
)
from lenna_core.latency.file_checks import read_json, require_keys

MANIFEST = "manifest.json"


def dataset_identity(path: str | os.PathLike) -> dict:
    """The device fields of a dataset file, from its metadata (machine, threads, batch)."""
    meta = read_metadata(path)
    return identity_from_record(meta["machine"], meta["settings"].get("threads"),
                                meta["settings"]["spec"].get("batch_size"))


def write_manifest(folder: str | os.PathLike, files: Mapping[str, str],
                   identity: Mapping | None = None, notes: str = "",
                   models: Mapping[str, str] | None = None, **extra: object) -> dict:
    """Write ``manifest.json`` for the datasets ``files`` (role -> file name in ``folder``)
    and ``models`` (role -> path prefix); the identity defaults to the first dataset's and
    must agree with every dataset's."""
    folder = Path(folder)
    if not files:
        raise ValueError("files is empty: name at least one dataset of the device")
    identities = {role: dataset_identity(folder / name) for role, name in files.items()}
    identity = dict(identity or next(iter(identities.values())))
    _check_identities(folder, identity, identities, files)
    manifest = {"device": identity, "description": describe_device(identity),
                "files": dict(files), "models": dict(models or {}), "notes": notes, **extra}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _check_identities(folder: Path, identity: Mapping, identities: Mapping[str, dict],
                      files: Mapping[str, str]) -> None:
    for role, found in identities.items():
        differences = identity_differences(identity, found)
        if differences:
            raise ValueError(f"{folder / files[role]} ({role}) was measured on another device "
                             "than the folder's manifest names "
                             f"({describe_differences(differences)}): keep each device's data "
                             "in its own folder")


def read_manifest(folder: str | os.PathLike) -> dict:
    """A device folder's ``manifest.json`` alone (its files unread), checked for its keys."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise ValueError(f"{path} is missing: a device folder needs a manifest (write it with "
                         "lenna_core.latency.device_folder.write_manifest)")
    manifest = read_json(
        path, "write it again with lenna_core.latency.device_folder.write_manifest")
    require_keys(manifest, ("files", "device"), path,
                 "write it again with lenna_core.latency.device_folder.write_manifest")
    return manifest


def compare_devices(reference: Mapping, here: Mapping) -> str:
    """Three lines: the device ``here`` and the ``reference`` device, with what differs."""
    differences = identity_differences(reference, here)
    lines = [f"timed on: {describe_device(here)}",
             f"the latency models' device: {describe_device(reference)}",
             "what differs: " + (describe_differences(differences) if differences
                                 else "nothing recorded")]
    return "\n".join(lines)


def read_device_folder(folder: str | os.PathLike) -> dict:
    """The manifest and every dataset it names (role -> frame), checked against each other."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    path = folder / MANIFEST
    missing = [name for name in manifest["files"].values() if not (folder / name).exists()]
    if missing:
        raise ValueError(f"{path} names files that are not in {folder}: {missing}")
    identities = {role: dataset_identity(folder / name)
                  for role, name in manifest["files"].items()}
    _check_identities(folder, manifest["device"], identities, manifest["files"])
    frames = {role: read_dataset(folder / name) for role, name in manifest["files"].items()}
    return {"manifest": manifest, "frames": frames}
