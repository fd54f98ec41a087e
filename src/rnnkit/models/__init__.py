"""Models, one per input/output shape of the seeds; each owns its loss and prediction.

All build their recurrent stack with :func:`rnnkit.models.encoder.build_encoder` from the one
cell registry, and meet the drivers through the protocols of :mod:`rnnkit.models.contract`.
"""

from rnnkit.models.classifier import ClassifierConfig, Prediction, SequenceClassifier
from rnnkit.models.contract import (
    Carrying,
    ModelContractError,
    Predicting,
    Stepping,
    Traceable,
    Trainable,
    require,
)
from rnnkit.models.ctc import CTCRecognizer, CTCRecognizerConfig, Transcript
from rnnkit.models.encoder import CELLS, CellKind, RecurrentConfig, build_encoder, register_cell
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig
from rnnkit.models.recommender import Recommendations, RecommenderConfig, SessionRecommender
from rnnkit.models.recurrent import RecurrentModel, RecurrentModelConfig
from rnnkit.models.seq2seq import Seq2Seq, Seq2SeqConfig, Seq2SeqEnsemble, Translation
from rnnkit.models.siamese import SiameseConfig, SiameseEncoder, Similarity
from rnnkit.models.tagger import SequenceTagger, Tagged, TaggerConfig

__all__ = [
    "CELLS",
    "CTCRecognizer",
    "CTCRecognizerConfig",
    "Carrying",
    "CellKind",
    "ClassifierConfig",
    "LanguageModel",
    "LanguageModelConfig",
    "ModelContractError",
    "Predicting",
    "Prediction",
    "Recommendations",
    "RecommenderConfig",
    "RecurrentConfig",
    "RecurrentModel",
    "RecurrentModelConfig",
    "Seq2Seq",
    "Seq2SeqConfig",
    "Seq2SeqEnsemble",
    "SequenceClassifier",
    "SequenceTagger",
    "SessionRecommender",
    "SiameseConfig",
    "SiameseEncoder",
    "Similarity",
    "Stepping",
    "Tagged",
    "TaggerConfig",
    "Traceable",
    "Trainable",
    "Transcript",
    "Translation",
    "build_encoder",
    "register_cell",
    "require",
]
