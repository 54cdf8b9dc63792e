"""``seqflow tune`` and ``seqflow charlm tune``: a hyperparameter search for one sentiment or character
architecture, as a pipeline of its own (see :mod:`seqflow.flows.tune`). Everything the search is given is checked here, before any server starts: the space
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
    from seqflow.cli import add_config_options
    from seqflow.sentiment.config import ALL_ARCHITECTURES

    from seqflow.cli_help import add_command

    tune = add_command(commands, "tune")
    tune.add_argument("--arch", required=True, choices=list(ALL_ARCHITECTURES), help="the architecture to tune")
    add_config_options(tune)
    add_search_options(tune, "sentiment-ARCH-PROFILE", "seqflow run")
    return tune


def add_charlm_tune_command(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """The ``charlm tune`` subcommand and its options."""
    from seqflow.charlm.config import ALL_CHAR_ARCHITECTURES, CHARLM_PROFILES
    from seqflow.cli_champion import add_profile_options
    from seqflow.cli_charlm import add_model_name_option
    from seqflow.cli_help import add_command

    tune = add_command(commands, "charlm tune")
    tune.add_argument("--arch", required=True, choices=list(ALL_CHAR_ARCHITECTURES), help="the character architecture to tune")
    tune.add_argument("--source", help="text source: embedded[:PLAY,...] | tfds:tiny_shakespeare | text:PATH")
    tune.add_argument("--seed", type=int, help="the one random seed for the split, initialisation and sampling")
    add_profile_options(tune, tuple(CHARLM_PROFILES), "auto, sized from the text", "training.epochs=3")
    add_model_name_option(tune)
    add_search_options(tune, "charlm-ARCH-PROFILE", "seqflow charlm run")
    return tune


def add_search_options(parser: argparse.ArgumentParser, default_study: str, run_command: str) -> None:
    """The search's options, the runner's and --json, shared by ``tune`` and ``charlm tune``."""
    from seqflow.cli import add_runner_options
    from seqflow.cli_help import add_json_option
    from seqflow.core.studies import PRUNERS

    search = parser.add_argument_group("search")
    search.add_argument("--trials", type=int, default=DEFAULT_TRIALS,
                        help=f"completed or pruned trials the study should hold (default: {DEFAULT_TRIALS}); "
                        "the same command again goes on from where the study is")
    search.add_argument("--timeout", type=float, metavar="MIN", help="start no new trial after MIN minutes")
    search.add_argument("--space", metavar="FILE", help="search space (.yaml/.json/.toml) in place of the architecture's default")
    search.add_argument("--print-space", action="store_true", help="print the space (default or --space) as YAML and exit")
    search.add_argument("--study", metavar="NAME", help=f"study name (default: {default_study})")
    search.add_argument("--storage", metavar="URL", help="study database (default: optuna.db beside a SQLite MLflow store)")
    search.add_argument("--pruner", choices=PRUNERS, default="median",
                        help="stop hopeless trials from their per-epoch validation loss (default: median)")
    search.add_argument("--profile-output", metavar="FILE", help="where the best trial's profile file goes "
                        "(default: ARTIFACTS_DIR/tuning/STUDY/best-profile.yaml)")
    search.add_argument("--register", action="store_true",
                        help=f"then train the best configuration with `{run_command}` (contracts, gates, registry)")
    add_runner_options(parser)
    add_json_option(parser, "print the search's summary (trials, best settings, profile file; with --register, the run's too)")


def resolve_space(args: argparse.Namespace, default_spaces: dict, sections: tuple[str, ...], apply) -> dict:  # noqa: ANN001 - config with overrides applied
    """The space to search, checked against the config."""
    from seqflow.core.search_space import check_space_values, load_space

    origin = f"search space {args.space!r}" if args.space else f"default space of {args.arch}"
    space = load_space(args.space) if args.space else default_spaces[args.arch]
    check_space_values(space, sections, apply, origin)
    return space


def cmd_tune(args: argparse.Namespace, settings: TrackingSettings) -> int:
    from seqflow.cli import explicit_overrides, resolve_data_config
    from seqflow.core.profile_files import is_profile_file, read_profile_file
    from seqflow.sentiment import tuning

    config = resolve_data_config(args, settings)
    # The profile file reproduces this command's settings: the named base profile, what --profile FILE and
    # --set/--source/--seed added, then the best trial's parameters.
    base_profile, base_settings = args.profile or settings.default_profile, {}
    if is_profile_file(base_profile):
        profile_file = read_profile_file(base_profile)
        base_profile, base_settings = profile_file.base, dict(profile_file.settings)
    explicit = {key: list(value) if isinstance(value, tuple) else value for key, value in explicit_overrides(args).items()}

    def register(profile_path: str):  # noqa: ANN202 - the run's summary
        from seqflow.flows.sentiment import run_sentiment_flow
        from seqflow.sentiment.profiles import resolve_pipeline_config

        tuned = resolve_pipeline_config(profile_path, dict(settings.config_overrides), {})
        return lambda execution: run_sentiment_flow(tuned, settings, execution)

    return run_search(args, settings, "sentiment", config, tuning, base_profile, {**base_settings, **explicit}, register)


def cmd_charlm_tune(args: argparse.Namespace, settings: TrackingSettings) -> int:
    from seqflow.charlm import tuning
    from seqflow.charlm.config import DEFAULT_CHARLM_PROFILE, get_charlm_profile
    from seqflow.charlm.corpus import check_model_name, corpus_tracking_settings
    from seqflow.charlm.sizing import resolve_charlm_run_config
    from seqflow.core.overrides import parse_assignments
    from seqflow.core.profile_files import is_profile_file, read_profile_file
    from seqflow.core.source_specs import refuse_missing_source_path

    explicit: dict[str, object] = {"data.source": args.source} if args.source else {}
    if args.seed is not None:
        explicit["seed"] = args.seed
    explicit.update(parse_assignments(args.assignments))
    if args.model_name is not None:
        check_model_name(args.model_name)
    profile = args.profile or DEFAULT_CHARLM_PROFILE
    source = str(explicit.get("data.source") or get_charlm_profile(profile).data.source)
    refuse_missing_source_path(source, ("text",))
    from seqflow.charlm.sources import parse_char_source_spec

    parse_char_source_spec(source)
    config = resolve_charlm_run_config(profile, dict(settings.config_overrides), explicit)
    # The profile file names a fixed profile and every setting this search's config has beyond it: `auto`'s
    # sizing (made from this text) and what --set/--source/--seed or a --profile FILE added.
    base_profile = read_profile_file(profile).base if is_profile_file(profile) else profile
    named = get_charlm_profile(base_profile).to_flat_dict()
    base_settings = {key: list(value) if isinstance(value, tuple) else value
                     for key, value in config.to_flat_dict().items() if key != "profile" and named.get(key) != value}
    charlm_settings = corpus_tracking_settings(settings, args.model_name, config.data.source)

    def register(profile_path: str):  # noqa: ANN202 - the run's summary
        from seqflow.flows.charlm import run_charlm_flow

        tuned = resolve_charlm_run_config(profile_path, dict(settings.config_overrides), {})
        return lambda execution: run_charlm_flow(tuned, charlm_settings, execution)

    return run_search(args, charlm_settings, "charlm", config, tuning, base_profile, base_settings, register)


def run_search(args: argparse.Namespace, settings: TrackingSettings, pipeline: str, config, tuning,  # noqa: ANN001, PLR0913
               base_profile: str, base_settings: dict, register) -> int:
    """Check the search's inputs, run the tune flow, then (--register) the pipeline on the best trial's profile.

    ``tuning`` is the pipeline's tuning module (its spaces, sections and trial_config); ``register(path)`` returns
    the pipeline's run for the profile file at ``path``, as a function of the execution."""
    from seqflow.cli import resolve_execution, start_temporary_server
    from seqflow.cli_output import report
    from seqflow.core.search_runs import TuneRequest
    from seqflow.core.search_space import space_to_plain
    from seqflow.core.stores import require_writable_places
    from seqflow.core.studies import default_storage, open_storage

    space = resolve_space(args, tuning.DEFAULT_SPACES, tuning.SEARCH_SECTIONS,
                          lambda overrides: tuning.trial_config(config, args.arch, overrides))
    if args.print_space:
        import yaml

        print(yaml.safe_dump(space_to_plain(space), sort_keys=False), end="")
        return 0
    if args.trials < 1:
        raise ConfigError(f"--trials must be at least 1 (got {args.trials})")
    if args.timeout is not None and args.timeout <= 0:
        raise ConfigError(f"--timeout must be a positive number of minutes (got {args.timeout})")
    execution = resolve_execution(args, connect=True)
    study_name = args.study or f"{pipeline}-{args.arch}-{config.profile}"
    profile_path = Path(args.profile_output or Path(config.artifacts_dir) / "tuning" / study_name / "best-profile.yaml")
    request = TuneRequest(
        architecture=args.arch, study_name=study_name,
        storage_url=args.storage or default_storage(settings.tracking_uri), space=space_to_plain(space),
        trials=args.trials, timeout_minutes=args.timeout, pruner=args.pruner,
        parallel=execution.local_workers if execution.runner == "dask" else 1, profile_path=str(profile_path),
        base_profile=base_profile, base_settings=base_settings, pipeline=pipeline,
    )
    require_writable_places(settings, config.artifacts_dir)
    open_storage(request.storage_url)
    from seqflow.flows.tune import run_tune_flow

    start_temporary_server()
    summary = run_tune_flow(config, settings, request, execution)
    run_summary = None
    if args.register and summary.profile_path:
        logger.info("training the best configuration through the pipeline: %s", json.dumps(summary.best_params))
        run_summary = register(summary.profile_path)(execution)
    if run_summary is None:
        return report(args, summary)
    return report(args, {"tune": summary, "run": run_summary}, f"{summary.render()}\n\n{run_summary.render()}")
