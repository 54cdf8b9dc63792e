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
from pathlib import Path
from typing import Any, Callable, Sequence

# How MLflow names a dataset input's role (the ``mlflow.data.context`` input tag) for each split.
SPLIT_CONTEXTS = {"train": "training", "validation": "validation", "test": "test"}
# Characters of seqflow's SHA-256 digest shown as an MLflow dataset digest (its column holds 36 at most).
DATASET_DIGEST_CHARS = 12
# Leading words of the command line that name the command in the Source column ("seqflow charlm run").
SOURCE_WORDS = 3


def source_tags() -> dict[str, str]:
    """``mlflow.source.name`` (the command: ``seqflow run``), ``mlflow.source.type`` and ``mlflow.user``, the
    tags MLflow's own ``start_run`` sets and the UI shows as Source and Created by."""
    words = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"]
    for argument in sys.argv[1:]:
        if argument.startswith("-") or len(words) >= SOURCE_WORDS:
            break
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
        if read_frame is not None:
            dataset = from_pandas(read_frame(path), source=str(path), name=f"{name}-{split}", digest=digest)
        else:
            from mlflow.data.dataset_source_registry import resolve_dataset_source

            dataset = MetaDataset(resolve_dataset_source(str(path)), name=f"{name}-{split}", digest=digest)
        context = InputTag(MLFLOW_DATASET_CONTEXT, SPLIT_CONTEXTS.get(split, split))
        inputs.append(DatasetInput(dataset._to_mlflow_entity(), tags=[context]))
    return inputs


def log_split_inputs(
    client: Any, run_id: str, split_files: Any, splits: Sequence[str], name: str,
    read_frame: Callable[[Path], Any] | None = None,
) -> None:
    """Log the splits as dataset inputs of ``run_id`` (see :func:`split_inputs`)."""
    client.log_inputs(run_id, datasets=split_inputs(split_files, splits, name, read_frame))
