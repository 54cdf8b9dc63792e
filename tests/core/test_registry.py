"""The registry for any pipeline (seqflow.core.registry), on a SQLite store without Prefect, driven by a toy
pipeline declared in tests/core/conftest.py (lower validation loss is better): registration all or none, the
champion re-scored on the same data, promotion, rollback, the champion's description and its audit history,
including a history tag broken by hand (issue 23 item 6)."""

from __future__ import annotations

import json
import math

import pytest

from seqflow.core import registry
from seqflow.core.errors import SeqflowError
from seqflow.core.model_registry import CHAMPION_HISTORY_TAG, parse_champion_history
from seqflow.core.registry import PromotionRefused
from seqflow.core.runs import ROLE_TAG
from seqflow.core.champion_info import describe_champion
from tests.core.conftest import ToyPromotion, ToyScorer, toy_candidate, toy_pipeline

PROMOTION = ToyPromotion()


def _execution(tracker, pipeline, losses: dict[str, float], digest: str = "data-a", promotion=PROMOTION):  # noqa: ANN001, ANN202
    """One finished execution that registered a model per ``{architecture: val_loss}``."""
    parent = tracker.start_run("execution", {ROLE_TAG: pipeline.execution_role})
    candidates = [toy_candidate(tracker, parent, arch, loss, digest) for arch, loss in losses.items()]
    outcome = registry.register_and_promote(
        pipeline, tracker, candidates, promotion, parent, lambda: f"this execution's {digest}"
    )
    tracker.end_run(parent)
    return outcome


def _versions(tracker) -> set[str]:  # noqa: ANN001
    name = tracker.settings.registered_model_name
    return {str(version.version) for version in tracker.client.search_model_versions(f"name = '{name}'")}


def test_registers_every_model_and_promotes_the_lowest_when_lower_is_better(tracker):
    pipeline = toy_pipeline(ToyScorer())
    outcome = _execution(tracker, pipeline, {"a": 0.9, "b": 0.4, "c": math.nan})

    assert len(outcome.versions) == 3 and _versions(tracker) == {version.version for version in outcome.versions}
    best = next(version for version in outcome.versions if version.architecture == "b")
    assert outcome.champion_version == best.version == str(tracker.champion().version)
    assert outcome.decision_reason == "first champion: validation loss 0.4000"
    champion = tracker.champion()
    assert champion.tags["promoted_via"] == "seqflow toy run" and champion.tags["dataset_digest"] == "data-a"
    assert [(move["version"], move["action"]) for move in tracker.champion_history()] == [(best.version, "promote")]


def test_a_ceiling_refuses_and_the_challenger_is_tagged_why(tracker):
    pipeline = toy_pipeline(ToyScorer())
    outcome = _execution(tracker, pipeline, {"a": 12.0}, promotion=ToyPromotion(max_val_loss=10.0))
    assert tracker.champion() is None and outcome.champion_version is None
    assert outcome.decision.refused_by == "max_val_loss"
    version = tracker.model_version(outcome.versions[0].version)
    assert version.tags["not_promoted_reason"] == "validation loss 12.0000 is above the ceiling 10.0000"


def test_the_champion_is_rescored_on_this_executions_data_only_when_it_was_measured_on_other_data(tracker):
    scorer = ToyScorer()
    pipeline = toy_pipeline(scorer)
    first = _execution(tracker, pipeline, {"a": 0.40}, digest="data-a")

    # Same data: the champion's recorded loss (0.40) is compared; 0.45 does not beat it, nothing is scored.
    same = _execution(tracker, pipeline, {"b": 0.45}, digest="data-a")
    assert scorer.calls == [] and same.champion_version == first.champion_version
    assert "does not beat champion" in same.decision_reason and "(0.4000)" in same.decision_reason

    # Other data: the champion scores 0.50 on it (the pipeline's scorer, on this execution's data), so 0.45 wins.
    scorer.losses[first.champion_version] = 0.50
    other = _execution(tracker, pipeline, {"c": 0.45}, digest="data-b")
    assert scorer.calls == [(first.champion_version, "this execution's data-b")]
    assert other.champion_version == other.versions[0].version
    assert "(0.5000)" in other.decision_reason


def test_a_failure_while_promoting_keeps_no_version_and_the_champion(tracker):
    scorer = ToyScorer()  # knows no loss for the champion: scoring it on other data fails
    pipeline = toy_pipeline(scorer)
    first = _execution(tracker, pipeline, {"a": 0.4}, digest="data-a")
    parent = tracker.start_run("failing", {ROLE_TAG: pipeline.execution_role})
    candidates = [toy_candidate(tracker, parent, "b", 0.1, "data-b"), toy_candidate(tracker, parent, "c", 0.2, "data-b")]
    with pytest.raises(KeyError):
        registry.register_and_promote(pipeline, tracker, candidates, PROMOTION, parent, lambda: "data-b")
    assert _versions(tracker) == {first.champion_version}
    assert str(tracker.champion().version) == first.champion_version
    tracker.end_run(parent, "FAILED")


def test_promote_rollback_and_describe_with_the_pipelines_gates_and_audit(tracker):
    scorer = ToyScorer()
    pipeline = toy_pipeline(scorer)
    first = _execution(tracker, pipeline, {"a": 0.4, "b": 0.6})
    champion, other = first.champion_version, next(v.version for v in first.versions if v.version != first.champion_version)

    with pytest.raises(PromotionRefused, match=r"promotion.min_improvement gate: validation loss 0.6000 does not beat"):
        registry.promote_version(pipeline, tracker, other, PROMOTION)
    with pytest.raises(PromotionRefused, match="promotion.max_val_loss gate"):
        registry.promote_version(pipeline, tracker, other, ToyPromotion(max_val_loss=0.5))
    moved = registry.promote_version(pipeline, tracker, other, PROMOTION, reason="canary", force=True)
    assert moved.forced and str(tracker.champion().version) == other
    assert tracker.champion().tags["promoted_via"] == "seqflow toy promote"

    info = describe_champion(pipeline, tracker)
    assert info.version == other and info.metrics == {"val_loss": pytest.approx(0.6)}
    assert info.as_dict()["validation_metrics"] == {"val_loss": pytest.approx(0.6)} and info.history_problem is None
    assert "validation metrics: val_loss 0.6000" in info.render()

    back = registry.rollback(pipeline, tracker, PROMOTION, reason="canary misbehaves")
    assert back.version == champion and not back.forced
    assert back.gates == "validation loss 0.4000 is not above the ceiling 10.0000"
    assert tracker.champion().tags["promoted_via"] == "seqflow toy rollback"
    assert [(move["version"], move["action"]) for move in tracker.champion_history()] == [
        (champion, "promote"), (other, "promote"), (champion, "rollback")
    ]
    with pytest.raises(SeqflowError, match="nothing to roll back to"):
        registry.rollback(pipeline, tracker, PROMOTION)
    assert scorer.calls == []  # both versions were measured on the same data


def test_promoting_by_hand_rescores_a_champion_from_other_data_on_the_challengers_data(tracker):
    scorer = ToyScorer()
    pipeline = toy_pipeline(scorer)
    first = _execution(tracker, pipeline, {"a": 0.4}, digest="data-a")
    # On data-b the champion scores 0.3 (its execution refuses its own model by the ceiling anyway).
    scorer.losses[first.champion_version] = 0.3
    second = _execution(tracker, pipeline, {"b": 0.45}, digest="data-b", promotion=ToyPromotion(max_val_loss=0.0))
    challenger = second.versions[0].version
    scorer.calls.clear()
    with pytest.raises(PromotionRefused, match=r"\(0.3000\)"):
        registry.promote_version(pipeline, tracker, challenger, PROMOTION)
    assert scorer.calls == [(first.champion_version, f"validation data of v{challenger}")]


# --- a champion history broken by hand (issue 23 item 6) --------------------------------------------------

BROKEN_HISTORIES = {
    "not-json": "[{'version': '1'",
    "not-a-list": '{"version": "1", "action": "promote"}',
    "no-version-number": '[{"version": "one", "action": "promote"}]',
    "unknown-action": '[{"version": "1", "action": "demote"}]',
    "not-objects": "[1, 2]",
}


@pytest.mark.parametrize("text", BROKEN_HISTORIES.values(), ids=BROKEN_HISTORIES.keys())
def test_parse_champion_history_refuses_what_is_not_a_history(text):
    with pytest.raises(ValueError):
        parse_champion_history(text)


def test_parse_champion_history_reads_a_history_and_nothing_as_empty():
    assert parse_champion_history(None) == [] and parse_champion_history("") == []
    moves = [{"version": "3", "action": "rollback", "promoted_by": "me"}]
    assert parse_champion_history(json.dumps(moves)) == moves


@pytest.mark.parametrize("text", BROKEN_HISTORIES.values(), ids=BROKEN_HISTORIES.keys())
def test_a_broken_history_is_named_and_never_stops_the_pipeline(tracker, caplog, text):
    pipeline = toy_pipeline(ToyScorer())
    name = tracker.settings.registered_model_name
    first = _execution(tracker, pipeline, {"a": 0.4, "b": 0.6})
    tracker.client.set_registered_model_tag(name, CHAMPION_HISTORY_TAG, text)

    problem = tracker.history_problem()
    assert f"the 'champion_history' tag of registered model '{name}' is not a champion history" in problem
    assert f"delete_registered_model_tag('{name}', 'champion_history')" in problem
    with caplog.at_level("WARNING"):
        assert tracker.champion_history() == []
    assert "'champion_history' tag" in caplog.text

    info = describe_champion(pipeline, tracker)
    assert info.version == first.champion_version and info.history_problem == problem
    assert "history:       unreadable: the 'champion_history' tag" in info.render()
    with pytest.raises(SeqflowError, match="cannot roll back: the 'champion_history' tag") as refused:
        registry.rollback(pipeline, tracker, PROMOTION)
    assert "\n" not in str(refused.value)

    # A promoting execution goes on, and its move starts a new, valid history.
    better = _execution(tracker, pipeline, {"c": 0.1})
    assert better.champion_version == better.versions[0].version
    assert tracker.history_problem() is None
    assert [(move["version"], move["action"]) for move in tracker.champion_history()] == [
        (better.champion_version, "promote")
    ]
