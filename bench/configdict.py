"""Nested config dictionaries: canonical JSON, stable hashes, dotted paths. Pure Python, no torch."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def short_hash(obj: Any) -> str:
    """12 hex digits of the SHA-256 of ``obj``'s canonical JSON: the same config always gets the same id."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:12]


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"loss": {"name": "wgan"}}`` -> ``{"loss.name": "wgan"}`` (lists stay values)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


MISSING = object()


def get_dotted(config: dict, path: str, default: Any = MISSING) -> Any:
    node: Any = config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def set_dotted(config: dict, path: str, value: Any) -> None:
    """Set ``config[a][b] = value`` for ``path = "a.b"``, creating mappings on the way; raises
    ``TypeError`` naming the blocking prefix when a non-mapping is in the way."""
    *parents, leaf = path.split(".")
    node = config
    for i, key in enumerate(parents):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise TypeError(".".join(parents[: i + 1]))
        node = child
    node[leaf] = copy.deepcopy(value)
