"""Task caching that explains itself: content keys, code hashes, stale-output checks and a ledger of why.

Prefect decides hits and misses from the key :class:`PipelineCache` computes; this module decides what goes
into that key, per task (see ``_KEY_PARTS``; the tasks of ``seqflow run`` and of ``seqflow charlm run``):

- the content of the task's inputs: the data source's bytes, split and array digests, the vocabulary file,
  MLflow run ids of earlier steps; never object ids or paths alone;
- the slice of the configuration the task uses (``tokenisation.*`` for tokenise, ``training.*`` and the seed
  for train, ...), so a change to ``tokenisation.max_length`` reruns tokenise and what follows, nothing before;
- a hash of the source files of the seqflow modules the task depends on (``TASK_MODULES``), so a change to a
  helper module invalidates the tasks that use it (Prefect's ``TASK_SOURCE`` only sees the task's own body).

Results are persisted under ``<artifacts_dir>/cache/results`` (a new process finds them). Before a stored
result is reused its outputs are checked (files present with the same digests, MLflow runs still FINISHED,
registered versions still there): an unusable result is skipped, as if it were not there, and the task runs
again. A small ledger per task (``<artifacts_dir>/cache/ledger``) keeps the last key's parts, so a miss can say
what changed, and every decision is written per flow run (``<artifacts_dir>/cache/runs``) for the summary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from prefect.cache_policies import CachePolicy

from seqflow.sentiment.summary import TaskStatus

if TYPE_CHECKING:
    from prefect import Task
    from prefect.context import TaskRunContext

    from seqflow.config import CharDataConfig, DataConfig
    from seqflow.core.settings import TrackingSettings

logger = logging.getLogger(__name__)

CACHE_DIR_NAME = "cache"
# Bytes read at a time when hashing a file.
HASH_CHUNK_BYTES = 1 << 20

# The seqflow modules whose source each cached task depends on: its own task module plus every module its
# plain function reaches. A package stands for all of its modules. seqflow.config is left out on purpose: the
# values a task uses are part of its key, so editing a default changes the key without hashing config.py.
TASK_MODULES: dict[str, tuple[str, ...]] = {
    "download": ("seqflow.tasks.data", "seqflow.sentiment.sources", "seqflow.sentiment.datasets"),
    "contracts-raw": ("seqflow.tasks.data", "seqflow.core.contracts", "seqflow.sentiment.contracts", "seqflow.data_contracts", "seqflow.sentiment.datasets"),
    "tokenise": ("seqflow.tasks.data", "seqflow.sentiment.tokenise", "seqflow.models.text", "seqflow.sentiment.datasets"),
    "contracts-tokenised": ("seqflow.tasks.data", "seqflow.core.contracts", "seqflow.sentiment.contracts", "seqflow.data_contracts", "seqflow.sentiment.tokenise"),
    "train": (
        "seqflow.tasks.training", "seqflow.sentiment.steps", "seqflow.sentiment.train", "seqflow.models.architectures",
        "seqflow.models.text", "seqflow.core.tracking", "seqflow.core.evaluation", "seqflow.sentiment.serving", "seqflow.sentiment.tokenise",
        "seqflow.core.checkpoints", "seqflow.core.optimizers",
    ),
    "evaluate": (
        "seqflow.tasks.training", "seqflow.sentiment.steps", "seqflow.core.evaluation", "seqflow.core.tracking", "seqflow.sentiment.tokenise",
        "seqflow.sentiment.behaviour", "seqflow.core.optimizers",
    ),
    "register": (
        "seqflow.tasks.training", "seqflow.sentiment.steps", "seqflow.core.promotion", "seqflow.core.tracking", "seqflow.core.evaluation",
        "seqflow.sentiment.serving",
    ),
    # `seqflow charlm run`: the character-model tasks (their Prefect task names; see seqflow.tasks.charlm).
    "load-text": ("seqflow.tasks.charlm", "seqflow.charlm.sources", "seqflow.charlm.text"),
    "contracts-char-text": (
        "seqflow.tasks.charlm", "seqflow.charlm.contracts", "seqflow.core.contracts", "seqflow.sentiment.contracts", "seqflow.data_contracts",
        "seqflow.charlm.text",
    ),
    "encode-chars": ("seqflow.tasks.charlm", "seqflow.charlm.text"),
    "train-charlm": (
        "seqflow.tasks.charlm", "seqflow.charlm.steps", "seqflow.charlm.train", "seqflow.charlm.generate",
        "seqflow.charlm.text", "seqflow.models.charlm", "seqflow.core.tracking", "seqflow.core.evaluation",
        "seqflow.core.checkpoints", "seqflow.sentiment.train",
    ),
    "evaluate-charlm": (
        "seqflow.tasks.charlm", "seqflow.charlm.steps", "seqflow.charlm.train", "seqflow.charlm.text", "seqflow.core.tracking",
        "seqflow.charlm.baselines",
    ),
    "register-charlm": (
        "seqflow.tasks.charlm", "seqflow.charlm.steps", "seqflow.charlm.train", "seqflow.charlm.text",
        "seqflow.core.promotion", "seqflow.core.tracking", "seqflow.sentiment.steps", "seqflow.sentiment.registry",
        "seqflow.charlm.baselines", "seqflow.charlm.corpus",
    ),
}
# The order tasks appear in a summary.
TASK_ORDER = ("download", "contracts-raw", "tokenise", "contracts-tokenised", "train", "evaluate", "register")
CHARLM_TASK_ORDER = ("load-text", "contracts-char-text", "encode-chars", "train-charlm", "evaluate-charlm", "register-charlm")
# Summary order of the names tasks report under (their identity: ``train-lstm``, ``train-char_gru``,
# ``register-charlm``, ...): each flow's data steps, then train, evaluate and register.
_SUMMARY_ORDER = (
    "download", "contracts-raw", "tokenise", "contracts-tokenised", "load-text", "contracts-char-text", "encode-chars",
    "train", "evaluate", "register",
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


def module_files(module: str) -> list[Path]:
    """The source files of a module, or of every module in a package."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ValueError(f"cannot find the source of module {module!r}")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        return sorted(origin.parent.rglob("*.py"))
    return [origin]


def code_digests(modules: tuple[str, ...]) -> dict[str, str]:
    """``{module: sha256 of its source file(s)}``: contents, never modification times."""
    digests = {}
    for module in modules:
        hasher = hashlib.sha256()
        for path in module_files(module):
            hasher.update(path.name.encode() + b"\0")
            hasher.update(path.read_bytes())
        digests[module] = hasher.hexdigest()
    return digests


def source_fingerprint(data_config: DataConfig) -> str:
    """What the download task reads, by content: the file (or folder) behind the source spec.

    ``tfds:`` datasets are versioned and immutable, so their spec and folders (in the config slice) name them.
    """
    from seqflow.sentiment.sources import embedded_csv_path, parse_source_spec

    kind, argument = parse_source_spec(data_config.source)
    if kind == "embedded":
        return file_digest(embedded_csv_path())
    if kind == "tfds":
        return f"tfds:{argument}"
    path = Path(argument)
    if path.is_dir():
        return tree_digest(path)
    if path.is_file():
        return file_digest(path)
    # Missing: the download task reports it properly; the key just cannot match an earlier one.
    return f"missing:{path}"


def char_source_fingerprint(data_config: CharDataConfig) -> str:
    """What the load-text task reads, by content: the embedded plays it reads or the text file.

    ``tfds:`` datasets are versioned and immutable, so their spec (in the config slice) names them.
    """
    from seqflow.charlm.sources import embedded_play_paths, parse_char_source_spec

    kind, argument = parse_char_source_spec(data_config.source)
    if kind == "embedded":
        plays = embedded_play_paths()
        wanted = [name.strip() for name in argument.split(",") if name.strip()] or list(plays)
        # An unknown play: the task reports it properly; the key just cannot match an earlier one.
        return hashlib.sha256(
            "\n".join(f"{name}={file_digest(plays[name]) if name in plays else 'missing'}" for name in wanted).encode()
        ).hexdigest()
    if kind == "tfds":
        return f"tfds:{argument}"
    path = Path(argument)
    return file_digest(path) if path.is_file() else f"missing:{path}"


def _slice(prefix: str, section: Any) -> dict[str, Any]:
    return {f"{prefix}.{name}": value for name, value in dataclasses.asdict(section).items()}


def _store(settings: TrackingSettings) -> dict[str, str]:
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


def _split_digests(split_files: Any) -> dict[str, str]:
    return {f"{split} digest": digest for split, digest in sorted(split_files.digests.items())}


def _download_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    data_config = inputs["data_config"]
    return "download", {"source": source_fingerprint(data_config)}, {**_slice("data", data_config), "seed": inputs["seed"]}


def _raw_contract_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    return "contracts-raw", _split_digests(inputs["split_files"]), _slice("contracts", inputs["contracts"])


def _tokenise_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    return "tokenise", _split_digests(inputs["split_files"]), _slice("tokenisation", inputs["tokenisation"])


def _tokenised_contract_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    tokenised = inputs["tokenised"]
    config = {**_slice("tokenisation", inputs["tokenisation"]), **_slice("contracts", inputs["contracts"])}
    return "contracts-tokenised", {"arrays digest": tokenised.array_digest}, config


def _train_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    tokenised, config = inputs["tokenised"], inputs["config"]
    # This architecture's settings with its overrides applied: another architecture's override, or which other
    # architectures run alongside, does not change this one's model (and must not retrain it), while a change
    # is reported by the field that changed ("training.learning_rate"), not as a new override list.
    training = {f"training.{key}": value for key, value in config.training.settings_of(inputs["architecture"]).items()}
    return (
        f"train-{inputs['architecture']}",
        {
            "dataset digest": inputs["split_files"].digest,
            "arrays digest": tokenised.array_digest,
            "vocabulary digest": file_digest(tokenised.vocabulary_path),
            **_store(inputs["settings"]),
        },
        {"architecture": inputs["architecture"], "seed": config.seed, **training},
    )


def _evaluate_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    trained = inputs["trained"]
    return (
        f"evaluate-{trained.architecture}",
        {"trained run": trained.run_id, "arrays digest": inputs["tokenised"].array_digest, **_store(inputs["settings"])},
        {"training.batch_size": inputs["batch_size"], **_slice("behaviour", inputs["behaviour"])},
    )


def _register_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    evaluated = inputs["evaluated"]
    metrics = json.dumps([[model.run_id, model.test_metrics] for model in evaluated], sort_keys=True)
    return (
        "register",
        {
            "evaluated runs": ", ".join(f"{model.architecture}={model.run_id}" for model in evaluated),
            "test metrics": hashlib.sha256(metrics.encode()).hexdigest(),
            "dataset digest": inputs["split_files"].digest,
            **_store(inputs["settings"]),
        },
        _slice("promotion", inputs["promotion"]),
    )


def _load_text_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    data_config = inputs["data_config"]
    return "load-text", {"source": char_source_fingerprint(data_config)}, {**_slice("data", data_config), "seed": inputs["seed"]}


def _char_contract_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    return "contracts-char-text", _split_digests(inputs["split_files"]), _slice("contracts", inputs["contracts"])


def _encode_chars_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    # The vocabulary and ids follow from the text and the rare-character threshold alone.
    return "encode-chars", _split_digests(inputs["split_files"]), {"data.min_char_count": inputs.get("min_char_count")}


def _char_stream_settings(config: Any) -> dict[str, Any]:
    """The settings of the carried-state validation pass (evaluation, and re-scoring a champion)."""
    training = config.training
    return {"training.validation_streams": training.validation_streams, "training.validation_window": training.validation_window}


def _train_char_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    encoded, config = inputs["encoded"], inputs["config"]
    training = {key: value for key, value in _slice("training", config.training).items() if key != "training.architectures"}
    return (
        f"train-{inputs['architecture']}",
        {
            "dataset digest": inputs["split_files"].digest,
            "ids digest": encoded.ids_digest,
            "vocabulary digest": file_digest(encoded.vocabulary_path),
            **_store(inputs["settings"]),
        },
        # Sampling settings too: training logs the samples (and an empty prefix reads the validation text).
        {"architecture": inputs["architecture"], "seed": config.seed, **training, **_slice("sampling", config.sampling)},
    )


def _evaluate_char_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    trained = inputs["trained"]
    return (
        f"evaluate-{trained.architecture}",
        {"trained run": trained.run_id, "ids digest": inputs["encoded"].ids_digest, **_store(inputs["settings"])},
        _char_stream_settings(inputs["config"]),
    )


def _register_char_parts(inputs: dict[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    evaluated, config = inputs["evaluated"], inputs["config"]
    scores = json.dumps([[model.run_id, model.val_loss, model.val_perplexity] for model in evaluated], sort_keys=True)
    return (
        "register-charlm",
        {
            "evaluated runs": ", ".join(f"{model.architecture}={model.run_id}" for model in evaluated),
            "validation scores": hashlib.sha256(scores.encode()).hexdigest(),
            "ids digest": inputs["encoded"].ids_digest,
            **_store(inputs["settings"]),
        },
        {**_slice("promotion", config.promotion), **_char_stream_settings(config)},
    )


_KEY_PARTS: dict[str, Callable[[dict[str, Any]], tuple[str, dict[str, str], dict[str, Any]]]] = {
    "download": _download_parts,
    "contracts-raw": _raw_contract_parts,
    "tokenise": _tokenise_parts,
    "contracts-tokenised": _tokenised_contract_parts,
    "train": _train_parts,
    "evaluate": _evaluate_parts,
    "register": _register_parts,
    "load-text": _load_text_parts,
    "contracts-char-text": _char_contract_parts,
    "encode-chars": _encode_chars_parts,
    "train-charlm": _train_char_parts,
    "evaluate-charlm": _evaluate_char_parts,
    "register-charlm": _register_char_parts,
}


def key_parts(task_name: str, inputs: dict[str, Any]) -> KeyParts:
    identity, input_digests, config = _KEY_PARTS[task_name](inputs)
    return KeyParts(identity, input_digests, config, code_digests(TASK_MODULES[task_name]))


# --- is a stored result still usable? ----------------------------------------------------------------------


def _splits_problem(split_files: Any, splits: tuple[str, ...], digest_of: Callable[[str], str]) -> str | None:
    for split in splits:
        path = split_files.path_of(split)
        if not Path(path).is_file():
            return f"split file {path} is gone"
        if digest_of(split) != split_files.digests[split]:
            return f"split file {path} changed on disk"
    return None


def split_files_problem(split_files: Any) -> str | None:
    """Why these split files cannot be used (gone or changed on disk), or None."""
    from seqflow.sentiment.datasets import SPLITS, content_digest, read_split

    return _splits_problem(split_files, SPLITS, lambda split: content_digest(read_split(split_files, split)))


def tokenised_problem(tokenised: Any) -> str | None:
    """Why these tokenised arrays cannot be used (gone or changed on disk), or None."""
    from seqflow.sentiment.tokenise import arrays_digest, load_arrays

    for path in (tokenised.arrays_path, tokenised.vocabulary_path):
        if not Path(path).is_file():
            return f"{path} is gone"
    if arrays_digest(load_arrays(tokenised)) != tokenised.array_digest:
        return f"{tokenised.arrays_path} changed on disk"
    return None


def char_split_files_problem(split_files: Any) -> str | None:
    """Why these character split files cannot be used (gone or changed on disk), or None."""
    from seqflow.charlm.text import CHAR_SPLITS, read_char_split, text_digest

    return _splits_problem(split_files, CHAR_SPLITS, lambda split: text_digest(read_char_split(split_files, split)))


def char_encoded_problem(encoded: Any) -> str | None:
    """Why these character ids and vocabulary cannot be used (gone or changed on disk), or None."""
    from seqflow.charlm.text import CHAR_SPLITS, char_ids_digest, load_char_ids

    for path in (encoded.vocabulary_path, *(encoded.ids_path_of(split) for split in CHAR_SPLITS)):
        if not Path(path).is_file():
            return f"{path} is gone"
    if char_ids_digest({split: load_char_ids(encoded, split) for split in CHAR_SPLITS}) != encoded.ids_digest:
        return f"character ids in {encoded.encoded_dir} changed on disk"
    return None


def _report_problem(report: Any, inputs: dict[str, Any]) -> str | None:
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


def _trained_problem(trained: Any, inputs: dict[str, Any]) -> str | None:
    # The file evaluation loads: the classifier (sentiment) or the step model (character models).
    model_path = getattr(trained, "classifier_path", None) or trained.step_model_path
    if not Path(model_path).is_file():
        return f"model file {model_path} is gone"
    return _run_problem(inputs["settings"], trained.run_id)


def _evaluated_problem(evaluated: Any, inputs: dict[str, Any]) -> str | None:
    return _run_problem(inputs["settings"], evaluated.run_id)


def _registration_problem(outcome: Any, inputs: dict[str, Any]) -> str | None:
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


_OUTPUT_PROBLEMS: dict[str, Callable[[Any, dict[str, Any]], str | None]] = {
    "download": lambda split_files, inputs: split_files_problem(split_files),
    "contracts-raw": _report_problem,
    "tokenise": lambda tokenised, inputs: tokenised_problem(tokenised),
    "contracts-tokenised": _report_problem,
    "train": _trained_problem,
    "evaluate": _evaluated_problem,
    "register": _registration_problem,
    "load-text": lambda split_files, inputs: char_split_files_problem(split_files),
    "contracts-char-text": _report_problem,
    "encode-chars": lambda encoded, inputs: char_encoded_problem(encoded),
    "train-charlm": _trained_problem,
    "evaluate-charlm": _evaluated_problem,
    "register-charlm": _registration_problem,
}


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
    """Prefect cache policy of one seqflow task: the key of :func:`key_parts`, skipping unusable results.

    Without a ``cache_dir`` (a task not configured by :func:`cached`) it computes no key: nothing is cached.
    """

    task_name: str = ""
    cache_dir: str | None = None

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        if not self.cache_dir or not task_ctx:
            return None
        root = Path(self.cache_dir)
        parts = key_parts(self.task_name, inputs)
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
                problem = _OUTPUT_PROBLEMS[self.task_name](result, inputs)
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
    policy = task.cache_policy if isinstance(task.cache_policy, PipelineCache) else PipelineCache(task_name=task.name)
    return task.with_options(
        cache_policy=dataclasses.replace(policy, cache_dir=str(root)),
        result_storage=root / "results",
        persist_result=True,
        refresh_cache=refresh,
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

