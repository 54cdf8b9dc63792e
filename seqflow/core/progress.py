"""What a run reports while it works: the data steps as they finish, the architectures trained so far, the
running training's epochs, early stopping. Events come from the shared machinery (the cache wrapper of every
step, the resumable fit loop), so every pipeline reports the same way without code of its own.

Three reporters: :class:`LoggingReporter` (the default: log lines only, e.g. in a Dask worker or a test),
:class:`PlainReporter` (off a terminal: one plain line per event, per architecture rather than per epoch) and
:class:`LiveReporter` (on a terminal: a rich live display). Every reporter also logs each event, so the run's
log file holds the per-epoch detail whatever the terminal showed.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, TextIO

logger = logging.getLogger("seqflow.progress")
# What the display says of an architecture whose training the task cache served.
CACHED_TRAINING = "cached (trained by an earlier execution with the same inputs)"


@dataclass
class _Training:
    """The running training: its epochs so far and its best validation loss."""

    architecture: str
    epochs: int
    started: float = field(default_factory=time.perf_counter)
    epoch: int = 0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    stopped_early: bool = False

    def note(self, epoch: int, val_loss: float | None) -> None:
        self.epoch = epoch
        if val_loss is not None and val_loss < self.best_val_loss:
            self.best_val_loss, self.best_epoch = val_loss, epoch

    def outcome(self) -> str:
        best = f"best val_loss {self.best_val_loss:.4f} at epoch {self.best_epoch}" if self.best_epoch else "no val_loss"
        ending = f"; early stopping after epoch {self.epoch}" if self.stopped_early else ""
        return f"{self.epoch}/{self.epochs} epochs, {best}{ending} ({time.perf_counter() - self.started:.1f} s)"


class LoggingReporter:
    """Every event as a log line of ``seqflow.progress``; the base of the terminal reporters."""

    def __init__(self) -> None:
        self.architectures: list[str] = []
        self.finished: list[str] = []
        self.training: _Training | None = None
        self.started = time.perf_counter()

    def plan(self, architectures: Sequence[str]) -> None:
        """The architectures this run will train, in order."""
        self.architectures = list(architectures)
        logger.info("training %d architecture(s): %s", len(self.architectures), ", ".join(self.architectures))

    def step(self, name: str, status: str, note: str = "") -> None:
        """A step (Prefect task) finished: ``status`` ran / cached / failed, ``note`` its one-line result. A
        training served from the cache counts as a finished architecture (no epoch ran to say so)."""
        logger.info("step %s: %s%s", name, status, f": {note}" if note else "")
        architecture = name.removeprefix("train-")
        if status == "cached" and name.startswith("train-") and architecture in self.architectures:
            self.finished.append(architecture)
            self.architecture_cached(architecture)

    def architecture_cached(self, architecture: str) -> None:
        """``architecture``'s training came from the cache (an earlier execution trained it)."""

    def training_started(self, architecture: str, epochs: int, resumed_from_epoch: int = 0) -> None:
        self.training = _Training(architecture, epochs, epoch=resumed_from_epoch)
        logger.info("training %s: up to %d epochs%s", architecture, epochs,
                    f", resuming after epoch {resumed_from_epoch}" if resumed_from_epoch else "")

    def epoch_ended(self, architecture: str, epoch: int, logs: dict[str, Any]) -> None:
        training = self._training(architecture)
        val_loss = logs.get("val_loss")
        training.note(epoch, None if val_loss is None else float(val_loss))
        metrics = ", ".join(f"{name} {float(value):.4f}" for name, value in logs.items() if _is_number(value))
        logger.info("training %s: epoch %d/%d: %s", architecture, epoch, training.epochs, metrics)

    def stopped_early(self, architecture: str, epoch: int) -> None:
        training = self._training(architecture)
        training.stopped_early = True
        logger.info("training %s: early stopping after epoch %d (best val_loss at epoch %d)", architecture, epoch,
                    training.best_epoch)

    def training_finished(self, architecture: str) -> None:
        training = self._training(architecture)
        self.finished.append(architecture)
        logger.info("trained %s: %s", architecture, training.outcome())
        self.training = None

    def close(self) -> None:
        """The run ended (finished or not): stop drawing."""

    def log_stream(self, terminal: TextIO) -> Any:
        """Where the terminal's log records should be written while this reporter draws."""
        return terminal

    def _training(self, architecture: str) -> _Training:
        if self.training is None or self.training.architecture != architecture:
            self.training = _Training(architecture, 0)
        return self.training

    def counter(self) -> str:
        total = len(self.architectures) or len(self.finished)
        return f"[{len(self.finished)}/{total}]"


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


class PlainReporter(LoggingReporter):
    """Off a terminal (CI, cron, a pipe): one plain line per event on ``stream``; epochs only in the log."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def _say(self, line: str) -> None:
        self.stream.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        self.stream.flush()

    def plan(self, architectures: Sequence[str]) -> None:
        super().plan(architectures)
        self._say(f"training {len(self.architectures)} architecture(s): {', '.join(self.architectures)}")

    def step(self, name: str, status: str, note: str = "") -> None:
        super().step(name, status, note)
        if not _is_training_step(name, self.architectures):
            self._say(f"{name}: {status}{f': {note}' if note else ''}")

    def training_finished(self, architecture: str) -> None:
        outcome = self._training(architecture).outcome()
        super().training_finished(architecture)
        self._say(f"{self.counter()} {architecture}: {outcome}")

    def architecture_cached(self, architecture: str) -> None:
        self._say(f"{self.counter()} {architecture}: {CACHED_TRAINING}")


def _is_training_step(name: str, architectures: Sequence[str]) -> bool:
    """``train-lstm``, ``evaluate-lstm``: reported by the training events and the closing table already."""
    return any(name.endswith(f"-{architecture}") for architecture in architectures)


class LiveReporter(LoggingReporter):
    """On a terminal: finished steps printed above a live area with a bar over the architectures (elapsed,
    estimated time left) and the running architecture's epoch bar with its val_loss against its best so far."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        from rich.console import Console
        from rich.live import Live
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(file=stream, force_terminal=True)
        self.bars = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[note]}"), console=self.console,
        )
        self.overall = self.bars.add_task("architectures", total=None, note="", visible=False)
        self.epochs = self.bars.add_task("", total=None, note="", visible=False)
        # Python-level prints stay where the run put them (its log file): rich would draw them above the display.
        self.live = Live(self.bars, console=self.console, refresh_per_second=4, transient=True,
                         redirect_stdout=False, redirect_stderr=False)
        self.live.start()

    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False)

    def plan(self, architectures: Sequence[str]) -> None:
        super().plan(architectures)
        self.bars.update(self.overall, total=len(self.architectures), visible=True)

    def step(self, name: str, status: str, note: str = "") -> None:
        super().step(name, status, note)
        if not _is_training_step(name, self.architectures):
            self._print(f"✓ {name}: {status}{f': {note}' if note else ''}")

    def training_started(self, architecture: str, epochs: int, resumed_from_epoch: int = 0) -> None:
        super().training_started(architecture, epochs, resumed_from_epoch)
        self.bars.reset(self.epochs, total=epochs, completed=resumed_from_epoch, visible=True, note="")
        self.bars.update(self.epochs, description=f"  {architecture} epochs")

    def epoch_ended(self, architecture: str, epoch: int, logs: dict[str, Any]) -> None:
        super().epoch_ended(architecture, epoch, logs)
        training = self._training(architecture)
        val_loss = logs.get("val_loss")
        note = (f"val_loss {float(val_loss):.4f} (best {training.best_val_loss:.4f} at epoch {training.best_epoch})"
                if val_loss is not None else "")
        self.bars.update(self.epochs, completed=epoch, note=note)

    def stopped_early(self, architecture: str, epoch: int) -> None:
        super().stopped_early(architecture, epoch)
        self._print(f"  {architecture}: early stopping after epoch {epoch} (best val_loss at epoch "
                    f"{self._training(architecture).best_epoch})")

    def training_finished(self, architecture: str) -> None:
        outcome = self._training(architecture).outcome()
        super().training_finished(architecture)
        self._print(f"✓ {self.counter()} {architecture}: {outcome}")
        self.bars.update(self.overall, completed=len(self.finished))
        self.bars.update(self.epochs, visible=False)

    def architecture_cached(self, architecture: str) -> None:
        self._print(f"✓ {self.counter()} {architecture}: {CACHED_TRAINING}")
        self.bars.update(self.overall, completed=len(self.finished))

    def close(self) -> None:
        self.live.stop()

    def log_stream(self, terminal: TextIO) -> Any:
        """Log records printed above the live area, never through it."""
        console = self.console

        class AboveLive:
            def write(self, text: str) -> None:
                if text.strip():
                    console.print(text.rstrip("\n"), highlight=False, markup=False)

            def flush(self) -> None:
                pass

        return AboveLive()


_current: list[LoggingReporter] = [LoggingReporter()]


def reporter() -> LoggingReporter:
    """The reporter events go to in this process (a :class:`LoggingReporter` unless a run installed another)."""
    return _current[-1]


def install(new: LoggingReporter) -> Callable[[], None]:
    """Make ``new`` the reporter of this process; returns the function that closes it and restores the old one."""
    _current.append(new)

    def uninstall() -> None:
        new.close()
        if new in _current:
            _current.remove(new)

    return uninstall


def reporter_for(stream: TextIO) -> LoggingReporter:
    """The live display when ``stream`` is a terminal, plain lines otherwise."""
    return LiveReporter(stream) if stream.isatty() else PlainReporter(stream)


def keras_progress_callback(architecture: str, epochs: int, resumed_from_epoch: int) -> Any:
    """A Keras callback that tells the current reporter of every epoch (counted from 1) and of early stopping.
    Put it after the callbacks that add to the epoch's logs and decide early stopping."""
    import keras

    class ReportProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None) -> None:  # noqa: ANN001 - Keras callback signature
            self.last_epoch = resumed_from_epoch
            reporter().training_started(architecture, epochs, resumed_from_epoch)

        def on_epoch_end(self, epoch: int, logs=None) -> None:  # noqa: ANN001
            self.last_epoch = epoch + 1
            reporter().epoch_ended(architecture, epoch + 1, dict(logs or {}))

        def on_train_end(self, logs=None) -> None:  # noqa: ANN001
            if self.model.stop_training and self.last_epoch < epochs:
                reporter().stopped_early(architecture, self.last_epoch)
            reporter().training_finished(architecture)

    return ReportProgress()


def _step_note(state: Any) -> str:
    """The one-line result of a finished step: its result's ``progress_note()`` or ``summary_line()``."""
    try:
        result = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - a result that cannot be read has no note; the step still counts
        return ""
    if isinstance(result, BaseException):
        return str(result).splitlines()[0] if str(result) else type(result).__name__
    describe = getattr(result, "progress_note", None) or getattr(result, "summary_line", None)
    return describe() if callable(describe) else ""


def report_step(task: Any, task_run: Any, state: Any) -> None:
    """Prefect state hook of every pipeline step (see :func:`seqflow.core.caching.cached`): tell the reporter
    the step finished, how (ran, cached, failed) and its one-line result."""
    name = task_run.name if task.task_run_name else task.name
    status = "failed" if state.is_failed() else ("cached" if state.name == "Cached" else "ran")
    reporter().step(name, status, _step_note(state))
