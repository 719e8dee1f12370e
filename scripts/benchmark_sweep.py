"""Time a sweep over k and the seed: one generate_avatars call per point against one batched call.

Usage: `python scripts/benchmark_sweep.py [--ks 2 5 10 20 50] [--seeds 0 1 2 3] [--quick]`.

The coordinates are the real FPCA scores of the bundled NAB machine temperature file, built
with the pipeline's own steps and defaults: sliding one-day windows at stride 1 (about 22 400
windows of 288 five-minute steps), no resampling, ncp = 20 with trapezoid quadrature. The
sweep is every combination of --ks and --seeds (20 points by default). Two modes produce the
same avatar sets:

- one by one: for each point, `generate_avatars(seed_keys(seed)[0], coordinates, k)`, so each
  point runs its own neighbour search and its own compiled weight program per distinct k.
- batched: `generate_avatar_sets(coordinates, ks, seeds)`, one neighbour search with
  k_max = max(ks) and one jitted call vmapped over all points.

Each mode runs in a fresh subprocess of this script (`--worker one_by_one|batched`), because
ru_maxrss is the high-water mark of the whole process, so only a fresh one gives the peak
memory of one mode. A worker builds the coordinates and runs the whole sweep once as a
warm-up, which includes compilation, then --repeats more times. The median of those is the
steady-state time, and the warm-up minus that median is reported as compile time. The workers save their
avatar coordinates, and the parent reports the max abs difference between the two modes.

The report goes to stdout and to benchmarks/results/sweep_latest.md, with everything measured
in benchmarks/results/sweep_latest.json (--quick: quick_sweep.md and .json, on about 1 900
windows at stride 12). docs/benchmark_sweep.md describes the benchmark and the recorded results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# scripts/ is on sys.path when this file runs as a script, so the pipeline benchmark's
# machine and file helpers are shared rather than copied.
from benchmark_pipeline import (busy_cpu_seconds, cpu_model, format_count, format_seconds, own_cpu_seconds,
                                peak_rss_mib, write_atomic)

logger = logging.getLogger("avatarjax.benchmark")

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT_DIR = REPOSITORY_ROOT / "benchmarks" / "results"

DEFAULT_KS = (2, 5, 10, 20, 50)
DEFAULT_SEEDS = (0, 1, 2, 3)
WINDOW = "1D"
STRIDE = 1
QUICK_STRIDE = 12  # about 1 900 windows instead of 22 400
NCP = 20
MODES = ("one_by_one", "batched")
MODE_LABELS = {"one_by_one": "one by one (generate_avatars per point)",
               "batched": "batched (generate_avatar_sets)"}


# --------------------------------------------------------------------------- worker


def build_coordinates(stride: int) -> tuple[np.ndarray, dict]:
    """Return the FPCA scores (n, NCP) of the bundled file's one-day windows, with facts about them."""
    import jax

    from avatarjax.config import DataConfig
    from avatarjax.pipeline import load_configured_series
    from avatarjax.projection.fpca import fit_fpca, transform
    from avatarjax.resampling import resample
    from avatarjax.segmentation import segment_series

    data = DataConfig()
    series = load_configured_series(data)
    segments = segment_series(series, "sliding", WINDOW, stride)
    curves = resample(segments.values[:, :, 0], segments.window_steps)
    fpca = fit_fpca(curves, NCP)
    coordinates = np.asarray(jax.block_until_ready(transform(fpca, curves)))
    facts = {"dataset": data.name, "window": WINDOW, "window_steps": segments.window_steps, "stride": stride,
             "n_segments": segments.n_segments, "ncp": fpca.ncp,
             "explained_variance_share": float(np.sum(np.asarray(fpca.explained_variance_ratio)))}
    return coordinates, facts


def run_worker(mode: str, ks: list[int], seeds: list[int], stride: int, repeats: int, method: str,
               artifact_dir: Path) -> dict:
    """Time one mode on the whole sweep and save its avatar coordinates (P, n, d) for the comparison."""
    import jax

    from avatarjax.avatar import generate_avatars, seed_keys
    from avatarjax.avatar_sweep import generate_avatar_sets
    from avatarjax.neighbors import knn

    coordinates, facts = build_coordinates(stride)
    setup_rss = peak_rss_mib()

    def one_by_one():
        return np.stack([np.asarray(jax.block_until_ready(
            generate_avatars(seed_keys(seed)[0], coordinates, k, method, progress=False).coordinates))
            for k, seed in zip(ks, seeds)])

    def batched():
        sets = generate_avatar_sets(coordinates, ks, seeds, method, progress=False)
        return np.asarray(jax.block_until_ready(sets.coordinates))

    sweep = one_by_one if mode == "one_by_one" else batched
    busy_before, own_before = busy_cpu_seconds(), own_cpu_seconds()
    start = time.perf_counter()
    avatars = sweep()
    warm_up_s = time.perf_counter() - start
    steady_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        sweep()
        steady_s.append(time.perf_counter() - start)
    wall_s = warm_up_s + sum(steady_s)
    busy_after, own_after = busy_cpu_seconds(), own_cpu_seconds()

    result = {"mode": mode, "facts": facts, "setup_peak_rss_mib": setup_rss, "warm_up_s": warm_up_s,
              "steady_s": steady_s, "median_s": statistics.median(steady_s),
              "compile_s": warm_up_s - statistics.median(steady_s), "peak_rss_mib": peak_rss_mib(),
              "wall_s": wall_s, "own_cpu_s": own_after - own_before,
              "other_cpu_s": None if busy_before is None else (busy_after - busy_before) - (own_after - own_before)}

    if mode == "batched":
        # The shared neighbour search alone, so the report can split the batched time.
        k_max = max(ks)
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(knn(coordinates, None, k_max, progress=False))
            timings.append(time.perf_counter() - start)
        result["knn_k_max_median_s"] = statistics.median(timings)

    np.save(artifact_dir / f"{mode}.npy", avatars)
    return result


def launch_worker(mode: str, artifact_dir: Path, args: argparse.Namespace) -> dict:
    """Run run_worker in a fresh subprocess of this script and return its JSON result."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", mode, "--artifact-dir", str(artifact_dir),
               "--ks", *map(str, args.ks), "--seeds", *map(str, args.seeds), "--repeats", str(args.repeats),
               "--method", args.method, *(["--quick"] if args.quick else [])]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"the {mode} worker failed with exit status {completed.returncode}; its log is above.")
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- report


def compare(artifact_dir: Path, ks: list[int], seeds: list[int]) -> dict:
    """Return the max abs difference between the modes' avatar coordinates, overall and per point."""
    one_by_one = np.load(artifact_dir / "one_by_one.npy")
    batched = np.load(artifact_dir / "batched.npy")
    difference = np.abs(one_by_one.astype(np.float64) - batched)
    per_point = difference.max(axis=(1, 2))
    return {"max_abs_difference": float(difference.max()),
            "max_abs_coordinate": float(np.abs(one_by_one).max()),
            "per_point": [{"k": k, "seed": seed, "max_abs_difference": float(value)}
                          for k, seed, value in zip(ks, seeds, per_point)]}


def environment_info() -> dict:
    import jax

    return {"cpu_model": cpu_model(),
            "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "python": sys.version.split()[0], "numpy": np.__version__, "jax": jax.__version__,
            "jax_backend": jax.default_backend(), "xla_flags": os.environ.get("XLA_FLAGS"),
            "load_average_before": list(os.getloadavg())}


def build_report(environment: dict, created: str, command: str, args: argparse.Namespace, ks: list[int],
                 seeds: list[int], results: dict, agreement: dict) -> str:
    """Format the measurements as a Markdown page."""
    facts = results["batched"]["facts"]
    one_by_one, batched = results["one_by_one"], results["batched"]
    points = len(ks)
    # /proc/stat counts in clock ticks, so an idle machine can show a small negative remainder.
    other = max(sum(result["other_cpu_s"] or 0.0 for result in results.values()), 0.0)
    wall = sum(result["wall_s"] for result in results.values())
    lines = [
        "# Sweep benchmark: one by one against batched",
        "",
        f"- Date: {created}",
        f"- Command: `{command}`",
        f"- CPU: {environment['cpu_model']}, nproc = {environment['nproc']}",
        f"- Python {environment['python']}, numpy {environment['numpy']}, jax {environment['jax']} "
        f"(backend {environment['jax_backend']}), XLA_FLAGS={environment['xla_flags'] or 'unset'}",
        f"- Data: {format_count(facts['n_segments'])} sliding windows of {facts['window_steps']} steps "
        f"({facts['window']}, stride {facts['stride']}) of {facts['dataset']}.csv, FPCA with ncp = "
        f"{facts['ncp']} ({facts['explained_variance_share'] * 100:.1f} % of the variance)",
        f"- Sweep: {points} points, k in {{{', '.join(map(str, sorted(set(ks))))}}} x seeds "
        f"{{{', '.join(map(str, sorted(set(seeds))))}}}, weights \"{args.method}\"",
        f"- Other load: processes other than this benchmark used {other:.0f} CPU s during the "
        f"{wall:.0f} s of timed work ({other / max(wall * environment['nproc'], 1e-9) * 100:.1f} % of the "
        f"cores' capacity); load average before the run: "
        f"{', '.join(f'{value:.2f}' for value in environment['load_average_before'])}",
        "",
        f"| mode | steady state (s, median of {args.repeats}) | per point (s) | compile (s) "
        f"| warm-up pass (s) | peak RSS (MiB) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for mode in MODES:
        result = results[mode]
        lines.append(f"| {MODE_LABELS[mode]} | {format_seconds(result['median_s'])} "
                     f"| {format_seconds(result['median_s'] / points)} | {format_seconds(result['compile_s'])} "
                     f"| {format_seconds(result['warm_up_s'])} | {result['peak_rss_mib']:.0f} |")
    lines += [
        "",
        f"Steady-state ratio one by one / batched: {one_by_one['median_s'] / batched['median_s']:.1f}. "
        f"Warm-up ratio (compilation included): {one_by_one['warm_up_s'] / batched['warm_up_s']:.1f}.",
        "",
        f"Of the batched steady-state time, the shared {max(args.ks)}-NN search alone takes "
        f"{format_seconds(batched['knn_k_max_median_s'])} s (median of {args.repeats}).",
        "",
        f"Peak RSS after building the coordinates, before the sweep: {one_by_one['setup_peak_rss_mib']:.0f} MiB "
        f"(one by one), {batched['setup_peak_rss_mib']:.0f} MiB (batched).",
        "",
        f"Max abs difference between the two modes' avatar coordinates, over all points: "
        f"{agreement['max_abs_difference']:.2e} (largest coordinate: {agreement['max_abs_coordinate']:.1f}).",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- command line


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS), metavar="K",
                        help=f"values of k, the number of neighbours (default: {' '.join(map(str, DEFAULT_KS))})")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS), metavar="SEED",
                        help=f"avatar seeds (default: {' '.join(map(str, DEFAULT_SEEDS))}); the sweep is every "
                             f"combination of --ks and --seeds")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed passes after the warm-up pass; the median is reported (default: 3)")
    parser.add_argument("--method", choices=("avatar", "dirichlet"), default="avatar",
                        help="weight method (default: avatar)")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke test on windows at stride {QUICK_STRIDE} (about 1 900), written to "
                             f"quick_sweep.md and .json")
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR,
                        help="folder for sweep_latest.json and sweep_latest.md (default: benchmarks/results)")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--artifact-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats} is invalid; use at least 1.")
    if min(args.ks) < 1:
        parser.error(f"--ks {' '.join(map(str, args.ks))} is invalid; every k must be at least 1.")
    if args.worker and args.artifact_dir is None:
        parser.error("--worker needs --artifact-dir.")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # JAX logs every backend it fails to find (TPU, CUDA) at INFO, but only its warnings matter here.
    logging.getLogger("jax").setLevel(logging.WARNING)

    from avatarjax.avatar_sweep import sweep_grid

    ks, seeds = sweep_grid(sorted(set(args.ks)), sorted(set(args.seeds)))
    stride = QUICK_STRIDE if args.quick else STRIDE
    if args.worker:
        result = run_worker(args.worker, ks, seeds, stride, args.repeats, args.method, args.artifact_dir)
        print(json.dumps(result))
        return 0

    started = datetime.datetime.now(datetime.timezone.utc)
    created = started.strftime("%Y-%m-%d %H:%M UTC")
    python = os.path.relpath(sys.executable, REPOSITORY_ROOT) if sys.executable.startswith(
        str(REPOSITORY_ROOT)) else sys.executable
    command = " ".join([python, "scripts/benchmark_sweep.py", *(argv if argv is not None else sys.argv[1:])])
    environment = environment_info()
    logger.info("sweep of %d points on %s, nproc = %d", len(ks), environment["cpu_model"], environment["nproc"])

    results = {}
    with tempfile.TemporaryDirectory(prefix="benchmark_sweep_") as artifact_folder:
        artifact_dir = Path(artifact_folder)
        for mode in MODES:
            logger.info("running %s", mode)
            results[mode] = launch_worker(mode, artifact_dir, args)
        agreement = compare(artifact_dir, ks, seeds)

    report = build_report(environment, created, command, args, ks, seeds, results, agreement)
    print(report)
    record = {"created_utc": started.isoformat(timespec="seconds"), "command": command, "environment": environment,
              "settings": {"ks": ks, "seeds": seeds, "repeats": args.repeats, "method": args.method,
                           "stride": stride, "window": WINDOW, "ncp": NCP},
              "results": results, "agreement": agreement,
              "ratio_one_by_one_over_batched": results["one_by_one"]["median_s"] / results["batched"]["median_s"],
              "report_markdown": report}
    # A --quick smoke run keeps its own names, so it never replaces the recorded results.
    prefix = "quick_sweep" if args.quick else "sweep_latest"
    write_atomic(args.output_dir / f"{prefix}.json", json.dumps(record, indent=2) + "\n")
    write_atomic(args.output_dir / f"{prefix}.md", report + "\n")
    logger.info("wrote %s.json and %s.md in %s", prefix, prefix, args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
