"""Downstream validation: do anomaly detectors trained on avatars score real data like the originals'?

Protocol of one analysis, in order:
1. Cut the training stretch (assumed free of anomalies) into sliding windows of one period,
   BEFORE anonymization, and anonymize exactly those windows.
2. Fit one standardization on the original training windows; it serves both models and
   every scored window.
3. Train a seed ensemble on the original windows and one on the released avatar windows,
   with the same architecture, hyperparameters and initial parameters per seed.
4. Score every window of the whole real series with both ensembles and average the window
   errors onto time steps. The test steps are those outside the training stretch.
5. Compare: reconstruction errors, correlations, normalized differences outside the
   original model's interval, alerts per month and the labelled anomaly windows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from avatarjax.config import AnalysisConfig, AnonymizeConfig, SegmentationConfig, ValidateConfig, parse_timestamp
from avatarjax.data.loading import SensorSeries
from avatarjax.detection import comparison
from avatarjax.detection.model import ConvAutoencoder, Standardization
from avatarjax.detection.scoring import seed_mean_and_interval, time_step_scores, window_errors
from avatarjax.detection.training import TrainedEnsemble, train_ensemble
from avatarjax.errors import InputDataError
from avatarjax.pipeline import AnonymizationResult, anonymize_series, load_configured_series
from avatarjax.segmentation import sliding_windows, window_steps

logger = logging.getLogger(__name__)

MODELS = ("original", "avatar")


@dataclass
class AnalysisResult:
    """Everything one analysis measured; arrays are per time step of the whole series."""

    name: str
    config: AnalysisConfig
    anonymization: AnonymizationResult
    ensembles: dict[str, TrainedEnsemble]
    timestamps: np.ndarray
    signal: np.ndarray
    train_mask: np.ndarray
    test_mask: np.ndarray
    scores: dict[str, dict[str, np.ndarray]]  # model -> {"mean", "low", "high"}
    thresholds: dict[str, float]
    metrics: dict = field(default_factory=dict)


def format_time(timestamp) -> str:
    """Format a timestamp as "YYYY-MM-DD HH:MM", with seconds only when they are not zero."""
    timestamp = pd.Timestamp(timestamp)
    return timestamp.strftime("%Y-%m-%d %H:%M:%S" if timestamp.second else "%Y-%m-%d %H:%M")


def restrict(series: SensorSeries, start: str | None, end: str | None, *, analysis: str | None = None,
             keys: tuple[str, str] = ("start", "end")) -> SensorSeries:
    """Return the part of a series in [start, end), keeping its cleaning report and pieces.

    A null bound means the start or the end of the series. A bound outside the series is
    clipped to it with a WARNING. `analysis` and `keys` (the config keys of the two bounds,
    such as ("train_start", "train_end")) only name the period in messages. Raises
    InputDataError when the period is empty, lies outside the series or contains no step.
    """
    times = series.timestamps
    first_time, last_time = format_time(times[0]), format_time(times[-1])
    context = f"analysis {analysis!r}: " if analysis else ""
    period = f"[{keys[0]}={'null' if start is None else start}, {keys[1]}={'null' if end is None else end})"
    first = times[0] if start is None else np.datetime64(parse_timestamp(start), "ns")
    stop = times[-1] + series.period if end is None else np.datetime64(parse_timestamp(end), "ns")

    if first > times[-1] or stop <= times[0]:
        raise InputDataError(
            f"{context}the period {period} lies outside the series ({first_time} to {last_time}); "
            f"choose {keys[0]} and {keys[1]} inside it."
        )
    if first >= stop:
        raise InputDataError(f"{context}the period {period} is empty; {keys[0]} must come before {keys[1]}.")
    if start is not None and first < times[0]:
        logger.warning("%s%s=%s lies before the start of the series; clipped to its first step, %s.",
                       context, keys[0], start, first_time)
    if end is not None and stop > times[-1] + series.period:
        logger.warning("%s%s=%s lies after the end of the series; clipped so that the period ends with its "
                       "last step, %s.", context, keys[1], end, last_time)

    keep = np.nonzero((times >= first) & (times < stop))[0]
    if keep.size == 0:
        raise InputDataError(
            f"{context}the period {period} contains no step of the series, because it lies inside a gap; "
            f"move {keys[0]} or {keys[1]}."
        )
    low, high = int(keep[0]), int(keep[-1]) + 1
    pieces = tuple((max(a, low) - low, min(b, high) - low) for a, b in series.pieces if min(b, high) > max(a, low))
    return SensorSeries(timestamps=times[low:high], values=series.values[low:high], columns=series.columns,
                        period=series.period, pieces=pieces, report=series.report, source=series.source)


def load_labels(labels: str | None, data_name: str, data_path: str | None) -> list[tuple[str, str]]:
    """Return the labelled anomaly windows [(start, end), ...] of the dataset, or an empty list."""
    if labels is None:
        return []
    if labels == "nab":
        if data_path:
            logger.warning("labels=nab applies to the bundled datasets only; %s has no labels.", data_path)
            return []
        text = (resources.files("avatarjax.data") / "nab" / "combined_windows.json").read_text()
        return [tuple(pair) for pair in json.loads(text).get(f"realKnownCause/{data_name}.csv", [])]
    path = Path(labels)
    if not path.exists():
        raise InputDataError(f"labels file {labels} not found; give a JSON list of [start, end] pairs, 'nab' or null.")
    return [tuple(pair) for pair in json.loads(path.read_text())]


def _anonymize_training(train: SensorSeries, cfg: ValidateConfig) -> AnonymizationResult:
    anonymize_cfg = AnonymizeConfig(
        data=cfg.data, projection=cfg.projection, avatar=cfg.avatar,
        segmentation=SegmentationConfig(method="sliding", window=cfg.detector.window,
                                        stride=cfg.detector.train_stride),
    )
    return anonymize_series(train, anonymize_cfg)


# The original model of a training stretch does not depend on k, ncp or the avatar weights,
# only on the original windows, the detector settings and the seed. A sweep run in one
# process (Hydra's basic launcher) therefore trains and scores it once per seed and reuses
# it. Entries are keyed by a digest of everything the original model depends on.
_ORIGINAL_MODELS: dict[str, tuple[TrainedEnsemble, np.ndarray]] = {}
_ORIGINAL_MODELS_KEPT = 4


def _original_model_key(windows: np.ndarray, scored: np.ndarray, cfg: ValidateConfig) -> str:
    digest = hashlib.sha256()
    for array in (windows, scored):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(json.dumps(dataclasses.asdict(cfg.detector), sort_keys=True).encode())
    digest.update(str(cfg.avatar.seed).encode())
    return digest.hexdigest()


def _train(name: str, windows: np.ndarray, cfg: ValidateConfig, progress: bool | None) -> TrainedEnsemble:
    detector = cfg.detector
    model = ConvAutoencoder(channels=tuple(detector.channels), kernel_size=detector.kernel_size,
                            latent_channels=detector.latent_channels)
    return train_ensemble(windows, model, seeds=detector.seeds, epochs=detector.epochs,
                          batch_size=detector.batch_size, learning_rate=detector.learning_rate,
                          seed_offset=cfg.avatar.seed, label=f"{name} model", progress=progress)


def _trained_and_scored(anonymization: AnonymizationResult, scale: Standardization, scored: np.ndarray,
                        cfg: ValidateConfig, progress: bool | None):
    """Train both ensembles and return them with their window errors (seeds, windows) on `scored`.

    The original ensemble comes from the in-process cache when an earlier run trained it.
    """
    original_windows = scale.apply(anonymization.original_segments)
    key = _original_model_key(original_windows, scored, cfg)
    if key in _ORIGINAL_MODELS:
        logger.info("Reusing the original model trained earlier in this process on the same windows and settings.")
    else:
        ensemble = _train("original", original_windows, cfg, progress)
        while len(_ORIGINAL_MODELS) >= _ORIGINAL_MODELS_KEPT:
            _ORIGINAL_MODELS.pop(next(iter(_ORIGINAL_MODELS)))
        _ORIGINAL_MODELS[key] = (ensemble, _score_series("original", ensemble, scored, progress))
    original, original_errors = _ORIGINAL_MODELS[key]
    avatar = _train("avatar", scale.apply(anonymization.released_segments), cfg, progress)
    ensembles = {"original": original, "avatar": avatar}
    errors = {"original": original_errors, "avatar": _score_series("avatar", avatar, scored, progress)}
    return ensembles, errors


def _score_series(name: str, ensemble: TrainedEnsemble, windows: np.ndarray, progress: bool | None) -> np.ndarray:
    # Logged because scoring the whole series prints nothing else, and the progress bar is
    # hidden when the output is not a terminal.
    logger.info("Scoring %d windows of the whole series with the %d seeds of the %s model.",
                windows.shape[0], ensemble.n_seeds, name)
    return window_errors(ensemble, windows, label=f"{name} model", progress=progress)


def reconstruction_table(ensembles, scale: Standardization, anonymization: AnonymizationResult) -> list[dict]:
    """Mean window MSE (standardized units) of each model on each training set, mean and spread over seeds."""
    cases = [("original", "original", anonymization.original_segments),
             ("avatar", "original", anonymization.original_segments),
             ("avatar", "avatar", anonymization.released_segments),
             ("original", "avatar", anonymization.released_segments)]
    rows = []
    for model, data, windows in cases:
        per_seed = window_errors(ensembles[model], scale.apply(windows), progress=False).mean(axis=1)
        rows.append({"model": model, "data": data, "mse": float(per_seed.mean()),
                     "mse_seed_std": float(per_seed.std(ddof=1)) if per_seed.size > 1 else 0.0})
    return rows


def check_training_window(train: SensorSeries, window: int, analysis: AnalysisConfig, cfg: ValidateConfig) -> None:
    """Raise InputDataError unless one detector window fits in a contiguous piece of the training stretch."""
    longest = max(stop - start for start, stop in train.pieces)
    if window <= longest:
        return
    pieces = ""
    if len(train.pieces) > 1:
        pieces = f", in {len(train.pieces)} pieces split by long gaps, the longest {longest} steps"
    raise InputDataError(
        f"detector.window={cfg.detector.window} ({window} steps) is longer than the training stretch of analysis "
        f"{analysis.name!r} ({train.timestamps.size} steps from {format_time(train.timestamps[0])} to "
        f"{format_time(train.timestamps[-1])}{pieces}); choose a shorter detector.window or a longer training "
        f"stretch (train_start, train_end)."
    )


def count_labelled_in_training(times: np.ndarray, train_mask: np.ndarray, labels: list[tuple[str, str]],
                               analysis: str) -> int:
    """Return how many labelled anomaly windows overlap the training stretch, with a WARNING when any does.

    The protocol assumes a training stretch free of anomalies, so an overlap makes the
    comparison less meaningful.
    """
    overlapping = [window for window, steps in zip(labels, comparison.steps_inside_windows(times, labels, train_mask))
                   if steps > 0]
    if overlapping:
        spans = ", ".join(f"{format_time(start)} to {format_time(end)}" for start, end in overlapping)
        logger.warning("Analysis %s: the training stretch overlaps %d labelled anomaly windows (%s), but the "
                       "protocol assumes a stretch free of anomalies; move train_start or train_end to exclude them.",
                       analysis, len(overlapping), spans)
    return len(overlapping)


def run_analysis(series: SensorSeries, analysis: AnalysisConfig, cfg: ValidateConfig,
                 labels: list[tuple[str, str]], progress: bool | None = None) -> AnalysisResult:
    """Run the whole protocol for one training stretch."""
    window = window_steps(cfg.detector.window, series.period)
    times = series.timestamps

    # 1. Windows of the training stretch, anonymized.
    train = restrict(series, analysis.train_start, analysis.train_end, analysis=analysis.name,
                     keys=("train_start", "train_end"))
    logger.info("Analysis %s: training stretch %s to %s, %d steps.", analysis.name, format_time(train.timestamps[0]),
                format_time(train.timestamps[-1]), train.timestamps.size)
    check_training_window(train, window, analysis, cfg)
    train_mask = (times >= train.timestamps[0]) & (times <= train.timestamps[-1])
    labelled_in_training = count_labelled_in_training(times, train_mask, labels, analysis.name)
    test_period = restrict(series, analysis.test_start, analysis.test_end, analysis=analysis.name,
                           keys=("test_start", "test_end")).timestamps
    anonymization = _anonymize_training(train, cfg)

    # 2-3. One standardization, two ensembles.
    scale = Standardization.fit(anonymization.original_segments)
    all_windows = sliding_windows(series, window, stride=1)
    standardized = scale.apply(all_windows.values[:, :, 0])
    ensembles, errors = _trained_and_scored(anonymization, scale, standardized, cfg, progress)

    # 4. Scores of every real window, averaged onto time steps.
    n_steps = times.size
    scores, thresholds = {}, {}
    training_sets = {"original": anonymization.original_segments, "avatar": anonymization.released_segments}
    for name, ensemble in ensembles.items():
        per_seed = time_step_scores(errors[name], all_windows.start_index, window, n_steps)
        mean, low, high = seed_mean_and_interval(per_seed)
        scores[name] = {"mean": mean, "low": low, "high": high}
        threshold_source = "original" if cfg.detector.threshold_windows == "original" else name
        threshold_errors = window_errors(ensemble, scale.apply(training_sets[threshold_source]),
                                         progress=False).mean(axis=0)
        thresholds[name] = float(np.percentile(threshold_errors, cfg.detector.alert_percentile))

    test_mask = (times >= test_period[0]) & (times <= test_period[-1]) & ~train_mask
    test_mask &= np.isfinite(scores["original"]["mean"])
    if not test_mask.any():
        raise InputDataError(
            f"analysis {analysis.name} has no test step with a full window outside the training stretch; "
            f"widen the test period to at least one window ({cfg.detector.window})."
        )

    # 5. Comparison of the two models on the test steps.
    means = {name: scores[name]["mean"] for name in MODELS}
    outside = comparison.outside_interval_differences(test_mask, scores["original"]["mean"],
                                                      scores["original"]["low"], scores["original"]["high"],
                                                      scores["avatar"]["mean"])
    metrics = {
        "training": {"start": str(train.timestamps[0]), "end": str(train.timestamps[-1]),
                     "windows": anonymization.segments.n_segments, "window_steps": window,
                     "standardization": {"mean": scale.mean, "std": scale.std},
                     "labelled_windows_inside": labelled_in_training},
        "test_steps": int(test_mask.sum()),
        "reconstruction_error": reconstruction_table(ensembles, scale, anonymization),
        "correlation": comparison.correlations(times, test_mask, means["original"], means["avatar"]),
        "outside_interval": {key: value for key, value in outside.items() if key != "differences"},
        "thresholds": thresholds,
        "alerts_per_month": comparison.alerts_per_month(times, test_mask, means, thresholds),
        "labelled_windows": comparison.labelled_windows(times, labels, means, thresholds, test_mask),
        "final_training_loss": {name: ensembles[name].epoch_loss[:, -1].tolist() for name in MODELS},
        "privacy": anonymization.metrics["privacy"],
        "utility": anonymization.metrics["utility"],
    }
    metrics["conclusions"] = conclusions(metrics)
    result = AnalysisResult(name=analysis.name, config=analysis, anonymization=anonymization, ensembles=ensembles,
                            timestamps=times, signal=series.values[:, 0], train_mask=train_mask,
                            test_mask=test_mask, scores=scores, thresholds=thresholds, metrics=metrics)
    result.metrics["normalized_differences"] = outside["differences"]
    return result


# Rules that turn one analysis into yes/no conclusions, so two analyses can be compared.
CORRELATION_AGREEMENT = 0.7
FALSE_NEGATIVE_SHARE = 0.01


def conclusions(metrics: dict) -> dict:
    """Summarize an analysis as yes/no statements that a second analysis should reproduce."""
    total = {name: sum(row[name]["alerts"] for row in metrics["alerts_per_month"].values()) for name in MODELS}
    false_negative = metrics["outside_interval"]["classes"]["false_negative_risk"]
    return {
        f"scores correlate (overall Pearson >= {CORRELATION_AGREEMENT})":
            bool(metrics["correlation"]["overall"] >= CORRELATION_AGREEMENT),
        "avatar model raises more alerts than the original model": bool(total["avatar"] > total["original"]),
        f"false-negative risk steps below {FALSE_NEGATIVE_SHARE:.0%} of test steps":
            bool(false_negative < FALSE_NEGATIVE_SHARE * metrics["test_steps"]),
    }


def validate(cfg: ValidateConfig, progress: bool | None = None) -> list[AnalysisResult]:
    """Run every configured analysis on the configured series."""
    series = load_configured_series(cfg.data)
    labels = load_labels(cfg.labels, cfg.data.name, cfg.data.path)
    return [run_analysis(series, analysis, cfg, labels, progress) for analysis in cfg.analyses]


def agreement(results: list[AnalysisResult]) -> dict:
    """Return, per conclusion, whether every analysis reached the same yes or no."""
    if len(results) < 2:
        return {}
    keys = results[0].metrics["conclusions"].keys()
    return {key: len({result.metrics["conclusions"][key] for result in results}) == 1 for key in keys}
