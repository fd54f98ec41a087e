"""Model heads: one per input/output shape (many-to-one, one-to-many, ...)."""

from rnnkit.models.language_model import LanguageModel, LanguageModelConfig  # noqa: F401
