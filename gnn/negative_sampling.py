"""Negative item sampling for BPR-style training.

``uniform`` draws items uniformly; ``popularity`` draws them with probability proportional to
``count(item) ** alpha`` over the training interactions (word2vec-style smoothing, ``alpha = 0.75``),
so popular items, the harder negatives, come up more often. Items passed as ``exclude_items`` (the
held-out cold items of a cold-start split: new items that do not exist at training time) are never
drawn, so no ranking loss pushes them down. Sampled negatives that are one of the
user's training positives are redrawn (a few rounds, then the rare leftovers are drawn uniformly
from the user's non-positive items of non-zero probability; a user owning every item keeps a positive).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gnn.adjacency import expand_ranges as _expand

SAMPLING_MODES = ("uniform", "popularity")
DENSE_LIMIT = 1 << 26
"""Up to this many user x item cells, positives are looked up in a dense bool matrix (else binary search)."""


class NegativeSampler:
    """Draws negative items for users.

    Args:
        train_user, train_item: ``[E]`` int64 training interactions (the positives to avoid).
        num_items: catalogue size ``I``.
        mode: ``"uniform"`` or ``"popularity"``.
        alpha: popularity exponent (``popularity`` mode only).
        max_rounds: redraw rounds for negatives that hit a positive.
        exclude_items: item ids never drawn (default: none).
    """

    def __init__(self, train_user: Tensor, train_item: Tensor, num_items: int, mode: str = "uniform",
                 alpha: float = 0.75, max_rounds: int = 5, exclude_items: Tensor | None = None) -> None:
        if mode not in SAMPLING_MODES:
            raise ValueError(f"unknown negative sampling mode {mode!r} (expected one of {', '.join(SAMPLING_MODES)})")
        self.num_items = int(num_items)
        self.mode = mode
        self.max_rounds = max_rounds
        self._keys = torch.unique(train_user.cpu().long() * self.num_items + train_item.cpu().long())
        self._keys_here = self._keys  # a copy on the device last asked about
        self._dense: Tensor | None = None
        self._indptr: Tensor | None = None  # per-user offsets into _keys, and the items they own
        self._owned: Tensor | None = None
        counts = torch.bincount(train_item.cpu().long(), minlength=self.num_items).double()
        allowed = torch.ones(self.num_items, dtype=torch.bool)
        if exclude_items is not None:
            allowed[torch.as_tensor(exclude_items, dtype=torch.long).cpu()] = False
            counts[~allowed] = 0
        self.candidates = torch.nonzero(allowed).flatten()  # the items negatives are drawn from, sorted
        self._probs = (counts.clamp(min=0) ** alpha) if mode == "popularity" else None
        if self._probs is not None and float(self._probs.sum()) <= 0:
            self._probs = None

    def is_positive(self, users: Tensor, items: Tensor) -> Tensor:
        """Bool tensor (shape of ``items``): ``(users, items)`` is a training interaction."""
        dense = self._dense_matrix(users.device)
        if dense is not None:  # users past the last one with a training pair own nothing
            u = users.long()
            return dense[u.clamp(max=dense.shape[0] - 1), items.long()] & (u < dense.shape[0])
        key = users.long() * self.num_items + items.long()
        if self._keys.numel() == 0:
            return torch.zeros_like(key, dtype=torch.bool)
        if self._keys_here.device != key.device:
            self._keys_here = self._keys.to(key.device)
        pos = torch.searchsorted(self._keys_here, key).clamp(max=self._keys.numel() - 1)
        return self._keys_here[pos] == key

    def positive_pairs(self, users: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """``(rows, cols)`` of every ``(b, j)`` where ``(users[b], items[j])`` is a training interaction
        (``users [B]``, ``items [n]``, any order, repeats allowed): the nonzeros of
        ``is_positive(users[:, None], items[None, :])``, found from each user's own training items
        (``O(sum deg + n log n)``), without the ``[B, n]`` lookups."""
        dev = users.device
        if self._indptr is None or self._indptr.device != dev:
            keys = self._keys.to(dev)
            n_users = int(self._keys[-1] // self.num_items) + 1 if self._keys.numel() else 0
            bounds = torch.arange(n_users + 1, device=dev) * self.num_items
            self._indptr, self._owned = torch.searchsorted(keys, bounds), keys % max(self.num_items, 1)
        indptr, owned = self._indptr, self._owned
        u = users.long()
        known = u < indptr.numel() - 1
        u = torch.where(known, u, torch.zeros_like(u))
        lo, count = indptr[u], (indptr[u + 1] - indptr[u]) * known
        rows, at = _expand(lo, count)
        hit = owned[at]  # every training item of every row's user, then those among ``items``
        listed = torch.zeros(self.num_items, dtype=torch.bool, device=dev)
        listed[items.long()] = True
        keep = listed[hit]
        rows, hit = rows[keep], hit[keep]
        vals, order = torch.sort(items.long())
        first = torch.searchsorted(vals, hit)
        rows, at = _expand(first, torch.searchsorted(vals, hit, right=True) - first, rows)
        return rows, order[at]

    def _dense_matrix(self, device: torch.device) -> Tensor | None:
        """The training pairs as a dense bool ``[U, I]`` matrix on ``device`` when it is small (fast lookups)."""
        n_users = int(self._keys[-1] // self.num_items) + 1 if self._keys.numel() else 0
        if n_users == 0 or n_users * self.num_items > DENSE_LIMIT:
            return None
        if self._dense is None or self._dense.device != device:
            dense = torch.zeros(n_users * self.num_items, dtype=torch.bool)
            dense[self._keys] = True
            self._dense = dense.view(n_users, self.num_items).to(device)
        return self._dense

    def _draw(self, n: int, generator: torch.Generator | None) -> Tensor:
        if self._probs is None:
            pick = torch.randint(max(self.candidates.numel(), 1), (n,), generator=generator)
            return pick if self.candidates.numel() in (0, self.num_items) else self.candidates[pick]
        return torch.multinomial(self._probs, n, replacement=True, generator=generator)

    def sample(self, users: Tensor, num: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """Negatives for ``users`` ``[B]`` (CPU): ``[B]`` when ``num == 1``, else ``[B, num]`` int64."""
        users = users.cpu().long()
        u = users.repeat_interleave(num)
        neg = self._draw(u.numel(), generator)
        for _ in range(self.max_rounds):
            hit = self.is_positive(u, neg)
            n_hit = int(hit.sum())
            if n_hit == 0:
                break
            neg[hit] = self._draw(n_hit, generator)
        for k in torch.nonzero(self.is_positive(u, neg)).flatten().tolist():
            lo = int(torch.searchsorted(self._keys, u[k] * self.num_items))
            hi = int(torch.searchsorted(self._keys, (u[k] + 1) * self.num_items))
            owned = self._keys[lo:hi] - u[k] * self.num_items
            free = torch.zeros(self.num_items, dtype=torch.bool)
            free[self.candidates] = True
            free[owned] = False
            if self._probs is not None and bool((free & (self._probs > 0)).any()):
                free &= self._probs > 0
            choices = torch.nonzero(free).flatten()
            if choices.numel():
                neg[k] = choices[torch.randint(choices.numel(), (1,), generator=generator)]
        return neg if num == 1 else neg.view(-1, num)

