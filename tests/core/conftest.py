"""Fixtures for the core's unit tests: a fresh SQLite MLflow store per test (no Prefect), and a small pipeline
of the tests' own, declared like the real ones, so the core is shown to work for any pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seqflow.core.cards import CardContent
from seqflow.core.pipeline import Card, Paired, Pipeline, Pyfunc, Records, Score
from seqflow.core.registry import Candidate
from seqflow.core.runs import ROLE_TAG
from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import Tracker
from tests.flows.conftest import tracking_settings_for


def settings_in(folder: Path) -> TrackingSettings:
    """A fresh SQLite tracking store and registry in ``folder``."""
    return tracking_settings_for(folder)


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(settings_in(tmp_path))


@dataclass(frozen=True)
class ToyPromotion:
    """The toy pipeline's gates: a ceiling on validation loss and the margin to beat the champion by."""

    min_improvement: float = 0.0
    max_val_loss: float = 10.0
    # The significance gate (seqflow.core.significance), as the real pipelines' promotion sections have it.
    require_significant: bool = False
    significance_level: float = 0.05


@dataclass(frozen=True)
class ToyRow:
    architecture: str
    val_loss: float


@dataclass
class ToyScorer:
    """What the toy pipeline answers when the core asks it to score a champion on other data: a fixed loss
    per version, and a record of every call."""

    losses: dict[str, float] = field(default_factory=dict)
    calls: list[tuple[str, object]] = field(default_factory=list)

    def __call__(self, tracker: Tracker, champion, data) -> float:  # noqa: ANN001
        self.calls.append((str(champion.version), data))
        return self.losses[str(champion.version)]


def toy_pipeline(scorer: ToyScorer, outcomes: dict[str, object] | None = None) -> Pipeline:
    """A third pipeline, lower validation loss is better: the core must need nothing else from it. With
    ``outcomes`` ({version: RowOutcomes}), its promotions get the paired test on them."""

    def unused(*_args):  # noqa: ANN002, ANN202 - the toy pipeline never logs or serves a model
        raise AssertionError("not used by the registry")

    return Pipeline(
        name="toy",
        command="seqflow toy",
        config_class=ToyPromotion,
        score=Score(tag="val_loss", label="validation loss", higher_is_better=False, bound_setting="max_val_loss",
                    data="validation data"),
        execution_role="toy-pipeline",
        architecture_role="toy-architecture",
        tracking_settings=lambda settings: settings,
        resolve_config=unused,
        records=Records(trained=ToyRow, evaluated=ToyRow, comparison_row=ToyRow),
        pyfunc=Pyfunc(kind=unused, signature=unused, request_example="{}"),
        shown_metrics=("val_loss",),
        shown_metrics_label="validation metrics",
        scoring_data_of=lambda tracker, version: f"validation data of v{version.version}",
        score_champion=scorer,
        card=Card(purpose="Toy models for the core's tests.", content=toy_card),
        paired=None if outcomes is None else Paired(
            metric="validation loss", outcomes=lambda tracker, version, data: outcomes[str(version.version)]
        ),
    )


def toy_card(facts) -> CardContent:  # noqa: ANN001 - a CardFacts
    """The toy pipeline's card sections: its one metric."""
    return CardContent(
        title=f"{facts.architecture} toy model",
        sections=[("Results", f"validation loss {facts.metrics.get('val_loss')}")],
        usage=[f"seqflow toy use {facts.model_uri}"],
        limits=["a toy"],
    )


def toy_candidate(tracker: Tracker, parent_run_id: str, architecture: str, val_loss: float, digest: str) -> Candidate:
    """A FINISHED child run with a (minimal) logged model and its val_loss metric, as evaluation leaves it."""
    run_id = tracker.start_run(architecture, {ROLE_TAG: "toy-architecture"}, parent_run_id=parent_run_id)
    tracker.log_text(run_id, "artifact_path: model\nflavors: {}\n", "model/MLmodel")
    tracker.log_metrics(run_id, {"val_loss": val_loss})
    tracker.end_run(run_id)
    return Candidate(architecture, run_id, f"runs:/{run_id}/model", digest, {"val_loss": f"{val_loss:.6f}"})
