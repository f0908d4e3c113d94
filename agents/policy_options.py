"""Policy options declared like configs: each policy class (or factory) names a pydantic model of its options (types,
ranges, defaults, descriptions), and everything else reads that model: `resolve_policy` validates a spec's
`?name=value` options through it, `tomarena list policies` prints its fields, and a policy built in Python
(`RandomPolicy(p=0.3)`) is checked by the same rules. Adding an option is adding its field.

    class RandomPolicy(VectorPolicy):
        class Options(PolicyOptions):
            p: Probability = Field(0.5, description="probability of C each round")

A class declares `Options`; a factory function declares it with `@takes(Model)`. A policy without a model (a
plugin's plain class or function) gets one derived from its signature (`options_model`), so it keeps working.

Error wordings (ConfigError, one line):
    unknown option 'KEY' for WHAT; allowed: A, B, ...      | missing option 'KEY' for WHAT
    option KEY='VALUE' is not a valid TYPE                  (a value of the wrong type)
    option KEY must be RULE, got VALUE                      (`rule`: a range or shape)
    unknown NOUN 'VALUE'; allowed: A, B, ...                (`choice`)
A field validator may raise its own one-line sentence (a ValueError); it is kept as it is.
"""

from __future__ import annotations

import functools
import inspect
import math
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidationInfo,
    create_model,
)
from pydantic_core import PydanticUndefined

from tomarena.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])
NONE_WORDS = ("none", "null", "")  # a spec's way of saying None for an option that may be None


class PolicyOptions(BaseModel):
    """Base of every policy's options model: frozen, unknown keys refused, any field name allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


# ---- field rules ---------------------------------------------------------------------------------------------


def rule(ok: Callable[[Any], bool], must: str) -> AfterValidator:
    """A field check: values for which `ok` is false fail as 'option NAME must be MUST, got VALUE' (None passes)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if value is not None and not ok(value):
            raise ValueError(f"option {info.field_name} must be {must}, got {value!r}")
        return value

    return AfterValidator(check)


def choice(allowed: Iterable[str] | Callable[[], Iterable[str]], noun: str | None = None) -> AfterValidator:
    """A field check: the value is one of `allowed` (or what calling it returns), else 'unknown NOUN 'V'; allowed:
    ...' (NOUN defaults to the field's name; None passes)."""

    def check(value: Any, info: ValidationInfo) -> Any:
        names = tuple(allowed() if callable(allowed) else allowed)
        if value is not None and value not in names:
            raise ValueError(f"unknown {noun or info.field_name} {value!r}; allowed: {', '.join(names)}")
        return value

    return AfterValidator(check)


def _no_bool(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"option {info.field_name} must be a number, got {value!r}")
    return value


#: a finite number (a bool is refused, not read as 0 or 1)
Number = Annotated[float, BeforeValidator(_no_bool), rule(math.isfinite, "a finite number")]
#: a whole number (a bool is refused)
Whole = Annotated[int, BeforeValidator(_no_bool)]
#: a number in [0, 1]
UnitInterval = Annotated[Number, rule(lambda x: 0 <= x <= 1, "in [0, 1]")]
#: a probability: a number in [0, 1], called so in messages
Probability = Annotated[Number, rule(lambda x: 0 <= x <= 1, "a probability in [0, 1]")]
#: a number >= 0
NonNegative = Annotated[Number, rule(lambda x: x >= 0, ">= 0")]


def at_least(low: int, what: str = "a whole number") -> AfterValidator:
    """A whole-number check: 'option NAME must be WHAT >= LOW, got VALUE'."""
    return rule(lambda x: x >= low, f"{what} >= {low}")


# ---- which model a factory takes -----------------------------------------------------------------------------


def takes(model: type[PolicyOptions]) -> Callable[[F], F]:
    """Declare that a factory function takes `model`'s fields as keyword options (the model a class declares as
    `Options`, or its own); `resolve_policy` and the listing read it."""

    def mark(fn: F) -> F:
        fn.Options = model  # type: ignore[attr-defined]
        return fn

    return mark


def _defining(cls: type, attr: str) -> int:
    """The position in `cls`'s MRO of the class that defines `attr` (len(MRO) when none does)."""
    mro = cls.__mro__
    return next((i for i, c in enumerate(mro) if attr in vars(c)), len(mro))


def declared_model(factory: Callable[..., Any]) -> type[BaseModel] | None:
    """The options model `factory` declares, or None. A class's `Options` counts only when it is declared at or
    below the constructor in use (a subclass with its own __init__ and no model of its own declares none)."""
    model = getattr(factory, "Options", None)
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    if isinstance(factory, type) and _defining(factory, "Options") > _defining(factory, "__init__"):
        return None
    return model


def options_model(factory: Callable[..., Any], skip_first: bool = False) -> type[BaseModel]:
    """The model of the options `factory` takes: the declared one, else one derived from its signature (a plugin's
    plain class or function); `skip_first` leaves out the name a spec family passes first (hf:PATH, axelrod:NAME)."""
    return declared_model(factory) or _derived(factory, skip_first)


@functools.cache
def _derived(factory: Callable[..., Any], skip_first: bool) -> type[BaseModel]:
    try:
        params = list(inspect.signature(factory, eval_str=True).parameters.values())
    except (NameError, TypeError, SyntaxError):  # unresolvable annotations: every value stays a string
        params = [p.replace(annotation=inspect.Parameter.empty)
                  for p in inspect.signature(factory).parameters.values()]
    fields: dict[str, Any] = {}
    for p in params[1 if skip_first else 0:]:
        if p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) or p.name.startswith("_"):
            continue
        ann = Any if p.annotation is p.empty else p.annotation
        fields[p.name] = (ann, ... if p.default is p.empty else p.default)
    name = f"{getattr(factory, '__name__', 'Policy')}Options"
    return create_model(name, __config__=ConfigDict(extra="forbid", protected_namespaces=(),  # type: ignore[call-overload]
                                                    arbitrary_types_allowed=True), **fields)


# ---- validation ------------------------------------------------------------------------------------------------


def _type_name(annotation: Any) -> str:
    """A readable name of a field type: float, tuple[float, ...], float | None (validators left out)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if annotation is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin is None and hasattr(annotation, "__name__"):
        return str(annotation.__name__)
    return str(annotation).replace("typing.", "")


def _error(exc: ValidationError, model: type[BaseModel], what: str) -> ConfigError:
    """pydantic's first complaint as the module's one-line wording."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "?"
    if err["type"] == "missing":
        return ConfigError(f"missing option {name!r} for {what}")
    if err["type"] == "value_error" and "error" in err.get("ctx", {}):
        return ConfigError(str(err["ctx"]["error"]))
    kind = err["type"].split("_")[0]
    names = {"float": "float", "int": "int", "bool": "bool", "string": "str", "tuple": "tuple", "list": "list"}
    field = model.model_fields.get(name)
    expected = names.get(kind) or (_type_name(field.annotation) if field else kind)
    return ConfigError(f"option {name}={err.get('input')!r} is not a valid {expected}")


def check_options(model: type[M], values: Mapping[str, Any], what: str) -> M:
    """`model` built from `values`, or a one-line ConfigError (unknown names first, sorted allowed ones listed);
    `what` names the policy in those messages, e.g. "policy 'classic/random'"."""
    allowed = model.model_fields
    for key in values:
        if key not in allowed:
            raise ConfigError(f"unknown option {key!r} for {what}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    try:
        return model.model_validate(dict(values))
    except ValidationError as exc:
        raise _error(exc, model, what) from exc


def with_positional(model: type[BaseModel], args: Sequence[Any], kwargs: Mapping[str, Any],
                    what: str) -> dict[str, Any]:
    """`kwargs` with the positional `args` put under the model's fields in their order (`RandomPolicy(0.3)`)."""
    names = list(model.model_fields)
    if len(args) > len(names):
        raise ConfigError(f"{what} takes at most {len(names)} positional options ({', '.join(names) or 'none'}), "
                          f"got {len(args)}")
    out = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key in out:
            raise ConfigError(f"option {key!r} of {what} is given twice")
        out[key] = value
    return out


def _admits_none(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in typing.get_args(
        annotation)


def _is_sequence(annotation: Any) -> bool:
    kinds = [a for a in typing.get_args(annotation) if a is not type(None)] if _admits_none(annotation) else [
        annotation]
    return any(typing.get_origin(k) in (tuple, list) for k in kinds)


def from_text(model: type[BaseModel], raw: Mapping[str, str]) -> dict[str, Any]:
    """A spec's option strings made ready for `model`: none/null/"" -> None where a field may be None, and
    'a,b' / [a,b] / (a,b) -> a list where it is a tuple or list; numbers and booleans are converted by the model."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        field = model.model_fields.get(key)
        if field is None or not isinstance(value, str):
            out[key] = value
        elif _admits_none(field.annotation) and value.strip().lower() in NONE_WORDS:
            out[key] = None
        elif _is_sequence(field.annotation):
            text = value.strip()
            if text[:1] + text[-1:] in ("[]", "()"):
                text = text[1:-1]
            out[key] = [v.strip() for v in text.split(",")]
        else:
            out[key] = value
    return out


def parse_options(model: type[M], raw: Mapping[str, str], what: str) -> M:
    """`model` from a spec's option strings (`classic/random?p=0.3` -> p=0.3), or a one-line ConfigError."""
    return check_options(model, from_text(model, raw), what)


# ---- policies built from their model ---------------------------------------------------------------------------


class Configurable:
    """Mixin of a policy whose constructor takes only its options: `X(p=0.3)` (or `X(0.3)`, fields in order) is
    validated by `X.Options` into `self.options`, then `setup()` derives the rest (cores, classifiers). Reading an
    option as an attribute (`policy.p`) reads `self.options`."""

    Options: ClassVar[type[PolicyOptions]] = PolicyOptions
    options: PolicyOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        what = f"policy {getattr(self, 'id', type(self).__name__)!r}"
        self.options = check_options(self.Options, with_positional(self.Options, args, kwargs, what), what)
        self.setup()

    def setup(self) -> None:
        """Derive working state from `self.options`; nothing by default."""

    def __getattr__(self, name: str) -> Any:  # called only when normal lookup fails
        options = self.__dict__.get("options")
        if options is not None and name in type(options).model_fields:
            return getattr(options, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


# ---- what `tomarena list policies` shows -------------------------------------------------------------------------


def option_rows(model: type[BaseModel]) -> list[dict[str, Any]]:
    """Name, type, default and description of each field of `model` (tuples shown as lists; no default: None)."""
    rows = []
    for name, field in model.model_fields.items():
        default = None if field.default is PydanticUndefined else field.default
        rows.append({"name": name, "type": _type_name(field.annotation),
                     "default": list(default) if isinstance(default, tuple) else default,
                     "description": field.description or ""})
    return rows
