"""Print segment-level and entity-level (calendar day) privacy of the bundled NAB file.

Two cases: the first 2 000 steps cut into 6-hour windows (ncp 10, k 10), and the main job's
setting (one-day windows of the whole file, ncp 20, k 20), both at stride 1 with seed 0.
Usage: `.venv/bin/python scripts/entity_privacy_figures.py` (about a minute on a 2-core CPU).
"""
import dataclasses
import numpy as np
from avatarjax.data.loading import bundled_dataset_path, load_series
from avatarjax.avatar import generate_avatars, seed_keys
from avatarjax.projection.fpca import fit_fpca, transform
from avatarjax.segmentation import sliding_windows
from avatarjax.metrics.entity_privacy import entity_of_segments, entity_privacy_metrics
from avatarjax.metrics.privacy import closer_avatar_counts, hidden_rate, local_cloaking
series = load_series(bundled_dataset_path("machine_temperature_system_failure"))
for n_steps, window in ((2000, 72), (None, 288)):
    head = series if n_steps is None else dataclasses.replace(series, timestamps=series.timestamps[:n_steps], values=series.values[:n_steps], pieces=((0, n_steps),))
    segments = sliding_windows(head, window=window, stride=1)
    curves = segments.values[:, :, 0]
    originals = np.asarray(transform(fit_fpca(curves, ncp=10 if n_steps else 20), curves))
    avatars = np.asarray(generate_avatars(seed_keys(0)[0], originals, k=10 if n_steps else 20).coordinates)
    entities = entity_of_segments(segments.start_index, segments.window_steps, head.timestamps, entity="1D")
    counts = closer_avatar_counts(originals, avatars)
    entity = entity_privacy_metrics(originals, avatars, entities)
    print(len(curves), "segments; segment hidden", hidden_rate(counts), "cloaking", local_cloaking(counts), "| entity", {k: v["value"] for k, v in entity.items()})

# Temporal exclusion in the main setting: with stride 1 the nearest neighbours of a window are
# its own shifted copies, so the avatar lands in the same hours. Neighbours whose start lies
# less than one window (288 steps = 1 day) away are excluded and the result compared with no
# exclusion, on privacy (segment and calendar day) and utility (on the value scale).
from avatarjax.config import DataConfig
from avatarjax.metrics.utility import utility_metrics
from avatarjax.pipeline import load_configured_series
from avatarjax.projection.fpca import inverse_transform
series = load_configured_series(DataConfig())
segments = sliding_windows(series, 288, 1)
curves = segments.values[:, :, 0]
fpca = fit_fpca(curves, ncp=20)
originals = np.asarray(transform(fpca, curves))
entities = entity_of_segments(segments.start_index, 288, series.timestamps, "1D")
print(f"\nexclusion band, one-day windows at stride 1 ({len(curves)} segments, ncp 20, k 20, seed 0)")
for radius in (0, 288):
    result = generate_avatars(seed_keys(0)[0], originals, k=20, exclude_radius=radius, positions=segments.start_index)
    avatars = np.asarray(result.coordinates)
    gap = np.abs(segments.start_index[:, None] - segments.start_index[np.asarray(result.neighbour_index)])
    counts = closer_avatar_counts(originals, avatars)
    entity = entity_privacy_metrics(originals, avatars, entities)
    utility = utility_metrics(curves, np.asarray(inverse_transform(fpca, avatars), dtype=np.float64))
    print(f"exclude_radius {radius:3d} steps: median neighbour start gap {np.median(gap):.0f} steps; segment hidden "
          f"{hidden_rate(counts):.4f} cloaking {local_cloaking(counts):.1f} | entity",
          {k: v["value"] for k, v in entity.items()},
          f"| hellinger {utility['hellinger']['value']:.4f} autocorrelation_lag10 {utility['autocorrelation_lag10']['value']:.4f}")
