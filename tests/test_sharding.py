"""Sharded neighbour search and privacy counts equal single-device results exactly.

The tests run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4, because
the host device count is fixed when JAX starts and the rest of the suite runs on one device.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from avatarjax.config import parse_devices
from avatarjax.errors import ConfigError, InputDataError
from avatarjax.sharding import device_mesh

FOUR_DEVICES = textwrap.dedent(
    """
    import json, sys
    import jax, numpy as np
    from avatarjax.avatar import generate_avatars
    from avatarjax.data.loading import bundled_dataset_path, load_series
    from avatarjax.metrics.entity_privacy import entity_closer_avatar_counts
    from avatarjax.metrics.privacy import closer_avatar_counts, closest_original_distances
    from avatarjax.neighbors import knn
    from avatarjax.projection.fpca import fit_fpca, transform
    from avatarjax.sharding import device_mesh

    assert jax.device_count() == 4, jax.devices()
    values = load_series(bundled_dataset_path("machine_temperature_system_failure")).values[:, 0]
    # 3 001 one-day windows every 2 steps: not a multiple of the block size or the device count.
    starts = np.arange(0, 6002, 2)
    curves = values[starts[:, None] + np.arange(288)]
    coordinates = np.asarray(transform(fit_fpca(curves, 10), curves))
    results = {}
    for devices in (1, 2, 4):
        mesh = device_mesh(devices)
        avatars = generate_avatars(jax.random.key(0), coordinates, 10, mesh=mesh, progress=False)
        banded = knn(coordinates, None, 5, exclude_radius=40, positions=starts, block_size=256, mesh=mesh,
                     progress=False)
        external = knn(coordinates[:1000], coordinates, 3, block_size=128, mesh=mesh, progress=False)
        avatar_coordinates = np.asarray(avatars.coordinates)
        counts = closer_avatar_counts(coordinates, avatar_coordinates, block_size=256, mesh=mesh, progress=False)
        closest, second = closest_original_distances(coordinates, avatar_coordinates, mesh=mesh, progress=False)
        days = starts // 288  # one entity per day of 288 five-minute steps
        entity_counts = entity_closer_avatar_counts(coordinates, avatar_coordinates, days, block_size=256,
                                                    mesh=mesh)
        results[devices] = {
            "neighbour_index": np.asarray(avatars.neighbour_index).tolist(),
            "neighbour_distance": np.asarray(avatars.neighbour_distance).tobytes().hex(),
            "avatars": avatar_coordinates.tobytes().hex(),
            "banded_index": np.asarray(banded[1]).tolist(),
            "external_distance": np.asarray(external[0]).tobytes().hex(),
            "counts": np.asarray(counts).tolist(),
            "closest": np.concatenate([closest, second]).tobytes().hex(),
            "entity_counts": np.asarray(entity_counts).tolist(),
        }
    json.dump(results, sys.stdout)
    """
)


@pytest.fixture(scope="module")
def four_device_results():
    environment = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu")
    completed = subprocess.run([sys.executable, "-c", FOUR_DEVICES], capture_output=True, text=True,
                               env=environment, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout)


@pytest.mark.parametrize("devices", ["2", "4"])
@pytest.mark.parametrize("output", ["neighbour_index", "neighbour_distance", "avatars", "banded_index",
                                    "external_distance", "counts", "closest", "entity_counts"])
def test_sharded_equals_single_device(four_device_results, devices, output):
    assert four_device_results[devices][output] == four_device_results["1"][output]


def test_sharded_results_are_not_trivial(four_device_results):
    # Guard against equal-but-empty outputs: real neighbours and some hidden originals.
    counts = np.asarray(four_device_results["4"]["counts"])
    assert 0 < np.mean(counts > 0) < 1
    entity_counts = np.asarray(four_device_results["4"]["entity_counts"])
    assert entity_counts.max() > 0
    index = np.asarray(four_device_results["4"]["neighbour_index"])
    assert index.shape == (3001, 10)
    assert (index != np.arange(3001)[:, None]).all()


def test_device_mesh_rejects_more_devices_than_exist():
    import jax

    with pytest.raises(InputDataError, match="xla_force_host_platform_device_count"):
        device_mesh(jax.device_count() + 1)
    assert device_mesh(1) is None


@pytest.mark.parametrize("text", ["0", "-2", "two", "1.5", ""])
def test_devices_setting_rejects_bad_values(text):
    with pytest.raises(ConfigError, match="devices="):
        parse_devices(text)


def test_devices_setting_accepts_counts_and_all():
    assert parse_devices("4") == 4
    assert parse_devices(" ALL ") == "all"
