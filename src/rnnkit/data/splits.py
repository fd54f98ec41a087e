"""Fixed, seeded splits that keep a unit (a speaker, a play, a movie, a book) whole.

``group_split(groups, fractions, seed)`` shuffles the distinct groups with ``seed`` and
assigns whole groups to ``train``, ``valid`` and ``test`` until each split holds about its
fraction of the items. No group appears in two splits.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable, Sequence

SPLITS = ("train", "valid", "test")


def group_split(
    groups: Sequence[Hashable],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> list[str]:
    """The split name of each item, whole groups at a time.

    Args:
        groups: (N,) the unit of each item (use the item index for per-item splits).
        fractions: Target fractions of items for train, valid, test (summing to 1).
        seed: Shuffle seed; the same inputs and seed always give the same splits.

    Returns:
        (N,) split names.
    """
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"fractions={fractions}: expected non-negative numbers summing to 1")
    sizes = Counter(groups)
    order = sorted(sizes, key=repr)
    random.Random(seed).shuffle(order)
    total = len(groups)
    test_goal, valid_goal = fractions[2] * total, fractions[1] * total
    assignment: dict[Hashable, str] = {}
    test = valid = 0
    for group in order:
        if test < test_goal and fractions[2] > 0:
            assignment[group], test = "test", test + sizes[group]
        elif valid < valid_goal and fractions[1] > 0:
            assignment[group], valid = "valid", valid + sizes[group]
        else:
            assignment[group] = "train"
    return [assignment[g] for g in groups]


def by_split(items: Sequence[object], names: Sequence[str]) -> dict[str, list[object]]:
    """Group ``items`` by their split names, in the order of :data:`SPLITS`."""
    out: dict[str, list[object]] = {s: [] for s in SPLITS}
    for item, name in zip(items, names, strict=True):
        out[name].append(item)
    return {s: v for s, v in out.items() if v}
