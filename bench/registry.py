"""One small registry type, used by every extension point (datasets, models, losses, optimizers, metrics).

Adding a component is one decorated function in one file::

    @LOSSES.register("hinge", params=HingeParams, presets={...})
    def hinge(params): ...

Each entry carries a pydantic ``params`` model: the options a spec may set for it. Specs are validated
against it, so an unknown option or a misspelt name is rejected before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Params(BaseModel):
    """Base of every component's options: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NoParams(Params):
    """A component without options."""


class UnknownName(KeyError):
    """A registry lookup of a name that was never registered."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r} (known: {', '.join(known)})")

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    obj: T
    params: type[Params]
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Name -> (object, params model, metadata)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, params: type[Params] = NoParams, **meta: Any) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = Entry(name, obj, params, meta)
            return obj

        return decorator

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(self.kind, name, self.names()) from None

    def get(self, name: str) -> T:
        return self.entry(name).obj

    def params_of(self, block: dict, key: str) -> Params:
        """The options of a resolved config block, validated by the params model of the entry it names
        (``block[key]``): the block's other values."""
        return self.entry(block[key]).params.model_validate({k: v for k, v in block.items() if k != key})

    def build(self, block: dict, key: str, *args: Any) -> Any:
        """The component a resolved config block names (``block[key]``), built from the block's other values
        and ``args``: ``LOSSES.build(config["loss"], "name")``, ``CRITICS.build(config["critic"], "arch", shape)``."""
        return self.get(block[key])(self.params_of(block, key), *args)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries.values())
