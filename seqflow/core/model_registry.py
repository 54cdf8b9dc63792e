"""The MLflow model registry of one pipeline: versions registered all or none, the ``champion`` alias, and the
audit history of every move of that alias (a registered-model tag, validated when read: anyone can edit it in
the MLflow UI)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Iterable

from seqflow.core.store import TrackingError, TrackingStore, _fluent_store
from seqflow.core.trusted_models import MODEL_DIGESTS_TAG

logger = logging.getLogger(__name__)

CHAMPION_ALIAS = "champion"
# Runs or versions one search returns; more than this many stale runs at once would be closed over several starts.
SEARCH_MAX_RESULTS = 1000
# Model version tag: the champion version this one replaced when it was promoted.
PREVIOUS_CHAMPION_TAG = "previous_champion"
# Registered-model tag: JSON list of every move of the champion alias (oldest first), so rollback knows the
# champion before the current one.
CHAMPION_HISTORY_TAG = "champion_history"
# Registered-model tag values are VARCHAR(5000) in MLflow's SQL schema (PostgreSQL enforces it): the history
# keeps as many of the latest moves as fit.
CHAMPION_HISTORY_MAX_CHARS = 5000
# What a move in the history says it was.
HISTORY_ACTIONS = ("promote", "rollback")


@dataclass(frozen=True)
class RegisteredVersion:
    architecture: str
    version: str
    run_id: str
    test_accuracy: float
    # The tag the champion is chosen by (``score_tag`` of register_versions); test_accuracy unless told.
    score: float = float("nan")


def parse_champion_history(text: str | None) -> list[dict[str, str]]:
    """The moves recorded in a ``champion_history`` tag value (empty when there is none); a ValueError that
    says what is wrong when it is not a JSON list of moves, each with a version and a known action."""
    if not text:
        return []
    try:
        moves = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(moves, list):
        raise ValueError(f"a JSON {type(moves).__name__}, not a list of moves")
    for number, move in enumerate(moves, start=1):
        if not isinstance(move, dict) or not all(isinstance(value, str) for value in move.values()):
            raise ValueError(f"move {number} is not an object of strings")
        if not move.get("version", "").isdigit() or move.get("action") not in HISTORY_ACTIONS:
            raise ValueError(f"move {number} has no version number or no action ({' or '.join(HISTORY_ACTIONS)})")
    return moves


def _bounded_history(history: list[dict[str, str]]) -> str:
    """``history`` as JSON, dropping the oldest moves until it fits a registered-model tag."""
    kept = list(history)
    while True:
        text = json.dumps(kept, separators=(",", ":"))
        if len(text) <= CHAMPION_HISTORY_MAX_CHARS or not kept:
            return text
        kept.pop(0)


class ModelRegistry(TrackingStore):
    """The registered model named by the settings: its versions, its champion and the champion's history."""

    def register_versions(
        self, candidates: Iterable[tuple[str, str, str, dict[str, str]]], score_tag: str = "test_accuracy"
    ) -> list[RegisteredVersion]:
        """Register ``(architecture, run_id, model_uri, tags)`` as versions, all or none; each version's
        ``score`` is its ``score_tag`` tag.

        If any registration fails, the versions already created by this call are deleted again.
        """
        import mlflow

        name = self.settings.registered_model_name
        created: list[RegisteredVersion] = []
        try:
            for architecture, run_id, model_uri, tags in candidates:
                tags = {**tags, **self._digest_tags(run_id, model_uri)}
                with _fluent_store(self.settings.connection_uri()):
                    version = mlflow.register_model(self._registrable_uri(run_id, model_uri), name, tags=tags)
                created.append(
                    RegisteredVersion(
                        architecture,
                        str(version.version),
                        run_id,
                        float(tags.get("test_accuracy", "nan")),
                        score=float(tags.get(score_tag, "nan")),
                    )
                )
        except BaseException as exc:
            for registered in created:
                self.client.delete_model_version(name, registered.version)
            if isinstance(exc, Exception):
                raise TrackingError(f"registering model versions of {name!r} failed, none kept: {exc}") from exc
            raise
        return created

    def logged_model_id(self, run_id: str) -> str | None:
        """The ``model_id`` of the MLflow 3 logged model of ``run_id`` (the latest), or None for a run that logged
        its model as plain files (earlier releases)."""
        outputs = self.client.get_run(run_id).outputs
        models = list(outputs.model_outputs) if outputs is not None and outputs.model_outputs else []
        return max(models, key=lambda output: output.step).model_id if models else None

    def _registrable_uri(self, run_id: str, model_uri: str) -> str:
        """``models:/<model_id>`` for a run's MLflow 3 logged model (the version then links to it), else
        ``model_uri`` itself."""
        from seqflow.core.models import MODEL_ARTIFACT_PATH

        if model_uri.rstrip("/") != f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}":
            return model_uri
        model_id = self.logged_model_id(run_id)
        return f"models:/{model_id}" if model_id else model_uri

    def _digest_tags(self, run_id: str, model_uri: str) -> dict[str, str]:
        """The run's record of its model's file digests, to be kept on the version registered from it."""
        from seqflow.core.models import MODEL_ARTIFACT_PATH

        if model_uri.rstrip("/") != f"runs:/{run_id}/{MODEL_ARTIFACT_PATH}":
            return {}
        recorded = self.client.get_run(run_id).data.tags.get(MODEL_DIGESTS_TAG)
        return {MODEL_DIGESTS_TAG: recorded} if recorded else {}

    def version_exists(self, version: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_model_version(self.settings.registered_model_name, version)
        except MlflowException:
            return False
        return True

    def withdraw_versions(self, versions: Iterable[str], previous_champion: str | None) -> None:
        """Delete ``versions``; if that took the champion alias away, point it at ``previous_champion`` again
        (when that version still exists). Deleting a version deletes the aliases on it.

        The one way versions are taken back: a registration that fails or is interrupted, a failed execution
        and a dead one's clean-up all come here."""
        from mlflow.exceptions import MlflowException

        name = self.settings.registered_model_name
        for version in versions:
            self.client.delete_model_version(name, version)
        if previous_champion and self.champion() is None:
            try:
                self.client.set_registered_model_alias(name, CHAMPION_ALIAS, previous_champion)
            except MlflowException as exc:
                logger.warning("could not give %r back to version %s: %s", CHAMPION_ALIAS, previous_champion, exc)

    def withdraw_versions_of_executions(self, parent_run_ids: Iterable[str]) -> list[str]:
        """Delete the versions registered by pipeline executions that never finished (their parent run was
        closed as KILLED), and give the champion alias back to the version it had before; returns the versions.

        An execution registers its versions, then moves the alias, then closes its parent run: a process killed
        in between leaves versions (and maybe the alias) that no finished execution stands behind.
        """
        name = self.settings.registered_model_name
        withdrawn = []
        for parent_run_id in parent_run_ids:
            versions = self.client.search_model_versions(
                f"name = '{name}' and tags.parent_run_id = '{parent_run_id}'", max_results=SEARCH_MAX_RESULTS
            )
            if not versions:
                continue
            champion = self.champion()
            previous = None
            if champion is not None and any(version.version == champion.version for version in versions):
                previous = (champion.tags or {}).get(PREVIOUS_CHAMPION_TAG) or None
            self.withdraw_versions([str(version.version) for version in versions], previous)
            withdrawn.extend(str(version.version) for version in versions)
        return withdrawn

    def champion(self):  # noqa: ANN201 - mlflow ModelVersion or None
        """The version behind the ``champion`` alias, or None when there is none yet."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.settings.registered_model_name, CHAMPION_ALIAS)
        except MlflowException:
            return None

    def model_version(self, version: str):  # noqa: ANN201 - mlflow ModelVersion
        """Version ``version`` of the registered model; a TrackingError naming the versions there are if absent."""
        from mlflow.exceptions import MlflowException

        name = self.settings.registered_model_name
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException:
            try:
                known = sorted(int(found.version) for found in self.client.search_model_versions(f"name='{name}'"))
            except MlflowException:
                known = []
            raise TrackingError(
                f"registered model {name!r} has no version {version!r} in {self.settings.tracking_uri} "
                f"(versions: {', '.join(map(str, known)) or 'none'})"
            ) from None

    def tag_version(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.settings.registered_model_name, version, key, str(value))

    def history_problem(self) -> str | None:
        """What is wrong with the champion history tag, with how to reset it; None when it is sound or absent."""
        return self._read_history()[1]

    def champion_history(self) -> list[dict[str, str]]:
        """Every recorded move of the champion alias, oldest first (empty before the first one).

        A tag that is not a valid history (edited by hand) reads as empty, with a warning that names the tag and
        how to reset it: the pipeline goes on, and its next move of the alias starts a new history. Commands
        that need the history (rollback) check :meth:`history_problem` first.
        """
        moves, problem = self._read_history()
        if problem:
            logger.warning("%s", problem)
        return moves

    def _read_history(self) -> tuple[list[dict[str, str]], str | None]:
        from mlflow.exceptions import MlflowException

        name = self.settings.registered_model_name
        try:
            tags = self.client.get_registered_model(name).tags
        except MlflowException:
            return [], None
        try:
            return parse_champion_history(tags.get(CHAMPION_HISTORY_TAG)), None
        except ValueError as invalid:
            return [], (
                f"the {CHAMPION_HISTORY_TAG!r} tag of registered model {name!r} is not a champion history ({invalid}); "
                "it is ignored and the next move of the champion alias starts a new one. To reset it now, delete the "
                f"tag in the MLflow UI (Models > {name} > Tags) or with MlflowClient().delete_registered_model_tag("
                f"{name!r}, {CHAMPION_HISTORY_TAG!r})"
            )

    def set_champion(
        self, version: str, audit: dict[str, str], action: str = "promote", details: dict[str, str] | None = None
    ) -> None:
        """Point ``champion`` at ``version``, tag it with ``audit`` and ``details`` (tags kept out of the history,
        e.g. the promotion's statistics, so it keeps more moves) and append the move to the history.

        All or nothing: if any step fails, the alias, the version's tags and the history are put back as they
        were (the alias is removed again if there was no champion before).
        """
        name = self.settings.registered_model_name
        previous = self.champion()
        if previous is not None and str(previous.version) != str(version) and not audit.get(PREVIOUS_CHAMPION_TAG):
            # Lets a failed execution's withdrawal put the alias back if it fails after moving it.
            audit = {**audit, PREVIOUS_CHAMPION_TAG: str(previous.version)}
        previous_tags = dict(self.client.get_model_version(name, version).tags)
        history = self.champion_history()
        entry = {"version": str(version), "action": action, **{key: str(value) for key, value in audit.items()}}
        alias_moved = False
        tagged: list[str] = []
        try:
            self.client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
            alias_moved = True
            for key, value in {**audit, **(details or {})}.items():
                self.client.set_model_version_tag(name, version, key, str(value))
                tagged.append(key)
            self.client.set_registered_model_tag(name, CHAMPION_HISTORY_TAG, _bounded_history([*history, entry]))
        except BaseException as exc:
            # Undo what was written, newest first; the history is the last write, so it never needs undoing.
            for key in reversed(tagged):
                if key in previous_tags:
                    self.client.set_model_version_tag(name, version, key, previous_tags[key])
                else:
                    self.client.delete_model_version_tag(name, version, key)
            if alias_moved and previous is not None:
                self.client.set_registered_model_alias(name, CHAMPION_ALIAS, previous.version)
            elif alias_moved:
                self.client.delete_registered_model_alias(name, CHAMPION_ALIAS)
            if isinstance(exc, Exception):
                raise TrackingError(f"moving {name}@{CHAMPION_ALIAS} to v{version} failed, nothing changed: {exc}") from exc
            raise
