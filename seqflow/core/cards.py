"""A model card per registered version, for any pipeline: what the model is, what it takes and returns, its
data, training, results, lineage, how to load and serve it, and its known limits (after the Model Card
Toolkit's sections).

The pipeline declares what is its own (:class:`seqflow.core.pipeline.Card`: its sections from the facts read
here); the core adds what every version has: the promotion decision (every ``promotion.*`` and audit tag of the
version, whatever the gates recorded), the lineage (runs, Prefect flow run, git commit, logged model, champion
history) and how to serve it. Written at registration as the version's description in the registry (as much of
it as fits MLflow's 5,000 characters) and as the run artifact ``model_card.md``; ``seqflow card VERSION``
renders it again from the registry as it is now. The registered model's description says what the model is for
and renders the champion history as a table.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from seqflow.core.model_registry import CHAMPION_ALIAS, PREVIOUS_CHAMPION_TAG
from seqflow.core.runs import FLOW_RUN_TAG

if TYPE_CHECKING:
    from seqflow.core.pipeline import Pipeline
    from seqflow.core.tracking import Tracker

# MLflow keeps descriptions of registered models and versions in VARCHAR(5000) (PostgreSQL enforces it).
DESCRIPTION_MAX_CHARS = 5000
# The run artifact holding the full card.
CARD_ARTIFACT = "model_card.md"
# Version tags shown under "Promotion decision": the champion audit trail and the gates' words, plus every tag
# starting with PROMOTION_TAG_PREFIX (the statistics a gate records), whatever they are.
DECISION_TAGS = (
    "promoted_by", "promoted_at", "promoted_via", "promotion_reason", "promotion_gates", "promotion_forced",
    PREVIOUS_CHAMPION_TAG, "not_promoted_reason",
)
PROMOTION_TAG_PREFIX = "promotion."
# z for a two-sided 95% interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: float, trials: float, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (95% by default); (nan, nan) without trials."""
    if not trials or trials <= 0:
        return float("nan"), float("nan")
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def number(value: Any, digits: int = 4) -> str:
    """A metric as the card shows it, ``-`` when missing or NaN."""
    if value is None:
        return "-"
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def count(value: Any) -> str:
    """A count (rows, epochs, cells) as the card shows it: ``1,234``, or ``-`` when missing."""
    try:
        return f"{int(float(value)):,}" if value is not None and not math.isnan(float(value)) else "-"
    except (TypeError, ValueError):
        return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (``|`` in a cell escaped)."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def input_and_output(rows: Sequence[tuple[str, str, str, str]]) -> tuple[str, str]:
    """A card's "Input and output" section: one row per column the served model takes or returns (``input`` or
    ``output``, the column, its type, what it means)."""
    return "Input and output", table(("", "column", "type", "meaning"), rows)


def when(timestamp_ms: Any) -> str:
    """An MLflow timestamp (ms) as ISO 8601 UTC, or ``-``."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(timestamp_ms) / 1000))
    except (TypeError, ValueError):
        return "-"


@dataclass(frozen=True)
class CardFacts:
    """What the registry and the runs say about one version: what a pipeline's card sections are made of."""

    registered_model_name: str
    version: str
    version_tags: dict[str, str]
    registered_at: str
    run_id: str
    run_name: str
    params: dict[str, str]
    metrics: dict[str, float]
    run_tags: dict[str, str]
    parent_run_id: str | None
    parent_params: dict[str, str] = field(default_factory=dict)
    parent_metrics: dict[str, float] = field(default_factory=dict)
    parent_tags: dict[str, str] = field(default_factory=dict)
    model_id: str | None = None
    champion_version: str | None = None
    history: list[dict[str, str]] = field(default_factory=list)
    # Per-epoch training history (metric -> values), from the run's history.json; empty when it has none.
    epochs: dict[str, list[float]] = field(default_factory=dict)
    # The run's text artifacts: the paths under a folder, and one file's text (None when absent).
    artifact_paths: Callable[[str], list[str]] = lambda folder: []
    read_text: Callable[[str], str | None] = lambda path: None

    @property
    def architecture(self) -> str:
        return self.version_tags.get("architecture") or self.params.get("architecture", "?")

    @property
    def model_uri(self) -> str:
        return f"models:/{self.registered_model_name}/{self.version}"

    @property
    def is_champion(self) -> bool:
        return self.champion_version == self.version

    def tag(self, key: str, default: str = "-") -> str:
        """A data tag of the version, its run or its parent run (in that order)."""
        for tags in (self.version_tags, self.run_tags, self.parent_tags):
            if tags.get(key):
                return tags[key]
        return default


def logged_model_of(version: Any) -> str | None:
    """The MLflow 3 logged model a version was registered from (its ``models:/<model_id>`` source), or None."""
    source = (version.source or "").rstrip("/")
    model_id = getattr(version, "model_id", None) or (source[len("models:/"):] if source.startswith("models:/m-") else "")
    return model_id or None


def gather_facts(tracker: Tracker, version: str) -> CardFacts:
    """The facts of ``version`` of the tracker's registered model (a TrackingError naming the versions there are
    when it has none such)."""
    target = tracker.model_version(version)
    run = tracker.client.get_run(target.run_id)
    parent_id = (target.tags or {}).get("parent_run_id") or run.data.tags.get("mlflow.parentRunId")
    parent = tracker.client.get_run(parent_id).data if parent_id else None
    epochs_text = tracker.read_text(target.run_id, "history.json")
    try:
        epochs = json.loads(epochs_text) if epochs_text else {}
    except ValueError:
        epochs = {}
    champion = tracker.champion()
    return CardFacts(
        registered_model_name=tracker.settings.registered_model_name,
        version=str(target.version),
        version_tags=dict(target.tags or {}),
        registered_at=when(target.creation_timestamp),
        run_id=target.run_id,
        run_name=run.info.run_name or "",
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        run_tags=dict(run.data.tags),
        parent_run_id=parent_id,
        parent_params=dict(parent.params) if parent else {},
        parent_metrics=dict(parent.metrics) if parent else {},
        parent_tags=dict(parent.tags) if parent else {},
        model_id=logged_model_of(target),
        champion_version=str(champion.version) if champion is not None else None,
        history=[] if tracker.history_problem() else tracker.champion_history(),
        epochs=epochs if isinstance(epochs, dict) else {},
        artifact_paths=lambda folder: [info.path for info in tracker.client.list_artifacts(target.run_id, folder)],
        read_text=lambda path: tracker.read_text(target.run_id, path),
    )


@dataclass(frozen=True)
class CardContent:
    """A pipeline's part of a card."""

    # What the model is, in a few words: "bilstm review sentiment classifier".
    title: str
    # (heading, markdown) in order: what it is, input and output, data, training, results.
    sections: list[tuple[str, str]]
    # Shell lines that use it with the pipeline's own commands (predict, generate).
    usage: list[str]
    limits: list[str]


def decision_section(facts: CardFacts) -> str:
    """The champion audit and every ``promotion.*`` tag of the version, as recorded."""
    tags = facts.version_tags
    rows = [(key, tags[key]) for key in DECISION_TAGS if tags.get(key)]
    rows += sorted((key, value) for key, value in tags.items() if key.startswith(PROMOTION_TAG_PREFIX))
    status = (
        f"**v{facts.version} is `{CHAMPION_ALIAS}`.**" if facts.is_champion
        else f"v{facts.version} is not `{CHAMPION_ALIAS}` (the champion is "
        f"{'v' + facts.champion_version if facts.champion_version else 'none'})."
    )
    return status + ("\n\n" + table(("record", "value"), rows) if rows else "\n\nNo promotion decision recorded on it.")


def history_rows(history: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """The champion history as table rows, newest first."""
    return [
        (f"v{move.get('version', '?')}", move.get("action", "-"), move.get("promoted_at", "-"),
         move.get("promoted_by", "-"), move.get("promoted_via", "-"), move.get("promotion_reason", "-"))
        for move in reversed(history)
    ]


HISTORY_HEADERS = ("version", "move", "when (UTC)", "by", "via", "why")


def lineage_section(facts: CardFacts) -> str:
    rows = [
        ("registered model", f"`{facts.model_uri}` (registered {facts.registered_at})"),
        ("training run", f"`{facts.run_id}` ({facts.run_name})"),
        ("logged model", f"`models:/{facts.model_id}`" if facts.model_id else "- (logged as run files by an earlier release)"),
        ("parent run (execution)", f"`{facts.parent_run_id}`" if facts.parent_run_id else "-"),
        ("Prefect flow run", f"`{facts.tag(FLOW_RUN_TAG)}`"),
        ("git commit", f"`{facts.tag('mlflow.source.git.commit')}`"),
        ("command", f"`{facts.tag('mlflow.source.name')}` by {facts.tag('mlflow.user')}"),
    ]
    moves = [move for move in facts.history if move.get("version") == facts.version]
    text = table(("", ""), rows)
    if facts.history:
        text += (
            f"\n\nChampion history of `{facts.registered_model_name}` (newest first; moves of v{facts.version}: "
            f"{len(moves)}):\n\n" + table(HISTORY_HEADERS, history_rows(facts.history)[:10])
        )
    return text


def serving_section(pipeline: Pipeline, facts: CardFacts, usage: Sequence[str]) -> str:
    uri = facts.model_uri
    lines = [
        *usage,
        f"{pipeline.command} serve --model-uri {uri} --port 5001",
        f"curl -s localhost:5001/invocations -H 'Content-Type: application/json' -d '{pipeline.pyfunc.request_example}'",
    ]
    return (
        "```bash\n" + "\n".join(lines) + "\n```\n\nseqflow checks every file against the SHA-256 digests recorded "
        "at registration before loading it, and builds the wrapper from its installed code (no pickle is read)."
    )


def render_card(pipeline: Pipeline, tracker: Tracker, version: str) -> str:
    """The markdown card of ``version`` as the registry has it now."""
    facts = gather_facts(tracker, version)
    content = pipeline.card.content(facts)
    status = "champion" if facts.is_champion else "registered"
    parts = [
        f"# {facts.registered_model_name} v{facts.version}: {content.title}",
        f"_{status}; registered {facts.registered_at} by `{pipeline.via_run}`; MLflow run `{facts.run_id}`_",
    ]
    sections = [
        *content.sections,
        ("Promotion decision", decision_section(facts)),
        ("Lineage", lineage_section(facts)),
        ("How to load and serve", serving_section(pipeline, facts, content.usage)),
        ("Known limits", "\n".join(f"- {limit}" for limit in content.limits)),
    ]
    parts += [f"## {heading}\n\n{body}" for heading, body in sections]
    return "\n\n".join(parts) + "\n"


def fit_description(card: str, run_id: str, limit: int = DESCRIPTION_MAX_CHARS) -> str:
    """``card`` cut to whole sections that fit a registry description, ending with where the rest is."""
    if len(card) <= limit:
        return card
    footer = f"\n\n_Shortened to fit the registry; the full card is the artifact `{CARD_ARTIFACT}` of run `{run_id}`._\n"
    kept = ""
    for section in card.split("\n\n## "):
        candidate = f"{kept}\n\n## {section}" if kept else section
        if len(candidate) + len(footer) > limit:
            continue
        kept = candidate
    return (kept or card[: limit - len(footer)]) + footer


def model_description(pipeline: Pipeline, tracker: Tracker) -> str:
    """The registered model's description: what it is for, and the champion history as a table."""
    name = tracker.settings.registered_model_name
    champion = tracker.champion()
    problem = tracker.history_problem()
    history = [] if problem else tracker.champion_history()
    head = [
        f"# {name}",
        pipeline.card.purpose,
        f"Champion: {'v' + str(champion.version) if champion is not None else 'none yet'} "
        f"(`models:/{name}@{CHAMPION_ALIAS}`). Each version's description is its model card "
        f"(`{pipeline.command} card VERSION`).",
        "## Champion history (newest first)",
    ]
    text = "\n\n".join(head) + "\n\n"
    if problem:
        return text + f"The champion history cannot be read: {problem}"
    if not history:
        return text + "No move of the champion alias yet."
    rows = history_rows(history)
    while rows:
        rendered = text + table(HISTORY_HEADERS, rows)
        if len(rendered) <= DESCRIPTION_MAX_CHARS:
            return rendered
        rows = rows[:-1]
    return text


def publish_cards(pipeline: Pipeline, tracker: Tracker, versions: Sequence[str]) -> None:
    """Write the card of each of ``versions`` as its description and its run's ``model_card.md``, and the
    registered model's description."""
    name = tracker.settings.registered_model_name
    for version in versions:
        card = render_card(pipeline, tracker, version)
        run_id = tracker.model_version(version).run_id
        tracker.client.update_model_version(name, version, description=fit_description(card, run_id))
        tracker.log_text(run_id, card, CARD_ARTIFACT)
    tracker.client.update_registered_model(name, description=model_description(pipeline, tracker))
