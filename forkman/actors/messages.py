"""Typed fork-actor messages: frozen dataclasses with a JSON round trip.

Every operation of the fork actors has one argument type (a subclass of
:class:`OperationArgs`, naming its message kind in ``KIND``) and one result
type (a subclass of :class:`OperationResult`). Both cross process boundaries
as JSON (they are journaled in SQLite and shipped to Ray workers), so their
fields are JSON values, enums (stored as their values), other
:class:`Codec` types, tuples, mappings with string keys, or ``X | None``.

:class:`Codec` converts by the fields' annotations: :meth:`Codec.to_json`
and :meth:`Codec.from_json` are inverses, and a value that does not fit its
field is refused with a :class:`~forkman.core.errors.BadInput` naming it.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Generic, TypeVar

from ..core.errors import BadInput
from .interface import JSON, ActorState

_Self = TypeVar("_Self", bound="Codec")


class Codec:
    """A frozen dataclass that round-trips through JSON by its field annotations."""

    OMIT_NONE: ClassVar[frozenset[str]] = frozenset()
    """Fields left out of the JSON while they are None."""

    def to_json(self) -> dict[str, JSON]:
        """The value as a JSON object."""
        out: dict[str, JSON] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_NONE:
                continue
            out[f.name] = _encode(value)
        return out

    @classmethod
    def from_json(cls: type[_Self], data: Mapping[str, JSON]) -> _Self:
        """The inverse of :meth:`to_json`; raises BadInput for a value that does not fit."""
        if not isinstance(data, Mapping):
            raise BadInput(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
        hints = _hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - fields - cls._ignored())
        if unknown:
            raise BadInput(
                f"{cls.__name__} has no field {', '.join(map(repr, unknown))}",
                hint="the message was written by another forkman version; "
                "run the command again with this one",
            )
        kwargs = {
            name: _decode(hints[name], data[name], f"{cls.__name__}.{name}")
            for name in fields
            if name in data
        }
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise BadInput(f"{cls.__name__}: {exc}") from None

    @classmethod
    def _ignored(cls) -> frozenset[str]:
        """JSON keys read past (e.g. the actor's own ``state`` key in a result)."""
        return frozenset()


R = TypeVar("R", bound="OperationResult")


class OperationResult(Codec):
    """What one operation on one fork returns (a frozen dataclass)."""

    def actor_state(self) -> ActorState | None:
        """The state the actor is left in when not the default (e.g. CONFLICT)."""
        return None

    def headline(self) -> str | None:
        """One line for ``forkman watch`` (None: nothing to add to "ok")."""
        return None

    def found(self) -> bool:
        """Whether the operation ran and found something (e.g. an open vulnerability)."""
        return False

    @classmethod
    def _ignored(cls) -> frozenset[str]:
        return frozenset({"state"})


class OperationArgs(Codec, Generic[R]):
    """The arguments of one operation (a frozen dataclass); ``KIND`` names its messages."""

    KIND: ClassVar[str]
    """The message kind, e.g. ``"sync"`` (stored in the journal and in alarms)."""


@dataclasses.dataclass(frozen=True)
class Recovered(OperationResult):
    """The result of recovering an operation interrupted by a crash."""

    interrupted: str
    """The kind of the interrupted message."""
    recovered: tuple[str, ...] = ()
    """What the transaction journal completed or undid."""


def _hints(cls: type) -> dict[str, Any]:
    cached: dict[str, Any] | None = cls.__dict__.get("_codec_hints")
    if cached is None:
        cached = typing.get_type_hints(cls)
        setattr(cls, "_codec_hints", cached)  # noqa: B010 (a class attribute, not a field)
    return cached


def _encode(value: Any) -> JSON:
    if isinstance(value, Codec):
        return value.to_json()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _encode(v) for k, v in value.items()}
    return value


_SCALARS: dict[type, tuple[type, ...]] = {
    str: (str,),
    bool: (bool,),
    int: (int,),
    float: (int, float),
}


def _decode(hint: Any, value: JSON, where: str) -> Any:
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return _decode_union(typing.get_args(hint), value, where)
    if origin is not None:
        return _decode_container(origin, typing.get_args(hint), value, where)
    if hint is type(None):
        if value is None:
            return None
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            pass
    elif isinstance(hint, type) and issubclass(hint, Codec):
        return hint.from_json(value)
    elif _is_scalar(hint, value):
        return float(value) if hint is float else value
    raise BadInput(f"{where}: {value!r} is not a {getattr(hint, '__name__', hint)}")


def _is_scalar(hint: Any, value: JSON) -> bool:
    """Whether `value` is of scalar type `hint` (a bool is not an int here)."""
    if hint not in _SCALARS or not isinstance(value, _SCALARS[hint]):
        return False
    return hint is bool or not isinstance(value, bool)


def _decode_union(options: tuple[Any, ...], value: JSON, where: str) -> Any:
    if value is None and type(None) in options:
        return None
    kinds = [option for option in options if option is not type(None)]
    if len(kinds) == 1:  # X | None: X's own error
        return _decode(kinds[0], value, where)
    for option in kinds:
        try:
            return _decode(option, value, where)
        except BadInput:
            continue
    raise BadInput(f"{where}: {value!r} does not fit")


def _decode_container(origin: Any, args: tuple[Any, ...], value: JSON, where: str) -> Any:
    if origin in (tuple, list) and isinstance(value, list | tuple):
        item = args[0] if args else Any
        items = [_decode(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping) and isinstance(value, Mapping):
        item = args[1] if len(args) == 2 else Any
        return {str(k): _decode(item, v, f"{where}[{k!r}]") for k, v in value.items()}
    raise BadInput(f"{where}: {value!r} is not a {getattr(origin, '__name__', origin)}")
