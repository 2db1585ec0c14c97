"""Preprocessing options: one typed dataclass, the single home of every default.

`run_preprocess(**flags)` and preprocess.py's command line (uer_like/cli.py takes its defaults from here)
read the same `PreprocessOptions`, so the library and the command write the same dataset for the same flags.
"""
import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

from .corpus import DEFAULT_CHUNK_BYTES

MASKING_PROCESSORS = ("bert", "albert", "mlm", "t5", "bart")  # the processors whose instances carry masks
SENTENCE_PROCESSORS = ("bert", "albert", "bart", "gsg")  # they read documents of sentences (corpus format bert)
SENTENCE_SELECTION_STRATEGIES = ("lead", "random")  # gsg: UER-py's --sentence_selection_strategy


@dataclass(frozen=True)
class PreprocessOptions:
    corpus_path: Optional[str] = None
    vocab_path: Optional[str] = None
    dataset_path: Optional[str] = None
    data_processor: str = "bert"
    seq_length: int = 128
    dup_factor: int = 5  # UER-py's: masked copies of each instance (static masking, sentence pairing)
    dynamic_masking: bool = False
    whole_word_masking: bool = False
    mask_prob: float = 0.15
    mask_decision: str = "word"
    seed: int = 7
    tokenizer: str = "bert"
    spm_model_path: Optional[str] = None
    do_lower_case: bool = True
    corpus_format: Optional[str] = None  # None: bert for the bert/albert processors, line otherwise
    invalid_lines: str = "skip"
    max_invalid_fraction: float = 0.1
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    processes_num: int = 1
    short_seq_prob: float = 0.1
    user_dict: Optional[str] = None
    implementation: str = "auto"
    span_masking: bool = False
    span_geo_prob: float = 0.2
    span_max_length: int = 10
    ngram_masking: bool = False
    ngram_probs: Optional[Tuple[float, ...]] = None
    macbert_masking: bool = False
    similar_words_path: Optional[str] = None
    pert_masking: bool = False
    pert_window: int = 16
    tgt_seq_length: int = 128  # gsg: the longest target (UER-py's flag)
    sentence_selection_strategy: str = "lead"  # gsg: the first sentences of a document or random ones

    def __post_init__(self):
        if self.corpus_format is None:
            fmt = "bert" if self.data_processor in SENTENCE_PROCESSORS else "line"
            object.__setattr__(self, "corpus_format", fmt)
        if self.ngram_probs is not None:
            object.__setattr__(self, "ngram_probs", tuple(self.ngram_probs))

    @classmethod
    def from_flags(cls, **kw):
        """Keyword options as preprocess.py's flags (None for a flag left to its default)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(kw) - names
        if unknown:
            raise TypeError(f"unknown preprocess options: {sorted(unknown)}; valid: {', '.join(sorted(names))}")
        return cls(**kw)

    def as_dict(self):
        return dataclasses.asdict(self)

    @property
    def uses_masks(self):
        return self.data_processor in MASKING_PROCESSORS

    @property
    def static_masking(self):
        return self.uses_masks and not self.dynamic_masking

    @property
    def effective_dups(self):
        # duplicates only differ where something is random: sentence pairing or permutation, random gap sentences,
        # static masks
        if self.data_processor in ("bert", "albert", "bart") or self.static_masking or \
                (self.data_processor == "gsg" and self.sentence_selection_strategy == "random"):
            return self.dup_factor
        return 1


DEFAULTS = PreprocessOptions()
