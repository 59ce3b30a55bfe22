"""ResNet image encoder + Transformer character decoder, with a key/value cache and an auxiliary CTC head.

Shapes (B batch, H x W input, D = ``d_model``, S = encoder positions, T = tokens, L = decoder layers,
N = heads, E = D / N):

- image ``[B, 1, H, W]`` float in ``[0, 1]``, ink bright (see :mod:`text_recognizer.images`)
- feature map ``[B, D, H/16, W/4]`` -> memory ``[B, S, D]`` with ``S = H/16 * W/4``
- cross-attention keys/values, computed once per image: ``[L, B, N, S, E]`` each
- self-attention cache: ``[L, B, N, T, E]`` each, grown by one position per decoding step
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from text_recognizer.vocab import BOS_ID, EOS_ID, PAD_ID, VOCAB_SIZE


@dataclass
class ModelConfig:
    """Every size of the model. ``vocab_size`` and ``input_height`` come from the data module's config()."""

    vocab_size: int = VOCAB_SIZE
    input_height: int = 32
    channels: tuple[int, ...] = (32, 64, 128, 128)
    blocks: tuple[int, ...] = (1, 1, 1, 1)
    # stride of each stage (the stem halves both axes first): H/16 and W/4 overall
    strides: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (2, 1), (2, 1))
    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    ffn_dim: int = 512
    dropout: float = 0.1
    max_len: int = 160
    ctc_head: bool = True
    #: BiLSTM layers over the column features before the CTC head (0: the head reads the columns directly)
    ctc_context_layers: int = 2
    #: hidden size of each direction of that BiLSTM
    ctc_context_hidden: int = 128
    pad_id: int = PAD_ID
    bos_id: int = BOS_ID
    eos_id: int = EOS_ID

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        d = dict(d)
        for key in ("channels", "blocks"):
            if key in d:
                d[key] = tuple(d[key])
        if "strides" in d:
            d["strides"] = tuple(tuple(s) for s in d["strides"])
        return cls(**d)


# ------------------------------------------------------------------------------------------- encoder


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18 style).

    ``[B, Ci, H, W] -> [B, Co, H/s, W/s]``
    """

    def __init__(self, c_in: int, c_out: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != (1, 1) or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """``[B, 1, H, W] -> [B, D, H/16, W/4]``"""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        c0 = cfg.channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(1, c0, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c0), nn.ReLU(inplace=True)
        )
        layers: list[nn.Module] = []
        c_in = c0
        for c_out, n_blocks, stride in zip(cfg.channels, cfg.blocks, cfg.strides, strict=True):
            layers.append(BasicBlock(c_in, c_out, stride))
            layers.extend(BasicBlock(c_out, c_out, (1, 1)) for _ in range(n_blocks - 1))
            c_in = c_out
        self.stages = nn.Sequential(*layers)
        self.proj = nn.Conv2d(c_in, cfg.d_model, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.stages(self.stem(x)))


def sinusoid(n: int, d: int) -> Tensor:
    """1-D sinusoidal table ``[n, d]``."""
    pos = torch.arange(n, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    pe = torch.zeros(n, d)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)
    return pe


class PositionalEncoding2D(nn.Module):
    """Adds a 2-D sinusoidal encoding: half the channels encode the row, half the column.
    ``[B, D, h, w] -> [B, D, h, w]`` for any ``h <= max_h``, ``w <= max_w`` (sliced tables: ONNX-friendly).
    """

    rows: Tensor
    cols: Tensor

    def __init__(self, d: int, max_h: int = 256, max_w: int = 2048) -> None:
        super().__init__()
        self.register_buffer("rows", sinusoid(max_h, d // 2).T.contiguous(), persistent=False)  # [D/2, max_h]
        self.register_buffer("cols", sinusoid(max_w, d // 2).T.contiguous(), persistent=False)  # [D/2, max_w]

    def forward(self, f: Tensor) -> Tensor:
        h, w = f.shape[2], f.shape[3]
        rows = self.rows[:, :h].unsqueeze(2).expand(-1, -1, w)
        cols = self.cols[:, :w].unsqueeze(1).expand(-1, h, -1)
        return f + torch.cat([rows, cols], dim=0).unsqueeze(0)


class ColumnContext(nn.Module):
    """Context over the whole line for the CTC head: a bidirectional LSTM over the column features with a
    residual connection (the "CTC shortcut" of Retsinas et al. 2022, on top of the ResNet columns).

    ``[B, W', D] -> [B, W', D]``
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        n = cfg.ctc_context_layers
        self.lstm = nn.LSTM(
            cfg.d_model,
            cfg.ctc_context_hidden,
            num_layers=n,
            batch_first=True,
            bidirectional=True,
            dropout=cfg.dropout if n > 1 else 0.0,
        )
        self.proj = nn.Linear(2 * cfg.ctc_context_hidden, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, columns: Tensor) -> Tensor:
        y, _ = self.lstm(columns)
        return self.norm(columns + self.drop(self.proj(y)))


# ------------------------------------------------------------------------------------------- decoder


class Attention(nn.Module):
    """Multi-head attention written out, so that the cache is explicit and exports cleanly to ONNX."""

    def __init__(self, d: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n, self.e = n_heads, d // n_heads
        self.q = nn.Linear(d, d)
        self.kv = nn.Linear(d, 2 * d)
        self.out = nn.Linear(d, d)
        self.drop = nn.Dropout(dropout)

    def split(self, x: Tensor) -> Tensor:
        """``[B, T, D] -> [B, N, T, E]``"""
        b, t, _ = x.shape
        return x.view(b, t, self.n, self.e).transpose(1, 2)

    def keys_values(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``[B, T, D] -> ([B, N, T, E], [B, N, T, E])``"""
        k, v = self.kv(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def attend(self, x: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None) -> Tensor:
        """Queries from ``x [B, T, D]`` over ``k, v [B, N, S, E]`` -> ``[B, T, D]``; ``mask [T, S]`` adds."""
        q = self.split(self.q(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.e)
        if mask is not None:
            scores = scores + mask
        w = self.drop(scores.softmax(dim=-1))
        y = (w @ v).transpose(1, 2)
        return self.out(y.reshape(y.shape[0], y.shape[1], -1))


class DecoderLayer(nn.Module):
    """Pre-norm layer: causal self-attention, cross-attention to the image, feed-forward.

    ``[B, T, D] -> [B, T, D]``
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.self_attn = Attention(d, cfg.n_heads, cfg.dropout)
        self.cross_attn = Attention(d, cfg.n_heads, cfg.dropout)
        self.ffn = nn.Sequential(
            nn.Linear(d, cfg.ffn_dim), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(cfg.ffn_dim, d)
        )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: Tensor,
        cross_k: Tensor,
        cross_v: Tensor,
        past_k: Tensor | None = None,
        past_v: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Returns the output ``[B, T, D]`` and this layer's self-attention keys/values ``[B, N, T', E]``
        (the past ones with the new ones appended)."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if past_k is not None and past_v is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        x = x + self.drop(self.self_attn.attend(h, k, v, mask))
        x = x + self.drop(self.cross_attn.attend(self.norm2(x), cross_k, cross_v))
        x = x + self.drop(self.ffn(self.norm3(x)))
        return x, k, v


class ResNetTransformer(nn.Module):
    """The recognizer. Training uses :meth:`forward` (teacher forcing); inference uses :meth:`encode`,
    :meth:`cross_keys_values` and :meth:`decode_step` (or :meth:`greedy_decode`, which chains them)."""

    pos_1d: Tensor

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.encoder = ResNetEncoder(cfg)
        self.pos_2d = PositionalEncoding2D(d)
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.register_buffer("pos_1d", sinusoid(cfg.max_len + 2, d), persistent=False)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size)
        self.ctc = nn.Linear(d, cfg.vocab_size) if cfg.ctc_head else None
        self.ctc_context = ColumnContext(cfg) if cfg.ctc_head and cfg.ctc_context_layers > 0 else None

    @property
    def memory_format(self) -> torch.memory_format:
        """channels_last trains ~30% faster on CPU, but oneDNN's convolution backward crashes with it below
        16 channels (torch 2.13), so tiny test models stay contiguous."""
        return torch.channels_last if min(self.cfg.channels) >= 16 else torch.contiguous_format

    # --------------------------------------------------------------------------------------- encoding

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """``images [B, 1, H, W]`` -> (memory ``[B, S, D]``, column features ``[B, W/4, D]`` for CTC)."""
        f = self.pos_2d(self.encoder(images))
        columns = f.mean(dim=2).transpose(1, 2)
        return f.flatten(2).transpose(1, 2), columns

    def cross_keys_values(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """``memory [B, S, D]`` -> cross-attention keys and values ``[L, B, N, S, E]`` each."""
        kvs = [cast(DecoderLayer, layer).cross_attn.keys_values(memory) for layer in self.layers]
        return torch.stack([k for k, _ in kvs]), torch.stack([v for _, v in kvs])

    def ctc_logits(self, columns: Tensor) -> Tensor:
        """``[B, W/4, D] -> [B, W/4, V]`` (through the BiLSTM context when the config has one)"""
        if self.ctc is None:
            raise RuntimeError("this model has no CTC head (ctc_head=False)")
        if self.ctc_context is not None:
            columns = self.ctc_context(columns)
        return self.ctc(columns)

    # --------------------------------------------------------------------------------------- decoding

    def _embed(self, tokens: Tensor, start: Tensor | int) -> Tensor:
        """``tokens [B, T]`` at positions ``start..start+T-1`` -> ``[B, T, D]``"""
        t = tokens.shape[1]
        pos = (
            self.pos_1d[start : start + t] if isinstance(start, int) else self.pos_1d[start + torch.arange(t)]
        )
        return self.embed(tokens) * math.sqrt(self.cfg.d_model) + pos

    def decode(self, tokens: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """Teacher-forced decoding of a whole prefix: ``tokens [B, T]`` -> logits ``[B, T, V]``."""
        t = tokens.shape[1]
        mask = torch.full((t, t), float("-inf"), device=tokens.device).triu(1)
        x = self._embed(tokens, 0)
        for i, layer in enumerate(self.layers):
            x, _, _ = layer(x, cross_k[i], cross_v[i], mask=mask)
        return self.head(self.norm(x))

    def decode_step(
        self,
        token: Tensor,
        position: Tensor,
        cross_k: Tensor,
        cross_v: Tensor,
        past_k: Tensor,
        past_v: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One cached step.

        Args:
            token: ``[B, 1]`` int64, the last token.
            position: ``[1]`` int64, its position (= the cache length T).
            cross_k, cross_v: ``[L, B, N, S, E]`` from :meth:`cross_keys_values`.
            past_k, past_v: ``[L, B, N, T, E]`` (T may be 0).
        Returns:
            logits ``[B, V]`` for the next token, and the caches ``[L, B, N, T+1, E]``.
        """
        x = self._embed(token, position)
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, cross_k[i], cross_v[i], past_k[i], past_v[i])
            new_k.append(k)
            new_v.append(v)
        return self.head(self.norm(x))[:, -1], torch.stack(new_k), torch.stack(new_v)

    def empty_cache(self, batch: int, device: torch.device | None = None) -> tuple[Tensor, Tensor]:
        """An empty self-attention cache ``[L, B, N, 0, E]`` (keys and values)."""
        c = self.cfg
        shape = (c.n_layers, batch, c.n_heads, 0, c.d_model // c.n_heads)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, images: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: ``images [B, 1, H, W]``, ``tokens [B, T]`` (starting with ``<s>``) ->
        (decoder logits ``[B, T, V]``, CTC logits ``[B, W/4, V]`` or None)."""
        memory, columns = self.encode(images)
        cross_k, cross_v = self.cross_keys_values(memory)
        logits = self.decode(tokens, cross_k, cross_v)
        return logits, (self.ctc_logits(columns) if self.ctc is not None else None)

    @torch.no_grad()
    def greedy_decode(self, images: Tensor, max_len: int | None = None, use_cache: bool = True) -> Tensor:
        """Autoregressive greedy decoding: ``images [B, 1, H, W]`` -> token ids ``[B, T<=max_len]``
        (without ``<s>``; each row ends at its first ``</s>``, padded after it)."""
        c = self.cfg
        max_len = max_len or c.max_len
        memory, _ = self.encode(images)
        cross_k, cross_v = self.cross_keys_values(memory)
        b = images.shape[0]
        tokens = torch.full((b, 1), c.bos_id, dtype=torch.long, device=images.device)
        past_k, past_v = self.empty_cache(b, images.device)
        done = torch.zeros(b, dtype=torch.bool, device=images.device)
        out: list[Tensor] = []
        for step in range(max_len):
            if use_cache:
                pos = torch.tensor([step], device=images.device)
                logits, past_k, past_v = self.decode_step(
                    tokens[:, -1:], pos, cross_k, cross_v, past_k, past_v
                )
            else:
                logits = self.decode(tokens, cross_k, cross_v)[:, -1]
            nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, c.pad_id), nxt)
            out.append(nxt)
            done = done | (nxt == c.eos_id)
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)
