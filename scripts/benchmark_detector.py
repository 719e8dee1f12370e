"""Time the detector's training step in flax against PyTorch eager, and the seed ensemble's modes.

Usage: `python scripts/benchmark_detector.py [--quick] [--output PATH]`.

Everything runs in this one process, one measurement after the other, never at the same time:

1. One Adam step (MSE loss) of the default ConvAutoencoder (DetectorConfig: channels 8, 16, 32,
   kernel 5, latent 4) on a batch of 256 windows of 288 steps. A jax.jit step of the flax
   model is compared with the same architecture written with torch.nn.Conv1d and run
   eagerly. Both take 3 warm-up steps, then the median of 20 timed steps is reported. The
   flax compile time (trace, lowering and XLA compilation) is measured on its own, ahead of
   time.
2. One epoch of a 10-seed ensemble on 4096 windows (16 steps of 256) through
   `train_ensemble`: (a) seed_mode="vmap", (b) seed_mode="unroll", (c) a Python loop of 10
   single-seed calls. Each runs twice. The second run is the reported time, and the first,
   which includes compilation, is reported too.
3. Two measurements that explain part 2 on CPU. A vmapped 10-seed step is compared with 10
   single steps, because vmap turns each convolution into a grouped convolution. One epoch
   as a lax.scan (one XLA while loop) is compared with the same steps as separate jitted calls.

The windows are standard normal noise from numpy default_rng(0), because the cost of a
convolution does not depend on the values. PyTorch is optional: without it, the PyTorch row
is skipped and the script prints how to install it.

The Markdown report goes to stdout and to --output (default
benchmarks/results/detector_latest.md), with a JSON record of the same name next to it.
--quick writes benchmarks/results/quick_detector.md and .json instead.
docs/benchmark_detector.md describes the measurements and the recorded results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import platform
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# benchmark_pipeline.py is in the folder of this file. Python puts that folder on sys.path only
# when the file runs as a script, so add it for imports from elsewhere (tests, notebooks).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark_pipeline import busy_cpu_seconds, cpu_model, own_cpu_seconds, write_atomic  # noqa: E402

logger = logging.getLogger("avatarjax.benchmark")

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPOSITORY_ROOT / "benchmarks" / "results" / "detector_latest.md"
QUICK_OUTPUT = REPOSITORY_ROOT / "benchmarks" / "results" / "quick_detector.md"
# The `torch` extra of pyproject.toml pins the same version.
TORCH_INSTALL_COMMAND = ".venv/bin/pip install torch==2.13.0"
DATA_SEED = 0  # numpy default_rng seed of the windows
LEARNING_RATE = 1e-3  # DetectorConfig default. Both frameworks use Adam with their default eps of 1e-8.
VMAP_SPEEDUP_TARGET = 3.0  # the sequential loop's time over the vmapped ensemble's time


@dataclass(frozen=True)
class Sizes:
    """Problem sizes and repeat counts of one benchmark run."""

    window_length: int  # steps per window
    batch_size: int  # windows per step
    warmup_steps: int  # untimed steps before the timed ones, per framework
    timed_steps: int  # timed steps of part 1, whose median is reported
    ensemble_windows: int  # training windows of part 2, so one epoch is ensemble_windows // batch_size steps
    seeds: int  # models of the ensemble
    vmapped_step_repeats: int  # timed calls of the vmapped step in part 3

    @property
    def epoch_steps(self) -> int:
        return self.ensemble_windows // self.batch_size


FULL_SIZES = Sizes(window_length=288, batch_size=256, warmup_steps=3, timed_steps=20, ensemble_windows=4096,
                   seeds=10, vmapped_step_repeats=5)
# Tiny sizes that run every code path. The timings mean nothing. On a 2-core CPU the run takes
# about a minute, nearly all of it compilation.
QUICK_SIZES = Sizes(window_length=64, batch_size=32, warmup_steps=1, timed_steps=5, ensemble_windows=128,
                    seeds=3, vmapped_step_repeats=2)


# --------------------------------------------------------------------------- models


def build_flax_model():
    """Return the ConvAutoencoder with the DetectorConfig defaults."""
    from avatarjax.config import DetectorConfig
    from avatarjax.detection.model import ConvAutoencoder

    config = DetectorConfig()
    return ConvAutoencoder(channels=tuple(config.channels), kernel_size=config.kernel_size,
                           latent_channels=config.latent_channels)


def same_padding(length: int, kernel_size: int, stride: int) -> tuple[int, int]:
    """Return the (left, right) padding of XLA's SAME rule for one spatial axis.

    The output has ceil(length / stride) steps. The padding needed for that is split with
    the smaller half on the left, so kernel 5, stride 2 and an even length pad 1 left and 2 right.
    """
    output_length = -(-length // stride)
    total = max((output_length - 1) * stride + kernel_size - length, 0)
    return total // 2, total - total // 2


def build_torch_model(flax_model):
    """Return a torch.nn.Module with the layers, padding and upsampling of the flax model.

    Convolutions run in (batch, channels, length) layout, the PyTorch convention, so their
    weights have shape (out, in, kernel) where flax stores (kernel, in, out).
    """
    import torch
    from torch import nn
    from torch.nn import functional

    class TorchConvAutoencoder(nn.Module):
        def __init__(self, channels, kernel_size, latent_channels):
            super().__init__()
            self.kernel_size = kernel_size
            self.depth = len(channels)
            widths = [1, *channels]
            self.encoder = nn.ModuleList(nn.Conv1d(widths[i], widths[i + 1], kernel_size, stride=2)
                                         for i in range(self.depth))
            self.latent = nn.Conv1d(channels[-1], latent_channels, 1)
            decoder_widths = [latent_channels, *reversed(channels)]
            self.decoder = nn.ModuleList(nn.Conv1d(decoder_widths[i], decoder_widths[i + 1], kernel_size)
                                         for i in range(self.depth))
            self.output = nn.Conv1d(channels[0], 1, kernel_size)

        def pad_same(self, hidden, stride):
            return functional.pad(hidden, same_padding(hidden.shape[-1], self.kernel_size, stride))

        def forward(self, windows):
            length = windows.shape[-1]
            factor = 2 ** self.depth
            padded_length = -(-length // factor) * factor
            hidden = windows[:, None, :]
            if padded_length > length:
                hidden = functional.pad(hidden, (0, padded_length - length), mode="replicate")

            for conv in self.encoder:
                hidden = torch.relu(conv(self.pad_same(hidden, 2)))
            hidden = self.latent(hidden)

            for conv in self.decoder:
                hidden = functional.interpolate(hidden, scale_factor=2, mode="nearest")
                hidden = torch.relu(conv(self.pad_same(hidden, 1)))
            hidden = self.output(self.pad_same(hidden, 1))
            return hidden[:, 0, :length]

    return TorchConvAutoencoder(tuple(flax_model.channels), flax_model.kernel_size, flax_model.latent_channels)


def torch_convolutions(torch_model) -> list:
    """Return the Conv1d layers in the order flax creates them (Conv_0, Conv_1, ...)."""
    return [*torch_model.encoder, torch_model.latent, *torch_model.decoder, torch_model.output]


def copy_flax_parameters(flax_params: dict, torch_model) -> None:
    """Overwrite the torch weights with the flax ones, so both models compute the same function."""
    import torch

    layers = flax_params["params"]
    names = sorted(layers, key=lambda name: int(name.rsplit("_", 1)[1]))
    convolutions = torch_convolutions(torch_model)
    if len(names) != len(convolutions):
        raise RuntimeError(f"the flax model has {len(names)} convolutions and the torch model "
                           f"{len(convolutions)}; the two architectures differ.")
    with torch.no_grad():
        for name, conv in zip(names, convolutions):
            kernel = np.asarray(layers[name]["kernel"]).transpose(2, 1, 0)
            conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel)))
            conv.bias.copy_(torch.from_numpy(np.array(layers[name]["bias"])))


# --------------------------------------------------------------------------- part 1: one step


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e3


def time_calls(call, warmup: int, repeats: int) -> tuple[list[float], float]:
    """Run call() warmup times untimed, then repeats times.

    Return the wall seconds of each timed call, and the CPU seconds this process used per
    wall second over all timed calls (2.0 means two cores busy, including threads that spin
    while they wait). call() must wait for its own results, so that each time covers the
    whole computation.
    """
    for _ in range(warmup):
        call()
    seconds = []
    cpu_before, wall_before = own_cpu_seconds(), time.perf_counter()
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    busy_cores = (own_cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
    return seconds, busy_cores


def make_flax_step(model, optimizer):
    """Return train_step(state, batch) -> (state, loss) for one model, where state = (params, opt_state)."""
    import jax
    import jax.numpy as jnp
    import optax

    def mse(params, batch):
        return jnp.mean((model.apply(params, batch) - batch) ** 2)

    def train_step(state, batch):
        params, opt_state = state
        loss, grads = jax.value_and_grad(mse)(params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    return train_step


def compile_ahead(function, *arguments) -> tuple[object, float, str]:
    """Compile function with jax.jit for these arguments and return (executable, seconds, StableHLO text).

    The executable donates its first argument (the training state), as train_ensemble's step does.
    """
    import jax

    start = time.perf_counter()
    lowered = jax.jit(function, donate_argnums=(0,)).lower(*arguments)
    executable = lowered.compile()
    return executable, time.perf_counter() - start, lowered.as_text()


def fresh_state(params, optimizer) -> tuple:
    """Return (copy of params, new optimizer state), so that params outlive a step that donates its state."""
    import jax
    import jax.numpy as jnp

    params = jax.tree_util.tree_map(jnp.copy, params)
    return params, optimizer.init(params)


def parameter_count(tree) -> int:
    import jax

    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(tree)))


def measure_flax_step(model, windows: np.ndarray, sizes: Sizes) -> dict:
    """Time one jitted Adam step of the flax model, where each call takes the next batch of windows."""
    import jax
    import optax

    optimizer = optax.adam(LEARNING_RATE)
    batches = [jax.device_put(windows[start:start + sizes.batch_size])
               for start in range(0, windows.shape[0] - sizes.batch_size + 1, sizes.batch_size)]
    params = model.init(jax.random.key(0), batches[0][:1])
    step, compile_s, _ = compile_ahead(make_flax_step(model, optimizer), fresh_state(params, optimizer), batches[0])
    state = fresh_state(params, optimizer)
    calls = 0

    def call():
        nonlocal state, calls
        state, loss = step(state, batches[calls % len(batches)])
        loss.block_until_ready()
        calls += 1

    seconds, busy_cores = time_calls(call, sizes.warmup_steps, sizes.timed_steps)
    return {"median_ms": median_ms(seconds), "min_ms": min(seconds) * 1e3, "max_ms": max(seconds) * 1e3,
            "busy_cores": busy_cores, "compile_s": compile_s, "parameters": parameter_count(params), "step_seconds": seconds}


def measure_torch_step(flax_model, windows: np.ndarray, sizes: Sizes, threads: int) -> dict:
    """Time one eager Adam step of the PyTorch copy of the model, with threads intra-op threads.

    Before timing, the torch model gets the flax initial weights, and the largest difference
    between the two models' outputs on one batch is recorded. It shows that the architectures
    match, layer for layer.
    """
    import jax
    import torch
    from torch.nn import functional

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    torch_model = build_torch_model(flax_model)

    check_batch = windows[:sizes.batch_size]
    flax_params = flax_model.init(jax.random.key(0), check_batch[:1])
    copy_flax_parameters(flax_params, torch_model)
    with torch.no_grad():
        torch_output = torch_model(torch.from_numpy(check_batch)).numpy()
    flax_output = np.asarray(flax_model.apply(flax_params, check_batch))
    output_difference = float(np.max(np.abs(torch_output - flax_output)))

    optimizer = torch.optim.Adam(torch_model.parameters(), lr=LEARNING_RATE)
    batches = [torch.from_numpy(windows[start:start + sizes.batch_size])
               for start in range(0, windows.shape[0] - sizes.batch_size + 1, sizes.batch_size)]
    calls = 0

    def call():
        nonlocal calls
        batch = batches[calls % len(batches)]
        optimizer.zero_grad(set_to_none=True)
        loss = functional.mse_loss(torch_model(batch), batch)
        loss.backward()
        optimizer.step()
        calls += 1

    seconds, busy_cores = time_calls(call, sizes.warmup_steps, sizes.timed_steps)
    return {"median_ms": median_ms(seconds), "min_ms": min(seconds) * 1e3, "max_ms": max(seconds) * 1e3,
            "busy_cores": busy_cores, "parameters": sum(parameter.numel() for parameter in torch_model.parameters()),
            "threads": torch.get_num_threads(), "max_output_difference": output_difference,
            "step_seconds": seconds}


# --------------------------------------------------------------------------- part 2: ensemble


def run_ensemble(mode: str, model, windows: np.ndarray, sizes: Sizes) -> tuple[float, np.ndarray]:
    """Train one epoch of the seed ensemble in one mode and return (wall seconds, epoch loss per seed).

    mode "vmap" and "unroll" are one train_ensemble call with that seed_mode. mode "loop" makes
    one single-seed call per seed, with seed_offset s so that seed s gets the same PRNG key as
    in the ensemble call, and seed_mode "unroll", which for one seed is the plain step.
    """
    import jax

    from avatarjax.detection.training import train_ensemble

    settings = {"epochs": 1, "batch_size": sizes.batch_size, "learning_rate": LEARNING_RATE, "progress": False}
    start = time.perf_counter()
    if mode == "loop":
        losses = []
        for seed in range(sizes.seeds):
            trained = train_ensemble(windows, model, seeds=1, seed_offset=seed, seed_mode="unroll", **settings)
            jax.block_until_ready(trained.params)
            losses.append(trained.epoch_loss[0])
        loss = np.stack(losses)
    else:
        trained = train_ensemble(windows, model, seeds=sizes.seeds, seed_mode=mode, **settings)
        jax.block_until_ready(trained.params)
        loss = trained.epoch_loss
    return time.perf_counter() - start, loss


def measure_ensemble(model, windows: np.ndarray, sizes: Sizes) -> dict:
    """Run each ensemble mode twice. The first run includes jit tracing and XLA compilation."""
    results, losses = {}, {}
    for mode in ("vmap", "unroll", "loop"):
        logger.info("ensemble mode %s: first run (compiles), then the timed second run", mode)
        first_s, _ = run_ensemble(mode, model, windows, sizes)
        second_s, losses[mode] = run_ensemble(mode, model, windows, sizes)
        results[mode] = {"first_s": first_s, "second_s": second_s,
                         "per_step_ms": second_s / sizes.epoch_steps * 1e3}
    # All three modes train the same seeds on the same batches, so their losses must agree up
    # to float rounding. A larger difference would mean that the modes compute different things.
    results["max_loss_difference"] = {
        mode: float(np.max(np.abs(losses[mode] - losses["loop"]))) for mode in ("vmap", "unroll")}
    return results


# --------------------------------------------------------------------------- part 3: causes


def measure_causes(model, windows: np.ndarray, sizes: Sizes, single_step_ms: float) -> dict:
    """Time a vmapped all-seed step and a lax.scan epoch against their unbatched, unlooped equivalents.

    The StableHLO text of each program is searched for the construct that makes it slow:
    convolutions with feature_group_count equal to the seed count, and a while loop.
    """
    import jax
    import optax

    optimizer = optax.adam(LEARNING_RATE)
    train_step = make_flax_step(model, optimizer)
    batch = sizes.batch_size

    # Vmapped step: every seed has its own parameters and its own batch, as in train_ensemble.
    keys = jax.random.split(jax.random.key(0), sizes.seeds)
    params = jax.vmap(lambda key: model.init(key, windows[:1]))(keys)
    rows = np.arange(sizes.seeds * batch) % windows.shape[0]
    seed_batches = jax.device_put(windows[rows].reshape(sizes.seeds, batch, -1))
    state = (params, jax.vmap(optimizer.init)(params))
    vmapped, vmapped_compile_s, vmapped_text = compile_ahead(jax.vmap(train_step), state, seed_batches)

    def vmapped_call():
        nonlocal state
        state, loss = vmapped(state, seed_batches)
        loss.block_until_ready()

    vmapped_seconds, _ = time_calls(vmapped_call, 1, sizes.vmapped_step_repeats)
    group_counts = [int(count) for count in re.findall(r"feature_group_count = (\d+)", vmapped_text)]

    # One epoch as one lax.scan against the same steps as separate calls of one jitted step.
    single_params = model.init(jax.random.key(0), windows[:1])
    epoch_batches = jax.device_put(windows[:sizes.epoch_steps * batch].reshape(sizes.epoch_steps, batch, -1))

    def scanned_epoch(state, batches):
        return jax.lax.scan(train_step, state, batches)

    scanned, scan_compile_s, scan_text = compile_ahead(scanned_epoch, fresh_state(single_params, optimizer),
                                                       epoch_batches)
    start = time.perf_counter()
    _, scan_losses = scanned(fresh_state(single_params, optimizer), epoch_batches)
    scan_losses.block_until_ready()
    scan_s = time.perf_counter() - start

    step, _, _ = compile_ahead(train_step, fresh_state(single_params, optimizer), epoch_batches[0])
    step(fresh_state(single_params, optimizer), epoch_batches[0])[1].block_until_ready()  # warm-up call
    loop_state = fresh_state(single_params, optimizer)
    start = time.perf_counter()
    for index in range(sizes.epoch_steps):
        loop_state, loss = step(loop_state, epoch_batches[index])
    loss.block_until_ready()
    separate_s = time.perf_counter() - start

    return {
        "vmapped_step_ms": median_ms(vmapped_seconds),
        "vmapped_compile_s": vmapped_compile_s,
        "single_steps_ms": single_step_ms * sizes.seeds,
        "grouped_convolutions": sum(count == sizes.seeds for count in group_counts),
        "convolutions": len(group_counts),
        "scan_s": scan_s,
        "scan_compile_s": scan_compile_s,
        "scan_has_while_loop": "stablehlo.while" in scan_text,
        "separate_steps_s": separate_s,
    }


# --------------------------------------------------------------------------- report


def environment_info(threads: int) -> dict:
    """Describe the machine and the library versions."""
    import flax
    import jax
    import optax

    try:
        import torch
        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    return {
        "cpu_model": cpu_model(),
        "nproc": threads,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _distribution_version("jaxlib"),
        "flax": flax.__version__,
        "optax": optax.__version__,
        "torch": torch_version,
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(device) for device in jax.devices()],
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "load_average_before": list(os.getloadavg()),
    }


def _distribution_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def format_ms(value: float) -> str:
    return f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def format_s(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def build_report(record: dict) -> str:
    """Render the Markdown report of one run from its JSON record."""
    environment, sizes = record["environment"], Sizes(**record["sizes"])
    flax_step, torch_step = record["step"]["flax"], record["step"].get("torch")
    ensemble, causes, disturbance = record["ensemble"], record["causes"], record["disturbance"]
    lines = [
        "# Detector training benchmark",
        "",
        f"- Date: {record['created']}",
        f"- Command: `{record['command']}`",
        f"- CPU: {environment['cpu_model']}, nproc = {environment['nproc']}",
        f"- Python {environment['python']}, numpy {environment['numpy']}, jax {environment['jax']} "
        f"(jaxlib {environment['jaxlib']}, backend {environment['jax_backend']}: "
        f"{', '.join(environment['jax_devices'])}), flax {environment['flax']}, optax {environment['optax']}, "
        f"torch {environment['torch'] or 'not installed'}",
        f"- Threads: XLA uses its default CPU thread pool (XLA_FLAGS={environment['xla_flags'] or 'unset'}); "
        + (f"torch.set_num_threads({torch_step['threads']}), the number of cores."
           if torch_step else "PyTorch was not run."),
        f"- Model: DetectorConfig defaults (channels 8, 16, 32, kernel 5, latent 4), Adam with learning "
        f"rate {LEARNING_RATE}, MSE loss, windows of {sizes.window_length} steps, standard normal data.",
        f"- {disturbance_text(disturbance, environment['nproc'])}",
    ]
    if record["quick"]:
        lines.append("- QUICK RUN: tiny sizes for a smoke check; the timings mean nothing.")

    lines += [
        "",
        f"## One training step (batch {sizes.batch_size})",
        "",
        f"Median of {sizes.timed_steps} timed steps after {sizes.warmup_steps} warm-up "
        f"step{'s' if sizes.warmup_steps != 1 else ''}, on the same windows in both frameworks.",
        "",
        "| implementation | median (ms) | min (ms) | max (ms) | busy cores | compile (s) | parameters |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| flax, jax.jit | {format_ms(flax_step['median_ms'])} | {format_ms(flax_step['min_ms'])} | "
        f"{format_ms(flax_step['max_ms'])} | {flax_step['busy_cores']:.2f} | {format_s(flax_step['compile_s'])} | "
        f"{flax_step['parameters']} |",
    ]
    if torch_step:
        lines += [
            f"| PyTorch eager | {format_ms(torch_step['median_ms'])} | {format_ms(torch_step['min_ms'])} | "
            f"{format_ms(torch_step['max_ms'])} | {torch_step['busy_cores']:.2f} | none | "
            f"{torch_step['parameters']} |",
            "",
            f"flax / PyTorch step time: {flax_step['median_ms'] / torch_step['median_ms']:.2f}. "
            f"With the flax initial weights copied in, the two models' outputs differ by at most "
            f"{torch_step['max_output_difference']:.1e}.",
        ]
    else:
        lines += ["", f"PyTorch row skipped: torch is not installed. Install it with `{TORCH_INSTALL_COMMAND}`."]
    lines += ["", "Busy cores: CPU seconds of this process per wall second during the timed steps."]

    loop_s = ensemble["loop"]["second_s"]
    lines += [
        "",
        f"## Ensemble of {sizes.seeds} seeds, one epoch ({sizes.ensemble_windows} windows, "
        f"{sizes.epoch_steps} steps of {sizes.batch_size})",
        "",
        "| run | first run (s, with compilation) | second run (s) | per step of all seeds (ms) | time / (c) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    labels = {"vmap": '(a) train_ensemble, seed_mode="vmap"', "unroll": '(b) train_ensemble, seed_mode="unroll"',
              "loop": f"(c) loop of {sizes.seeds} single-seed train_ensemble calls"}
    for mode, label in labels.items():
        result = ensemble[mode]
        lines.append(f"| {label} | {format_s(result['first_s'])} | {format_s(result['second_s'])} | "
                     f"{format_ms(result['per_step_ms'])} | {result['second_s'] / loop_s:.2f} |")
    difference = ensemble["max_loss_difference"]
    lines += [
        "",
        f"Ratios of second runs: (a)/(c) = {ensemble['vmap']['second_s'] / loop_s:.2f}, "
        f"(b)/(c) = {ensemble['unroll']['second_s'] / loop_s:.2f}. The epoch losses of (a) and (b) differ "
        f"from those of (c) by at most {difference['vmap']:.1e} and {difference['unroll']:.1e}. "
        f"(a) runs first, so its first run also compiles the eager operations that (b) shares with it "
        f"(parameter initialization, batch permutations).",
        "",
        "## Causes on this backend",
        "",
        "| measurement | time | same work without the construct | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| vmapped {sizes.seeds}-seed step ({causes['grouped_convolutions']} of {causes['convolutions']} "
        f"convolutions have feature_group_count = {sizes.seeds}) | {format_ms(causes['vmapped_step_ms'])} ms | "
        f"{sizes.seeds} x the single step: {format_ms(causes['single_steps_ms'])} ms | "
        f"{causes['vmapped_step_ms'] / causes['single_steps_ms']:.1f} |",
        f"| one epoch of {sizes.epoch_steps} steps as one lax.scan (while loop in the program: "
        f"{'yes' if causes['scan_has_while_loop'] else 'no'}) | {format_s(causes['scan_s'])} s | "
        f"{sizes.epoch_steps} separate jitted calls: {format_s(causes['separate_steps_s'])} s | "
        f"{causes['scan_s'] / causes['separate_steps_s']:.1f} |",
        "",
        f"Compile time: vmapped step {format_s(causes['vmapped_compile_s'])} s, "
        f"lax.scan epoch {format_s(causes['scan_compile_s'])} s.",
        "",
        "## Targets",
        "",
    ]
    if torch_step:
        met = flax_step["median_ms"] <= torch_step["median_ms"]
        lines.append(f"- flax step no slower than PyTorch eager: {'met' if met else 'NOT met'} "
                     f"({format_ms(flax_step['median_ms'])} ms against {format_ms(torch_step['median_ms'])} ms).")
    else:
        lines.append("- flax step no slower than PyTorch eager: not measured (torch is not installed).")
    speedup = loop_s / ensemble["vmap"]["second_s"]
    lines.append(f"- vmapped ensemble at least {VMAP_SPEEDUP_TARGET:.0f} times faster than the sequential loop: "
                 f"{'met' if speedup >= VMAP_SPEEDUP_TARGET else 'NOT met'} (speedup {speedup:.2f}; "
                 f"the unrolled ensemble: {loop_s / ensemble['unroll']['second_s']:.2f}).")
    return "\n".join(lines)


def disturbance_text(disturbance: dict, nproc: int) -> str:
    load = ", ".join(f"{value:.2f}" for value in disturbance["load_average_before"])
    if disturbance.get("other_cpu_s") is None:
        return f"Other load: not measured (/proc/stat is not readable); load average before the run: {load}."
    share = disturbance["other_cpu_s"] / max(disturbance["wall_s"] * nproc, 1e-9) * 100.0
    return (f"Other load: other processes used {disturbance['other_cpu_s']:.0f} CPU s during the "
            f"{disturbance['wall_s']:.0f} s run ({share:.1f} % of the {nproc} cores' capacity); "
            f"load average before the run: {load}.")


# --------------------------------------------------------------------------- command line


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smoke check with tiny sizes (window 64, batch 32, 3 seeds), about a minute on a 2-core "
                             "CPU, mostly compilation. It "
                             "writes benchmarks/results/quick_detector.md and .json unless --output is given")
    parser.add_argument("--output", type=Path, default=None,
                        help="Markdown report path. The JSON record gets the same name with .json "
                             "(default: benchmarks/results/detector_latest.md)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # JAX logs every backend it fails to find (TPU, CUDA) at INFO, but only its warnings matter here.
    logging.getLogger("jax").setLevel(logging.WARNING)
    # train_ensemble logs every epoch of every run, but this benchmark reports its own times.
    logging.getLogger("avatarjax.detection.training").setLevel(logging.WARNING)
    sizes = QUICK_SIZES if args.quick else FULL_SIZES
    output = args.output or (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    started = datetime.datetime.now(datetime.timezone.utc)
    executable = sys.executable
    if executable.startswith(str(REPOSITORY_ROOT)):
        executable = os.path.relpath(executable, REPOSITORY_ROOT)
    command = " ".join([executable, "scripts/benchmark_detector.py", *(sys.argv[1:] if argv is None else argv)])
    environment = environment_info(threads)
    logger.info("CPU %s, nproc %d, jax %s (%s), flax %s, torch %s", environment["cpu_model"], threads,
                environment["jax"], environment["jax_backend"], environment["flax"], environment["torch"])

    busy_before, own_before, wall_before = busy_cpu_seconds(), own_cpu_seconds(), time.perf_counter()
    model = build_flax_model()
    windows = np.random.default_rng(DATA_SEED).standard_normal(
        (sizes.ensemble_windows, sizes.window_length)).astype(np.float32)

    logger.info("part 1: one training step, flax")
    step = {"flax": measure_flax_step(model, windows, sizes)}
    try:
        import torch  # noqa: F401
    except ImportError:
        logger.warning("torch is not installed, so the PyTorch row is skipped. Install it with: %s",
                       TORCH_INSTALL_COMMAND)
    else:
        logger.info("part 1: one training step, PyTorch eager with %d threads", threads)
        step["torch"] = measure_torch_step(model, windows, sizes, threads)
        if step["torch"]["parameters"] != step["flax"]["parameters"]:
            logger.error("parameter counts differ (flax %d, torch %d), so the PyTorch model is not the "
                         "same architecture", step["flax"]["parameters"],
                         step["torch"]["parameters"])
    logger.info("parameters: flax %d, torch %s", step["flax"]["parameters"],
                step["torch"]["parameters"] if "torch" in step else "not run")

    logger.info("part 2: ensemble of %d seeds, one epoch of %d steps", sizes.seeds, sizes.epoch_steps)
    ensemble = measure_ensemble(model, windows, sizes)
    logger.info("part 3: vmapped step and lax.scan epoch")
    causes = measure_causes(model, windows, sizes, step["flax"]["median_ms"])

    busy_after, own_after = busy_cpu_seconds(), own_cpu_seconds()
    record = {
        "created": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "quick": args.quick,
        "environment": environment,
        "sizes": asdict(sizes),
        "step": step,
        "ensemble": ensemble,
        "causes": causes,
        "disturbance": {
            "wall_s": time.perf_counter() - wall_before,
            "other_cpu_s": None if busy_before is None else (busy_after - busy_before) - (own_after - own_before),
            "load_average_before": environment["load_average_before"],
            "load_average_after": list(os.getloadavg()),
        },
    }
    report = build_report(record)
    record["report_markdown"] = report
    print(report)

    write_atomic(output, report + "\n")
    write_atomic(output.with_suffix(".json"), json.dumps(record, indent=2) + "\n")
    logger.info("wrote %s and %s", output, output.with_suffix(".json"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
