"""Models, one per input/output shape of the seeds; each owns its loss and prediction."""

from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.tagger import SequenceTagger, TaggerConfig

__all__ = [
    "ClassifierConfig",
    "LanguageModel",
    "LanguageModelConfig",
    "SequenceClassifier",
    "SequenceTagger",
    "TaggerConfig",
]
