"""Installed size of Python distributions as JSON ``{name: bytes}``; any Python runs it (standard library).

    python benchmarks/dist_sizes.py                      every distribution of this environment
    python benchmarks/dist_sizes.py 'text-recognizer[serve]'   the dependencies of a requirement, recursively

The requirement itself is left out (only what it pulls in is counted), and so are pip, setuptools and wheel.
A distribution's size is the sum of the files its RECORD lists (compiled ``__pycache__`` files included).
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

try:
    from packaging.requirements import Requirement
except ImportError:  # a bare venv: pip vendors packaging
    from pip._vendor.packaging.requirements import Requirement  # type: ignore[assignment]

TOOLS = {"pip", "setuptools", "wheel"}


def canonical_name(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def dependencies(dist: metadata.Distribution, extras: set[str]) -> list[Requirement]:
    """The requirements of ``dist`` that apply here with ``extras`` requested."""
    out = []
    for raw in dist.requires or []:
        req = Requirement(raw)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
            out.append(req)
    return out


def closure(requirement: str) -> set[str]:
    """Names of the installed distributions ``requirement`` depends on, recursively (itself excluded)."""
    root = Requirement(requirement)
    seen: set[str] = set()
    todo = dependencies(metadata.distribution(root.name), set(root.extras))
    while todo:
        req = todo.pop()
        name = canonical_name(req.name)
        if name in seen:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        todo.extend(dependencies(dist, set(req.extras)))
    return seen


def dist_size(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or []:
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            total += path.stat().st_size
    return total


def main() -> None:
    dists = {canonical_name(d.metadata["Name"]): d for d in metadata.distributions()}
    names = closure(sys.argv[1]) if len(sys.argv) > 1 else set(dists)
    print(json.dumps({n: dist_size(dists[n]) for n in sorted(names - TOOLS) if n in dists}))


if __name__ == "__main__":
    main()
