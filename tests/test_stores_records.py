"""`stores.records` reads back what the writers store, and the flat-key format round-trips."""

import optuna

from augsweep.experiment.space import TrialConfig, aug_key, parse_aug_key
from augsweep.stores import records as rec


def test_trial_record_reads_back_what_was_stored():
    attrs = {rec.CONFIG: TrialConfig(2, augmentations=(("flip", (("mode", "horizontal"),)),)).flat(["flip"]),
             **rec.design_attrs(3, 5), rec.MLFLOW_RUN_ID: "abc", rec.CONFIG_NAME: "d2 flip",
             rec.REPEATS: [{"best_val_loss": 0.5}], rec.WORKER: {"host": "h", "pid": 1, "start": None}}
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.COMPLETE, value=0.5, user_attrs=attrs)
    record = rec.TrialRecord.from_trial(trial)
    assert (record.block, record.design_point, record.run_name) == (3, 5, f"t{trial.number:02d} d2 flip")
    assert record.to_attrs() == attrs


def test_a_retry_carries_its_design_slot_and_moves_to_fresh_seeds():
    trial = optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={**rec.design_attrs(1, 2)})
    user, system = rec.retry_attrs(trial, fresh_seeds=True)
    assert user == {rec.RETRY_OF: trial.number, rec.BLOCK: 1, rec.DESIGN_POINT: 2, rec.SEED_ATTEMPT: 1}
    assert system[rec.SYS_FAILED_TRIAL] == trial.number and not rec.is_retry(trial)


def test_study_record_round_trips():
    stored = rec.StudyRecord(parent_run_id="p", experiment={"name": "e"}, stopped="decided")
    assert rec.StudyRecord(**{f: getattr(stored, f) for f in stored.__dataclass_fields__}).to_attrs() \
        == {rec.ATTR_PARENT_RUN: "p", rec.ATTR_EXPERIMENT: {"name": "e"}, rec.ATTR_STOPPED: "decided"}
    assert stored.experiment_name("study") == "e" and rec.StudyRecord().experiment_name("study") == "study"


def test_flat_keys_round_trip():
    assert (aug_key("flip"), aug_key("rotation", "factor")) == ("aug_flip", "aug_rotation_factor")
    assert parse_aug_key("aug_rotation_factor", ["rotation"]) == ("rotation", "factor")
    assert parse_aug_key("aug_my_warp_factor", ["my_warp"]) == ("my_warp", "factor")
    assert parse_aug_key("aug_flip", ["flip"]) == ("flip", None)
    assert parse_aug_key("depth") is None
    config = TrialConfig(3, augmentations=(("rotation", (("factor", 0.2),)),))
    assert TrialConfig.from_flat(config.flat(["rotation", "flip"])) == config
