"""The character-model pipeline's rerun table: what ``seqflow charlm rerun TASK`` can run again, by
task-function name (see :mod:`seqflow.tasks.charlm`), what each reads from the earlier execution and what it
replaces. The runs a rerun opens and closes are those of :mod:`seqflow.core.rerun` (tagged ``rerun_of``).

Names kept from earlier releases: ``load`` (now ``load_text``) and ``validate`` (now ``check_text``).
"""

from __future__ import annotations

from typing import Any, Mapping

from seqflow.charlm.config import ALL_CHAR_ARCHITECTURES, with_charlm_overrides
from seqflow.core.rerun_table import (
    CHARLM,
    RerunStep,
    RerunTable,
    contract_step,
    evaluate_step,
    evaluated_runs_gone,
    imported_when_called,
    load_step,
    model_files_gone,
    output_gone,
    register_step,
    train_step,
)


CHARLM_RERUNS = RerunTable(
    kind=CHARLM,
    steps={
        "load_text": load_step("text splits"),
        "check_text": contract_step(lambda r: {"split_files": r.earlier.split_files, "contracts": r.config.contracts}, ("splits",)),
        "encode": RerunStep(
            produces="encoded",
            arguments=lambda r: {
                "split_files": r.earlier.split_files, "artifacts_dir": r.config.artifacts_dir,
                "min_char_count": r.config.data.min_char_count,
            },
            describe=lambda out, earlier: [
                f"character ids {out.encoded_dir} "
                f"({'same ids as before' if out.ids_digest == earlier.encoded.ids_digest else 'ids changed'})"
            ],
            needs=("splits",),
        ),
        "train": train_step(
            lambda r: {
                "settings": r.settings, "architecture": r.architecture, "config": r.config,
                "split_files": r.earlier.split_files, "encoded": r.earlier.encoded, "parent_run_id": r.parent_run_id,
            },
            ("splits", "ids"),
        ),
        "evaluate": evaluate_step(
            lambda r: {"settings": r.settings, "trained": r.trained, "encoded": r.earlier.encoded, "config": r.config},
            lambda out, earlier: [f"new child run {out.run_id}, validation perplexity {out.val_perplexity:.3f}"],
            ("ids", "model files"),
        ),
        # Register reads the ids too: a champion measured on other text is re-scored on this validation text.
        "register": register_step(
            lambda r: {
                "settings": r.settings, "evaluated": r.earlier.evaluated, "encoded": r.earlier.encoded,
                "config": r.config, "parent_run_id": r.parent_run_id,
            },
            ("ids", "evaluated runs"),
        ),
    },
    architectures=ALL_CHAR_ARCHITECTURES,
    with_overrides=with_charlm_overrides,
    upstream={
        "splits": output_gone("seqflow.charlm.cache_checks:char_split_files_problem", "split_files"),
        "ids": output_gone("seqflow.charlm.cache_checks:char_encoded_problem", "encoded"),
        "model files": model_files_gone("step_model_path"),
        "evaluated runs": evaluated_runs_gone,
    },
    read_state=imported_when_called("seqflow.charlm.state:charlm_state_from_json"),
    aliases={"load": ("load_text",), "validate": ("check_text",)},
)


def plan_charlm_rerun(tracker: Any, task: str, from_run: str | None, architectures: list[str] | None, overrides: Mapping[str, Any]):  # noqa: ANN201
    """The :class:`~seqflow.core.rerun.RerunPlan` of ``seqflow charlm rerun TASK`` (default: the latest FINISHED
    ``seqflow charlm run`` of the charlm experiment)."""
    from seqflow.core.rerun import plan_from_table

    return plan_from_table(tracker, CHARLM_RERUNS, task, from_run, architectures, overrides)
