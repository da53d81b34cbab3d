"""The process around a run: TensorFlow's start-up chatter is filtered, real native errors are not."""

from __future__ import annotations

import os

from augsweep import runtime
from tests.helpers import run_cli, tiny_experiment


def test_known_native_noise_is_dropped_and_anything_else_passes(capfd):
    with runtime.filtered_native_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may see ...\n")
        os.write(2, b"E0000 00:00:1 some_op.cc:1] a real failure the user must see\n")
    err = capfd.readouterr().err
    assert err == "E0000 00:00:1 some_op.cc:1] a real failure the user must see\n"


def test_sweep_starts_with_our_line_not_tensorflows(tmp_path, write_experiment):
    result = run_cli("sweep.py", write_experiment(tiny_experiment(trials=1)), "--mlruns", tmp_path / "m")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("augsweep: study 'tiny'")
    assert "no GPU found" in result.stdout.splitlines()[0]
    for noise in ("absl::InitializeLog", "oneDNN", "cudart_stub", "cuInit", "cpu_feature_guard"):
        assert noise not in result.stderr, result.stderr
