"""Span-level precision, recall and F1 by the conlleval definition, token accuracy, and
word precision, recall and F1 of a segmentation as the SIGHAN bakeoff scorer reports them.

A predicted span counts as correct only when its type, start and end all equal those of a
gold span. With ``tp`` correct spans, ``n_pred`` predicted and ``n_gold`` gold spans::

    precision = tp / n_pred      recall = tp / n_gold      F1 = 2 P R / (P + R)

each taken as 0 when its denominator is 0. Per type the counts are restricted to that type;
"overall" pools the counts of all types (micro average), as conlleval prints it. The
computation is delegated to seqeval's default (conlleval) mode; spans are read with the
same rules as :func:`rnnkit.tagging.schemes.spans`, so IO, BIO and BIOES tags all work.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class PRF:
    precision: float  # correct spans / predicted spans
    recall: float  # correct spans / gold spans
    f1: float  # harmonic mean of precision and recall
    support: int  # number of gold spans


@dataclass(frozen=True)
class SpanScores:
    overall: PRF  # micro average over all types
    per_type: dict[str, PRF]  # one entry per type seen in gold or predicted spans

    def table(self) -> str:
        """A conlleval-like plain-text table: one row per type, then ``overall``."""
        width = max([7, *(len(kind) for kind in self.per_type)])
        lines = [f"{'type':<{width}}  precision  recall     f1  support"]
        for kind, prf in [*self.per_type.items(), ("overall", self.overall)]:
            lines.append(
                f"{kind:<{width}}  {prf.precision:9.4f}  {prf.recall:6.4f}  "
                f"{prf.f1:6.4f}  {prf.support:7d}"
            )
        return "\n".join(lines)


def _check_aligned(gold: list[list[str]], pred: list[list[str]]) -> None:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sequences but pred has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sequence {i}: gold has {len(g)} tags but pred has {len(p)}")


def span_scores(gold: list[list[str]], pred: list[list[str]]) -> SpanScores:
    """conlleval span scores of predicted tag sequences against gold ones, per type and overall.

    >>> s = span_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "I-PER", "O", "O"]])
    >>> (s.overall.precision, s.overall.recall, s.per_type["LOC"].f1)
    (1.0, 0.5, 0.0)
    """
    _check_aligned(gold, pred)
    from seqeval.metrics.sequence_labeling import get_entities, precision_recall_fscore_support

    types = sorted({kind for kind, _, _ in get_entities(gold) + get_entities(pred)})
    if not types:
        return SpanScores(PRF(0.0, 0.0, 0.0, 0), {})
    with warnings.catch_warnings():  # zero_division=0 still warns in seqeval 1.2
        warnings.simplefilter("ignore")
        p, r, f, s = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
        op, orec, of, os_ = precision_recall_fscore_support(
            gold, pred, average="micro", zero_division=0
        )
    per_type = {
        kind: PRF(float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, kind in enumerate(types)
    }
    return SpanScores(PRF(float(op), float(orec), float(of), int(os_)), per_type)


def token_accuracy(gold: list[list[str]], pred: list[list[str]]) -> float:
    """Fraction of tokens whose predicted tag equals the gold tag (POS-style tasks)."""
    _check_aligned(gold, pred)
    total = sum(len(g) for g in gold)
    if total == 0:
        raise ValueError("token_accuracy: no tokens to score")
    pairs = (pair for g, p in zip(gold, pred, strict=True) for pair in zip(g, p, strict=True))
    correct = sum(a == b for a, b in pairs)
    return correct / total


def label_scores(
    gold: list[list[str]], pred: list[list[str]], labels: list[str] | None = None
) -> dict[str, PRF]:
    """Per-label precision, recall and F1 of token labels (punctuation, case, POS).

    Every token is one decision: for label ``c``, tp counts tokens with gold and predicted
    ``c``, precision = tp / tokens predicted ``c``, recall = tp / tokens gold ``c``
    (0 where a denominator is 0), support = tokens gold ``c``. ``labels`` fixes the rows and
    their order (default: every label seen in gold or pred, sorted).

    >>> s = label_scores([["a", "b", "b"]], [["a", "a", "b"]])
    >>> (s["a"].precision, s["a"].recall, s["b"].recall, s["b"].support)
    (0.5, 1.0, 0.5, 2)
    """
    _check_aligned(gold, pred)
    pairs = [pair for g, p in zip(gold, pred, strict=True) for pair in zip(g, p, strict=True)]
    if labels is None:
        labels = sorted({x for pair in pairs for x in pair})
    tps = Counter(g for g, p in pairs if g == p)
    n_preds = Counter(p for _, p in pairs)
    n_golds = Counter(g for g, _ in pairs)
    out = {}
    for c in labels:
        tp, n_pred, n_gold = tps[c], n_preds[c], n_golds[c]
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[c] = PRF(precision, recall, f1, n_gold)
    return out


def macro_f1(scores: dict[str, PRF], exclude: tuple[str, ...] = ()) -> float:
    """Unweighted mean F1 over the labels of ``scores`` not in ``exclude`` (e.g. the majority)."""
    kept = [prf.f1 for label, prf in scores.items() if label not in exclude]
    if not kept:
        raise ValueError("macro_f1: no labels left to average")
    return sum(kept) / len(kept)


@dataclass(frozen=True)
class WordScores:
    """Word scores of a segmentation, the lines of the SIGHAN bakeoff's ``score`` script."""

    precision: float  # correct words / predicted words ("TOTAL TEST WORDS PRECISION")
    recall: float  # correct words / gold words ("TOTAL TRUE WORDS RECALL")
    f1: float  # 2 P R / (P + R) ("F MEASURE")
    gold: int  # gold words ("TOTAL TRUE WORD COUNT")
    predicted: int  # predicted words ("TOTAL TEST WORD COUNT")
    correct: int  # predicted words whose span is a gold word's span
    oov_rate: float | None = None  # gold words not in the lexicon / gold words ("OOV Rate")
    oov_recall: float | None = None  # correct OOV gold words / OOV gold words
    iv_recall: float | None = None  # correct in-lexicon gold words / in-lexicon gold words

    def as_dict(self, prefix: str = "word_") -> dict[str, float]:
        """The scores as flat metrics: ``word_precision``, ..., ``oov_recall`` when known."""
        out = {f"{prefix}{k}": getattr(self, k) for k in ("precision", "recall", "f1")}
        for k in ("oov_rate", "oov_recall", "iv_recall"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        return out


def _offsets(words: list[str]) -> list[tuple[int, int]]:
    """Character offsets ``(start, end)`` of consecutive ``words``."""
    out, start = [], 0
    for word in words:
        out.append((start, start + len(word)))
        start += len(word)
    return out


def _ratio(a: int, b: int) -> float:
    return a / b if b else 0.0


def word_scores(
    gold: list[list[str]], pred: list[list[str]], lexicon: set[str] | None = None
) -> WordScores:
    """Word precision, recall and F1 of predicted segmentations against gold ones.

    Each sentence is given as its list of words; gold and predicted words of a sentence
    must join to the same text. A predicted word is correct when a gold word covers exactly
    the same characters (same start and end offsets), so a word string found elsewhere in
    the sentence does not count. Counts are summed over all sentences (micro average)::

        precision = correct / predicted      recall = correct / gold      F1 = 2 P R / (P + R)

    With ``lexicon`` (the training split's words) the gold words split into OOV (not in the
    lexicon) and IV ones: ``oov_rate`` = OOV gold / gold, ``oov_recall`` = correct OOV gold /
    OOV gold, ``iv_recall`` = correct IV gold / IV gold. Every ratio is 0 when its
    denominator is 0. The SIGHAN script aligns the two word lists with ``diff`` instead of
    offsets; the two agree except on sentences where the same word string sits at different
    offsets in an alignment diff prefers, where diff can count a word that offsets do not.

    >>> s = word_scores([["我", "爱", "北京"]], [["我爱", "北京"]], lexicon={"我", "爱"})
    >>> (s.precision, round(s.recall, 4), s.oov_rate, s.oov_recall, s.iv_recall)
    (0.5, 0.3333, 0.3333333333333333, 1.0, 0.0)
    """
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} sentences but pred has {len(pred)}")
    n_gold = n_pred = correct = oov = oov_correct = 0
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        if "".join(g) != "".join(p):
            raise ValueError(f"sentence {i}: gold and predicted words spell different texts")
        predicted = set(_offsets(p))
        n_gold, n_pred = n_gold + len(g), n_pred + len(p)
        for word, span in zip(g, _offsets(g), strict=True):
            hit = span in predicted
            correct += hit
            if lexicon is not None and word not in lexicon:
                oov, oov_correct = oov + 1, oov_correct + hit
    precision, recall = _ratio(correct, n_pred), _ratio(correct, n_gold)
    f1 = _ratio(2 * correct, n_pred + n_gold)  # = 2 P R / (P + R)
    if lexicon is None:
        return WordScores(precision, recall, f1, n_gold, n_pred, correct)
    iv, iv_correct = n_gold - oov, correct - oov_correct
    return WordScores(
        precision,
        recall,
        f1,
        n_gold,
        n_pred,
        correct,
        _ratio(oov, n_gold),
        _ratio(oov_correct, oov),
        _ratio(iv_correct, iv),
    )
