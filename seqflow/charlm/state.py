"""What one ``seqflow charlm run`` execution produced (``pipeline_state.json`` with its parent MLflow run, the
same file name and layout as the sentiment pipeline's), for ``seqflow charlm rerun``. Written and read by
:mod:`seqflow.core.state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from seqflow.charlm.records import EvaluatedCharModel, TrainedCharModel, dataset_tags
from seqflow.charlm.text import CharEncodedData, CharSplitFiles
from seqflow.charlm.config import CharLMConfig, resolve_charlm_config
from seqflow.core.state import ExecutionState, flat_overrides, read_state


@dataclass(frozen=True)
class CharLMState(ExecutionState):
    """What one ``seqflow charlm run`` execution produced (besides its contract reports and registration)."""

    config: CharLMConfig
    split_files: CharSplitFiles
    encoded: CharEncodedData
    trained: list[TrainedCharModel]
    evaluated: list[EvaluatedCharModel]

    def dataset_tags(self) -> dict[str, str]:
        return dataset_tags(self.split_files, self.encoded)


def charlm_config_from_flat(flat: dict[str, Any]) -> CharLMConfig:
    """The configuration an earlier ``seqflow charlm run`` ran with, from its flat ``section.field`` form."""
    return resolve_charlm_config(str(flat.get("profile", "quick")), None, flat_overrides(flat))


def charlm_state_from_json(text: str) -> CharLMState:
    return read_state(CharLMState, charlm_config_from_flat, text)
