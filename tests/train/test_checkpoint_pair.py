"""The last.pt/best.pt pair under kills: written best first, completed by a resume of a
finished run, and never silently overwritten by a new run in the same folder."""

from __future__ import annotations

import json

import pytest

from edge_isp.cli import main
from edge_isp.errors import InvalidInputError
from edge_isp.train import loop
from edge_isp.train.checkpoint import load_checkpoint
from edge_isp.train.loop import Trainer, train


def pair(folder) -> tuple[dict, dict]:
    return load_checkpoint(folder / "last.pt"), load_checkpoint(folder / "best.pt")


def test_a_folder_holding_a_run_is_refused_without_resume_or_force(cls_data, tmp_path_factory, tiny_config, capsys):
    tmp_path, configs = tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("configs")
    train("joint", tiny_config(cls_data, tmp_path, "run.max_steps=2"))
    before = (tmp_path / "last.pt").read_bytes()
    with pytest.raises(InvalidInputError, match=r"already holds a run .*--resume.*--force.*--out"):
        Trainer("joint", tiny_config(cls_data, tmp_path))
    assert (tmp_path / "last.pt").read_bytes() == before
    with pytest.raises(SystemExit) as exit_info:
        tiny_config(cls_data, tmp_path).save(configs / "c.toml")
        main(["train", "joint", "--config", str(configs / "c.toml")])
    assert exit_info.value.code == 1 and "--resume" in capsys.readouterr().err
    again = train("joint", tiny_config(cls_data, tmp_path, "run.epochs=1"), force=True)
    last, best = pair(tmp_path)
    assert again.finished and last["global_step"] == best["global_step"] == 4 and last["epoch"] == 1


def test_resume_of_a_finished_run_restores_a_missing_best_and_the_history(cls_data, tmp_path, tiny_config):
    # One epoch: its end is the best, so last.pt holds the best weights.
    done = train("joint", tiny_config(cls_data, tmp_path, "run.epochs=1"))
    last, best = pair(tmp_path)
    assert last["best_step"] == best["global_step"] == last["global_step"] == 4
    # What a kill between the two writes of the old order (last.pt, then best.pt) left.
    (tmp_path / "best.pt").unlink()
    (tmp_path / "history.json").write_text('{"stage": "joint", "epochs": []}')
    again = train("joint", tiny_config(cls_data, tmp_path, "run.epochs=1"), resume=True)
    assert again.finished and again.global_step == done.global_step
    last, best = pair(tmp_path)
    assert best["global_step"] == last["best_step"] and best["best_metric"] == last["best_metric"]
    history = json.loads((tmp_path / "history.json").read_text())
    assert [e["step"] for e in history["epochs"]] == [e["step"] for e in last["history"]] == [4]


def test_best_is_written_before_last(cls_data, tmp_path, tiny_config, monkeypatch):
    written = []
    real = loop.save_checkpoint
    monkeypatch.setattr(loop, "save_checkpoint", lambda path, state: (written.append(path.name), real(path, state)))
    train("joint", tiny_config(cls_data, tmp_path, "run.epochs=1"))
    assert written == ["best.pt", "last.pt"]


def test_a_kill_between_best_and_last_is_redone_by_resume(cls_data, tmp_path, tiny_config, monkeypatch):
    real = loop.save_checkpoint
    trainer = Trainer("joint", tiny_config(cls_data, tmp_path))

    def die_before_the_final_last(path, state):
        if path.name == "last.pt" and state["epoch"] == 2:
            raise KeyboardInterrupt  # kill -9 after best.pt was written
        real(path, state)

    monkeypatch.setattr(loop, "save_checkpoint", die_before_the_final_last)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    monkeypatch.setattr(loop, "save_checkpoint", real)
    assert load_checkpoint(tmp_path / "last.pt")["global_step"] == 4  # one save behind
    resumed = train("joint", tiny_config(cls_data, tmp_path), resume=True)
    last, best = pair(tmp_path)
    assert resumed.finished and last["global_step"] == 8
    assert best["global_step"] == last["best_step"]
    assert {p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")} == set()


def test_best_step_of_a_checkpoint_older_than_the_field():
    history = [{"step": 4, "accuracy": 0.5}, {"step": 8, "accuracy": 0.75}, {"step": 12, "accuracy": 0.6}]
    assert loop._best_step(history, 0.75, "accuracy") == 8
    assert loop._best_step(history, None, "accuracy") is None and loop._best_step([], 0.5, "accuracy") is None
    ties = [{"step": 4, "accuracy": 0.5}, {"step": 8, "accuracy": 0.5}]
    assert loop._best_step(ties, 0.5, "accuracy") == 4  # only a better epoch replaces best.pt
