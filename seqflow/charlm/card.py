"""The character-model pipeline's part of a version's model card (see :mod:`seqflow.core.cards`): what a
character language model is, takes and returns, the text it learned from, its training, its validation
perplexity beside the count baselines on the same characters, and a sample of what it writes."""

from __future__ import annotations

from seqflow.core.cards import CardContent, CardFacts, count, input_and_output, number, table
from seqflow.core.pipeline import Card

PURPOSE = (
    "A character-level language model of one corpus: given a prefix, it continues the text one character at a "
    "time (`seqflow generate`). Trained from scratch by `seqflow charlm run`; the champion is the version with the "
    "lowest validation perplexity that passes the profile's gates (a ceiling, and beating the n-gram baseline)."
)
SPLITS = ("train", "validation")
# Characters of the latest sample shown on the card.
SAMPLE_CHARS = 600
NOT_DECIDING = ("artifacts_dir", "data.", "contracts.", "promotion.", "sampling.", "profile", "training.checkpoint")


def _latest_sample(facts: CardFacts) -> str:
    paths = sorted(path for path in facts.artifact_paths("samples") if path.endswith(".txt"))
    text = facts.read_text(paths[-1]) if paths else None
    if not text:
        return "No sample was logged."
    return f"The last sample the run logged (`{paths[-1]}`, first {SAMPLE_CHARS} characters):\n\n```text\n{text[:SAMPLE_CHARS]}\n```"


def charlm_card(facts: CardFacts) -> CardContent:
    """The character-model sections of ``facts``' card."""
    metric, parent = facts.metrics.get, facts.parent_metrics
    data_rows = [
        (split, count(parent.get(f"chars_{split}")), f"`{facts.tag(f'{split}_digest')[:16]}`") for split in SPLITS
    ]
    deciding = sorted(
        (key, value) for key, value in facts.params.items()
        if value not in ("", "None") and not key.startswith(NOT_DECIDING) and key != "architecture"
    )
    ngram_order = count(metric("baseline_ngram_order"))
    # A mixture model (training.ngram_interpolation): its network alone too.
    mixture = metric("mixture_weight") is not None
    network_row = [("its network alone", number(metric("network_val_loss")), number(metric("network_val_perplexity")))]
    results = table(("model, on the validation text", "loss (nats/char)", "perplexity"), [
        (f"this model ({facts.architecture})", number(metric("best_val_loss")), number(metric("best_val_perplexity"))),
        *(network_row if mixture else []),
        (f"{ngram_order}-gram count baseline", number(metric("baseline_ngram_val_loss")),
         number(metric("baseline_ngram_val_perplexity"))),
        ("unigram baseline", number(metric("baseline_unigram_val_loss")), number(metric("baseline_unigram_val_perplexity"))),
    ])
    what_it_is = (
        f"`{facts.architecture}`: a character-level language model ({count(metric('parameters'))} parameters) "
        "trained from scratch with Keras 3; it predicts the next character and samples a continuation."
    ) + (
        f" Its predictions are a mixture: {number(metric('mixture_weight'))} × the network's + the rest × the "
        f"{ngram_order}-gram count model's of the training text (the weight chosen on the validation text)."
        if mixture else ""
    )
    return CardContent(
        title=f"{facts.architecture} character language model",
        sections=[
            ("What it is", what_it_is),
            input_and_output([
                ("input", "prefix", "string", "text to continue (characters it never saw read as its unknown marker)"),
                ("input", "length", "long", "characters to generate"),
                ("input", "temperature", "double", "sampling temperature (lower: safer, more repetitive)"),
                ("input", "seed", "long, optional", "makes the sample repeatable"),
                ("output", "text / continuation", "string", "prefix plus continuation / the continuation alone"),
            ]),
            ("Data", f"Source: `{facts.tag('source')}`; dataset digest `{facts.tag('dataset_digest')[:16]}`; "
             f"{count(parent.get('vocab_size'))} characters in the vocabulary; "
             f"{number(parent.get('unseen_share_validation'), 4)} of the validation characters unseen in training."
             "\n\n" + table(("split", "characters", "content digest"), data_rows)),
            ("Training", f"Profile `{facts.tag('profile')}`; {count(metric('epochs_run'))} epochs, best epoch "
             f"{count(metric('best_epoch'))}, {number(metric('train_seconds'), 1)} s.\n\nSettings that decide the "
             "model:\n\n" + table(("setting", "value"), deciding)),
            ("Results", "Scored once on the held-out validation text, read as parallel streams like training.\n\n"
             + results + "\n\n![per-epoch curves](plots/learning_curves.png)\n\n" + _latest_sample(facts)),
        ],
        usage=[f'seqflow generate --model-uri {facts.model_uri} --prefix "ROMEO:" --length 200 --seed 1'],
        limits=[
            "Knows only its corpus's characters and style; a prefix from elsewhere gives text in the corpus's style.",
            "Perplexity is measured on one held-out part of the same corpus, not on other text.",
            "Samples are random: the same prefix gives other text unless a seed is given.",
        ],
    )


CARD = Card(purpose=PURPOSE, content=charlm_card)
