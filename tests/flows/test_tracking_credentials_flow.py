"""`seqflow run` with a password in MLFLOW_TRACKING_URI and no server behind it (issue 23, items 1 and 10): the
password reaches neither the terminal nor Prefect's database (flow-run parameters, stored logs)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from seqflow.cli import main

PASSWORD = "S3cr3tPw"


@pytest.mark.slow
def test_run_against_an_unreachable_server_keeps_the_password_out_of_prefect_and_the_output(
    prefect_api, tiny_overrides: dict[str, str], tmp_path: Path, capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(name, raising=False)  # opening the store exports them; undone after the test
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    env_file = tmp_path / "team.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI=http://alice:{PASSWORD}@127.0.0.1:{port}\nMLFLOW_EXPERIMENT_NAME=creds\n")
    assignments = [item for key, value in tiny_overrides.items() for item in ("--set", f"{key}={value}")]

    code = main(["--log-level", "DEBUG", "--env-file", str(env_file), "run", *assignments])
    APILogWorker.drain_all(timeout=30)  # logs reach Prefect's database in the background
    out, err = capfd.readouterr()

    assert code == 2, err[-3000:]
    assert PASSWORD not in out + err, (out + err)[-3000:]
    # Neither the failed task nor the failed-flow hook (which cannot reach the store either) adds a traceback.
    assert "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith(
        f"seqflow: error: cannot reach MLflow tracking server 'http://127.0.0.1:{port}' ("
    ), err[-3000:]
    with get_client(sync_client=True) as client:
        runs = [
            run for run in client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["seqflow-run"])))
            if run.parameters.get("settings", {}).get("tracking_uri") == f"http://127.0.0.1:{port}"
        ]
        assert len(runs) == 1
        assert PASSWORD not in json.dumps(runs[0].parameters)
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
    # The failed start-tracking task is logged (with its message) to Prefect's database, without the password.
    assert any("cannot reach MLflow tracking server" in log.message for log in logs), [log.message for log in logs]
    assert not [log.message for log in logs if PASSWORD in log.message]
