"""`${VAR}`, `${VAR:-default}` and `$$` in the config's string values."""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|(\{))")


class BadReference(ValueError):
    pass


def expand(
    text: str, environ: Mapping[str, str], unset: list[str], keep_unset: bool = False
) -> str:
    """Substitute references; unset variables without default are listed, and become ""
    (or, with `keep_unset`, their own name: a neutral word, so that a config can be
    checked without its secrets)."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(3):
            raise BadReference(
                "a '${' must be followed by a variable name and '}'; write $$ for a literal $"
            )
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            if name not in unset:
                unset.append(name)
            return name if keep_unset else ""
        return value

    if "$" not in text:
        return text
    return _REFERENCE.sub(replace, text)
