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
    text = read_bounded(path, error, what)
    return parse_validated(text, path, model, error), text


def parse_validated(text: str, path: str | Path, model: type[M], error: type[Exception]) -> M:
    """YAML `text` (from `path`, named in errors) parsed into `model`, as `load_validated`."""
    try:
        refuse_aliases(text)
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}:" if mark else ""
        why = f" ({exc})" if isinstance(exc, _AliasFound) else ""
        raise error(f"{path}:{where} not valid YAML{why}") from exc
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise error(f"{path}: line 1: expected a mapping of keys to values")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        raise error(f"{path}: line {line_of(node, loc)}: {key}: {message}") from exc


#: the largest configuration, policy, targets or lineage file optout reads
MAX_BYTES = 1 << 20


class _AliasFound(yaml.YAMLError):
    def __init__(self, mark: Any) -> None:
        super().__init__("anchors and aliases are not supported")
        self.problem_mark = mark


def read_bounded(path: str | Path, error: type[Exception], what: str) -> str:
    """A file's text, refused beyond MAX_BYTES (a file that size is not configuration)."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read(MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise error(f"{path}: cannot read {what}: {reason}") from exc
    if len(text) > MAX_BYTES:
        raise error(f"{path}: {what} is larger than {MAX_BYTES // 1024} KiB")
    return text


def refuse_aliases(text: str) -> None:
    """Refuse YAML anchors and aliases before anything is built from them: an alias names a
    node again, and a few hundred bytes of nested aliases expand to gigabytes."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise _AliasFound(event.start_mark)


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
