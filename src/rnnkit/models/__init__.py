"""Models, one per input/output shape of the seeds; each owns its loss and prediction."""

from rnnkit.models.tagger import SequenceTagger, TaggerConfig

__all__ = ["SequenceTagger", "TaggerConfig"]
