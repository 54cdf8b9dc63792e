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
from typing import Sequence

from seqflow import __version__
from seqflow.core.config import DEFAULT_DASK_WORKERS, RUNNERS, ExecutionConfig
from seqflow.core.overrides import parse_assignments
from seqflow.sentiment.config import ALL_ARCHITECTURES, PipelineConfig
from seqflow.sentiment.profiles import PROFILES, get_profile, resolve_pipeline_config
from seqflow.cli_champion import CHAMPION_COMMANDS, add_champion_commands, add_profile_options, add_set_option, model_to_load
from seqflow.cli_charlm import add_charlm_commands, cmd_charlm, cmd_generate
from seqflow.cli_help import COMPLETION_SHELLS, add_command, add_json_option, completion_script, document_top_level
from seqflow.cli_output import json_document, report, report_error, report_profiles, reporting
from seqflow.core.errors import ExitCode, SeqflowError
from seqflow.core.prefect_server import SERVER_STARTUP_TIMEOUT_S, start_temporary_server
from seqflow.core.run_output import CONSOLE_HANDLER, LOG_LEVELS, OnlySeqflow, library_output_into_log, take_output_options
from seqflow.core.processes import INTERRUPT_SIGNALS, Interrupted, interrupts_unwind
from seqflow.core.runner import FlowCall, run_flow_command
from seqflow.cli_tune import add_tune_command, cmd_tune
from seqflow.core.settings import TrackingSettings, load_settings, redact_credentials

logger = logging.getLogger("seqflow")

# The deployment name `seqflow schedule` serves by default: the one prefect.yaml defines for work pools.
DEFAULT_DEPLOYMENT_NAME = "nightly"

# Libraries that log at INFO about their own internals; a pipeline log should show seqflow's steps.
NOISY_LOGGERS = (
    "great_expectations", "absl", "tensorflow", "h5py", "matplotlib", "alembic", "urllib3", "httpx", "httpcore",
    # Dask's scheduler, nanny and workers report every connection at INFO.
    "distributed",
)


def add_config_options(parser: argparse.ArgumentParser, profile: bool = True) -> None:
    """--profile, --source, --seed and --set, shared by every command that resolves a PipelineConfig (without
    --profile for rerun, which starts from the earlier execution's settings)."""
    parser.add_argument("--source", help="data source: embedded | tfds:imdb_reviews | aclimdb:PATH | csv:PATH | parquet:PATH")
    parser.add_argument("--seed", type=int, help="the one random seed for splits, initialisation and shuffling")
    if profile:
        add_profile_options(parser)
    else:
        add_set_option(parser, "training.batch_size=64", "change one setting of the earlier execution")


def add_arch_option(parser: argparse.ArgumentParser, choices: Sequence[str], help: str, dest: str = "architectures") -> None:
    """``--arch``, repeatable, one of ``choices`` each time (the pipeline's architectures)."""
    parser.add_argument("--arch", dest=dest, action="append", choices=list(choices), help=help)


def add_rerun_command(
    commands: argparse._SubParsersAction, name: str, tasks: Sequence[str], architectures: Sequence[str], task_help: str,
    from_run_help: str,
) -> argparse.ArgumentParser:
    """A pipeline's rerun command ``name`` (``rerun``, ``charlm rerun``) with the options every rerun command has:
    the task (one of ``tasks``), ``--arch`` and ``--from-run``."""
    rerun = add_command(commands, name)
    rerun.add_argument("task", choices=list(tasks), help=task_help)
    add_arch_option(
        rerun, architectures, "train or evaluate only this architecture (repeatable; default: those of the earlier execution)",
        dest="rerun_architectures",
    )
    rerun.add_argument("--from-run", metavar="PARENT_RUN_ID", help=from_run_help)
    return rerun


def add_pipeline_run_options(run: argparse.ArgumentParser) -> None:
    """What every pipeline's run command ends with: where it trains (:func:`add_runner_options`) and ``--json``
    for its closing summary."""
    add_runner_options(run)
    add_json_option(run, "print the summary the closing table shows (rows, decision, tasks) as JSON")


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
    parser = argparse.ArgumentParser(prog="seqflow")
    document_top_level(parser)
    parser.add_argument("--version", action="version", version=f"seqflow {__version__}")
    parser.add_argument("--env-file", help="dotenv file with MLflow settings (default: ./mlflow.env if present)")
    output = parser.add_argument_group("output (accepted anywhere on the command line)")
    output.add_argument("-q", "--quiet", action="store_true", help="errors and the result only")
    output.add_argument("-v", "--verbose", action="store_true", help="also seqflow's log lines (-vv: its debug lines)")
    output.add_argument("--log-level", choices=list(LOG_LEVELS), help="the terminal's log level (default: WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = add_command(commands, "validate")
    add_config_options(validate)
    add_json_option(validate, "print the summary (rows, vocabulary, OOV rates, contracts, tasks)")

    run = add_command(commands, "run")
    add_config_options(run)
    add_arch_option(run, ALL_ARCHITECTURES, "train only this architecture (repeatable; default: the profile's list)")
    add_pipeline_run_options(run)

    from seqflow.sentiment.rerun import SENTIMENT_RERUNS

    rerun = add_rerun_command(
        commands, "rerun", SENTIMENT_RERUNS.names, ALL_ARCHITECTURES,
        "the task to run again, by its task name (validate: both contract checks, its name in earlier releases)",
        "MLflow parent run of the earlier execution (default: the latest FINISHED one of the experiment)",
    )
    add_config_options(rerun, profile=False)
    add_json_option(rerun)

    predict = add_command(commands, "predict")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="review text(s) to score (or --input)")
    predict.add_argument("--model-uri", help="MLflow model URI (default: models:/<registered name>@champion)")
    add_json_option(predict, "print a JSON list of {text, probability, label} (with --input: {reviews, seconds, output})")
    predict.add_argument(
        "--input", metavar="FILE", help="score every review of FILE (- for standard input), streamed in batches: "
        ".csv with a text column, .jsonl objects with a text field, or .txt/-: one review per line",
    )
    predict.add_argument("--output", metavar="FILE", help="with --input: write here (.csv, or .jsonl; default: standard output)")
    predict.add_argument("--format", dest="input_format", choices=["csv", "jsonl", "text"], help="with --input: its format, if its suffix does not say")

    profiles = add_command(commands, "profiles")
    profiles.add_argument("name", nargs="?", help="show one profile in full")
    add_json_option(profiles)

    schedule = add_command(commands, "schedule")
    schedule.add_argument("--cron", required=True, metavar="EXPR", help='cron expression, e.g. "0 3 * * *" (03:00 daily)')
    schedule.add_argument("--timezone", default="UTC", help="time zone the cron expression is read in (default: UTC)")
    schedule.add_argument(
        "--name", default=DEFAULT_DEPLOYMENT_NAME, help=f"deployment name (default: {DEFAULT_DEPLOYMENT_NAME}, as in prefect.yaml)"
    )
    add_config_options(schedule)

    add_champion_commands(commands, "", tuple(PROFILES), "SEQFLOW_PROFILE or quick", "promotion.accuracy_floor=0.8")
    add_charlm_commands(commands)
    add_command(commands, "completion").add_argument("shell", choices=COMPLETION_SHELLS, help="the shell to complete in")
    add_tune_command(commands)
    return parser


def resolve_config(args: argparse.Namespace, settings: TrackingSettings) -> PipelineConfig:
    """Profile, then SEQFLOW_* settings from mlflow.env / the environment, then the CLI (later wins)."""
    overrides = explicit_overrides(args)
    return resolve_pipeline_config(args.profile or settings.default_profile, dict(settings.config_overrides), overrides)


def resolve_data_config(args: argparse.Namespace, settings: TrackingSettings) -> PipelineConfig:
    """:func:`resolve_config` for commands that read the data source, with the source checked here (its kind, its
    file and columns), before any Prefect server or MLflow run starts."""
    from seqflow.core.source_specs import refuse_missing_source_path

    config = resolve_config(args, settings)
    # A missing file is refused in a blink; the loaders' module (pandas) then checks the kind and a CSV's header.
    refuse_missing_source_path(config.data.source, ("csv", "parquet", "aclimdb"))
    from seqflow.sentiment.sources import check_source

    check_source(config.data.source)
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


def resolve_execution(args: argparse.Namespace, connect: bool = False) -> ExecutionConfig:
    """Where ``seqflow run`` trains, from --runner, --dask-address, --workers and --tf-threads; with ``connect``
    (the commands that train), a scheduler that cannot be reached is refused before the run writes anything."""
    execution = ExecutionConfig(
        runner=args.runner, dask_address=args.dask_address, workers=args.workers, tf_threads=args.tf_threads
    )
    if connect and execution.dask_address:
        from seqflow.core.execution import check_scheduler

        check_scheduler(execution.dask_address)
    return execution


def configure_runtime(console_level: int) -> None:
    """Logging and library settings for a CLI process; called once from :func:`main`."""
    from seqflow.core.logs import RunNameFormatter, quiet_libraries

    handler = logging.StreamHandler()
    handler.setFormatter(RunNameFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"))
    handler.setLevel(console_level)
    handler.name = CONSOLE_HANDLER
    # The terminal shows seqflow's records; a library's only from ERROR up (a run's log file has them all).
    handler.addFilter(OnlySeqflow())
    logging.basicConfig(level=console_level, handlers=[handler])
    # seqflow's records also go to the Prefect flow run's logs (seqflow.core.run_output); outside a run, nowhere.
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    # Prefect's temporary server needs 15-23 s to start on a loaded 2-core machine, more on an overloaded one
    # (BENCHMARKS.md); its own default limit, 20 s, failed runs nobody did wrong.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(SERVER_STARTUP_TIMEOUT_S))
    # MLflow logs through its own handler, so it needs its own level.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # MLflow draws a tqdm bar for every artifact download (a model load downloads its files): carriage-return noise
    # around the one line a command prints.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # TensorFlow's C++ start-up chatter (CPU feature notes) is not useful in a pipeline log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Anonymous usage reporting cannot reach its server offline and only adds delay.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # The same for Prefect's client, which otherwise prints a telemetry notice on a terminal.
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    quiet_libraries(NOISY_LOGGERS)


def _cmd_validate(args: argparse.Namespace, settings: TrackingSettings) -> int:
    config = resolve_data_config(args, settings)
    from seqflow.flows.validate import validate_flow

    call = FlowCall("validate", settings, config.artifacts_dir, lambda: validate_flow(config), writes_store=False)
    return run_flow_command(call, args.console_level, reporting(args))


def _cmd_run(args: argparse.Namespace, settings: TrackingSettings) -> int:
    config = resolve_data_config(args, settings)
    execution = resolve_execution(args, connect=True)
    from seqflow.flows.sentiment import run_sentiment_flow

    call = FlowCall("run", settings, config.artifacts_dir, lambda: run_sentiment_flow(config, settings, execution),
                    config.training.architectures)
    return run_flow_command(call, args.console_level, reporting(args))


def _cmd_rerun(args: argparse.Namespace, settings: TrackingSettings) -> int:
    overrides = explicit_overrides(args)
    from seqflow.core.rerun import refuse_architectures_not_trained
    from seqflow.sentiment.sources import parse_source_spec
    from seqflow.core.tracking import Tracker
    from seqflow.flows.rerun import rerun_flow
    from seqflow.sentiment.rerun import plan_rerun

    plan = plan_rerun(Tracker(settings), args.task, args.from_run, args.rerun_architectures, overrides)
    refuse_architectures_not_trained(plan)
    parse_source_spec(plan.config.data.source)
    call = FlowCall(f"rerun-{args.task}", settings, plan.config.artifacts_dir, lambda: rerun_flow(plan, settings))
    return run_flow_command(call, args.console_level, reporting(args))


# Start of the RuntimeError Prefect raises when its temporary server does not answer in time.
EPHEMERAL_SERVER_TIMEOUT = "Timed out while attempting to connect to ephemeral Prefect API server"

# Words of a review shown next to its score.
PREVIEW_WORDS = 8


def _cmd_predict(args: argparse.Namespace, settings: TrackingSettings) -> int:
    import pandas as pd

    from seqflow.sentiment.batch import checked_input_format, score_file

    # Before the model loads (seconds): a wrong option, path or suffix fails at once.
    file_format = checked_input_format(args.texts, args.input, args.output, args.input_format, args.json)
    tracker, model_uri = model_to_load(settings, args.model_uri, "run `seqflow run` first")
    from seqflow.charlm.generate import CHAR_GENERATION
    from seqflow.sentiment.serving import REVIEW_SENTIMENT

    # The scores of --input may stream to standard output: only loading the model (where TensorFlow prints its
    # banner) and scoring texts given as arguments run with the libraries' output sent to the log file.
    with library_output_into_log(settings, "predict"):
        model = tracker.load_pyfunc(model_uri, REVIEW_SENTIMENT, others=(CHAR_GENERATION,), needed_by="`seqflow predict`")
        predictions = None if args.input else model.predict(pd.DataFrame({"text": list(args.texts)}))
    if args.input:
        reviews, seconds = score_file(model, args.input, args.output, file_format)
        print(f"scored {reviews:,} reviews in {seconds:.1f} s ({reviews / max(seconds, 1e-9):,.0f}/s)", file=sys.stderr)
        # With --json (and --output: the scores are not on standard output), the same as a JSON object.
        return report(args, {"reviews": reviews, "seconds": seconds, "output": args.output}) if args.json else 0
    results = [
        {"text": text, "probability": float(probability), "label": int(label)}
        for text, probability, label in zip(args.texts, predictions["probability"], predictions["label"])
    ]
    lines = []
    for result in results:
        words = result["text"].split()
        preview = " ".join(words[:PREVIEW_WORDS]) + (" ..." if len(words) > PREVIEW_WORDS else "")
        label = "positive" if result["label"] == 1 else "negative"
        lines.append(f"{result['probability']:.3f}  {label:8}  {preview}")
    return report(args, results, "\n".join(lines))


def _cmd_profiles(args: argparse.Namespace, settings: TrackingSettings) -> int:
    return report_profiles(
        args, PROFILES, get_profile,
        lambda name, profile: {
            "name": name, "tokenisation.vocab_size": profile.tokenisation.vocab_size,
            "tokenisation.max_length": profile.tokenisation.max_length, "tokenisation.padding": profile.tokenisation.padding,
            "training.epochs": profile.training.epochs, "training.architectures": profile.training.architectures,
        },
        lambda row: (
            f"{row['name']:26} vocab {row['tokenisation.vocab_size']:>6}  len {row['tokenisation.max_length']:>4} "
            f"{row['tokenisation.padding']:<4}  epochs {row['training.epochs']:>2}  archs {','.join(row['training.architectures'])}"
        ),
    )


def _cmd_completion(args: argparse.Namespace, settings: TrackingSettings) -> int:
    print(completion_script(build_parser(), args.shell), end="")
    return ExitCode.OK


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
    "completion": _cmd_completion,
    "tune": cmd_tune,
    **{name: _sentiment(command) for name, command in CHAMPION_COMMANDS.items()},
}
def _end_runs_left_open(status: str) -> None:
    """Last resort: end runs this process opened that no step's cleanup reached (e.g. interrupted between
    two tasks). Normally there are none."""
    from seqflow.core.tracking import end_open_runs

    ended = end_open_runs(status)
    if ended:
        logger.warning("ended %d MLflow run(s) left open as %s: %s", len(ended), status, ", ".join(ended))


def main(argv: Sequence[str] | None = None) -> int:
    rest, console_level = take_output_options(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(rest)
    # Quiet by default: the terminal shows progress, warnings and the result; the run's log file has the rest.
    args.console_level = logging.WARNING if console_level is None else console_level
    configure_runtime(args.console_level)
    # Every command unwinds on SIGTERM like on Ctrl-C: open MLflow runs end KILLED, and exit hooks run (they stop
    # Prefect's temporary server; Python's default SIGTERM ends the process without them).
    with interrupts_unwind():
        try:
            settings = load_settings(args.env_file)
            # With --json, standard output carries only the command's JSON document.
            with json_document(getattr(args, "json", False)):
                return _COMMANDS[args.command](args, settings)
        except SeqflowError as error:
            _end_runs_left_open("FAILED")
            # Expected failures (bad input, failed contract) are one clear message, not a traceback.
            # Credentials of a URL in a library's message must not reach the terminal or a CI log.
            message = redact_credentials(str(error))
            print(f"seqflow: error: {message}", file=sys.stderr)
            report_error(args, message, error.exit_code)
            return error.exit_code
        except KeyboardInterrupt as interrupt:
            signum = interrupt.signum if isinstance(interrupt, Interrupted) else signal.SIGINT
            # A second signal while cleaning up must not cut the cleanup short.
            with contextlib.suppress(ValueError):
                for ignored in INTERRUPT_SIGNALS:
                    signal.signal(ignored, signal.SIG_IGN)
            _end_runs_left_open("KILLED")
            message = f"stopped by {signal.Signals(signum).name}; open MLflow runs are marked KILLED"
            print(f"seqflow: {message}", file=sys.stderr)
            report_error(args, message, 128 + signum)
            return 128 + signum
        except RuntimeError as error:
            # Without PREFECT_API_URL, Prefect starts a temporary server per process; on a busy machine (or with
            # several seqflow processes starting at once) it may not answer within Prefect's start-up timeout.
            if EPHEMERAL_SERVER_TIMEOUT not in str(error):
                raise
            message = (
                "the temporary Prefect server did not start in time. Start one server for all seqflow processes "
                "(`prefect server start`, then PREFECT_API_URL=http://127.0.0.1:4200/api) or raise "
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
            )
            print(f"seqflow: error: {message}", file=sys.stderr)
            report_error(args, message, ExitCode.REFUSED)
            return ExitCode.REFUSED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
