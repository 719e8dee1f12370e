"""Held-out attack design and the attack section of a real anonymization."""

import dataclasses

import numpy as np
import pytest

from avatarjax.attack_evaluation import holdout_split
from avatarjax.config import AnonymizeConfig, AvatarConfig, PrivacyConfig, SegmentationConfig
from avatarjax.errors import ConfigError, InputDataError
from avatarjax.metrics.entity_privacy import entity_of_segments
from avatarjax.pipeline import anonymize_series
from avatarjax.report import render_report
from avatarjax.segmentation import sliding_windows


@pytest.fixture(scope="module")
def day_segments(machine_temperature):
    segments = sliding_windows(machine_temperature, window=72, stride=6)
    entities = entity_of_segments(segments.start_index, 72, machine_temperature.timestamps, "1D")
    return segments, entities


def test_split_controls_are_whole_entities(day_segments):
    segments, entities = day_segments
    split = holdout_split(entities, segments.start_index, 72, share=0.1, run=3, seed=0)
    control_days = np.unique(entities[split.control])
    assert split.control_entities == control_days.size
    assert not np.isin(entities[split.target], control_days).any()


def test_split_targets_share_no_step_with_controls(day_segments):
    segments, entities = day_segments
    split = holdout_split(entities, segments.start_index, 72, share=0.1, run=3, seed=0)
    control_steps = np.zeros(segments.start_index.max() + 72, bool)
    for start in segments.start_index[split.control]:
        control_steps[start:start + 72] = True
    assert not any(control_steps[start:start + 72].any() for start in segments.start_index[split.target])
    assert split.buffer_segments > 0
    assert split.target.size + split.control.size + split.buffer_segments == entities.size


def test_split_control_runs_are_consecutive(day_segments):
    segments, entities = day_segments
    split = holdout_split(entities, segments.start_index, 72, share=0.1, run=3, seed=4)
    days = np.unique(entities[split.control])
    codes = np.unique(entities)
    positions = set(np.searchsorted(codes, days).tolist())
    for position in positions:
        run = range(position - position % 3, min(position - position % 3 + 3, codes.size))
        assert positions.issuperset(run)


def test_split_too_few_controls_rejected(machine_temperature):
    head = dataclasses.replace(machine_temperature, timestamps=machine_temperature.timestamps[:900],
                               values=machine_temperature.values[:900], pieces=((0, 900),))
    segments = sliding_windows(head, window=72, stride=36)
    entities = entity_of_segments(segments.start_index, 72, head.timestamps, "1D")
    with pytest.raises(InputDataError, match="privacy.control_share"):
        holdout_split(entities, segments.start_index, 72, share=0.2, run=1, seed=0)


def test_split_share_leaving_no_targets_rejected(day_segments):
    segments, entities = day_segments
    with pytest.raises(InputDataError, match="leaving no targets"):
        holdout_split(entities, segments.start_index, 72, share=0.45, run=80, seed=0)


def test_privacy_config_checks():
    with pytest.raises(ConfigError, match="privacy.entity="):
        PrivacyConfig(entity="fortnight-ish")
    with pytest.raises(ConfigError, match="privacy.control_share"):
        PrivacyConfig(entity="1D", control_share=0.6)
    with pytest.raises(ConfigError, match="avatar.exclude_radius"):
        AvatarConfig(exclude_radius="-3h")


@pytest.fixture(scope="module")
def month(machine_temperature):
    """The first 8 000 steps (about 28 days) of the NAB series."""
    return dataclasses.replace(machine_temperature, timestamps=machine_temperature.timestamps[:8000],
                               values=machine_temperature.values[:8000], pieces=((0, 8000),))


@pytest.fixture(scope="module")
def attacked(month):
    cfg = AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=1), avatar=AvatarConfig(k=10),
                          privacy=PrivacyConfig(entity="1D", attacks=True, attack_trials=500))
    return anonymize_series(month, cfg, progress=False)


def test_entity_level_below_segment_level_at_stride_1(attacked):
    segment = attacked.metrics["privacy"]["hidden_rate"]["value"]
    entity = attacked.metrics["entity_privacy"]["entity_hidden_rate"]["value"]
    assert entity < segment - 10.0


@pytest.mark.parametrize("attack", ["linkability", "inference", "membership", "singling_out"])
def test_attack_entries_have_intervals(attacked, attack):
    entry = attacked.metrics["attacks"][attack]
    assert entry["low"] <= entry["value"] <= entry["high"]
    assert entry["attack_low"] <= entry["attack_rate"] <= entry["attack_high"]
    assert entry["attack_trials"] == entry["control_trials"]
    if attack != "singling_out":  # singling out counts predicates, not segments
        assert entry["attack_trials"] == attacked.metrics["attacks"]["design"]["trials"]


def test_report_shows_levels_and_attacks(attacked):
    text = render_report(attacked.metrics, {})
    assert "Privacy per segment and per protected entity (1D)" in text
    assert "Attack-based risks, 95 % intervals" in text
    assert "| Membership |" in text
    inference_line = next(line for line in text.splitlines() if line.startswith("- **Inference**"))
    assert "in the unit of the values" in inference_line


def test_exclusion_radius_raises_entity_hidden_rate(month, attacked):
    cfg = AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=1),
                          avatar=AvatarConfig(k=10, exclude_radius="window"),
                          privacy=PrivacyConfig(entity="1D"))
    excluded = anonymize_series(month, cfg, progress=False)
    assert excluded.metrics["run"]["exclude_radius_steps"] == 72
    assert (excluded.metrics["entity_privacy"]["entity_hidden_rate"]["value"]
            > attacked.metrics["entity_privacy"]["entity_hidden_rate"]["value"] + 10.0)


def test_frontier_shows_entity_and_attack_columns(attacked, tmp_path):
    import json

    from avatarjax.sweeps.frontier import collect_runs, render_markdown, summarize_settings

    for number in ("0", "1"):
        (tmp_path / number).mkdir()
        (tmp_path / number / "metrics.json").write_text(json.dumps(attacked.metrics, default=float))
    runs = collect_runs(tmp_path)
    expected = attacked.metrics["attacks"]["membership"]["value"]
    assert runs["membership_risk"].tolist() == [expected, expected]
    page = render_markdown(summarize_settings(runs), runs, tmp_path)
    assert "entity_hidden_rate" in page
    assert "singling_out_risk" in page


def test_attacks_without_entity_skipped_with_warning(month, caplog):
    cfg = AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=6), avatar=AvatarConfig(k=10),
                          privacy=PrivacyConfig(entity=None, attacks=True))
    with caplog.at_level("WARNING", logger="avatarjax.pipeline"):
        result = anonymize_series(month, cfg, progress=False)
    assert "attacks" not in result.metrics
    assert "entity_privacy" not in result.metrics
    assert "privacy.attacks=true is ignored" in caplog.text


def test_short_series_attack_error_names_the_way_out(machine_temperature):
    head = dataclasses.replace(machine_temperature, timestamps=machine_temperature.timestamps[:500],
                               values=machine_temperature.values[:500], pieces=((0, 500),))
    cfg = AnonymizeConfig(segmentation=SegmentationConfig(window="6h", stride=1), avatar=AvatarConfig(k=5),
                          privacy=PrivacyConfig(entity="1D", attacks=True))
    with pytest.raises(InputDataError, match="privacy.attacks=false"):
        anonymize_series(head, cfg, progress=False)


def test_console_summary_counts_entity_targets_and_lists_risks(attacked):
    from avatarjax.report.privacy_levels import console_summary

    lines = console_summary(attacked.metrics)
    assert lines[0].startswith("WARNING:")
    assert "Entity hidden rate" in lines[0]
    assert "avatar.exclude_radius=window" in lines[0]
    assert lines[1].startswith("Attack risks")
    assert "singling out" in lines[1]
