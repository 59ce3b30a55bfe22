"""Checkpoint or registered model version -> ONNX artifact with a manifest, checked and calibrated.

One module a job: :mod:`.export` (ONNX export and the parity check with torch), :mod:`.lm` (the character
language model of the training text), :mod:`.calibrate` (each decoder measured through a real
:class:`~text_recognizer.inference.predictor.Predictor`) and :mod:`.assemble` (the registry lookup, the
manifest, the ``stage`` command).
"""
