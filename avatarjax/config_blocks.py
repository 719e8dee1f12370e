"""Typed configuration of a multi-block anonymization: several sensors and static attributes at once.

`conf/anonymize_blocks.yaml` composes into `AnonymizeBlocksConfig`, and `validate_blocks` builds
it, so every `__post_init__` rejects an out-of-range value before any data is read or JAX is
imported. Experiments of this job live in `conf/experiment_blocks/` and are registered by
`register_block_experiments` as the `experiment` group of this job only, because the
`conf/experiment/` group belongs to the validation job and has other keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import DictConfig, OmegaConf

from avatarjax.config import (
    ANALYSIS_NAME,
    AvatarConfig,
    LoggerConfig,
    ProjectionConfig,
    ReleaseConfig,
    _build,
    _check_window,
    _require_at_least,
    _require_choice,
)
from avatarjax.blocks import BLOCK_WEIGHTINGS
from avatarjax.errors import ConfigError

STATIC_ATTRIBUTES = ("phase", "mode")


def _check_name(key: str, name: str) -> None:
    # Block names become file names (release/<name>.csv) and metric names.
    if not ANALYSIS_NAME.fullmatch(str(name)):
        raise ConfigError(
            f"{key}={name!r} is invalid because it becomes a file name; use letters, digits, '.', '_' "
            "or '-', starting with a letter or digit, for example 'temperature'."
        )


@dataclass
class BlocksDataConfig:
    """Multi-column sensor CSV file and the cleaning policy applied while loading it."""

    # Bundled file read when `path` is null: avatarjax/data/skab/<name>.csv (GPL-3.0).
    name: str = "anomaly-free"
    path: Optional[str] = None
    timestamp_column: str = "datetime"
    sep: str = ";"
    # Cleaning policy, as in the single-variable job (avatarjax.config.DataConfig).
    duplicates: str = "mean"
    period: Optional[str] = None
    off_grid: str = "snap"
    max_gap_steps: int = 12
    long_gap: str = "split"
    # Keep only the first `max_steps` steps of the cleaned series, for quick checks; null keeps all.
    max_steps: Optional[int] = None

    def __post_init__(self) -> None:
        _require_choice("data.duplicates", self.duplicates, ("mean", "first", "error"))
        _require_choice("data.off_grid", self.off_grid, ("snap", "error"))
        _require_choice("data.long_gap", self.long_gap, ("split", "error"))
        _require_at_least("data.max_gap_steps", self.max_gap_steps, 0)
        if not self.sep:
            raise ConfigError("data.sep is empty; give the CSV separator, for example ',' or ';'.")
        if self.max_steps is not None:
            _require_at_least("data.max_steps", self.max_steps, 2)


@dataclass
class WindowConfig:
    """Sliding windows cut on the series grid; each window is one individual of every block."""

    # Window and stride as pandas durations ("60s") or numbers of series steps ("60").
    window: str = "60s"
    # Privacy: a stride shorter than the window makes neighbouring windows overlap, so they are
    # near copies of each other that the metrics count as distinct individuals.
    stride: str = "10s"

    def __post_init__(self) -> None:
        _check_window("windows.window", self.window)
        text = str(self.stride).strip()
        if text.isdigit():
            _require_at_least("windows.stride", int(text), 1)
        else:
            _check_window("windows.stride", self.stride)


@dataclass
class TemporalBlockConfig:
    """One sensor column anonymized as a temporal block, with its own sampling period and projection."""

    # Block name: names the release file and the metrics.
    name: str = ""
    # Column of the CSV file.
    column: str = ""
    # Period of this block's readings, a whole multiple of the series period; each reading is
    # the mean of the series steps in one period. null keeps the series period.
    sampling_period: Optional[str] = None
    # Projection of the block: method, grid points, ncp (see avatarjax.config.ProjectionConfig).
    projection: ProjectionConfig = field(default_factory=lambda: ProjectionConfig(ncp=5))

    def __post_init__(self) -> None:
        _check_name("blocks[].name", self.name)
        if not str(self.column).strip():
            raise ConfigError(f"blocks[].column of block {self.name!r} is empty; name a column of the CSV file.")
        if self.sampling_period is not None:
            _check_window(f"block {self.name!r}: sampling_period", self.sampling_period)


@dataclass
class StaticBlockConfig:
    """Categorical attributes derived per window, projected together by MCA.

    "phase": the window's position in the run, its start time cut into `phases` equal spans.
    "mode": the operating mode, the window mean of `mode_column` cut at its quantiles into
    `mode_levels` levels of equal counts.
    """

    # Attributes to derive, from STATIC_ATTRIBUTES; an empty list gives no static block.
    attributes: list[str] = field(default_factory=lambda: list(STATIC_ATTRIBUTES))
    phases: int = 4
    mode_column: str = "Current"
    mode_levels: int = 3
    # Components kept; null keeps every dimension, so the inverse is exact.
    ncp: Optional[int] = None
    # A level seen in one window only singles that window out. "error" rejects it; "keep" keeps
    # it with a warning.
    rare_levels: str = "error"

    def __post_init__(self) -> None:
        for attribute in self.attributes:
            _require_choice("static.attributes[]", attribute, STATIC_ATTRIBUTES)
        if len(set(self.attributes)) != len(self.attributes):
            raise ConfigError(f"static.attributes={list(self.attributes)} repeats a name; give each attribute once.")
        # One level would be a column without information, which the static projection rejects.
        _require_at_least("static.phases", self.phases, 2)
        _require_at_least("static.mode_levels", self.mode_levels, 2)
        if self.ncp is not None:
            _require_at_least("static.ncp", self.ncp, 1)
        _require_choice("static.rare_levels", self.rare_levels, ("error", "keep"))


@dataclass
class AttackConfig:
    """Attacker assumptions of the static privacy metrics.

    The attack table has the static attributes and, per temporal block, the window mean of the
    block as a numeric column "<block>_mean".
    """

    # Variables an attacker has from an external source (correlation protection rate).
    known_columns: list[str] = field(default_factory=lambda: ["phase", "mode"])
    # Columns the inference attack predicts from the other columns; null predicts each column.
    inference_targets: Optional[list[str]] = None
    # Neighbours of the inference attack.
    inference_k: int = 5

    def __post_init__(self) -> None:
        _require_at_least("attack.inference_k", self.inference_k, 1)


@dataclass
class BlocksReportConfig:
    enabled: bool = True


@dataclass
class AnonymizeBlocksConfig:
    data: BlocksDataConfig = field(default_factory=BlocksDataConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)
    blocks: list[TemporalBlockConfig] = field(default_factory=list)
    static: StaticBlockConfig = field(default_factory=StaticBlockConfig)
    # Privacy and utility: the weighting decides how much each block counts in the neighbour
    # search. "inertia" scales every block to total variance 1, "mfa" to first eigenvalue 1,
    # "none" leaves the coordinates as they are (reasons in avatarjax/blocks.py).
    block_weighting: str = "inertia"
    avatar: AvatarConfig = field(default_factory=AvatarConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    release: ReleaseConfig = field(default_factory=ReleaseConfig)
    report: BlocksReportConfig = field(default_factory=BlocksReportConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # Privacy: tables that show original values reach the tracker only when this is true.
    log_originals: bool = False

    def __post_init__(self) -> None:
        _require_choice("block_weighting", self.block_weighting, BLOCK_WEIGHTINGS)
        if not self.blocks:
            raise ConfigError(
                "blocks is empty; choose an experiment such as experiment=skab_multisensor, or list the "
                "temporal blocks under `blocks`."
            )
        names = [block.name for block in self.blocks]
        if self.static.attributes:
            names.append("static")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(
                f"block name {repeated[0]!r} is used twice (the static block is named 'static'); give each block its own name."
            )
        self._check_attack_columns()

    def _check_attack_columns(self) -> None:
        available = list(self.static.attributes) + [f"{block.name}_mean" for block in self.blocks]
        requested = list(self.attack.known_columns) + list(self.attack.inference_targets or [])
        unknown = [name for name in requested if name not in available]
        if unknown:
            raise ConfigError(
                f"attack column {unknown[0]!r} is not in the attack table; choose among {available}."
            )


def validate_blocks(cfg: DictConfig | AnonymizeBlocksConfig) -> AnonymizeBlocksConfig:
    """Build the typed config of the multi-block job, running every range check."""
    if isinstance(cfg, AnonymizeBlocksConfig):
        return cfg
    return _build(AnonymizeBlocksConfig, cfg)


def register_block_experiments(folder: str | Path) -> list[str]:
    """Register every YAML file of `folder` as an option of this job's `experiment` group.

    The options go to Hydra's ConfigStore at the global package, like a file starting with
    `# @package _global_`. Returns the registered names.
    """
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    names = []
    for path in sorted(Path(folder).glob("*.yaml")):
        store.store(group="experiment", name=path.stem, node=OmegaConf.load(path), package="_global_")
        names.append(path.stem)
    return names
