"""The ``seqflow`` command.

Everything with side effects (reading ``mlflow.env``, logging setup, Prefect settings) happens inside
:func:`main`, never at import time. Heavy libraries (TensorFlow, Prefect, MLflow) are imported only by the
subcommand that needs them, so ``seqflow --help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Iterator, Sequence

from seqflow import __version__
from seqflow.config import (
    ALL_ARCHITECTURES,
    DEFAULT_DASK_WORKERS,
    PROFILES,
    RUNNERS,
    ExecutionConfig,
    PipelineConfig,
    get_profile,
    parse_assignments,
    resolve_pipeline_config,
)
from seqflow.errors import SeqflowError
from seqflow.settings import TrackingSettings, load_settings

logger = logging.getLogger("seqflow")

# Libraries that log at INFO about their own internals; a pipeline log should show seqflow's steps.
NOISY_LOGGERS = (
    "great_expectations", "absl", "tensorflow", "h5py", "matplotlib", "alembic", "urllib3", "httpx", "httpcore",
    # Dask's scheduler, nanny and workers report every connection at INFO.
    "distributed",
)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--profile, --source, --seed and --set, shared by every command that resolves a PipelineConfig."""
    parser.add_argument("--profile", choices=sorted(PROFILES), help="named settings (default: SEQFLOW_PROFILE or quick)")
    parser.add_argument("--source", help="data source: embedded | tfds:imdb_reviews | aclimdb:PATH | csv:PATH | parquet:PATH")
    parser.add_argument("--seed", type=int, help="the one random seed for splits, initialisation and shuffling")
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override one setting, e.g. --set tokenisation.max_length=300 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqflow",
        description="Train, check, track and promote Keras sequence models with Prefect, Great Expectations and MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"seqflow {__version__}")
    parser.add_argument("--env-file", help="dotenv file with MLflow settings (default: ./mlflow.env if present)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser(
        "validate", help="download, check the raw-data contract, tokenise and check the tokenised contract"
    )
    add_config_options(validate)

    run = commands.add_parser("run", help="validate data, train every architecture, evaluate, register and promote")
    add_config_options(run)
    run.add_argument(
        "--arch",
        dest="architectures",
        action="append",
        choices=list(ALL_ARCHITECTURES),
        help="train only this architecture (repeatable; default: the profile's list)",
    )
    parallel = run.add_argument_group("parallel training (default: one architecture after another, in this process)")
    parallel.add_argument(
        "--runner",
        choices=list(RUNNERS),
        default="sequential",
        help="sequential (default), or dask: train the architectures in parallel on Dask worker processes",
    )
    parallel.add_argument(
        "--dask-address",
        metavar="ADDRESS",
        help="scheduler of a running Dask cluster, e.g. tcp://10.0.0.5:8786 (default: start a local cluster)",
    )
    parallel.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help=f"worker processes of the local Dask cluster, one task thread each (default: {DEFAULT_DASK_WORKERS})",
    )
    parallel.add_argument(
        "--tf-threads",
        type=int,
        metavar="N",
        help="TensorFlow threads in each local Dask worker (default: CPU cores divided by workers)",
    )

    predict = commands.add_parser("predict", help="score raw reviews with the champion (or --model-uri)")
    predict.add_argument("texts", nargs="+", metavar="TEXT", help="review text(s) to score")
    predict.add_argument("--model-uri", help="MLflow model URI (default: models:/<registered name>@champion)")
    predict.add_argument("--json", action="store_true", help="print a JSON list of {text, probability, label}")

    profiles = commands.add_parser("profiles", help="list the named profiles and their settings")
    profiles.add_argument("name", nargs="?", help="show one profile in full")
    return parser


def resolve_config(args: argparse.Namespace, settings: TrackingSettings) -> PipelineConfig:
    """Profile, then SEQFLOW_* settings from mlflow.env / the environment, then the CLI (later wins)."""
    overrides: dict[str, object] = {}
    if args.source:
        overrides["data.source"] = args.source
    if args.seed is not None:
        overrides["seed"] = args.seed
    if getattr(args, "architectures", None):
        overrides["training.architectures"] = tuple(dict.fromkeys(args.architectures))
    overrides.update(parse_assignments(args.assignments))
    return resolve_pipeline_config(args.profile or settings.default_profile, dict(settings.config_overrides), overrides)


def resolve_execution(args: argparse.Namespace) -> ExecutionConfig:
    """Where ``seqflow run`` trains, from --runner, --dask-address, --workers and --tf-threads."""
    return ExecutionConfig(
        runner=args.runner, dask_address=args.dask_address, workers=args.workers, tf_threads=args.tf_threads
    )


def configure_runtime(log_level: str) -> None:
    """Logging and library settings for a CLI process; called once from :func:`main`."""
    from seqflow.logs import RunNameFormatter, quiet_libraries

    handler = logging.StreamHandler()
    handler.setFormatter(RunNameFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=log_level, handlers=[handler])
    # MLflow logs through its own handler, so it needs its own level.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # TensorFlow's C++ start-up chatter (CPU feature notes) is not useful in a pipeline log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Anonymous usage reporting cannot reach its server offline and only adds delay.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    quiet_libraries(NOISY_LOGGERS)


def _cmd_validate(args: argparse.Namespace, settings: TrackingSettings) -> int:
    config = resolve_config(args, settings)
    from seqflow.flows.validate import validate_flow

    summary = validate_flow(config)
    print(summary.render())
    return 0


def _cmd_run(args: argparse.Namespace, settings: TrackingSettings) -> int:
    config = resolve_config(args, settings)
    execution = resolve_execution(args)
    from seqflow.flows.sentiment import run_sentiment_flow

    summary = run_sentiment_flow(config, settings, execution)
    print(summary.render())
    return 0


# Words of a review shown next to its score.
PREVIEW_WORDS = 8


def _cmd_predict(args: argparse.Namespace, settings: TrackingSettings) -> int:
    import json

    import pandas as pd

    from seqflow.tracking import CHAMPION_ALIAS, Tracker

    model_uri = args.model_uri or f"models:/{settings.registered_model_name}@{CHAMPION_ALIAS}"
    tracker = Tracker(settings)
    if args.model_uri is None and tracker.champion() is None:
        raise SeqflowError(
            f"registered model {settings.registered_model_name!r} has no {CHAMPION_ALIAS!r} alias in "
            f"{settings.tracking_uri}; run `seqflow run` first or pass --model-uri"
        )
    predictions = tracker.load_pyfunc(model_uri).predict(pd.DataFrame({"text": list(args.texts)}))
    results = [
        {"text": text, "probability": float(probability), "label": int(label)}
        for text, probability, label in zip(args.texts, predictions["probability"], predictions["label"])
    ]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for result in results:
        words = result["text"].split()
        preview = " ".join(words[:PREVIEW_WORDS]) + (" ..." if len(words) > PREVIEW_WORDS else "")
        label = "positive" if result["label"] == 1 else "negative"
        print(f"{result['probability']:.3f}  {label:8}  {preview}")
    return 0


def _cmd_profiles(args: argparse.Namespace, settings: TrackingSettings) -> int:
    if args.name:
        for key, value in get_profile(args.name).to_flat_dict().items():
            print(f"{key:40} {value}")
        return 0
    for name, profile in PROFILES.items():
        tok, train = profile.tokenisation, profile.training
        print(
            f"{name:26} vocab {tok.vocab_size:>6}  len {tok.max_length:>4} {tok.padding:<4}  "
            f"epochs {train.epochs:>2}  archs {','.join(train.architectures)}"
        )
    return 0


_COMMANDS = {"validate": _cmd_validate, "run": _cmd_run, "predict": _cmd_predict, "profiles": _cmd_profiles}
# Commands that open MLflow runs: SIGTERM must unwind them like Ctrl-C, so their runs end KILLED.
_INTERRUPTIBLE_COMMANDS = ("run",)
_INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Interrupted(KeyboardInterrupt):
    """SIGTERM or SIGINT arrived. Raised like Ctrl-C's KeyboardInterrupt, so that every step's cleanup runs on
    the way out: open MLflow runs end KILLED, a registration in progress deletes its versions again."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_unwind() -> Iterator[None]:
    """While inside, SIGTERM and SIGINT raise :class:`Interrupted` in the main thread; the previous handlers
    are restored on exit. (Prefect swaps in its own SIGTERM handler while a flow runs; it raises Prefect's
    TerminationSignal, which unwinds the same way, and re-sends the signal to this handler afterwards.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in _INTERRUPT_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _end_runs_left_open(status: str) -> None:
    """Last resort: end runs this process opened that no step's cleanup reached (e.g. interrupted between
    two tasks). Normally there are none."""
    from seqflow.tracking import end_open_runs

    ended = end_open_runs(status)
    if ended:
        logger.warning("ended %d MLflow run(s) left open as %s: %s", len(ended), status, ", ".join(ended))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_runtime(args.log_level)
    interruptible = interrupts_unwind() if args.command in _INTERRUPTIBLE_COMMANDS else contextlib.nullcontext()
    with interruptible:
        try:
            settings = load_settings(args.env_file)
            return _COMMANDS[args.command](args, settings)
        except SeqflowError as error:
            _end_runs_left_open("FAILED")
            # Expected failures (bad input, failed contract) are one clear message, not a traceback.
            print(f"seqflow: error: {error}", file=sys.stderr)
            return error.exit_code
        except KeyboardInterrupt as interrupt:
            signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
            # A second signal while cleaning up must not cut the cleanup short.
            with contextlib.suppress(ValueError):
                for ignored in _INTERRUPT_SIGNALS:
                    signal.signal(ignored, signal.SIG_IGN)
            _end_runs_left_open("KILLED")
            print(f"seqflow: stopped by {signal.Signals(signum).name}; open MLflow runs are marked KILLED", file=sys.stderr)
            return 128 + signum


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
