"""LightningModule around :class:`ResNetTransformer`: loss, CER/WER with real decoding, sample table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Timer
from torchmetrics.text import CharErrorRate, WordErrorRate

from text_recognizer.models.resnet_transformer import ModelConfig, ResNetTransformer
from text_recognizer.vocab import Vocabulary


@dataclass
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    #: total steps for the cosine schedule; 0 = estimated from the trainer
    total_steps: int = 0
    min_lr_ratio: float = 0.05
    label_smoothing: float = 0.1
    ctc_weight: float = 0.5
    #: keep the BatchNorm layers in eval mode while training (their running statistics and the batch
    #: statistics they normalise with stay those of the starting weights): fine-tuning on a few user lines
    #: in small batches otherwise moves them away from everything else the model reads
    freeze_norm: bool = False


class LitRecognizer(L.LightningModule):
    """Teacher-forced cross-entropy (+ auxiliary CTC) for training; greedy decoding for val/test CER."""

    def __init__(
        self,
        model_cfg: dict[str, Any],
        optim_cfg: dict[str, Any],
        vocab: list[str],
        full_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        # everything needed to rebuild the model and reproduce the run lives in the checkpoint
        self.save_hyperparameters()
        self.model_cfg = ModelConfig.from_dict(model_cfg)
        self.optim = OptimConfig(**optim_cfg)
        self.vocab = Vocabulary.from_list(vocab)
        self.model = ResNetTransformer(self.model_cfg)
        self.val_cer, self.val_wer, self.val_cer_ctc = CharErrorRate(), WordErrorRate(), CharErrorRate()
        self.test_cer, self.test_wer = CharErrorRate(), WordErrorRate()
        self.samples: list[tuple[torch.Tensor, str, str]] = []

    def train(self, mode: bool = True) -> LitRecognizer:
        """``nn.Module.train``, leaving the BatchNorm layers in eval mode when :attr:`OptimConfig.freeze_norm`
        (Lightning switches the module to training mode at the start of each epoch and after validation)."""
        super().train(mode)
        if mode and self.optim.freeze_norm:
            for m in self.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 1, H, W]`` -> greedy token ids ``[B, T]``"""
        return self.model.greedy_decode(images)

    def _loss(
        self, images: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pad = self.model_cfg.pad_id
        logits, ctc_logits = self.model(images, tokens[:, :-1])
        ce = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]),
            tokens[:, 1:].reshape(-1),
            ignore_index=pad,
            label_smoothing=self.optim.label_smoothing,
        )
        parts = {"ce": ce}
        loss = ce
        if ctc_logits is not None and self.optim.ctc_weight > 0:
            # CTC targets: the characters without <s>/</s>; blank = pad
            inner = tokens[:, 1:]
            target_mask = (inner != pad) & (inner != self.model_cfg.eos_id)
            target_lens = target_mask.sum(1)
            targets = inner[target_mask]
            log_probs = ctc_logits.float().log_softmax(-1).transpose(0, 1)  # [W/4, B, V]
            input_lens = torch.full((images.shape[0],), log_probs.shape[0], dtype=torch.long)
            ctc = F.ctc_loss(log_probs, targets, input_lens, target_lens, blank=pad, zero_infinity=True)
            parts["ctc"] = ctc
            loss = loss + self.optim.ctc_weight * ctc
        return loss, parts

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, tokens, _ = batch
        loss, parts = self._loss(images.contiguous(memory_format=self.model.memory_format), tokens)
        self.log("train/loss", loss, prog_bar=True, batch_size=images.shape[0])
        for k, v in parts.items():
            self.log(f"train/{k}", v, batch_size=images.shape[0])
        return loss

    def _decode_texts(self, images: torch.Tensor) -> list[str]:
        ids = self.model.greedy_decode(images.contiguous(memory_format=self.model.memory_format))
        return [self.vocab.decode(row.tolist()) for row in ids]

    def _decode_ctc(self, images: torch.Tensor) -> list[str]:
        """Greedy CTC: best class per frame, repeats collapsed, blanks (pad) dropped."""
        _, columns = self.model.encode(images.contiguous(memory_format=self.model.memory_format))
        best = self.model.ctc_logits(columns).argmax(-1)  # [B, W/4]
        keep = best != self.model_cfg.pad_id
        keep[:, 1:] &= best[:, 1:] != best[:, :-1]
        return [self.vocab.decode(row[k].tolist()) for row, k in zip(best, keep, strict=True)]

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        images, tokens, texts = batch
        loss, _ = self._loss(images, tokens)
        preds = self._decode_texts(images)
        self.val_cer.update(preds, texts)
        self.val_wer.update(preds, texts)
        self.log("val/loss", loss, batch_size=images.shape[0])
        self.log("val/cer", self.val_cer, prog_bar=True, batch_size=images.shape[0])
        self.log("val/wer", self.val_wer, batch_size=images.shape[0])
        if self.model.ctc is not None:
            self.val_cer_ctc.update(self._decode_ctc(images), texts)
            self.log("val/cer_ctc", self.val_cer_ctc, prog_bar=True, batch_size=images.shape[0])
        if batch_idx == 0:
            self.samples = [(images[i, 0].cpu(), texts[i], preds[i]) for i in range(min(8, len(texts)))]

    def test_step(self, batch: Any, batch_idx: int) -> None:
        images, _, texts = batch
        preds = self._decode_texts(images)
        self.test_cer.update(preds, texts)
        self.test_wer.update(preds, texts)
        self.log("test/cer", self.test_cer, batch_size=images.shape[0])
        self.log("test/wer", self.test_wer, batch_size=images.shape[0])

    def configure_optimizers(self) -> Any:
        opt = torch.optim.AdamW(self.parameters(), lr=self.optim.lr, weight_decay=self.optim.weight_decay)
        total = self.optim.total_steps or int(self.trainer.estimated_stepping_batches)
        warm = self.optim.warmup_steps
        floor = self.optim.min_lr_ratio
        # with trainer.max_time the run may end before its last epoch: the cosine then follows the clock,
        # so that the learning rate has decayed whichever limit comes first
        callbacks = getattr(self.trainer, "callbacks", [])
        timer = next((c for c in callbacks if isinstance(c, Timer)), None)

        def time_progress() -> float:
            if timer is None:
                return 0.0
            elapsed, left = timer.time_elapsed("train"), timer.time_remaining("train")
            return 0.0 if left is None else elapsed / max(1e-6, elapsed + left)

        def schedule(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            progress = min(1.0, max((step - warm) / max(1, total - warm), time_progress()))
            return floor + (1 - floor) * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item())

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
