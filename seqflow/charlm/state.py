"""What one ``seqflow charlm run`` execution produced (``pipeline_state.json`` with its parent MLflow run, the
same file name and layout as the sentiment pipeline's), for ``seqflow charlm rerun``. Written and read by
:mod:`seqflow.core.state`.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqflow.charlm.records import EvaluatedCharModel, TrainedCharModel, dataset_tags
from seqflow.charlm.text import CharEncodedData, CharSplitFiles
from seqflow.charlm.config import CharLMConfig, resolve_charlm_config
from seqflow.core.state import ExecutionState, read_state


@dataclass(frozen=True)
class CharLMState(ExecutionState[CharLMConfig, CharSplitFiles, TrainedCharModel, EvaluatedCharModel]):
    """What one ``seqflow charlm run`` execution produced: the records every execution has, and its encoded text."""

    encoded: CharEncodedData

    def dataset_tags(self) -> dict[str, str]:
        return dataset_tags(self.split_files, self.encoded)


def charlm_state_from_json(text: str) -> CharLMState:
    """The state of an earlier ``seqflow charlm run``, its configuration resolved again as it ran."""
    return read_state(CharLMState, lambda profile, overrides: resolve_charlm_config(profile, None, overrides), text)
