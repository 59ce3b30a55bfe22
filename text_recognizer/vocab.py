"""The one character vocabulary of the project, used by data, model, staging and predictor.

Index 0 is padding (and the CTC blank), then start, end and unknown tokens, then the characters:
newline (which separates the lines of a paragraph) and printable ASCII.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
CHARACTERS: str = "\n" + "".join(chr(c) for c in range(32, 127))
#: ids of the special tokens and size of the default vocabulary (what the model is built with)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = (SPECIAL_TOKENS.index(t) for t in (PAD, BOS, EOS, UNK))
VOCAB_SIZE = len(SPECIAL_TOKENS) + len(CHARACTERS)

# Characters that often appear in prose but are outside the vocabulary, mapped to a close ASCII form.
_FOLD = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\t": " ",
        "\r": "",
    }
)


@dataclass(frozen=True)
class Vocabulary:
    """Maps text to token indices and back. Build it with :func:`default_vocab` unless loading a manifest."""

    tokens: tuple[str, ...] = SPECIAL_TOKENS + tuple(CHARACTERS)
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {t: i for i, t in enumerate(self.tokens)})

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return self._index[PAD]

    @property
    def bos_id(self) -> int:
        return self._index[BOS]

    @property
    def eos_id(self) -> int:
        return self._index[EOS]

    @property
    def unk_id(self) -> int:
        return self._index[UNK]

    @staticmethod
    def normalize(text: str) -> str:
        """Fold typographic punctuation to ASCII; the model is trained and scored on this form."""
        return text.translate(_FOLD)

    def encode(self, text: str, add_special: bool = True) -> list[int]:
        """Text -> token ids, with ``<s>`` and ``</s>`` around it when ``add_special``."""
        ids = [self._index.get(ch, self.unk_id) for ch in self.normalize(text)]
        return [self.bos_id, *ids, self.eos_id] if add_special else ids

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids -> text; stops at ``</s>``, skips the other special tokens."""
        out: list[str] = []
        n_special = len(SPECIAL_TOKENS)
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= n_special and i < len(self.tokens):
                out.append(self.tokens[i])
        return "".join(out)

    def decode_line(self, ids: Iterable[int]) -> str:
        """Token ids of one line -> its text: one line in, one line out, so a stray newline token becomes a
        space, and the ends are stripped."""
        return " ".join(self.decode(ids).split("\n")).strip()

    def to_list(self) -> list[str]:
        return list(self.tokens)

    @classmethod
    def from_list(cls, tokens: Sequence[str]) -> Vocabulary:
        tokens = tuple(tokens)
        if tokens[: len(SPECIAL_TOKENS)] != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with {SPECIAL_TOKENS}, got {tokens[:4]}")
        return cls(tokens=tokens)


def default_vocab() -> Vocabulary:
    return Vocabulary()
