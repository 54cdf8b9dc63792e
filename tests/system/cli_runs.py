"""``seqflow run`` as a user starts it: a separate process on the tiny data, its printed links read back."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from tests.flows.conftest import tiny_overrides_for, tracking_settings_for, write_env_file

REPO = Path(__file__).resolve().parents[2]
# The tiny run takes about a minute on an idle 2-core machine; a busy one needs far longer.
RUN_TIMEOUT_S = 600


def cli_run_argv(folder: Path, reviews_csv: Path, *extra: str) -> list[str]:
    """``python -m seqflow.cli run`` with the tiny settings, into a SQLite store and artifacts under ``folder``."""
    settings = tracking_settings_for(folder)
    env_file = write_env_file(settings, folder / "mlflow.env")
    with env_file.open("a") as handle:
        handle.write(f"SEQFLOW_ARTIFACT_LOCATION={(folder / 'mlartifacts').as_uri()}\n")
    argv = [sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file), "run"]
    for key, value in tiny_overrides_for(folder, reviews_csv).items():
        argv += ["--set", f"{key}={value}"]
    return [*argv, *extra]


def cli_environment(**extra: str) -> dict[str, str]:
    """This environment without MLflow settings, with the session's Prefect test server (no temporary one)."""
    from prefect.settings import PREFECT_API_URL

    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "PREFECT_API"))}
    return environment | {"PYTHONPATH": str(REPO), "PREFECT_API_URL": str(PREFECT_API_URL.value()), **extra}


def printed_link(output: str, name: str) -> str:
    """The link a run printed on its ``name:`` line under the table."""
    match = re.search(rf"^{re.escape(name)}:\s+(\S+)$", output, re.MULTILINE)
    assert match, f"no {name!r} line in:\n{output}"
    return match.group(1)
