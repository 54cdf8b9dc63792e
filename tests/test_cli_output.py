"""``--json``: one JSON document of the data the human output shows, alone on standard output; a refusal is a
JSON object with the message and the exit status. Real commands on real MLflow stores (an empty one, and a
tiny registered model); validate, run and rerun --json are checked next to their flows (tests/flows)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from seqflow.cli import main
from seqflow.cli_output import jsonable
from seqflow.core.errors import ExitCode
from seqflow.core.task_status import TaskStatus
from tests.conftest import new_empty_store, register_tiny_sentiment_model


def _cli(capfd, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    capfd.readouterr()
    code = main(list(args))
    captured = capfd.readouterr()
    return int(code), captured.out, captured.err


@dataclass(frozen=True)
class _Summary:
    path: Path
    score: float
    rows: tuple[int, ...]
    tasks: list[TaskStatus]


def test_jsonable_turns_summaries_into_json_types() -> None:
    summary = _Summary(Path("/tmp/x"), math.nan, (1, 2), [TaskStatus("download", "ran", "no earlier result")])
    assert jsonable(summary) == {
        "path": "/tmp/x", "score": None, "rows": [1, 2],
        "tasks": [{"task": "download", "status": "ran", "reason": "no earlier result", "run_id": None}],
    }


def test_json_keeps_standard_output_for_the_document(tmp_path: Path) -> None:
    """Whatever else writes to standard output meanwhile (print, file descriptor 1, a child process) goes to
    standard error."""
    program = (
        "import os, subprocess, sys\n"
        "from seqflow.cli_output import emit_json, json_document\n"
        "with json_document(True):\n"
        "    print('a print')\n"
        "    os.write(1, b'a write to fd 1\\n')\n"
        "    subprocess.run([sys.executable, '-c', 'print(\"a child process\")'], check=True)\n"
        "    emit_json({'answer': 42})\n"
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == {"answer": 42}
    assert all(line in result.stderr for line in ("a print", "a write to fd 1", "a child process"))


@pytest.mark.parametrize("pipeline", [[], ["charlm"]], ids=["sentiment", "charlm"])
def test_profiles_json_is_what_the_table_shows(pipeline: list[str], capfd) -> None:  # noqa: ANN001
    code, text, _ = _cli(capfd, *pipeline, "profiles")
    assert code == 0
    code, out, err = _cli(capfd, *pipeline, "profiles", "--json")
    assert code == 0, err
    rows = json.loads(out)
    lines = text.strip().splitlines()
    assert [row["name"] for row in rows] == [line.split()[0] for line in lines]
    for row, line in zip(rows, lines):
        for key, value in row.items():
            if not isinstance(value, bool):
                assert (",".join(value) if isinstance(value, list) else str(value)) in line.split(), (key, line)
        if "training.stateful" in row:
            assert ("stateful" in line.split()) == row["training.stateful"]

    name = rows[0]["name"]
    code, text, _ = _cli(capfd, *pipeline, "profiles", name)
    code, out, _ = _cli(capfd, *pipeline, "profiles", name, "--json")
    settings = json.loads(out)
    assert list(settings) == [line.split()[0] for line in text.strip().splitlines()]


def _env_file(folder: Path, model_name: str, experiment: str = "tiny") -> str:
    env_file = folder / "cli.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI=sqlite:///{folder / 'mlflow.db'}\nMLFLOW_EXPERIMENT_NAME={experiment}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={model_name}\n"
    )
    return str(env_file)


@pytest.mark.parametrize(
    "command",
    [["champion"], ["rollback"], ["promote", "1"], ["predict", "a film"], ["charlm", "champion"], ["generate"]],
    ids=" ".join,
)
def test_a_refusal_is_a_json_error_object(command: list[str], tmp_path: Path, capfd) -> None:  # noqa: ANN001
    new_empty_store(tmp_path / "mlflow.db")
    code, out, err = _cli(capfd, "--env-file", _env_file(tmp_path, "no-such-model"), *command, "--json")
    assert code == ExitCode.REFUSED
    message = err.strip().splitlines()[-1]
    assert json.loads(out) == {"error": message.removeprefix("seqflow: error: "), "exit_code": 2}
    assert "has no 'champion' alias" in err or "has no version '1'" in err


@pytest.fixture(scope="module")
def tiny_registry(tmp_path_factory) -> str:  # noqa: ANN001
    """Two versions of a tiny (untrained) sentiment model, registered by seqflow's own code; its env file."""
    folder = tmp_path_factory.mktemp("tiny-registry")
    register_tiny_sentiment_model(folder)
    register_tiny_sentiment_model(folder)
    return _env_file(folder, "tiny-sentiment")


@pytest.mark.slow
def test_promote_rollback_and_champion_json_are_the_moves_they_print(tiny_registry: str, capfd) -> None:  # noqa: ANN001
    env = ["--env-file", tiny_registry]
    code, out, err = _cli(capfd, *env, "promote", "1", "--force", "--reason", "first", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert (first["version"], first["previous_version"], first["forced"]) == ("1", None, True)
    assert first["audit"]["promotion_reason"] == "first"

    code, out, err = _cli(capfd, *env, "promote", "2", "--force", "--reason", "second")
    assert code == 0 and "= v2 (was v1)" in out, err

    # Rolling back to v1 (recorded test accuracy 0.5) is refused by the accuracy floor: exit 4, as JSON.
    code, out, err = _cli(capfd, *env, "rollback", "--json")
    assert code == ExitCode.GATE_REFUSED == json.loads(out)["exit_code"]
    assert "refused by the promotion.accuracy_floor gate" in json.loads(out)["error"]

    code, out, err = _cli(capfd, *env, "rollback", "--force", "--reason", "back", "--json")
    assert code == 0, err
    assert {key: json.loads(out)[key] for key in ("version", "previous_version")} == {"version": "1", "previous_version": "2"}

    code, text, _ = _cli(capfd, *env, "champion")
    code, out, err = _cli(capfd, *env, "champion", "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert f"= v{shown['version']}" in text and shown["run_id"] in text and shown["architecture"] in text
    assert [move["version"] for move in shown["history"]] == ["1", "2", "1"]


@pytest.mark.slow
def test_predict_json_for_texts_and_for_a_file(tiny_registry: str, tmp_path: Path, capfd) -> None:  # noqa: ANN001
    env = ["--env-file", tiny_registry, "predict", "--model-uri", "models:/tiny-sentiment/1"]
    code, out, err = _cli(capfd, *env, "--json", "good film", "bad film")
    assert code == 0, err
    assert [answer["text"] for answer in json.loads(out)] == ["good film", "bad film"]

    reviews = tmp_path / "reviews.txt"
    reviews.write_text("good film\nbad film\nfilm\n")
    code, out, err = _cli(capfd, *env, "--input", str(reviews), "--output", str(tmp_path / "scores.jsonl"), "--json")
    assert code == 0, err
    counted = json.loads(out)
    assert counted["reviews"] == 3 and counted["output"] == str(tmp_path / "scores.jsonl")
    assert len((tmp_path / "scores.jsonl").read_text().splitlines()) == 3
    # Without --output the scores themselves are on standard output: --json cannot be there too.
    code, out, err = _cli(capfd, *env, "--input", str(reviews), "--json")
    assert code == ExitCode.REFUSED and "--json with --input needs --output FILE" in json.loads(out)["error"]
