"""Links to an execution in the two UIs its users look at next: MLflow (the parent run, the val_loss curves of
every child run in one chart, the overlay page) and Prefect (the flow run). The same links are printed under
the comparison table, written into the parent run's description and published as a Prefect markdown artifact,
so each UI points at the other.

With a tracking server (``MLFLOW_TRACKING_URI=http...``) the links use its address; with the default SQLite
store they use the address ``mlflow ui`` serves on by default, and the lines say which command to start.
Prefect's links use ``PREFECT_UI_URL`` (or ``PREFECT_API_URL`` without ``/api``); without either, the
temporary server's history is what ``prefect server start`` shows afterwards, at its default address.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

# Where `mlflow ui` and `prefect server start` listen by default.
MLFLOW_UI_DEFAULT = "http://127.0.0.1:5000"
PREFECT_UI_DEFAULT = "http://127.0.0.1:4200"
# The parent run's artifact with every architecture's curves on shared axes (sentiment pipeline).
OVERLAY_HTML = "plots/overlay_learning_curves.html"
# The tag MLflow's UI shows as a run's description (markdown).
DESCRIPTION_TAG = "mlflow.note.content"
MAX_DESCRIPTION_CHARS = 8_000
PARENT_RUN_TAG = "mlflow.parentRunId"


def mlflow_ui_url(tracking_uri: str) -> str:
    """The MLflow UI's address for ``tracking_uri``: the tracking server itself, or ``mlflow ui``'s default."""
    if tracking_uri.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(tracking_uri)
        # Never print credentials of the tracking URI.
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else parts.netloc
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    return MLFLOW_UI_DEFAULT


def prefect_ui_url() -> tuple[str, bool]:
    """The Prefect UI's address and whether it is a configured server (False: ``prefect server start``'s)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    api_url = PREFECT_API_URL.value()
    if not api_url:
        return PREFECT_UI_DEFAULT, False
    ui_url = PREFECT_UI_URL.value() or api_url.removesuffix("/").removesuffix("/api")
    return ui_url.rstrip("/"), True


def run_url(mlflow_url: str, experiment_id: str, run_id: str) -> str:
    return f"{mlflow_url}/#/experiments/{experiment_id}/runs/{run_id}"


def metric_chart_url(mlflow_url: str, run_ids: list[str], experiment_ids: list[str], metric: str = "val_loss") -> str:
    """MLflow's chart of one metric over steps for several runs (the page the run comparison's metric rows
    link to): every run's curve at once, no clicks."""
    query = (
        f"runs={json.dumps(run_ids)}&metric={json.dumps(metric)}&experiments={json.dumps(experiment_ids)}"
        f"&plot_metric_keys={json.dumps([metric])}&plot_layout={{}}&x_axis=step&y_axis_scale=linear"
        "&line_smoothness=1&show_point=true&deselected_curves=[]&last_linear_y_axis_range=[]"
    )
    return f"{mlflow_url}/#/metric?{urllib.parse.quote(query, safe='=&')}"


@dataclass(frozen=True)
class ExecutionLinks:
    """Where to look at one execution; ``start`` lists the commands that serve the UIs when no server is set."""

    parent_run: str
    val_loss_chart: str | None
    overlay_html: str | None
    flow_run: str | None
    start: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        named = [("MLflow run", self.parent_run), ("val_loss", self.val_loss_chart), ("overlay", self.overlay_html),
                 ("Prefect", self.flow_run)]
        return [f"{name + ':':12}{link}" for name, link in named if link] + [f"{'':12}{line}" for line in self.start]

    def markdown(self, table: str = "") -> str:
        items = [("MLflow parent run", self.parent_run), ("val_loss of every architecture", self.val_loss_chart),
                 ("overlay of the learning curves", self.overlay_html), ("Prefect flow run", self.flow_run)]
        text = "\n".join(f"- [{name}]({link})" if "://" in link else f"- {name}: `{link}`" for name, link in items if link)
        if self.start:
            text += "\n\n" + "\n".join(f"- {line}" for line in self.start)
        return text + (f"\n\n```\n{table}\n```\n" if table else "\n")


def child_run_ids(client: Any, experiment_id: str, parent_run_id: str) -> list[str]:
    """The architecture runs of an execution: its own child runs and the earlier ones its cached trainings reuse."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'",
                              order_by=["attributes.start_time ASC"])
    ids = [run.info.run_id for run in runs]
    reused = client.get_run(parent_run_id).data.tags.get("seqflow.reused_runs", "none")
    for pair in reused.split(","):
        task, _, run_id = pair.partition("=")
        if task.startswith("train") and run_id and run_id not in ids:
            ids.append(run_id)
    return ids


def execution_links(client: Any, tracking_uri: str, parent_run_id: str, flow_run_id: str | None = None) -> ExecutionLinks:
    """The links of the execution whose parent run is ``parent_run_id`` (its flow run: from the run's tags)."""
    from seqflow.core.runs import FLOW_RUN_TAG

    parent = client.get_run(parent_run_id)
    experiment_id = parent.info.experiment_id
    mlflow_url = mlflow_ui_url(tracking_uri)
    children = child_run_ids(client, experiment_id, parent_run_id)
    overlay = None
    if any(item.path == OVERLAY_HTML for item in client.list_artifacts(parent_run_id, "plots")):
        artifact_uri = parent.info.artifact_uri
        local = urllib.parse.urlsplit(artifact_uri).scheme in ("", "file")
        overlay = (f"{urllib.parse.unquote(urllib.parse.urlsplit(artifact_uri).path)}/{OVERLAY_HTML}" if local
                   else f"{run_url(mlflow_url, experiment_id, parent_run_id)}/artifacts/{OVERLAY_HTML}")
    flow_run_id = flow_run_id or parent.data.tags.get(FLOW_RUN_TAG)
    prefect_url, prefect_configured = prefect_ui_url()
    start = []
    if mlflow_url == MLFLOW_UI_DEFAULT:
        start.append(f"MLflow UI: mlflow ui --backend-store-uri {tracking_uri}  (then {MLFLOW_UI_DEFAULT}; "
                     "pick \"Model training\" at the top left)")
    if flow_run_id and not prefect_configured:
        start.append(f"Prefect UI: prefect server start  (then {PREFECT_UI_DEFAULT})")
    return ExecutionLinks(
        parent_run=run_url(mlflow_url, experiment_id, parent_run_id),
        val_loss_chart=metric_chart_url(mlflow_url, children, [experiment_id]) if children else None,
        overlay_html=overlay,
        flow_run=f"{prefect_url}/runs/flow-run/{flow_run_id}" if flow_run_id else None,
        start=start,
    )


def publish_links(client: Any, tracking_uri: str, parent_run_id: str, table: str) -> ExecutionLinks:
    """Write the links and ``table`` into the parent run's description and, inside a flow run, a Prefect
    markdown artifact of it; returns the links."""
    from prefect.runtime import flow_run

    flow_run_id = flow_run.get_id()
    links = execution_links(client, tracking_uri, parent_run_id, flow_run_id)
    # What the execution already wrote there (the contracts' pass counts) stays, under the links and the table;
    # MLflow keeps at most 8,000 characters of a tag.
    earlier = client.get_run(parent_run_id).data.tags.get(DESCRIPTION_TAG, "")
    description = links.markdown(table) + (f"\n\n{earlier}" if earlier else "")
    client.set_tag(parent_run_id, DESCRIPTION_TAG, description[:MAX_DESCRIPTION_CHARS])
    if flow_run_id:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(markdown=links.markdown(table), key="execution-links",
                                 description=f"MLflow parent run {parent_run_id}: links and comparison table")
    return links
