"""Per-epoch progress on the terminal, and live MLflow metrics for long trials."""

from __future__ import annotations

import pytest

from augsweep.runs import progress as progress_module
from augsweep.runs.progress import SweepProgress, duration


def test_duration_reads_like_a_clock():
    assert [duration(s) for s in (0, 12.4, 185, 3725)] == ["0s", "12s", "3m05s", "1h02m"]


def test_eta_uses_this_trials_pace_then_the_mean_trial():
    shown = SweepProgress(budget=4, finished=lambda: 1, epochs=5, repeats=2, echo=lambda line: None, tty=False)
    assert shown.eta(epochs_left=3, epoch_seconds=2.0, trials_after=2) == pytest.approx(3 * 2 + 2 * 20)
    shown.trial_seconds += [10.0, 30.0]
    assert shown.eta(epochs_left=0, epoch_seconds=2.0, trials_after=2) == pytest.approx(40)



def test_eta_under_workers_shares_the_rest_of_the_budget():
    # 4 workers on a 32-trial budget, this one has finished 2 trials of 40 s: the others are taken to have
    # finished as many, 4 are running, so 32 - 8 - 4 = 20 trials remain, 5 rounds of 40 s after this trial
    shown = SweepProgress(budget=32, finished=lambda: 2, epochs=5, repeats=2, echo=lambda line: None, tty=False,
                          parallel=4)
    shown.trial_seconds = [40.0, 40.0]
    assert shown.trials_after() == 20
    assert shown.eta(epochs_left=3, epoch_seconds=2.0, trials_after=shown.trials_after()) == pytest.approx(6 + 5 * 40)
    alone = SweepProgress(budget=32, finished=lambda: 2, epochs=5, repeats=2, echo=lambda line: None, tty=False)
    alone.trial_seconds = [40.0, 40.0]
    assert alone.trials_after() == 29  # one process: everything but its finished and its running trial

def test_plain_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.setattr(progress_module, "PLAIN_EVERY", 0.0)
    lines = []
    shown = SweepProgress(budget=3, finished=lambda: 0, epochs=2, repeats=1, echo=lines.append, tty=False)
    trial = shown.trial(0, "d1 flip")
    callback = trial.callback(0)
    callback.on_epoch_end(0, {"val_loss": 0.6931})
    callback.on_epoch_end(1, {"val_loss": 0.5})
    trial.close()
    assert len(lines) == 2 and "t00 repeat 0 epoch 1/2  val_loss 0.6931  sweep ETA" in lines[0]
    assert "epoch 2/2" in lines[1] and len(shown.trial_seconds) == 1


def test_plain_lines_are_throttled(monkeypatch):
    lines = []
    shown = SweepProgress(budget=3, finished=lambda: 0, epochs=50, repeats=1, echo=lines.append, tty=False)
    trial = shown.trial(0, "d1 none")
    for epoch in range(50):
        trial.epoch_end(0, epoch, 0.5)
    assert lines == []  # a short trial prints only its one line per trial (the sweep's)


def test_a_bar_on_a_terminal():
    shown = SweepProgress(budget=2, finished=lambda: 0, epochs=2, repeats=1, echo=print, tty=True)
    trial = shown.trial(3, "d2 rotation")
    trial.epoch_end(0, 0, 0.7)
    text = str(trial.bar)
    assert "t03 d2 rotation" in text and "1/2" in text and "val_loss 0.7000" in text and "sweep ETA" in text
    trial.close()
    assert trial.bar is None


def test_long_trials_write_each_epoch_as_it_ends(tmp_path, monkeypatch):
    import time

    from augsweep.stores import tracking

    tracker = tracking.Tracker(tracking.tracking_uri_for(tmp_path), "live", tracking.artifact_root_for(tmp_path))
    run_id = tracker.start_trial("t00 d1 none", {"depth": 1}, {"kind": "trial"})

    short = tracker.epoch_logger(run_id, 0, since=time.perf_counter())
    short.on_epoch_end(0, {"val_loss": 0.7})
    assert tracker.client.get_metric_history(run_id, "repeat0/val_loss") == []  # batched at the end
    short.on_train_end()
    assert len(tracker.client.get_metric_history(run_id, "repeat0/val_loss")) == 1

    monkeypatch.setattr(tracking, "LIVE_AFTER", 0.0)
    live = tracker.epoch_logger(run_id, 1, since=time.perf_counter())
    live.on_epoch_end(0, {"val_loss": 0.7})
    assert [m.value for m in tracker.client.get_metric_history(run_id, "repeat1/val_loss")] == [0.7]
    live.on_epoch_end(1, {"val_loss": 0.6})  # within LIVE_EVERY of the last write: held until the next one
    assert [m.step for m in tracker.client.get_metric_history(run_id, "repeat1/val_loss")] == [0]
    monkeypatch.setattr(tracking, "LIVE_EVERY", 0.0)
    live.on_epoch_end(2, {"val_loss": 0.5})
    assert [m.step for m in tracker.client.get_metric_history(run_id, "repeat1/val_loss")] == [0, 1, 2]
    live.on_epoch_end(3, {"val_loss": 0.4})
    live.on_train_end()
    assert [m.step for m in tracker.client.get_metric_history(run_id, "repeat1/val_loss")] == [0, 1, 2, 3]
