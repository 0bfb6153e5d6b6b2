"""A name -> entry table filled by a class decorator at import: the registries of methods,
extensions, probes, analyses and dataset sources."""

from __future__ import annotations

from typing import Generic, TypeVar

from sdclr.errors import ConfigError

T = TypeVar("T")


class Registry(dict[str, T], Generic[T]):
    """Entries by their class's ``name``, in registration order.

    ``kind`` names an entry in messages ("probe"); ``plural`` its plural; ``home`` the package
    a new one goes in and ``decorator`` the decorator that registers it, for the message of an
    unknown name. With ``instances`` the registry holds one instance of each class, else the
    class itself.
    """

    def __init__(
        self, kind: str, plural: str, home: str, decorator: str, instances: bool = True
    ) -> None:
        super().__init__()
        self.kind, self.plural, self.home = kind, plural, home
        self.decorator, self.instances = decorator, instances

    def register(self, cls: type) -> type:
        """Class decorator: add ``cls`` (or one instance of it) under ``cls.name``; a name
        that another class holds already is refused."""
        if cls.name not in self:
            self[cls.name] = cls() if self.instances else cls
            return cls
        held = self[cls.name]
        if (type(held) if self.instances else held) is not cls:
            raise ValueError(f"{self.kind} name {cls.name!r} is registered twice")
        return cls

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name is a one-line config error that
        lists the known ones and says how to add one."""
        if name not in self:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; known {self.plural}: {', '.join(sorted(self))} "
                f"(add one as a module in {self.home} with a class decorated by "
                f"@{self.decorator})"
            )
        return self[name]
