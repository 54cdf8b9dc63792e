"""`seqflow schedule` serves the pipeline's deployment with a cron schedule; a run triggered from it completes."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from seqflow.cli import DEFAULT_DEPLOYMENT_NAME, main
from seqflow.scheduling import ShutdownCancellationFilter
from seqflow.core.tracking import CHAMPION_ALIAS
from tests.flows.conftest import tracking_settings_for, write_env_file

REPO_ROOT = Path(__file__).resolve().parents[2]
CRON = "0 3 * * *"
# Registering the deployment needs the flow module (TensorFlow, Prefect) imported: slow on a busy machine.
SERVE_START_SECONDS = 300


def _prefect_yaml_deployment() -> dict:
    return yaml.safe_load((REPO_ROOT / "prefect.yaml").read_text())["deployments"][0]


def test_bad_cron_or_time_zone_is_refused_before_serving(capsys):
    assert main(["schedule", "--cron", "61 3 * * *"]) == 2
    assert "invalid cron expression '61 3 * * *'" in capsys.readouterr().err
    assert main(["schedule", "--cron", "0 3 * *"]) == 2
    assert "five fields" in capsys.readouterr().err
    assert main(["schedule", "--cron", CRON, "--timezone", "Mars/Olympus"]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    assert main(["schedule", "--cron", CRON, "--set", "training.nonsense=1"]) == 2
    assert "training.nonsense" in capsys.readouterr().err


def test_default_name_is_prefect_yaml_deployment():
    assert DEFAULT_DEPLOYMENT_NAME == _prefect_yaml_deployment()["name"]


def _asyncio_error_record(error: BaseException | None) -> logging.LogRecord:
    exc_info = (type(error), error, error.__traceback__) if error is not None else None
    return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, "Exception in callback %s", ("cb",), exc_info)


def test_shutdown_filter_drops_only_cancellations_caused_by_the_sigterm_exit():
    shutdown_filter = ShutdownCancellationFilter()
    try:
        try:
            raise SystemExit(0)
        except SystemExit:
            raise asyncio.CancelledError()
    except asyncio.CancelledError as error:
        cancelled_by_exit = error
    assert isinstance(cancelled_by_exit.__context__, SystemExit)
    assert not shutdown_filter.filter(_asyncio_error_record(cancelled_by_exit))

    try:
        try:
            raise ValueError("a real bug")
        except ValueError:
            raise asyncio.CancelledError()
    except asyncio.CancelledError as error:
        cancelled_otherwise = error
    assert shutdown_filter.filter(_asyncio_error_record(cancelled_otherwise))
    assert shutdown_filter.filter(_asyncio_error_record(asyncio.CancelledError()))
    assert shutdown_filter.filter(_asyncio_error_record(RuntimeError("Task was destroyed but it is pending")))
    assert shutdown_filter.filter(_asyncio_error_record(None))


@pytest.mark.slow
def test_served_schedule_matches_prefect_yaml_and_runs(prefect_api, tiny_overrides, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    settings = tracking_settings_for(tmp_path / "store")
    env_file = write_env_file(settings, tmp_path / "schedule.env")
    overrides = {**tiny_overrides, "training.architectures": "embedding_pool", "training.epochs": "1"}
    name = "served-test"
    command = [
        sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file),
        "schedule", "--cron", CRON, "--name", name, "--profile", "quick",
        *[argument for key, value in overrides.items() for argument in ("--set", f"{key}={value}")],
    ]
    environment = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    log_path = tmp_path / "schedule.log"
    with log_path.open("w") as log:
        # From the project root, like prefect.yaml's deployments: the entrypoint is relative to it.
        serving = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)

    async def read_deployment(deployment_name: str):
        from prefect.exceptions import ObjectNotFound

        async with get_client() as client:
            try:
                return await client.read_deployment_by_name(deployment_name)
            except ObjectNotFound:
                return None

    try:
        deadline = time.monotonic() + SERVE_START_SECONDS
        while (deployment := asyncio.run(read_deployment(f"seqflow-pipeline/{name}"))) is None:
            assert serving.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "deployment never appeared:\n" + log_path.read_text()[-3000:]
            time.sleep(2)

        # The same flow, entrypoint, schedule and parameters as prefect.yaml's deployment for work pools.
        described = _prefect_yaml_deployment()
        assert deployment.entrypoint == described["entrypoint"]
        assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
            (entry["cron"], entry["timezone"], entry["active"]) for entry in described["schedules"]
        ]
        assert set(deployment.parameters) == set(described["parameters"])
        assert deployment.parameters == {"profile": "quick", "overrides": overrides, "env_file": str(env_file)}
        assert "next runs: " in log_path.read_text()

        flow_run = run_deployment(f"seqflow-pipeline/{name}", timeout=900, poll_interval=3)
        assert flow_run.state.is_completed(), (flow_run.state, log_path.read_text()[-3000:])
        champion = MlflowClient(settings.tracking_uri).get_model_version_by_alias(
            settings.registered_model_name, CHAMPION_ALIAS
        )
        assert champion.tags["architecture"] == "embedding_pool"
    finally:
        serving.send_signal(signal.SIGTERM)
        returncode = serving.wait(timeout=120)
    output = log_path.read_text()
    assert returncode == 0, output[-3000:]
    assert "Traceback" not in output and "stopped serving" in output, output[-3000:]
