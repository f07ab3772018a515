"""The one reading of a setting's text: used by the config (env vars, files, --set flags) and by
the exported train_gpt.py, so a switch means the same thing under `trainer run` and in the
shipped script (`TTT_ENABLED=true` is on in both)."""

from __future__ import annotations

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


def parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return bool(value)
        raise ValueError(f"not a boolean: {value!r}")
    s = str(value).strip().lower()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_int(value) -> int:
    if isinstance(value, bool):
        raise ValueError("a boolean is not an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"not an integer: {value!r}")
        return int(value)
    if isinstance(value, int):
        return value
    s = str(value).strip().replace("_", "")
    try:
        return int(s)
    except ValueError:
        f = float(s)  # "1e3" / "600.0" name an integer too
        if not f.is_integer():
            raise ValueError(f"not an integer: {value!r}") from None
        return int(f)


def parse_float(value) -> float:
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    return float(str(value).strip().replace("_", "")) if isinstance(value, str) else float(value)


def parse_str(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def parse_int_list(value) -> tuple[int, ...]:
    """"9,10" / "9 10" / [9, 10] → (9, 10); "" → ()."""
    if isinstance(value, (list, tuple)):
        return tuple(parse_int(v) for v in value)
    text = str(value).replace(" ", ",")
    return tuple(parse_int(p) for p in text.split(",") if p.strip())


PARSERS = {"bool": parse_bool, "int": parse_int, "float": parse_float, "str": parse_str}


def parse_setting(type_name: str, value):
    """`type_name` is the dataclass field's annotation ("bool", "int", "float", "str")."""
    return PARSERS[type_name](value)
