"""What each task of an execution did (ran or cached, and why), as every pipeline reports it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskStatus:
    """What one task did in a flow run: ``ran`` or ``cached``, and why; for a cached train or evaluate, the
    earlier MLflow run it reuses."""

    task: str
    status: str
    reason: str
    run_id: str | None = None

    def line(self) -> str:
        reused = f" (MLflow run {self.run_id})" if self.run_id else ""
        return f"{self.task:24} {self.status:6} {self.reason}{reused}"


def render_task_statuses(statuses: list[TaskStatus]) -> list[str]:
    return ["tasks:", *(f"  {status.line()}" for status in statuses)] if statuses else []


def render_task_counts(statuses: list[TaskStatus]) -> list[str]:
    """One line for the terminal: how many tasks ran and which were served from the cache (the reasons are in
    the parent run's comparison.txt and tasks.json)."""
    if not statuses:
        return []
    cached = [status.task for status in statuses if status.status == "cached"]
    line = f"tasks:     {len(statuses) - len(cached)} ran, {len(cached)} cached"
    return [line + (f" ({', '.join(cached)})" if cached else "")]
