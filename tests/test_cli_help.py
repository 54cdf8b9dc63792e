"""The command line explains itself: every command's --help says what it does, with examples that parse and the
exit statuses it can end with; no command offers an option it refuses; --json is on every command that reports
something; the completion script knows every command. Over the real parser (seqflow.cli.build_parser)."""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from seqflow.cli import build_parser, main
from seqflow.cli_help import COMMAND_DOCS, COMPLETION_SHELLS, completion_script
from seqflow.core.errors import EXIT_MEANINGS, ContractViolation, ExitCode, SeqflowError
from tests.conftest import new_empty_store

# The commands that report a result (and so take --json), and those that serve or print a script instead.
REPORTING = {
    "validate", "run", "rerun", "predict", "profiles", "champion", "promote", "rollback", "generate",
    "charlm run", "charlm rerun", "charlm profiles", "charlm champion", "charlm promote", "charlm rollback", "tune",
    "charlm tune",
}
# card prints a document (the markdown card), not a report.
NOT_REPORTING = {"schedule", "serve", "charlm serve", "completion", "card", "charlm card"}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """``(path, parser)`` of every command, command groups (``charlm``) and their commands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from _commands(sub, (*path, name))


def _is_group(parser: argparse.ArgumentParser) -> bool:
    return any(isinstance(action, argparse._SubParsersAction) for action in parser._actions)


COMMANDS = dict(_commands(build_parser()))
LEAVES = {" ".join(path): parser for path, parser in COMMANDS.items() if not _is_group(parser)}


def _examples(help_text: str) -> list[str]:
    """The example command lines of a --help page (the lines after "examples:" that start with `seqflow`)."""
    section = help_text.split("\nexamples:\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in section.splitlines() if line.strip().startswith("seqflow")]


@pytest.mark.parametrize("path", [(), *COMMANDS], ids=lambda path: " ".join(path) or "seqflow")
def test_every_command_says_what_it_does_with_an_example_and_its_exit_statuses(path: tuple[str, ...]) -> None:
    parser = COMMANDS[path] if path else build_parser()
    page = parser.format_help()
    description = parser.description or ""
    assert len(description.split()) >= 12, f"`seqflow {' '.join(path)} --help` says too little about what it does"
    examples = _examples(page)
    assert examples, f"`seqflow {' '.join(path)} --help` shows no example"
    assert all(shlex.split(example)[: 1 + len(path)] == ["seqflow", *path] for example in examples), examples
    statuses = page.split("\nexit status:\n", 1)[1]
    listed = {int(code) for code in re.findall(r"^  (\d+) ", statuses, flags=re.MULTILINE)}
    assert {ExitCode.OK, ExitCode.REFUSED} <= listed <= set(EXIT_MEANINGS)


@pytest.mark.parametrize("path", sorted(COMMAND_DOCS), ids=lambda path: path or "seqflow")
def test_every_example_is_a_command_line_seqflow_accepts(path: str) -> None:
    for _, example in COMMAND_DOCS[path].examples:
        words = shlex.split(example, comments=True)
        words = words[: words.index(">")] if ">" in words else words
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as refused:
            pytest.fail(f"example {example!r} of `seqflow {path} --help` does not parse (exit {refused.code})")


def test_the_documented_exit_statuses_are_the_ones_seqflow_returns() -> None:
    from seqflow.core.registry import PromotionRefused

    assert SeqflowError("x").exit_code == ExitCode.REFUSED == 2
    assert ContractViolation("x").exit_code == ExitCode.CONTRACT_FAILED
    assert PromotionRefused("x").exit_code == ExitCode.GATE_REFUSED
    assert (ExitCode.INTERRUPTED, ExitCode.TERMINATED) == (128 + signal.SIGINT, 128 + signal.SIGTERM)
    # Commands that can end with a failed contract or a refusing gate say so; the others do not list them.
    for path, doc in COMMAND_DOCS.items():
        contracts = path in ("", "validate", "run", "rerun", "tune", "charlm", "charlm run", "charlm rerun", "charlm tune")
        gates = path.split()[-1:] in (["promote"], ["rollback"]) or path in ("", "charlm")
        assert (ExitCode.CONTRACT_FAILED in doc.exits) == contracts, path
        assert (ExitCode.GATE_REFUSED in doc.exits) == gates, path


def test_json_is_offered_by_every_command_that_reports_something() -> None:
    assert set(LEAVES) == REPORTING | NOT_REPORTING, "a new command: does it report something (--json) or not?"
    offering = {path for path, parser in LEAVES.items() if "--json" in parser._option_string_actions}
    assert offering == REPORTING


def test_rerun_offers_no_profile_and_promote_shows_a_promotion_setting() -> None:
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["rerun", "train", "--profile", "quick"])
    assert refused.value.code == ExitCode.REFUSED
    for path in ("promote", "rollback", "charlm promote", "charlm rollback"):
        example = re.search(r"e\.g\. --set (\S+)", LEAVES[path]._option_string_actions["--set"].help).group(1)
        assert example.startswith("promotion."), (path, example)


def test_promote_refuses_a_setting_that_is_not_a_promotion_gate(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    env_file = _empty_store_env(tmp_path)
    assert main(["--env-file", str(env_file), "promote", "1", "--set", "tokenisation.max_length=300"]) == ExitCode.REFUSED
    assert "--set tokenisation.max_length: promote and rollback read only the promotion gates" in capsys.readouterr().err


def _empty_store_env(folder: Path) -> Path:
    new_empty_store(folder / "mlflow.db")
    env_file = folder / "empty.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI=sqlite:///{folder / 'mlflow.db'}\nMLFLOW_EXPERIMENT_NAME=cli-help\n"
        f"SEQFLOW_ARTIFACTS_DIR={folder / 'artifacts'}\n"
    )
    return env_file


class _Reached(SeqflowError):
    """Raised where a command would start a Prefect server or a flow: every check before it passed."""


# What every command is run with, besides the option under test (its required arguments, the cheapest profile).
BASE_ARGS = {
    "predict": ["a fine film"], "promote": ["1"], "charlm promote": ["1"], "rerun": ["train"],
    "charlm rerun": ["train"], "schedule": ["--cron", "0 3 * * *"], "charlm run": ["--profile", "quick"],
    "tune": ["--arch", "nbsvm"], "card": ["1"], "charlm card": ["1"], "charlm tune": ["--arch", "char_lstm", "--profile", "quick"],
}
# Values for options whose type or choices do not give one.
VALUES = {
    "--source": "embedded", "--model-name": "my-corpus", "--reason": "a test", "--cron": "0 3 * * *",
    "--timezone": "UTC", "--name": "nightly", "--host": "127.0.0.1", "--prefix": "the ",
    "--model-uri": "models:/another-model/1", "--from-run": "0123456789abcdef",
    "--dask-address": "tcp://127.0.0.1:8786", "--input": "reviews.csv", "--output": "scores.jsonl",
    "--profile": "quick", "--space": "space.yaml", "--study": "a-study", "--storage": "sqlite:///studies.db",
    "--profile-output": "best.yaml",
}
# Options that answer at once instead of running the command (its outcome is not the command's).
ANSWERS_AT_ONCE = {"--print-space"}
# Options that only go with another one: (the other option's arguments, base arguments they replace or None).
GOES_WITH = {
    "--force": (["--reason", "a test"], None), "--dask-address": (["--runner", "dask"], None),
    "--workers": (["--runner", "dask"], None), "--tf-threads": (["--runner", "dask"], None),
    "--input": ([], []), "--output": (["--input", "reviews.csv"], []), "--format": (["--input", "reviews.csv"], []),
}
# Options that choose what the command reads: with a value that names nothing, the outcome may be a refusal that
# names that value.
CHOOSING = {"--model-uri", "--from-run", "--model-name", "--dask-address"}


def _option_cases():
    for path, parser in sorted(LEAVES.items()):
        if path == "completion":
            continue
        for action in parser._actions:
            if action.option_strings and action.dest != "help" and action.option_strings[-1] not in ANSWERS_AT_ONCE:
                yield path, action


@pytest.mark.slow
def test_no_command_offers_an_option_it_refuses(tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    """Each option of each command, with a valid value, leads to the same outcome as the command without it:
    on an empty store, the same refusal (no champion, no earlier execution), or for commands that run a flow,
    the point where the flow (or its Prefect server) would start."""
    import seqflow.cli
    import seqflow.core.execution
    import seqflow.core.runner
    import seqflow.flows.charlm
    import seqflow.flows.rerun
    import seqflow.flows.sentiment
    import seqflow.flows.validate
    import seqflow.scheduling

    def reached(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise _Reached("reached the start of the flow")

    for module, name in (
        (seqflow.cli, "start_temporary_server"), (seqflow.core.runner, "start_temporary_server"),
        (seqflow.flows.sentiment, "run_sentiment_flow"), (seqflow.flows.validate, "validate_flow"),
        (seqflow.flows.rerun, "rerun_flow"), (seqflow.flows.charlm, "run_charlm_flow"),
        (seqflow.scheduling, "serve_schedule"),
    ):
        monkeypatch.setattr(module, name, reached)
    # The --dask-address cases are refused because nothing listens there; a short connect limit keeps each of
    # those refusals under a second instead of the default 10 s wait.
    monkeypatch.setattr(seqflow.core.execution, "SCHEDULER_CONNECT_TIMEOUT_S", 0.5)
    env_file = _empty_store_env(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews.csv").write_text("text\na fine film\n")
    # The default space, as a --space file, cut to the settings both pipelines search (tune and charlm tune take it).
    assert main(["tune", "--arch", "nbsvm", "--print-space"]) == ExitCode.OK
    space = yaml.safe_load(capsys.readouterr().out)
    assert main(["charlm", "tune", "--arch", "char_lstm", "--profile", "quick", "--print-space"]) == ExitCode.OK
    shared = yaml.safe_load(capsys.readouterr().out).keys() & space.keys()
    assert shared, "the two default spaces share no setting"
    (tmp_path / "space.yaml").write_text(yaml.safe_dump({key: space[key] for key in shared}))

    def outcome(path: str, args: list[str]) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["--env-file", str(env_file), *path.split(), *args])
        lines = capsys.readouterr().err.strip().splitlines()
        return int(code), lines[-1] if lines else ""

    problems = []
    for path, action in _option_cases():
        flag = action.option_strings[-1]
        if action.nargs == 0:
            value = []
        elif flag == "--set":
            value = [re.search(r"e\.g\. --set (\S+)", action.help).group(1)]
        elif action.choices:
            value = [sorted(action.choices)[-1]]
        elif action.type in (int, float):
            value = ["1"]
        else:
            assert flag in VALUES, f"add a valid value for {path} {flag} to VALUES"
            value = [VALUES[flag]]
        extra, base = GOES_WITH.get(flag, ([], None))
        base = BASE_ARGS.get(path, []) if base is None else base
        expected = outcome(path, [*BASE_ARGS.get(path, [])])
        got = outcome(path, [*base, *extra, flag, *value])
        if flag in CHOOSING and got != expected:
            if got[0] != ExitCode.REFUSED or value[0] not in got[1]:
                problems.append(f"{path} {flag} {value[0]}: {got}")
        elif flag not in CHOOSING and got != expected:
            problems.append(f"{path} {flag} {' '.join(value)}: {got[1]!r} instead of {expected[1]!r}")
    assert not problems, "options offered but refused:\n" + "\n".join(problems)


@pytest.mark.parametrize("shell", COMPLETION_SHELLS)
def test_the_completion_script_knows_every_command(shell: str, capsys) -> None:  # noqa: ANN001
    assert main(["completion", shell]) == ExitCode.OK
    script = capsys.readouterr().out
    assert script == completion_script(build_parser(), shell)
    for path in COMMANDS:
        assert path[-1] in script, f"{shell} completion does not know `seqflow {' '.join(path)}`"
    if shell == "bash":
        # Each command's options, exactly: none it does not offer.
        for path, parser in LEAVES.items():
            listed = re.search(rf"^_shtab_seqflow_{path.replace(' ', '_')}_option_strings=\((.*)\)$", script, re.MULTILINE)
            assert set(listed.group(1).split()) == set(parser._option_string_actions), path


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_commands_and_options(tmp_path: Path) -> None:
    script = tmp_path / "seqflow.bash"
    script.write_text(completion_script(build_parser(), "bash"))

    def complete(*words: str) -> set[str]:
        line = " ".join(["seqflow", *words])
        program = (
            f"source {shlex.quote(str(script))}; COMP_WORDS=({line}); COMP_CWORD={len(words)}; "
            f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}; _shtab_seqflow; printf '%s\\n' \"${{COMPREPLY[@]}}\""
        )
        result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=60, check=True)
        return set(result.stdout.split())

    assert complete("ch") == {"champion", "charlm"}
    assert complete("charlm", "pro") == {"profiles", "promote"}
    assert "--from-run" in complete("rerun", "--") and "--profile" not in complete("rerun", "--")
