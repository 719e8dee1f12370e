from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from avatarjax.config import AnonymizeConfig, register_configs, validate
from avatarjax.errors import ConfigError

CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")


def compose_anonymize(overrides=()):
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="anonymize", overrides=list(overrides))


def test_defaults_compose():
    config = validate(compose_anonymize())
    assert isinstance(config, AnonymizeConfig)
    assert config.avatar.k == 20
    assert config.segmentation.method == "sliding"
    assert config.segmentation.window == "1D"
    assert config.projection.ncp == 20


def test_overrides_apply():
    config = validate(compose_anonymize(["avatar.k=10", "segmentation=fixed", "projection.ncp=5"]))
    assert config.avatar.k == 10
    assert config.segmentation.method == "fixed"
    assert config.projection.ncp == 5


@pytest.mark.parametrize("group,option", [("segmentation", "sliding"), ("segmentation", "fixed"),
                                          ("segmentation", "peak"), ("avatar", "avatar"),
                                          ("avatar", "dirichlet"), ("projection", "fpca"),
                                          ("projection", "dct"), ("projection", "fourier"),
                                          ("data", "nab_machine_temperature")])
def test_every_group_option_composes(group, option):
    assert isinstance(validate(compose_anonymize([f"{group}={option}"])), AnonymizeConfig)


def test_window_in_steps():
    config = validate(compose_anonymize(["segmentation.window=288"]))
    assert config.segmentation.window == "288"


def test_unknown_key_rejected():
    with pytest.raises(ConfigCompositionException, match="kk"):
        compose_anonymize(["avatar.kk=3"])


def test_wrong_type_rejected():
    with pytest.raises(ConfigCompositionException, match="many"):
        compose_anonymize(["avatar.k=many"])


@pytest.mark.parametrize("override,message", [
    ("avatar.k=0", "avatar.k=0"),
    ("projection.ncp=0", "projection.ncp=0"),
    ("segmentation.stride=0", "segmentation.stride=0"),
    ("segmentation.method=random", "segmentation.method='random'"),
    ("avatar.weights=uniform", "avatar.weights='uniform'"),
    ("data.duplicates=median", "data.duplicates='median'"),
    ("projection.variance_share=1.5", "projection.variance_share=1.5"),
    ("segmentation.window=1", "segmentation.window=1"),
])
def test_invalid_values_rejected(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        validate(compose_anonymize([override]))


def test_ncp_and_share_both_null_rejected():
    with pytest.raises(ConfigError, match="both null"):
        validate(compose_anonymize(["projection.ncp=null"]))


def test_appended_key_rejected():
    with pytest.raises(ConfigError, match="avatar.kk is not a setting"):
        validate(compose_anonymize(["+avatar.kk=3"]))


def test_csv_without_path_rejected():
    with pytest.raises(ConfigError, match="data.path"):
        validate(compose_anonymize(["data=csv"]))


@pytest.mark.parametrize("window", ["abc", "-1D", "0h"])
def test_invalid_window_rejected_before_loading(window):
    with pytest.raises(ConfigError, match="segmentation.window"):
        validate(compose_anonymize([f"segmentation.window={window}"]))


def compose_validate(overrides=(), hydra=False):
    register_configs()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="validate", overrides=list(overrides), return_hydra_config=hydra)


def test_white_paper_analyses():
    from avatarjax.config import validate_detector_config

    config = validate_detector_config(compose_validate(["experiment=white_paper"]))
    assert [analysis.name for analysis in config.analyses] == ["main", "second"]
    assert config.detector.train_stride == 1
    assert config.detector.seeds == 10


@pytest.mark.parametrize("override,message", [
    ("detector.threshold_windows=both", "detector.threshold_windows='both'"),
    ("detector.epochs=0", "detector.epochs=0"),
    ("detector.learning_rate=0", "detector.learning_rate=0"),
    ("detector.window=abc", "detector.window='abc'"),
])
def test_invalid_detector_values_rejected(override, message):
    from avatarjax.config import validate_detector_config

    with pytest.raises(ConfigError, match=message):
        validate_detector_config(compose_validate([override]))


EXPERIMENTS = sorted(path.stem for path in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_validates(experiment):
    from avatarjax.config import ValidateConfig, validate_detector_config

    assert isinstance(validate_detector_config(compose_validate([f"experiment={experiment}"])), ValidateConfig)
    hydra_cfg = compose_validate([f"experiment={experiment}"], hydra=True).hydra
    # Sweep experiments configure the sweep and its summary; the others run once.
    if experiment in ("k_sweep", "privacy_search"):
        assert str(hydra_cfg.mode) == "RunMode.MULTIRUN"
        assert "avatar.k" in hydra_cfg.sweeper.params
        assert hydra_cfg.callbacks.frontier._target_ == "avatarjax.sweeps.callback.FrontierCallback"


def test_k_sweep_grid_and_tracker():
    cfg = compose_validate(["experiment=k_sweep"], hydra=True)
    params = cfg.hydra.sweeper.params
    assert [int(k) for k in params["avatar.k"].split(",")] == [2, 5, 10, 20, 50]
    assert params["projection.ncp"]
    assert params["avatar.seed"]
    assert cfg.logger.kind == "wandb"
    assert cfg.logger.mode == "offline"


def test_privacy_search_uses_optuna():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose_validate(["experiment=privacy_search"], hydra=True)
    assert cfg.hydra.sweeper._target_.endswith("OptunaSweeper")
    assert cfg.hydra.sweeper.direction == "minimize"
    assert cfg.hydra.sweeper.params["avatar.k"].startswith("int(interval(")


@pytest.mark.parametrize("launcher,target", [("parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launcher_configs_compose(launcher, target):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_validate(["experiment=k_sweep", f"hydra/launcher={launcher}"], hydra=True)
    assert cfg.hydra.launcher._target_.endswith(target)


@pytest.mark.parametrize("override,message", [
    ("logger.kind=tensorboard", "logger.kind='tensorboard'"),
    ("logger.mode=dryrun", "logger.mode='dryrun'"),
    ("objective=accuracy", "objective='accuracy'"),
])
def test_tracking_settings_rejected(override, message):
    from avatarjax.config import validate_detector_config

    with pytest.raises(ConfigError, match=message):
        validate_detector_config(compose_validate([override]))


@pytest.mark.parametrize("tracker", ["none", "jsonl", "wandb"])
def test_logger_options_compose(tracker):
    assert validate(compose_anonymize([f"logger={tracker}"])).logger.kind == tracker


def test_unknown_experiment_rejected():
    with pytest.raises(ConfigCompositionException, match="experiment/whitepaper"):
        compose_validate(["experiment=whitepaper"])


def test_no_experiment_composes():
    from avatarjax.config import validate_detector_config

    config = validate_detector_config(compose_validate())
    assert [analysis.name for analysis in config.analyses] == ["main"]


@pytest.mark.parametrize("name", ["my run", "../escape", ".hidden", ""])
def test_invalid_analysis_name_rejected(name):
    from avatarjax.config import validate_detector_config

    with pytest.raises(ConfigError, match="analyses name") as error:
        validate_detector_config(compose_validate(["experiment=smoke", f"analyses.0.name='{name}'"]))
    assert repr(name) in str(error.value)
    assert "letters, digits" in str(error.value)


@pytest.mark.parametrize("key", ["train_start", "train_end", "test_start", "test_end"])
def test_invalid_date_rejected(key):
    from avatarjax.config import validate_detector_config

    with pytest.raises(ConfigError, match=f"{key}='notadate' of analysis 'smoke' is not a valid timestamp"):
        validate_detector_config(compose_validate(["experiment=smoke", f"analyses.0.{key}=notadate"]))


def test_empty_date_rejected():
    from avatarjax.config import AnalysisConfig

    with pytest.raises(ConfigError, match="test_end='' of analysis 'main'"):
        AnalysisConfig(test_end="")


@pytest.mark.parametrize("start,end", [("2013-12-21", "2013-12-18"), ("2013-12-18", "2013-12-18")])
def test_train_start_not_before_end_rejected(start, end):
    from avatarjax.config import AnalysisConfig

    with pytest.raises(ConfigError, match=f"train_start='{start}' of analysis 'main' is not before train_end"):
        AnalysisConfig(train_start=start, train_end=end)


def test_timestamp_offset_becomes_utc():
    import pandas as pd

    from avatarjax.config import parse_timestamp

    assert parse_timestamp("2013-12-18T01:00+01:00") == pd.Timestamp("2013-12-18 00:00")
    assert parse_timestamp("2013-12-18T01:00+01:00").tzinfo is None
