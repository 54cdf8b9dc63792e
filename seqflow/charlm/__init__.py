"""The character-level language-model pipeline: text sources, encoding, training, generation and serving."""
