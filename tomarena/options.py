"""One source for every option: the pydantic config models. This module reads YAML files into mappings,
validates mappings against a model and generates argparse flags from a model's fields, each with one error
wording, so a setting is declared once (type, default, range, description) and is the same as a YAML key, a flag
and a keyword argument. Base layer: it imports pydantic and yaml only.

Error wordings (all ConfigError, one line):
    {what} PATH does not exist | is a directory, not a YAML file | is not valid YAML: PROBLEM (line N) |
        must hold a mapping of keys, got TYPE
    unknown {noun} key 'KEY' in SOURCE; allowed: A, B, ...      (the keys of the (nested) model at KEY)
    missing {noun} key 'KEY' in SOURCE
    bad {noun} value KEY=VALUE in SOURCE: RULE
"""

from __future__ import annotations

import argparse
import os
import re
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError
from pydantic.fields import FieldInfo

from tomarena.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
PathLike = str | os.PathLike[str]


#: a piece of a comma list that starts a new item rather than continuing a spec's option value: an id (`tit_for_tat`,
#: `prisoners_dilemma`), `family/name...`, `prefix:...` (hf:, openai:, axelrod:, sim:) or `name?options`
_NEW_ITEM = re.compile(r"[A-Za-z_][\w.+-]*(?:[/:?]|$)")
_CLOSING = {"[": "]", "(": ")", "{": "}"}


def _top_level_pieces(text: str) -> list[tuple[str, bool]]:
    """`text` cut at the commas outside quotes and brackets, each piece with whether it held a quote (quote marks
    are syntax and removed; brackets stay)."""
    pieces: list[tuple[str, bool]] = []
    buf: list[str] = []
    quoted, quote, stack = False, "", []
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
            else:
                buf.append(ch)
        elif ch in "'\"":
            quote, quoted = ch, True
        elif ch == "," and not stack:
            pieces.append(("".join(buf), quoted))
            buf, quoted = [], False
        else:
            if ch in _CLOSING:
                stack.append(_CLOSING[ch])
            elif stack and ch == stack[-1]:
                stack.pop()
            buf.append(ch)
    if quote:
        raise ConfigError(f"unclosed {quote} in list {text!r}; close the quote")
    if stack:
        opening = {v: k for k, v in _CLOSING.items()}[stack[-1]]
        raise ConfigError(f"unclosed {opening} in list {text!r}; close it with {stack[-1]}")
    pieces.append(("".join(buf), quoted))
    return pieces


def split_list(text: str) -> list[str]:
    """Split a comma list of ids or policy specs. A comma stays in an item inside quotes or brackets, and inside a
    spec's `?options` when what follows is not a new item (an id, family/name, prefix:...), so
    `classic/memory_one?p=1,0,1,0,classic/tit_for_tat` is two specs; quote marks are removed, empty items dropped."""
    items: list[list[Any]] = []  # [text, complete]: a quoted item is complete, never continued
    for piece, quoted in _top_level_pieces(text):
        piece = piece.strip()
        last = items[-1] if items else None
        if (last is not None and not last[1] and "?" in last[0] and not quoted and piece
                and not _NEW_ITEM.match(piece)):
            last[0] += "," + piece  # a comma inside the option value of the spec before
        elif piece:
            items.append([piece, quoted])
    return [text for text, _ in items]


def split_commas(value: Any) -> Any:
    """'a, b' -> ['a', 'b'] by `split_list` (quote-, bracket- and spec-aware); each string of a list or tuple is
    split the same way; any other value is returned as it is, for the model to judge."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        return value
    return [x for item in value for x in (split_list(item) if isinstance(item, str) else [item])]


#: a list of ids given as a YAML list, a comma string or repeated comma-list flags
CommaList = Annotated[list[str], BeforeValidator(split_commas)]
#: the same, stored as a tuple (frozen models)
CommaTuple = Annotated[tuple[str, ...], BeforeValidator(split_commas)]


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{problem} (line {mark.line + 1})" if mark is not None else problem


def read_yaml(path: PathLike, what: str = "config file", section: str | None = None) -> dict[str, Any]:
    """The mapping in a YAML file (an empty file is {}); with `section`, that key's mapping when the file has
    one (a file of settings or a whole config that holds them under `section:`)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {p} does not exist") from exc
    except IsADirectoryError as exc:
        raise ConfigError(f"{what} {p} is a directory, not a YAML file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {p}: {getattr(exc, 'strerror', None) or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {p} is not valid YAML: {_yaml_problem(exc)}") from exc
    data = {} if data is None else data
    if section is not None and isinstance(data, dict) and isinstance(data.get(section), dict):
        data = data[section]
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {p} must hold a mapping of keys, got {type(data).__name__}")
    return data


def merged(path: PathLike | None, overrides: Mapping[str, Any] | None = None, what: str = "config file",
           section: str | None = None) -> dict[str, Any]:
    """The YAML file's mapping (none without `path`) updated with the `overrides` that are not None."""
    data = read_yaml(path, what, section) if path is not None else {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return data


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The (nested) model whose field `loc[-1]` is; None when the path leaves the models."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        inner = [t for t in _members(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)] \
            if field else []
        if not inner:
            return None
        model = inner[0]
    return model


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types of a union (X | None -> X, None), or the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_error(exc: ValidationError, model: type[BaseModel], noun: str = "config",
                     source: str | None = None) -> ConfigError:
    """pydantic's first complaint about `model` as one line naming the key, the value and the rule."""
    err = exc.errors()[0]
    loc = err["loc"]
    key = ".".join(str(x) for x in loc) or noun
    where = f" in {source}" if source else ""
    if err["type"] == "extra_forbidden":
        at = _model_at(model, loc)
        allowed = f"; allowed: {', '.join(at.model_fields)}" if at is not None else ""
        return ConfigError(f"unknown {noun} key {key!r}{where}{allowed}")
    if err["type"] == "missing":
        return ConfigError(f"missing {noun} key {key!r}{where}")
    rule = err["msg"]
    if err["type"] == "value_error" and "error" in err.get("ctx", {}):
        rule = str(err["ctx"]["error"])  # a validator's own sentence, without pydantic's "Value error, "
    return ConfigError(f"bad {noun} value {key}={_shown(err.get('input'))}{where}: {rule}")


def validate(model: type[M], data: Mapping[str, Any], noun: str = "config", source: str | None = None,
             flags: Mapping[str, Any] | None = None) -> M:
    """`model` from a mapping, or a one-line ConfigError; a bad key set (not None) in `flags` is said to come
    from the flags rather than from `source`."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]["loc"]
        flagged = bool(first) and (flags or {}).get(str(first[0])) is not None
        raise validation_error(exc, model, noun, "flags" if flagged else source) from exc


def load(model: type[M], path: PathLike | None, overrides: Mapping[str, Any] | None = None, *,
         what: str = "config file", noun: str = "config", section: str | None = None) -> M:
    """`model` from a YAML file (optional) updated with the non-None `overrides` (flags), one wording for
    every problem of either."""
    data = merged(path, overrides, what, section)
    return validate(model, data, noun, f"{what} {path}" if path is not None else None, overrides)


# ---- flags -------------------------------------------------------------------------------------------------


def flag_name(field: str) -> str:
    """The flag of a field: max_steps -> --max-steps."""
    return "--" + field.replace("_", "-")


def _default_text(info: FieldInfo) -> str | None:
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "none"
    return str(value)


def field_help(info: FieldInfo, show_default: bool = True) -> str:
    """A field's description and its default, as --help shows them ('%' escaped for argparse)."""
    text = info.description or ""
    default = _default_text(info) if show_default else None
    if default is not None:
        text = f"{text} (default: {default})" if text else f"default: {default}"
    return text.replace("%", "%%")


def flag_kwargs(name: str, info: FieldInfo, show_default: bool = True) -> dict[str, Any]:
    """argparse keywords for a field: bool -> --x/--no-x, Literal -> choices, list/tuple -> repeatable comma
    list, int/float/str -> that type. Every default is None, so a flag not given overrides nothing."""
    kinds = [t for t in _members(info.annotation) if t is not type(None)]
    ann = kinds[0] if len(kinds) == 1 else None
    origin = typing.get_origin(ann)
    kw: dict[str, Any] = {"dest": name, "default": None, "help": field_help(info, show_default)}
    if ann is bool:
        return kw | {"action": argparse.BooleanOptionalAction}
    if origin is Literal:
        choices = typing.get_args(ann)
        return kw | {"choices": choices, "type": type(choices[0])}
    if origin in (list, tuple):
        return kw | {"action": "append"}
    if ann in (int, float, str):
        return kw | {"type": ann}
    raise TypeError(f"field {name!r} of type {info.annotation} has no flag form; leave it out of the flags")


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, model: type[BaseModel],
              exclude: Collection[str] = (), aliases: Mapping[str, Sequence[str]] | None = None,
              show_defaults: bool = True) -> list[str]:
    """Add a flag for every field of `model` except `exclude` (`aliases`: more option strings of a field;
    `show_defaults`: False where a config file, not the model, supplies them); returns the fields added."""
    added = []
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        parser.add_argument(flag_name(name), *(aliases or {}).get(name, ()), **flag_kwargs(name, info, show_defaults))
        added.append(name)
    return added


def flag_values(args: argparse.Namespace, model: type[BaseModel]) -> dict[str, Any]:
    """The fields of `model` given as flags (those left out are not keys), comma lists split."""
    out = {}
    for name in model.model_fields:
        value = getattr(args, name, None)
        if value is not None:
            out[name] = split_commas(value) if isinstance(value, list) else value
    return out
