"""`seqflow charlm tune` end to end through the CLI, in this process, on the session's Prefect server: a tiny search
(a text the test writes, 2 trials of 1 epoch) leaves a FINISHED parent run with its trials nested under it in the
corpus's charlm experiment, a study whose trials are scored by validation loss, and a profile file that
`seqflow charlm run --profile FILE` accepts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from seqflow.charlm.sizing import resolve_charlm_run_config
from seqflow.core.runs import ROLE_TAG
from seqflow.core.tuning import STUDY_TAG, TRIAL_STATE_TAG
from tests.conftest import new_empty_store

pytestmark = pytest.mark.slow

STUDY = "ci-charlm"
SPACE = """\
training.learning_rate: {type: float, low: 0.003, high: 0.02, log: true}
training.rnn_units: {type: categorical, choices: [8, 16]}
"""
WORDS = "the quick brown fox jumps over a lazy dog while seven old kings sing of bread and wine".split()


def _text(chars: int) -> str:
    """Seeded sentences of a small vocabulary: enough structure for one epoch to lower the loss."""
    draw, lines = random.Random(0), []
    while sum(len(line) + 1 for line in lines) < chars:
        lines.append(" ".join(draw.choice(WORDS) for _ in range(draw.randint(4, 9))).capitalize() + ".")
    return "\n".join(lines) + "\n"


def test_a_tiny_charlm_search_runs_end_to_end_and_its_profile_trains(prefect_api, tmp_path: Path, capsys):
    from seqflow.cli import build_parser, main

    text = tmp_path / "sentences.txt"
    text.write_text(_text(12_000), encoding="utf-8")
    (tmp_path / "space.yaml").write_text(SPACE)
    new_empty_store(tmp_path / "mlflow.db")
    env_file = tmp_path / "tune.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path / 'mlflow.db'}\nMLFLOW_EXPERIMENT_NAME=seqflow-test\n")
    settings = {"data.block_chars": 1500, "training.epochs": 1, "training.embedding_dim": 8, "training.batch_size": 16,
                "training.seq_length": 40, "training.validation_streams": 4, "training.validation_window": 200,
                "artifacts_dir": tmp_path / "artifacts"}
    capsys.readouterr()
    code = main(["--env-file", str(env_file), "charlm", "tune", "--arch", "char_gru", "--profile", "quick",
                 "--source", f"text:{text}", "--trials", "2", "--space", str(tmp_path / "space.yaml"), "--study", STUDY,
                 "--profile-output", str(tmp_path / "best.yaml"), "--json",
                 *(f"--set={key}={value}" for key, value in settings.items())])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    summary = json.loads(captured.out)
    assert summary["trials_in_study"] == 2 and summary["profile_path"] == str(tmp_path / "best.yaml")

    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.best_value == min(t.value for t in study.trials) and 0 < study.best_value < 5  # nats per character

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqflow-test-charlm")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{STUDY_TAG}` = '{STUDY}'")
    [parent] = [run for run in runs if run.data.tags[ROLE_TAG] == "search"]
    trials = [run for run in runs if run.data.tags[ROLE_TAG] == "trial"]
    assert parent.info.status == "FINISHED" and parent.data.metrics["best_val_loss"] == study.best_value
    assert sorted(run.info.run_name for run in trials) == ["trial-000", "trial-001"]
    assert all(run.info.status == "FINISHED" and run.data.tags[TRIAL_STATE_TAG] == "COMPLETE" for run in trials)
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in trials)
    assert {run.data.params["training.rnn_units"] for run in trials} <= {"8", "16"}

    # The profile file is what `seqflow charlm run --profile FILE` resolves: the search's settings, the best trial's.
    build_parser().parse_args(["charlm", "run", "--profile", str(tmp_path / "best.yaml")])
    tuned = resolve_charlm_run_config(str(tmp_path / "best.yaml"), None, {})
    best = study.best_trial.params
    assert tuned.profile == "tuned-char_gru" and tuned.training.architectures == ("char_gru",)
    assert (tuned.training.learning_rate, tuned.training.rnn_units) == (best["training.learning_rate"], best["training.rnn_units"])
    assert (tuned.data.source, tuned.data.block_chars, tuned.training.epochs) == (f"text:{text}", 1500, 1)
