"""prefect.yaml deploys to a process work pool, and a worker runs the deployment to completion."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from seqflow.core.tracking import CHAMPION_ALIAS

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
WORK_POOL = "seqflow-process"
DEPLOYMENT = "seqflow-pipeline/nightly"


def _prefect(args: list[str], api_url: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    prefect = Path(sys.executable).with_name("prefect")
    return subprocess.run(
        [str(prefect), "--no-prompt", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_scheduled_pipeline_resolves_profile_and_overrides_like_the_cli(prefect_api, tiny_overrides, tmp_path):
    """The deployment's entry flow, called directly, reads its env file and trains what the overrides say."""
    from seqflow.flows.deployment import scheduled_pipeline

    env_file = tmp_path / "direct.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path / 'direct.db'}\nMLFLOW_EXPERIMENT_NAME=direct\n"
        "SEQFLOW_REGISTERED_MODEL_NAME=direct-model\n"
    )
    summary = scheduled_pipeline(
        profile="quick", overrides={**tiny_overrides, "training.architectures": "embedding_pool"}, env_file=str(env_file)
    )
    assert [row.architecture for row in summary.rows] == ["embedding_pool"]
    assert summary.experiment_name == "direct" and summary.registered_model_name == "direct-model"


# Extended (SEQFLOW_EXTENDED_TESTS=1): a work pool, `prefect deploy` and a worker process cost CI minutes it does not
# have; the deployment's entry flow (above) and a served schedule (tests/system/test_schedule.py) run in CI.
@pytest.mark.extended
def test_process_work_pool_runs_the_deployment(prefect_api, tiny_overrides, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()
    created = _prefect(["work-pool", "create", WORK_POOL, "--type", "process", "--overwrite"], api_url)
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = _prefect(["deploy", "--all", "--prefect-file", str(REPO_ROOT / "prefect.yaml")], api_url)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    async def read_deployment():
        async with get_client() as client:
            return await client.read_deployment_by_name(DEPLOYMENT)

    deployment = asyncio.run(read_deployment())
    assert deployment.work_pool_name == WORK_POOL
    assert deployment.entrypoint == "flows/deployment.py:scheduled_pipeline"
    assert [schedule.schedule.cron for schedule in deployment.schedules] == ["0 3 * * *"]

    tracking_uri = f"sqlite:///{tmp_path / 'deployed.db'}"
    env_file = tmp_path / "deployed.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={tracking_uri}\nMLFLOW_EXPERIMENT_NAME=deployed\n"
        "SEQFLOW_REGISTERED_MODEL_NAME=deployed-model\n"
    )
    # One architecture for one epoch proves the worker runs the deployment end to end (training, registration,
    # champion); more training only costs CI minutes.
    overrides = {**tiny_overrides, "training.architectures": "embedding_pool", "training.epochs": "1"}
    parameters = {"profile": "quick", "overrides": overrides, "env_file": str(env_file)}
    triggered = _prefect(["deployment", "run", DEPLOYMENT, "--params", json.dumps(parameters)], api_url)
    assert triggered.returncode == 0, triggered.stdout + triggered.stderr
    # One polling round: the worker picks up the run that is due now and waits for it to finish.
    worker = _prefect(["worker", "start", "--pool", WORK_POOL, "--run-once"], api_url, timeout=900)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]

    async def read_runs():
        async with get_client() as client:
            from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
            from prefect.client.schemas.sorting import FlowRunSort

            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=50,
            )

    finished = [run for run in asyncio.run(read_runs()) if run.state and run.state.is_final()]
    assert [run.state.type.value for run in finished] == ["COMPLETED"], [run.state for run in finished]

    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias("deployed-model", CHAMPION_ALIAS)
    assert champion.tags["architecture"] == "embedding_pool"
