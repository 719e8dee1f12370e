"""Typed configuration of an anonymization run.

Hydra composes `conf/` into these dataclasses. OmegaConf rejects an unknown key or a value of
the wrong type while composing. `validate` then builds the dataclasses, so every
`__post_init__` rejects out-of-range values before any data is read. A default that changes privacy is marked where it is set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError

from avatarjax.errors import ConfigError

_STEPS_PATTERN = re.compile(r"^\s*\d+\s*$")
# Analysis names become file names (scores/<name>.csv, report figures), so they are limited to
# characters that are safe on every file system and need no quoting in a Markdown link.
ANALYSIS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _require_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is invalid; choose one of {', '.join(choices)}.")


def _require_at_least(key: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ConfigError(f"{key}={value} is invalid; it must be at least {minimum}.")


def _check_window(key: str, window: str) -> None:
    """Reject a window that is neither a number of steps (at least 2) nor a pandas duration."""
    text = str(window).strip()
    if _STEPS_PATTERN.match(text):
        if int(text) < 2:
            raise ConfigError(f"{key}={window} is invalid; a window needs at least 2 steps.")
        return
    try:
        duration = pd.Timedelta(text)
    except ValueError:
        duration = None
    if duration is None or duration <= pd.Timedelta(0):
        raise ConfigError(f"{key}={window!r} is invalid; give a positive duration such as '1D' or a number of steps such as '288'.")


def parse_timestamp(text: str) -> pd.Timestamp:
    """Parse a period bound with pandas, converting a bound with a UTC offset to UTC without offset.

    Loading stores the series' timestamps the same way. Raises ValueError on text that pandas
    cannot parse or that parses to NaT (for example "").
    """
    timestamp = pd.Timestamp(str(text).strip())
    if timestamp is pd.NaT:
        raise ValueError(f"{text!r} is not a timestamp")
    if timestamp.tzinfo is not None:
        timestamp = timestamp.tz_convert("UTC").tz_localize(None)
    return timestamp


@dataclass
class DataConfig:
    """Input series and the cleaning policy applied while loading it."""

    # Bundled dataset read when `path` is null.
    name: str = "machine_temperature_system_failure"
    path: Optional[str] = None
    timestamp_column: str = "timestamp"
    value_column: str = "value"
    sep: str = ","
    # Conflicting duplicate timestamps: "mean", "first" or "error".
    duplicates: str = "mean"
    # Sampling period as a pandas offset ("5min"); null infers the most common time step.
    period: Optional[str] = None
    # Timestamps off the regular grid: "snap" to the nearest grid point, or "error".
    off_grid: str = "snap"
    # Runs of at most this many missing steps are linearly interpolated.
    max_gap_steps: int = 12
    # Longer gaps: "split" the series into pieces that no segment crosses, or "error".
    long_gap: str = "split"

    def __post_init__(self) -> None:
        _require_choice("data.duplicates", self.duplicates, ("mean", "first", "error"))
        _require_choice("data.off_grid", self.off_grid, ("snap", "error"))
        _require_choice("data.long_gap", self.long_gap, ("split", "error"))
        _require_at_least("data.max_gap_steps", self.max_gap_steps, 0)
        if not self.sep:
            raise ConfigError("data.sep is empty; give the CSV separator, for example ',' or ';'.")
        if self.name == "csv" and not self.path:
            raise ConfigError("data=csv needs the file: add data.path=/path/to/file.csv to the command.")


@dataclass
class SegmentationConfig:
    """Segmentation of the series into segments, the individuals of the avatar method."""

    # "sliding" (shifted by `stride` steps), "fixed" (exclusive windows) or "peak" (centred on peaks).
    method: str = "sliding"
    # Window as a duration ("1D", "6h") or a number of steps ("288").
    window: str = "1D"
    # Steps between consecutive sliding windows. Privacy: stride 1 makes neighbouring
    # segments near copies of each other, which the segment-level metrics count as distinct.
    stride: int = 1
    # Peak detection (method "peak"): minimum prominence in value units (null: 1 std of the
    # series) and minimum distance between peaks (null: one window).
    peak_prominence: Optional[float] = None
    peak_distance: Optional[str] = None

    def __post_init__(self) -> None:
        _require_choice("segmentation.method", self.method, ("sliding", "fixed", "peak"))
        _require_at_least("segmentation.stride", self.stride, 1)
        if not str(self.window).strip():
            raise ConfigError("segmentation.window is empty; give a duration such as '1D' or a number of steps such as '288'.")
        _check_window("segmentation.window", self.window)
        if self.peak_prominence is not None and self.peak_prominence < 0:
            raise ConfigError(f"segmentation.peak_prominence={self.peak_prominence} is invalid; it must be >= 0 or null.")


@dataclass
class ProjectionConfig:
    """Time grid and projection of the segments: functional PCA or a fixed DCT or Fourier basis."""

    # "fpca": eigenfunctions of the data. "dct" or "fourier": the first ncp functions of a
    # fixed basis, lowest frequencies first (avatarjax/projection/fixed_basis.py).
    method: str = "fpca"
    # Points T of the common grid on normalized time [0, 1]; null keeps the window length.
    grid_points: Optional[int] = None
    # Components kept. Privacy and utility: more components keep more detail of each
    # segment in the space where neighbours are searched.
    ncp: Optional[int] = 20
    # When set, keep the fewest components whose explained variance reaches this share
    # (at most `ncp` when ncp is also set).
    variance_share: Optional[float] = None
    quadrature: str = "trapezoid"

    def __post_init__(self) -> None:
        _require_choice("projection.method", self.method, ("fpca", "dct", "fourier"))
        _require_choice("projection.quadrature", self.quadrature, ("trapezoid", "simpson"))
        if self.ncp is None and self.variance_share is None:
            raise ConfigError("projection.ncp and projection.variance_share are both null; set at least one.")
        if self.ncp is not None:
            _require_at_least("projection.ncp", self.ncp, 1)
        if self.variance_share is not None and not 0.0 < self.variance_share <= 1.0:
            raise ConfigError(f"projection.variance_share={self.variance_share} is invalid; it must be in (0, 1].")
        if self.grid_points is not None:
            _require_at_least("projection.grid_points", self.grid_points, 2)


@dataclass
class AvatarConfig:
    """Avatar generation in the projected space."""

    # Neighbours per avatar: the main lever between privacy (larger k) and utility.
    k: int = 20
    # "avatar": w = (1/d) * Exp(1) * 2^-P with P a random permutation of 1..k;
    # "dirichlet": w = Exp(1) normalized, a Dirichlet(1, ..., 1) draw.
    weights: str = "avatar"
    seed: int = 0
    # Privacy: segments whose start lies less than this from a segment's own start are not its
    # neighbours. "0" turns it off. "window" is one window length, so no overlapping window of a
    # sliding segmentation enters the avatar. A number of steps or a duration such as "12h" also works.
    exclude_radius: str = "0"

    def __post_init__(self) -> None:
        _require_at_least("avatar.k", self.k, 1)
        _require_choice("avatar.weights", self.weights, ("avatar", "dirichlet"))
        _check_exclude_radius(self.exclude_radius)


def _check_exclude_radius(text: str) -> None:
    value = str(text).strip()
    if value == "window" or _STEPS_PATTERN.match(value):
        return
    try:
        duration = pd.Timedelta(value)
    except ValueError:
        duration = None
    if duration is None or duration < pd.Timedelta(0):
        raise ConfigError(f"avatar.exclude_radius={text!r} is invalid; give 0 (off), \"window\", a number of "
                          "steps such as 288, or a duration such as '12h'.")


def exclusion_steps(text: str, window_steps: int, period: np.timedelta64) -> int:
    """Convert an avatar.exclude_radius setting to a number of steps of the series grid (rounded up)."""
    value = str(text).strip()
    if value == "window":
        return int(window_steps)
    if _STEPS_PATTERN.match(value):
        return int(value)
    duration = pd.Timedelta(value)
    return int(np.ceil(duration / pd.Timedelta(period)))


@dataclass
class PrivacyConfig:
    """Entity-level metrics and attack-based risks, measured beside the segment-level metrics."""

    # Protected entity: a pandas frequency such as "1D" (a step belongs to the calendar span its
    # timestamp floors to), or null to skip the entity metrics and the attacks. A segment
    # belongs to the entity that contains more than half of its steps (rule "majority"), or to
    # the entity of its first step (rule "start").
    entity: Optional[str] = None
    entity_rule: str = "majority"
    # Attacks need held-out control segments, so they anonymize the target segments a second
    # time with the same settings. The released avatars still come from every segment. The
    # controls are whole entities, so the attacks run only when `entity` is set.
    attacks: bool = False
    # Share of the entities held out as controls, drawn in runs of control_run consecutive
    # entities. Target segments that share a step with a control segment are left out of both.
    control_share: float = 0.1
    control_run: int = 3
    # Attack trials per set (targets and controls), at most the number of controls.
    attack_trials: int = 2000
    # Inference succeeds when the guessed secret lies within this share of the secret's
    # standard deviation over the evaluated originals.
    inference_tolerance: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.entity is not None:
            try:
                to_offset(self.entity)
            except ValueError:
                raise ConfigError(f"privacy.entity={self.entity!r} is invalid; give a pandas frequency such as "
                                  "'1D' or '12h', or null to skip the entity metrics.") from None
        _require_choice("privacy.entity_rule", self.entity_rule, ("majority", "start"))
        if not 0.0 < self.control_share < 0.5:
            raise ConfigError(f"privacy.control_share={self.control_share} is invalid; choose a share above 0 "
                              "and below 0.5.")
        _require_at_least("privacy.control_run", self.control_run, 1)
        _require_at_least("privacy.attack_trials", self.attack_trials, 30)
        if not self.inference_tolerance > 0:
            raise ConfigError(f"privacy.inference_tolerance={self.inference_tolerance} is invalid; give a "
                              "positive share of the secret's standard deviation, such as 0.1.")


@dataclass
class ReleaseConfig:
    """Files written for release, and the link file kept apart from them."""

    formats: list[str] = field(default_factory=lambda: ["csv", "parquet"])
    # Significant digits of released values; row direct match protection compares at this precision.
    significant_digits: int = 7
    # Privacy: the link file maps each avatar to its original segment; it is written to
    # a separate private folder only when this is true.
    save_link: bool = False

    def __post_init__(self) -> None:
        for fmt in self.formats:
            _require_choice("release.formats", fmt, ("csv", "parquet"))
        if not self.formats:
            raise ConfigError("release.formats is empty; choose csv, parquet or both.")
        if not 3 <= self.significant_digits <= 17:
            raise ConfigError(f"release.significant_digits={self.significant_digits} is invalid; choose 3 to 17.")


@dataclass
class ReportConfig:
    enabled: bool = True
    # Curves drawn per panel of the original-versus-avatar figure. Privacy: the figure shows
    # original segments, so the report stays with the data owner.
    n_curves: int = 50

    def __post_init__(self) -> None:
        _require_at_least("report.n_curves", self.n_curves, 1)


TRACKERS = ("none", "jsonl", "wandb")


@dataclass
class LoggerConfig:
    """Experiment tracker that receives the run's config, environment, metrics, tables and figures."""

    # "jsonl" appends events to tracking/events.jsonl in the run's output folder; "wandb" logs
    # to Weights & Biases; "none" tracks nothing beyond metrics.json.
    kind: str = "jsonl"
    project: str = "avatarjax"
    entity: Optional[str] = None
    # W&B mode. "offline" keeps the run under the output folder until `wandb sync`; "online"
    # needs network access and a login.
    mode: str = "offline"
    # Runs of one sweep share a group; null uses the sweep folder's name in a multirun.
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _require_choice("logger.kind", self.kind, TRACKERS)
        _require_choice("logger.mode", self.mode, ("offline", "online"))


@dataclass
class AnonymizeConfig:
    data: DataConfig = field(default_factory=DataConfig)
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    avatar: AvatarConfig = field(default_factory=AvatarConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    # Privacy: figures and tables that show original series reach the tracker only when this
    # is true. The original-to-avatar link never does.
    log_originals: bool = False
    # Devices the neighbour search and privacy metrics split their rows across: "1" (no mesh),
    # a count such as "4", or "all" (every device in jax.devices()). Results do not depend on it.
    devices: str = "1"

    def __post_init__(self):
        parse_devices(self.devices)


def parse_devices(text) -> int | str:
    """Return the device count of a `devices` setting, or "all"; raise ConfigError otherwise."""
    value = str(text).strip().lower()
    if value == "all":
        return "all"
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ConfigError(f"devices={text!r} is invalid; give a positive number of devices such as 4, or \"all\".")


def register_configs() -> None:
    """Register the schemas that `conf/anonymize.yaml`, `conf/validate.yaml` and `conf/anonymize_blocks.yaml` name in their defaults lists."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="anonymize_schema", node=AnonymizeConfig)
    store.store(name="validate_schema", node=ValidateConfig)
    from avatarjax.config_blocks import AnonymizeBlocksConfig  # imported here: config_blocks imports this module

    store.store(name="anonymize_blocks_schema", node=AnonymizeBlocksConfig)


def validate(cfg: DictConfig | AnonymizeConfig) -> AnonymizeConfig:
    """Build the typed config, running every range check; raise ConfigError on the first invalid value."""
    if isinstance(cfg, AnonymizeConfig):
        return cfg
    return _build(AnonymizeConfig, cfg)


def _build(schema, cfg: DictConfig):
    # A plain container drops the schema that Hydra attached, so a key appended with
    # `+key=value` is rejected by the merge instead of being carried along unused.
    plain = OmegaConf.to_container(cfg, resolve=True)
    try:
        structured = OmegaConf.merge(OmegaConf.structured(schema), plain)
    except ConfigKeyError as error:
        raise ConfigError(f"{error.full_key} is not a setting of this job; remove it or check its spelling.") from error
    return OmegaConf.to_object(structured)


@dataclass
class DetectorConfig:
    """1D-CNN autoencoder and its training, identical for the original and the avatar model."""

    # Window of the detector: best one period of the signal (one day of 5-minute steps).
    window: str = "1D"
    # Steps between training windows. The validation protocol uses 1; larger values only
    # shorten quick checks.
    train_stride: int = 1
    channels: list[int] = field(default_factory=lambda: [8, 16, 32])
    kernel_size: int = 5
    latent_channels: int = 4
    learning_rate: float = 1e-3
    batch_size: int = 256
    # Expected cost on a 2-core CPU with the default channels: 26 to 40 ms per step of 256
    # windows and per seed (scripts/benchmark_detector.py). One month of stride-1 windows
    # therefore costs about 1 s per epoch, per seed and per model.
    epochs: int = 10
    seeds: int = 10
    # Alert threshold: this percentile of the model's window errors on the threshold windows.
    alert_percentile: float = 99.0
    # Threshold windows: "original" scores both models on the original training windows, so
    # their thresholds come from the same real data, as the data owner's comparison needs.
    # "own" uses each model's own training windows, as a user holding only avatars would.
    # Avatars are smoother than the originals, so "own" gives the avatar model a lower threshold.
    threshold_windows: str = "original"

    def __post_init__(self) -> None:
        _check_window("detector.window", self.window)
        _require_at_least("detector.train_stride", self.train_stride, 1)
        if not self.channels:
            raise ConfigError("detector.channels is empty; give at least one layer, for example [8, 16, 32].")
        for width in self.channels:
            _require_at_least("detector.channels[]", width, 1)
        _require_at_least("detector.kernel_size", self.kernel_size, 1)
        _require_at_least("detector.latent_channels", self.latent_channels, 1)
        _require_at_least("detector.batch_size", self.batch_size, 1)
        _require_at_least("detector.epochs", self.epochs, 1)
        _require_at_least("detector.seeds", self.seeds, 1)
        if not self.learning_rate > 0:
            raise ConfigError(f"detector.learning_rate={self.learning_rate} is invalid; it must be positive.")
        _require_choice("detector.threshold_windows", self.threshold_windows, ("original", "own"))
        if not 0 < self.alert_percentile < 100:
            raise ConfigError(f"detector.alert_percentile={self.alert_percentile} is invalid; choose a value in (0, 100).")


@dataclass
class AnalysisConfig:
    """One training stretch of the validation, assumed free of anomalies, and its test period."""

    name: str = "main"
    # Timestamps parsed by pandas; the stretch is [train_start, train_end), null meaning
    # the start or the end of the series.
    train_start: Optional[str] = "2013-12-18"
    train_end: Optional[str] = "2014-01-17"
    # Test period [test_start, test_end); null means the whole series. Training steps never count as test steps.
    test_start: Optional[str] = None
    test_end: Optional[str] = None

    def __post_init__(self) -> None:
        if not ANALYSIS_NAME.fullmatch(str(self.name)):
            raise ConfigError(
                f"analyses name {self.name!r} is invalid because it becomes a file name; use letters, digits, "
                "'.', '_' or '-', starting with a letter or digit, for example 'my_run'."
            )
        bounds = {}
        for key in ("train_start", "train_end", "test_start", "test_end"):
            text = getattr(self, key)
            if text is None:
                continue
            try:
                bounds[key] = parse_timestamp(text)
            except ValueError as error:
                raise ConfigError(
                    f"{key}={text!r} of analysis {self.name!r} is not a valid timestamp; give a date such as "
                    f"'2013-12-18' or '2013-12-18 15:00', or null for the start or end of the series."
                ) from error
        for period in ("train", "test"):
            start, end = bounds.get(f"{period}_start"), bounds.get(f"{period}_end")
            if start is not None and end is not None and start >= end:
                raise ConfigError(
                    f"{period}_start={getattr(self, f'{period}_start')!r} of analysis {self.name!r} is not before "
                    f"{period}_end={getattr(self, f'{period}_end')!r}; the period [{period}_start, {period}_end) "
                    "is empty, so give a start before the end."
                )


@dataclass
class ValidateConfig:
    data: DataConfig = field(default_factory=DataConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    avatar: AvatarConfig = field(default_factory=AvatarConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    analyses: list[AnalysisConfig] = field(default_factory=lambda: [AnalysisConfig()])
    # Labelled anomaly windows: "nab" for the NAB labels of the bundled dataset, a JSON file
    # mapping to a list of [start, end] pairs, or null for none.
    labels: Optional[str] = "nab"
    report: ReportConfig = field(default_factory=ReportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # Privacy: see AnonymizeConfig.log_originals.
    log_originals: bool = False
    # Value the job returns to a Hydra sweeper such as Optuna, smaller being better.
    # "score_correlation" uses 1 - the first analysis's overall score correlation and
    # "hellinger" its Hellinger distance. Each missed privacy target adds a penalty
    # (avatarjax/sweeps/objective.py).
    objective: str = "score_correlation"

    def __post_init__(self) -> None:
        _require_choice("objective", self.objective, ("score_correlation", "hellinger"))
        if not self.analyses:
            raise ConfigError("analyses is empty; give at least one training stretch.")
        names = [analysis.name for analysis in self.analyses]
        if len(set(names)) != len(names):
            raise ConfigError(f"analyses names {names} repeat; give each analysis its own name.")


def validate_detector_config(cfg: DictConfig | ValidateConfig) -> ValidateConfig:
    """Build the typed validation config, running every range check."""
    if isinstance(cfg, ValidateConfig):
        return cfg
    return _build(ValidateConfig, cfg)
