"""Choose the artifact's default decoder (and the beam search weights) by reading synthetic validation
lines through the very :class:`~text_recognizer.inference.predictor.Predictor` that serves."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from text_recognizer.inference.beam_search import BeamConfig
from text_recognizer.inference.manifest import Decoding
from text_recognizer.inference.predictor import Predictor
from text_recognizer.metrics import error_rate_with_se
from text_recognizer.staging.export import synthetic_val_lines
from text_recognizer.staging.lm import LMConfig
from text_recognizer.vocab import Vocabulary

log = logging.getLogger(__name__)

#: synthetic validation lines each decoder is measured on
CALIBRATION_LINES = 192


@dataclass(frozen=True)
class Tried:
    """One decoding measured: CER, its standard error over lines, seconds a line, beam weights (if any)."""

    cer: float
    se: float
    seconds: float
    beam: BeamConfig | None


def least_lm_within_noise(tried: list[Tried]) -> Tried:
    """The one-standard-error rule: of the settings whose CER is within one standard error of the best's,
    the one that leans least on the language model (smallest ``alpha``, then ``beta``). A larger LM weight
    that is better on synthetic lines only by noise fits the LM's own corpus, not handwriting."""
    best = min(tried, key=lambda t: t.cer)
    close = [t for t in tried if t.cer <= best.cer + best.se]
    return min(close, key=lambda t: (t.beam.alpha, t.beam.beta) if t.beam is not None else (0.0, 0.0))


def choose_decoder(
    predictor: Predictor, n: int = CALIBRATION_LINES, grid: tuple[tuple[float, float], ...] = LMConfig.grid
) -> Decoding:
    """Measure each decoder of ``predictor`` on ``n`` synthetic validation lines; lowest CER: the default.

    Each image goes through :meth:`Predictor.predict` (ink normalisation, line segmentation, crops, batched
    decoding), so stray specks cut out as extra "lines" count too: a language model with a large
    per-character bonus would read text into them. ``ctc_lm`` is tried with each (alpha, beta) of ``grid``
    and keeps the one with the least language model within noise of the best (:func:`least_lm_within_noise`).
    Without fonts (no measurement possible) the Transformer decoder is the default.
    """
    methods = predictor.decoders
    try:
        samples = synthetic_val_lines(n, seed=2024)
    except Exception as e:
        log.warning("decoder choice not measured (%s): using attention", e)
        return Decoding(default="attention", available=methods)
    truth = [Vocabulary.normalize(s.text) for s in samples]
    cer: dict[str, float] = {}
    seconds: dict[str, float] = {}
    beam, grid_cer = BeamConfig(), {}
    for method in methods:
        configs = [BeamConfig(alpha=a, beta=b) for a, b in grid] if method == "ctc_lm" else [None]
        tried = []
        for cfg in configs:
            reader = predictor.with_decoding(method, cfg)
            t0 = time.perf_counter()
            preds = [reader.predict(s.image).text for s in samples]
            tried.append(Tried(*error_rate_with_se(preds, truth), (time.perf_counter() - t0) / n, cfg))
        chosen = least_lm_within_noise(tried)
        cer[method], seconds[method] = chosen.cer, chosen.seconds
        if chosen.beam is not None:
            beam = chosen.beam
            grid_cer = {f"alpha={t.beam.alpha},beta={t.beam.beta}": t.cer for t in tried if t.beam}
    best = min(methods, key=lambda m: cer[m])
    print(f"decoders on {n} synthetic validation lines: CER {cer}, s/line {seconds} -> default {best}")
    return Decoding(
        default=best,
        available=methods,
        val_cer=cer,
        seconds_per_line=seconds,
        measured_on=f"{n} synthetic validation lines",
        beam=beam,
        beam_grid_cer=grid_cer,
    )
