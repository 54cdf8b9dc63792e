"""Credentials in MLFLOW_TRACKING_URI, an unreachable tracking server and a damaged env file (issue 23, items 1,
10 and 15).

A password written into the tracking URI must never show up where a URI is shown, logged, hashed or stored
(the error line, log output, Prefect's flow-run parameters, the cache key and its ledger), yet still reach
MLflow's client. The tracking servers here are real sockets on 127.0.0.1: a closed port, and a small HTTP server
that answers MLflow's REST calls only with the right Basic credentials.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from seqflow.cli import main
from seqflow.sentiment.profiles import get_profile
from seqflow.core import caching
from seqflow.core.connection import StoreUnreachable, prepare_connection, with_known_credentials
from seqflow.core.errors import ConfigError
from seqflow.core.settings import TrackingSettings, load_settings, redact_credentials

PASSWORD = "S3cr3tPw"
CREDENTIAL_VARIABLES = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


@pytest.fixture(autouse=True)
def _credentials_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a tracking server exports its credentials to this process's environment; undo it afterwards."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_file_for(folder: Path, uri: str) -> Path:
    path = folder / "team.env"
    path.write_text(f"MLFLOW_TRACKING_URI={uri}\nMLFLOW_EXPERIMENT_NAME=creds\nSEQFLOW_REGISTERED_MODEL_NAME=creds-model\n")
    return path


# --- item 1: the password stays out of every serialisation -----------------------------------------------------


def test_the_password_leaves_the_uri_and_is_in_no_dump_or_repr(tmp_path: Path) -> None:
    settings = load_settings(env_file_for(tmp_path, f"http://alice:{PASSWORD}@mlflow.internal:5000"), environ={})
    assert settings.tracking_uri == "http://mlflow.internal:5000"
    assert (settings.tracking_username, settings.tracking_password.get_secret_value()) == ("alice", PASSWORD)
    for shown in (repr(settings), str(settings), settings.model_dump_json(), json.dumps(settings.model_dump())):
        assert PASSWORD not in shown and "alice" not in shown, shown
    assert settings.credential_environment() == {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD}
    assert settings.connection_uri() == "http://mlflow.internal:5000"


def test_explicit_credential_variables_win_and_percent_escapes_are_decoded(tmp_path: Path) -> None:
    env_file = env_file_for(tmp_path, "https://alice:p%40ss@mlflow.internal")
    assert load_settings(env_file, environ={}).tracking_password.get_secret_value() == "p@ss"
    settings = load_settings(env_file, environ={"MLFLOW_TRACKING_USERNAME": "bob", "MLFLOW_TRACKING_PASSWORD": "other"})
    assert (settings.tracking_uri, settings.tracking_username) == ("https://mlflow.internal", "bob")
    assert settings.tracking_password.get_secret_value() == "other"


def test_a_database_url_gets_its_password_back_only_to_connect() -> None:
    """A database driver reads credentials only from its URL; MLflow's MLFLOW_TRACKING_* do not apply there."""
    settings = TrackingSettings(tracking_uri=f"postgresql+psycopg2://bob:{PASSWORD}@db:5432/mlflow")
    assert settings.tracking_uri == "postgresql+psycopg2://db:5432/mlflow"
    assert settings.connection_uri() == f"postgresql+psycopg2://bob:{PASSWORD}@db:5432/mlflow"
    assert settings.credential_environment() == {}
    # A Prefect hook rebuilds the settings from the flow-run parameters, which lack the password: the process
    # that opened the store gives it back.
    prepare_connection(settings)
    from_parameters = TrackingSettings(**json.loads(settings.model_dump_json()))
    assert from_parameters.tracking_password is None
    assert with_known_credentials(from_parameters).connection_uri() == settings.connection_uri()


@pytest.mark.parametrize("flow_name", ["sentiment", "charlm"])
def test_prefect_flow_run_parameters_hold_no_password(flow_name: str) -> None:
    """What Prefect stores as the flow run's parameters (``Flow.serialize_parameters``, the payload of
    ``create_flow_run``) has no credentials, while the flow function itself still receives them."""
    from seqflow.charlm.config import get_charlm_profile
    from seqflow.flows.charlm import charlm_flow
    from seqflow.flows.sentiment import sentiment_flow

    if flow_name == "sentiment":
        flow, config = sentiment_flow, get_profile("quick")
    else:
        flow, config = charlm_flow, get_charlm_profile("quick")
    settings = TrackingSettings(tracking_uri=f"http://alice:{PASSWORD}@127.0.0.1:5000")
    stored = flow.serialize_parameters({"config": config, "settings": settings})
    assert PASSWORD not in json.dumps(stored)
    assert stored["settings"]["tracking_uri"] == "http://127.0.0.1:5000"
    received = flow.validate_parameters({"config": config, "settings": settings})["settings"]
    assert received.tracking_password.get_secret_value() == PASSWORD


def test_cache_key_and_ledger_parts_hold_no_password() -> None:
    """The ledger file stores ``KeyParts.as_dict()``; the key is its hash. Neither may depend on the password."""
    def evaluate_parts(uri: str) -> caching.KeyParts:
        inputs = {
            "settings": TrackingSettings(tracking_uri=uri),
            "trained": SimpleNamespace(architecture="lstm", run_id="r1"),
            "tokenised": SimpleNamespace(array_digest="d1"),
            "batch_size": 32,
            "behaviour": get_profile("quick").behaviour,
        }
        from seqflow.tasks.sentiment import evaluate

        return caching.key_parts(evaluate, inputs)

    with_password = evaluate_parts(f"http://alice:{PASSWORD}@127.0.0.1:5000")
    assert PASSWORD not in json.dumps(with_password.as_dict())
    assert with_password.inputs["MLflow store"].startswith("http://127.0.0.1:5000 |")
    assert with_password.key() == evaluate_parts("http://bob:another@127.0.0.1:5000").key()


def test_redaction_blanks_userinfo_of_every_url_in_a_message() -> None:
    message = f"API request to http://alice:{PASSWORD}@h:1/api failed; postgresql://bob:p@ss@db/x; see http://h/x"
    assert redact_credentials(message) == "API request to http://***@h:1/api failed; postgresql://***@db/x; see http://h/x"


# --- items 1 and 10 at the command line: an unreachable server ----------------------------------------------------


def test_champion_against_an_unreachable_server_is_one_line_without_the_password_in_seconds(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """MLflow's own retries took ~250 s here, and the error line and DEBUG log showed the password."""
    import mlflow  # noqa: F401 - imported before the clock starts: the bound is on the hang, not on imports

    port = closed_port()
    env_file = env_file_for(tmp_path, f"http://alice:{PASSWORD}@127.0.0.1:{port}")
    started = time.monotonic()
    code = main(["--log-level", "DEBUG", "--env-file", str(env_file), "champion"])
    elapsed = time.monotonic() - started
    out, err = capfd.readouterr()
    assert code == 2, err[-3000:]
    assert PASSWORD not in out + err and "alice:" not in out + err, (out + err)[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("seqflow: error:")]
    assert errors == [
        f"seqflow: error: cannot reach MLflow tracking server 'http://127.0.0.1:{port}' ([Errno 111] Connection refused; "
        "3 attempt(s), 5 s each to connect): check MLFLOW_TRACKING_URI and that the server runs, or raise "
        "SEQFLOW_TRACKING_CONNECT_RETRIES / SEQFLOW_TRACKING_CONNECT_TIMEOUT for a slow network"
    ], err[-3000:]
    assert "Traceback" not in err
    assert elapsed < 30, elapsed


def test_connect_retries_and_timeout_come_from_the_env_file_and_are_checked(tmp_path: Path) -> None:
    env_file = env_file_for(tmp_path, "http://127.0.0.1:5000")
    with env_file.open("a") as handle:
        handle.write("SEQFLOW_TRACKING_CONNECT_RETRIES=6\nSEQFLOW_TRACKING_CONNECT_TIMEOUT=30\n")
    settings = load_settings(env_file, environ={})
    assert (settings.connect_retries, settings.connect_timeout_s) == (6, 30.0)
    too_many = r"SEQFLOW_TRACKING_CONNECT_RETRIES in the environment: .*less than or equal to 10"
    with pytest.raises(ConfigError, match=too_many):
        load_settings(env_file, environ={"SEQFLOW_TRACKING_CONNECT_RETRIES": "99"})
    env_file.write_text("SEQFLOW_TRACKING_CONNECT_TIMEOUT=nan\n")
    with pytest.raises(ConfigError, match=r"SEQFLOW_TRACKING_CONNECT_TIMEOUT in env file .*team.env"):
        load_settings(env_file, environ={})


# --- item 1: the credentials still reach MLflow ------------------------------------------------------------------


class _BasicAuthMlflow(BaseHTTPRequestHandler):
    """Answers MLflow's get-experiment-by-name with experiment 1, only for alice's Basic credentials."""

    expected = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    seen: list[tuple[str, str | None]] = []
    # Seconds before each answer: a busy or freshly started server.
    delay_s = 0.0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append((self.requestline, self.headers.get("Authorization")))
        time.sleep(self.delay_s)
        if self.headers.get("Authorization") != self.expected:
            self._reply(401, {"error_code": "UNAUTHENTICATED", "message": "You are not authenticated."})
        elif self.path.startswith("/api/2.0/mlflow/experiments/get-by-name"):
            experiment = {"experiment_id": "1", "name": "creds", "artifact_location": "mlflow-artifacts:/1",
                          "lifecycle_stage": "active"}
            self._reply(200, {"experiment": experiment})
        else:
            self._reply(404, {"error_code": "ENDPOINT_NOT_FOUND", "message": self.path})

    def _reply(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def basic_auth_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BasicAuthMlflow)
    _BasicAuthMlflow.seen, _BasicAuthMlflow.delay_s = [], 0.0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_credentials_from_the_uri_reach_mlflow_as_its_environment_variables(basic_auth_server: str) -> None:
    import os

    from seqflow.core.tracking import Tracker

    tracker = Tracker(TrackingSettings(tracking_uri=f"http://alice:{PASSWORD}@{basic_auth_server}", experiment_name="creds"))
    assert tracker.experiment_id == "1"
    assert {name: os.environ.get(name) for name in CREDENTIAL_VARIABLES} == {
        "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": PASSWORD,
    }
    assert _BasicAuthMlflow.seen and all(auth == _BasicAuthMlflow.expected for _, auth in _BasicAuthMlflow.seen)
    assert not any(PASSWORD in line for line, _ in _BasicAuthMlflow.seen)


def test_a_server_slow_to_answer_is_not_taken_for_an_unreachable_one(basic_auth_server: str) -> None:
    """Only connecting is bounded by connect_timeout_s: a freshly started `mlflow server` took 11-16 s for its
    first answer on the 2-core machine."""
    from seqflow.core.tracking import Tracker

    _BasicAuthMlflow.delay_s = 1.0
    settings = TrackingSettings(
        tracking_uri=f"http://alice:{PASSWORD}@{basic_auth_server}", experiment_name="creds",
        connect_retries=0, connect_timeout_s=0.2,
    )
    assert Tracker(settings).experiment_id == "1"


def test_wrong_credentials_are_one_clear_error_without_the_password(basic_auth_server: str) -> None:
    from seqflow.core.tracking import Tracker

    with pytest.raises(StoreUnreachable) as refused:
        Tracker(TrackingSettings(tracking_uri=f"http://alice:wrong{PASSWORD}@{basic_auth_server}", experiment_name="creds"))
    assert str(refused.value) == (
        f"MLflow tracking server 'http://{basic_auth_server}' refused the request with user 'alice' (HTTP 401): "
        "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD in mlflow.env or the environment"
    )


# --- item 15: an env file that is not UTF-8 ----------------------------------------------------------------------


@pytest.mark.parametrize("given", ["--env-file", "./mlflow.env"])
def test_non_utf8_env_file_is_one_line_naming_file_and_byte(
    given: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow.env").write_bytes("MLFLOW_EXPERIMENT_NAME=caf\u00e9\n".encode("latin-1"))
    code = main(["--env-file", "mlflow.env", "profiles"] if given == "--env-file" else ["profiles"])
    err = capfd.readouterr().err
    assert code == 2, err[-3000:]
    assert err.strip() == (
        "seqflow: error: env file 'mlflow.env' is not valid UTF-8 (byte 26, line 1: invalid continuation byte); "
        "save it as UTF-8 text with KEY=VALUE lines (mlflow.env shows every key), or pass another --env-file"
    ), err[-3000:]



def test_credentials_meant_for_a_server_stay_out_of_a_sqlite_url() -> None:
    # MLFLOW_TRACKING_USERNAME/PASSWORD left in the environment by another store must not turn a SQLite path
    # into an invalid URL with userinfo (sqlite://alice:...@//path).
    from pydantic import SecretStr

    settings = TrackingSettings(
        tracking_uri="sqlite:////tmp/store/mlflow.db", tracking_username="alice", tracking_password=SecretStr(PASSWORD)
    )
    assert settings.connection_uri() == "sqlite:////tmp/store/mlflow.db"
