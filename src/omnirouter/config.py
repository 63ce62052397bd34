"""Typed configuration: frozen dataclasses, YAML in and out, dotted command-line overrides.

OmegaConf structured configs do the checking: an unknown key or a value of the wrong type is
an error that names the key. Every sub-config lives next to the code that uses it (for example
`omnirouter.model.config.ModelConfig`); this module only loads, merges and saves them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from omnirouter.errors import OmnirouterError

ConfigT = TypeVar("ConfigT")


class ConfigError(OmnirouterError, ValueError):
    """A configuration file or override that does not fit the schema."""


def require(holds: bool, key: str, rule: str, value: object) -> None:
    """A config dataclass's range check (`__post_init__`), failing with a message that names
    the key: `require(lr > 0, "train.optimizer.peak_lr", "> 0", lr)` raises ValueError
    "train.optimizer.peak_lr must be > 0, got -0.003"."""
    if not holds:
        raise ValueError(f"{key} must be {rule}, got {value!r}")


def load_config(
    schema: type[ConfigT],
    yaml_paths: Sequence[str | Path] = (),
    overrides: Sequence[str] = (),
) -> ConfigT:
    """Build a `schema` instance from its defaults, then YAML files, then `key.sub=value` overrides.

    Later sources win. Raises `ConfigError` naming the offending key or file.
    """
    merged = OmegaConf.structured(schema)
    for path in yaml_paths:
        path = Path(path)
        loaded = read_yaml(path)
        try:
            merged = OmegaConf.merge(merged, loaded)
        except OmegaConfBaseException as error:
            raise ConfigError(f"{path}: {_describe(error)}") from None
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} is not of the form key.sub=value")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([override]))
        except (OmegaConfBaseException, TypeError) as error:
            # TypeError: OmegaConf cannot merge a dotted key into a list of dataclasses.
            raise ConfigError(f"override {override!r}: {_describe(error)}") from None
        except yaml.YAMLError as error:  # the value is parsed as YAML: `model=[1`
            problem = getattr(error, "problem", None) or "malformed"
            raise ConfigError(f"override {override!r}: not a valid value ({problem})") from None
    return _instantiate(merged)


def load_config_section(schema: type[ConfigT], yaml_path: str | Path, key: str) -> ConfigT:
    """A `schema` instance from one top-level part of a YAML file (e.g. the `data` of a training
    run's config.yaml), checked like `load_config`; the file's other parts are not read."""
    path = Path(yaml_path)
    loaded = read_yaml(path)
    try:
        section = loaded.get(key, {})
        merged = OmegaConf.merge(OmegaConf.structured(schema), section)
    except OmegaConfBaseException as error:
        raise ConfigError(f"{path}: {_describe(error)}") from None
    return _instantiate(merged)


def read_yaml(path: str | Path) -> Any:
    """A YAML file as an OmegaConf node; a missing file or a syntax error is a `ConfigError`
    of one line that names the file, line and column."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        return OmegaConf.load(path)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or error.context or "malformed"
        raise ConfigError(f"{path}{where}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: YAML syntax error: {error}") from None


def _instantiate(merged: Any) -> Any:
    try:
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        raise ConfigError(_describe(error)) from None
    except ValueError as error:  # a dataclass's own __post_init__ check
        raise ConfigError(str(error)) from None


def config_from_dict(schema: type[ConfigT], values: dict[str, Any]) -> ConfigT:
    """A `schema` instance from a plain (possibly partial) dict, checked like a YAML file."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.create(values))
    except OmegaConfBaseException as error:
        raise ConfigError(_describe(error)) from None
    return _instantiate(merged)


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict (enums as their names) of a config dataclass."""
    return OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)  # type: ignore[return-value]


def differing_keys(first: dict, second: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts (of `config_to_dict`)."""
    keys = []
    for key in sorted(set(first) | set(second)):
        left, right = first.get(key), second.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            keys += differing_keys(left, right, f"{prefix}{key}.")
        elif left != right:
            keys.append(f"{prefix}{key}")
    return keys


def save_config(config: Any, path: str | Path) -> None:
    """Write the fully resolved config as YAML, so a run can be repeated from it alone."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a config dataclass, got {type(config).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))


def _describe(error: Exception) -> str:
    key = getattr(error, "full_key", None)
    message = str(error).splitlines()[0]
    return f"key '{key}': {message}" if key else message
