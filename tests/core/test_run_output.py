"""The run's output options and its refusals before anything starts (the displays themselves:
tests/system/test_run_output.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seqflow.core import progress
from seqflow.core.run_output import take_output_options

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "rest", "level"),
    [
        (["run", "--profile", "quick"], ["run", "--profile", "quick"], None),
        (["-q", "run"], ["run"], logging.ERROR),
        (["run", "-v", "--arch", "lstm"], ["run", "--arch", "lstm"], logging.INFO),
        (["charlm", "run", "-vv"], ["charlm", "run"], logging.DEBUG),
        (["--log-level", "debug", "run", "--log-level=ERROR"], ["run"], logging.ERROR),
        # After "--" everything is an argument; an unknown level stays for the parser to refuse.
        (["predict", "--", "-v"], ["predict", "--", "-v"], None),
        (["run", "--log-level", "LOUD"], ["run", "--log-level", "LOUD"], None),
    ],
)
def test_output_options_are_taken_anywhere(argv, rest, level):
    assert take_output_options(argv) == (rest, level)


def test_verbose_after_the_subcommand_is_accepted(capsys):
    from seqflow.cli import main

    assert main(["profiles", "-v"]) == 0
    assert main(["-q", "profiles"]) == 0
    assert "quick" in capsys.readouterr().out


def test_missing_source_is_refused_at_once_without_a_server(tmp_path):
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PREFECT_API", "MLFLOW_"))}
    environment |= {"PYTHONPATH": str(REPO), "SEQFLOW_ARTIFACTS_DIR": str(tmp_path / "artifacts")}

    def seqflow(*args: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "seqflow.cli", *args], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=60)
        return done, time.monotonic() - started

    done, elapsed = seqflow("run", "--source", f"csv:{tmp_path / 'missing.csv'}")
    assert done.returncode == 2 and done.stderr.strip() == f"seqflow: error: csv file '{tmp_path / 'missing.csv'}' does not exist"
    # Under 5 s; on a machine so busy that the CLI's own start-up (a command that starts nothing) takes longer,
    # no more than that start-up and 2 s: a Prefect server alone takes 10-20 s to start.
    _, startup = seqflow("profiles")
    assert elapsed < 5 or elapsed < startup + 2, f"refused after {elapsed:.1f} s (start-up {startup:.1f} s)"
    # Nothing started: no Prefect server (it would say so), no run output (its log folder).
    assert "server" not in done.stdout + done.stderr and not (tmp_path / "artifacts").exists()


def test_plain_reporter_says_one_line_per_architecture_and_step(tmp_path):
    with (tmp_path / "out.txt").open("w+") as stream:
        reporter = progress.PlainReporter(stream)
        reporter.plan(["gru"])
        reporter.step("download", "ran", "10 reviews")
        reporter.training_started("gru", 5)
        for epoch, val_loss in enumerate([0.7, 0.5, 0.6], start=1):
            reporter.epoch_ended("gru", epoch, {"loss": 0.1, "val_loss": val_loss})
        reporter.stopped_early("gru", 3)
        reporter.training_finished("gru")
        reporter.step("train-gru", "ran")
        stream.seek(0)
        lines = [line.split(" ", 1)[1] for line in stream.read().splitlines()]
    assert lines[:2] == ["training 1 architecture(s): gru", "download: ran: 10 reviews"]
    assert lines[2].startswith("[1/1] gru: 3/5 epochs, best val_loss 0.5000 at epoch 2; early stopping after epoch 3 (")
    assert len(lines) == 3


def test_a_cached_training_counts_as_a_finished_architecture(tmp_path):
    with (tmp_path / "out.txt").open("w+") as stream:
        reporter = progress.PlainReporter(stream)
        reporter.plan(["gru", "lstm"])
        reporter.step("train-gru", "cached")
        reporter.step("evaluate-gru", "cached")
        stream.seek(0)
        lines = [line.split(" ", 1)[1] for line in stream.read().splitlines()]
    assert lines[1:] == [f"[1/2] gru: {progress.CACHED_TRAINING}"]
