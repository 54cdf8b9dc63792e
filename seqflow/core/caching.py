"""Task caching that explains itself: content keys, code hashes, stale-output checks and a ledger of why.

Prefect decides hits and misses from the key :class:`PipelineCache` computes. Each cached task declares its
policy at its decorator (``@task(cache_policy=PipelineCache(key=..., check=...))``, in :mod:`seqflow.tasks`):
a key recipe that names what goes into its key, and a check of a stored result's outputs. The key holds:

- the content of the task's inputs: the data source's bytes, split and array digests, the vocabulary file,
  MLflow run ids of earlier steps; never object ids or paths alone;
- the slice of the configuration the task uses (``tokenisation.*`` for tokenise, ``training.*`` and the seed
  for train, ...), so a change to ``tokenisation.max_length`` reruns tokenise and what follows, nothing before;
- digests of the code the task's function reaches: its own source and the seqflow modules it imports,
  transitively, read from the import statements (:mod:`seqflow.core.codedigest`), so a change to a helper
  module invalidates the tasks that use it and no others (Prefect's ``TASK_SOURCE`` only sees the task's body).

Results are persisted under ``<artifacts_dir>/cache/results`` (a new process finds them). Before a stored
result is reused its outputs are checked (files present with the same digests, MLflow runs still FINISHED,
registered versions still there; each pipeline's own checks and source fingerprints are in its
``cache_checks`` module): an unusable result is skipped, as if it were not there, and the task runs
again. A small ledger per task (``<artifacts_dir>/cache/ledger``) keeps the last key's parts, so a miss can say
what changed, and every decision is written per flow run (``<artifacts_dir>/cache/runs``) for the summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from prefect.cache_policies import CachePolicy

from seqflow.core.codedigest import code_digests_of
from seqflow.core.progress import report_step
from seqflow.core.task_status import TaskStatus

if TYPE_CHECKING:
    from prefect import Task
    from prefect.context import TaskRunContext

    from seqflow.core.settings import TrackingSettings

logger = logging.getLogger(__name__)

CACHE_DIR_NAME = "cache"
# Bytes read at a time when hashing a file.
HASH_CHUNK_BYTES = 1 << 20

# Summary order of the names tasks report under (their identity: ``train-lstm``, ``train-char_gru``,
# ``register-charlm``, ...): each flow's data steps, then train, refit, evaluate, ensemble and register.
_SUMMARY_ORDER = (
    "download", "contracts-raw", "tokenise", "contracts-tokenised", "load-text", "contracts-char-text", "encode-chars",
    "train", "refit", "evaluate", "ensemble", "register",
)


# --- content digests ---------------------------------------------------------------------------------------


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def tree_digest(root: Path) -> str:
    """SHA-256 over every file below ``root``: relative names and contents, in name order."""
    hasher = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hasher.update(f"{path.relative_to(root).as_posix()}\0{file_digest(path)}\n".encode())
    return hasher.hexdigest()


def config_slice(prefix: str, section: Any) -> dict[str, Any]:
    """A config section as ``{"<prefix>.<field>": value}``: the names a miss is explained with."""
    return {f"{prefix}.{name}": value for name, value in dataclasses.asdict(section).items()}


def store_parts(settings: TrackingSettings) -> dict[str, str]:
    """The MLflow store a task's runs and versions live in, as a key input."""
    return {"MLflow store": f"{settings.tracking_uri} | {settings.experiment_name} | {settings.registered_model_name}"}


# --- what each task keys on ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyParts:
    """Everything a task's result depends on, by name, so a change can be reported by name."""

    identity: str
    inputs: dict[str, str]
    config: dict[str, Any]
    code: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), sort_keys=True, default=str))

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


def split_digests(split_files: Any) -> dict[str, str]:
    """The content digest of every split, as key inputs."""
    return {f"{split} digest": digest for split, digest in sorted(split_files.digests.items())}


def split_contract_key(identity: str) -> "KeyRecipe":
    """The key recipe of a contract check on a pipeline's split files: the splits' content and the contracts
    settings (``inputs["split_files"]``, ``inputs["contracts"]``)."""

    def recipe(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
        return identity, split_digests(inputs["split_files"]), config_slice("contracts", inputs["contracts"])

    return recipe


def registration_inputs(evaluated: list[Any], scores_name: str, scores: Any, settings: TrackingSettings) -> dict[str, str]:
    """What a registration keys on besides its data: which run holds each evaluated model, a digest of the scores
    it compares (``scores``, JSON-able, named ``scores_name``) and the store it registers in."""
    scores_json = json.dumps(scores, sort_keys=True)
    return {
        "evaluated runs": ", ".join(f"{model.architecture}={model.run_id}" for model in evaluated),
        scores_name: hashlib.sha256(scores_json.encode()).hexdigest(),
        **store_parts(settings),
    }


# What a key recipe returns: the task's identity (its name in summaries and the ledger, e.g. ``train-lstm``),
# its inputs by content, and the configuration it uses.
KeyRecipe = Callable[[dict[str, Any]], tuple[str, dict[str, str], dict[str, Any]]]
# What an output check returns: why a stored result cannot be reused, or None.
OutputCheck = Callable[[Any, dict[str, Any]], "str | None"]


def output_check(problem: Callable[[Any], "str | None"]) -> OutputCheck:
    """A :class:`PipelineCache` output check from a function that says why an output cannot be used (the same
    function the rerun tables ask about an earlier execution's outputs)."""

    def check(output: Any, inputs: dict[str, Any]) -> str | None:
        return problem(output)

    return check


def key_parts(task: Task, inputs: dict[str, Any]) -> KeyParts:
    """What the key of ``task`` on ``inputs`` is made of: its declared recipe and the digests of its code."""
    policy = task.cache_policy
    if not isinstance(policy, PipelineCache) or policy.key is None:
        raise TypeError(f"task {task.name!r} declares no PipelineCache(key=...) at its decorator")
    identity, input_digests, config = policy.key(inputs)
    return KeyParts(identity, input_digests, config, code_digests_of(task.fn))


# --- is a stored result still usable? ----------------------------------------------------------------------


def splits_problem(split_files: Any, splits: tuple[str, ...], digest_of: Callable[[str], str]) -> str | None:
    """Why a pipeline's split files (``path_of``, ``digests``) cannot be used: one gone, or its content digest
    (``digest_of(split)``) no longer the recorded one; or None."""
    for split in splits:
        path = split_files.path_of(split)
        if not Path(path).is_file():
            return f"split file {path} is gone"
        if digest_of(split) != split_files.digests[split]:
            return f"split file {path} changed on disk"
    return None


def report_problem(report: Any, inputs: dict[str, Any]) -> str | None:
    """Why a stored contract report cannot be reused (its results file is gone), or None."""
    return None if Path(report.results_path).is_file() else f"contract results {report.results_path} are gone"


def _run_problem(settings: TrackingSettings, run_id: str) -> str | None:
    from seqflow.core.tracking import Tracker

    state = Tracker(settings).run_state(run_id)
    if state is None:
        return f"MLflow run {run_id} is gone"
    status, lifecycle = state
    if lifecycle != "active":
        return f"MLflow run {run_id} is {lifecycle}"
    if status != "FINISHED":
        return f"MLflow run {run_id} is {status}, not FINISHED"
    return None


def trained_problem(trained: Any, inputs: dict[str, Any]) -> str | None:
    """Why a stored trained model cannot be reused (model file gone, run not FINISHED), or None."""
    # The file evaluation loads: the classifier (sentiment) or the step model (character models).
    model_path = getattr(trained, "classifier_path", None) or trained.step_model_path
    if not Path(model_path).is_file():
        return f"model file {model_path} is gone"
    return _run_problem(inputs["settings"], trained.run_id)


def evaluated_problem(evaluated: Any, inputs: dict[str, Any]) -> str | None:
    """Why a stored evaluation cannot be reused (its run is gone or not FINISHED), or None."""
    return _run_problem(inputs["settings"], evaluated.run_id)


def registration_problem(outcome: Any, inputs: dict[str, Any]) -> str | None:
    """Why a stored registration cannot be reused (a version gone, the champion moved since), or None."""
    from seqflow.core.tracking import Tracker

    tracker = Tracker(inputs["settings"])
    for registered in outcome.versions:
        if not tracker.version_exists(registered.version):
            return f"registered version {registered.version} is gone"
    champion = tracker.champion()
    current = str(champion.version) if champion is not None else None
    if current != outcome.champion_version:
        # Promotion compares against the current champion: a moved alias may change the decision.
        return f"champion is now v{current}, not v{outcome.champion_version} as after that registration"
    return None


# --- ledger: what the last key was made of, and who produced each result ----------------------------------


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    partial.replace(path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def describe_change(previous: dict[str, Any] | None, current: dict[str, Any]) -> str:
    """What differs between two key parts, in words: config values, input names, code modules."""
    if not previous:
        return "no earlier result"
    changes: list[str] = []
    before, after = previous.get("config", {}), current["config"]
    for name in sorted(set(before) | set(after)):
        if before.get(name) != after.get(name):
            changes.append(f"{name} changed ({before.get(name, 'unset')} -> {after.get(name, 'unset')})")
    changed_inputs = sorted(name for name in set(previous.get("inputs", {})) | set(current["inputs"]) if previous.get("inputs", {}).get(name) != current["inputs"].get(name))
    if changed_inputs:
        changes.append(f"input changed ({', '.join(changed_inputs)})")
    changed_code = sorted(name for name in set(previous.get("code", {})) | set(current["code"]) if previous.get("code", {}).get(name) != current["code"].get(name))
    if changed_code:
        changes.append(f"code changed ({', '.join(changed_code)})")
    return "; ".join(changes) if changes else "no earlier result with these inputs, config and code"


def cache_dir(artifacts_dir: str | Path) -> Path:
    return Path(artifacts_dir).resolve() / CACHE_DIR_NAME


@dataclass
class PipelineCache(CachePolicy):
    """Prefect cache policy of one seqflow task, declared at its decorator: ``key`` names what its result
    depends on (identity, inputs by content, config slice; the code is added from the task's imports), ``check``
    says why a stored result's outputs are unusable (then it is skipped and the task runs).

    Without a ``cache_dir`` (a task not configured by :func:`cached`) it computes no key: nothing is cached.
    """

    key: KeyRecipe | None = None
    check: OutputCheck | None = None
    cache_dir: str | None = None

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        if not self.cache_dir or not task_ctx:
            return None
        root = Path(self.cache_dir)
        parts = key_parts(task_ctx.task, inputs)
        current = parts.as_dict()
        key = parts.key()
        store = task_ctx.result_store
        ledger_path = root / "ledger" / f"{parts.identity}.json"
        ledger = _read_json(ledger_path) or {}
        forced = bool(task_ctx.task.refresh_cache) or _refresh_setting()
        # A stored result whose outputs are unusable is skipped: the next key in its chain is used instead, so
        # the stale record is never read again and a fresh result is cached without deleting anything.
        stale: list[str] = []
        cached_result: Any = None
        while store.exists(key):
            try:
                result = store.read(key).result
                problem = self.check(result, inputs) if self.check is not None else None
            except Exception as exc:  # noqa: BLE001 - an unreadable record is as unusable as a stale one
                problem = f"stored result unreadable ({type(exc).__name__})"
            if problem is None:
                cached_result = result
                break
            stale.append(problem)
            key = hashlib.sha256(f"{key}|after-stale".encode()).hexdigest()
        flow_run_id = str(task_ctx.task_run.flow_run_id or task_ctx.task_run.id)
        producers = dict(ledger.get("producers", {}))
        if forced:
            status, reason = "ran", "forced (rerun)"
        elif cached_result is not None:
            producer = producers.get(key)
            status = "cached"
            reason = f"same inputs, config and code as flow run {producer}" if producer else "same inputs, config and code as an earlier run"
        elif stale:
            status, reason = "ran", f"earlier result unusable: {stale[-1]}"
        else:
            status, reason = "ran", describe_change(ledger.get("parts"), current)
        if status == "ran":
            producers[key] = flow_run_id
        _write_json(ledger_path, {"parts": current, "key": key, "producers": producers})
        run_id = getattr(cached_result, "run_id", None) if status == "cached" else None
        task_status = TaskStatus(task=parts.identity, status=status, reason=reason, run_id=run_id)
        _write_json(root / "runs" / flow_run_id / f"{parts.identity}.json", dataclasses.asdict(task_status))
        logger.info("%s: %s (%s)", parts.identity, status, reason)
        return key


def _refresh_setting() -> bool:
    from prefect.settings import PREFECT_TASKS_REFRESH_CACHE

    return bool(PREFECT_TASKS_REFRESH_CACHE.value())


def cached(task: Task, artifacts_dir: str | Path, refresh: bool = False) -> Task:
    """``task`` caching its results under ``<artifacts_dir>/cache``; ``refresh`` runs it past the cache and
    stores the new result in place of the old one."""
    root = cache_dir(artifacts_dir)
    if not isinstance(task.cache_policy, PipelineCache):
        raise TypeError(f"task {task.name!r} declares no PipelineCache at its decorator; it cannot be cached")
    return task.with_options(
        cache_policy=dataclasses.replace(task.cache_policy, cache_dir=str(root)),
        result_storage=root / "results",
        persist_result=True,
        refresh_cache=refresh,
        # Every step tells the run's progress reporter that it finished (seqflow.core.progress).
        on_completion=[*task.on_completion_hooks, report_step],
        on_failure=[*task.on_failure_hooks, report_step],
    )


def task_statuses(artifacts_dir: str | Path, flow_run_id: str | None) -> list[TaskStatus]:
    """What each cached task of one flow run did and why, in pipeline order."""
    if not flow_run_id:
        return []
    folder = cache_dir(artifacts_dir) / "runs" / str(flow_run_id)
    statuses = [TaskStatus(**payload) for path in folder.glob("*.json") if (payload := _read_json(path))]

    def order(status: TaskStatus) -> tuple[int, str]:
        stem = next((name for name in _SUMMARY_ORDER if status.task == name or status.task.startswith(f"{name}-")), "")
        return (_SUMMARY_ORDER.index(stem) if stem else len(_SUMMARY_ORDER), status.task)

    return sorted(statuses, key=order)

