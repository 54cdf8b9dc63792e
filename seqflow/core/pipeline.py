"""What a pipeline declares once, so that the core can register, promote, roll back, inspect and serve its
models without knowing it: its config, its score and direction, its names in MLflow and on the command line, its
served model (pyfunc), and how to score a champion on another version's data.

Each pipeline module builds one :class:`Pipeline` (``seqflow.sentiment.pipeline.SENTIMENT``,
``seqflow.charlm.pipeline.CHARLM``); :mod:`seqflow.core.registry` does the rest for any of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Callable

from seqflow.core.settings import TrackingSettings

if TYPE_CHECKING:
    from seqflow.core.tracking import Tracker


@dataclass(frozen=True)
class Score:
    """The number a pipeline chooses its champion by."""

    # Version tag (and run metric) holding it: ``test_accuracy``, ``val_perplexity``.
    tag: str
    # How messages name it: "test accuracy", "validation perplexity".
    label: str
    higher_is_better: bool
    # The promotion setting that bounds it: a floor when higher is better, a ceiling otherwise.
    bound_setting: str
    # What it is measured on, in messages: "test data", "validation text".
    data: str

    def bound(self, promotion: Any) -> float:
        """The floor or ceiling in ``promotion`` (the pipeline's promotion config section)."""
        return float(getattr(promotion, self.bound_setting))


@dataclass(frozen=True)
class Pyfunc:
    """The model a pipeline logs and serves: its kind (the models-from-code wrapper, see
    :class:`seqflow.core.trusted_models.PyfuncKind`) and signature, and a request body ``seqflow serve`` shows as
    an example. Callables, so declaring a pipeline imports neither MLflow nor Keras."""

    kind: Callable[[], Any]
    signature: Callable[[], Any]
    request_example: str


@dataclass(frozen=True)
class Records:
    """The records a pipeline's steps return: one per trained and one per evaluated architecture, and one row
    of its comparison table (whose fields are the table's columns)."""

    trained: type
    evaluated: type
    comparison_row: type
    # One comparison row as the columns of ``comparison.csv`` (default: its fields).
    flat_row: Callable[[Any], dict[str, object]] = asdict


@dataclass(frozen=True)
class Paired:
    """How a pipeline measures two models on the same rows, for the paired test of a promotion
    (:mod:`seqflow.core.significance`)."""

    # How the paired difference is named: "test accuracy", "validation loss (nats/char)".
    metric: str
    # One registered version's outcomes (a :class:`seqflow.core.paired.RowOutcomes`) on what ``scoring_data_of``
    # returns, measured now with its registered model: per-row correctness, or per-block loss sums.
    outcomes: Callable[[Tracker, Any, Any], Any]


@dataclass(frozen=True)
class Card:
    """A pipeline's part of its model cards (see :mod:`seqflow.core.cards`)."""

    # What its registered model is for, opening the registered model's description.
    purpose: str
    # Its card sections from a version's facts: a :class:`seqflow.core.cards.CardFacts` -> ``CardContent``.
    content: Callable[[Any], Any]


@dataclass(frozen=True)
class Pipeline:
    """One pipeline, declared once."""

    # Short name, as on the command line: "sentiment", "charlm".
    name: str
    # The command its subcommands hang off: "seqflow", "seqflow charlm".
    command: str
    config_class: type
    score: Score
    # Role tags of the parent run of one execution and of each architecture's child run.
    execution_role: str
    architecture_role: str
    # The settings pointed at this pipeline's experiment and registered model.
    tracking_settings: Callable[[TrackingSettings], TrackingSettings]
    # Its config from a profile (None: the default one), the SEQFLOW_* settings and ``section.field`` overrides.
    resolve_config: Callable[[str | None, TrackingSettings, dict[str, Any]], Any]
    records: Records
    pyfunc: Pyfunc
    # Run metrics ``champion`` shows, and under what heading.
    shown_metrics: tuple[str, ...]
    shown_metrics_label: str
    # The data a registered version was scored on (for promoting it by hand): a SeqflowError when it cannot be
    # found on this machine. Returns whatever ``score_champion`` takes.
    scoring_data_of: Callable[[Tracker, Any], Any]
    # The champion version's score on that data, measured now by loading the champion's model.
    score_champion: Callable[[Tracker, Any, Any], float]
    # Its model cards: written at registration, shown by ``<command> card VERSION``.
    card: Card
    # Per-row outcomes for the paired test of a promotion; None: the pipeline's promotions are not tested.
    paired: Paired | None = None

    def registered_model_name(self, settings: TrackingSettings) -> str:
        return self.tracking_settings(settings).registered_model_name

    @property
    def via_run(self) -> str:
        return f"{self.command} run"

    @property
    def via_promote(self) -> str:
        return f"{self.command} promote"

    @property
    def via_rollback(self) -> str:
        return f"{self.command} rollback"
