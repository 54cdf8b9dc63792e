"""Doubtful input gets one line that names the real problem: a folder given as a file, a CSV too small for
the splits, boolean labels, an unknown source kind (before any Prefect server starts), a rerun of an
architecture the earlier execution never had, a --model-uri that names nothing."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

# The flow modules import Prefect, which sets up its logging on import: done at collection, not inside a test
# whose output is being captured (it broke the capture of the tests after it).
import seqflow.core.rerun
import seqflow.sentiment.rerun
import seqflow.flows.charlm
import seqflow.flows.rerun
import seqflow.flows.sentiment
import seqflow.flows.validate
from seqflow.sentiment.config import DataConfig
from seqflow.sentiment.profiles import get_profile
from seqflow.core.errors import DataSourceError
from seqflow.sentiment.sources import load_source
from tests.conftest import new_empty_store


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_folder_given_as_a_file_source_is_called_a_folder(tmp_path: Path, kind: str):
    with pytest.raises(DataSourceError, match=f"{kind} source '{tmp_path}' is a folder, not a file"):
        load_source(DataConfig(source=f"{kind}:{tmp_path}"))


def test_csv_too_small_for_the_splits_says_so_and_how_many_rows_are_needed(tmp_path: Path):
    from seqflow.sentiment.datasets import split_source

    path = tmp_path / "five.csv"
    pd.DataFrame({"text": ["good", "great", "fine", "bad", "awful"], "label": [1, 1, 1, 0, 0]}).to_csv(path, index=False)
    data = DataConfig(source=f"csv:{path}")
    with pytest.raises(DataSourceError) as refused:
        split_source(load_source(data), data, seed=1)
    message = str(refused.value)
    assert "has 5 row(s)" in message and "(label 0: 2, label 1: 3)" in message and "too few for the splits" in message
    assert "at least 3 rows of each label (6 in all" in message
    # Six rows, three of each label: every split gets one of each.
    pd.DataFrame({"text": list("abcdef"), "label": [1, 1, 1, 0, 0, 0]}).to_csv(path, index=False)
    splits = split_source(load_source(data), data, seed=1)
    assert all(sorted(frame["label"]) == [0, 1] for frame in splits.values())


def test_true_false_labels_are_read_as_one_and_zero(tmp_path: Path):
    path = tmp_path / "booleans.csv"
    path.write_text("text,label\ngood film,True\nbad film,False\nfine,true\n", encoding="utf-8")
    labels = load_source(DataConfig(source=f"csv:{path}")).train["label"]
    assert labels.tolist() == [1, 0, 1] and labels.dtype == "int64"
    parquet = tmp_path / "booleans.parquet"
    pd.DataFrame({"text": ["a", "b"], "label": [True, False]}).to_parquet(parquet)
    labels = load_source(DataConfig(source=f"parquet:{parquet}")).train["label"]
    assert labels.tolist() == [1, 0] and labels.dtype == "int64"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch, capfd):
    """``seqflow ARGS`` in this process, in a fresh folder with an empty store: (exit code, stderr)."""
    from seqflow.cli import main

    monkeypatch.chdir(tmp_path)
    new_empty_store(tmp_path / "mlflow.db")
    (tmp_path / "mlflow.env").write_text(f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path / 'mlflow.db'}\n")

    def run(*args: str) -> tuple[int, str]:
        capfd.readouterr()
        # main() sets up logging on the captured stderr, which is closed after the test: leave no handler behind.
        handlers = list(logging.root.handlers)
        try:
            code = main(["--env-file", str(tmp_path / "mlflow.env"), *args])
        finally:
            logging.root.handlers[:] = handlers
        return code, capfd.readouterr().err

    return run


def _never_called(calls: list):  # noqa: ANN202
    def flow(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(args)
        raise AssertionError("the flow started")

    return flow


def test_unknown_source_kind_is_refused_before_any_flow_starts(cli, monkeypatch):
    calls: list = []
    monkeypatch.setattr(seqflow.flows.validate, "validate_flow", _never_called(calls))
    monkeypatch.setattr(seqflow.flows.sentiment, "run_sentiment_flow", _never_called(calls))
    monkeypatch.setattr(seqflow.flows.charlm, "charlm_flow", _never_called(calls))
    for args in (["validate", "--source", "s3://bucket/x.csv"], ["run", "--source", "sql:reviews"],
                 ["charlm", "run", "--source", "http://example.com/plays.txt"]):
        code, stderr = cli(*args)
        assert code == 2 and stderr.startswith("seqflow: error: unknown "), stderr
        assert len(stderr.strip().splitlines()) == 1
    assert calls == []


def test_rerun_of_an_architecture_the_earlier_execution_never_had_is_refused(cli, monkeypatch):
    earlier = SimpleNamespace(trained=[SimpleNamespace(architecture="embedding_pool"), SimpleNamespace(architecture="nbsvm")])
    plans: list = []

    def plan_rerun(tracker, task, from_run, architectures, overrides):  # noqa: ANN001, ANN202
        plans.append(architectures)
        chosen = architectures or [model.architecture for model in earlier.trained]
        return SimpleNamespace(task=task, rerun_of="abc123", earlier=earlier, config=get_profile("quick"), architectures=chosen)

    calls: list = []
    monkeypatch.setattr(seqflow.sentiment.rerun, "plan_rerun", plan_rerun)
    monkeypatch.setattr(seqflow.flows.rerun, "rerun_flow", _never_called(calls))
    code, stderr = cli("rerun", "train", "--arch", "lstm", "--arch", "nbsvm")
    assert code == 2 and plans == [["lstm", "nbsvm"]] and calls == []
    assert stderr.strip() == (
        "seqflow: error: --arch lstm: the earlier execution (parent run abc123) trained embedding_pool, nbsvm; a rerun "
        "repeats its tasks for those only; train another architecture with `seqflow run --arch NAME`"
    )


def test_model_uri_that_names_nothing_is_said_not_to_exist(cli, tmp_path: Path):
    for uri, expected in (
        ("models:/nope/1", "model 'models:/nope/1' does not exist: no registered model named 'nope' in sqlite:///"),
        (str(tmp_path / "no-model"), f"model '{tmp_path / 'no-model'}' does not exist: there is no folder"),
        ("runs:/0123456789abcdef0123456789abcdef/model", "does not exist: no run '0123456789abcdef0123456789abcdef'"),
    ):
        code, stderr = cli("predict", "--model-uri", uri, "good film")
        assert code == 2 and expected in stderr and "damaged" not in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1


def test_predict_and_generate_without_a_champion_name_the_model_and_what_to_run(cli):
    # The same look-up serves both commands (seqflow.cli_champion.model_to_load); each names its own remedy.
    code, stderr = cli("predict", "good film")
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "has no 'champion' alias in sqlite:///" in stderr
    assert stderr.strip().endswith("; run `seqflow run` first or pass --model-uri"), stderr
    code, stderr = cli("generate", "--source", "text:lyrics.txt")
    assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
    assert "registered model 'seqflow-charlm-lyrics' has no 'champion' alias in sqlite:///" in stderr
    assert stderr.strip().endswith(
        "; run `seqflow charlm run` on that corpus first, or name the model with --model-name (or --source) or pass --model-uri"
    ), stderr
