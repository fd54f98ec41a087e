"""Sequence tagging: tag schemes, span metrics and data builders for tagging tasks."""

from rnnkit.tagging.metrics import (
    PRF,
    SpanScores,
    label_scores,
    macro_f1,
    span_scores,
    token_accuracy,
)
from rnnkit.tagging.schemes import (
    SCHEMES,
    convert,
    detect_scheme,
    spans,
    spans_to_tags,
    split_tag,
    tag_set,
)

__all__ = [
    "PRF",
    "SCHEMES",
    "SpanScores",
    "convert",
    "detect_scheme",
    "label_scores",
    "macro_f1",
    "span_scores",
    "spans",
    "spans_to_tags",
    "split_tag",
    "tag_set",
    "token_accuracy",
]
