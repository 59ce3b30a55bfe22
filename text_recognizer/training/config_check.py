"""Check one config section against its dataclass before anything is built: unknown keys are named with the
closest valid key, values are checked (and YAML text such as ``1e-3`` read) as the field's type.

Every error is a ``ValueError`` whose message is one line naming ``section.key``.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def unknown_key_error(section: str, key: str, valid: list[str]) -> ValueError:
    """``model.d_modle`` -> "unknown key model.d_modle; did you mean model.d_model? (valid: ...)"."""
    name = f"{section}.{key}" if section else key
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"; did you mean {section + '.' if section else ''}{close[0]}?" if close else ""
    return ValueError(f"unknown config key {name}{hint} (valid: {', '.join(sorted(valid))})")


def check_section(section: str, cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` for dataclass ``cls`` -> the same keys with values of the fields' types.

    Raises:
        ValueError: an unknown key (with the closest valid one) or a value that is not of its field's type.
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"config section {section} must be a mapping of keys to values, not {values!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for key, value in values.items():
        if key not in hints:
            raise unknown_key_error(section, str(key), valid)
        out[key] = coerce(f"{section}.{key}", value, hints[key])
    return out


def _exact(value: Any, kind: Any) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind in (int, float):
        return isinstance(value, kind) and not isinstance(value, bool)
    return isinstance(kind, type) and isinstance(value, kind)


def coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` (bool, int, float, str, their unions with None, tuple/list/dict; others pass).

    Raises:
        ValueError: ``name=value: expected <type>``.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        if any(_exact(value, m) for m in members):
            return value
        for m in members:
            if m is not type(None):
                try:
                    return coerce(name, value, m)
                except ValueError:
                    continue
        expected = " or ".join(getattr(m, "__name__", str(m)) for m in members)
        raise ValueError(f"{name}={value!r}: expected {expected}")
    if origin in (tuple, list):
        if isinstance(value, list | tuple):
            return value
        raise ValueError(f"{name}={value!r}: expected a list")
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        raise ValueError(f"{name}={value!r}: expected a mapping")
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"{name}={value!r}: expected true or false")
    if hint in (int, float):
        if _exact(value, hint) or (hint is float and _exact(value, int)):
            return hint(value)
        if isinstance(value, float) and hint is int and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return hint(value)
            except ValueError:
                pass
        raise ValueError(f"{name}={value!r}: expected {'an integer' if hint is int else 'a number'}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{name}={value!r}: expected text (quote it in YAML)")
    return value
