"""Reading run directories written before the generic vocabulary (2026-12-07).

Outputs used to name the two outcomes after DiamondGhost's objects: `p_ghost_when_unobserved`,
the policy variant `without_ghost`, the experts `diamond` and `ghost` (in checkpoints' parameter
names and network configs), the tags `eval/p_diamond` and the facts `ghost_overseen`. They now say
`intended` and `proxy`. Everything that reads a run directory (evaluations, metrics rows, tracked
curves and tidy tables, checkpoints) passes the names it finds through `modern_name`, so old runs
are reported, evaluated and resumed like new ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

_OLD = re.compile(r"(?<![A-Za-z])(diamond|ghost)(?![A-Za-z])")
_NEW = {"diamond": "intended", "ghost": "proxy"}


def modern_name(name: str) -> str:
    """`name` with the old outcome words replaced where they stand as words of an identifier
    (`p_ghost_when_unobserved` -> `p_proxy_when_unobserved`, `experts.diamond.0.weight` ->
    `experts.intended.0.weight`); an environment id such as `DiamondGhost-5x5-v0` is left alone."""
    return _OLD.sub(lambda m: _NEW[m.group(1)], name)


def modern_keys(value: Any, named: Iterable[str] = ()) -> Any:
    """`value` (nested dicts, lists and tuples) with every dict key passed through `modern_name`,
    and the string values of the keys in `named` too. Other values (a config's environment id,
    say) are kept as they are."""
    named = frozenset(named)

    def walk(item: Any) -> Any:
        if isinstance(item, dict):
            renamed = type(item)() if type(item) is not dict else {}
            for key, inner in item.items():
                new_key = modern_name(key) if isinstance(key, str) else key
                renamed[new_key] = (modern_name(inner) if key in named and isinstance(inner, str) else walk(inner))
            if hasattr(item, "_metadata"):  # a torch state dict's per-module versions
                renamed._metadata = modern_keys(item._metadata)
            return renamed
        if isinstance(item, (list, tuple)) and not hasattr(item, "_fields"):
            return type(item)(walk(inner) for inner in item)
        return item

    return walk(value)
