"""Layered YAML configuration, validated once into a frozen pydantic model.

Layers, lowest precedence first: the model's built-in defaults, the main file,
``conf.d/*.yaml`` drop-ins in name order, then ``--set key.path=value`` overrides.
Mappings merge key by key; any other value replaces the one below it. Each leaf
remembers which layer set it, so a validation error names the file that holds the
bad value.

Exceptions::

    ConfigError            one or more problems, each a ConfigProblem (source, key, message)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)
KeyPath = tuple[str, ...]

BUILTIN = "built-in defaults"


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration, and where it came from."""

    source: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        key = f"key '{self.key}': " if self.key else ""
        return f"{where}{key}{self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` says why, one line each."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(f"config error: {p}" for p in self.problems))


@dataclass(frozen=True)
class Layer:
    """One source of settings: a file, a drop-in, or the command line."""

    source: str
    data: Mapping[str, Any]


def read_yaml_layer(path: Path) -> Layer:
    """Read one YAML file as a layer; an empty file is an empty mapping."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(source, "", "no such file")]) from None
    except OSError as err:
        raise ConfigError([ConfigProblem(source, "", f"cannot read: {err.strerror}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError([ConfigProblem(source, "", f"invalid YAML{at}: {problem}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(source, "", "the top level must be a mapping of keys")])
    return Layer(source, data)


def override_layer(assignments: Iterable[str]) -> Layer:
    """Turn ``key.path=value`` strings into a layer; values are parsed as YAML scalars."""
    data: dict[str, Any] = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        if not sep or not key.strip():
            problem = ConfigProblem("--set", text, "expected KEY.PATH=VALUE, e.g. http.port=8081")
            raise ConfigError([problem])
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return Layer("--set", data)


def collect_layers(
    path: Path | None, conf_d: Path | None = None, overrides: Iterable[str] = ()
) -> list[Layer]:
    """The file, its drop-ins (``conf.d`` beside the file unless given) and the overrides."""
    layers: list[Layer] = []
    if path is not None:
        layers.append(read_yaml_layer(path))
        if conf_d is None:
            conf_d = path.parent / "conf.d"
    if conf_d is not None and conf_d.is_dir():
        layers.extend(read_yaml_layer(p) for p in sorted(conf_d.glob("*.yaml")))
    layers.append(override_layer(overrides))
    return layers


def merge_layers(layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[KeyPath, str]]:
    """Merge layers in order; return the merged mapping and the source of every key path."""
    merged: dict[str, Any] = {}
    origins: dict[KeyPath, str] = {}
    for layer in layers:
        _merge_into(merged, layer.data, (), layer.source, origins)
    return merged, origins


def _merge_into(
    dst: dict[str, Any],
    src: Mapping[str, Any],
    prefix: KeyPath,
    source: str,
    origins: dict[KeyPath, str],
) -> None:
    for key, value in src.items():
        path = (*prefix, str(key))
        origins[path] = source
        if isinstance(value, Mapping) and isinstance(dst.get(key), dict):
            _merge_into(dst[key], value, path, source, origins)
        elif isinstance(value, Mapping):
            dst[key] = {}
            _merge_into(dst[key], value, path, source, origins)
        else:
            dst[key] = value


def load_settings(model: type[ModelT], layers: Sequence[Layer]) -> ModelT:
    """Merge the layers and validate them into ``model``, or raise ConfigError."""
    merged, origins = merge_layers(layers)
    try:
        return model.model_validate(merged)
    except pydantic.ValidationError as err:
        raise ConfigError([_problem(model, e, origins) for e in err.errors()]) from None


def _problem(
    model: type[pydantic.BaseModel], error: Any, origins: Mapping[KeyPath, str]
) -> ConfigProblem:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc)
    source = _source_of(loc, origins)
    kind = error["type"]
    if kind == "extra_forbidden":
        valid = ", ".join(_valid_keys(model, loc[:-1])) or "none"
        return ConfigProblem(source, key, f"unknown key (valid keys here: {valid})")
    if kind == "missing":
        return ConfigProblem(source or "configuration", key, "required but not set")
    got = error.get("input")
    shown = "" if isinstance(got, Mapping | list) else f" (got {got!r})"
    return ConfigProblem(source, key, f"{error['msg']}{shown}")


def _source_of(loc: KeyPath, origins: Mapping[KeyPath, str]) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in origins:
            return origins[loc[:end]]
    return ""


def _valid_keys(model: type[pydantic.BaseModel], loc: KeyPath) -> list[str]:
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        current = fields[part].annotation
    fields = getattr(current, "model_fields", None)
    return sorted(fields) if fields else []
