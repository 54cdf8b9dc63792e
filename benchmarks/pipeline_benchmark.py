"""Benchmark the real ``seqflow run`` pipeline and record the numbers in BENCHMARKS.md.

Runs :func:`seqflow.flows.sentiment.sentiment_flow` in this process, with the configuration resolved exactly
as the CLI resolves it (profile, then ``SEQFLOW_*`` settings, then ``--arch``/``--source``/``--seed``/``--set``),
but against throwaway state in a temporary folder: a fresh MLflow SQLite store and artifact root, a fresh
seqflow artifacts folder, and a temporary Prefect server with its own database. The user's ``mlflow.db``,
``seqflow_artifacts/`` and Prefect database are never touched.

Per architecture it reports epochs run, best validation accuracy, test accuracy, ROC AUC, the train-validation
accuracy gap at the last epoch, training seconds and seconds per epoch (taken from the returned
:class:`~seqflow.sentiment.comparison.RunSummary` and the child runs in the temporary MLflow store), prints the table, and
writes or updates one section of a markdown file, keyed by profile name, leaving the rest of the file alone.

Usage::

    uv run python benchmarks/pipeline_benchmark.py [--profile quick] [--arch NAME ...] [--set k=v ...]
                                                    [--twice] [--output BENCHMARKS.md]

``--twice`` runs the same flow a second time against the same Prefect server, MLflow store and artifacts
folder, as a second ``seqflow run`` would, and records the second run's wall time next to the first: with the
same inputs every cached task is reused (see ``seqflow.core.caching``), so only tracking remains.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Iterator, Sequence

from seqflow.cli import add_arch_option, add_config_options, configure_runtime, resolve_config
from seqflow.sentiment.config import ALL_ARCHITECTURES, PipelineConfig
from seqflow.core.errors import SeqflowError
from seqflow.core.settings import ENV_CONFIG_KEYS, TrackingSettings, load_settings
from seqflow.core.records import carried_over
from seqflow.sentiment.comparison import ComparisonRow, RunSummary

logger = logging.getLogger("seqflow.benchmark")

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT_PATH = "benchmarks/pipeline_benchmark.py"
DEFAULT_OUTPUT = REPO_ROOT / "BENCHMARKS.md"
REPRODUCE_PREFIX = ("uv", "run", "python", SCRIPT_PATH)

FILE_HEADER = (
    "# seqflow benchmarks\n\n"
    f"Every number here was measured by `{SCRIPT_PATH}` on the machine described in its section, never by unit tests.\n"
)
# One section per distinct pipeline command, so a run with overrides never replaces the plain profile's numbers.
SECTION_HEADING = "## `{command}`"
TWICE_HEADING_SUFFIX = ", twice (caching)"
# Lines starting with this open or close a fenced code block, inside which "## " is not a heading.
CODE_FENCE = "```"
# A section ends at the next heading of this level or higher ("# " or "## ").
SECTION_END_PREFIXES = ("# ", "## ")

TEMP_PREFIX = "seqflow-benchmark-"
# The temporary Prefect server applies its database migrations on start; the flow tests allow it as long.
PREFECT_STARTUP_TIMEOUT_S = 120
# Environment variables set for the whole benchmark process (offline analytics off, no TensorFlow C++ notes).
RUNTIME_ENVIRONMENT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
# The seqflow config key that the benchmark points into its temporary folder.
ARTIFACTS_DIR_KEY = "artifacts_dir"

# Distributions whose versions describe the software stack; the first installed name of each entry is used.
SOFTWARE = {
    "TensorFlow": ("tensorflow", "tensorflow-cpu"),
    "Keras": ("keras",),
    "MLflow": ("mlflow",),
    "Prefect": ("prefect",),
}
KIB_PER_GIB = 1024**2
SPLITS = ("train", "validation", "test")
# The summary's test accuracy and the child run's logged metric must agree to this many decimal places.
METRIC_AGREEMENT_TOLERANCE = 1e-6
MISSING = "-"
# Exit status of a run stopped with Ctrl-C, as the seqflow CLI uses (128 + SIGINT).
INTERRUPTED_EXIT_CODE = 130

TABLE_HEADER = (
    "architecture",
    "epochs",
    "best val acc",
    "test acc",
    "ROC AUC",
    "gap at end",
    "train seconds",
    "seconds/epoch",
)
# Markdown alignment per column: architecture left, numbers right.
TABLE_ALIGNMENT = (":---",) + ("---:",) * (len(TABLE_HEADER) - 1)


@dataclass(frozen=True)
class ArchitectureResult(ComparisonRow):
    """One row of the benchmark table: the run's comparison row, with the seconds per epoch its MLflow run logged."""

    seconds_per_epoch: float = math.nan

    @property
    def train_seconds(self) -> float:
        return self.seconds


@dataclass(frozen=True)
class DataDescription:
    source: str
    limit: int | None
    rows: dict[str, int]
    max_length: int
    vocab_configured: int
    vocab_learned: int | None
    seed: int


@dataclass(frozen=True)
class BenchmarkResult:
    profile: str
    command: str
    seqflow_command: str
    date_utc: str
    machine: list[tuple[str, str]]
    data: DataDescription
    setup_seconds: float
    flow_seconds: float
    rows: list[ArchitectureResult]
    # With --twice: the second run's wall time and what each of its tasks did.
    second_flow_seconds: float | None = None
    second_task_lines: tuple[str, ...] = ()


# --- command line -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options; the config options use the CLI's names so :func:`resolve_config` reads them."""
    parser = argparse.ArgumentParser(
        prog=SCRIPT_PATH, description="Run the seqflow pipeline on throwaway state and record timings and accuracy."
    )
    # The same --profile/--source/--seed/--set as `seqflow run`, so resolve_config reads them identically.
    add_config_options(parser)
    add_arch_option(parser, ALL_ARCHITECTURES, "benchmark only this architecture (repeatable; default: the profile's list)")
    parser.add_argument(
        "--twice",
        action="store_true",
        help="run the flow a second time with the same inputs and record its (cached) wall time",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file to write or update")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--keep-temp", action="store_true", help="keep the temporary folder and print its path")
    return parser


def _display_path(path: Path) -> str:
    """``path`` relative to the repository root when it lies inside it, else as given."""
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def reproduce_command(args: argparse.Namespace, profile: str, environment: dict[str, str]) -> str:
    """The exact command that repeats this benchmark, with any ``SEQFLOW_*`` settings that shaped the config."""
    argv: list[str] = [*REPRODUCE_PREFIX, "--profile", profile]
    argv += _config_flags(args)
    if args.twice:
        argv += ["--twice"]
    if args.output.resolve() != DEFAULT_OUTPUT.resolve():
        argv += ["--output", _display_path(args.output)]
    prefix = [f"{name}={shlex.quote(value)}" for name, value in environment.items()]
    return " ".join([*prefix, shlex.join(argv)])


def seqflow_command(args: argparse.Namespace, profile: str) -> str:
    """The ``seqflow run`` command that trains the same configuration against the user's own stores."""
    return shlex.join(["seqflow", "run", "--profile", profile, *_config_flags(args)])


def _config_flags(args: argparse.Namespace) -> list[str]:
    flags: list[str] = []
    for architecture in dict.fromkeys(args.architectures or ()):
        flags += ["--arch", architecture]
    if args.source:
        flags += ["--source", args.source]
    if args.seed is not None:
        flags += ["--seed", str(args.seed)]
    for assignment in args.assignments:
        flags += ["--set", assignment]
    return flags


# --- throwaway state --------------------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_folder(keep: bool) -> Iterator[Path]:
    """A temporary folder, removed afterwards unless ``keep``."""
    if keep:
        path = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
        logger.info("keeping the benchmark's temporary folder: %s", path)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as folder:
        yield Path(folder)


def benchmark_settings(user_settings: TrackingSettings, scratch: Path) -> TrackingSettings:
    """The user's settings with the MLflow store, artifact root and seqflow artifacts moved into ``scratch``.

    Other ``SEQFLOW_*`` config overrides (e.g. the seed) are kept, as the CLI would apply them.
    """
    overrides = tuple((key, value) for key, value in user_settings.config_overrides if key != ARTIFACTS_DIR_KEY)
    return user_settings.model_copy(
        update={
            "tracking_uri": f"sqlite:///{scratch / 'mlflow.db'}",
            "artifact_location": (scratch / "mlartifacts").as_uri(),
            "config_overrides": ((ARTIFACTS_DIR_KEY, str(scratch / "seqflow_artifacts")), *overrides),
        }
    )


def environment_overrides(user_settings: TrackingSettings) -> dict[str, str]:
    """``SEQFLOW_*`` variables (from the environment or mlflow.env) that change the benchmarked config."""
    names = {key: name for name, key in ENV_CONFIG_KEYS.items()}
    return {names[key]: value for key, value in user_settings.config_overrides if key != ARTIFACTS_DIR_KEY}


# --- measurements -----------------------------------------------------------------------------------------


def _metric(metrics: dict[str, float], name: str) -> float:
    return metrics.get(name, math.nan)


def collect_results(settings: TrackingSettings, summary: RunSummary) -> tuple[list[ArchitectureResult], dict[str, float]]:
    """Table rows (summary first, MLflow child runs for seconds per epoch) and the parent run's metrics."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    parent = client.get_run(summary.parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{summary.parent_run_id}'"
    )
    child_metrics = {run.data.tags.get("architecture"): run.data.metrics for run in children}
    results = []
    for row in summary.rows:
        metrics = child_metrics.get(row.architecture, {})
        logged_accuracy = _metric(metrics, "test_accuracy")
        if not math.isclose(logged_accuracy, row.test_accuracy, abs_tol=METRIC_AGREEMENT_TOLERANCE):
            logger.warning(
                "%s: test accuracy %.6f in the summary but %.6f in MLflow", row.architecture, row.test_accuracy, logged_accuracy
            )
        results.append(carried_over(ArchitectureResult, row, seconds_per_epoch=_metric(metrics, "seconds_per_epoch")))
    return results, dict(parent.data.metrics)


def describe_data(config: PipelineConfig, parent_metrics: dict[str, float]) -> DataDescription:
    vocab_learned = parent_metrics.get("vocab_size")
    return DataDescription(
        source=config.data.source,
        limit=config.data.limit,
        rows={split: int(parent_metrics.get(f"rows_{split}", 0)) for split in SPLITS},
        max_length=config.tokenisation.max_length,
        vocab_configured=config.tokenisation.vocab_size,
        vocab_learned=int(vocab_learned) if vocab_learned is not None else None,
        seed=config.seed,
    )


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or "unknown CPU"


def _memory() -> str:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / KIB_PER_GIB:.1f} GiB"
    return "unknown"


def _operating_system() -> str:
    pretty = None
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                pretty = line.partition("=")[2].strip().strip('"')
    kernel = f"{platform.system()} {platform.release()}"
    return f"{pretty} ({kernel})" if pretty else platform.platform()


def _package_version(distributions: Sequence[str]) -> str:
    for name in distributions:
        try:
            return f"{version(name)} ({name})" if len(distributions) > 1 else version(name)
        except PackageNotFoundError:
            continue
    return "not installed"


def describe_machine() -> list[tuple[str, str]]:
    return [
        ("CPU", _cpu_model()),
        ("Cores", f"{os.cpu_count()} logical CPUs (os.cpu_count())"),
        ("RAM", _memory()),
        ("OS", _operating_system()),
        ("Python", platform.python_version()),
        *((label, _package_version(names)) for label, names in SOFTWARE.items()),
    ]


# Hooks for other benchmarks (benchmarks/quality.py): change the resolved config before the flow runs, and
# measure more inside the throwaway folder after it (the flow's arrays are still there).
ConfigHook = Callable[[PipelineConfig], PipelineConfig]
AfterFlowHook = Callable[[PipelineConfig, TrackingSettings, RunSummary], None]


def run_benchmark(
    args: argparse.Namespace, adjust_config: ConfigHook | None = None, after_flow: AfterFlowHook | None = None
) -> BenchmarkResult:
    """Resolve the config, run the flow once on throwaway state, and gather the numbers."""
    user_settings = load_settings()
    profile = args.profile or user_settings.default_profile
    with scratch_folder(args.keep_temp) as scratch:
        settings = benchmark_settings(user_settings, scratch)
        config = resolve_config(args, settings)
        if adjust_config is not None:
            config = adjust_config(config)
        logger.info("benchmarking profile %s: %s", config.profile, ", ".join(config.training.architectures))

        # Prefect and the flow modules are imported only now, after main() has set the environment.
        from prefect.testing.utilities import prefect_test_harness

        from seqflow.flows.sentiment import sentiment_flow
        from seqflow.core.tracking import Tracker

        setup_started = time.perf_counter()
        # A temporary Prefect server with its own database, stopped when the block ends.
        with prefect_test_harness(server_startup_timeout=PREFECT_STARTUP_TIMEOUT_S):
            # Create the MLflow store and experiment now, so the flow time holds no schema migrations.
            Tracker(settings)
            setup_seconds = time.perf_counter() - setup_started
            flow_started = time.perf_counter()
            summary = sentiment_flow(config, settings)
            flow_seconds = time.perf_counter() - flow_started
            second_seconds, second_lines = None, ()
            if args.twice:
                second_started = time.perf_counter()
                second = sentiment_flow(config, settings)
                second_seconds = time.perf_counter() - second_started
                second_lines = tuple(status.line() for status in second.tasks)
                ran = [status.task for status in second.tasks if status.status != "cached"]
                if ran:
                    logger.warning("the second run reran %s although nothing changed", ", ".join(ran))
            if after_flow is not None:
                after_flow(config, settings, summary)
        rows, parent_metrics = collect_results(settings, summary)

    return BenchmarkResult(
        profile=config.profile,
        command=reproduce_command(args, profile, environment_overrides(user_settings)),
        seqflow_command=seqflow_command(args, profile),
        date_utc=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=describe_machine(),
        data=describe_data(config, parent_metrics),
        setup_seconds=setup_seconds,
        flow_seconds=flow_seconds,
        rows=rows,
        second_flow_seconds=second_seconds,
        second_task_lines=second_lines,
    )


# --- markdown ---------------------------------------------------------------------------------------------


def _number(value: float, spec: str) -> str:
    return MISSING if math.isnan(value) else format(value, spec)


def render_table(rows: Sequence[ArchitectureResult]) -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "|".join(TABLE_ALIGNMENT) + "|"]
    for row in rows:
        cells = (
            row.architecture,
            str(row.epochs),
            _number(row.best_val_accuracy, ".4f"),
            _number(row.test_accuracy, ".4f"),
            _number(row.roc_auc, ".4f"),
            _number(row.gap_at_end, "+.4f"),
            _number(row.train_seconds, ".1f"),
            _number(row.seconds_per_epoch, ".2f"),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section_heading(result: BenchmarkResult) -> str:
    heading = SECTION_HEADING.format(command=result.seqflow_command)
    # A run measured twice gets its own section: the numbers of a single run stay where they are.
    return f"{heading}{TWICE_HEADING_SUFFIX}" if result.second_flow_seconds is not None else heading


def render_section(result: BenchmarkResult) -> str:
    data = result.data
    rows = " / ".join(f"{data.rows[split]:,} {split}" for split in SPLITS)
    limit = f" (stratified sample of {data.limit:,})" if data.limit is not None else ""
    learned = f", {data.vocab_learned:,} learned" if data.vocab_learned is not None else ""
    machine = "\n".join(f"- {label}: {value}" for label, value in result.machine)
    return "\n".join(
        [
            section_heading(result),
            "",
            "Reproduce:",
            "",
            f"{CODE_FENCE}sh",
            result.command,
            CODE_FENCE,
            "",
            f"The same pipeline as `{result.seqflow_command}`, run in-process on a temporary MLflow store, "
            "artifact folder and Prefect server.",
            "",
            f"Measured {result.date_utc} on:",
            "",
            machine,
            "",
            f"Data: source `{data.source}`{limit}; {rows} rows; max_length {data.max_length}; "
            f"vocabulary {data.vocab_configured:,} configured{learned}; seed {data.seed}.",
            "",
            f"Total wall time of the flow: {result.flow_seconds:.1f} s, from loading the data to registering the models "
            "(TensorFlow is first imported inside it, as in `seqflow run`); before it, "
            f"{result.setup_seconds:.1f} s to start the temporary Prefect server and create the MLflow store.",
            "",
            render_table(result.rows),
            "",
            *_second_run_lines(result),
        ]
    )


def _second_run_lines(result: BenchmarkResult) -> list[str]:
    """With --twice: the cached second run's wall time, its ratio to the first, and what each task did."""
    if result.second_flow_seconds is None:
        return []
    ratio = result.second_flow_seconds / result.flow_seconds
    return [
        f"Second run with the same inputs, same Prefect server, MLflow store and artifacts folder: "
        f"{result.second_flow_seconds:.1f} s, {ratio:.3f} of the first run's {result.flow_seconds:.1f} s. Its tasks:",
        "",
        CODE_FENCE,
        *result.second_task_lines,
        CODE_FENCE,
        "",
    ]


def replace_section(document: str, heading: str, section: str) -> str:
    """``document`` with the section under ``heading`` replaced by ``section``, or ``section`` appended."""
    lines = document.splitlines()
    start = end = None
    in_fence = False
    for index, line in enumerate(lines):
        if line.startswith(CODE_FENCE):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        if start is None and line.strip() == heading:
            start = index
        elif start is not None and line.startswith(SECTION_END_PREFIXES):
            end = index
            break
    new_lines = section.rstrip("\n").splitlines()
    if start is None:
        before = document.rstrip("\n")
        return f"{before}\n\n" + "\n".join(new_lines) + "\n" if before else "\n".join(new_lines) + "\n"
    after = lines[end:] if end is not None else []
    merged = lines[:start] + new_lines + ([""] + after if after else [])
    return "\n".join(merged) + "\n"


def write_report(path: Path, result: BenchmarkResult) -> None:
    existing = path.read_text(encoding="utf-8") if path.is_file() else FILE_HEADER
    heading = section_heading(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(existing, heading, render_section(result)), encoding="utf-8")


# --- entry point ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.update(RUNTIME_ENVIRONMENT)
    configure_runtime(args.log_level)
    try:
        result = run_benchmark(args)
    except SeqflowError as error:
        print(f"{SCRIPT_PATH}: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(f"{SCRIPT_PATH}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_CODE
    write_report(args.output, result)
    print()
    print(f"profile {result.profile}: flow {result.flow_seconds:.1f} s (set-up {result.setup_seconds:.1f} s)")
    if result.second_flow_seconds is not None:
        print(f"second run: {result.second_flow_seconds:.1f} s ({result.second_flow_seconds / result.flow_seconds:.3f} of the first)")
    print(render_table(result.rows))
    print(f"\nwrote section {section_heading(result)!r} to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
