"""Ctrl-C exits 130 in every window: each window is hit on purpose (the signal is sent
from inside the window), not by timing. The sweeps are real (tiny synthetic data, in-process)."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from augsweep import cli, runtime
from augsweep.runs import sweep as sweep_module
from tests.helpers import read_stores, tiny_experiment


def _ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)


def _call(main, argv) -> object:
    """`main(argv)`'s exit code, or "escaped" when a KeyboardInterrupt got out of it (a traceback)."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        return "escaped"


def test_a_store_write_on_another_thread_never_corrupts_the_main_threads_hold():
    """The window that made the loaded-machine run exit 0: the background finishing thread's store write
    overlapping the main thread's hold/interruptible left the hold count at -1, and every later Ctrl-C was
    held for ever. Interleaved here step by step with events."""
    entered, release = threading.Event(), threading.Event()

    def background():
        with runtime.store_write():
            entered.set()
            release.wait(10)

    previous = signal.signal(signal.SIGINT, runtime.interrupt_handler)
    try:
        with runtime.store_write():
            with runtime.interruptible():
                t = threading.Thread(target=background)
                t.start()
                assert entered.wait(10)
            release.set()
            t.join(10)
        with pytest.raises(KeyboardInterrupt):
            _ctrl_c()  # raised at once: nothing holds it now
            for _ in range(1000):  # (give the handler a few bytecodes, should it be delayed)
                pass
    finally:
        signal.signal(signal.SIGINT, previous)
        runtime.signals._HOLD.update(depth=0, pending=None)


def test_ctrl_c_before_the_handlers_would_have_been_installed_exits_130(monkeypatch, tmp_path, capsys):
    """The window before `run_main`: argument parsing ran under Python's default handler (a traceback)."""
    real = cli.sweep_parser

    def parser_then_ctrl_c():
        _ctrl_c()
        return real()

    monkeypatch.setattr(cli, "sweep_parser", parser_then_ctrl_c)
    assert _call(cli.sweep_main, [str(tmp_path / "x.yaml")]) == 130
    assert "interrupted" in capsys.readouterr().err


def _ctrl_c_experiment(trials: int) -> dict:
    return tiny_experiment(name="ctrlc", trials=trials, train={"epochs": 1},
                           dataset={"image_size": [8, 8], "samples": 48})


@pytest.fixture
def experiment_file(write_experiment):
    """A one-trial sweep: every window but `between_trials` (which needs a trial after the first) lies within it."""
    return write_experiment(_ctrl_c_experiment(1))


@pytest.mark.parametrize("window", ["between_trials", "final_summary", "held_at_return"])
def test_ctrl_c_in_each_window_of_a_sweep_exits_130(monkeypatch, tmp_path, write_experiment, capsys, window):
    experiment_file = write_experiment(_ctrl_c_experiment(2 if window == "between_trials" else 1))
    mlruns = tmp_path / "m"
    if window == "between_trials":  # after trial 0 is told to Optuna, before trial 1 starts
        real = sweep_module._Progress.__call__

        def progress_then_ctrl_c(self, study, trial):
            real(self, study, trial)
            if trial.number == 0:
                _ctrl_c()

        monkeypatch.setattr(sweep_module._Progress, "__call__", progress_then_ctrl_c)
    elif window == "final_summary":
        real_best = cli._best_trials

        def summary_then_ctrl_c(*args):
            _ctrl_c()
            return real_best(*args)

        monkeypatch.setattr(cli, "_best_trials", summary_then_ctrl_c)
    else:  # an interruption held by a store write that ends without raising it (the hold left standing)
        real_sweep = cli._sweep

        def sweep_then_held(args):
            code = real_sweep(args)
            runtime.signals._HOLD["depth"] += 1
            _ctrl_c()
            return code

        monkeypatch.setattr(cli, "_sweep", sweep_then_held)
    code = _call(cli.sweep_main, [str(experiment_file), "--mlruns", str(mlruns)])
    assert code == 130, capsys.readouterr()
    assert runtime.signals._HOLD == {"depth": 0, "pending": None, "requested": None}
    states = [t.state.name for t in read_stores(experiment_file, mlruns).trials]
    assert states[0] == "COMPLETE" and "RUNNING" not in states


def test_ctrl_c_mid_trial_prints_one_line_not_optunas_traceback(monkeypatch, tmp_path, experiment_file, capfd):
    """Optuna logged its 32-line KeyboardInterrupt traceback before the one line; the trial is still failed in
    both stores and queued again."""
    from augsweep.runs import objective

    real = objective.train_repeat

    def train_then_ctrl_c(*args, **kwargs):
        done = real(*args, **kwargs)
        _ctrl_c()
        return done

    monkeypatch.setattr(objective, "train_repeat", train_then_ctrl_c)
    import logging

    printed: list[logging.LogRecord] = []  # what Optuna's own handler (on its library logger) would print
    handler = logging.Handler()
    handler.emit = printed.append
    logging.getLogger("optuna").addHandler(handler)
    mlruns = tmp_path / "m"
    try:
        code = _call(cli.sweep_main, [str(experiment_file), "--mlruns", str(mlruns)])
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    err = capfd.readouterr().err
    assert code == 130, err
    assert not [r for r in printed if r.levelno >= logging.WARNING], [r.getMessage() for r in printed]
    assert "Traceback" not in err and "failed with" not in err, err
    assert [line for line in err.splitlines() if line.strip()][-1].startswith("interrupted: ")
    view = read_stores(experiment_file, mlruns)
    assert [t.state.name for t in view.trials] == ["FAIL", "WAITING"]
    assert {r.info.status for r in view.runs if r.data.tags.get("kind") == "trial"} == {"KILLED"}


def test_an_unexpected_error_is_one_line_naming_the_log_that_holds_its_traceback(monkeypatch, capsys):
    def fails(args):
        raise RuntimeError("postgresql://u:hunter22@db/x went away\nsecond line of detail")

    monkeypatch.setattr(cli, "_sweep_stores", fails)
    code = cli.sweep_main(["experiments/default.yaml"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    assert lines[0].startswith("error: RuntimeError: postgresql://u:***@db/x went away (full traceback in ")
    log = lines[0].rsplit("full traceback in ", 1)[1].rstrip(")")
    text = open(log).read()
    assert "Traceback" in text and "second line of detail" in text and "hunter22" not in text
    os.unlink(log)


def test_an_interrupt_swallowed_on_its_way_is_delivered_at_the_next_safe_point(capfd, monkeypatch):
    # Python runs a signal handler between any two bytecodes, also inside a finalizer, where the exception it
    # raises is printed ("Exception ignored") and dropped; a Ctrl-C landing there once let a sweep train on and
    # exit 0. The next safe point (each epoch's end, each trial's start) raises it again, and the process's one
    # line is all it prints (not Python's "Exception ignored" traceback before it).
    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)

    def main():
        Finalized()  # collected at once: the interrupt is raised inside __del__ and dropped there
        runtime.raise_if_interrupted()
        return 0

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # Python's own, not pytest's collector
    assert runtime.run_main(main) == 130
    err = capfd.readouterr().err
    assert err.startswith("interrupted: ") and len(err.strip().splitlines()) == 1, err
    assert runtime.run_main(lambda: (runtime.raise_if_interrupted(), 0)[1]) == 0  # answered: nothing left over

