"""What a user sees of ``seqflow run``: off a terminal a few plain lines, the table and the links, no library
noise; under a pseudo-terminal the live display; everything in the run's log file, in MLflow and in Prefect.

One tiny run (two architectures, two epochs) off a terminal is shared by the module; the terminal run trains
one epoch of one architecture on the same store, so its data steps come from the cache and only that training runs.
"""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from tests.system.cli_runs import RUN_TIMEOUT_S, cli_environment, cli_run_argv, printed_link

pytestmark = pytest.mark.slow

# What must never reach the terminal: library warnings, TensorFlow's C++ lines and banner, tracebacks.
NOISE = re.compile(r"Warning|WARNING|warn\(|[EWI]0000|oneDNN|absl|cuda|Traceback|Finished in state|Downloading artifacts")
ARCHITECTURES = ("embedding_pool", "lstm")


@dataclass(frozen=True)
class CliRun:
    output: str
    returncode: int
    folder: Path


@pytest.fixture(scope="module")
def store(tmp_path_factory, short_reviews) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("run-output")
    reviews_csv = folder / "short_reviews.csv"
    short_reviews.to_csv(reviews_csv, index=False)
    return folder, reviews_csv


@pytest.fixture(scope="module")
def plain_run(prefect_api, store) -> CliRun:
    """The module's tiny run, its output on pipes (not a terminal), standard output and error together."""
    folder, reviews_csv = store
    done = subprocess.run(
        cli_run_argv(folder, reviews_csv), cwd=folder, env=cli_environment(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT_S,
    )
    return CliRun(done.stdout, done.returncode, folder)


def test_plain_output_is_short_with_no_library_noise(plain_run):
    assert plain_run.returncode == 0, plain_run.output
    lines = plain_run.output.splitlines()
    assert len(lines) <= 40, plain_run.output
    assert not [line for line in lines if NOISE.search(line)], plain_run.output
    # One line per data step and per architecture, then the table and the links.
    for step in ("download: ran", "check_raw: ran", "tokenise: ran", "check_tokenised: ran", "register: ran"):
        assert sum(step in line for line in lines) == 1, plain_run.output
    for index, architecture in enumerate(ARCHITECTURES, start=1):
        assert sum(f"[{index}/2] {architecture}: 2/2 epochs, best val_loss" in line for line in lines) == 1
    assert lines.index(next(line for line in lines if line.startswith("architecture "))) > 5
    for name in ("MLflow run", "val_loss", "overlay", "Prefect", "log"):
        printed_link(plain_run.output, name)


def test_log_file_has_everything_and_is_on_the_parent_run(plain_run):
    from mlflow import MlflowClient

    log_path = Path(printed_link(plain_run.output, "log"))
    log = log_path.read_text()
    for architecture in ARCHITECTURES:
        assert f"training {architecture}: epoch 1/2: " in log and f"training {architecture}: epoch 2/2: " in log
    # Library lines too: Prefect's state changes, MLflow's and Keras/TensorFlow's own records.
    assert "Finished in state Completed" in log
    assert re.search(r" (mlflow|prefect)[.\w]*: ", log)
    # ... but not the ~200 lines Great Expectations logs about its own docs, nor MLflow's hint about the int
    # label column of every dataset input.
    assert "great_expectations._docs_decorators" not in log and "Inferred schema contains integer" not in log
    client = MlflowClient(f"sqlite:///{plain_run.folder / 'mlflow.db'}")
    parent_run_id = printed_link(plain_run.output, "MLflow run").rsplit("/", 1)[1]
    assert [item.path for item in client.list_artifacts(parent_run_id, "logs")] == [f"logs/{log_path.name}"]
    description = client.get_run(parent_run_id).data.tags["mlflow.note.content"]
    assert printed_link(plain_run.output, "val_loss") in description and "architecture " in description


def test_predict_prints_its_scores_and_nothing_of_the_libraries(plain_run):
    assert plain_run.returncode == 0, plain_run.output
    done = subprocess.run(
        [sys.executable, "-m", "seqflow.cli", "--env-file", str(plain_run.folder / "mlflow.env"), "predict",
         "A wonderful, moving film.", "Dull and far too long."],
        cwd=plain_run.folder, env=cli_environment(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # TensorFlow's banner and C++ lines are printed while the model loads: they belong in the log file.
    assert not NOISE.search(done.stderr) and not NOISE.search(done.stdout), done.stdout + done.stderr
    assert [re.match(r"\d\.\d{3}  (positive|negative)", line) is not None for line in done.stdout.splitlines()] == [True, True]
    logs = list((plain_run.folder / "seqflow_artifacts" / "logs").glob("predict-*.log"))
    assert len(logs) == 1, logs


def test_prefect_flow_run_is_named_tagged_and_has_seqflow_logs(plain_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    flow_run_id = printed_link(plain_run.output, "Prefect").rsplit("/", 1)[1]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(flow_run_id))
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        artifacts = client.read_artifacts()
    assert re.fullmatch(r"seqflow-run-quick-\d{8}-\d{6}", flow_run.name)
    assert {"seqflow", "profile:quick", "arch:embedding_pool", "arch:lstm"} <= set(flow_run.tags)
    assert any(log.name.startswith("seqflow.") and "epoch 2/2" in log.message for log in logs)
    assert any(artifact.key == "execution-links" and str(artifact.flow_run_id) == flow_run_id for artifact in artifacts)


def _run_under_pty(argv: list[str], folder: Path) -> tuple[str, int]:
    """``argv`` with a pseudo-terminal as its standard input, output and error; all it wrote, and its status."""
    master, slave = pty.openpty()
    process = subprocess.Popen(
        argv, cwd=folder, env=cli_environment(COLUMNS="150", LINES="40", TERM="xterm-256color"),
        stdin=slave, stdout=slave, stderr=slave, close_fds=True,
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif process.poll() is not None:
            break
    os.close(master)
    return b"".join(chunks).decode("utf-8", "replace"), process.wait(timeout=60)


def test_terminal_shows_the_live_display_and_ends_with_the_table(plain_run, store):
    folder, reviews_csv = store
    # The data steps come from the module run's cache; the cheapest architecture trains one epoch.
    argv = cli_run_argv(folder, reviews_csv, "--set", "training.epochs=1", "--set", "training.architectures=embedding_pool")
    output, returncode = _run_under_pty(argv, folder)
    assert returncode == 0, output
    # rich's live display: the cursor hidden while it draws, the bars, the finished steps above it.
    assert "\x1b[?25l" in output, output
    assert "architectures" in output and "embedding_pool epochs" in output, output
    assert "✓ download: cached" in output and "✓ [1/1] embedding_pool: 1/1 epochs" in output, output
    # It ends (the cursor shown again) before the table, which closes the output with the links.
    table = output.rindex("architecture     epochs")
    assert output.rindex("\x1b[?25h") < table
    assert "log:" in output[table:] and not NOISE.search(output), output
