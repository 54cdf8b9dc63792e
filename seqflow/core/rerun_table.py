"""What a pipeline declares about its reruns (``seqflow rerun TASK``, ``seqflow charlm rerun TASK``): one entry
per rerunnable task, named like the task function, saying what it reads from the earlier execution, how its
arguments are built from that execution's state, and which part of the state its output replaces.

One flow (:mod:`seqflow.flows.rerun`) and one planner (:func:`seqflow.core.rerun.plan_from_table`) run any
pipeline's reruns from its table. Plain data and functions, no Prefect or MLflow imports, so the CLI can list
the names without importing either.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class ExecutionKind:
    """Which pipeline an execution belongs to: the commands, and the roles its parent and child runs are tagged
    with (``seqflow.role``)."""

    command: str
    rerun_command: str
    parent_role: str
    child_role: str


SENTIMENT = ExecutionKind("seqflow run", "seqflow rerun", "pipeline", "architecture")
CHARLM = ExecutionKind("seqflow charlm run", "seqflow charlm rerun", "charlm-pipeline", "charlm-architecture")


@dataclass(frozen=True)
class RerunInputs:
    """What a rerun step's arguments are built from: the state of the execution it reruns (with the outputs of
    steps rerun before it in the same rerun swapped in), the settings, and for a per-architecture step the
    architecture (and, for one that opens a new child run first, the trained model pointed at that run)."""

    earlier: Any
    config: Any
    settings: Any
    parent_run_id: str
    architecture: str | None = None
    trained: Any = None


@dataclass(frozen=True)
class RerunStep:
    """One rerunnable task. ``produces`` is the state field its output replaces (in a list, the item of the same
    architecture or contract); ``describe`` is what the rerun reports it produced, given the output and the
    earlier state; ``needs`` names the earlier outputs it reads (keys of :attr:`RerunTable.upstream`), checked
    before anything runs."""

    produces: str
    arguments: Callable[[RerunInputs], dict[str, Any]]
    describe: Callable[[Any, Any], list[str]]
    needs: tuple[str, ...] = ()
    # One run per architecture (--arch); a trained model's new child run is closed after it (nothing downstream
    # is rerun), an evaluation gets a new child run for the earlier trained model first.
    per_architecture: bool = False
    closes_child_run: bool = False
    opens_child_run: bool = False


# A check of earlier outputs: (tracker, earlier state, chosen architectures) -> problems (None: fine).
UpstreamCheck = Callable[[Any, Any, list[str]], list["str | None"]]


@dataclass(frozen=True)
class RerunTable:
    """A pipeline's rerunnable tasks by task-function name, plus names kept from earlier releases."""

    kind: ExecutionKind
    steps: dict[str, RerunStep]
    architectures: tuple[str, ...]
    with_overrides: Callable[[Any, Any], Any]
    upstream: dict[str, UpstreamCheck]
    # The pipeline's state (its state class) from an earlier execution's pipeline_state.json.
    read_state: Callable[[str], Any]
    # Earlier CLI names -> the tasks they run (``validate``: every contract check).
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """Every name the CLI accepts: the task names, then the aliases."""
        return (*self.steps, *self.aliases)

    def resolve(self, name: str) -> tuple[str, ...]:
        """The task names ``name`` runs, in pipeline order; KeyError if it is neither a task nor an alias."""
        return (name,) if name in self.steps else self.aliases[name]

    @property
    def per_architecture(self) -> tuple[str, ...]:
        return tuple(name for name, step in self.steps.items() if step.per_architecture)


def imported_when_called(reference: str) -> Callable[..., Any]:
    """The function at ``module:name``, imported at its first call: a table names the pipeline's state reader and
    output checks this way so that importing it (the CLI does, for the task names) imports no numpy or Keras."""
    module_name, _, function_name = reference.partition(":")

    def call(*args: Any) -> Any:
        return getattr(importlib.import_module(module_name), function_name)(*args)

    call.reference = reference  # type: ignore[attr-defined]
    return call


def output_gone(reference: str, state_field: str) -> UpstreamCheck:
    """A check of one earlier output (the state's ``state_field``) by the pipeline's problem function at
    ``module:name`` (the same one its task's cache check uses)."""
    problem = imported_when_called(reference)

    def check(tracker: Any, earlier: Any, architectures: list[str]) -> list[str | None]:
        return [problem(getattr(earlier, state_field))]

    check.reference = reference  # type: ignore[attr-defined]
    return check


def model_files_gone(path_field: str) -> UpstreamCheck:
    """A check that the chosen architectures' saved models (the trained model's ``path_field``) are still there."""

    def check(tracker: Any, earlier: Any, architectures: list[str]) -> list[str | None]:
        paths = [getattr(earlier.trained_model(architecture), path_field) for architecture in architectures]
        return [f"model file {path} is gone" for path in paths if not Path(path).is_file()]

    return check


def evaluated_runs_gone(tracker: Any, earlier: Any, architectures: list[str]) -> list[str | None]:
    """The evaluated models' MLflow runs that are gone (registration tags versions with them)."""
    return [f"MLflow run {model.run_id} is gone" for model in earlier.evaluated if tracker.run_state(model.run_id) is None]


def trained_outputs_gone(path_field: str) -> dict[str, UpstreamCheck]:
    """The upstream checks of every pipeline's trained outputs: ``model files`` (the trained model's
    ``path_field``) and ``evaluated runs``."""
    return {"model files": model_files_gone(path_field), "evaluated runs": evaluated_runs_gone}


def registration_lines(registration: Any, earlier: Any = None) -> list[str]:
    """What a rerun register produced: the versions and the promotion decision."""
    versions = ", ".join(f"{version.architecture} v{version.version}" for version in registration.versions)
    reason = registration.decision.reason if registration.decision else "no decision"
    return [f"versions {versions}", f"promotion: {reason}"]


# The steps every pipeline has, so that a table only says what differs: the arguments and what it reads.
def load_step(label: str) -> RerunStep:
    """Loading and splitting the source again: reads nothing earlier, replaces the split files."""
    return RerunStep(
        produces="split_files",
        arguments=lambda r: {"data_config": r.config.data, "seed": r.config.seed, "artifacts_dir": r.config.artifacts_dir},
        describe=lambda out, earlier: [
            f"{label} {out.dataset_dir} "
            f"({'same content as before' if out.digest == earlier.split_files.digest else 'content changed'})"
        ],
    )


def contract_step(arguments: Callable[[RerunInputs], dict[str, Any]], needs: tuple[str, ...]) -> RerunStep:
    """A contract check again: replaces that contract's report."""
    return RerunStep("contract_reports", arguments, lambda out, earlier: [out.summary_line()], needs)


def split_contract_step() -> RerunStep:
    """A contract check of the split files again (every pipeline's first check)."""
    return contract_step(lambda r: {"split_files": r.earlier.split_files, "contracts": r.config.contracts}, ("splits",))


# The train, evaluate and register steps' arguments that every pipeline's task takes under the same name; a
# table gives only the others (its data, its settings).
Arguments = Callable[[RerunInputs], dict[str, Any]]


def train_step(arguments: Arguments, needs: tuple[str, ...]) -> RerunStep:
    """Training the chosen architectures again, each in a new child run closed after it (nothing downstream)."""
    return RerunStep(
        "trained",
        lambda r: {
            "settings": r.settings, "architecture": r.architecture, "config": r.config,
            "split_files": r.earlier.split_files, "parent_run_id": r.parent_run_id, **arguments(r),
        },
        lambda out, earlier: [f"new child run {out.run_id}, {out.epochs_run} epochs"], needs,
        per_architecture=True, closes_child_run=True,
    )


def evaluate_step(arguments: Arguments, describe: Callable[[Any, Any], list[str]], needs: tuple[str, ...]) -> RerunStep:
    """Evaluating the chosen architectures' earlier models again, each in a new child run."""
    return RerunStep(
        "evaluated", lambda r: {"settings": r.settings, "trained": r.trained, **arguments(r)}, describe, needs,
        per_architecture=True, opens_child_run=True,
    )


def register_step(arguments: Arguments, needs: tuple[str, ...]) -> RerunStep:
    """Registering the earlier evaluated models again, under the rerun's parent run."""
    return RerunStep(
        "registration",
        lambda r: {"settings": r.settings, "evaluated": r.earlier.evaluated, "parent_run_id": r.parent_run_id, **arguments(r)},
        registration_lines, needs,
    )
