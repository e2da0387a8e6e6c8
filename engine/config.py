"""Typed configuration: frozen dataclasses built from YAML, rejecting unknown keys.

``from_mapping(cls, data)`` converts plain YAML data into nested frozen dataclasses,
following the type hints: lists become tuples, ints become floats where a float is
declared, and every error names the dotted key that caused it. Each config schema
(architecture, training, runtime, GUI) is declared beside the code that uses it.
"""

from __future__ import annotations

import dataclasses
import reprlib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from engine.errors import ConfigError

T = TypeVar("T")

#: Most nodes a YAML document may hold once its aliases are expanded. Our largest configs hold a
#: few hundred; an alias bomb ("billion laughs") expands a few hundred bytes into billions, which
#: every later walk over the data (conversion, error messages) would then have to visit.
MAX_EXPANDED_NODES = 100_000

def _short_repr() -> reprlib.Repr:
    """Error messages show values through this: a few items per level, a few levels, short strings."""
    short = reprlib.Repr()
    short.maxlevel, short.maxdict, short.maxlist, short.maxtuple = 3, 4, 4, 4
    short.maxstring = short.maxother = 60
    return short


_SHORT = _short_repr()


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping safely (see :func:`parse_yaml`); every failure becomes one ConfigError line."""
    data = load_yaml_any(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def load_yaml_any(path: str | Path) -> Any:
    """Read any YAML document safely (a mapping, a list, ...); failures are one ConfigError line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, where: str) -> Any:
    """Plain data from YAML text with ``yaml.SafeLoader``, refusing alias bombs and recursive aliases.

    Aliases are allowed (our model configs share a detector block that way) as long as the
    expanded document stays under :data:`MAX_EXPANDED_NODES`; the check runs on the composed
    node graph, before any Python object is built, so a bomb fails in milliseconds.

    Raises:
        ConfigError: invalid YAML, too many nodes once expanded, a recursive alias, or nesting
            deeper than Python can follow; ``where`` names the source in the message.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, where: str) -> None:
    """Refuse a node graph whose tree, with every alias expanded, exceeds MAX_EXPANDED_NODES."""
    sizes: dict[int, int] = {}  # expanded size of each node already counted (aliases share nodes)
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise ConfigError(f"{where}: recursive YAML alias (line {node.start_mark.line + 1})")
        on_path.add(key)
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = []
        total = 1
        for child in children:
            total += size(child)
            if total > MAX_EXPANDED_NODES:
                raise ConfigError(f"{where}: YAML aliases expand to more than {MAX_EXPANDED_NODES} values "
                                  f"(line {node.start_mark.line + 1}); write the values out instead")
        on_path.discard(key)
        sizes[key] = total
        return total

    size(root)


def from_mapping(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for name, field in fields.items():
        key = _join(where, name)
        if name in data:
            values[name] = _convert(hints[name], data[name], key)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}: missing required key")
    try:
        return cls(**values)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where or cls.__name__}: {exc}") from None


def to_mapping(obj: Any) -> Any:
    """Plain YAML/JSON-ready data from a (nested) config dataclass."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_mapping(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_mapping(v) for k, v in obj.items()}
    return obj


def with_overrides(obj: T, overrides: Mapping[str, Any]) -> T:
    """A copy of config ``obj`` with dotted keys replaced (``{"optim.lr": 0.01}``), types enforced."""
    data = to_mapping(obj)
    for dotted, value in overrides.items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"{dotted}: unknown key")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ConfigError(f"{dotted}: unknown key")
        node[parts[-1]] = value
    return from_mapping(type(obj), data)


def _short(value: Any) -> str:
    """A bounded repr for error messages: a value from a file can be arbitrarily large."""
    return _SHORT.repr(value)


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(option, value, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {_short(value)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key}: must be one of {', '.join(map(repr, args))}, got {_short(value)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, key)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {_short(value)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {_short(value)}")
        return {_convert(args[0], k, key): _convert(args[1], v, f"{key}.{k}") for k, v in value.items()}
    return _convert_scalar(tp, value, key)


def _convert_scalar(tp: Any, value: Any, key: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is type(None):
        if value is None:
            return None
    else:
        raise ConfigError(f"{key}: unsupported config type {tp}")
    raise ConfigError(f"{key}: expected {getattr(tp, '__name__', tp)}, got {_short(value)}")
