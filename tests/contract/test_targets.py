"""Build targets: the shipped TOML files load, and every bad key is refused by name."""

from __future__ import annotations

import pytest

from edge_isp.contract.targets import Target, TargetError, load_target, shipped_targets
from edge_isp.errors import MissingFileError

BASE = {"name": "t", "precision": "int8", "input_size": [640, 480], "memory_pool_mb": 1024}


class TestShipped:
    def test_the_five_boards_are_shipped(self):
        assert set(shipped_targets()) == {"orin-nano", "orin-nx", "agx-orin", "xavier-nx", "x86-gpu"}

    @pytest.mark.parametrize("name", ["orin-nano", "orin-nx", "agx-orin", "xavier-nx", "x86-gpu"])
    def test_each_loads_at_the_study_size(self, name):
        target = load_target(name)
        assert target.name == name
        assert target.input_size == (640, 480)
        assert target.packed_size == (320, 240)

    def test_dla_boards_fall_back_to_the_gpu(self):
        nx = load_target("orin-nx")
        assert nx.dla_core == 0 and nx.gpu_fallback and nx.precision in ("fp16", "int8")
        assert load_target("orin-nano").dla_core is None  # the Orin Nano has no DLA

    def test_load_by_path_equals_by_name(self):
        from edge_isp.shipped import shipped_dir

        assert load_target(shipped_dir("targets") / "orin-nano.toml") == load_target("orin-nano")


class TestValidation:
    def test_minimal_target_takes_defaults(self):
        t = Target.from_dict(dict(BASE))
        assert (t.batch, t.dla_core, t.gpu_fallback, t.builder_optimization_level) == (1, None, True, None)

    @pytest.mark.parametrize(
        ("key", "value", "words"),
        [
            ("precision", "int4", ["precision", "fp32, fp16, int8", "int4"]),
            ("input_size", [640, 470], ["input_size", "multiple of 32", "470"]),
            ("input_size", [640], ["input_size", "two integers"]),
            ("input_size", [640.0, 480], ["input_size", "two integers"]),
            ("batch", 0, ["batch", ">= 1", "0"]),
            ("memory_pool_mb", -5, ["memory_pool_mb", "-5"]),
            ("dla_core", -1, ["dla_core", "-1"]),
            ("gpu_fallback", "yes", ["gpu_fallback", "true or false"]),
            ("tensorrt_version", "ten", ["tensorrt_version", "10.3"]),
            ("builder_optimization_level", 7, ["builder_optimization_level", "0..5", "7"]),
        ],
    )
    def test_bad_values_name_key_expected_and_got(self, key, value, words):
        with pytest.raises(TargetError) as info:
            Target.from_dict({**BASE, key: value}, origin="board.toml")
        message = str(info.value)
        assert message.startswith("board.toml: ")
        for word in words:
            assert word in message

    def test_unknown_key_lists_the_valid_ones(self):
        with pytest.raises(TargetError, match=r"unknown key\(s\) 'workspace'.*memory_pool_mb"):
            Target.from_dict({**BASE, "workspace": 1})

    def test_missing_key(self):
        data = dict(BASE)
        del data["precision"]
        with pytest.raises(TargetError, match=r"missing key.*'precision'"):
            Target.from_dict(data)

    def test_dla_cannot_run_fp32(self):
        with pytest.raises(TargetError, match=r"DLA.*fp16 or int8"):
            Target.from_dict({**BASE, "precision": "fp32", "dla_core": 0})

    def test_errors_are_value_errors(self):
        assert issubclass(TargetError, ValueError)

    def test_replace_revalidates(self):
        t = Target.from_dict(dict(BASE))
        assert t.replace(input_size=(320, 256)).input_size == (320, 256)
        with pytest.raises(TargetError, match=r"input_size"):
            t.replace(input_size=(321, 256))


class TestFiles:
    def test_bad_toml_names_the_file(self, tmp_path):
        path = tmp_path / "bad.toml"
        path.write_text("name = [")
        with pytest.raises(TargetError, match=r"bad.toml: not valid TOML"):
            load_target(path)

    def test_missing_target_lists_the_shipped_ones(self):
        with pytest.raises(MissingFileError, match=r"orin-nano"):
            load_target("no-such-board")

    def test_file_errors_carry_the_path(self, tmp_path):
        path = tmp_path / "b.toml"
        path.write_text('name = "b"\nprecision = "fp64"\ninput_size = [64, 64]\nmemory_pool_mb = 1\n')
        with pytest.raises(TargetError, match=r"b\.toml: key 'precision'"):
            load_target(path)
