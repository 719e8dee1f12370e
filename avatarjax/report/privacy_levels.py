"""Report sections that put segment-level, entity-level and attack-based privacy side by side."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from avatarjax.metrics.targets import privacy_summary
from avatarjax.report.markdown import MET_SYMBOLS, NOT_AVAILABLE, _table, format_entry_value, format_number

# Segment-level metric and its entity-level counterpart, in table order.
LEVEL_PAIRS = (("hidden_rate", "entity_hidden_rate"), ("local_cloaking", "entity_local_cloaking"))

ATTACK_LABELS = {"linkability": "Linkability", "inference": "Inference", "membership": "Membership",
                 "singling_out": "Singling out"}

ATTACK_DEFINITIONS = {
    "linkability": "both halves of a segment lead to the same closest avatar",
    "inference": "the mean of the second half, guessed from the avatar closest on the first half, is within "
                 "the tolerance",
    "membership": "the closest avatar lies within the median closest-avatar distance of all attacked segments "
                  "(a random guess succeeds half the time)",
    "singling_out": "a predicate on three features of a curve (mean, standard deviation, minimum, maximum, "
                    "half means), built from one avatar so that it matches that avatar only, matches exactly "
                    "one attacked segment; trials are predicates, and random guessing builds them from "
                    "feature values drawn one by one",
}


def entity_level_lines(metrics: Mapping[str, Any], number: int) -> list[str]:
    """Return the table of segment-level and entity-level hidden rate and local cloaking, or nothing."""
    segment = metrics.get("privacy") or {}
    entity = metrics.get("entity_privacy") or {}
    if not entity:
        return []
    rows = []
    for segment_key, entity_key in LEVEL_PAIRS:
        low, high = segment.get(segment_key) or {}, entity.get(entity_key) or {}
        rows.append([
            (low or high).get("label", segment_key).replace("Entity ", "").capitalize(),
            format_entry_value(low) if low else NOT_AVAILABLE, MET_SYMBOLS.get(low.get("meets"), NOT_AVAILABLE),
            format_entry_value(high) if high else NOT_AVAILABLE, MET_SYMBOLS.get(high.get("meets"), NOT_AVAILABLE),
            high.get("target") or low.get("target") or NOT_AVAILABLE,
        ])
    entity_name = (metrics.get("run") or {}).get("privacy_entity") or "entity"
    lines = [f"**Table {number}. Privacy per segment and per protected entity ({entity_name})**", ""]
    lines += _table(["Metric", "Per segment", "Met", "Per entity", "Met", "Target"], rows,
                    align=["l", "r", "c", "r", "c", "l"])
    excluding = ((metrics.get("run") or {}).get("exclude_radius_steps") or 0) > 0
    lines += ["", _level_gap_sentence(segment, entity, excluding), ""]
    return lines


def _level_gap_sentence(segment: Mapping[str, Any], entity: Mapping[str, Any], excluding: bool) -> str:
    """Explain what the gap between the two hidden rates means for this run."""
    low, high = segment.get("hidden_rate") or {}, entity.get("entity_hidden_rate") or {}
    base = ("Per entity, an attacker's match counts as found when the closest avatar was generated from any "
            "segment of the original's own entity: overlapping windows of the same entity are near copies of "
            "each other, so a match with one of them points at the right time span.")
    if low.get("value") is None or high.get("value") is None:
        return base
    gap = low["value"] - high["value"]
    sentence = (f" The entity-level hidden rate ({format_entry_value(high)}) is {format_number(gap)} points below "
                f"the segment-level one ({format_entry_value(low)}): that share of the originals counts as hidden "
                "per segment but is found per entity.")
    if gap > 10.0 and not excluding:
        sentence += (" The segment-level figures overstate protection; avatar.exclude_radius=window keeps "
                     "overlapping windows out of each avatar.")
    return base + sentence


def _fixed(value) -> str:
    """Format a rate or a risk with three decimals; a nonzero value under 0.0005 shows as "< 0.001"."""
    if value is None:
        return NOT_AVAILABLE
    if value != 0 and abs(value) < 0.0005:
        return "< 0.001" if value > 0 else "> -0.001"
    return f"{value:.3f}"


def _interval(entry: Mapping[str, Any], value: str, low: str, high: str) -> str:
    """Format entry[value] with its interval [entry[low], entry[high]]."""
    if entry.get(value) is None:
        return NOT_AVAILABLE
    return f"{_fixed(entry[value])} [{_fixed(entry.get(low))}, {_fixed(entry.get(high))}]"


def attack_lines(metrics: Mapping[str, Any], number: int) -> list[str]:
    """Return the attack-risk table with intervals, the design and the definitions, or nothing."""
    attacks = metrics.get("attacks") or {}
    if not attacks:
        return []
    design = attacks.get("design") or {}
    rows = [[ATTACK_LABELS[name], _interval(entry, "value", "low", "high"),
             _interval(entry, "attack_rate", "attack_low", "attack_high"),
             _interval(entry, "control_rate", "control_low", "control_high"),
             _fixed(entry.get("baseline_rate")), format_number(entry.get("attack_trials"))]
            for name, entry in attacks.items() if name in ATTACK_LABELS]

    lines = [f"**Table {number}. Attack-based risks, 95 % intervals**", ""]
    lines += _table(["Attack", "Risk", "Success on targets", "Success on controls", "Random guess", "Trials"],
                    rows, align=["l", "r", "r", "r", "r", "r"])
    lines += [
        "",
        "Risk = (success on targets - success on controls) / (1 - success on controls): 0 means the avatars "
        "reveal nothing about their own originals beyond what they reveal about similar segments that were "
        "never anonymized, 1 means every target the controls miss is found. Intervals are Wilson score "
        "intervals of the two success rates, combined at their extremes. A negative value means the attack "
        "did worse on targets than on controls. The avatar method publishes no target for these risks: read them "
        "against 0 and against each other.",
        "",
        f"Design: the {format_number(design.get('target_segments'))} target segments were anonymized again with "
        f"this run's settings, while {format_number(design.get('control_segments'))} control segments "
        f"({format_number(design.get('control_entities'))} of {format_number(design.get('entities'))} entities) "
        f"were held out; {format_number(design.get('buffer_segments'))} target segments that share a step with "
        f"a control were left out of both. Each attack ran on {format_number(design.get('trials'))} sampled "
        f"targets and as many controls (for singling out, the trials are the predicates tried on them); the "
        f"attacker knows the {design.get('known_part', 'first half')}.",
        "",
        "Success:",
        "",
    ]
    weak = [ATTACK_LABELS[name] for name, entry in attacks.items()
            if name in ATTACK_LABELS and entry.get("baseline_rate") is not None
            and entry["baseline_rate"] >= entry.get("attack_rate", 0.0)]
    if weak:
        lines[-2:-2] = [f"Random guessing does at least as well as the attack for: {', '.join(weak)}. Such an "
                        "attack is too weak to show a leak, so its risk near 0 is no evidence of protection.", ""]

    tolerance = (attacks.get("inference") or {}).get("tolerance")
    for name, text in ATTACK_DEFINITIONS.items():
        if name not in attacks:
            continue
        if name == "inference" and tolerance is not None:
            text += f" ({format_number(tolerance)} in the unit of the values)"
        lines.append(f"- **{ATTACK_LABELS[name]}**: {text}.")
    return lines + [""]


def console_summary(metrics: Mapping[str, Any]) -> list[str]:
    """Return the lines a job prints on privacy: every target per segment and per entity, then the risks."""
    segment = dict(metrics.get("privacy") or {})
    entity = dict(metrics.get("entity_privacy") or {})
    excluding = ((metrics.get("run") or {}).get("exclude_radius_steps") or 0) > 0
    entity_missed = any(entry.get("meets") is False for entry in entity.values())
    if entity_missed and not excluding:
        advice = ("for example with avatar.exclude_radius=window: overlapping windows of the same day make the "
                  "per-day figures weaker than the per-segment ones")
    elif entity_missed:
        advice = "for example with a larger avatar.exclude_radius or a larger avatar.k"
    else:
        advice = "for example with a larger avatar.k"
    lines = [privacy_summary({**segment, **entity}, advice)]
    attacks = metrics.get("attacks") or {}
    risks = [f"{ATTACK_LABELS[name].lower()} {_fixed(entry['value'])} [{_fixed(entry['low'])}, {_fixed(entry['high'])}]"
             for name, entry in attacks.items() if name in ATTACK_LABELS]
    if risks:
        lines.append("Attack risks, 95 % intervals (0: no leak beyond held-out days; no published target; report "
                     f"Table 3): {', '.join(risks)}.")
    return lines
