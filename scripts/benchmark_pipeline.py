"""Time avatarjax stage by stage against a numpy + scikit-learn reference of the same pipeline.

Usage: `python scripts/benchmark_pipeline.py [--sizes 10000 50000 200000] [--quick]`.

Both implementations run the six stages of the avatar method on the same real segments:
projection (fit + transform), k-nearest-neighbour search, avatar sampling, inverse projection,
privacy metrics and utility metrics. Every (size, implementation) pair runs in a fresh
subprocess of this script (`--worker reference|avatarjax --n N`), which prints its results as
JSON on stdout. A fresh process is needed because ru_maxrss is the high-water mark of the
whole process, so only a fresh one gives the peak memory of one implementation at one size.
The parent prints the machine, a Markdown table per size and agreement checks, then writes
benchmarks/results/pipeline_<UTC timestamp>.json and benchmarks/results/latest.md.

avatarjax runs each stage twice on the same shapes: the second call is the reported time and
first minus second is reported as compile time (mostly jit tracing and XLA compilation).
The reference runs each stage once, because numpy and scikit-learn compile nothing.

docs/benchmarks.md describes the stages, the data and the measured results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmark_targets import check_targets, target_lines

logger = logging.getLogger("avatarjax.benchmark")

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT_DIR = REPOSITORY_ROOT / "benchmarks" / "results"

DATASET = "machine_temperature_system_failure"
SEGMENT_LENGTH = 288  # steps of 5 minutes: one day
NCP = 20
K = 20
SEGMENT_SEED = 0  # numpy default_rng seed for window starts and noise
AVATAR_SEED = 0  # jax.random.key and numpy default_rng seed for the avatar weights
NOISE_SHARE = 0.01  # noise standard deviation, as a share of the series standard deviation
DEFAULT_SIZES = (10_000, 50_000, 200_000)
QUICK_SIZE = 2_000
IMPLEMENTATIONS = ("reference", "avatarjax")

STAGES = ("projection", "neighbours", "avatars", "inverse", "privacy", "utility")
STAGE_DESCRIPTIONS = {
    "projection": "FPCA fit + transform of the segments",
    "neighbours": f"{K} nearest neighbours of every score row, itself excluded",
    "avatars": "avatar weights and weighted neighbour means",
    "inverse": "avatar scores back to curves",
    "privacy": "closer-avatar counts (hidden rate, local cloaking) and closest two originals (DTC, CDR)",
    "utility": "Hellinger distance and per-series feature differences",
}

# Avatar weights floor each distance at this share of the row's largest neighbour distance,
# the rule of avatarjax.avatar.
RELATIVE_DISTANCE_FLOOR = 1e-3

# The reference counts avatars within radius own_distance * (1 - STRICT_SHRINK), so the own
# avatar and any avatar within 1e-9 relative of the own distance count as ties, not as closer.
STRICT_SHRINK = 1e-9

HELLINGER_BINS = 100
ENTROPY_BINS = 20
AUTOCORRELATION_LAG = 10
FEATURES = ("mean", "min", "max", "sum", "entropy", "autocorrelation_lag10")


# --------------------------------------------------------------------------- data


def build_segments(n: int) -> tuple[np.ndarray, dict]:
    """Cut n noisy one-day windows out of the bundled NAB series and return them (n, T) with facts.

    Window starts are drawn with numpy default_rng(SEGMENT_SEED), with replacement only when
    n exceeds the number of possible starts. Gaussian noise of NOISE_SHARE times the series
    standard deviation keeps repeated windows from being exact duplicates.
    """
    from avatarjax.data.loading import bundled_dataset_path, load_series

    series = load_series(bundled_dataset_path(DATASET))
    values = series.values[:, 0]
    # Windows must not cross a piece boundary, which is a jump in time.
    starts_per_piece = [np.arange(start, stop - SEGMENT_LENGTH + 1) for start, stop in series.pieces
                        if stop - start >= SEGMENT_LENGTH]
    possible_starts = np.concatenate(starts_per_piece)
    rng = np.random.default_rng(SEGMENT_SEED)
    replace = n > possible_starts.size
    starts = rng.choice(possible_starts, size=n, replace=replace)
    noise_std = NOISE_SHARE * float(values.std())
    segments = values[starts[:, None] + np.arange(SEGMENT_LENGTH)]
    segments = segments + rng.normal(0.0, noise_std, size=segments.shape)
    facts = {
        "dataset": DATASET,
        "series_steps": int(values.size),
        "possible_starts": int(possible_starts.size),
        "drawn_with_replacement": bool(replace),
        "distinct_starts": int(np.unique(starts).size),
        "noise_std": noise_std,
        "segment_length": SEGMENT_LENGTH,
    }
    return segments, facts


def format_count(count: int) -> str:
    """Format an integer with a space as thousands separator: 10000 -> "10 000"."""
    return f"{count:,}".replace(",", " ")


def data_description(possible_starts: int | None = None) -> str:
    """Describe the input segments in one paragraph, for the console and latest.md."""
    starts = "all possible starts" if possible_starts is None else f"the {format_count(possible_starts)} possible starts"
    return (
        f"Data: n windows of T = {SEGMENT_LENGTH} five-minute steps (one day) of the bundled NAB "
        f"file {DATASET}.csv, at start positions drawn with numpy default_rng({SEGMENT_SEED}) from "
        f"{starts} (with replacement when n exceeds them), plus "
        f"Gaussian noise of {NOISE_SHARE} times the series standard deviation so that repeated "
        f"windows are not exact duplicates. ncp = {NCP}, k = {K}."
    )


# --------------------------------------------------------------------------- measurement


def peak_rss_mib() -> float:
    """Return this process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class StageRecorder:
    """Wall time and peak RSS after each stage of one implementation's run.

    With `twice=True` (avatarjax) every stage runs two times and waits for its JAX arrays
    with jax.block_until_ready: `seconds` is the second call and `compile_s` the first minus
    the second. Otherwise `seconds` is the only call and `compile_s` is None.
    """

    def __init__(self, twice: bool):
        self.twice = twice
        self.stages: dict[str, dict] = {}
        self.compiles = 0
        self.counting = False
        if twice:
            import jax.monitoring

            jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration: float, **kwargs) -> None:
        # JAX records this event once per XLA backend compilation.
        if self.counting and event == "/jax/core/compile/backend_compile_duration":
            self.compiles += 1

    def run(self, stage: str, function, *args):
        if self.twice:
            import jax

            start = time.perf_counter()
            jax.block_until_ready(function(*args))
            first = time.perf_counter() - start
            self.compiles, self.counting = 0, True
            start = time.perf_counter()
            result = jax.block_until_ready(function(*args))
            seconds = time.perf_counter() - start
            self.counting = False
            entry = {"seconds": seconds, "first_call_s": first, "compile_s": first - seconds,
                     "second_call_compiles": self.compiles}
        else:
            start = time.perf_counter()
            result = function(*args)
            entry = {"seconds": time.perf_counter() - start, "first_call_s": None, "compile_s": None}
        entry["peak_rss_mib"] = peak_rss_mib()
        self.stages[stage] = entry
        logger.info("%s took %.3f s%s; peak RSS %.0f MiB", stage, entry["seconds"],
                    f" (first call {entry['first_call_s']:.3f} s)" if self.twice else "",
                    entry["peak_rss_mib"])
        return result


def none_if_nan(value: float) -> float | None:
    """Map NaN to None, so the JSON file stays standard (avatarjax's metric entries do the same)."""
    return None if value is None or np.isnan(value) else float(value)


# --------------------------------------------------------------------------- reference


def drop_self_column(distances: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own index from k + 1 neighbour results, leaving k columns.

    The column is found by index, not by position, because an exact duplicate at distance 0
    can come before the row itself. A row whose own index is missing loses its last column.
    """
    n, k_plus_one = indices.shape
    is_self = indices == np.arange(n)[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    # kneighbors returns distinct indices in a row, so each row drops exactly one column.
    keep = ~is_self
    return distances[keep].reshape(n, k_plus_one - 1), indices[keep].reshape(n, k_plus_one - 1)


def reference_avatar_weights(rng: np.random.Generator, distances: np.ndarray) -> np.ndarray:
    """Draw normalized avatar weights (1/d) * Exp(1) * 2^(-P) per row, P a permutation of 1..k."""
    n, k = distances.shape
    exponential = rng.exponential(size=(n, k))
    ranks = rng.permuted(np.tile(np.arange(1, k + 1, dtype=np.float64), (n, 1)), axis=1)
    largest = distances.max(axis=1, keepdims=True)
    floor = np.where(largest > 0, RELATIVE_DISTANCE_FLOOR * largest, 1.0)
    raw = exponential * np.exp2(-ranks) / np.maximum(distances, floor)
    return (raw / raw.sum(axis=1, keepdims=True)).astype(distances.dtype, copy=False)


def reference_closer_counts(originals: np.ndarray, avatars: np.ndarray, method: str) -> np.ndarray:
    """Count, per original i, the avatars j != i strictly closer to it than its own avatar i.

    "kdtree": a KDTree over the avatars and one radius query per original (count_only), with
    the original's own avatar distance as radius. "chunked": sklearn pairwise_distances_chunked
    over all (original, avatar) pairs, so O(n^2) work in blocks of bounded memory.
    """
    if method == "kdtree":
        from sklearn.neighbors import KDTree

        own = np.linalg.norm(originals - avatars, axis=1)
        # query_radius counts distances <= r, so the shrunken radius leaves out the own avatar.
        return KDTree(avatars).query_radius(originals, own * (1.0 - STRICT_SHRINK), count_only=True)

    from sklearn.metrics import pairwise_distances_chunked

    def count_rows(chunk, start):
        rows = np.arange(chunk.shape[0])
        own = chunk[rows, start + rows]
        return (chunk < own[:, None] * (1.0 - STRICT_SHRINK)).sum(axis=1)

    return np.concatenate(list(pairwise_distances_chunked(originals, avatars, reduce_func=count_rows)))


def reference_series_features(segments: np.ndarray) -> dict:
    """Average over rows of mean, min, max, sum, 20-bin entropy (nats) and lag-10 autocorrelation."""
    n, length = segments.shape
    low = segments.min(axis=1)
    high = segments.max(axis=1)
    mean = segments.mean(axis=1)

    # Entropy: 20 equal bins over each row's own [min, max]. A constant row falls in one bin.
    width = np.where(high > low, high - low, 1.0)
    position = np.floor((segments - low[:, None]) / width[:, None] * ENTROPY_BINS).astype(np.int64)
    position = np.clip(position, 0, ENTROPY_BINS - 1)
    flat = (np.arange(n)[:, None] * ENTROPY_BINS + position).ravel()
    counts = np.bincount(flat, minlength=n * ENTROPY_BINS).reshape(n, ENTROPY_BINS)
    p = counts / length
    entropy = -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=1)

    # Autocorrelation: a constant row has no variance and gets 0.
    centred = segments - mean[:, None]
    denominator = np.sum(centred ** 2, axis=1)
    numerator = np.sum(centred[:, :-AUTOCORRELATION_LAG] * centred[:, AUTOCORRELATION_LAG:], axis=1)
    autocorrelation = np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), 0.0)

    per_row = {"mean": mean, "min": low, "max": high, "sum": segments.sum(axis=1),
               "entropy": entropy, "autocorrelation_lag10": autocorrelation}
    return {name: float(values.mean()) for name, values in per_row.items()}


def reference_relative_difference(original: float, avatar: float) -> float:
    """Relative difference in %, 0 when both are 0 and NaN when only the original is 0."""
    if original == 0.0:
        return 0.0 if avatar == 0.0 else float("nan")
    return abs(avatar - original) / abs(original) * 100.0


def reference_utility(original_segments: np.ndarray, avatar_segments: np.ndarray) -> dict:
    """Compute the pointwise Hellinger distance (100 bins on the joint range) and feature differences in %."""
    low = min(original_segments.min(), avatar_segments.min())
    high = max(original_segments.max(), avatar_segments.max())
    if high > low:
        p, _ = np.histogram(original_segments, bins=HELLINGER_BINS, range=(low, high))
        q, _ = np.histogram(avatar_segments, bins=HELLINGER_BINS, range=(low, high))
        affinity = np.sum(np.sqrt(p / p.sum() * (q / q.sum())))
        hellinger = float(np.sqrt(max(1.0 - affinity, 0.0)))
    else:
        hellinger = 0.0
    original_features = reference_series_features(original_segments)
    avatar_features = reference_series_features(avatar_segments)
    metrics = {"hellinger": hellinger}
    for name in FEATURES:
        metrics[name] = reference_relative_difference(original_features[name], avatar_features[name])
    return metrics


def run_reference(segments: np.ndarray, recorder: StageRecorder, dtype: str,
                  cloaking_method: str) -> tuple[dict, dict]:
    """Run the six stages with numpy and scikit-learn and return (metrics, arrays for the checks)."""
    from sklearn.decomposition import PCA
    from sklearn.neighbors import NearestNeighbors

    from avatarjax.projection.fpca import quadrature_weights

    sqrt_weights = np.sqrt(quadrature_weights(SEGMENT_LENGTH, "trapezoid")).astype(dtype)

    def project():
        # Scaling by sqrt(w) makes the Euclidean PCA the FPCA in the quadrature inner product.
        weighted = segments.astype(dtype, copy=False) * sqrt_weights
        pca = PCA(n_components=NCP, svd_solver="full").fit(weighted)
        return pca, pca.transform(weighted)

    def neighbours(scores):
        search = NearestNeighbors(n_neighbors=K + 1, algorithm="brute").fit(scores)
        distances, indices = search.kneighbors(scores)
        return drop_self_column(distances, indices)

    def sample(scores, distances, indices):
        weights = reference_avatar_weights(np.random.default_rng(AVATAR_SEED), distances)
        return np.einsum("nk,nkd->nd", weights, scores[indices])

    def invert(pca, avatars):
        return pca.inverse_transform(avatars) / sqrt_weights

    def privacy(scores, avatars):
        counts = reference_closer_counts(scores, avatars, cloaking_method)
        search = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(scores)
        closest, _ = search.kneighbors(avatars)
        second = closest[:, 1]
        ratio = np.where(second > 0, closest[:, 0] / np.where(second > 0, second, 1.0), 1.0)
        metrics = {
            "hidden_rate": float(np.mean(counts >= 1) * 100.0),
            "local_cloaking": float(np.median(counts)),
            "distance_to_closest": float(np.median(closest[:, 0])),
            "closest_distance_ratio": float(np.median(ratio)),
        }
        return counts, metrics

    def utility(avatar_segments):
        return reference_utility(segments.astype(dtype, copy=False), avatar_segments)

    pca, scores = recorder.run("projection", project)
    distances, indices = recorder.run("neighbours", neighbours, scores)
    avatars = recorder.run("avatars", sample, scores, distances, indices)
    avatar_segments = recorder.run("inverse", invert, pca, avatars)
    counts, privacy_values = recorder.run("privacy", privacy, scores, avatars)
    utility_values = recorder.run("utility", utility, avatar_segments)
    # Outside the pipeline: the same search on float32 scores, the precision avatarjax searches in.
    scores32 = np.ascontiguousarray(scores, dtype=np.float32)
    start = time.perf_counter()
    NearestNeighbors(n_neighbors=K + 1, algorithm="brute").fit(scores32).kneighbors(scores32)
    extra = {"float32_neighbours_s": time.perf_counter() - start}
    logger.info("scikit-learn brute force on float32 scores took %.3f s", extra["float32_neighbours_s"])
    return {**privacy_values, **utility_values}, {"indices": indices, "counts": counts}, extra


# --------------------------------------------------------------------------- avatarjax


def run_avatarjax(segments: np.ndarray, recorder: StageRecorder, devices: str = "1") -> tuple[dict, dict]:
    """Run the six stages with avatarjax and return (metrics, arrays for the checks).

    Each stage gets the previous stage's output as JAX arrays, as in a pipeline that keeps
    them on the device. Stages 1 and 6 get the float64 numpy segments and convert them
    inside the timed call, as a caller of the library would.
    """
    import jax

    from avatarjax.avatar import neighbour_weights, weighted_neighbour_mean
    from avatarjax.metrics import privacy as privacy_metrics
    from avatarjax.metrics.utility import utility_metrics
    from avatarjax.neighbors import knn
    from avatarjax.projection.fpca import fit_fpca, inverse_transform, transform
    from avatarjax.config import parse_devices
    from avatarjax.sharding import device_mesh

    mesh = device_mesh(parse_devices(devices))

    def project():
        fpca = fit_fpca(segments, ncp=NCP)
        return fpca, transform(fpca, segments)

    def neighbours(scores):
        return knn(scores, None, K, progress=False, mesh=mesh)

    def sample(scores, distances, indices):
        weights = neighbour_weights(jax.random.key(AVATAR_SEED), distances, "avatar")
        return weighted_neighbour_mean(scores, indices, weights)

    def privacy(scores, avatars):
        counts = privacy_metrics.closer_avatar_counts(scores, avatars, progress=False, mesh=mesh)
        closest, second = privacy_metrics.closest_original_distances(scores, avatars, progress=False, mesh=mesh)
        metrics = {
            "hidden_rate": privacy_metrics.hidden_rate(counts),
            "local_cloaking": privacy_metrics.local_cloaking(counts),
            "distance_to_closest": privacy_metrics.distance_to_closest(closest),
            "closest_distance_ratio": privacy_metrics.closest_distance_ratio(closest, second),
        }
        return counts, metrics

    def utility(avatar_segments):
        entries = utility_metrics(segments, avatar_segments)
        return {name: entries[name]["value"] for name in ("hellinger", *FEATURES)}

    fpca, scores = recorder.run("projection", project)
    distances, indices = recorder.run("neighbours", neighbours, scores)
    avatars = recorder.run("avatars", sample, scores, distances, indices)
    avatar_segments = recorder.run("inverse", inverse_transform, fpca, avatars)
    counts, privacy_values = recorder.run("privacy", privacy, scores, avatars)
    utility_values = recorder.run("utility", utility, avatar_segments)
    arrays = {"indices": np.asarray(indices), "counts": counts,
              "scores": np.asarray(scores), "avatars": np.asarray(avatars)}
    return {**privacy_values, **utility_values}, arrays


# --------------------------------------------------------------------------- worker


def run_worker(implementation: str, n: int, artifact_dir: Path, dtype: str, cloaking_method: str,
               devices: str = "1") -> dict:
    """Run one implementation at one size in this process and return its results.

    Saves the neighbour indices and closer-avatar counts (and for avatarjax the scores and
    avatars) to artifact_dir/<implementation>_<n>.npz for the agreement checks. Peak RSS
    values are high-water marks of this process in MiB, so they never decrease.
    """
    segments, data_facts = build_segments(n)
    # Import the libraries first, so the setup peak includes them and stage 1 does not.
    if implementation == "avatarjax":
        import jax  # noqa: F401

        import avatarjax.avatar  # noqa: F401
        import avatarjax.metrics.privacy  # noqa: F401
        import avatarjax.metrics.utility  # noqa: F401
    else:
        # The reference takes its quadrature weights from avatarjax.projection.fpca, which imports jax.
        import avatarjax.projection.fpca  # noqa: F401
        import sklearn.decomposition  # noqa: F401
        import sklearn.metrics  # noqa: F401
        import sklearn.neighbors  # noqa: F401
    setup_peak = peak_rss_mib()

    logger.info("%s, n = %d: starting", implementation, n)
    recorder = StageRecorder(twice=implementation == "avatarjax")
    extra = {}
    if implementation == "avatarjax":
        metrics, arrays = run_avatarjax(segments, recorder, devices)
        import jax  # noqa: F811

        extra = {"backend": jax.default_backend(), "devices": devices,
                 "device_kind": jax.devices()[0].device_kind}
    else:
        metrics, arrays, extra = run_reference(segments, recorder, dtype, cloaking_method)
    np.savez(artifact_dir / f"{implementation}_{n}.npz", **arrays)

    return {
        "implementation": implementation,
        "n": n,
        "stages": recorder.stages,
        "metrics": {name: none_if_nan(value) for name, value in metrics.items()},
        "setup_peak_rss_mib": setup_peak,
        "peak_rss_mib": peak_rss_mib(),
        "data": data_facts,
        "reference_dtype": dtype if implementation == "reference" else None,
        "cloaking_method": cloaking_method if implementation == "reference" else None,
        **extra,
    }


def launch_worker(implementation: str, n: int, artifact_dir: Path, args: argparse.Namespace) -> dict:
    """Run run_worker in a fresh subprocess of this script and return its JSON result.

    The worker's log goes to this process's stderr. A failed worker yields {"error": ...}
    so the other sizes still run.
    """
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", implementation, "--n", str(n),
               "--artifact-dir", str(artifact_dir), "--reference-dtype", args.reference_dtype,
               "--cloaking-reference", args.cloaking_reference, "--devices", args.devices]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        logger.error("%s worker for n = %d failed with exit status %d; its log is above.",
                     implementation, n, completed.returncode)
        return {"implementation": implementation, "n": n,
                "error": f"worker exited with status {completed.returncode}"}
    lines = completed.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as error:
        logger.error("%s worker for n = %d printed no JSON result on its last line: %s",
                     implementation, n, error)
        return {"implementation": implementation, "n": n, "error": f"invalid worker output: {error}"}


# --------------------------------------------------------------------------- agreement


def check_agreement(n: int, results: dict, artifact_dir: Path) -> dict:
    """Compare the two implementations' neighbour sets and metrics at size n.

    Each implementation uses its own projection, neighbours and random avatar weights, so the
    metric differences include the difference between two random draws. The same-input check
    removes that: it recounts closer avatars with the reference (KDTree, float64, strict) on
    avatarjax's own scores and avatars.
    """
    if any("skipped" in results[name] for name in IMPLEMENTATIONS):
        return {"error": "the reference was skipped; no comparison"}
    if any("error" in results[name] for name in IMPLEMENTATIONS):
        return {"error": "a worker failed; no comparison"}
    reference = np.load(artifact_dir / f"reference_{n}.npz")
    avatarjax = np.load(artifact_dir / f"avatarjax_{n}.npz")

    same_sets = np.all(np.sort(reference["indices"], axis=1) == np.sort(avatarjax["indices"], axis=1), axis=1)
    checks = {"identical_neighbour_sets_share": float(same_sets.mean())}
    for name in ("hidden_rate", "local_cloaking", "distance_to_closest", "closest_distance_ratio", "hellinger"):
        reference_value = results["reference"]["metrics"][name]
        avatarjax_value = results["avatarjax"]["metrics"][name]
        checks[name] = {"reference": reference_value, "avatarjax": avatarjax_value,
                        "abs_difference": abs(reference_value - avatarjax_value)}

    recount = reference_closer_counts(avatarjax["scores"].astype(np.float64),
                                      avatarjax["avatars"].astype(np.float64), "kdtree")
    counts = avatarjax["counts"]
    checks["same_input_counts"] = {
        "equal_share": float(np.mean(recount == counts)),
        "max_abs_difference": int(np.max(np.abs(recount.astype(np.int64) - counts))),
        "hidden_rate_reference": float(np.mean(recount >= 1) * 100.0),
        "hidden_rate_avatarjax": float(np.mean(counts >= 1) * 100.0),
        "local_cloaking_reference": float(np.median(recount)),
        "local_cloaking_avatarjax": float(np.median(counts)),
    }
    return checks


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """Return the first "model name" of /proc/cpuinfo, or platform.processor() elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def busy_cpu_seconds() -> float | None:
    """Return the CPU seconds all processes have spent busy since boot, from /proc/stat."""
    try:
        with open("/proc/stat", encoding="utf-8") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal: idle and iowait are not busy. Steal is
    # counted because a hypervisor taking the CPU disturbs timings like another process does.
    jiffies = [int(value) for value in fields[1:9]]
    busy = sum(jiffies) - jiffies[3] - jiffies[4]
    return busy / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """Return the user + system CPU seconds of this process and its finished children."""
    total = 0.0
    for scope in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(scope)
        total += usage.ru_utime + usage.ru_stime
    return total


def environment_info() -> dict:
    """Describe the machine and libraries: CPU, cores, BLAS (threadpoolctl), JAX backend, versions."""
    import jax
    import scipy
    import sklearn
    import sklearn.neighbors  # noqa: F401  (loads scipy's BLAS and sklearn's OpenMP runtime)
    from threadpoolctl import threadpool_info

    pools = [{key: pool.get(key) for key in ("user_api", "internal_api", "version", "num_threads", "filepath")}
             for pool in threadpool_info()]
    thread_variables = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "XLA_FLAGS",
                        "JAX_PLATFORMS")
    return {
        "cpu_model": cpu_model(),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit_learn": sklearn.__version__,
        "jax": jax.__version__,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(device) for device in jax.devices()],
        "threadpools": pools,
        "thread_environment": {name: os.environ.get(name) for name in thread_variables},
        "load_average_before": list(os.getloadavg()),
    }


# --------------------------------------------------------------------------- report


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 0:
        # A negative compile time means the first call ran faster than the second: noise.
        return f"{seconds:.2f} (noise)"
    if abs(seconds) < 1:
        return f"{seconds:.3f}"
    if abs(seconds) < 100:
        return f"{seconds:.2f}"
    return f"{seconds:.0f}"


def environment_lines(environment: dict, created: str, command: str) -> list[str]:
    blas = [f"{pool['internal_api']} {pool['version']} ({pool['user_api']}, {pool['num_threads']} threads, "
            f"{_library_location(pool['filepath'])})" for pool in environment["threadpools"]]
    variables = ", ".join(f"{name}={value}" for name, value in environment["thread_environment"].items()
                          if value is not None) or "none set"
    return [
        f"- Date: {created}",
        f"- Command: `{command}`",
        f"- CPU: {environment['cpu_model']}, nproc = {environment['nproc']}",
        f"- Thread pools (threadpoolctl): {'; '.join(blas) or 'none found'}",
        f"- Thread environment variables: {variables}",
        f"- Python {environment['python']}, numpy {environment['numpy']}, scipy {environment['scipy']}, "
        f"scikit-learn {environment['scikit_learn']}, jax {environment['jax']} "
        f"(backend {environment['jax_backend']}: {', '.join(environment['jax_devices'])})",
    ]


def _library_location(filepath: str | None) -> str:
    """Return the folder and file name of a shared library, e.g. numpy.libs/libscipy_openblas64_.so."""
    if not filepath:
        return "unknown path"
    path = Path(filepath)
    return f"{path.parent.name}/{path.name}"


def size_table(n: int, results: dict, in_process: bool) -> list[str]:
    """Format the stage table of one size as Markdown lines."""
    reference, avatarjax = results["reference"], results["avatarjax"]
    memory = "process-wide peak RSS" if in_process else "peak RSS"
    lines = [
        f"### n = {format_count(n)} segments",
        "",
        f"| stage | reference (s) | avatarjax (s) | avatarjax / reference | avatarjax compile (s) "
        f"| reference {memory} (MiB) | avatarjax {memory} (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(result, stage, key):
        if "error" in result or "skipped" in result:
            return None
        return result["stages"][stage][key]

    totals = {name: 0.0 for name in ("reference", "avatarjax", "compile")}
    for stage in STAGES:
        reference_s = cell(reference, stage, "seconds")
        avatarjax_s = cell(avatarjax, stage, "seconds")
        compile_s = cell(avatarjax, stage, "compile_s")
        for name, value in (("reference", reference_s), ("avatarjax", avatarjax_s), ("compile", compile_s)):
            totals[name] = None if value is None or totals[name] is None else totals[name] + value
        lines.append(_table_row(stage, reference_s, avatarjax_s, compile_s,
                                cell(reference, stage, "peak_rss_mib"), cell(avatarjax, stage, "peak_rss_mib")))
    lines.append(_table_row("**total**", totals["reference"], totals["avatarjax"], totals["compile"],
                            reference.get("peak_rss_mib"), avatarjax.get("peak_rss_mib")))
    if "float32_neighbours_s" in reference:
        lines.append(_table_row("neighbours, reference in float32 (not in total)", reference["float32_neighbours_s"],
                                cell(avatarjax, "neighbours", "seconds"), None, None, None))

    notes = []
    for result in (reference, avatarjax):
        if "error" in result:
            notes.append(f"The {result['implementation']} worker failed: {result['error']}.")
        if "skipped" in result:
            notes.append(f"The {result['implementation']} was not run at this size ({result['skipped']}).")
    if all("error" not in result and "skipped" not in result for result in (reference, avatarjax)):
        notes.append(f"Peak RSS after imports and data setup, before stage 1: "
                     f"{reference['setup_peak_rss_mib']:.0f} MiB (reference), "
                     f"{avatarjax['setup_peak_rss_mib']:.0f} MiB (avatarjax).")
    return lines + [""] + notes + [""]


def _table_row(stage, reference_s, avatarjax_s, compile_s, reference_mib, avatarjax_mib) -> str:
    ratio = "n/a" if not reference_s or avatarjax_s is None else f"{avatarjax_s / reference_s:.2f}"
    reference_memory = "n/a" if reference_mib is None else f"{reference_mib:.0f}"
    avatarjax_memory = "n/a" if avatarjax_mib is None else f"{avatarjax_mib:.0f}"
    return (f"| {stage} | {format_seconds(reference_s)} | {format_seconds(avatarjax_s)} | {ratio} "
            f"| {format_seconds(compile_s)} | {reference_memory} | {avatarjax_memory} |")


def agreement_table(agreement: dict) -> list[str]:
    """Format the agreement checks of all sizes as one Markdown table, one column per size."""
    sizes = [n for n in agreement if "error" not in agreement[n]]
    if not sizes:
        return ["No agreement checks: a worker failed at every size.", ""]
    header = "| check | " + " | ".join(f"n = {format_count(n)}" for n in sizes) + " |"
    lines = [header, "| --- |" + " ---: |" * len(sizes)]

    def row(label, render):
        lines.append(f"| {label} | " + " | ".join(render(agreement[n]) for n in sizes) + " |")

    def pair(name, digits):
        return lambda check: (f"{check[name]['reference']:.{digits}f} / {check[name]['avatarjax']:.{digits}f} "
                              f"(diff {check[name]['abs_difference']:.{digits}f})")

    row("identical neighbour sets (share of rows)", lambda c: f"{c['identical_neighbour_sets_share'] * 100:.2f} %")
    row("hidden rate, % (reference / avatarjax)", pair("hidden_rate", 2))
    row("local cloaking, median (reference / avatarjax)", pair("local_cloaking", 1))
    row("distance to closest, median", pair("distance_to_closest", 4))
    row("closest distance ratio, median", pair("closest_distance_ratio", 4))
    row("Hellinger distance", pair("hellinger", 4))
    row("same input: equal closer-avatar counts (share of rows)",
        lambda c: f"{c['same_input_counts']['equal_share'] * 100:.2f} %")
    row("same input: max abs count difference", lambda c: f"{c['same_input_counts']['max_abs_difference']}")
    row("same input: hidden rate, % (reference / avatarjax)",
        lambda c: f"{c['same_input_counts']['hidden_rate_reference']:.2f} / "
                  f"{c['same_input_counts']['hidden_rate_avatarjax']:.2f}")

    hidden = max(agreement[n]["hidden_rate"]["abs_difference"] for n in sizes)
    cloaking = max(agreement[n]["local_cloaking"]["abs_difference"] for n in sizes)
    return lines + [
        "",
        f"Max abs difference over sizes between the two pipelines: hidden rate {hidden:.2f} percentage "
        f"points, median local cloaking {cloaking:.1f}. Each pipeline draws its own random avatar weights "
        "(numpy versus jax.random), so these differences include sampling noise. The same-input rows "
        "recount closer avatars with the reference (KDTree, float64, strict) on avatarjax's scores and "
        "avatars, which isolates the metric code.",
        "",
    ]


def build_report(environment: dict, created: str, command: str, results: dict, agreement: dict,
                 targets: dict, args: argparse.Namespace, disturbance: dict) -> str:
    """Assemble the Markdown printed to stdout and written to latest.md."""
    possible = next((results[n][name]["data"]["possible_starts"] for n in results for name in IMPLEMENTATIONS
                     if "data" in results[n][name]), None)
    lines = ["## Pipeline benchmark: avatarjax versus numpy + scikit-learn", ""]
    lines += environment_lines(environment, created, command)
    lines += [
        "",
        data_description(possible),
        "",
        f"Reference: numpy {environment['numpy']} + scikit-learn {environment['scikit_learn']} in "
        f"{args.reference_dtype}; local cloaking by {_cloaking_text(args.cloaking_reference)}. avatarjax: "
        "float32 arrays (its privacy module counts closer avatars in float64), each stage run twice, the second "
        "call reported; compile = first call minus second call. "
        "Ratio below 1: avatarjax is faster. "
        + ("Both implementations ran in this process, so peak RSS is a process-wide high-water mark."
           if args.in_process else
           "Each (size, implementation) ran in a fresh subprocess; peak RSS is that process's "
           "high-water mark after the stage (cumulative over stages), from getrusage ru_maxrss."),
        "",
        "Stages: " + "; ".join(f"{stage} = {text}" for stage, text in STAGE_DESCRIPTIONS.items()) + ".",
        "",
    ]
    for n in results:
        lines += size_table(n, results[n], args.in_process)
    lines += ["### Targets", ""]
    lines += target_lines(targets)
    lines += ["### Agreement", ""]
    lines += agreement_table(agreement)
    lines += [_disturbance_text(disturbance, environment["nproc"]), ""]
    return "\n".join(lines)


def _cloaking_text(method: str) -> str:
    if method == "kdtree":
        return "KDTree.query_radius with each original's own avatar distance as radius (count_only)"
    return "pairwise_distances_chunked over all (original, avatar) pairs"


def _disturbance_text(disturbance: dict, nproc: int) -> str:
    if disturbance.get("other_cpu_s") is None:
        return "Other load: not measured (/proc/stat is not readable)."
    share = disturbance["other_cpu_s"] / max(disturbance["wall_s"] * nproc, 1e-9) * 100.0
    return (f"Other load: processes other than this benchmark used {disturbance['other_cpu_s']:.0f} CPU s "
            f"during the {disturbance['wall_s']:.0f} s run ({share:.1f} % of the {nproc} cores' capacity, "
            f"hypervisor steal included); load average before the run: "
            f"{', '.join(f'{value:.2f}' for value in disturbance['load_average_before'])}.")


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder and os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.",
                                         suffix=".tmp", delete=False)
    try:
        with handle:
            handle.write(text)
        # NamedTemporaryFile creates the file with mode 0600, so apply the usual umask-based mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(handle.name, 0o666 & ~umask)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- command line


MIN_SIZE = max(NCP, K) + 2  # PCA needs n > ncp, and the self-excluding search needs n > k + 1


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES), metavar="N",
                       help=f"numbers of segments to benchmark (default: {' '.join(map(str, DEFAULT_SIZES))})")
    sizes.add_argument("--quick", action="store_true",
                       help=f"smoke test: only n = {QUICK_SIZE} segments (about 20 s on a 2-core CPU)")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="folder for pipeline_<UTC timestamp>.json and latest.md "
                             "(default: benchmarks/results in the repository)")
    parser.add_argument("--reference-dtype", choices=("float64", "float32"), default="float64",
                        help="floating-point type of the numpy + scikit-learn reference (default: float64, "
                             "the libraries' default; avatarjax always computes in float32)")
    parser.add_argument("--cloaking-reference", choices=("kdtree", "chunked"), default="kdtree",
                        help="how the reference counts closer avatars: kdtree (KDTree radius counts, "
                             "default, faster) or chunked (pairwise_distances_chunked, O(n^2))")
    parser.add_argument("--in-process", action="store_true",
                        help="run both implementations in this process instead of one fresh subprocess "
                             "each; peak RSS is then process-wide")
    parser.add_argument("--devices", default="1",
                        help="devices avatarjax splits the neighbour search and privacy counts across: "
                             "a count or \"all\" (default: 1)")
    parser.add_argument("--reference-up-to", type=int, metavar="N",
                        help="run the reference only at sizes up to N (for example on a GPU at n = 1 000 000, "
                             "where scikit-learn brute force would take hours)")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--artifact-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.quick:
        args.sizes = [QUICK_SIZE]
    too_small = [n for n in args.sizes if n < MIN_SIZE]
    if too_small:
        parser.error(f"sizes {too_small} are too small; use at least {MIN_SIZE} segments "
                     f"(ncp = {NCP}, k = {K}).")
    if args.worker and (args.n is None or args.artifact_dir is None):
        parser.error("--worker needs --n and --artifact-dir.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # JAX logs every backend it fails to find (TPU, CUDA) at INFO, but only its warnings matter here.
    logging.getLogger("jax").setLevel(logging.WARNING)

    if args.worker:
        result = run_worker(args.worker, args.n, args.artifact_dir, args.reference_dtype, args.cloaking_reference,
                            args.devices)
        print(json.dumps(result))
        return 0

    started = datetime.datetime.now(datetime.timezone.utc)
    created = started.strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join([os.path.relpath(sys.executable, REPOSITORY_ROOT) if sys.executable.startswith(
        str(REPOSITORY_ROOT)) else sys.executable, "scripts/benchmark_pipeline.py", *(argv or sys.argv[1:])])
    environment = environment_info()
    for line in environment_lines(environment, created, command):
        logger.info("%s", line[2:])
    logger.info("%s", data_description())

    busy_before, own_before, wall_before = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    results, agreement = {}, {}
    with tempfile.TemporaryDirectory(prefix="benchmark_pipeline_") as artifact_folder:
        artifact_dir = Path(artifact_folder)
        for n in args.sizes:
            results[n] = {}
            for implementation in IMPLEMENTATIONS:
                if implementation == "reference" and args.reference_up_to is not None and n > args.reference_up_to:
                    results[n][implementation] = {"implementation": implementation, "n": n,
                                                  "skipped": f"--reference-up-to {args.reference_up_to}"}
                    continue
                logger.info("running %s at n = %d", implementation, n)
                if args.in_process:
                    results[n][implementation] = run_worker(implementation, n, artifact_dir,
                                                            args.reference_dtype, args.cloaking_reference,
                                                            args.devices)
                else:
                    results[n][implementation] = launch_worker(implementation, n, artifact_dir, args)
            agreement[n] = check_agreement(n, results[n], artifact_dir)

    busy_after, own_after = busy_cpu_seconds(), own_cpu_seconds()
    disturbance = {
        "wall_s": time.perf_counter() - wall_before,
        "other_cpu_s": None if busy_before is None else (busy_after - busy_before) - (own_after - own_before),
        "load_average_before": environment["load_average_before"],
        "load_average_after": list(os.getloadavg()),
    }
    targets = check_targets(results)
    report = build_report(environment, created, command, results, agreement, targets, args, disturbance)
    print(report)

    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    record = {
        "created_utc": started.isoformat(timespec="seconds"),
        "command": command,
        "environment": environment,
        "settings": {"segment_length": SEGMENT_LENGTH, "ncp": NCP, "k": K, "segment_seed": SEGMENT_SEED,
                     "avatar_seed": AVATAR_SEED, "noise_share": NOISE_SHARE, "sizes": args.sizes,
                     "devices": args.devices, "reference_up_to": args.reference_up_to,
                     "reference_dtype": args.reference_dtype, "cloaking_reference": args.cloaking_reference,
                     "in_process": args.in_process},
        "results": {str(n): value for n, value in results.items()},
        "agreement": {str(n): value for n, value in agreement.items()},
        "targets": targets,
        "disturbance": disturbance,
        "report_markdown": report,
    }
    # A --quick smoke run keeps its own names, so it never replaces the recorded results.
    prefix = "quick" if args.quick else "pipeline"
    json_path = args.output_dir / f"{prefix}_{stamp}.json"
    markdown_path = args.output_dir / ("quick_latest.md" if args.quick else "latest.md")
    write_atomic(json_path, json.dumps(record, indent=2) + "\n")
    write_atomic(markdown_path, report + "\n")
    logger.info("wrote %s and %s", json_path, markdown_path)

    failed = [f"{result['implementation']} n={n}" for n in results for result in results[n].values()
              if "error" in result]

    if failed:
        logger.error("failed workers: %s", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
