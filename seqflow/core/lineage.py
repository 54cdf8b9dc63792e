"""What MLflow's runs table shows about where a run came from, for every pipeline: the data splits it read as
MLflow dataset inputs (name, digest, source, context: the Dataset column) and the command and user that started
it (the Source and Created-by columns).

The dataset digest MLflow shows is the start of seqflow's SHA-256 content digest of the split (MLflow keeps at
most 36 characters); the full digest stays in the run's ``<split>_digest`` tag, which the caches compare.
"""

from __future__ import annotations

import getpass
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

# How MLflow names a dataset input's role (the ``mlflow.data.context`` input tag) for each split.
SPLIT_CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}
# Characters of seqflow's SHA-256 digest shown as an MLflow dataset digest (its column holds 36 at most).
DATASET_DIGEST_CHARS = 12
# Leading words of the command line that name the command in the Source column ("seqflow charlm run").
SOURCE_WORDS = 3
# Options of the seqflow command line before the command that take a value (skipped with it).
VALUE_OPTIONS = ("--env-file", "--log-level")


def source_tags() -> dict[str, str]:
    """``mlflow.source.name`` (the command: ``seqflow run``), ``mlflow.source.type`` and ``mlflow.user``, the
    tags MLflow's own ``start_run`` sets and the UI shows as Source and Created by."""
    words = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"]
    arguments = iter(sys.argv[1:])
    for argument in arguments:
        if len(words) >= SOURCE_WORDS:
            break
        if argument.startswith("-") and len(words) > 1:
            break  # the command's own options: not part of its name
        if argument in VALUE_OPTIONS:
            next(arguments, None)  # its value, not a command word
        elif not argument.startswith("-"):
            words.append(argument)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (some containers)
        user = f"uid{os.getuid()}"
    return {"mlflow.source.name": " ".join(words), "mlflow.source.type": "LOCAL", "mlflow.user": user}


def split_inputs(
    split_files: Any, splits: Sequence[str], name: str, read_frame: Callable[[Path], Any] | None = None
) -> list[Any]:
    """One MLflow ``DatasetInput`` per split of ``split_files`` (``source``, ``digests``, ``path_of``): named
    ``<name>-<split>``, its digest the split's content digest, its source the split's file, its context
    training, validation or test. ``read_frame`` (a split's path -> pandas DataFrame) adds the schema and row
    count (``mlflow.data.from_pandas``); without it only name, digest and source are recorded."""
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    for split in splits:
        path = Path(split_files.path_of(split)).absolute()
        digest = split_files.digests[split][:DATASET_DIGEST_CHARS]
        source = _file_source(path)
        if read_frame is not None:
            dataset = from_pandas(read_frame(path), source=source, name=f"{name}-{split}", digest=digest)
        else:
            dataset = MetaDataset(source, name=f"{name}-{split}", digest=digest)
        context = InputTag(MLFLOW_DATASET_CONTEXT, SPLIT_CONTEXTS.get(split, split))
        with warnings.catch_warnings():
            # The entity infers the schema, and MLflow hints that an int column cannot hold a missing value: the
            # label column, which the data contract already requires to be 0 or 1 in every row (one warning per
            # split and run otherwise).
            warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column", category=UserWarning)
            entity = dataset._to_mlflow_entity()
        inputs.append(DatasetInput(entity, tags=[context]))
    return inputs


def _file_source(path: Path):  # noqa: ANN202 - an MLflow DatasetSource
    """MLflow's source for a local file. MLflow 3.17 registers its local-file source class twice, so resolving a
    path by name warns that it "can be interpreted in multiple ways": the class is picked here instead."""
    from mlflow.data.dataset_source_registry import get_registered_sources, resolve_dataset_source

    local = next((source for source in get_registered_sources() if source.__name__ == "LocalArtifactDatasetSource"), None)
    return local(str(path)) if local is not None else resolve_dataset_source(str(path))


def log_split_inputs(
    client: Any, run_id: str, split_files: Any, splits: Sequence[str], name: str,
    read_frame: Callable[[Path], Any] | None = None,
) -> None:
    """Log the splits as dataset inputs of ``run_id`` (see :func:`split_inputs`)."""
    client.log_inputs(run_id, datasets=split_inputs(split_files, splits, name, read_frame))


def measured_on(tags: dict[str, str], split: str, name: str) -> tuple[str, str] | None:
    """``(dataset name, digest)`` of ``split`` as :func:`split_inputs` logs it, from a run's ``<split>_digest``
    tag, for metrics measured on it; None when the run has no such tag."""
    digest = tags.get(f"{split}_digest")
    return (f"{name}-{split}", digest[:DATASET_DIGEST_CHARS]) if digest else None
