"""Choose the artifact's default decoder (and the beam search weights) by reading synthetic validation
lines through the very :class:`~text_recognizer.inference.predictor.Predictor` that serves."""

from __future__ import annotations

import logging
import time

from text_recognizer.inference.beam_search import BeamConfig
from text_recognizer.inference.manifest import Decoding
from text_recognizer.inference.predictor import Predictor
from text_recognizer.metrics import error_rate
from text_recognizer.staging.export import synthetic_val_lines
from text_recognizer.staging.lm import LMConfig
from text_recognizer.vocab import Vocabulary

log = logging.getLogger(__name__)

#: synthetic validation lines each decoder is measured on
CALIBRATION_LINES = 192


def choose_decoder(
    predictor: Predictor, n: int = CALIBRATION_LINES, grid: tuple[tuple[float, float], ...] = LMConfig.grid
) -> Decoding:
    """Measure each decoder of ``predictor`` on ``n`` synthetic validation lines; lowest CER: the default.

    Each image goes through :meth:`Predictor.predict` (ink normalisation, line segmentation, crops, batched
    decoding), so stray specks cut out as extra "lines" count too: a language model with a large
    per-character bonus would read text into them. ``ctc_lm`` is tried with each (alpha, beta) of ``grid``
    and keeps the best. Without fonts (no measurement possible) the Transformer decoder is the default.
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
            tried.append((error_rate(preds, truth), (time.perf_counter() - t0) / n, cfg))
        cer[method], seconds[method], best_cfg = min(tried, key=lambda x: x[0])
        if best_cfg is not None:
            beam = best_cfg
            grid_cer = {f"alpha={c.alpha},beta={c.beta}": e for e, _, c in tried if c is not None}
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
