"""Training of a seed ensemble of autoencoders, one compiled program per optimization step.

Every seed has its own initialization and its own minibatch order, both drawn from its PRNG
key. One optimization step of all seeds is one jitted call over the stacked parameters and
optimizer states. A Python loop over steps only drives the progress bar and the NaN check.
Loss: mean squared error of the standardized windows. Minibatches are a random permutation
per epoch, and the last incomplete batch is left out.

How the seeds share a step (`seed_mode`):
- "vmap": `jax.vmap` over parameters, optimizer states and batches. A vmapped convolution
  becomes a grouped convolution, which accelerators run well.
- "unroll": the step is written once per seed inside the same jitted program. This is the
  CPU default. On a 2-core CPU, XLA ran the vmapped ten-seed step 3.2 to 4.2 times slower
  than ten single steps, because vmap turns each convolution into a grouped one. An epoch
  as one `lax.scan` ran 11 to 16 times slower than separate steps. scripts/benchmark_detector.py
  measures both.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from avatarjax.detection.model import ConvAutoencoder
from avatarjax.errors import InputDataError

logger = logging.getLogger(__name__)

SEED_MODES = ("vmap", "unroll")


class TrainingError(RuntimeError):
    """Training stopped because a loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainedEnsemble:
    """Stacked parameters of every seed (leading axis = seed) and their loss per epoch."""

    model: ConvAutoencoder
    params: dict
    epoch_loss: np.ndarray  # (n_seeds, epochs), mean training MSE of each epoch
    seed_mode: str = "vmap"

    @property
    def n_seeds(self) -> int:
        return self.epoch_loss.shape[0]


def default_seed_mode() -> str:
    """Return "vmap" on an accelerator and "unroll" on CPU."""
    return "vmap" if jax.default_backend() in ("gpu", "tpu") else "unroll"


def map_seeds(function, seed_mode: str, stacked, *shared):
    """Apply function(seed_slice, *shared) to every seed of the stacked pytree; stack the outputs."""
    if seed_mode == "vmap":
        return jax.vmap(function, in_axes=(0,) + (None,) * len(shared))(stacked, *shared)
    n_seeds = jax.tree_util.tree_leaves(stacked)[0].shape[0]
    outputs = [function(jax.tree_util.tree_map(lambda leaf: leaf[s], stacked), *shared) for s in range(n_seeds)]
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *outputs)


@lru_cache(maxsize=8)
def _adam(learning_rate: float) -> optax.GradientTransformation:
    # One optimizer object per learning rate, so both models of a comparison share one compiled step.
    return optax.adam(learning_rate)


def _mse(model, params, windows):
    return jnp.mean((model.apply(params, windows) - windows) ** 2)


@partial(jax.jit, static_argnames=("model", "optimizer", "seed_mode"), donate_argnums=(0,))
def _ensemble_step(state, batch_index, windows, *, model, optimizer, seed_mode):
    """Run one Adam step of every seed; state = (params, opt_state), batch_index (n_seeds, batch)."""

    def one_seed(seed_state, windows):
        (params, opt_state), index = seed_state
        loss, grads = jax.value_and_grad(partial(_mse, model))(params, windows[index])
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return map_seeds(one_seed, seed_mode, (state, batch_index), windows)


def _epoch_batches(order_keys, epoch: int, n_windows: int, batch_size: int) -> np.ndarray:
    """Return the minibatch indices of one epoch, shape (n_batches, n_seeds, batch_size)."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(order_keys, epoch)
    n_batches = n_windows // batch_size
    order = jax.vmap(lambda key: jax.random.permutation(key, n_windows))(keys)
    order = np.asarray(order)[:, : n_batches * batch_size]
    return order.reshape(order.shape[0], n_batches, batch_size).transpose(1, 0, 2)


def train_ensemble(windows: np.ndarray, model: ConvAutoencoder, *, seeds: int, epochs: int, batch_size: int,
                   learning_rate: float, seed_offset: int = 0, seed_mode: str | None = None,
                   label: str = "model", progress: bool | None = None) -> TrainedEnsemble:
    """Train `seeds` autoencoders on standardized windows (n, length) with Adam.

    Seed s uses PRNG key `seed_offset + s`, so two ensembles trained with the same offset
    start from the same initial parameters. `seed_mode` None picks `default_seed_mode()`;
    both modes give the same result up to float rounding.
    """
    seed_mode = default_seed_mode() if seed_mode is None else seed_mode
    if seed_mode not in SEED_MODES:
        raise InputDataError(f"seed_mode={seed_mode!r} is invalid; choose one of {', '.join(SEED_MODES)}.")
    windows = jnp.asarray(windows, jnp.float32)
    if windows.shape[0] < batch_size:
        raise InputDataError(
            f"{windows.shape[0]} training windows for {label} are fewer than one batch of {batch_size}; "
            f"lower detector.batch_size or lengthen the training period."
        )
    optimizer = _adam(float(learning_rate))
    keys = jnp.stack([jax.random.key(seed_offset + s) for s in range(seeds)])
    init_keys, order_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
    params = jax.vmap(lambda key: model.init(key, windows[:1]))(init_keys)
    state = (params, jax.vmap(optimizer.init)(params))

    n_batches = windows.shape[0] // batch_size
    bar = tqdm(total=epochs * n_batches, desc=f"training {label} ({seeds} seeds)", unit="step",
               disable=True if progress is False else None)
    losses = []
    for epoch in range(epochs):
        step_losses = []
        for batch_index in _epoch_batches(order_keys, epoch, windows.shape[0], batch_size):
            state, loss = _ensemble_step(state, jnp.asarray(batch_index), windows, model=model,
                                         optimizer=optimizer, seed_mode=seed_mode)
            step_losses.append(loss)
            bar.update(1)
        loss = np.asarray(jnp.stack(step_losses).mean(axis=0))
        losses.append(loss)
        if not np.all(np.isfinite(loss)):
            bar.close()
            bad = np.nonzero(~np.isfinite(loss))[0].tolist()
            raise TrainingError(
                f"training {label} stopped at epoch {epoch + 1}: the loss of seeds {bad} is {loss[bad].tolist()}; "
                f"check the training windows for missing values or lower detector.learning_rate (now {learning_rate})."
            )
        # Logged at INFO so that runs without a terminal, where the bar is hidden, show progress.
        logger.info("%s: epoch %d of %d, mean training MSE %.4f", label, epoch + 1, epochs, float(loss.mean()))
    bar.close()
    return TrainedEnsemble(model=model, params=state[0], epoch_loss=np.stack(losses, axis=1), seed_mode=seed_mode)
