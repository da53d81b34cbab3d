"""The report's load step states what it could not read: a sweep's parent run that the tracking store cannot
give back (a deleted run, a lost server) is named with its reason in the provenance (and, by `analyse_sweep`,
in the warnings), never turned silently into `unknown`."""

from augsweep.experiment import load_experiment
from augsweep.report.inputs import ParentRun
from augsweep.report.sweep_load import load_parent, provenance
from augsweep.stores.records import StudyRecord
from augsweep.stores.tracking import client_for
from tests.helpers import stores, tiny_experiment

MISSING = "0123456789abcdef0123456789abcdef"


def test_a_parent_run_that_cannot_be_read_is_stated_with_its_reason(write_experiment, tmp_path):
    exp = load_experiment(write_experiment(tiny_experiment(name="lost")))
    s = stores(exp, tmp_path / "mlruns")
    s.make_dirs()
    parent = load_parent(client_for(s.tracking_uri), s, MISSING)
    assert parent.problem.startswith(f"the sweep's parent run {MISSING} could not be read from ")
    assert "Exception" in parent.problem and parent.tags == parent.params == {}
    shown = provenance(exp, s, StudyRecord(parent_run_id=MISSING), parent)
    assert shown["git_commit"] == "unknown" and shown["unreadable"] == parent.problem
    assert "unreadable" not in provenance(exp, s, StudyRecord(), ParentRun())  # nothing to read: nothing to say
    assert load_parent(client_for(s.tracking_uri), s, None) == ParentRun()

