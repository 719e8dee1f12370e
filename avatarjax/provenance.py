"""Reproducibility record of a run: package versions, JAX backend and devices, git revision."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

import jax

_PACKAGES = ("avatarjax", "jax", "jaxlib", "flax", "optax", "numpy", "pandas", "scipy", "hydra-core",
             "omegaconf", "wandb")


def git_revision(start: Path | None = None) -> str | None:
    """Return the git commit of the working tree holding `start` (default: this package), or None."""
    folder = start or Path(__file__).resolve().parent
    try:
        completed = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                   text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return completed.stdout.strip() or None


def git_dirty(start: Path | None = None) -> bool | None:
    """Return whether the tracked files of the working tree holding `start` differ from its commit (None outside git)."""
    folder = start or Path(__file__).resolve().parent
    try:
        completed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                                   capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(completed.stdout.strip())


def environment() -> dict:
    """Collect versions, backend, device count and git revision for the metrics file."""
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    devices = jax.devices()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "backend": jax.default_backend(),
        "devices": len(devices),
        "device_kind": devices[0].device_kind,
        "git_revision": git_revision(),
        # True when the run used uncommitted changes, so the revision alone does not reproduce it.
        "git_dirty": git_dirty(),
        "packages": versions,
    }
