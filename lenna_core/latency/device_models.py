"""Chapter 4's latency models fitted on one device folder and scored on its precise labels.

A device folder (:mod:`~lenna_core.latency.device_folder`) holds standard labels of a pool of
blocks (``pool.csv``), precise labels of held-out blocks, twice (``precise.csv``,
``precise_repeat.csv``), and the device's op table. :func:`fit_device_models` fits chapter 4's
candidate models on the pool, every evaluation block left out, and scores them against the
geometric mean of the two precise labels, beside the noise floor between those two and the
perfect-predictor ceiling (:func:`~lenna_core.latency.label_noise.score_on_relabelled`); a
``noise_floor.csv`` of pool blocks labelled again adds the standard labels' floor, and the
pool's own labels of the evaluation blocks are scored too: a model trained on the pool can
average their noise away, not the machine's state when they were labelled. That state moves
labels by a power (:mod:`~lenna_core.latency.machine_state`), so the MLP on the table is also
scored calibrated to the precise labels' session, each block by a power fitted on the other
half of them (:data:`SESSION_CALIBRATED`); the model saved carries the power fitted on all of
them (:mod:`~lenna_core.latency.session_calibration`). The MLP
corrects the table the manifest names as ``tables.op_table``; every other table it names (say
``isolated_op_table``, each op timed alone, beside an ``op_table`` from probe cells,
:mod:`~lenna_core.latency.cell_table`) is scored as the prior of an MLP of its own ("MLP on
isolated op table"). :func:`save_device_model` saves the MLP on the lookup table and the
scores into the folder and names the model in its manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lenna_core.latency.candidates import MLP_ON_TABLE, candidate_models
from lenna_core.latency.dataset import paired_labels, read_dataset, read_metadata, relabelled
from lenna_core.latency.device_folder import (
    MANIFEST,
    dataset_identity,
    read_device_folder,
    read_manifest,
    write_manifest,
)
from lenna_core.latency.device_identity import (
    describe_differences,
    identity_differences,
    identity_from_record,
)
from lenna_core.latency.encoder import contexts_from_frame
from lenna_core.latency.label_noise import score_on_relabelled
from lenna_core.latency.lookup_table import OpLatencyTable
from lenna_core.latency.machine_state import MIN_SHARED_BLOCKS, power_fit, shared_labels
from lenna_core.latency.metrics import latency_metrics, noise_floor
from lenna_core.latency.mlp_model import MLPLatency
from lenna_core.latency.profiler import cpu_threads
from lenna_core.latency.session_calibration import (
    SessionCalibration,
    cross_fitted,
    fit_session_calibration,
)
from lenna_core.validation import check_int

POOL, PRECISE, REPEAT = "pool", "precise", "precise_repeat"
#: Pool blocks labelled again (``--run-tag repeat``), if the manifest names no "noise_floor".
NOISE_FLOOR_FILE = "noise_floor.csv"
MODEL_ROLE, MODEL_PREFIX = "mlp", "mlp_latency"
#: The manifest's role of the table the saved MLP corrects (``tables.op_table``).
OP_TABLE = "op_table"
METRICS_FILE = "predictor_metrics_precise.csv"
STANDARD_FLOOR = "noise floor, standard labels (pool)"
#: The pool's own labels of the evaluation blocks, scored as a predictor: what the training
#: labels say about those blocks, standard error and machine state included.
POOL_LABELS = "pool's labels of the evaluation blocks"
#: The saved model: the MLP on the table calibrated to the precise labels' session, scored with
#: each block's calibration fitted on the other half of the evaluation blocks.
SESSION_CALIBRATED = f"{MLP_ON_TABLE}, calibrated to the session (cross-fitted)"
#: Folds of that cross-fitting: half the evaluation blocks calibrate, the other half score.
SESSION_FOLDS = 2
#: Fewest training blocks: the MLP stops early on 15% of them.
MIN_TRAIN_BLOCKS = 10
#: Fewest evaluation blocks: the perfect-predictor ceiling resamples their label noise.
MIN_EVALUATION_BLOCKS = 3
_LABELLED = "the lenna label commands of data/README.md, 'Devices'"


@dataclass(frozen=True)
class DeviceModels:
    """Chapter 4's models fitted on a device folder's pool, scored on its precise labels.

    ``metrics`` has one row per model, then "noise floor" (the two precise labellings against
    each other), "perfect predictor (expected)" and, with a ``noise_floor.csv``,
    :data:`STANDARD_FLOOR`; ``evaluation`` holds the precise blocks with their mean label
    (``latency_ms``) and each labelling's (``latency_ms_1``, ``latency_ms_2``); ``left_out`` counts
    the pool blocks left out of training because they are evaluation blocks; ``state`` how the
    precise labels of the evaluation blocks follow the pool's own labels of them
    (:func:`~lenna_core.latency.machine_state.state_stretch`, pool first), None where the pool
    labelled too few of them; ``session`` the power from the MLP on the table's predictions to
    the precise labels of all evaluation blocks, which the saved model applies.
    """

    folder: Path
    manifest: dict
    metrics: pd.DataFrame
    models: dict[str, object]
    train: pd.DataFrame
    evaluation: pd.DataFrame
    labels_measured_on: dict
    left_out: int
    state: dict | None = None
    session: SessionCalibration | None = None

    @property
    def sizes(self) -> dict[str, int]:
        """Training blocks, evaluation blocks and pool blocks left out for being evaluated."""
        return {"train": len(self.train), "evaluation": len(self.evaluation),
                "left_out": self.left_out}


def fit_device_models(folder: str | os.PathLike, *, hidden: tuple[int, ...] = (256, 128),
                      max_epochs: int = 600, seed: int = 0) -> DeviceModels:
    """Fit chapter 4's models on ``folder``'s pool (its evaluation blocks left out) and score
    them against its precise labels; the same ``seed`` gives the same models and scores."""
    check_int("seed", seed, 0)
    folder = Path(folder)
    checked = read_device_folder(folder)  # every file measured on the manifest's device
    settings = _check_roles(folder, checked["manifest"])
    frames = checked["frames"]
    evaluation = _evaluation(folder, frames, checked["manifest"]["files"])
    train, left_out = _training(folder, frames, settings, checked["manifest"]["files"])
    blocks = pd.concat([train, evaluation])
    table = _op_table(folder, checked["manifest"], blocks)
    # Any other table the manifest names (an op table timed another way) gets its own MLP, so
    # the scores show what the prior is worth.
    others = {role: _op_table(folder, checked["manifest"], blocks, role)
              for role in checked["manifest"].get("tables", {}) if role != OP_TABLE}
    floor = _standard_floor(folder, checked, settings[POOL])
    hidden = tuple(hidden)
    # One thread whatever torch was set to: thread counts split sums differently, so the same
    # seed gives the same bits only on a fixed count; matrices this small gain nothing from more.
    with cpu_threads(1):
        mlp = MLPLatency(hidden=hidden, max_epochs=max_epochs, random_state=seed)
        mlp.fit(train, train["latency_ms"])
        models = candidate_models(mlp, table, train, hidden=hidden, max_epochs=max_epochs,
                                  seed=seed)
        for role, other in others.items():
            models[f"MLP on {role.replace('_', ' ')}"] = MLPLatency(
                hidden=hidden, max_epochs=max_epochs, random_state=seed, prior=other
            ).fit(train, train["latency_ms"])
        metrics = score_on_relabelled(models, evaluation, seed=seed)
        predicted = models[MLP_ON_TABLE].predict(evaluation)
    session = None
    if len(evaluation) >= 2 * MIN_SHARED_BLOCKS:  # each fold's power needs that many blocks
        measured = evaluation["latency_ms"].to_numpy()
        metrics.loc[SESSION_CALIBRATED] = pd.Series(latency_metrics(
            measured, cross_fitted(predicted, measured, folds=SESSION_FOLDS, seed=seed)))
        session = fit_session_calibration(predicted, measured)
    if floor is not None:
        metrics.loc[STANDARD_FLOOR] = pd.Series(floor)
    state = None
    if settings[POOL]["seed"] == settings[PRECISE]["seed"]:  # else other blocks, same row ids
        pairs = shared_labels(frames[POOL], evaluation)
        if len(pairs) >= MIN_EVALUATION_BLOCKS:
            metrics.loc[POOL_LABELS] = pd.Series(latency_metrics(pairs["latency_ms_later"],
                                                                 pairs["latency_ms_earlier"]))
        if len(pairs) >= MIN_SHARED_BLOCKS:
            state = power_fit(pairs["latency_ms_earlier"], pairs["latency_ms_later"])
    metrics["n"] = metrics["n"].astype(int)  # a count, though the table's rows made it float
    machine = read_metadata(folder / checked["manifest"]["files"][POOL])["machine"]
    return DeviceModels(folder, checked["manifest"], metrics.rename_axis("model"), models,
                        train, evaluation, machine, left_out, state, session)


def save_device_model(result: DeviceModels, folder: str | os.PathLike | None = None) -> dict:
    """Save the MLP on the lookup table, calibrated to the precise labels' session where
    ``result.session`` holds a power, as ``<folder>/mlp_latency.*`` (recording the pool's
    machine as its device), the scores as ``predictor_metrics_precise.csv``, and name both in
    the manifest, its files kept; ``folder`` defaults to the one fitted. Returns the manifest."""
    folder = Path(result.folder if folder is None else folder)
    manifest = read_manifest(folder)
    differences = identity_differences(result.manifest["device"], manifest["device"])
    if differences:
        raise ValueError(f"{folder / MANIFEST} names another device than the models were fitted "
                         f"for ({describe_differences(differences)}): save them into "
                         f"{result.folder}")
    saved = result.models[MLP_ON_TABLE].without_session_calibration()
    saved.set_session_calibration(result.session).save(
        folder / MODEL_PREFIX, labels_measured_on=result.labels_measured_on)
    # Six significant digits: the scores' last bits are no part of the result.
    result.metrics.to_csv(folder / METRICS_FILE, float_format="%.6g", lineterminator="\n")
    kept = {k: v for k, v in manifest.items()
            if k not in ("device", "description", "files", "models", "notes")}
    kept["metrics"] = {**manifest.get("metrics", {}), MODEL_ROLE: METRICS_FILE}
    return write_manifest(folder, manifest["files"], identity=manifest["device"],
                          notes=manifest.get("notes", ""),
                          models={**manifest.get("models", {}), MODEL_ROLE: MODEL_PREFIX},
                          **kept)


def evaluation_blocks(folder: str | os.PathLike, checked: dict | None = None) -> pd.DataFrame:
    """The folder's evaluation blocks with the mean of their two precise labels
    (``latency_ms``), as :func:`fit_device_models` scores every model on them; ``checked``:
    the folder as ``read_device_folder`` read it already, so it is not read twice."""
    folder = Path(folder)
    checked = read_device_folder(folder) if checked is None else checked
    _check_roles(folder, checked["manifest"])
    return _evaluation(folder, checked["frames"], checked["manifest"]["files"])


def _check_roles(folder: Path, manifest: dict) -> dict[str, dict]:
    """Each needed dataset's settings, once checked that the precise labels are the same blocks
    in the pool's milliseconds."""
    files = manifest["files"]
    missing = [role for role in (POOL, PRECISE, REPEAT) if role not in files]
    if missing:
        raise ValueError(f"{folder / MANIFEST} names no {' / '.join(missing)} file: fitting "
                         "needs pool.csv (standard labels) and precise.csv, precise_repeat.csv "
                         f"(held-out blocks labelled twice), from {_LABELLED}")
    settings = {role: read_metadata(folder / files[role])["settings"]
                for role in (POOL, PRECISE, REPEAT)}
    for key in ("seed", "spec"):
        if settings[REPEAT].get(key) != settings[PRECISE].get(key):
            raise ValueError(f"{folder / files[REPEAT]} has {key}={settings[REPEAT].get(key)!r} "
                             f"but {files[PRECISE]} {settings[PRECISE].get(key)!r}: it labelled "
                             "other blocks; label the same ones again")
    for role in (PRECISE, REPEAT):
        _check_scaled_like_pool(folder / files[role], settings[role], settings[POOL], files[POOL])
    return settings


def _check_scaled_like_pool(path: Path, settings: dict, pool: dict, pool_name: str) -> None:
    """Refuse labels calibrated by another reference-cell run than the pool's (other ms)."""
    if settings["rule"].get("reference_ms") != pool["rule"].get("reference_ms"):
        raise ValueError(f"{path} is scaled by another reference-cell calibration than "
                         f"{pool_name}: label it again with --scale-from {pool_name}")


def _evaluation(folder: Path, frames: dict, files: dict) -> pd.DataFrame:
    """The blocks both precise labellings labelled, with their mean label and each one."""
    first, second = frames[PRECISE], frames[REPEAT]
    ids = (set(first.loc[first["status"] == "ok", "row_id"])
           & set(second.loc[second["status"] == "ok", "row_id"]))
    if len(ids) < MIN_EVALUATION_BLOCKS:
        raise ValueError(f"{files[PRECISE]} and {files[REPEAT]} in {folder} both label "
                         f"{len(ids)} blocks; scoring needs {MIN_EVALUATION_BLOCKS} or more: "
                         f"label more held-out blocks ({_LABELLED})")
    rows = first[first["row_id"].isin(ids)].sort_values("row_id")
    return relabelled(rows, [first, second])


def _training(folder: Path, frames: dict, settings: dict,
              files: dict) -> tuple[pd.DataFrame, int]:
    """The pool's labelled blocks that are no evaluation block, and how many were left out."""
    pool = frames[POOL]
    ok = pool[pool["status"] == "ok"]
    # A row id names the same block only under the same seed (newer pools draw with another).
    if settings[POOL]["seed"] == settings[PRECISE]["seed"]:
        precise_ids = set(frames[PRECISE]["row_id"]) | set(frames[REPEAT]["row_id"])
        evaluated = ok["row_id"].isin(precise_ids)
    else:
        evaluated = pd.Series(False, index=ok.index)
    train = ok[~evaluated].reset_index(drop=True)
    if len(train) < MIN_TRAIN_BLOCKS:
        raise ValueError(f"{folder / files[POOL]} holds {len(train)} labelled blocks that are "
                         f"not evaluation blocks ({int(evaluated.sum())} of its {len(ok)} are "
                         f"in {files[PRECISE]}); fitting needs {MIN_TRAIN_BLOCKS} or more: "
                         "label more rows into it (lenna label --rows N, beyond the held-out "
                         "ids), or draw it with another --seed")
    return train, int(evaluated.sum())


def _op_table(folder: Path, manifest: dict, blocks: pd.DataFrame,
              role: str = OP_TABLE) -> OpLatencyTable:
    """The folder's op table (``tables[role]``), checked to be the device's and to price
    every block."""
    name = manifest.get("tables", {}).get(role)
    measure = ("measure it on this device (OpLatencyTable.measure over the contexts of the "
               "pool's and the evaluation blocks, then to_csv)")
    if name is None or not (folder / name).exists():
        raise ValueError(f"{folder / MANIFEST} names no op table (tables.{role}) or it is "
                         f"missing: the lookup table and the MLP's prior need one; {measure} "
                         "and name it in the manifest")
    table = OpLatencyTable.from_csv(folder / name)
    if table.meta.get("machine"):  # tables written before the machine was recorded lack it
        recorded = identity_from_record(table.meta["machine"],
                                        table.meta.get("settings", {}).get("threads"))
        differences = identity_differences(manifest["device"], recorded)
        if differences:
            raise ValueError(f"{folder / name} was measured on another device than the "
                             f"folder's manifest names ({describe_differences(differences)}): "
                             f"{measure}")
    absent = table.missing(contexts_from_frame(blocks))
    if absent:
        raise ValueError(f"{folder / name} lacks {len(absent)} entries the pool's and the "
                         f"evaluation blocks need, e.g. {absent[:3]}: {measure}")
    return table


def _standard_floor(folder: Path, checked: dict, pool_settings: dict) -> dict | None:
    """Metrics between the pool's labels and a second standard labelling of some of its
    blocks (the manifest's "noise_floor", else ``noise_floor.csv``); None without one."""
    manifest = checked["manifest"]
    name = manifest["files"].get("noise_floor", NOISE_FLOOR_FILE)
    path = folder / name
    if "noise_floor" in checked["frames"]:
        repeat = checked["frames"]["noise_floor"]
    elif path.exists():  # not in the manifest: check its device here
        differences = identity_differences(manifest["device"], dataset_identity(path))
        if differences:
            raise ValueError(f"{path} was measured on another device than the folder's "
                             f"manifest names ({describe_differences(differences)})")
        repeat = read_dataset(path)
    else:
        return None
    settings = read_metadata(path)["settings"]
    if settings["seed"] != pool_settings["seed"]:
        raise ValueError(f"{path} has seed={settings['seed']} but {manifest['files'][POOL]} "
                         f"{pool_settings['seed']}: its row ids are other blocks; label the "
                         "pool's blocks again (the pool's --seed, --run-tag repeat)")
    _check_scaled_like_pool(path, settings, pool_settings, manifest["files"][POOL])
    pairs = paired_labels(checked["frames"][POOL], repeat)
    if len(pairs) < 2:
        raise ValueError(f"{path} labels {len(pairs)} of the pool's blocks again; a noise floor "
                         "needs 2 or more (lenna label --run-tag repeat --rows N)")
    return noise_floor(pairs["latency_ms_first"], pairs["latency_ms_second"])
