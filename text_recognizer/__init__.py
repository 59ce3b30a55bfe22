"""text-recognizer: handwritten text recognition from synthetic data to a JSON API and a web page."""

__version__ = "0.1.0"
