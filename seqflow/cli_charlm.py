"""``seqflow charlm run|rerun|profiles|champion|promote|rollback|serve`` and ``seqflow generate``: the character
models' commands. The options and settings they share with the sentiment commands come from :mod:`seqflow.cli`
(imported where used: that module builds its parser from this one)."""

from __future__ import annotations

import argparse

from seqflow.cli_champion import CHAMPION_COMMANDS, add_champion_commands, add_set_option, model_to_load
from seqflow.cli_help import add_command, add_json_option
from seqflow.cli_output import report, report_profiles, reporting
from seqflow.core.overrides import parse_assignments
from seqflow.core.errors import SeqflowError
from seqflow.core.runner import FlowCall, run_flow_command
from seqflow.core.settings import TrackingSettings


def add_charlm_commands(commands: argparse._SubParsersAction) -> None:
    """``seqflow charlm run|rerun|profiles|champion|promote|rollback|serve`` and ``seqflow generate``."""
    from seqflow.charlm.rerun import CHARLM_RERUNS
    from seqflow.cli import add_pipeline_run_options, add_rerun_command
    from seqflow.charlm.config import ALL_CHAR_ARCHITECTURES, CHARLM_PROFILES

    charlm = add_command(commands, "charlm")
    charlm_commands = charlm.add_subparsers(dest="charlm_command", required=True, metavar="COMMAND")
    run = add_command(charlm_commands, "charlm run")
    run.add_argument(
        "--profile", metavar="NAME|FILE",
        help=f"named settings: {', '.join(sorted(CHARLM_PROFILES))}; or a profile file (.yaml/.json/.toml, e.g. "
        "written by `seqflow charlm tune`) (default: auto, sized from the text)",
    )
    run.add_argument("--source", help="text source: embedded[:PLAY,...] | tfds:tiny_shakespeare | text:PATH")
    add_model_name_option(run)
    run.add_argument("--seed", type=int, help="the one random seed for the split, initialisation and sampling")
    add_set_option(run, "training.epochs=20")
    add_pipeline_run_options(run)
    rerun = add_rerun_command(
        charlm_commands, "charlm rerun", CHARLM_RERUNS.names, ALL_CHAR_ARCHITECTURES,
        "the task to run again, by its task name (load, validate: its earlier names for load_text, check_text)",
        "MLflow parent run of the earlier charlm execution (default: the latest FINISHED one)",
    )
    add_set_option(rerun, "training.epochs=3", "change one setting of the earlier execution")
    add_model_name_option(rerun)
    add_json_option(rerun)
    from seqflow.cli_tune import add_charlm_tune_command

    add_charlm_tune_command(charlm_commands)
    profiles = add_command(charlm_commands, "charlm profiles")
    profiles.add_argument("name", nargs="?", help="show one profile in full")
    add_json_option(profiles)
    for champion_command in add_champion_commands(
        charlm_commands, "charlm ", tuple(CHARLM_PROFILES), "auto", "promotion.max_val_perplexity=8"
    ):
        add_model_name_option(champion_command)
        champion_command.add_argument("--source", help="the corpus whose registered model this is, as `charlm run` names it")

    generate = add_command(commands, "generate")
    generate.add_argument("--prefix", default="", help="text the generation continues (default: empty)")
    generate.add_argument("--length", type=int, default=300, help="characters to generate (default: 300)")
    generate.add_argument("--temperature", type=float, default=0.8, help="0 picks the likeliest character; higher is wilder")
    generate.add_argument("--seed", type=int, help="sampling seed: the same seed gives the same text")
    generate.add_argument("--model-uri", help="MLflow model URI (default: models:/<charlm name>@champion)")
    add_model_name_option(generate)
    generate.add_argument(
        "--source", help="the corpus the model was trained on, naming its registered model as `charlm run` does"
    )
    add_json_option(generate, "print {prefix, text, continuation}")


def add_model_name_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model-name", metavar="NAME",
        help="registered model of this corpus (default: SEQFLOW_CHARLM_MODEL_NAME, else seqflow-charlm-<source stem>)",
    )


# The training settings `charlm profiles` shows for each profile.
_PROFILE_COLUMNS = ("layers", "rnn_units", "seq_length", "epochs", "stateful", "architectures")


def cmd_charlm(args: argparse.Namespace, settings: TrackingSettings) -> int:
    from seqflow.charlm.corpus import check_model_name, corpus_tracking_settings
    from seqflow.charlm.sizing import AUTO_PROFILE, resolve_charlm_run_config
    from seqflow.cli import resolve_execution
    from seqflow.charlm.config import CHARLM_PROFILES, DEFAULT_CHARLM_PROFILE, get_charlm_profile

    if args.charlm_command == "profiles":
        return report_profiles(
            args, CHARLM_PROFILES, get_charlm_profile,
            lambda name, profile: {
                "name": name, **{f"training.{key}": getattr(profile.training, key) for key in _PROFILE_COLUMNS},
                "sized_from_text": name == AUTO_PROFILE,
            },
            lambda row: (
                f"{row['name']:26} {row['training.layers']} x {row['training.rnn_units']:>4} units  window "
                f"{row['training.seq_length']:>3}  epochs {row['training.epochs']:>3}  "
                f"{'stateful ' if row['training.stateful'] else ''}archs {','.join(row['training.architectures'])}"
                + ("  (sized from the text at run time)" if row["sized_from_text"] else "")
            ),
        )
    if args.charlm_command == "tune":
        from seqflow.cli_tune import cmd_charlm_tune

        return cmd_charlm_tune(args, settings)
    if args.charlm_command == "rerun":
        return _cmd_charlm_rerun(args, settings)
    if args.charlm_command in CHAMPION_COMMANDS:
        from seqflow.charlm.pipeline import CHARLM

        # The registered model of the corpus named by --model-name or --source, as `charlm run` registered it.
        source = args.source or get_charlm_profile(DEFAULT_CHARLM_PROFILE).data.source
        return CHAMPION_COMMANDS[args.charlm_command](args, corpus_tracking_settings(settings, args.model_name, source), CHARLM)
    overrides: dict[str, object] = {}
    if args.source:
        overrides["data.source"] = args.source
    if args.seed is not None:
        overrides["seed"] = args.seed
    overrides.update(parse_assignments(args.assignments))
    if args.model_name is not None:
        check_model_name(args.model_name)  # before the text is read to size the profile
    from seqflow.core.source_specs import refuse_missing_source_path

    source = overrides.get("data.source") or get_charlm_profile(args.profile or DEFAULT_CHARLM_PROFILE).data.source
    refuse_missing_source_path(str(source), ("text",))  # before the loaders and the flow are imported
    from seqflow.charlm.sources import parse_char_source_spec
    from seqflow.flows.charlm import run_charlm_flow

    parse_char_source_spec(source)
    config = resolve_charlm_run_config(args.profile or DEFAULT_CHARLM_PROFILE, dict(settings.config_overrides), overrides)
    execution = resolve_execution(args, connect=True)
    charlm_settings = corpus_tracking_settings(settings, args.model_name, config.data.source)
    call = FlowCall("charlm-run", charlm_settings, config.artifacts_dir,
                    lambda: run_charlm_flow(config, charlm_settings, execution), config.training.architectures)
    return run_flow_command(call, args.console_level, reporting(args))


def _cmd_charlm_rerun(args: argparse.Namespace, settings: TrackingSettings) -> int:
    from seqflow.charlm.corpus import corpus_tracking_settings
    from seqflow.charlm.rerun import plan_charlm_rerun
    from seqflow.charlm.sources import parse_char_source_spec
    from seqflow.core.rerun import refuse_architectures_not_trained
    from seqflow.core.tracking import Tracker
    from seqflow.flows.rerun import rerun_flow

    charlm_settings = settings.for_charlm()
    overrides = parse_assignments(args.assignments)
    plan = plan_charlm_rerun(Tracker(charlm_settings), args.task, args.from_run, args.rerun_architectures, overrides)
    refuse_architectures_not_trained(plan)
    parse_char_source_spec(plan.config.data.source)
    # Registers (rerun register) under the model of the earlier execution's corpus, as its run did.
    corpus_settings = corpus_tracking_settings(settings, args.model_name, plan.config.data.source)
    call = FlowCall(f"charlm-rerun-{args.task}", corpus_settings, plan.config.artifacts_dir,
                    lambda: rerun_flow(plan, corpus_settings))
    return run_flow_command(call, args.console_level, reporting(args))


def cmd_generate(args: argparse.Namespace, settings: TrackingSettings) -> int:
    import pandas as pd

    from seqflow.charlm.generate import generation_problem, max_generation_length

    if problem := generation_problem(args.length, args.temperature, max_generation_length()):
        raise SeqflowError(f"--{problem}")
    from seqflow.charlm.corpus import corpus_tracking_settings
    from seqflow.charlm.config import DEFAULT_CHARLM_PROFILE, get_charlm_profile

    source = args.source or get_charlm_profile(DEFAULT_CHARLM_PROFILE).data.source
    charlm_settings = corpus_tracking_settings(settings, args.model_name, source)
    tracker, model_uri = model_to_load(
        charlm_settings, args.model_uri,
        "run `seqflow charlm run` on that corpus first, or name the model with --model-name (or --source)",
    )
    row = {"prefix": [args.prefix], "length": [args.length], "temperature": [args.temperature]}
    if args.seed is not None:
        row["seed"] = [args.seed]
    from seqflow.charlm.generate import CHAR_GENERATION
    from seqflow.sentiment.serving import REVIEW_SENTIMENT

    from seqflow.core.run_output import library_output_into_log

    with library_output_into_log(settings, "generate"):
        model = tracker.load_pyfunc(model_uri, CHAR_GENERATION, others=(REVIEW_SENTIMENT,), needed_by="`seqflow generate`")
        generated = model.predict(pd.DataFrame(row))
    result = {"prefix": args.prefix, "text": generated["text"][0], "continuation": generated["continuation"][0]}
    return report(args, result, result["text"])
