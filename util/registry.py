"""A tiny name -> object registry, each entry with its small spec.

Every pluggable family (models, datasets, generators, discriminators, metrics) has one
``Registry``. Entries are registered under an explicit CLI name, so ``--netG resnet_9blocks``,
the help text and the code all use the same string, and a registration carries the facts about
the component that generic code needs (timm's pattern), so no generic module names a component::

    GENERATORS = Registry("generator", GeneratorSpec)

    @GENERATORS.register("unet_256", size_multiple=256)
    def unet_256(...): ...

    GENERATORS.spec("unet_256").size_multiple   # 256

A registry without a spec type (models, datasets) registers classes: the class's attributes are
its spec, and ``spec(name)`` returns the class itself.

argparse ``choices`` are taken from ``names()`` so help, docs and code cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """Unknown or duplicate name; the message lists the valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class Registry:
    def __init__(self, kind: str, spec_type: Callable[..., Any] | None = None) -> None:
        self.kind = kind
        self.spec_type = spec_type
        self._entries: dict[str, Any] = {}
        self._specs: dict[str, Any] = {}

    def register(self, name: str, **spec: Any) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` with its ``spec`` (keyword arguments of
        the registry's spec type); a name may be registered once only."""
        if spec and self.spec_type is None:
            raise TypeError(f"{self.kind} entries carry their spec as class attributes, not register() arguments")

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise RegistryError(f"{self.kind} '{name}' is already registered")
            self._entries[name] = obj
            self._specs[name] = self.spec_type(**spec) if self.spec_type is not None else obj
            return obj

        return decorator

    def spec(self, name: str) -> Any:
        """The spec registered with ``name`` (for class registries: the class)."""
        self.get(name)  # the error that lists the valid names
        return self._specs[name]

    def get(self, name: str) -> Any:
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(f"unknown {self.kind} '{name}' (choose from {', '.join(self.names())})") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
