"""Model cards for any pipeline (seqflow.core.cards), driven by the toy pipeline of tests/core/conftest.py on a
SQLite store: written at registration as the version's description and run artifact, the registered model's
description with the champion history as a table, every ``promotion.*`` tag shown, cut to the registry's
5,000 characters; and the one-page contract summary (issue 21 items 2 and 4)."""

from __future__ import annotations

import pytest

from seqflow.core import registry
from seqflow.core.cards import (
    CARD_ARTIFACT, DESCRIPTION_MAX_CHARS, fit_description, render_card, wilson_interval,
)
from seqflow.core.contracts import ContractReport, ExpectationOutcome, contracts_description, summary_html
from seqflow.core.runs import ROLE_TAG
from seqflow.core.store import TrackingError
from tests.core.conftest import ToyPromotion, ToyScorer, toy_candidate, toy_pipeline


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    low, high = wilson_interval(0, 40)
    assert low == 0.0 and round(high, 4) == 0.0876
    assert all(value != value for value in wilson_interval(0, 0))  # NaN without trials


def test_a_long_card_is_cut_to_whole_sections_and_says_where_the_rest_is():
    card = "# title\n\nintro" + "".join(f"\n\n## section {n}\n\n" + "x" * 900 for n in range(10))
    cut = fit_description(card, "run123")
    assert len(cut) <= DESCRIPTION_MAX_CHARS and cut.startswith("# title")
    assert "## section 0" in cut and "## section 9" not in cut and f"`{CARD_ARTIFACT}` of run `run123`" in cut
    assert fit_description("short", "run123") == "short"


def test_cards_are_written_at_registration_for_any_pipeline(tracker):
    pipeline = toy_pipeline(ToyScorer())
    parent = tracker.start_run("execution", {ROLE_TAG: pipeline.execution_role})
    candidates = [toy_candidate(tracker, parent, arch, loss, "data-a") for arch, loss in (("small", 2.0), ("big", 1.5))]
    outcome = registry.register_and_promote(pipeline, tracker, candidates, ToyPromotion(), parent, lambda: "data")
    tracker.end_run(parent)
    name = tracker.settings.registered_model_name
    champion, other = tracker.champion(), next(v for v in outcome.versions if v.architecture == "small")

    card = render_card(pipeline, tracker, champion.version)
    assert card.startswith(f"# {name} v{champion.version}: big toy model")
    assert f"**v{champion.version} is `champion`.**" in card and "| promoted_via | seqflow toy run |" in card
    assert "## Results\n\nvalidation loss 1.5" in card and f"seqflow toy use models:/{name}/{champion.version}" in card
    assert "## Known limits\n\n- a toy" in card and parent in card
    assert tracker.client.get_model_version(name, champion.version).description == card
    assert tracker.read_text(other.run_id, CARD_ARTIFACT) == render_card(pipeline, tracker, other.version)
    described = tracker.client.get_registered_model(name).description
    assert described.startswith(f"# {name}\n\nToy models for the core's tests.")
    assert f"| v{champion.version} | promote |" in described and "| version | move | when (UTC) |" in described

    # Whatever statistics a gate records as promotion.* tags appear, without the card knowing them.
    tracker.tag_version(other.version, {"promotion.p_value": "0.31", "promotion.test": "paired bootstrap"})
    card = render_card(pipeline, tracker, other.version)
    assert "| promotion.p_value | 0.31 |" in card and "| promotion.test | paired bootstrap |" in card
    assert f"v{other.version} is not `champion` (the champion is v{champion.version})." in card

    with pytest.raises(TrackingError, match=r"has no version '9' .*\(versions: 1, 2\)"):
        render_card(pipeline, tracker, "9")


def test_contract_summary_is_one_page_of_split_by_expectation():
    outcomes = [
        ExpectationOutcome("train", "expect_column_values_to_not_be_null", "text", True, 0, 100, None, [], {"column": "text"}),
        ExpectationOutcome("test", "expect_column_mean_to_be_between", "label", False, None, None, 0.9, [],
                           {"column": "label", "min_value": 0.4, "max_value": 0.6}),
    ]
    page = summary_html("raw_reviews", outcomes)
    assert page.startswith("<!doctype html>") and "<script" not in page and "1 of 2 expectations passed" in page
    assert "<tr class=fail><td>test</td><td>expect_column_mean_to_be_between</td><td>label</td>" in page
    assert "<td>FAIL</td><td>0.9</td>" in page and "<td>0 of 100</td>" in page
    report = ContractReport("raw_reviews", False, None, None, None, 2, [outcomes[1]])  # type: ignore[arg-type]
    assert "- `raw_reviews`: 1 of 2 expectations passed over train, validation, test - FAILED" in contracts_description([report])
