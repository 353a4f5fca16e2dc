"""Class labels of generated images: the "no class" token and classes spread over a request.

Class-conditional models take integer labels ``0 .. C - 1``; the index ``C`` is the "no
class" token that classifier-free guidance uses for its unconditional branch (Ho & Salimans
2022) and that label dropout trains. A request for ``n`` images of no particular class
spreads them evenly: image ``i`` gets class ``i mod C``, so any prefix is balanced.
"""

from __future__ import annotations

import torch


def null_labels(n: int, num_classes: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``n`` copies of the "no class" index ``num_classes`` (int64).

    Example:
        >>> null_labels(3, 10)
        tensor([10, 10, 10])
    """
    return torch.full((n,), num_classes, dtype=torch.long, device=device)


def spread_labels(n: int, num_classes: int) -> list[int] | None:
    """Classes for ``n`` images spread evenly (image ``i`` gets ``i mod C``); None when unconditional.

    Example:
        >>> spread_labels(5, 3)
        [0, 1, 2, 0, 1]
    """
    if not num_classes:
        return None
    return [i % num_classes for i in range(n)]
