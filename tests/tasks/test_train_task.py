"""The train task outside a Prefect run (`.fn()`): its closing log line must not need a run context."""

from __future__ import annotations

from types import SimpleNamespace

import tasks.train


def test_train_task_logs_outside_a_flow(monkeypatch, tmp_path, caplog):
    result = SimpleNamespace(
        cell="tiny-64-ade20k", iterations=2, best_miou=0.5, model_dir=tmp_path, best_dir=None
    )
    monkeypatch.setattr(tasks.train, "train", lambda *args, **kwargs: result)
    monkeypatch.setattr(tasks.train, "cell_for_data", lambda *args: None)
    with caplog.at_level("INFO", logger="segopt.train"):
        out = tasks.train.train_model.fn(str(tmp_path), None, False, None, str(tmp_path), track=False)
    assert out is result and "trained tiny-64-ade20k: 2 iterations" in caplog.text
