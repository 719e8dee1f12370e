"""Shared fixtures: the bundled NAB file and small real segment sets, on the CPU backend."""

from __future__ import annotations

import os

# Tests run on the CPU even where an accelerator exists, so results do not depend on the machine.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from avatarjax.data.loading import bundled_dataset_path, load_series  # noqa: E402
from avatarjax.segmentation import sliding_windows  # noqa: E402

SHARED_NAB = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "nab")


@pytest.fixture(scope="session")
def machine_temperature():
    """The bundled NAB machine temperature series after the default cleaning policy."""
    return load_series(bundled_dataset_path("machine_temperature_system_failure"))


@pytest.fixture(scope="session")
def real_segments(machine_temperature) -> np.ndarray:
    """About 1 900 real 6-hour segments (72 steps), 12 steps apart, as an (n, 72) array."""
    segments = sliding_windows(machine_temperature, window=72, stride=12)
    return segments.values[:, :, 0]
