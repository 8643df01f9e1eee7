"""Reading the project's JSON and torch files so that a damaged one is named, never a deep
``JSONDecodeError`` or torch stream error: every error says which file, where, and what to do.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any


def read_json(path: str | os.PathLike, remedy: str) -> dict:
    """The JSON object in ``path``; a missing, truncated or non-object file raises an error
    that names it and says ``remedy`` (what to do about it)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; {remedy}")
    try:
        data = json.loads(path.read_text())
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not text (byte {err.start} cannot be decoded); it is "
                         f"damaged: {remedy}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column "
                         f"{err.colno}); it is truncated or was edited: {remedy}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not an object; {remedy}")
    return data


def require_keys(data: dict, keys: tuple[str, ...], path: str | os.PathLike,
                 remedy: str) -> None:
    """Raise a ValueError naming ``path`` and the first of ``keys`` that ``data`` lacks."""
    missing = [key for key in keys if key not in data]
    if missing:
        raise ValueError(f"{path} lacks the key(s) {missing}; {remedy}")


def check_schema_version(data: dict, path: str | os.PathLike, expected: int | tuple[int, ...],
                         key: str = "schema_version", remedy: str = "") -> int:
    """The file's version (an integer among ``expected``); else an error naming the value."""
    allowed = expected if isinstance(expected, tuple) else (expected,)
    value = data.get(key)
    if type(value) is not int:  # "1" or 1.0 or true are not a version this code wrote
        raise ValueError(f"{path}: {key}={value!r} ({type(value).__name__}) must be the "
                         f"integer {' or '.join(map(str, allowed))}; the file was edited or "
                         f"written by other code. {remedy}".rstrip())
    if value not in allowed:
        raise ValueError(f"{path}: {key}={value}, this code reads "
                         f"{' or '.join(map(str, allowed))}. {remedy}".rstrip())
    return value


#: Start of a file written by :func:`save_torch`: the magic, then the payload's sha256.
CHECKED_MAGIC = b"LENNA-SHA256\n"


def save_torch(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` with the payload's checksum in front, written atomically (temporary
    file, fsync, rename): torch's zip format does not check its own CRCs, so a damaged byte
    would otherwise load as a silently different tensor."""
    import hashlib

    import torch

    path = Path(path)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    payload = buffer.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(CHECKED_MAGIC + hashlib.sha256(payload).digest() + payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_torch(path: str | os.PathLike, remedy: str, **kwargs: Any) -> Any:
    """``torch.load(path)`` (checking the checksum of a :func:`save_torch` file); a missing,
    empty or damaged file raises an error naming it."""
    import hashlib

    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; {remedy}")
    source: Path | io.BytesIO = path
    with open(path, "rb") as f:
        head = f.read(len(CHECKED_MAGIC))
    if head == CHECKED_MAGIC:
        data = path.read_bytes()
        digest, payload = data[len(head):len(head) + 32], data[len(head) + 32:]
        if hashlib.sha256(payload).digest() != digest:
            raise ValueError(f"{path} is damaged (its checksum does not match its content): "
                             f"{remedy}")
        source = io.BytesIO(payload)
    try:
        return torch.load(source, **kwargs)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError,
            KeyError, AttributeError, UnicodeDecodeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path} cannot be read by torch ({type(err).__name__}: "
                         f"{first[:200]}); it is truncated or damaged: {remedy}") from None


DIGEST_KEY = "sha256"


class DataIntegrityWarning(UserWarning):
    """A file changed after lenna_core wrote it (its recorded checksum no longer matches)."""


def _canonical(data: dict) -> bytes:
    body = {k: v for k, v in data.items() if k != DIGEST_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def with_digest(data: dict) -> dict:
    """``data`` with its own checksum under ``"sha256"`` (of the rest, canonically encoded):
    a digit changed by a damaged disk or an editor is then caught on read."""
    import hashlib

    return {**data, DIGEST_KEY: hashlib.sha256(_canonical(data)).hexdigest()}


def verify_digest(data: dict, path: str | os.PathLike, remedy: str) -> None:
    """Raise a ValueError naming ``path`` if its recorded checksum does not match its content
    (files written before checksums were recorded carry none and pass)."""
    import hashlib

    recorded = data.get(DIGEST_KEY)
    if recorded is None:
        return
    if recorded != hashlib.sha256(_canonical(data)).hexdigest():
        raise ValueError(f"{path} changed after lenna_core wrote it (its recorded checksum "
                         f"does not match its content): a value was edited or the file is "
                         f"damaged. {remedy}")


def file_sha256(path: str | os.PathLike, size: int | None = None) -> str:
    """sha256 of the file's bytes (of its first ``size`` bytes if given)."""
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read() if size is None else f.read(size)).hexdigest()
