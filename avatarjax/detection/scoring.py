"""Reconstruction errors, per-time-step anomaly scores and their spread across seeds.

The anomaly score of a time step is the mean reconstruction error (MSE over the window's
steps, in standardized units) of all windows that contain it. Near the ends of a series or of
a contiguous piece fewer windows contain a step, and the mean divides by that count, so the
ends are neither inflated nor diluted. Steps that no window contains get NaN.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from avatarjax.detection.training import TrainedEnsemble, map_seeds

SCORING_BATCH = 2048
# Fewer batches take seconds (an estimate from the training cost per step on a 2-core CPU),
# so they get no progress bar.
PROGRESS_MIN_BATCHES = 4


@partial(jax.jit, static_argnames=("model", "seed_mode"))
def _batch_errors(params, windows, *, model, seed_mode):
    def one_seed(seed_params, windows):
        return jnp.mean((model.apply(seed_params, windows) - windows) ** 2, axis=1)

    return map_seeds(one_seed, seed_mode, params, windows)


def window_errors(ensemble: TrainedEnsemble, windows: np.ndarray, label: str = "model",
                  progress: bool | None = None) -> np.ndarray:
    """Return the MSE of every window under every seed, shape (n_seeds, n_windows).

    Windows are scored in batches of SCORING_BATCH. A progress bar named after `label` shows
    from PROGRESS_MIN_BATCHES batches on; progress None shows it only on a terminal, False never.
    """
    windows = np.asarray(windows, np.float32)
    n = windows.shape[0]
    batch = min(SCORING_BATCH, n)
    padded = np.zeros((-(-n // batch) * batch, windows.shape[1]), np.float32)
    padded[:n] = windows

    starts = range(0, padded.shape[0], batch)
    if progress is not False and len(starts) >= PROGRESS_MIN_BATCHES:
        starts = tqdm(starts, desc=f"scoring with {label} ({ensemble.n_seeds} seeds)", unit="batch",
                      disable=None if progress is None else False)
    parts = [_batch_errors(ensemble.params, padded[start:start + batch], model=ensemble.model,
                           seed_mode=ensemble.seed_mode)
             for start in starts]
    return np.asarray(jnp.concatenate(parts, axis=1))[:, :n].astype(np.float64)


def time_step_scores(errors: np.ndarray, starts: np.ndarray, window: int, n_steps: int) -> np.ndarray:
    """Average window errors (n_seeds, n_windows) onto time steps: shape (n_seeds, n_steps)."""
    errors = np.atleast_2d(errors)
    total = np.zeros((errors.shape[0], n_steps + 1))
    count = np.zeros(n_steps + 1)
    # Each window's error is added at its first step and removed after its last, so a
    # cumulative sum gives, per step, the sum over the windows containing it.
    np.add.at(total, (slice(None), starts), errors)
    np.add.at(total, (slice(None), starts + window), -errors)
    np.add.at(count, starts, 1.0)
    np.add.at(count, starts + window, -1.0)
    total = np.cumsum(total, axis=1)[:, :n_steps]
    count = np.rint(np.cumsum(count)[:n_steps])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def seed_mean_and_interval(scores: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return mean, lower and upper bounds of a Student t confidence interval across seeds (axis 0).

    Scores are mean squared errors, which cannot be negative, so the lower bound is cut at 0.
    """
    n_seeds = scores.shape[0]
    mean = scores.mean(axis=0)
    if n_seeds < 2:
        return mean, mean.copy(), mean.copy()
    half_width = stats.t.ppf(0.5 + confidence / 2, n_seeds - 1) * scores.std(axis=0, ddof=1) / np.sqrt(n_seeds)
    return mean, np.maximum(mean - half_width, 0.0), mean + half_width
