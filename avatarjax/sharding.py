"""Run a blocked computation over rows on one device or split across a mesh of devices.

The neighbour search and the privacy counts share one shape of work: a jitted function takes
one block of query rows (`block_size` rows) and a reference set that every block reads whole,
and returns one result row per query row. `map_row_blocks` runs that function over all blocks.
With a mesh of D devices it hands D blocks at a time to `jax.shard_map`: the query rows are
split along the mesh axis, the reference set is replicated on every device. Each device runs
the same program on a block of the same shape as the single-device run. So every result row
comes from the same operations in the same order, and sharded results equal single-device
results exactly. tests/test_sharding.py checks this on 4 CPU devices.

Multi-host clusters: call `jax.distributed.initialize()` on every process before building the
mesh, then pass `device_mesh()`, which spans `jax.devices()` of all hosts (docs/scaling.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from avatarjax.errors import InputDataError

logger = logging.getLogger(__name__)

ROW_AXIS = "rows"


def device_mesh(devices: int | str | None = None) -> Mesh | None:
    """Return a one-axis mesh named "rows" over the first `devices` devices, or None for one device.

    `devices` is a positive count, "all" for every device that `jax.devices()` lists (all hosts after
    `jax.distributed.initialize()`), or None / 1 for no mesh. Raises InputDataError when more
    devices are requested than exist.
    """
    available = jax.devices()
    if devices is None or devices == 1:
        return None
    if devices == "all":
        count = len(available)
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool) and devices >= 1:
        count = int(devices)
    else:
        raise InputDataError(f"invalid devices {devices!r}: expected a positive integer or \"all\".")
    if count > len(available):
        raise InputDataError(
            f"devices = {count} requested but jax.devices() lists {len(available)} ({available[0].platform}); "
            f"lower devices or use \"all\". On CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
            f"splits the host into N devices."
        )
    if count == 1:
        return None
    return Mesh(np.asarray(available[:count]), (ROW_AXIS,))


def mesh_size(mesh: Mesh | None) -> int:
    """Number of devices the rows are split across (1 without a mesh)."""
    return 1 if mesh is None else mesh.devices.size


@lru_cache(maxsize=64)
def _sharded(block_function: Callable, mesh: Mesh, n_row_inputs: int, n_shared_inputs: int):
    """Compile-once wrapper: query rows split along the mesh axis, shared inputs replicated."""
    axis = mesh.axis_names[0]
    in_specs = (PartitionSpec(axis),) * n_row_inputs + (PartitionSpec(),) * n_shared_inputs
    # check_vma off: the block function is an ordinary per-device program with no collectives.
    return jax.jit(jax.shard_map(block_function, mesh=mesh, in_specs=in_specs,
                                 out_specs=PartitionSpec(axis), check_vma=False))


def pad_rows(array, rows: int):
    """Return `array` with zero rows appended up to `rows` rows (a jax array)."""
    array = jnp.asarray(array)
    if array.shape[0] == rows:
        return array
    padding = jnp.zeros((rows - array.shape[0],) + array.shape[1:], array.dtype)
    return jnp.concatenate([array, padding])


def map_row_blocks(block_function: Callable, row_inputs: Sequence, shared_inputs: Sequence, *,
                   block_size: int, mesh: Mesh | None = None, progress: bool | None = None,
                   description: str = "blocks") -> tuple[np.ndarray, ...] | tuple[jax.Array, ...]:
    """Apply `block_function(*row_blocks, *shared_inputs)` to consecutive row blocks and join the results.

    `row_inputs` are arrays with the same number of rows n. They are zero-padded to whole
    blocks and the results of padded rows are cut off, so a padded row only has to be harmless.
    `block_function` must be a jitted function of block-shaped arrays returning a tuple of
    arrays whose first axis is the block. Returns the joined results, n rows each, as jax arrays.
    """
    n = row_inputs[0].shape[0]
    devices = mesh_size(mesh)
    step = block_size * devices
    n_steps = -(-n // step)
    padded = [pad_rows(values, n_steps * step) for values in row_inputs]
    function = block_function if mesh is None else _sharded(block_function, mesh, len(row_inputs),
                                                            len(shared_inputs))
    if mesh is not None:
        replicated = NamedSharding(mesh, PartitionSpec())
        shared_inputs = [_place(values, replicated) for values in shared_inputs]
        split = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
        # One host copy of the query rows, so each block is sliced on the host, not copied back.
        padded = [np.asarray(values) for values in padded]
    steps = range(n_steps)
    if progress is not False and n_steps >= 8:
        steps = tqdm(steps, desc=description, unit="block", disable=None if progress is None else False)
    pieces = []
    for s in steps:
        block = [values[s * step:(s + 1) * step] for values in padded]
        if mesh is not None:
            block = [_place(values, split) for values in block]
        outputs = function(*block, *shared_inputs)
        if mesh is not None and len(mesh.local_devices) < mesh.devices.size:
            outputs = _gather_from_all_hosts(outputs)
        pieces.append(outputs)
    return tuple(jnp.concatenate([piece[i] for piece in pieces])[:n] for i in range(len(pieces[0])))


def _place(values, sharding: NamedSharding) -> jax.Array:
    """Put a whole array, which every process has, onto `sharding`: each device takes its slice.

    With several processes (after `jax.distributed.initialize()`), every process must pass the
    same values. Each one then fills only the devices it owns.
    """
    host = np.asarray(values)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def _gather_from_all_hosts(outputs):
    """Collect row-sharded outputs that span several processes into whole arrays on every process."""
    from jax.experimental import multihost_utils

    # NOTE: this path runs only on a multi-process mesh, which the test suite cannot start. The
    # single-process mesh path is tested on 4 CPU devices.
    return tuple(jnp.asarray(multihost_utils.process_allgather(values, tiled=True)) for values in outputs)
