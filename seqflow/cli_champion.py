"""``champion``, ``promote``, ``rollback`` and ``serve`` for any pipeline: ``seqflow champion ...`` for the
sentiment models, ``seqflow charlm champion ...`` for the character models. One code path for both, through
:mod:`seqflow.core.registry` and the pipeline's declaration (:class:`seqflow.core.pipeline.Pipeline`)."""

from __future__ import annotations

import argparse
from typing import Sequence

from seqflow.cli_help import add_command, add_json_option
from seqflow.cli_output import report
from seqflow.core.errors import ConfigError
from seqflow.core.overrides import parse_assignments
from seqflow.sentiment.profiles import PROFILES
from seqflow.core.settings import TrackingSettings

# The config section promote and rollback read: their --set changes only these settings.
PROMOTION_SECTION = "promotion"


def add_profile_options(
    parser: argparse.ArgumentParser,
    profiles: Sequence[str] = tuple(PROFILES),
    default: str = "SEQFLOW_PROFILE or quick",
    example: str = "tokenisation.max_length=300",
    what: str = "override one setting",
) -> None:
    """--profile and --set: enough to resolve a pipeline config's gates (promote, rollback)."""
    parser.add_argument(
        "--profile", metavar="NAME|FILE",
        help=f"named settings: {', '.join(sorted(profiles))}; or a profile file (.yaml/.json/.toml, e.g. written "
        f"by `seqflow tune`) (default: {default})",
    )
    add_set_option(parser, example, what)


def add_set_option(parser: argparse.ArgumentParser, example: str, what: str = "override one setting") -> None:
    """--set SECTION.FIELD=VALUE, repeatable, into ``args.assignments``."""
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE",
        help=f"{what}, e.g. --set {example} (repeatable)",
    )


def add_champion_commands(
    commands: argparse._SubParsersAction, prefix: str, profiles: Sequence[str], default_profile: str, example: str
) -> list[argparse.ArgumentParser]:
    """``champion``, ``promote``, ``rollback``, ``serve`` and ``card``: the same commands for every pipeline (their
    help under ``prefix`` "" or "charlm " in :data:`seqflow.cli_help.COMMAND_DOCS`); returns their parsers, for a
    pipeline's own options."""
    champion = add_command(commands, f"{prefix}champion")
    add_json_option(champion)

    promote = add_command(commands, f"{prefix}promote")
    promote.add_argument("version", metavar="VERSION", help="registered model version")
    rollback = add_command(commands, f"{prefix}rollback")
    for alias_command in (promote, rollback):
        alias_command.add_argument("--reason", help="why (recorded on the version; required with --force)")
        alias_command.add_argument("--force", action="store_true", help="override a refusing gate (audited)")
        add_profile_options(
            alias_command, profiles, default_profile, example,
            f"change one promotion gate (only {PROMOTION_SECTION}.* settings apply)",
        )
        add_json_option(alias_command, "print the move (version, previous, gates, audit tags)")

    serve = add_command(commands, f"{prefix}serve")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--port", type=int, default=5001, help="port (default: 5001)")
    serve.add_argument("--model-uri", help="MLflow model URI (default: models:/<registered name>@champion)")
    serve.add_argument(
        "--max-request-mb", type=float, default=16.0, metavar="MB",
        help="refuse (HTTP 413) request bodies over this many MiB, unread (default: 16)",
    )
    card = add_command(commands, f"{prefix}card")
    card.add_argument("version", metavar="VERSION", help="registered model version")
    return [champion, promote, rollback, serve, card]


def reading_tracker(settings: TrackingSettings, model_uri: str | None = None):  # noqa: ANN202 - a Tracker
    """The tracker of a command that reads the champion: first the clean-up an execution does (runs of dead
    processes closed, versions of executions killed while registering withdrawn), unless the command was
    pointed at a model explicitly."""
    from seqflow.core.runs import recover_before_reading
    from seqflow.core.tracking import Tracker

    # An existing store only: a read-only command never creates or migrates one (and opens a read-only one).
    tracker = Tracker(settings, existing=True)
    if model_uri is None:
        recover_before_reading(tracker)
    return tracker


def model_to_load(settings: TrackingSettings, model_uri: str | None, remedy: str):  # noqa: ANN201 - (Tracker, str)
    """The reading tracker and the model URI a scoring command (``predict``, ``generate``) loads: ``model_uri``
    once it is known to exist, else the champion of ``settings``' registered model. Without a champion, a
    one-line error that ends with ``remedy`` ("run `seqflow run` first") or passing --model-uri."""
    from seqflow.core.errors import SeqflowError
    from seqflow.core.model_uris import refuse_missing_model
    from seqflow.core.tracking import CHAMPION_ALIAS

    tracker = reading_tracker(settings, model_uri)
    if model_uri is None and tracker.champion() is None:
        raise SeqflowError(
            f"registered model {settings.registered_model_name!r} has no {CHAMPION_ALIAS!r} alias in "
            f"{settings.tracking_uri}; {remedy} or pass --model-uri"
        )
    refuse_missing_model(tracker.client, model_uri, tracker.settings.tracking_uri)
    return tracker, model_uri or f"models:/{settings.registered_model_name}@{CHAMPION_ALIAS}"

def _promotion_config(args: argparse.Namespace, settings: TrackingSettings, pipeline):  # noqa: ANN001, ANN202
    """The ``pipeline``'s promotion gates from --profile and --set (and SEQFLOW_* settings); a --set of any
    other setting is refused (it would change nothing)."""
    assignments = parse_assignments(args.assignments)
    others = [key for key in assignments if not key.startswith(f"{PROMOTION_SECTION}.")]
    if others:
        raise ConfigError(
            f"--set {others[0]}: promote and rollback read only the promotion gates; set one of those, e.g. "
            f"--set {PROMOTION_SECTION}.min_improvement=0.01, or run again with other settings"
        )
    return pipeline.resolve_config(args.profile, settings, assignments).promotion


def _champion(args: argparse.Namespace, settings: TrackingSettings, pipeline) -> int:  # noqa: ANN001
    from seqflow.core.champion_info import describe_champion

    return report(args, describe_champion(pipeline, reading_tracker(pipeline.tracking_settings(settings))))


def _promote(args: argparse.Namespace, settings: TrackingSettings, pipeline) -> int:  # noqa: ANN001
    from seqflow.core.registry import promote_version

    promotion = _promotion_config(args, settings, pipeline)
    tracker = reading_tracker(pipeline.tracking_settings(settings))
    return report(args, promote_version(pipeline, tracker, args.version, promotion, args.reason, args.force))


def _rollback(args: argparse.Namespace, settings: TrackingSettings, pipeline) -> int:  # noqa: ANN001
    from seqflow.core.registry import rollback

    promotion = _promotion_config(args, settings, pipeline)
    tracker = reading_tracker(pipeline.tracking_settings(settings))
    return report(args, rollback(pipeline, tracker, promotion, args.reason, args.force))


def _serve(args: argparse.Namespace, settings: TrackingSettings, pipeline) -> int:  # noqa: ANN001
    from seqflow.core.errors import SeqflowError
    from seqflow.core.model_server import serve_model

    if not 0 < args.max_request_mb < float("inf"):
        raise SeqflowError(f"--max-request-mb must be a positive number, got {args.max_request_mb}")
    return serve_model(
        pipeline.tracking_settings(settings), args.host, args.port, args.model_uri,
        max(1, int(args.max_request_mb * 1024 * 1024)), pipeline=pipeline,
    )


def _card(args: argparse.Namespace, settings: TrackingSettings, pipeline) -> int:  # noqa: ANN001
    from seqflow.core.cards import render_card

    print(render_card(pipeline, reading_tracker(pipeline.tracking_settings(settings)), args.version), end="")
    return 0


# The champion commands, for any pipeline: `seqflow champion` (sentiment) and `seqflow charlm champion`.
CHAMPION_COMMANDS = {"champion": _champion, "promote": _promote, "rollback": _rollback, "serve": _serve, "card": _card}
