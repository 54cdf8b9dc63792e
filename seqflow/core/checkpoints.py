"""Per-epoch training checkpoints, so an interrupted training resumes from its last completed epoch.

After every epoch :class:`EpochCheckpoint` writes, into one folder per training (see
:func:`seqflow.sentiment.train.training_fingerprint`):

- ``epoch-NNNN.weights.h5``: the model's and the optimizer's variables after epoch N;
- ``best-epoch-NNNN.npz``: the weights of early stopping's best epoch (only with ``restore_best_weights``);
- ``state.json``, written last and atomically: every completed epoch's metrics, wall time and early-stopping
  state (``wait``, ``best``, ``best_epoch``, ``stopped``), naming the two weight files that belong to it;
- ``owner.json``: the process (host, pid, start time) training into the folder.

``state.json`` is the commit point: files it does not name are leftovers of an epoch that was cut short and are
deleted, so a ``kill -9`` at any instant leaves a consistent checkpoint of the last completed epoch.

Keras' own ``BackupAndRestore`` does the weights part but not this: it writes weights and epoch number as two
separate, non-atomic files, keeps neither the per-epoch history nor early stopping's counters and best weights
(a resumed fit would restart patience and could not restore the best epoch), and deletes its folder at the end of
every fit, including one that early stopping ended.

A resumed training continues from the same weights and optimizer state, but not from the same random-number
state (shuffling order, dropout masks): its later epochs are not bit-identical to an uninterrupted training.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from seqflow.core.processes import ProcessIdentity, current_process, is_gone

logger = logging.getLogger(__name__)

STATE_FILE = "state.json"
OWNER_FILE = "owner.json"
# Bumped when the folder layout changes, so an older checkpoint is ignored rather than misread.
STATE_FORMAT = 1


@dataclass(frozen=True)
class EpochRecord:
    """One completed epoch: Keras' logs, seconds it took, and early stopping's state after it (if any)."""

    epoch: int  # 1-based
    logs: dict[str, float]
    seconds: float
    early_stopping: dict[str, Any] | None


def _weights_file(epoch: int) -> str:
    return f"epoch-{epoch:04d}.weights.h5"


def _best_weights_file(epoch: int) -> str:
    return f"best-epoch-{epoch:04d}.npz"


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


class UnusableCheckpoint(Exception):
    """A checkpoint folder that cannot be resumed from (written by another layout, or files missing)."""


class EpochCheckpoint(keras.callbacks.Callback):
    """Record every epoch; with a folder, also save it there and resume from what an earlier process saved.

    Place it after ``early_stopping`` in the callback list: it reads early stopping's state after that callback
    updated it, and restores it after that callback reset it at the start of fit.
    """

    def __init__(self, checkpoint_dir: Path | None, early_stopping: keras.callbacks.EarlyStopping | None) -> None:
        super().__init__()
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.early_stopping = early_stopping
        self.records: list[EpochRecord] = []
        self.stopped = False
        self._resume_early_stopping: dict[str, Any] | None = None
        self._resume_best_weights: list[np.ndarray] | None = None
        self._epoch_started = 0.0
        self._best_file: str | None = None
        if self.checkpoint_dir is not None and not self._claim():
            self.checkpoint_dir = None

    # --- before fit ----------------------------------------------------------------------------------------

    def _claim(self) -> bool:
        """Own the folder, unless a live process trains into it now (two runs of one configuration at once)."""
        assert self.checkpoint_dir is not None
        owner_path = self.checkpoint_dir / OWNER_FILE
        me = current_process()
        if owner_path.is_file():
            try:
                owner = ProcessIdentity(**json.loads(owner_path.read_text()))
            except (ValueError, TypeError):
                owner = None
            if owner is not None and owner != me and not is_gone(owner):
                logger.warning(
                    "process %s is training into %s right now; this training neither resumes nor checkpoints",
                    owner.describe(),
                    self.checkpoint_dir,
                )
                return False
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(owner_path, json.dumps(asdict(me)))
        return True

    def restore(self, model: keras.Model, restore_best_weights: bool) -> int:
        """Load the last completed epoch's weights into ``model`` (built and compiled); returns how many epochs
        are done (0 when there is nothing to resume). An unusable checkpoint is reported and discarded."""
        if self.checkpoint_dir is None or not (self.checkpoint_dir / STATE_FILE).is_file():
            return 0
        try:
            self._restore(model, restore_best_weights)
        except (UnusableCheckpoint, OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring checkpoint %s that cannot be resumed: %s", self.checkpoint_dir, exc)
            self.records, self.stopped = [], False
            self._resume_early_stopping = self._resume_best_weights = self._best_file = None
            self._discard_files(keep=set())
            raise UnusableCheckpoint(str(exc)) from None
        return len(self.records)

    def _restore(self, model: keras.Model, restore_best_weights: bool) -> None:
        assert self.checkpoint_dir is not None
        state = json.loads((self.checkpoint_dir / STATE_FILE).read_text())
        if state.get("format") != STATE_FORMAT:
            raise UnusableCheckpoint(f"format {state.get('format')!r}, expected {STATE_FORMAT}")
        records = [EpochRecord(**record) for record in state["epochs"]]
        if not records or [record.epoch for record in records] != list(range(1, len(records) + 1)):
            raise UnusableCheckpoint("its epochs are not 1..N")
        weights_path = self.checkpoint_dir / state["weights_file"]
        if not model.optimizer.built:
            # The file holds the optimizer's variables too; they must exist before loading.
            model.optimizer.build(model.trainable_variables)
        model.load_weights(weights_path)
        best_file = state.get("best_weights_file")
        if restore_best_weights and records[-1].early_stopping is not None:
            if best_file is None:
                raise UnusableCheckpoint("early stopping's best weights were not saved")
            with np.load(self.checkpoint_dir / best_file) as saved:
                self._resume_best_weights = [saved[f"arr_{index}"] for index in range(len(saved.files))]
        self.records = records
        self.stopped = bool(records[-1].early_stopping and records[-1].early_stopping.get("stopped"))
        self._resume_early_stopping = records[-1].early_stopping
        self._best_file = best_file

    # --- during fit ----------------------------------------------------------------------------------------

    def on_train_begin(self, logs=None) -> None:  # noqa: ANN001 - Keras callback signature
        # Early stopping reset its counters in its own on_train_begin, which ran just before this one.
        if self.early_stopping is not None and self._resume_early_stopping is not None:
            saved = self._resume_early_stopping
            self.early_stopping.wait = int(saved["wait"])
            self.early_stopping.best = None if saved["best"] is None else float(saved["best"])
            self.early_stopping.best_epoch = int(saved["best_epoch"])
            self.early_stopping.best_weights = self._resume_best_weights

    def on_epoch_begin(self, epoch: int, logs=None) -> None:  # noqa: ANN001
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
        early = self.early_stopping
        self.stopped = bool(self.model.stop_training)
        self.records.append(
            EpochRecord(
                epoch=epoch + 1,
                logs={key: float(value) for key, value in (logs or {}).items()},
                seconds=time.perf_counter() - self._epoch_started,
                early_stopping=None
                if early is None
                else {
                    "wait": int(early.wait),
                    "best": None if early.best is None else float(early.best),
                    "best_epoch": int(early.best_epoch),
                    "stopped": self.stopped,
                },
            )
        )
        if self.checkpoint_dir is not None:
            self._save(epoch + 1)

    def _save(self, epoch: int) -> None:
        assert self.checkpoint_dir is not None
        weights_file = _weights_file(epoch)
        partial = self.checkpoint_dir / f"partial-{weights_file}"
        self.model.save_weights(partial)
        os.replace(partial, self.checkpoint_dir / weights_file)
        early = self.early_stopping
        if early is not None and early.restore_best_weights and early.best_weights is not None:
            # Early stopping keeps its best weights in memory; they only change in an improving epoch.
            if self._best_file is None or early.best_epoch + 1 == epoch:
                self._best_file = _best_weights_file(early.best_epoch + 1)
                partial_best = self.checkpoint_dir / f"partial-{self._best_file}"
                with open(partial_best, "wb") as handle:
                    np.savez(handle, *early.best_weights)
                os.replace(partial_best, self.checkpoint_dir / self._best_file)
        state = {
            "format": STATE_FORMAT,
            "epochs": [asdict(record) for record in self.records],
            "weights_file": weights_file,
            "best_weights_file": self._best_file,
        }
        _write_atomically(self.checkpoint_dir / STATE_FILE, json.dumps(state, indent=1))
        self._discard_files(keep={STATE_FILE, OWNER_FILE, weights_file, self._best_file})

    def _discard_files(self, keep: set[str | None]) -> None:
        assert self.checkpoint_dir is not None
        for path in self.checkpoint_dir.iterdir():
            if path.name not in keep and path.name != OWNER_FILE:
                path.unlink(missing_ok=True)

    # --- after fit -----------------------------------------------------------------------------------------

    def history(self) -> dict[str, list[float]]:
        """Every epoch's metrics, the resumed ones included, as Keras' ``History.history`` has them."""
        keys = list(dict.fromkeys(key for record in self.records for key in record.logs))
        return {key: [record.logs.get(key, float("nan")) for record in self.records] for key in keys}

    @property
    def seconds(self) -> float:
        return sum(record.seconds for record in self.records)

    def remove(self) -> None:
        """Delete the folder once the fitted model is saved: there is nothing left to resume."""
        if self.checkpoint_dir is not None:
            shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
