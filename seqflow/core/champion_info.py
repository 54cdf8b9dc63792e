"""What ``seqflow champion`` (and ``seqflow charlm champion``) shows: the version holding the alias, the metrics
its pipeline shows, the audit tags of the move that put it there and the champion history."""

from __future__ import annotations

from dataclasses import dataclass

from seqflow.core.model_registry import CHAMPION_ALIAS
from seqflow.core.pipeline import Pipeline
from seqflow.core.registry import AUDIT_KEYS, _no_champion
from seqflow.core.tracking import Tracker


@dataclass(frozen=True)
class ChampionInfo:
    """What ``champion`` shows."""

    registered_model_name: str
    version: str
    run_id: str
    architecture: str
    dataset_digest: str
    metrics: dict[str, float]
    audit: dict[str, str]
    history: list[dict[str, str]]
    # Heading of ``metrics`` ("test metrics"), also their key in JSON ("test_metrics").
    metrics_label: str = "test metrics"
    # What is wrong with the champion history tag, and how to reset it; None when it is sound.
    history_problem: str | None = None

    def as_dict(self) -> dict[str, object]:
        shown = {key: value for key, value in self.__dict__.items() if key not in ("metrics", "metrics_label")}
        return {**shown, self.metrics_label.replace(" ", "_"): dict(self.metrics)}

    def render(self) -> str:
        metrics = "  ".join(f"{key.removeprefix('test_')} {value:.4f}" for key, value in sorted(self.metrics.items()))
        history = f"{len(self.history)} recorded move(s) of the alias"
        lines = [
            f"champion:      {self.registered_model_name}@{CHAMPION_ALIAS} = v{self.version}",
            f"architecture:  {self.architecture}",
            f"run:           {self.run_id}",
            f"data:          {self.dataset_digest}",
            f"{self.metrics_label + ':':14} {metrics or '-'}",
            f"promoted by:   {self.audit.get('promoted_by', '-')} via {self.audit.get('promoted_via', '-')}",
            f"promoted at:   {self.audit.get('promoted_at', '-')}",
            f"why:           {self.audit.get('promotion_reason', '-')}",
            f"previous:      {('v' + self.audit['previous_champion']) if self.audit.get('previous_champion') else '-'}",
            f"history:       {'unreadable: ' + self.history_problem if self.history_problem else history}",
        ]
        return "\n".join(lines)


def describe_champion(pipeline: Pipeline, tracker: Tracker) -> ChampionInfo:
    """The current champion, the metrics the pipeline shows from its run, and its audit tags."""
    champion = tracker.champion()
    if champion is None:
        raise _no_champion(pipeline, tracker)
    tags = champion.tags or {}
    _, metrics = tracker.run_data(champion.run_id)
    problem = tracker.history_problem()
    return ChampionInfo(
        registered_model_name=tracker.settings.registered_model_name,
        version=str(champion.version),
        run_id=champion.run_id,
        architecture=tags.get("architecture", "?"),
        dataset_digest=tags.get("dataset_digest", "?"),
        metrics={key: metrics[key] for key in pipeline.shown_metrics if key in metrics},
        audit={key: value for key, value in tags.items()
               if key in (*AUDIT_KEYS, "promotion_gates", "promotion_forced") or key.startswith("promotion.")},
        history=[] if problem else tracker.champion_history(),
        metrics_label=pipeline.shown_metrics_label,
        history_problem=problem,
    )
