"""`seqflow charlm run --runner dask`: the character models fan out on Dask workers like the sentiment ones
(tests/system/test_dask_runner.py), through the same runner code (seqflow.core.execution.run_flow_on)."""

from __future__ import annotations

import os
import re

import pytest
from mlflow import MlflowClient

from seqflow.cli import build_parser, resolve_execution
from seqflow.core.config import ExecutionConfig
from seqflow.core.errors import ConfigError
from seqflow.core.processes import PID_TAG
from seqflow.core.tracking import CHAMPION_ALIAS, ROLE_TAG


def test_charlm_run_takes_the_runner_flags():
    execution = resolve_execution(build_parser().parse_args(["charlm", "run", "--runner", "dask", "--workers", "3"]))
    assert execution == ExecutionConfig(runner="dask", workers=3)
    with pytest.raises(ConfigError, match=re.escape("--workers must be at least 1")):
        resolve_execution(build_parser().parse_args(["charlm", "run", "--runner", "dask", "--workers", "0"]))


# Extended (SEQFLOW_EXTENDED_TESTS=1): the fan-out itself is the shared runner (seqflow.core.execution) that
# tests/system/test_dask_runner.py trains through in CI; this one adds the character tasks on workers.
@pytest.mark.slow
@pytest.mark.extended
def test_local_dask_cluster_trains_the_character_models_on_workers(prefect_api, tiny_charlm_config, charlm_tracking_settings):
    from seqflow.flows.charlm import run_charlm_flow

    settings = charlm_tracking_settings
    summary = run_charlm_flow(tiny_charlm_config(), settings, ExecutionConfig(runner="dask", workers=2))

    client = MlflowClient(settings.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name(settings.experiment_name).experiment_id])
    [parent] = [run for run in runs if run.data.tags.get(ROLE_TAG) == "charlm-pipeline"]
    children = {run.data.tags["architecture"]: run for run in runs if run.data.tags.get(ROLE_TAG) == "charlm-architecture"}
    assert sorted(children) == ["char_gru", "char_lstm"] and {run.info.status for run in runs} == {"FINISHED"}
    # The parent run is this process's; every training ran in a Dask worker process.
    assert parent.data.tags[PID_TAG] == str(os.getpid())
    assert all(child.data.tags[PID_TAG] != str(os.getpid()) for child in children.values())
    for child in children.values():
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["seqflow.prefect_flow_run_id"] == parent.data.tags["seqflow.prefect_flow_run_id"]
        assert [point.step for point in client.get_metric_history(child.info.run_id, "val_loss")] == [1, 2]

    champion = client.get_model_version_by_alias(settings.registered_model_name, CHAMPION_ALIAS)
    best = min(summary.rows, key=lambda row: row.val_perplexity)
    assert champion.tags["architecture"] == best.architecture and summary.champion_version == str(champion.version)
