"""The API's and the Lambda handler's response schema carries line and word boxes in the one convention."""

from __future__ import annotations

from text_recognizer.inference.types import LineResult, Prediction, WordResult
from text_recognizer.serving.schemas import PredictResponse


def test_response_carries_line_and_word_boxes() -> None:
    word = WordResult("hello", 0.9, (3, 4, 40, 20))
    pred = Prediction("hello", 0.9, [LineResult("hello", 0.9, (3, 4, 40, 20), [word])], "m-1", 0.01)
    body = PredictResponse.build(pred, 1.0, "a" * 32, "t").model_dump(mode="json")
    assert body["lines"][0]["box"] == [3, 4, 40, 20]
    assert body["lines"][0]["words"] == [{"text": "hello", "confidence": 0.9, "box": [3, 4, 40, 20]}]
    schema = PredictResponse.model_json_schema()
    line = schema["$defs"]["LineOut"]["properties"]
    assert "x_min, y_min, x_max, y_max" in line["box"]["description"]
    assert "words" in line and "WordOut" in schema["$defs"]
