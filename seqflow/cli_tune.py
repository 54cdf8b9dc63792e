"""``seqflow tune``: a hyperparameter search for one sentiment architecture, as a pipeline of its own (see
:mod:`seqflow.flows.tune`). Everything the search is given is checked here, before any server starts: the space
(its shape and every value it can take), the study's storage, the budget."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from seqflow.core.errors import ConfigError
from seqflow.core.settings import TrackingSettings

logger = logging.getLogger("seqflow")

DEFAULT_TRIALS = 20


def add_tune_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``tune`` subcommand and its options."""
    from seqflow.cli import add_config_options, add_runner_options
    from seqflow.core.studies import PRUNERS
    from seqflow.sentiment.config import ALL_ARCHITECTURES

    from seqflow.cli_help import add_command, add_json_option

    tune = add_command(commands, "tune")
    tune.add_argument("--arch", required=True, choices=list(ALL_ARCHITECTURES), help="the architecture to tune")
    add_config_options(tune)
    search = tune.add_argument_group("search")
    search.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help=f"completed or pruned trials the study should hold (default: {DEFAULT_TRIALS}); "
                        "the same command again goes on from where the study is")
    search.add_argument("--timeout", type=float, metavar="MIN", help="start no new trial after MIN minutes")
    search.add_argument("--space", metavar="FILE", help="search space (.yaml/.json/.toml) in place of the architecture's default")
    search.add_argument("--print-space", action="store_true", help="print the space (default or --space) as YAML and exit")
    search.add_argument("--study", metavar="NAME", help="study name (default: sentiment-ARCH-PROFILE)")
    search.add_argument("--storage", metavar="URL", help="study database (default: optuna.db beside a SQLite MLflow store)")
    search.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="stop hopeless trials from their per-epoch validation loss (default: median)")
    search.add_argument("--profile-output", metavar="FILE", help="where the best trial's profile file goes "
                        "(default: ARTIFACTS_DIR/tuning/STUDY/best-profile.yaml)")
    search.add_argument("--register", action="store_true",
                        help="then train the best configuration with `seqflow run` (contracts, gates, registry)")
    add_runner_options(tune)
    add_json_option(tune, "print the search's summary (trials, best settings, profile file; with --register, the run's too)")
    return tune


def resolve_space(args: argparse.Namespace, apply) -> dict:  # noqa: ANN001 - config with overrides applied
    """The space to search, checked against the config."""
    from seqflow.core.search_space import check_space_values, load_space
    from seqflow.sentiment.tuning import DEFAULT_SPACES, SEARCH_SECTIONS

    origin = f"search space {args.space!r}" if args.space else f"default space of {args.arch}"
    space = load_space(args.space) if args.space else DEFAULT_SPACES[args.arch]
    check_space_values(space, SEARCH_SECTIONS, apply, origin)
    return space


def cmd_tune(args: argparse.Namespace, settings: TrackingSettings) -> int:
    from seqflow.cli_output import report
    from seqflow.cli import explicit_overrides, resolve_data_config, resolve_execution, start_temporary_server
    from seqflow.core.profile_files import is_profile_file, read_profile_file
    from seqflow.core.search_runs import TuneRequest
    from seqflow.core.search_space import space_to_plain
    from seqflow.core.stores import require_writable_places
    from seqflow.core.studies import default_storage, open_storage
    from seqflow.sentiment.tuning import trial_config

    config = resolve_data_config(args, settings)
    space = resolve_space(args, lambda overrides: trial_config(config, args.arch, overrides))
    if args.print_space:
        import yaml

        print(yaml.safe_dump(space_to_plain(space), sort_keys=False), end="")
        return 0
    if args.trials < 1:
        raise ConfigError(f"--trials must be at least 1 (got {args.trials})")
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout must be a positive number of minutes (got {args.timeout})")
    execution = resolve_execution(args, connect=True)
    study_name = args.study or f"sentiment-{args.arch}-{config.profile}"
    profile_path = Path(args.profile_output or Path(config.artifacts_dir) / "tuning" / study_name / "best-profile.yaml")
    # The profile file reproduces this command's settings: the named base profile, what --profile FILE and
    # --set/--source/--seed added, then the best trial's parameters.
    base_profile, base_settings = args.profile or settings.default_profile, {}
    if is_profile_file(base_profile):
        profile_file = read_profile_file(base_profile)
        base_profile, base_settings = profile_file.base, dict(profile_file.settings)
    explicit = {key: list(value) if isinstance(value, tuple) else value for key, value in explicit_overrides(args).items()}
    request = TuneRequest(
        architecture=args.arch, study_name=study_name,
        storage_url=args.storage or default_storage(settings.tracking_uri), space=space_to_plain(space),
        trials=args.trials, timeout_minutes=args.timeout, pruner=args.pruner,
        parallel=execution.local_workers if execution.runner == "dask" else 1, profile_path=str(profile_path),
        base_profile=base_profile, base_settings={**base_settings, **explicit},
    )
    require_writable_places(settings, config.artifacts_dir)
    open_storage(request.storage_url)
    from seqflow.flows.tune import run_tune_flow

    start_temporary_server()
    summary = run_tune_flow(config, settings, request, execution)
    run_summary = None
    if args.register and summary.profile_path:
        from seqflow.flows.sentiment import run_sentiment_flow
        from seqflow.sentiment.profiles import resolve_pipeline_config

        tuned = resolve_pipeline_config(summary.profile_path, dict(settings.config_overrides), {})
        logger.info("training the best configuration through the pipeline: %s", json.dumps(summary.best_params))
        run_summary = run_sentiment_flow(tuned, settings, execution)
    if run_summary is None:
        return report(args, summary)
    return report(args, {"tune": summary, "run": run_summary}, f"{summary.render()}\n\n{run_summary.render()}")
