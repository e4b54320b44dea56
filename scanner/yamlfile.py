"""YAML files validated against a pydantic model, with errors that name the file, the line and
the key (config files, policies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def load_validated(path: str | Path, model: type[M], error: type[Exception],
                   what: str) -> tuple[M, str]:
    """The file parsed into `model`, and its text. An unreadable file, bad YAML, or a value
    the model rejects raises `error` with a one-line message naming the line and the key."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from exc
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        raise error(f"{path}:{where} not valid YAML") from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise error(f"{path}: line 1: expected a mapping of keys to values")
    try:
        return model.model_validate(data), text
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        raise error(f"{path}: line {line_of(node, loc)}: {key}: {message}") from exc


def line_of(node: Any, loc: list[Any]) -> int:
    """The line of the YAML node at a pydantic error location (the deepest one that exists)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == key), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line
