"""Integer splitting that keeps the whole: the parts always add up exactly."""

from __future__ import annotations

from collections.abc import Sequence


def split_largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to non-negative integer ``weights`` (largest remainder).

    Each part is floor(total * w / W); the units left over go one each to the parts with the
    largest remainders (ties to the earlier part).  Σ parts == total.  All-zero weights split
    evenly.
    """
    if total < 0:
        return [-p for p in split_largest_remainder(-total, weights)]
    n = len(weights)
    if n == 0:
        if total:
            raise ValueError("cannot split a non-zero total into no parts")
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    wsum = sum(weights)
    if wsum == 0:
        weights = [1] * n
        wsum = n
    parts = [total * w // wsum for w in weights]
    rems = [total * w % wsum for w in weights]
    left = total - sum(parts)
    order = sorted(range(n), key=lambda i: (-rems[i], i))
    for i in order[:left]:
        parts[i] += 1
    return parts
