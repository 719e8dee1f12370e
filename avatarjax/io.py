"""Atomic file writes: readers of the target get either the old file or the complete new one.

Each write goes to a temporary file in the target's folder, which is then renamed onto
the target with os.replace. The folder keeps both names on one file system, where POSIX
makes the rename atomic (see the os.replace docs).

NOTE: Windows documents no atomicity for this rename, and there it raises PermissionError
while another process has the target open.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# Maximum number of temporary names tried before raising. Each name carries 64 random
# bits, so a second attempt already means a stale file or a bug.
_MAX_NAME_ATTEMPTS = 8


def _create_temporary_file(target: Path) -> Path:
    """Create an empty, uniquely named file next to target and return its path.

    The name starts with a dot and ends with the target's suffix, so that writers that
    infer the format from the extension (matplotlib savefig, pandas compression="infer")
    treat it like the target. Mode 0o666 is reduced by the process umask, as for open().
    """
    for _ in range(_MAX_NAME_ATTEMPTS):
        name = f".{target.name}.{secrets.token_hex(8)}.tmp{target.suffix}"
        candidate = target.with_name(name)
        try:
            fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(
        f"could not create a temporary file next to {target} after {_MAX_NAME_ATTEMPTS} "
        "attempts; remove stale .*.tmp* files in that folder"
    )


def _fsync_file(path: Path) -> None:
    """Flush the file's data to disk, so a crash after the rename cannot leave an empty target."""
    # O_RDWR because os.fsync on Windows calls FlushFileBuffers, which needs write access.
    fd = os.open(path, os.O_RDWR)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to path and rename it onto path when the block succeeds.

    Missing parent folders are created. If the block raises, the temporary file is removed,
    the target is left untouched and the exception propagates. The temporary file exists
    (empty) when the block starts, and the code in the block overwrites it.

    NOTE: the folder entry is not fsynced after the rename, so after a power loss the
    target may still be the old file, but never a partial one.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = _create_temporary_file(target)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        # BaseException so that KeyboardInterrupt also leaves no temporary file behind.
        temporary.unlink(missing_ok=True)
        raise
    logger.debug("wrote %s", target)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write data to path atomically and return the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write text to path atomically and return the path.

    Line endings are written as they are in text, with no platform translation.
    """
    return write_bytes_atomic(path, text.encode(encoding))


def to_json_compatible(obj: Any) -> Any:
    """Return a copy of obj that json.dumps accepts with allow_nan=False.

    NumPy scalars and arrays become Python numbers and lists, paths become strings, tuples
    become lists, and NaN and ±inf become None because JSON has no such numbers. Other
    types are returned unchanged, so json.dumps raises TypeError on them.
    """
    if isinstance(obj, np.ndarray):
        return to_json_compatible(obj.tolist())
    if isinstance(obj, np.generic):
        return to_json_compatible(obj.item())
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, Mapping):
        return {_to_json_key(key): to_json_compatible(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_compatible(item) for item in obj]
    return obj


def _to_json_key(key: Any) -> Any:
    # json.dumps accepts str, int, float, bool and None keys, but not NumPy scalars.
    return key.item() if isinstance(key, np.generic) else key


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write obj as UTF-8 JSON with an indent of 2 to path atomically and return the path.

    Values are converted by to_json_compatible, so NaN is written as null.
    Raises TypeError on a value that JSON cannot encode, before the target is touched.
    """
    text = json.dumps(to_json_compatible(obj), indent=2, allow_nan=False, ensure_ascii=False)
    return write_text_atomic(path, text + "\n")
