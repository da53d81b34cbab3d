"""Shared fixtures: experiment files in temp dirs (helpers live in `tests/helpers.py`)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# A test suite started as a background job of a non-interactive shell (`make test &`, a CI step run with
# `&`) inherits SIGINT ignored, and so would every sweep.py the tests start: the tool rightly leaves an
# ignored SIGINT alone, so the Ctrl-C tests would see exit 0. They test Ctrl-C, so Ctrl-C must be deliverable.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def write_experiment(tmp_path):
    """Write an experiment mapping (or raw text) to tmp_path and return its path."""

    def write(data, name: str = "exp.yaml") -> Path:
        path = tmp_path / name
        path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
        return path

    return write


@pytest.fixture(scope="session")
def tiny_report(tmp_path_factory):
    """One tiny sweep and two reports of it through the API (the 4-run factorial of two switches at depth 1 x 2
    seeds on 8x8 digits, a network that learns, trained as `make sweep` trains it: one stacked program of its 8
    trainings), shared by the tests that need a real report and registered model: (folder, experiment, study,
    report, the second report). The stores are `folder / "mlruns"`."""
    import augsweep
    from tests.helpers import learning_experiment

    folder = tmp_path_factory.mktemp("api")
    exp_dict = learning_experiment(name="api-tiny", repeats=2, trials=4, sampler="factorial", search_space={
        "depth": 1, "augmentations": {"flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]}}})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        exp = augsweep.load_experiment(exp_dict)
        study = augsweep.sweep(exp, mlruns=folder / "mlruns", progress=False, members="auto")
        rep = augsweep.report(exp, mlruns=folder / "mlruns", out=folder / "report")
        again = augsweep.report(exp, mlruns=folder / "mlruns", out=folder / "report2")
    return folder, exp, study, rep, again


@pytest.fixture(scope="session")
def servers():
    """A real PostgreSQL (temporary data folder, free port, 127.0.0.1) and a real `mlflow server` on it,
    for the whole session; stopped (and the folder removed) at the end, whatever happened."""
    import shutil

    from tests.cluster import postgres_available, start_servers

    if not postgres_available():
        if os.environ.get("AUGSWEEP_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (.ci/run installs it: apt-get install postgresql)")
    saved = os.environ.get("PGPASSFILE")
    running = start_servers()  # exports PGPASSFILE: the password never goes into a URL or argv
    try:
        yield running
    finally:
        if saved is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = saved
        running.stop()
        shutil.rmtree(running.root, ignore_errors=True)


# ----------------------------------------------------------------------------- tiers: `make test-fast` and `make test`
# `make test-fast` (`-m "not slow"`) is the unit tier; `make test` runs everything. A test is `slow` when it drives a
# real browser or a real PostgreSQL + MLflow server (the `browser` marker, the `servers` fixture), is marked slow
# in its file, or is one of MEASURED_SLOW: over SLOW_SECONDS (setup + call + teardown) in a full `-n 2` run on a
# two-core machine (measured 2026-12-07 on a shared one, about 1.8x an idle machine's times; the first test of a
# worker to use TensorFlow also pays its import). Every run prints the tests not marked slow that took longer
# (`pytest_terminal_summary` below), so the list is kept up to date from the suite's own numbers.
SLOW_SECONDS = 4.0
TESTS = Path(__file__).resolve().parent

MEASURED_SLOW = frozenset({
    'tests/test_api.py::test_skipped_publishing_says_why_in_the_cli_and_the_api',
    'tests/test_api.py::test_sweep_returns_the_study',
    'tests/test_augment_ranges.py::test_each_augmentation_draws_its_stated_range[flip-horizontal]',
    'tests/test_bench.py::test_benchmark_runs_tiny[bookkeeping.py-share of a 10 s trial]',
    'tests/test_bench_processes.py::test_benchmark_runs_tiny[determinism.py-| deterministic ops (default) |]',
    'tests/test_bench.py::test_benchmark_runs_tiny[gpu.py-GFLOP per training image]',
    'tests/test_bench.py::test_benchmark_runs_tiny[group.py-| branches | 2 |]',
    'tests/test_bench.py::test_benchmark_runs_tiny[overhead.py-ratio augsweep / plain Keras:]',
    'tests/test_bench_processes.py::test_benchmark_runs_tiny[report_scale.py-files byte-identical across rounds]',
    'tests/test_bench.py::test_benchmark_runs_tiny[reuse.py-fixed cost per repeat:]',
    'tests/test_bench_processes.py::test_benchmark_runs_tiny[startup.py-sweep.py --help median:]',
    'tests/test_bench.py::test_benchmark_runs_tiny[streaming.py-| streamed + cache |]',
    'tests/test_bench.py::test_benchmark_runs_tiny[throughput.py-| none |]',
    'tests/test_bench.py::test_storage_benchmark_runs_tiny',
    'tests/test_cli_verbs.py::test_the_api_and_the_command_line_take_the_same_dispatch',
    'tests/test_experiment_fuzz.py::test_every_experiment_file_is_accepted_or_refused_in_one_line_and_writes_nothing',
    'tests/test_experiment_fuzz.py::test_the_bad_input_campaign_is_answered_clearly_without_a_crash_a_hang_or_a_write',
    'tests/test_fault_campaign.py::test_store_faults_are_refused_in_one_line_or_reported_and_never_written',
    'tests/test_group_training.py::test_a_diverging_member_ends_alone_and_leaves_the_others_untouched',
    'tests/test_group_training.py::test_a_sweep_with_members_equals_the_reference_path_and_reproduces_exactly',
    'tests/test_group_training.py::test_each_member_equals_its_training_alone',
    'tests/test_group_training.py::test_until_converged_stops_each_member_at_its_own_epoch',
    'tests/test_inference.py::test_aa_whole_reports_when_depth_is_a_factor_of_the_plan',
    'tests/test_inference.py::test_aa_whole_reports_with_depth_contrasts',
    'tests/test_inference.py::test_ablation_aa_and_power',
    'tests/test_inference.py::test_ablation_whole_reports_aa_both_comparisons_and_interaction_contrasts',
    'tests/test_inference.py::test_power_when_depth_is_a_factor_of_the_plan',
    'tests/test_learned.py::test_a_folder_that_cannot_be_learned_gets_no_verdict_no_export_no_model',
    'tests/test_learned.py::test_nothing_learned_is_rarely_called_learned',
    'tests/test_notebook.py::test_quickstart_notebook_executes',
    'tests/test_report_bulk.py::test_bulk_curves_are_the_per_run_downloads',
    'tests/test_report_bulk.py::test_report_bytes_are_the_same_read_in_bulk_or_run_by_run',
    'tests/test_report_export.py::test_exported_block_in_a_fresh_process_matches_the_sweeps_layers',
    'tests/test_report_export_standalone.py::test_registered_model_loads_as_printed_from_any_folder',
    'tests/test_report_first_screen.py::test_first_screen_fits_and_the_new_files_are_written',
    'tests/test_report_sweep.py::test_one_trial_is_too_few_and_always_on_is_explained',
    'tests/test_report_sweep.py::test_report_says_when_a_complete_trials_curves_are_missing',
    'tests/test_resample.py::test_a_folder_study_made_on_one_split_is_told_how_to_continue_it',
    'tests/test_resample.py::test_sweep_and_ablation_runs_log_their_replicates_split_and_reproduce_retrains_on_it',
    'tests/test_runs_ablation.py::test_a_failed_ablation_exits_1_naming_failures_and_the_report_shows_them',
    'tests/test_runs_ablation.py::test_a_one_augmentation_base_shares_trainings_and_still_measures_affinity',
    'tests/test_runs_ablation.py::test_ablation_end_to_end_resume_report_and_reproduce',
    'tests/test_runs_failures.py::test_consecutive_failures_stop_the_sweep',
    'tests/test_runs_failures.py::test_diverging_trial_is_scored_not_dropped',
    'tests/test_runs_failures.py::test_raising_augmentation_fails_with_traceback_artifact',
    'tests/test_runs_recovery.py::test_repair_marks_stale_runs_without_training',
    'tests/test_runs_reproduce.py::test_a_training_logged_without_deterministic_ops_is_compared_within_seed_noise',
    'tests/test_runs_sweep.py::test_a_study_created_before_a_late_key_existed_resumes',
    'tests/test_runs_sweep.py::test_a_study_from_before_contrast_changed_meaning_is_refused',
    'tests/test_runs_sweep.py::test_changed_experiment_is_refused_on_resume_naming_the_keys',
    'tests/test_runs_sweep.py::test_resume_continues_to_the_total_budget',
    'tests/test_runs_sweep.py::test_sequential_sweep_is_deterministic',
    'tests/test_runs_sweep.py::test_sweep_logs_parent_and_nested_trial_runs',
    'tests/test_runtime_interrupts.py::test_ctrl_c_in_each_window_of_a_sweep_exits_130[between_trials]',
    'tests/test_runtime_interrupts.py::test_ctrl_c_in_each_window_of_a_sweep_exits_130[final_summary]',
    'tests/test_runtime_interrupts.py::test_ctrl_c_in_each_window_of_a_sweep_exits_130[held_at_return]',
    'tests/test_runtime_interrupts.py::test_ctrl_c_mid_trial_prints_one_line_not_optunas_traceback',
    'tests/test_stores_integrity.py::test_moved_stores_are_read_by_their_layout_and_their_old_place_is_not_recreated',
    'tests/test_training_fashion.py::test_real_fashion_mnist_end_to_end',
    'tests/test_training_jax.py::test_one_trial_under_jax_is_trained_and_logged',
    'tests/test_training_placement.py::test_data_placement_trains_the_same_numbers_as_in_model_placement',
    'tests/test_training_reuse.py::test_a_new_magnitude_or_structure_builds_afresh',
    'tests/test_training_reuse.py::test_mixed_precision_survives_the_session_reset',
    'tests/test_training_stream.py::test_streaming_sweep_logs_its_pipeline_and_bad_files_exit_2',
    'tests/test_training_transfer.py::test_application_base_on_grayscale_images_trains',
    'tests/test_training_transfer.py::test_frozen_base_sweep_end_to_end_reports_that_depth_is_not_searched',
    'tests/test_verdicts_offnominal.py::test_ablation_of_the_best_trial_on_fresh_seeds[ablation-seeds]',
    'tests/test_verdicts_offnominal.py::test_ablation_of_the_best_trial_on_fresh_seeds[sweep-seeds]',
    'tests/test_verdicts_offnominal.py::test_live_reports_decide_on_finished_blocks_only',
    'tests/test_verdicts_offnominal.py::test_one_alpha_for_a_report_with_sweep_and_ablation',
    'tests/test_training_data.py::test_skip_mode_sweep_trains_on_the_rest',
})


# The longest files, longest first (test-seconds in the same run). `-n 2 --dist loadfile` hands out files in
# collection order, so these start first and the short files fill in the end: no worker is left alone with a
# long file while the other one idles.
LONGEST_FIRST = ["test_bench.py", "test_printed_commands.py", "test_fault_campaign.py", "test_stores_cluster.py",
                 "test_bench_processes.py", "test_runs_ablation.py", "test_runs_workers.py", "test_report_sweep.py",
                 "test_runs_reproduce.py", "test_runs_factorial.py", "test_cotrain.py", "test_mlflow_ui.py",
                 "test_group_training.py", "test_stacked_training.py", "test_runs_sweep.py"]


def _shared_fixtures(item) -> set:
    """The module- or session-wide fixtures of this test suite that `item` uses (each built once, by the first test
    that asks for it): their definitions, so that a session-wide one is the same across files."""
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return {d[-1] for d in defs if d and d[-1].scope in ("module", "package", "session")
            and Path(getattr(getattr(d[-1].func, "__code__", None), "co_filename", "/")).parent == TESTS}


def pytest_collection_modifyitems(config, items):
    slow = [item for item in items if item.get_closest_marker("slow") is not None or item.nodeid in MEASURED_SLOW
            or item.get_closest_marker("browser") is not None or "servers" in getattr(item, "fixturenames", ())]
    # A test that shares a module- or session-wide fixture with a slow test is slow too: in the fast tier it would
    # build that fixture itself (a swept store, a report), the cost the slow test was measured with.
    costly = {d for item in slow for d in _shared_fixtures(item)}
    for item in items:
        if item in slow or _shared_fixtures(item) & costly:
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its own order


_TOOK: dict[str, float] = {}
_SLOW: set[str] = set()


def pytest_runtest_logreport(report):
    _TOOK[report.nodeid] = _TOOK.get(report.nodeid, 0.0) + report.duration
    if "slow" in report.keywords:
        _SLOW.add(report.nodeid)


def pytest_terminal_summary(terminalreporter):
    unmarked = sorted(((s, n) for n, s in _TOOK.items() if s > SLOW_SECONDS and n not in _SLOW), reverse=True)
    if unmarked:
        terminalreporter.section(f"not marked slow but over {SLOW_SECONDS:.0f} s (add to MEASURED_SLOW in "
                                 "tests/conftest.py, or make them faster)")
        for seconds, nodeid in unmarked:
            terminalreporter.write_line(f"{seconds:6.1f}s {nodeid}")
