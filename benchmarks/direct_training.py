"""Train one architecture of a profile on the pipeline's own data steps, without Prefect or MLflow.

For cheap experiments when a full ``seqflow run`` costs too much (a shared CPU): the same source loading,
stratified split, tokenisation and :func:`seqflow.sentiment.train.train_classifier` as the flow, then the test split
scored once. Prints each epoch and a ``RESULT {json}`` line, and appends the result to ``--results``.

Usage::

    uv run python benchmarks/direct_training.py PROFILE ARCH OUT_DIR [section.field=value ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from seqflow.core.overrides import parse_assignments
from seqflow.sentiment.profiles import resolve_pipeline_config
from seqflow.sentiment.datasets import split_source, write_splits
from seqflow.core.evaluation import classification_metrics
from seqflow.sentiment.sources import load_source
from seqflow.sentiment.tokenise import load_arrays, pad_and_tokenise
from seqflow.sentiment.train import train_classifier

# Reviews scored per call when evaluating the test split.
PREDICT_BATCH_SIZE = 512


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/direct_training.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("profile")
    parser.add_argument("architecture")
    parser.add_argument("out_dir", type=Path, help="scratch folder for splits, arrays and the model")
    parser.add_argument("assignments", nargs="*", metavar="section.field=value")
    parser.add_argument("--results", type=Path, help="JSON-lines file to append the result to")
    args = parser.parse_args(argv)

    artifacts_dir = args.out_dir / "artifacts"
    config = resolve_pipeline_config(
        args.profile, None, {"artifacts_dir": str(artifacts_dir), **parse_assignments(args.assignments)}
    )
    started = time.time()
    source = load_source(config.data)
    split_files = write_splits(split_source(source, config.data, config.seed), source, config.data, config.seed, artifacts_dir)
    tokenised = pad_and_tokenise(split_files, config.tokenisation, artifacts_dir)
    arrays = load_arrays(tokenised)
    print("data ready", {name: array.shape for name, array in arrays.items()}, f"{time.time() - started:.0f}s", flush=True)

    def log_epoch(epoch: int, logs: dict[str, float]) -> None:
        metrics = " ".join(f"{key}={value:.4f}" for key, value in logs.items())
        print(f"epoch {epoch}: {metrics} t={time.time() - started:.0f}s", flush=True)

    outcome = train_classifier(
        args.architecture, arrays, tokenised.vocab_size, config.training, config.seed, args.out_dir / "models",
        on_epoch_end=log_epoch,
    )
    import keras

    model = keras.saving.load_model(outcome.classifier_path)
    probabilities = model.predict(arrays["x_test"], batch_size=PREDICT_BATCH_SIZE, verbose=0)
    metrics = classification_metrics(probabilities, arrays["y_test"])
    result = {
        "command": " ".join(["uv run python benchmarks/direct_training.py", *(argv if argv is not None else sys.argv[1:])]),
        "profile": args.profile,
        "architecture": args.architecture,
        "overrides": args.assignments,
        "test_accuracy": metrics["accuracy"],
        "roc_auc": metrics["roc_auc"],
        "epochs_run": outcome.epochs_run,
        "best_val_accuracy": max(outcome.history["val_accuracy"]),
        "seconds_per_epoch": outcome.seconds_per_epoch,
        "rows": {name[2:]: int(array.shape[0]) for name, array in arrays.items() if name.startswith("x_")},
    }
    print("RESULT", json.dumps(result), flush=True)
    if args.results:
        with args.results.open("a", encoding="utf-8") as results:
            results.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
