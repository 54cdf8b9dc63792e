"""The unchanged pipeline against a shared ``mlflow server`` on a real PostgreSQL, with artifacts served by it.

The test makes a throwaway PostgreSQL cluster (Debian's ``postgresql`` binaries, TCP on 127.0.0.1 only, password
auth, a free port, a temporary data folder), starts ``mlflow server --serve-artifacts`` on it, runs the tiny
pipeline and checks what the server holds through its REST API with plain HTTP, what PostgreSQL holds with SQL,
and that a fresh process loads and scores the champion through the server.

Without PostgreSQL's server binaries the test is skipped (install them with ``apt-get install postgresql``);
``.ci/run`` installs them and sets ``SEQFLOW_REQUIRE_POSTGRES=1``, which turns that skip into a failure.
"""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from seqflow.core.settings import TrackingSettings
from seqflow.core.tracking import CHAMPION_ALIAS, ROLE_TAG
from tests.system.mlflow_server import free_port, log_tail, running_mlflow_server

pytestmark = pytest.mark.slow

REQUIRE_ENV = "SEQFLOW_REQUIRE_POSTGRES"
INSTALL_HINT = "install them with `apt-get install postgresql` (Debian/Ubuntu; `bash .ci/run` does this)"
DATABASE = "mlflow"
DB_USER = "mlflow"


def _skip_or_fail(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{reason} ({REQUIRE_ENV} is set, so this is not skipped)")
    pytest.skip(reason)


def _postgres_bindir() -> Path | None:
    """Folder holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/<major>/bin (newest first)."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda folder: int(Path(folder).parent.name) if Path(folder).parent.name.isdigit() else -1,
        reverse=True,
    )
    for folder in candidates:
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    return None


@dataclass(frozen=True)
class PostgresCluster:
    port: int
    password: str
    log_file: Path

    @property
    def uri(self) -> str:
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not installed; the project ships psycopg2.
        return f"postgresql+psycopg2://{DB_USER}:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    def connect(self):  # noqa: ANN201 - a psycopg2 connection
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, dbname=DATABASE, user=DB_USER, password=self.password, connect_timeout=10
        )


@pytest.fixture(scope="session")
def postgres_bindir() -> Path:
    """PostgreSQL's server binaries, or a skip; session-scoped so that it runs before the Prefect server starts."""
    bindir = _postgres_bindir()
    if bindir is None:
        _skip_or_fail(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in /usr/lib/postgresql/*/bin; {INSTALL_HINT}"
        )
    return bindir


@pytest.fixture(scope="module")
def postgres_cluster(postgres_bindir: Path) -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on 127.0.0.1:<free port> with a database and role ``mlflow``."""
    bindir = postgres_bindir
    run_as: list[str] = []
    owner = None
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root: run them as the `postgres` OS user the Debian package creates.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _skip_or_fail(f"running as root needs the `postgres` OS user to run initdb; {INSTALL_HINT}")
        if shutil.which("runuser") is None:
            _skip_or_fail("running as root needs `runuser` (util-linux) to run initdb as the `postgres` user")
        run_as = ["runuser", "-u", "postgres", "--"]

    def pg(*command: str, timeout: float = 120) -> None:
        result = subprocess.run([*run_as, *command], capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")

    # Not under pytest's tmp folders: those are 0700 and owned by this user, so `postgres` could not enter them.
    base = Path(tempfile.mkdtemp(prefix="seqflow-pg-"))
    data_dir, log_file, pwfile = base / "data", base / "postgres.log", base / "superuser.pw"
    superuser_password, password = secrets.token_hex(16), secrets.token_hex(16)
    started = False
    try:
        pwfile.write_text(superuser_password + "\n")
        if owner is not None:
            for path in (base, pwfile):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        pg(
            str(bindir / "initdb"), "-D", str(data_dir), "--username=postgres", f"--pwfile={pwfile}",
            "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        port = free_port()
        # TCP on loopback only (initdb's pg_hba.conf allows 127.0.0.1/32 and ::1/128, by password); no Unix
        # socket; durability off, as the cluster is thrown away.
        with (data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        started = True  # from here on, teardown stops the cluster (a timed-out start may still come up)
        try:
            pg(str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "60", "start", timeout=90)
        except (RuntimeError, subprocess.SubprocessError) as exc:
            log = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
            pytest.fail(f"PostgreSQL did not start: {exc}\n{log}")

        import psycopg2

        admin = psycopg2.connect(
            host="127.0.0.1", port=port, dbname="postgres", user="postgres", password=superuser_password, connect_timeout=10
        )
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE ROLE {DB_USER} LOGIN PASSWORD %s", (password,))
            cursor.execute(f"CREATE DATABASE {DATABASE} OWNER {DB_USER}")
        admin.close()
        yield PostgresCluster(port=port, password=password, log_file=log_file)
    finally:
        if started:
            try:
                pg(str(bindir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
            except (RuntimeError, subprocess.SubprocessError) as exc:
                print(f"warning: stopping the test PostgreSQL failed: {exc}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class MlflowServer:
    url: str
    artifacts_dir: Path
    log_file: Path

    def log_tail(self) -> str:
        return log_tail(self.log_file)

    def api(self, method: str, endpoint: str, params: dict[str, Any] | None = None, body: dict[str, Any] | None = None):
        """One REST call with plain HTTP; the decoded JSON answer."""
        url = f"{self.url}/api/2.0/mlflow/{endpoint}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {url} -> {exc.code}: {exc.read()[:2000]!r}") from None


@pytest.fixture(scope="module")
def mlflow_server(postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """``mlflow server`` on the PostgreSQL cluster, serving artifacts from a temporary folder."""
    root = tmp_path_factory.mktemp("mlflow-server")
    artifacts_dir = root / "artifacts"
    log_file = root / "server.log"
    port = free_port()
    store_args = [
        "--backend-store-uri", postgres_cluster.uri, "--serve-artifacts", "--artifacts-destination", str(artifacts_dir),
    ]  # fmt: skip
    with running_mlflow_server(store_args, port, log_file, cwd=root) as url:
        yield MlflowServer(url=url, artifacts_dir=artifacts_dir, log_file=log_file)


@pytest.fixture
def server_settings(mlflow_server: MlflowServer) -> Iterator[TrackingSettings]:
    """Settings for the server; the process-wide MLflow URIs that the Tracker sets are put back afterwards."""
    import mlflow.tracking._model_registry.utils as registry_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils

    with pytest.MonkeyPatch.context() as patch:
        # Recorded so that they are restored: Tracker() sets both globals and both environment variables.
        patch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        patch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
        patch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
        patch.setenv("MLFLOW_REGISTRY_URI", mlflow_server.url)
        yield TrackingSettings(
            tracking_uri=mlflow_server.url,
            experiment_name="seqflow-postgres-test",
            registered_model_name="seqflow-postgres-test-sentiment",
            artifact_location=None,
        )


def _local_artifact_dir(server: MlflowServer, artifact_uri: str) -> Path:
    """Where the server keeps an ``mlflow-artifacts:/...`` URI inside its --artifacts-destination."""
    parsed = urllib.parse.urlparse(artifact_uri)
    assert parsed.scheme == "mlflow-artifacts", artifact_uri
    return server.artifacts_dir / parsed.path.lstrip("/")


def test_pipeline_against_postgres_backed_server(
    postgres_bindir, prefect_api, tiny_config, server_settings, mlflow_server, postgres_cluster, tmp_path
):
    from seqflow.flows.sentiment import sentiment_flow

    config = tiny_config()
    assert list(config.training.architectures) == ["embedding_pool", "lstm"]
    summary = sentiment_flow(config, server_settings)
    server = mlflow_server

    # --- runs, through the REST API ------------------------------------------------------------------------
    experiment = server.api("GET", "experiments/get-by-name", {"experiment_name": server_settings.experiment_name})
    experiment_id = experiment["experiment"]["experiment_id"]
    assert experiment["experiment"]["artifact_location"].startswith("mlflow-artifacts:/")
    runs = server.api("POST", "runs/search", body={"experiment_ids": [experiment_id], "max_results": 100}).get("runs", [])

    def tags(run: dict) -> dict[str, str]:
        return {tag["key"]: tag["value"] for tag in run["data"].get("tags", [])}

    def metrics(run: dict) -> dict[str, float]:
        return {metric["key"]: metric["value"] for metric in run["data"].get("metrics", [])}

    parents = [run for run in runs if tags(run).get(ROLE_TAG) == "pipeline"]
    children = [run for run in runs if tags(run).get(ROLE_TAG) == "architecture"]
    assert len(runs) == 3 and len(parents) == 1 and len(children) == 2, [tags(run) for run in runs]
    assert {run["info"]["status"] for run in runs} == {"FINISHED"}
    parent_id = parents[0]["info"]["run_id"]
    assert summary.parent_run_id == parent_id
    assert sorted(tags(child)["architecture"] for child in children) == ["embedding_pool", "lstm"]

    for run in runs:
        # Artifacts go through the server (proxied), and land in its --artifacts-destination.
        artifact_uri = run["info"]["artifact_uri"]
        assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
        assert _local_artifact_dir(server, artifact_uri).is_dir()
    assert (_local_artifact_dir(server, parents[0]["info"]["artifact_uri"]) / "comparison.csv").is_file()

    test_accuracy: dict[str, float] = {}
    from mlflow import MlflowClient

    logged_models = MlflowClient(server.url).search_logged_models([experiment_id])
    for child in children:
        run_id = child["info"]["run_id"]
        assert tags(child)["mlflow.parentRunId"] == parent_id
        child_metrics = metrics(child)
        epochs_run = int(child_metrics["epochs_run"])
        assert epochs_run >= 1
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            history = server.api("GET", "metrics/get-history", {"run_id": run_id, "metric_key": key})["metrics"]
            # One point per epoch, logged with step=epoch (1-based) as training went.
            assert sorted(point["step"] for point in history) == list(range(1, epochs_run + 1)), (key, history)
        test_accuracy[run_id] = child_metrics["test_accuracy"]
        listed = server.api("GET", "artifacts/list", {"run_id": run_id})
        assert {"plots", "history.json"} <= {item["path"] for item in listed.get("files", [])}
        local = _local_artifact_dir(server, child["info"]["artifact_uri"])
        assert (local / "history.json").is_file()
        # The model is an MLflow 3 logged model of the run, its files in the model's own artifact folder.
        [logged] = [model for model in logged_models if model.source_run_id == run_id]
        assert (_local_artifact_dir(server, logged.artifact_location) / "MLmodel").is_file()

    # --- registry, through the REST API --------------------------------------------------------------------
    name = server_settings.registered_model_name
    registered = server.api("GET", "registered-models/get", {"name": name})["registered_model"]
    assert registered["name"] == name
    versions = server.api("GET", "model-versions/search", {"filter": f"name='{name}'"}).get("model_versions", [])
    assert len(versions) == 2, versions
    assert {version["run_id"] for version in versions} == set(test_accuracy)
    assert all(version["status"] == "READY" for version in versions)
    champion = server.api("GET", "registered-models/alias", {"name": name, "alias": CHAMPION_ALIAS})["model_version"]
    assert test_accuracy[champion["run_id"]] == max(test_accuracy.values())
    assert summary.champion_version == champion["version"]
    assert CHAMPION_ALIAS in champion.get("aliases", [])

    # --- PostgreSQL really holds it ------------------------------------------------------------------------
    connection = postgres_cluster.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM runs JOIN experiments USING (experiment_id) WHERE experiments.name = %s",
                (server_settings.experiment_name,),
            )
            assert cursor.fetchone()[0] == 3
            cursor.execute("SELECT count(*) FROM model_versions WHERE name = %s", (name,))
            assert cursor.fetchone()[0] == 2
            cursor.execute(
                "SELECT version FROM registered_model_aliases WHERE name = %s AND alias = %s", (name, CHAMPION_ALIAS)
            )
            assert str(cursor.fetchone()[0]) == champion["version"]
    finally:
        connection.close()

    # --- a fresh process loads the champion through the server and scores raw text -------------------------
    env_file = tmp_path / "server.env"
    env_file.write_text(
        f"MLFLOW_TRACKING_URI={server.url}\n"
        f"MLFLOW_EXPERIMENT_NAME={server_settings.experiment_name}\n"
        f"SEQFLOW_REGISTERED_MODEL_NAME={name}\n"
    )
    # Only the env file says where the server is.
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    reviews = ["A wonderful film, the best acting I have seen all year.", "Awful. Boring and far too long."]
    result = subprocess.run(
        [sys.executable, "-m", "seqflow.cli", "--env-file", str(env_file), "predict", "--json", *reviews],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + "\n--- server log ---\n" + server.log_tail()
    predictions = json.loads(result.stdout)
    assert [p["text"] for p in predictions] == reviews
    assert all(0.0 <= p["probability"] <= 1.0 and p["label"] == int(p["probability"] >= 0.5) for p in predictions)
