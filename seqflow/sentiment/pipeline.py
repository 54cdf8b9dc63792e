"""The sentiment pipeline, declared once for the core (see :mod:`seqflow.core.pipeline`): accuracy on the test
split chooses the champion, higher is better; the served model scores raw review text."""

from __future__ import annotations

from pathlib import Path

from seqflow.sentiment.config import PipelineConfig
from seqflow.sentiment.profiles import resolve_pipeline_config
from seqflow.core.errors import SeqflowError
from seqflow.core.pipeline import Paired, Pipeline, Pyfunc, Records, Score
from seqflow.sentiment.card import CARD
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import Tracker
from seqflow.sentiment.comparison import ComparisonRow, row_as_flat_dict
from seqflow.sentiment.records import EvaluatedModel, TrainedModel
from seqflow.sentiment.serving import log_serving_model, serving_signature  # noqa: F401 - log_serving_model re-exported

# Test metrics shown for the champion (counts of the confusion matrix are left to the MLflow UI).
SHOWN_TEST_METRICS = ("test_accuracy", "test_roc_auc", "test_f1", "test_loss")


def _kind():  # noqa: ANN202 - the pyfunc's PyfuncKind
    from seqflow.sentiment.serving import REVIEW_SENTIMENT

    return REVIEW_SENTIMENT


def test_split_of(tracker: Tracker, version) -> Path:  # noqa: ANN001 - mlflow ModelVersion
    """The test split ``version`` was scored on, found where its run wrote it and checked against its digest."""
    from seqflow.sentiment.datasets import content_digest, dataset_dir_of

    tags = version.tags or {}
    params, _ = tracker.run_data(version.run_id)
    if "artifacts_dir" not in params or "dataset_digest" not in tags:
        raise SeqflowError(f"version {version.version} does not record where its test split is (no artifacts_dir "
                           "param or dataset_digest tag)")
    test_path = dataset_dir_of(params["artifacts_dir"], tags["dataset_digest"]) / "test.parquet"
    if not test_path.is_file():
        raise SeqflowError(
            f"the champion was measured on other data than version {version.version}, and v{version.version}'s test "
            f"split {str(test_path)!r} is not on this machine to score both on the same data; run this where the "
            "pipeline ran, or use --force --reason TEXT"
        )
    import pandas as pd

    if "test_digest" in tags and content_digest(pd.read_parquet(test_path)) != tags["test_digest"]:
        raise SeqflowError(f"test split {str(test_path)!r} no longer matches version {version.version}'s test_digest")
    return test_path


def _predictions_on(tracker: Tracker, version, test_path: Path, needed_by: str):  # noqa: ANN001, ANN202
    """(positive-class probabilities, labels) of ``version``'s served model on the test split at ``test_path``."""
    import pandas as pd

    test = pd.read_parquet(test_path)
    model = tracker.load_pyfunc(
        f"models:/{tracker.settings.registered_model_name}/{version.version}", SENTIMENT.pyfunc.kind(),
        needed_by=needed_by,
    )
    predictions = model.predict(pd.DataFrame({"text": test["text"].tolist()}))
    return predictions["probability"].to_numpy(), test["label"].to_numpy()


def accuracy_on_test_split(tracker: Tracker, champion, test_path: Path) -> float:  # noqa: ANN001
    """The champion's accuracy on the test split at ``test_path``, scored now with its served model."""
    from seqflow.core.evaluation import classification_metrics

    return classification_metrics(*_predictions_on(tracker, champion, test_path, "re-scoring the champion"))["accuracy"]


def correct_on_test_split(tracker: Tracker, version, test_path: Path):  # noqa: ANN001, ANN202 - RowOutcomes
    """Per test row, whether ``version``'s served model labels it right (the paired test of a promotion)."""
    from seqflow.core.evaluation import DECISION_THRESHOLD
    from seqflow.core.paired import RowOutcomes

    probabilities, labels = _predictions_on(tracker, version, test_path, "the paired test of a promotion")
    return RowOutcomes(((probabilities >= DECISION_THRESHOLD).astype(int) == labels.astype(int)).astype(int))


def _same_settings(settings: TrackingSettings) -> TrackingSettings:
    return settings


def _resolve_config(profile: str | None, settings: TrackingSettings, overrides: dict) -> PipelineConfig:
    return resolve_pipeline_config(profile or settings.default_profile, dict(settings.config_overrides), overrides)


SENTIMENT = Pipeline(
    name="sentiment",
    command="seqflow",
    config_class=PipelineConfig,
    score=Score(tag="test_accuracy", label="test accuracy", higher_is_better=True, bound_setting="accuracy_floor",
                data="test data"),
    execution_role="pipeline", architecture_role="architecture",
    tracking_settings=_same_settings,
    resolve_config=_resolve_config,
    records=Records(trained=TrainedModel, evaluated=EvaluatedModel, comparison_row=ComparisonRow, flat_row=row_as_flat_dict),
    pyfunc=Pyfunc(kind=_kind, signature=serving_signature, request_example='{"dataframe_records": [{"text": "..."}]}'),
    shown_metrics=SHOWN_TEST_METRICS, shown_metrics_label="test metrics",
    scoring_data_of=test_split_of,
    score_champion=accuracy_on_test_split,
    card=CARD,
    paired=Paired(metric="test accuracy", outcomes=correct_on_test_split),
)
