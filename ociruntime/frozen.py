"""A tiny immutable record base class.

`dataclasses` costs several milliseconds to import (it pulls in `inspect`), and every pyrunc
call pays its import time, so the config model uses this instead: __slots__ records whose
fields are set once in __init__ and never again.
"""


class Frozen:
    """Immutable record: subclasses list their fields in __slots__ (and optional _defaults)."""

    __slots__ = ()
    _defaults: dict = {}

    def __init__(self, **fields):
        cls = type(self)
        for name in cls.__slots__:
            if name in fields:
                value = fields.pop(name)
            elif name in cls._defaults:
                value = cls._defaults[name]
            else:
                raise TypeError(f"{cls.__name__}: missing field {name!r}")
            object.__setattr__(self, name, value)
        if fields:
            raise TypeError(f"{cls.__name__}: unknown fields {sorted(fields)}")

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self):
        return hash(tuple(repr(getattr(self, n)) for n in self.__slots__))

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"

    def replace(self, **changes):
        """A copy with some fields changed (the record itself never changes)."""
        fields = {n: getattr(self, n) for n in self.__slots__}
        fields.update(changes)
        return type(self)(**fields)
