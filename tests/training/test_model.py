"""The recognizer itself: shapes, cached decoding, and that it can learn (overfit one batch)."""

from __future__ import annotations

import dataclasses

import torch
from torchmetrics.text import CharErrorRate

from text_recognizer.models.resnet_transformer import ModelConfig, ResNetTransformer
from text_recognizer.training.lit_module import LitRecognizer, OptimConfig
from text_recognizer.vocab import default_vocab

from model_helpers import tiny_model_overrides


def tiny_config() -> ModelConfig:
    return ModelConfig.from_dict({**ModelConfig().to_dict(), **tiny_model_overrides(), "max_len": 24})


def test_shapes() -> None:
    cfg = tiny_config()
    model = ResNetTransformer(cfg)
    images, tokens = torch.rand(3, 1, 32, 128), torch.randint(4, cfg.vocab_size, (3, 9))
    logits, ctc = model(images, tokens)
    assert logits.shape == (3, 9, cfg.vocab_size)
    assert ctc is not None and ctc.shape == (3, 128 // 4, cfg.vocab_size)
    memory, _ = model.encode(images)
    assert memory.shape == (3, (32 // 16) * (128 // 4), cfg.d_model)
    ck, cv = model.cross_keys_values(memory)
    e = cfg.d_model // cfg.n_heads
    assert ck.shape == cv.shape == (cfg.n_layers, 3, cfg.n_heads, memory.shape[1], e)


def test_cached_decoding_equals_uncached() -> None:
    torch.manual_seed(0)
    model = ResNetTransformer(tiny_config()).eval()
    # make the decoder confident enough that greedy paths are long and varied
    with torch.no_grad():
        model.head.weight.mul_(20)
    images = torch.rand(4, 1, 32, 96)
    cached = model.greedy_decode(images, max_len=20, use_cache=True)
    uncached = model.greedy_decode(images, max_len=20, use_cache=False)
    assert cached.shape[1] > 1
    assert torch.equal(cached, uncached)


def test_decode_step_logits_match_teacher_forcing() -> None:
    torch.manual_seed(1)
    model = ResNetTransformer(tiny_config()).eval()
    images, tokens = torch.rand(2, 1, 32, 64), torch.randint(4, 99, (2, 6))
    with torch.no_grad():
        memory, _ = model.encode(images)
        ck, cv = model.cross_keys_values(memory)
        full = model.decode(tokens, ck, cv)
        pk, pv = model.empty_cache(2)
        for t in range(tokens.shape[1]):
            step, pk, pv = model.decode_step(tokens[:, t : t + 1], torch.tensor([t]), ck, cv, pk, pv)
            torch.testing.assert_close(step, full[:, t], atol=1e-5, rtol=1e-4)


def test_overfits_one_batch() -> None:
    """A tiny model memorises 4 line images: cross-entropy (no smoothing) below 0.1, CER below 0.1."""
    torch.manual_seed(0)
    vocab = default_vocab()
    texts = ["hello world", "the quick fox", "42 apples.", "Lazy dog!"]
    tokens = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(vocab.encode(t)) for t in texts], batch_first=True, padding_value=vocab.pad_id
    )
    images = torch.rand(4, 1, 32, 96)
    optim = dataclasses.asdict(OptimConfig(label_smoothing=0.0, ctc_weight=0.5))
    lit = LitRecognizer(tiny_config().to_dict(), optim, vocab.to_list())
    opt = torch.optim.AdamW(lit.parameters(), lr=3e-3)
    for _ in range(150):
        loss, parts = lit._loss(images, tokens)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert parts["ce"].item() < 0.1, parts
    lit.eval()  # BatchNorm now uses running statistics: allow a stray character
    decoded = [vocab.decode(row.tolist()) for row in lit(images)]
    assert CharErrorRate()(decoded, texts).item() < 0.1, decoded


def test_validation_ctc_decoding_matches_the_artifact_decoder() -> None:
    from text_recognizer.inference.decoders import ctc_greedy

    torch.manual_seed(2)
    vocab = default_vocab()
    lit = LitRecognizer(tiny_config().to_dict(), dataclasses.asdict(OptimConfig()), vocab.to_list()).eval()
    with torch.no_grad():
        lit.model.ctc.weight.mul_(30)  # type: ignore[union-attr]
        images = torch.rand(3, 1, 32, 96)
        logits = lit.model.ctc_logits(lit.model.encode(images)[1]).numpy()
        texts = lit._decode_ctc(images)
    expected = [vocab.decode(d.ids) for d in ctc_greedy(logits, blank=vocab.pad_id)]
    assert texts == expected and any(texts)


def test_freeze_norm_keeps_the_batchnorm_statistics() -> None:
    """With ``freeze_norm`` training steps leave every BatchNorm's running statistics as they were (the
    starting weights' own), and the module stays in that state after Lightning's ``train()``; without it
    they move."""
    vocab = default_vocab()
    tokens = torch.tensor([vocab.encode("a line"), vocab.encode("b line")])
    images = torch.rand(2, 1, 32, 96) * 3.0  # far from the fresh statistics (mean 0, variance 1)
    for freeze in (True, False):
        torch.manual_seed(0)
        optim = dataclasses.asdict(OptimConfig(freeze_norm=freeze))
        lit = LitRecognizer(tiny_config().to_dict(), optim, vocab.to_list()).train()
        norms = [m for m in lit.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert norms and all(m.training != freeze for m in norms)
        assert lit.model.training  # everything else does train
        before = [m.running_mean.clone() for m in norms]
        loss, _ = lit._loss(images, tokens)
        loss.backward()
        moved = any(not torch.equal(b, m.running_mean) for b, m in zip(before, norms, strict=True))
        assert moved != freeze
