"""The character-model pipeline's rerun table: what ``seqflow charlm rerun TASK`` can run again, by
task-function name (see :mod:`seqflow.tasks.charlm`), what each reads from the earlier execution and what it
replaces. The runs a rerun opens and closes are those of :mod:`seqflow.core.rerun` (tagged ``rerun_of``).

Names kept from earlier releases: ``load`` (now ``load_text``) and ``validate`` (now ``check_text``).
"""

from __future__ import annotations

from typing import Any, Mapping

from seqflow.charlm.config import ALL_CHAR_ARCHITECTURES, with_charlm_overrides
from seqflow.core.rerun_table import CHARLM, RerunStep, RerunTable, imported_when_called, output_gone, trained_outputs_gone
from seqflow.core.rerun_table import split_contract_step, evaluate_step, load_step, register_step, train_step


CHARLM_RERUNS = RerunTable(
    steps={
        "load_text": load_step("text splits"),
        "check_text": split_contract_step(),
        "encode": RerunStep(
            needs=("splits",),
            produces="encoded",
            arguments=lambda r: {
                "split_files": r.earlier.split_files, "artifacts_dir": r.config.artifacts_dir,
                "min_char_count": r.config.data.min_char_count,
            },
            describe=lambda out, earlier: [
                f"character ids {out.encoded_dir} "
                f"({'same ids as before' if out.ids_digest == earlier.encoded.ids_digest else 'ids changed'})"
            ],
        ),
        "train": train_step(lambda r: {"encoded": r.earlier.encoded}, ("splits", "ids")),
        "evaluate": evaluate_step(
            lambda r: {"encoded": r.earlier.encoded, "config": r.config},
            lambda out, earlier: [f"new child run {out.run_id}, validation perplexity {out.val_perplexity:.3f}"],
            ("ids", "model files"),
        ),
        # Register reads the ids too: a champion measured on other text is re-scored on this validation text.
        "register": register_step(lambda r: {"encoded": r.earlier.encoded, "config": r.config}, ("ids", "evaluated runs")),
    },
    kind=CHARLM,
    read_state=imported_when_called("seqflow.charlm.state:charlm_state_from_json"),
    aliases={"load": ("load_text",), "validate": ("check_text",)},
    architectures=ALL_CHAR_ARCHITECTURES, with_overrides=with_charlm_overrides,
    upstream={
        "splits": output_gone("seqflow.charlm.cache_checks:char_split_files_problem", "split_files"),
        "ids": output_gone("seqflow.charlm.cache_checks:char_encoded_problem", "encoded"),
        **trained_outputs_gone("step_model_path"),
    },
)


def plan_charlm_rerun(tracker: Any, task: str, from_run: str | None, architectures: list[str] | None, overrides: Mapping[str, Any]):  # noqa: ANN201
    """The :class:`~seqflow.core.rerun.RerunPlan` of ``seqflow charlm rerun TASK`` (default: the latest FINISHED
    ``seqflow charlm run`` of the charlm experiment)."""
    from seqflow.core.rerun import plan_from_table

    return plan_from_table(tracker, CHARLM_RERUNS, task, from_run, architectures, overrides)
