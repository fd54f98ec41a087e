"""Model heads: each owns its forward pass, loss and prediction; none owns a training loop."""

from rnnkit.models.classifier import ClassifierConfig, SequenceClassifier

__all__ = ["ClassifierConfig", "SequenceClassifier"]
