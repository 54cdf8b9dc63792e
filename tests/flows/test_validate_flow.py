"""The validate flow on a real Prefect server (one per session)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqflow.core.errors import ContractViolation


def test_validate_flow_summarises_real_reviews(prefect_api, tiny_config):
    from seqflow.flows.validate import validate_flow

    summary = validate_flow(tiny_config())
    assert sum(summary.rows.values()) == 400
    assert summary.max_length == 64 and summary.padding == "post"
    assert all(0.0 <= rate < 0.35 for rate in summary.oov_rate.values())
    assert all("passed" in line for line in summary.contract_lines)
    assert all(path.is_file() for path in summary.contract_results_paths)
    rendered = summary.render()
    assert "rows" in rendered and "OOV rate" in rendered and "raw_reviews" in rendered


def test_validate_flow_stops_on_a_broken_label(prefect_api, tiny_config, tmp_path, short_reviews):
    from seqflow.flows.validate import validate_flow

    broken = short_reviews.copy()
    broken.loc[broken.index[:10], "label"] = 2
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    with pytest.raises(ContractViolation) as failure:
        validate_flow(tiny_config(**{"data.source": f"csv:{path}"}))
    message = str(failure.value)
    assert "raw_reviews" in message and "expect_column_values_to_be_in_set" in message
    assert "'label'" in message and "e.g. [2" in message
    # Nothing was tokenised: the flow stopped at the raw contract.
    assert not (tmp_path / "artifacts" / "tokenised").exists()


def test_cli_validate_bad_csv_exits_nonzero_without_traceback(prefect_api, tmp_path, short_reviews):
    import os
    import subprocess
    import sys

    from prefect.settings import PREFECT_API_URL

    broken = short_reviews.copy()
    broken.loc[broken.index[0], "text"] = ""
    broken.loc[broken.index[1], "label"] = 2
    path = tmp_path / "broken.csv"
    broken.to_csv(path, index=False)
    result = subprocess.run(
        [sys.executable, "-m", "seqflow.cli", "validate", "--source", f"csv:{path}", "--set", "contracts.max_oov_rate=0.5"],
        # The session's Prefect server: a temporary one per process may not start in time on a busy CI machine.
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
    )
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "data contract 'raw_reviews' failed" in result.stderr
    assert "column 'label'" in result.stderr and "column 'text'" in result.stderr


def test_cli_validate_json_is_the_summary(prefect_api, tiny_overrides, tmp_path, capsys):
    from seqflow.cli import main

    env_file = tmp_path / "validate.env"
    env_file.write_text(f"MLFLOW_TRACKING_URI=sqlite:///{tmp_path / 'mlflow.db'}\n")
    capsys.readouterr()
    code = main(["--env-file", str(env_file), "validate", "--json", *(f"--set={key}={value}" for key, value in tiny_overrides.items())])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-3000:]
    summary = json.loads(captured.out)
    assert sum(summary["rows"].values()) == 400 and summary["max_length"] == 64
    assert all("passed" in line for line in summary["contract_lines"])
    assert all(Path(path).is_file() for path in summary["contract_results_paths"])
