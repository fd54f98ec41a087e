"""rnnkit.data: tokenizers, vocabularies, input representations, readers, batching and
the registry of datasets that work offline (``rnnkit data list``)."""

from rnnkit.data.batching import (
    BucketBatchSampler,
    PaddedBatch,
    batchify_stream,
    bptt_windows,
    collate_padded,
    compare_padding,
    pad_sequences,
    padding_ratio,
)
from rnnkit.data.errors import DataFormatError, Records
from rnnkit.data.fetching import FetchError, data_home
from rnnkit.data.registry import dataset_dir, fetch
from rnnkit.data.representations import (
    OneHot,
    Vectors,
    build_embedding,
    nb_log_count_ratios,
    ngram_ids,
    read_vectors,
)
from rnnkit.data.tokenizers import (
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    WhitespaceTokenizer,
    WordTokenizer,
    load_tokenizer,
    save_tokenizer,
    tokenizer_from_config,
)
from rnnkit.data.vocab import Vocab

__all__ = [
    "BucketBatchSampler",
    "CharTokenizer",
    "DataFormatError",
    "FetchError",
    "OneHot",
    "PaddedBatch",
    "Records",
    "SentencePieceTokenizer",
    "Tokenizer",
    "Vectors",
    "Vocab",
    "WhitespaceTokenizer",
    "WordTokenizer",
    "batchify_stream",
    "bptt_windows",
    "build_embedding",
    "collate_padded",
    "compare_padding",
    "data_home",
    "dataset_dir",
    "fetch",
    "load_tokenizer",
    "nb_log_count_ratios",
    "ngram_ids",
    "pad_sequences",
    "padding_ratio",
    "read_vectors",
    "save_tokenizer",
    "tokenizer_from_config",
]
