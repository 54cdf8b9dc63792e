"""The review-sentiment pipeline: sources, splits, tokenisation, training, evaluation, behaviour and serving."""
