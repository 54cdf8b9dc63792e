"""The sentiment champion by hand: ``seqflow champion | promote | rollback``, through the core's registry code
(:mod:`seqflow.core.registry`) with the sentiment pipeline's gates (test accuracy, higher is better).

These names are kept for callers written before the core was shared; new code calls the core with
:data:`seqflow.sentiment.pipeline.SENTIMENT`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from seqflow.sentiment.config import PromotionConfig
from seqflow.core import registry
from seqflow.core.registry import (  # noqa: F401 - re-exported for earlier callers
    AUDIT_KEYS,
    AliasMove,
    PromotionRefused,
    audit_tags,
    champion_lineage,
    current_user,
)
from seqflow.core.champion_info import ChampionInfo, describe_champion as describe_any_champion
from seqflow.core.tracking import Tracker
from seqflow.sentiment.pipeline import SENTIMENT, SHOWN_TEST_METRICS  # noqa: F401 - re-exported

VIA_RUN = SENTIMENT.via_run
VIA_PROMOTE = SENTIMENT.via_promote
VIA_ROLLBACK = SENTIMENT.via_rollback


def champion_accuracy_on(
    tracker: Tracker, champion, dataset_digest: str, locate_test_split: Callable[[], Path]  # noqa: ANN001
) -> float:
    """The champion's test accuracy on the test split of the data ``dataset_digest`` (see
    :func:`seqflow.core.registry.champion_score_on`)."""
    return registry.champion_score_on(SENTIMENT, tracker, champion, dataset_digest, locate_test_split)


def promote_version(
    tracker: Tracker, version: str, promotion: PromotionConfig, reason: str | None = None, force: bool = False
) -> AliasMove:
    """Move ``champion`` to ``version`` if it passes the gates (or ``force`` with a ``reason``)."""
    return registry.promote_version(SENTIMENT, tracker, version, promotion, reason, force)


def rollback(tracker: Tracker, promotion: PromotionConfig, reason: str | None = None, force: bool = False) -> AliasMove:
    """Move ``champion`` back to the champion before the current one (see :func:`seqflow.core.registry.rollback`)."""
    return registry.rollback(SENTIMENT, tracker, promotion, reason, force)


def describe_champion(tracker: Tracker) -> ChampionInfo:
    """The current champion, its test metrics from its run, and its audit tags."""
    return describe_any_champion(SENTIMENT, tracker)
