"""Logging to and reading from MLflow runs: params, metrics, tags, artifacts and texts."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from seqflow.core.store import TrackingStore

# MLflow accepts at most this many params per log_batch call.
PARAMS_PER_BATCH = 100


class RunLogger(TrackingStore):
    """What a step writes to the run it owns, and what later steps read back."""

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(key, str(value)) for key, value in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])

    def log_metrics(
        self, run_id: str, metrics: dict[str, float], step: int | None = None, model_id: str | None = None,
        dataset: tuple[str, str] | None = None,
    ) -> None:
        """Log ``metrics`` (NaN left out); ``model_id``: also linked to that MLflow 3 logged model of the run (its
        metrics on the Models tab); ``dataset``: (name, digest) of the dataset input they were measured on."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        name, digest = dataset or (None, None)
        batch = [
            Metric(key, float(value), now, step or 0, model_id=model_id, dataset_name=name, dataset_digest=digest)
            for key, value in metrics.items() if value == value
        ]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def epoch_logger(self, run_id: str):  # noqa: ANN201 - an EpochCallback
        """A callback that logs Keras' epoch metrics with ``step=epoch`` as training goes."""

        def log_epoch(epoch: int, logs: dict[str, float]) -> None:
            self.log_metrics(run_id, logs, step=epoch)

        return log_epoch

    def log_artifact(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.is_dir():
            self.client.log_artifacts(run_id, str(path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def set_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))

    def read_text(self, run_id: str, artifact_file: str) -> str | None:
        """A text artifact of a run, or None when the run has no such artifact."""
        from mlflow.exceptions import MlflowException

        with tempfile.TemporaryDirectory() as scratch:
            try:
                local_path = self.client.download_artifacts(run_id, artifact_file, scratch)
            except (MlflowException, OSError):
                return None
            return Path(local_path).read_text(encoding="utf-8")

    def run_tags(self, run_id: str) -> dict[str, str]:
        """The tags of a run (its role, data digests, rerun_of, ...)."""
        return dict(self.client.get_run(run_id).data.tags)

    def run_data(self, run_id: str) -> tuple[dict[str, str], dict[str, float]]:
        """``(params, metrics)`` of a run."""
        data = self.client.get_run(run_id).data
        return dict(data.params), dict(data.metrics)
