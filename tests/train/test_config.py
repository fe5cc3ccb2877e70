"""TrainConfig: TOML loading, stage tables, --set overrides, validation, the saved copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_isp.train.config import STAGES, ConfigError, TrainConfig, load_config, parse_override

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.toml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


class TestOverrides:
    def test_values_are_read_as_toml(self):
        assert parse_override("optim.lr=1e-3") == (["optim", "lr"], 1e-3)
        assert parse_override("run.progress=false") == (["run", "progress"], False)
        assert parse_override("data.size=[64, 48]") == (["data", "size"], [64, 48])
        assert parse_override("model.num_classes=none") == (["model", "num_classes"], None)

    def test_text_keys_take_the_text_as_written(self):
        assert parse_override("data.root=runs/2024") == (["data", "root"], "runs/2024")
        assert parse_override("run.out=123") == (["run", "out"], "123")
        # "none" is a valid conventional-ISP setting, not a cleared key.
        assert parse_override("baseline.denoise=none") == (["baseline", "denoise"], "none")
        assert parse_override('model.name="dp_m_cls"') == (["model", "name"], "dp_m_cls")

    @pytest.mark.parametrize("text", ["optim.lr", "lr=1", "=3", "optim..lr=1"])
    def test_malformed_override(self, text):
        with pytest.raises(ConfigError, match=r"SECTION\.KEY=VALUE"):
            parse_override(text)

    def test_override_beats_file_and_stage_table(self, tmp_path):
        path = write(tmp_path, '[optim]\nlr = 0.1\n[stage.isp.optim]\nlr = 0.2\n[stage.isp.model]\nname = "dp_s_rec"\n')
        assert load_config(path).optim.lr == 0.1
        assert load_config(path, stage="head").optim.lr == 0.1
        isp = load_config(path, stage="isp")
        assert (isp.optim.lr, isp.model.name) == (0.2, "dp_s_rec")
        assert load_config(path, stage="isp", overrides=["optim.lr=0.3"]).optim.lr == 0.3


class TestValidation:
    def test_unknown_key_is_named(self, tmp_path):
        with pytest.raises(ConfigError, match=r"optim\.learning_rate"):
            load_config(write(tmp_path, "[optim]\nlearning_rate = 1\n"))
        with pytest.raises(ConfigError, match="unknown section"):
            load_config(overrides=["optimizer.lr=1"])

    def test_wrong_type_names_key_and_value(self):
        with pytest.raises(ConfigError, match=r"'data.batch_size' must be an integer, got 'many'"):
            load_config(overrides=["data.batch_size=many"])
        with pytest.raises(ConfigError, match=r"'run.progress' must be true or false"):
            load_config(overrides=["run.progress=1"])
        with pytest.raises(ConfigError, match=r"'sensor.light_range' must be a list of 2"):
            load_config(overrides=["sensor.light_range=[1.0]"])

    @pytest.mark.parametrize(
        ("override", "key"),
        [
            ("optim.lr=-1", "optim.lr"),
            ("sensor.light_range=[10, 1]", "sensor.light_range"),
            ("sensor.read_noise_range=[0, 2]", "sensor.read_noise_range"),
            ("sensor.light_unit=candela", "sensor.light_unit"),
            ("data.size=[63, 64]", "data.size"),
            ("run.device=tpu", "run.device"),
            ("optim.name=lion", "optim.name"),
            ("loss.rec_l1=0", "loss.rec_l1"),
        ],
    )
    def test_out_of_range_names_key(self, override, key):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load_config(overrides=[override])

    def test_bad_stage_table_and_bad_toml(self, tmp_path):
        with pytest.raises(ConfigError, match="stage"):
            load_config(write(tmp_path, "[stage.pretrain.optim]\nlr = 1\n"))
        with pytest.raises(ConfigError, match="not valid TOML"):
            load_config(write(tmp_path, "[optim\n"))

    def test_missing_file(self, tmp_path):
        with pytest.raises(FileNotFoundError, match="does not exist"):
            load_config(tmp_path / "nope.toml")


class TestSavedConfig:
    def test_toml_round_trip(self, tmp_path):
        config = load_config(
            overrides=[
                "data.root=data/x",
                "data.size=[64, 32]",
                "model.num_classes=7",
                "sensor.val_light=[1.5, 3, 30]",
                "sensor.analogue_gain=4",
                "run.max_steps=12",
                "init.isp=runs/a/best.pt",
            ]
        )
        config.save(tmp_path / "config.toml")
        again = load_config(tmp_path / "config.toml")
        assert again == config
        assert again.sensor.val_light == (1.5, 3.0, 30.0)

    def test_defaults_round_trip(self, tmp_path):
        TrainConfig().save(tmp_path / "d.toml")
        assert load_config(tmp_path / "d.toml") == TrainConfig()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
@pytest.mark.parametrize("stage", STAGES)
def test_committed_configs_resolve_for_every_stage(path, stage):
    from edge_isp.model.registry import get_config
    from edge_isp.train.stages import check_stage

    config = load_config(path, stage=stage)
    check_stage(stage, config.model.name, get_config(config.model.name).task)


def test_committed_configs_exist():
    assert {p.name for p in CONFIGS} >= {"smoke.toml", "classification.toml", "detection.toml"}
