"""What every ``seqflow`` command says about itself: its one-line help, what it does, examples and the exit
statuses it can end with, in one table (:data:`COMMAND_DOCS`) that :func:`add_command` builds each parser from,
so no command is added without them (tests/test_cli_help.py checks every page). The exit statuses and their
meanings come from :class:`seqflow.core.errors.ExitCode`, the same values ``seqflow.cli.main`` returns.

Also ``seqflow completion``'s script (shtab, from the same parser).
"""

from __future__ import annotations

import argparse
import textwrap
from dataclasses import dataclass

from seqflow.core.errors import EXIT_MEANINGS, ExitCode

# Width the descriptions are wrapped to (the pages are printed raw, examples and the exit table unwrapped).
WIDTH = 100

# Every command can end with these: done, refused with one line, a bug's traceback, or stopped by a signal.
COMMON_EXITS = (ExitCode.OK, ExitCode.REFUSED, ExitCode.INTERRUPTED, ExitCode.TERMINATED, ExitCode.BUG)
# Commands that check data contracts (validate, run, rerun) can also end with this one.
CONTRACT_EXITS = (*COMMON_EXITS[:2], ExitCode.CONTRACT_FAILED, *COMMON_EXITS[2:])
GATE_EXITS = (*COMMON_EXITS[:2], ExitCode.GATE_REFUSED, *COMMON_EXITS[2:])

# The shells `seqflow completion` writes a script for (those shtab supports).
COMPLETION_SHELLS = ("bash", "zsh", "tcsh")


@dataclass(frozen=True)
class CommandDoc:
    """One command's help: ``help`` (its line in the parent's command list), ``description`` (what it does,
    paragraphs separated by blank lines), ``examples`` ((comment, command line) pairs) and its exit statuses."""

    help: str
    description: str
    examples: tuple[tuple[str, str], ...]
    exits: tuple[ExitCode, ...] = COMMON_EXITS
    # What exit status 0 means for this command, when "done" does not say it.
    ok: str = ""

    def epilog(self) -> str:
        lines = ["examples:"]
        for comment, command in self.examples:
            lines += [f"  # {comment}", f"  {command}"]
        lines += ["", "exit status:"]
        for code in sorted(self.exits):
            meaning = self.ok if code == ExitCode.OK and self.ok else EXIT_MEANINGS[code]
            lines.append(f"  {int(code):<4} {meaning}")
        return "\n".join(lines)

    def wrapped_description(self) -> str:
        paragraphs = textwrap.dedent(self.description).strip().split("\n\n")
        return "\n\n".join(textwrap.fill(" ".join(p.split()), WIDTH, break_on_hyphens=False) for p in paragraphs)


_SERVE_OK = "served until stopped with Ctrl-C or SIGTERM (130/143: stopped before the server started)"


def _champion_docs(prefix: str, model: str, metrics: str, gate: str, name_hint: str, examples_from: str) -> dict[str, CommandDoc]:
    """``champion``, ``promote``, ``rollback``, ``serve`` and ``card`` of one pipeline (``prefix`` "" or "charlm ")."""
    cmd = f"seqflow {prefix}"
    return {
        f"{prefix}champion": CommandDoc(
            help=f"show the current champion, its {metrics} and who promoted it",
            description=f"""Show the version of {model} that holds the `champion` alias: its architecture, MLflow
            run, dataset digest, {metrics}, and the audit tags of the move that put it there (who, when, through
            which command, why, which version it replaced), with the number of recorded moves. {name_hint}
           """,
            examples=(("the current champion", f"{cmd}champion{examples_from}"),
                      ("as JSON, e.g. for a script", f"{cmd}champion --json{examples_from}")),
        ),
        f"{prefix}promote": CommandDoc(
            help="move the champion alias to VERSION if it passes the promotion gates",
            description=f"""Move the `champion` alias of {model} to registered version VERSION if it passes the
            pipeline's promotion gates ({gate}), comparing it with the current champion. The move is audited: the
            version is tagged with who, when, why and the gates' verdict, and appended to the champion history
            that `{prefix}rollback` goes back along. --force --reason TEXT moves it past a refusing gate (recorded).
            --set changes a gate for this decision only.""",
            examples=(("promote version 7 if it beats the champion", f"{cmd}promote 7{examples_from}"),
                      ("past a refusing gate, with why", f'{cmd}promote 7 --force --reason "canary for the A/B test"')),
            exits=GATE_EXITS,
        ),
        f"{prefix}rollback": CommandDoc(
            help="move the champion alias back to the champion before it",
            description=f"""Move the `champion` alias of {model} back to the version that was champion before the
            current one, along the recorded champion history (each rollback goes one further back). The earlier
            version must still pass the {gate.split(',')[0]} gate, unless --force --reason TEXT. Audited like
            `{prefix}promote`.""",
            examples=(("go back to the previous champion", f'{cmd}rollback --reason "v8 misbehaves in production"'),),
            exits=GATE_EXITS,
        ),
        f"{prefix}serve": CommandDoc(
            help="serve the champion over HTTP (POST /invocations) until stopped",
            description=f"""Serve the champion of {model} (or --model-uri) over HTTP: POST JSON to
            http://HOST:PORT/invocations. The model is checked against the digests recorded when it was registered
            and a checked copy is served, in a child process that runs until Ctrl-C or SIGTERM. Request bodies over
            --max-request-mb are refused unread (HTTP 413). {name_hint}""",
            examples=(("on this machine, port 5001", f"{cmd}serve{examples_from}"),
                      ("one fixed version, to other machines", f"{cmd}serve --model-uri models:/NAME/3 --host 0.0.0.0 --port 8080")),
            ok=_SERVE_OK,
        ),
        f"{prefix}card": CommandDoc(
            help="print the model card of VERSION (markdown): data, training, results, lineage",
            description=f"""Print the model card of registered version VERSION of {model}, as written at its
            registration (and rewritten when the champion alias moves): what the model takes and returns, its data,
            training, results with confidence intervals, lineage, the promotion decision, how to load and serve
            it, and its known limits. The same markdown is the version's description in the MLflow registry.
            {name_hint}""",
            examples=(("the card of version 3", f"{cmd}card 3{examples_from}"),),
        ),
    }


COMMAND_DOCS: dict[str, CommandDoc] = {
    "": CommandDoc(
        help="",
        description="""Train, check, track and promote Keras sequence models with Prefect, Great Expectations and
        MLflow: IMDB review sentiment (`seqflow run`) and character-level language models (`seqflow charlm run`).
        Settings come from a profile, then SEQFLOW_* in ./mlflow.env (or --env-file) and the environment, then
        --set. `seqflow COMMAND --help` says what each command does, with examples.""",
        examples=(("train and compare every architecture of the quick profile, register, promote", "seqflow run"),
                  ("what the champion is", "seqflow champion"),
                  ("score a review", 'seqflow predict "a wonderful, moving film"'),
                  ("tab completion for bash", "seqflow completion bash > ~/.local/share/bash-completion/completions/seqflow")),
        exits=(*CONTRACT_EXITS[:3], ExitCode.GATE_REFUSED, *CONTRACT_EXITS[3:]),
    ),
    "validate": CommandDoc(
        help="download, check the raw-data contract, tokenise and check the tokenised contract",
        description="""Read the data source, split it, check the raw reviews against the raw-data contract (Great
        Expectations), tokenise and pad them and check the tokenised contract; print rows per split, vocabulary,
        OOV rate, dataset digest and each contract's result. Writes the reports and arrays under the artifacts
        folder, nothing to MLflow. The first steps of `seqflow run`, on their own.""",
        examples=(("the default source (the embedded reviews) with the quick profile", "seqflow validate"),
                  ("your own CSV (text and label columns)", "seqflow validate --source csv:reviews.csv --set contracts.max_oov_rate=0.2")),
        exits=CONTRACT_EXITS,
    ),
    "run": CommandDoc(
        help="validate data, train every architecture, evaluate, register and promote",
        description="""The pipeline, as one Prefect flow run: validate the data (see `seqflow validate`), train
        every architecture of the profile as its own MLflow child run under one parent run, evaluate each once on
        the held-out test split, register every evaluated model as a version of the registered model, and move
        the `champion` alias to the best one if it passes the promotion gates. Tasks whose inputs, settings and
        code did not change are reused from earlier runs (the closing `tasks:` lines say which and why). Ends
        with the comparison table.""",
        examples=(("the quick profile on the embedded reviews", "seqflow run"),
                  ("two architectures, a tiny smoke run", "seqflow run --arch lstm --arch nbsvm --set data.limit=600 --set training.epochs=2"),
                  ("in parallel on a local Dask cluster", "seqflow run --profile full --runner dask --workers 2")),
        exits=CONTRACT_EXITS,
    ),
    "rerun": CommandDoc(
        help="run one task of an earlier execution again, past the cache, on that execution's outputs",
        description="""Run one task of an earlier `seqflow run` execution again, forced past the cache, on the
        outputs that execution recorded (its pipeline_state.json), with its settings; --set changes one of them.
        Downstream tasks are not rerun. The new MLflow parent run (and a new child run for train or evaluate)
        is tagged rerun_of=<earlier parent run id>.""",
        examples=(("retrain the LSTM of the latest finished execution", "seqflow rerun train --arch lstm"),
                  ("evaluate again with another batch size, on a named execution", "seqflow rerun evaluate --from-run PARENT_RUN_ID --set training.batch_size=64")),
        exits=CONTRACT_EXITS,
    ),
    "tune": CommandDoc(
        help="search one architecture's hyperparameters on the validation split (resumable Optuna study)",
        description="""Search one architecture's settings with Optuna: each trial trains on the training split and is
        scored on validation only (the test split is never read), as a Prefect task and a nested MLflow run under
        one parent run; hopeless trials are pruned from their per-epoch validation loss. The study lives in a
        database (optuna.db beside a SQLite MLflow store, or --storage), so running the same command again goes on
        where it stopped. At the end the best settings are printed and saved as a profile file that `seqflow run
        --profile FILE` takes; --register trains them through the normal pipeline and gates.""",
        examples=(("20 trials of the LSTM on the quick data", "seqflow tune --arch lstm --trials 20"),
                  ("two trials at a time on Dask, then train the best through the pipeline",
                   "seqflow tune --arch embedding_pool --trials 30 --runner dask --workers 2 --register")),
        exits=CONTRACT_EXITS,
    ),
    "predict": CommandDoc(
        help="score raw reviews with the champion (or --model-uri)",
        description="""Score raw review texts with the champion sentiment model (or --model-uri): a probability of
        positive and a 0/1 label for each. With --input, score every review of a CSV (text column), JSON-lines
        (text field) or plain-text file (one per line; - for standard input) in batches, writing CSV or JSON lines
        to --output or standard output. --json prints a JSON list of {text, probability, label} for TEXT
        arguments, or with --input and --output, {reviews, seconds, output}.""",
        examples=(("two reviews", 'seqflow predict "a wonderful film" "a dull, boring film"'),
                  ("as JSON", 'seqflow predict --json "a wonderful film"'),
                  ("a whole file", "seqflow predict --input reviews.csv --output scores.jsonl")),
    ),
    "profiles": CommandDoc(
        help="list the named profiles and their settings",
        description="""List the sentiment pipeline's named profiles (vocabulary, review length, padding, epochs,
        architectures), or every setting of one. --profile NAME on other commands picks one.""",
        examples=(("all profiles", "seqflow profiles"), ("every setting of one, as JSON", "seqflow profiles quick --json")),
    ),
    "schedule": CommandDoc(
        help="serve the pipeline as a Prefect deployment on a cron schedule (runs until stopped)",
        description="""Create (or update) a Prefect deployment of the pipeline with a cron schedule and serve its
        flow runs from this process until Ctrl-C or SIGTERM. The settings given here (--profile, --source, --set)
        are checked now and passed to every scheduled run. Set PREFECT_API_URL to a running Prefect server;
        without it the deployment lives only as long as this process.""",
        examples=(("every day at 03:00 UTC", 'seqflow schedule --cron "0 3 * * *"'),
                  ("Mondays at 06:30 Berlin time, the full profile", 'seqflow schedule --cron "30 6 * * 1" --timezone Europe/Berlin --profile full')),
        ok="served until stopped with SIGTERM (a failed scheduled run is a failed flow run in Prefect, not an exit)",
    ),
    "completion": CommandDoc(
        help="print a shell completion script (bash, zsh or tcsh)",
        description="""Print a script that completes seqflow's commands, options and their choices in your shell.
        Save it where your shell loads completions (see the examples), then open a new shell.""",
        examples=(("bash", "seqflow completion bash > ~/.local/share/bash-completion/completions/seqflow"),
                  ("zsh (a folder on your $fpath)", "seqflow completion zsh > ~/.zfunc/_seqflow"),
                  ("tcsh", "seqflow completion tcsh > ~/.seqflow.tcsh   # then: source ~/.seqflow.tcsh in ~/.tcshrc")),
        exits=(ExitCode.OK, ExitCode.REFUSED, ExitCode.BUG),
    ),
    **_champion_docs("", "the sentiment model", "test metrics", "accuracy floor, minimum improvement over the champion",
                     "", ""),
    "charlm": CommandDoc(
        help="character-level language models: train, register, promote",
        description="""Character-level language models, with the same orchestration, contracts, tracking, registry
        and promotion as the sentiment pipeline. Each corpus (--source) has its own registered model,
        seqflow-charlm-<source stem> unless --model-name (or SEQFLOW_CHARLM_MODEL_NAME) names it. `seqflow
        generate` writes text with a champion.""",
        examples=(("train on Shakespeare's plays (the auto profile, sized from the text)", "seqflow charlm run"),
                  ("the champion of a corpus", "seqflow charlm champion --source text:lyrics.txt")),
        exits=(*CONTRACT_EXITS[:3], ExitCode.GATE_REFUSED, *CONTRACT_EXITS[3:]),
    ),
    "charlm run": CommandDoc(
        help="check the text, train every character architecture, register, promote",
        description="""The character pipeline as one Prefect flow run: load and check the text against its
        contract, encode it, train every character architecture of the profile as an MLflow child run, evaluate
        on the validation blocks, register each as a version of the corpus's registered model and move its
        `champion` alias if the gates pass. Without --profile the `auto` profile is sized from the text. Ends with
        the comparison table.""",
        examples=(("Shakespeare's plays, sized from the text", "seqflow charlm run"),
                  ("any UTF-8 text file, its own registered model", "seqflow charlm run --source text:lyrics.txt --model-name lyrics"),
                  ("a short smoke run", "seqflow charlm run --profile quick --set training.epochs=1")),
        exits=CONTRACT_EXITS,
    ),
    "charlm rerun": CommandDoc(
        help="run one task of an earlier charlm execution again, past the cache, on that execution's outputs",
        description="""Run one task of an earlier `seqflow charlm run` execution again, forced past the cache, on
        the outputs it recorded, with its settings; --set changes one of them. Downstream tasks are not rerun; the
        new MLflow runs are tagged rerun_of=<earlier parent run id>.""",
        examples=(("evaluate the GRU of the latest finished charlm execution again", "seqflow charlm rerun evaluate --arch char_gru"),
                  ("retrain with more epochs, from a named execution", "seqflow charlm rerun train --from-run PARENT_RUN_ID --set training.epochs=3")),
        exits=CONTRACT_EXITS,
    ),
    "charlm tune": CommandDoc(
        help="search one character architecture's hyperparameters on the validation text (resumable Optuna study)",
        description="""`seqflow tune` for the character models: each trial trains on the training blocks through
        the charlm training step and is scored by its carried-state validation loss (nats per character) on the
        validation blocks after every epoch, as a Prefect task and a nested MLflow run (in the corpus's charlm
        experiment) under one parent run; hopeless trials are pruned. The default space searches the learning
        rate, units, embedding, dropout, window and layers. The study lives in a database (optuna.db beside a
        SQLite MLflow store, or --storage), so the same command again goes on where it stopped. The best settings
        are saved as a profile file that `seqflow charlm run --profile FILE` takes; --register trains them through
        the charlm pipeline and its gates.""",
        examples=(("10 trials of the LSTM on the quick text", "seqflow charlm tune --arch char_lstm --profile quick --trials 10"),
                  ("an hour on any text file, then train the best through the pipeline",
                   "seqflow charlm tune --arch char_gru --source text:lyrics.txt --model-name lyrics --timeout 60 --register")),
        exits=CONTRACT_EXITS,
    ),
    "charlm profiles": CommandDoc(
        help="list the charlm profiles and their settings",
        description="""List the character pipeline's named profiles (layers, units, window, epochs, architectures),
        or every setting of one. `auto` is sized from the text when `charlm run` reads it.""",
        examples=(("all profiles", "seqflow charlm profiles"), ("every setting of one", "seqflow charlm profiles shakespeare-lstm")),
    ),
    **_champion_docs(
        "charlm ", "a corpus's character model", "validation metrics", "validation perplexity ceiling, minimum improvement, beating the n-gram baseline",
        "The corpus is named by --source (as `charlm run` named it) or --model-name; default: the embedded plays.",
        " --source text:lyrics.txt",
    ),
    "generate": CommandDoc(
        help="generate text with the character model's champion (or --model-uri)",
        description="""Generate --length characters with the champion of a corpus's character model (or
        --model-uri), continuing --prefix. --temperature 0 always picks the likeliest character; --seed makes the
        sample repeatable. A prefix with characters the model never saw is refused, naming them. --json prints
        {prefix, text, continuation}.""",
        examples=(("300 characters in the style of the plays", 'seqflow generate --prefix "ROMEO:" --seed 7'),
                  ("from the champion of your own corpus, as JSON", 'seqflow generate --source text:lyrics.txt --prefix "分开" --json')),
    ),
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (wrapped by :class:`CommandDoc`), option help wrapped as usual."""


def add_command(commands: argparse._SubParsersAction, path: str, **kwargs) -> argparse.ArgumentParser:  # noqa: ANN003
    """The parser of command ``path`` ("run", "charlm run", ...) with its help, description, examples and exit
    statuses from :data:`COMMAND_DOCS`; ``kwargs`` go to ``add_parser``."""
    doc = COMMAND_DOCS[path]
    return commands.add_parser(
        path.split()[-1], help=doc.help, description=doc.wrapped_description(), epilog=doc.epilog(),
        formatter_class=HelpFormatter, **kwargs,
    )


def document_top_level(parser: argparse.ArgumentParser) -> None:
    """``seqflow --help``'s description, examples and exit statuses."""
    doc = COMMAND_DOCS[""]
    parser.description, parser.epilog, parser.formatter_class = doc.wrapped_description(), doc.epilog(), HelpFormatter


def add_json_option(parser: argparse.ArgumentParser, what: str = "print the result as one JSON document") -> None:
    parser.add_argument("--json", action="store_true", help=f"{what} on standard output (logs go to standard error)")


# Options whose value is a file, for the completion script.
FILE_OPTIONS = ("env_file", "input", "output")


def completion_script(parser: argparse.ArgumentParser, shell: str) -> str:
    """``shell``'s completion script for ``parser`` (commands, options, choices; file names where one is asked)."""
    import shtab

    for action in _actions(parser):
        if action.dest in FILE_OPTIONS:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
    return shtab.complete(parser, shell=shell)


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    actions = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                actions += _actions(sub)
    return actions
