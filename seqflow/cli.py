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
from seqflow.core.config import DEFAULT_DASK_WORKERS, RUNNERS, ExecutionConfig
from seqflow.core.overrides import parse_assignments
from seqflow.sentiment.config import ALL_ARCHITECTURES, PipelineConfig
from seqflow.sentiment.profiles import PROFILES, get_profile, resolve_pipeline_config
from seqflow.cli_champion import CHAMPION_COMMANDS, add_champion_commands, add_profile_options, reading_tracker
from seqflow.cli_charlm import add_charlm_commands, cmd_charlm, cmd_generate
from seqflow.cli_tune import add_tune_command, cmd_tune
from seqflow.core.errors import SeqflowError
from seqflow.core.prefect_server import start_temporary_server
from seqflow.core.settings import TrackingSettings, load_settings, redact_credentials
from seqflow.core.stores import require_writable_places

logger = logging.getLogger("seqflow")

# The deployment name `seqflow schedule` serves by default: the one prefect.yaml defines for work pools.
DEFAULT_DEPLOYMENT_NAME = "nightly"

# Libraries that log at INFO about their own internals; a pipeline log should show seqflow's steps.
NOISY_LOGGERS = (
    "great_expectations", "absl", "tensorflow", "h5py", "matplotlib", "alembic", "urllib3", "httpx", "httpcore",
    # Dask's scheduler, nanny and workers report every connection at INFO.
    "distributed",
)


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """--profile, --source, --seed and --set, shared by every command that resolves a PipelineConfig."""
    parser.add_argument("--source", help="data source: embedded | tfds:imdb_reviews | aclimdb:PATH | csv:PATH | parquet:PATH")
    parser.add_argument("--seed", type=int, help="the one random seed for splits, initialisation and shuffling")
    add_profile_options(parser)


def add_runner_options(parser: argparse.ArgumentParser) -> None:
    """--runner, --dask-address, --workers, --tf-threads: where a pipeline's architectures train."""
    parallel = parser.add_argument_group("parallel training (default: one architecture after another, in this process)")
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
    add_runner_options(run)

    rerun = commands.add_parser(
        "rerun",
        help="run one task of an earlier execution again, past the cache, on that execution's upstream outputs",
    )
    from seqflow.sentiment.rerun import SENTIMENT_RERUNS

    rerun.add_argument(
        "task", choices=list(SENTIMENT_RERUNS.names),
        help="the task to run again, by its task name (validate: both contract checks, its name in earlier releases)",
    )
    rerun.add_argument(
        "--arch",
        dest="rerun_architectures",
        action="append",
        choices=list(ALL_ARCHITECTURES),
        help="train or evaluate only this architecture (repeatable; default: those of the earlier execution)",
    )
    rerun.add_argument(
        "--from-run",
        metavar="PARENT_RUN_ID",
        help="MLflow parent run of the earlier execution (default: the latest FINISHED one of the experiment)",
    )
    add_config_options(rerun)

    predict = commands.add_parser("predict", help="score raw reviews with the champion (or --model-uri)")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="review text(s) to score (or --input)")
    predict.add_argument("--model-uri", help="MLflow model URI (default: models:/<registered name>@champion)")
    predict.add_argument("--json", action="store_true", help="print a JSON list of {text, probability, label}")
    predict.add_argument(
        "--input", metavar="FILE", help="score every review of FILE (- for standard input), streamed in batches: "
        ".csv with a text column, .jsonl objects with a text field, or .txt/-: one review per line",
    )
    predict.add_argument("--output", metavar="FILE", help="with --input: write here (.csv, or .jsonl; default: standard output)")
    predict.add_argument("--format", dest="input_format", choices=["csv", "jsonl", "text"], help="with --input: its format, if its suffix does not say")

    profiles = commands.add_parser("profiles", help="list the named profiles and their settings")
    profiles.add_argument("name", nargs="?", help="show one profile in full")

    schedule = commands.add_parser(
        "schedule", help="serve the pipeline as a Prefect deployment on a cron schedule (runs until stopped)"
    )
    schedule.add_argument("--cron", required=True, metavar="EXPR", help='cron expression, e.g. "0 3 * * *" (03:00 daily)')
    schedule.add_argument("--timezone", default="UTC", help="time zone the cron expression is read in (default: UTC)")
    schedule.add_argument(
        "--name", default=DEFAULT_DEPLOYMENT_NAME, help=f"deployment name (default: {DEFAULT_DEPLOYMENT_NAME}, as in prefect.yaml)"
    )
    add_config_options(schedule)

    add_champion_commands(commands, "test metrics", tuple(PROFILES), "SEQFLOW_PROFILE or quick", "promotion.accuracy_floor=0.8")
    add_charlm_commands(commands)
    add_tune_command(commands)
    return parser


def resolve_config(args: argparse.Namespace, settings: TrackingSettings) -> PipelineConfig:
    """Profile, then SEQFLOW_* settings from mlflow.env / the environment, then the CLI (later wins)."""
    overrides = explicit_overrides(args)
    return resolve_pipeline_config(args.profile or settings.default_profile, dict(settings.config_overrides), overrides)


def resolve_data_config(args: argparse.Namespace, settings: TrackingSettings) -> PipelineConfig:
    """:func:`resolve_config` for commands that read the data source, with the source's kind checked here,
    before any Prefect server or MLflow run starts (the loader would find an unknown kind only inside the flow)."""
    from seqflow.sentiment.sources import parse_source_spec

    config = resolve_config(args, settings)
    parse_source_spec(config.data.source)
    return config


def explicit_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings given on the command line: --source, --seed, --arch (of run) and --set."""
    overrides: dict[str, object] = {}
    if getattr(args, "source", None):
        overrides["data.source"] = args.source
    if getattr(args, "seed", None) is not None:
        overrides["seed"] = args.seed
    if getattr(args, "architectures", None):
        overrides["training.architectures"] = tuple(dict.fromkeys(args.architectures))
    overrides.update(parse_assignments(args.assignments))
    return overrides


def resolve_execution(args: argparse.Namespace) -> ExecutionConfig:
    """Where ``seqflow run`` trains, from --runner, --dask-address, --workers and --tf-threads."""
    return ExecutionConfig(
        runner=args.runner, dask_address=args.dask_address, workers=args.workers, tf_threads=args.tf_threads
    )


def configure_runtime(log_level: str) -> None:
    """Logging and library settings for a CLI process; called once from :func:`main`."""
    from seqflow.core.logs import RunNameFormatter, quiet_libraries

    handler = logging.StreamHandler()
    handler.setFormatter(RunNameFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    logging.basicConfig(level=log_level, handlers=[handler])
    # MLflow logs through its own handler, so it needs its own level.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow draws a tqdm bar for every artifact download (a model load downloads its files): carriage-return noise
    # around the one line a command prints.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # TensorFlow's C++ start-up chatter (CPU feature notes) is not useful in a pipeline log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Anonymous usage reporting cannot reach its server offline and only adds delay.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    quiet_libraries(NOISY_LOGGERS)


def _cmd_validate(args: argparse.Namespace, settings: TrackingSettings) -> int:
    config = resolve_data_config(args, settings)
    # validate writes its reports and arrays, never to MLflow.
    require_writable_places(settings, config.artifacts_dir, store=False)
    from seqflow.flows.validate import validate_flow

    start_temporary_server()
    summary = validate_flow(config)
    print(summary.render())
    return 0


def _cmd_run(args: argparse.Namespace, settings: TrackingSettings) -> int:
    config = resolve_data_config(args, settings)
    execution = resolve_execution(args)
    require_writable_places(settings, config.artifacts_dir)
    from seqflow.flows.sentiment import run_sentiment_flow

    start_temporary_server()
    summary = run_sentiment_flow(config, settings, execution)
    print(summary.render())
    return 0


def _cmd_rerun(args: argparse.Namespace, settings: TrackingSettings) -> int:
    from seqflow.core.errors import ConfigError

    if args.profile:
        raise ConfigError("rerun uses the settings of the earlier execution; change one with --set, not --profile")
    overrides = explicit_overrides(args)
    from seqflow.core.rerun import refuse_architectures_not_trained
    from seqflow.sentiment.sources import parse_source_spec
    from seqflow.core.tracking import Tracker
    from seqflow.flows.rerun import rerun_flow
    from seqflow.sentiment.rerun import plan_rerun

    plan = plan_rerun(Tracker(settings), args.task, args.from_run, args.rerun_architectures, overrides)
    refuse_architectures_not_trained(plan)
    parse_source_spec(plan.config.data.source)
    require_writable_places(settings, plan.config.artifacts_dir)
    start_temporary_server()
    summary = rerun_flow(plan, settings)
    print(summary.render())
    return 0


# Start of the RuntimeError Prefect raises when its temporary server does not answer in time.
EPHEMERAL_SERVER_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"

# Words of a review shown next to its score.
PREVIEW_WORDS = 8


def _cmd_predict(args: argparse.Namespace, settings: TrackingSettings) -> int:
    import json

    import pandas as pd

    from seqflow.core.model_uris import refuse_missing_model
    from seqflow.core.tracking import CHAMPION_ALIAS
    from seqflow.sentiment.batch import checked_input_format, score_file

    # Before the model loads (seconds): a wrong option, path or suffix fails at once.
    file_format = checked_input_format(args.texts, args.input, args.output, args.input_format, args.json)
    model_uri = args.model_uri or f"models:/{settings.registered_model_name}@{CHAMPION_ALIAS}"
    tracker = reading_tracker(settings, args.model_uri)
    if args.model_uri is None and tracker.champion() is None:
        raise SeqflowError(
            f"registered model {settings.registered_model_name!r} has no {CHAMPION_ALIAS!r} alias in "
            f"{settings.tracking_uri}; run `seqflow run` first or pass --model-uri"
        )
    refuse_missing_model(tracker.client, args.model_uri, tracker.settings.tracking_uri)
    from seqflow.charlm.generate import CHAR_GENERATION
    from seqflow.sentiment.serving import REVIEW_SENTIMENT

    model = tracker.load_pyfunc(model_uri, REVIEW_SENTIMENT, others=(CHAR_GENERATION,), needed_by="`seqflow predict`")
    if args.input:
        reviews, seconds = score_file(model, args.input, args.output, file_format)
        print(f"scored {reviews:,} reviews in {seconds:.1f} s ({reviews / max(seconds, 1e-9):,.0f}/s)", file=sys.stderr)
        return 0
    predictions = model.predict(pd.DataFrame({"text": list(args.texts)}))
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


def _cmd_schedule(args: argparse.Namespace, settings: TrackingSettings) -> int:
    from seqflow.scheduling import serve_schedule

    # Fails here, before anything is served, on a bad --set / --profile / --source.
    resolve_data_config(args, settings)
    overrides = {key: str(value) for key, value in explicit_overrides(args).items()}
    env_file = os.path.abspath(args.env_file) if args.env_file else None
    start_temporary_server()
    return serve_schedule(args.name, args.cron, args.timezone, args.profile, overrides, env_file)


def _sentiment(command):  # noqa: ANN001, ANN202
    """``command`` for the sentiment pipeline: the top-level ``seqflow champion|promote|rollback|serve``."""

    def run(args: argparse.Namespace, settings: TrackingSettings) -> int:
        from seqflow.sentiment.pipeline import SENTIMENT

        return command(args, settings, SENTIMENT)

    return run

_COMMANDS = {
    "validate": _cmd_validate,
    "run": _cmd_run,
    "rerun": _cmd_rerun,
    "predict": _cmd_predict,
    "profiles": _cmd_profiles,
    "charlm": cmd_charlm,
    "generate": cmd_generate,
    "schedule": _cmd_schedule,
    "tune": cmd_tune,
    **{name: _sentiment(command) for name, command in CHAMPION_COMMANDS.items()},
}
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
    from seqflow.core.tracking import end_open_runs

    ended = end_open_runs(status)
    if ended:
        logger.warning("ended %d MLflow run(s) left open as %s: %s", len(ended), status, ", ".join(ended))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_runtime(args.log_level)
    # Every command unwinds on SIGTERM like on Ctrl-C: open MLflow runs end KILLED, and exit hooks run (they stop
    # Prefect's temporary server; Python's default SIGTERM ends the process without them).
    with interrupts_unwind():
        try:
            settings = load_settings(args.env_file)
            return _COMMANDS[args.command](args, settings)
        except SeqflowError as error:
            _end_runs_left_open("FAILED")
            # Expected failures (bad input, failed contract) are one clear message, not a traceback.
            # Credentials of a URL in a library's message must not reach the terminal or a CI log.
            print(f"seqflow: error: {redact_credentials(str(error))}", file=sys.stderr)
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
        except RuntimeError as error:
            # Without PREFECT_API_URL, Prefect starts a temporary server per process; on a busy machine (or with
            # several seqflow processes starting at once) it may not answer within Prefect's start-up timeout.
            if EPHEMERAL_SERVER_TIMEOUT not in str(error):
                raise
            print(
                "seqflow: error: the temporary Prefect server did not start in time. Start one server for all "
                "seqflow processes (`prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api) or "
                "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                file=sys.stderr,
            )
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
