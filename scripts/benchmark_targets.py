"""Check the pipeline benchmark's results against the project's speed and memory targets.

Used by scripts/benchmark_pipeline.py; every function takes the `results` dictionary that
script builds ({n: {"reference": worker result, "avatarjax": worker result}}).

Targets on a 2-core CPU:
- neighbour search at n = 50 000: at most 0.4 times scikit-learn brute force. The reference
  searches in its own precision (float64 by default) and once more in float32, avatarjax's
  precision. The target is checked against the faster of the two, so a slow library setting
  cannot meet it;
- anonymization plus privacy metrics (projection, neighbours, avatars, inverse, privacy) at
  n = 50 000: at most 0.5 times the reference;
- peak memory at n = 200 000 under 3 GB (3e9 bytes), growing linearly in n;
- no compilation on the second call of a stage with the same shapes.
"""

from __future__ import annotations

TARGET_SIZE = 50_000
MEMORY_SIZE = 200_000
NEIGHBOUR_RATIO = 0.4
PIPELINE_RATIO = 0.5
MEMORY_LIMIT_MIB = 3e9 / 2**20
ANONYMIZATION_STAGES = ("projection", "neighbours", "avatars", "inverse", "privacy")


def _ran(result: dict | None) -> bool:
    return result is not None and "error" not in result and "skipped" not in result


def _neighbour_target(results: dict) -> dict:
    pair = results.get(TARGET_SIZE, {})
    reference, avatarjax = pair.get("reference"), pair.get("avatarjax")
    if not (_ran(reference) and _ran(avatarjax)):
        return {"measured": False, "reason": f"n = {TARGET_SIZE} not run with both implementations"}
    ours = avatarjax["stages"]["neighbours"]["seconds"]
    theirs = {reference["reference_dtype"]: reference["stages"]["neighbours"]["seconds"]}
    if "float32_neighbours_s" in reference:
        theirs["float32"] = min(theirs.get("float32", float("inf")), reference["float32_neighbours_s"])
    fastest = min(theirs.values())
    return {"measured": True, "avatarjax_s": ours, "scikit_learn_s": theirs,
            "ratio_to_fastest": ours / fastest, "ratios": {dtype: ours / s for dtype, s in theirs.items()},
            "target": NEIGHBOUR_RATIO, "met": ours / fastest <= NEIGHBOUR_RATIO}


def _pipeline_target(results: dict) -> dict:
    pair = results.get(TARGET_SIZE, {})
    reference, avatarjax = pair.get("reference"), pair.get("avatarjax")
    if not (_ran(reference) and _ran(avatarjax)):
        return {"measured": False, "reason": f"n = {TARGET_SIZE} not run with both implementations"}
    ours = sum(avatarjax["stages"][stage]["seconds"] for stage in ANONYMIZATION_STAGES)
    theirs = sum(reference["stages"][stage]["seconds"] for stage in ANONYMIZATION_STAGES)
    return {"measured": True, "avatarjax_s": ours, "reference_s": theirs, "ratio": ours / theirs,
            "target": PIPELINE_RATIO, "met": ours / theirs <= PIPELINE_RATIO}


def _memory_target(results: dict) -> dict:
    peaks = {n: results[n]["avatarjax"]["peak_rss_mib"] for n in sorted(results)
             if _ran(results[n].get("avatarjax"))}
    sizes = list(peaks)
    # Growth per segment between consecutive sizes, in KiB: constant when memory is linear in n.
    growth = {f"{a}-{b}": (peaks[b] - peaks[a]) * 1024 / (b - a) for a, b in zip(sizes, sizes[1:])}
    entry = {"peak_rss_mib": peaks, "growth_kib_per_segment": growth, "limit_mib": MEMORY_LIMIT_MIB}
    if MEMORY_SIZE in peaks:
        entry.update(measured=True, met=peaks[MEMORY_SIZE] < MEMORY_LIMIT_MIB)
    else:
        entry.update(measured=False, reason=f"n = {MEMORY_SIZE} not run")
    return entry


def _compile_target(results: dict) -> dict:
    counts = {n: sum(stage.get("second_call_compiles", 0) for stage in results[n]["avatarjax"]["stages"].values())
              for n in results if _ran(results[n].get("avatarjax"))}
    if not counts:
        return {"measured": False, "reason": "avatarjax did not run"}
    return {"measured": True, "second_call_compiles": counts, "met": all(count == 0 for count in counts.values())}


def check_targets(results: dict) -> dict:
    """Return one entry per target with the measured figures and whether the target is met."""
    return {"neighbours_50k": _neighbour_target(results), "anonymization_privacy_50k": _pipeline_target(results),
            "memory": _memory_target(results), "recompilation": _compile_target(results)}


def _verdict(entry: dict) -> str:
    if not entry["measured"]:
        return f"not measured ({entry['reason']})"
    return "met" if entry["met"] else "NOT met"


def target_lines(targets: dict) -> list[str]:
    """Format the target checks as a Markdown table with a verdict per target."""
    lines = ["| target | measured | verdict |", "| --- | --- | --- |"]
    entry = targets["neighbours_50k"]
    measured = "n/a"
    if entry["measured"]:
        parts = [f"{entry['ratios'][dtype]:.2f} against {dtype} ({seconds:.2f} s)"
                 for dtype, seconds in entry["scikit_learn_s"].items()]
        measured = f"avatarjax {entry['avatarjax_s']:.2f} s; ratio " + ", ".join(parts)
    lines.append(f"| neighbour search at n = 50 000: at most {NEIGHBOUR_RATIO} times scikit-learn brute force "
                 f"(the faster setting) | {measured} | {_verdict(entry)} |")

    entry = targets["anonymization_privacy_50k"]
    measured = "n/a"
    if entry["measured"]:
        measured = (f"{entry['avatarjax_s']:.2f} s against {entry['reference_s']:.2f} s, "
                    f"ratio {entry['ratio']:.2f}")
    lines.append(f"| anonymization + privacy metrics at n = 50 000: at most {PIPELINE_RATIO} times the reference "
                 f"| {measured} | {_verdict(entry)} |")

    entry = targets["memory"]
    peaks = ", ".join(f"{n:,}: {mib:.0f} MiB".replace(",", " ") for n, mib in entry["peak_rss_mib"].items())
    growth = ", ".join(f"{span}: {kib:.1f} KiB" for span, kib in entry["growth_kib_per_segment"].items())
    lines.append(f"| avatarjax peak RSS under 3 GB ({MEMORY_LIMIT_MIB:.0f} MiB) at n = 200 000, linear in n "
                 f"| {peaks}; growth per segment {growth or 'n/a'} | {_verdict(entry)} |")

    entry = targets["recompilation"]
    measured = "n/a"
    if entry["measured"]:
        measured = ", ".join(f"n = {n:,}: {count}".replace(",", " ") for n, count in entry["second_call_compiles"].items())
    lines.append(f"| no compilation on a second call with the same shapes | {measured} compilations "
                 f"| {_verdict(entry)} |")
    return lines + [""]
