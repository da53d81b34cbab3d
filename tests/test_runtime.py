"""The process around a run: TensorFlow's start-up chatter is filtered, real native errors are not. (That a real
sweep process starts with its own line and shows none of that chatter is proven on the sweep of
tests/test_printed_commands.py run from a folder outside the repository.)"""

from __future__ import annotations

import os

from augsweep import runtime


def test_known_native_noise_is_dropped_and_anything_else_passes(capfd):
    with runtime.filtered_native_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1 port.cc:153] oneDNN custom operations are on. You may see ...\n")
        os.write(2, b"E0000 00:00:1 some_op.cc:1] a real failure the user must see\n")
    err = capfd.readouterr().err
    assert err == "E0000 00:00:1 some_op.cc:1] a real failure the user must see\n"
