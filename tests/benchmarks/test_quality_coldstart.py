"""The cold-start benchmark's prior combination: per-user standardised scores plus beta times the prior."""

from __future__ import annotations

import torch

from benchmarks.quality_coldstart import BETAS, with_prior


def test_with_prior_standardises_each_user_then_adds_beta_times_the_prior() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0], [10.0, 10.0, 10.0]])  # the second user's row is constant
    prior = torch.tensor([1.0, 0.0, -1.0])
    out = with_prior(lambda u: scores[u], prior, 2.0)(torch.tensor([0, 1]))
    s = 1.5**0.5
    torch.testing.assert_close(out, torch.tensor([[-s + 2.0, 0.0, s - 2.0], [2.0, 0.0, -2.0]]))
    # beta 0 keeps the model's own ranking; a large beta ranks by the prior
    torch.testing.assert_close(with_prior(lambda u: scores[u], prior, 0.0)(torch.tensor([0])).argsort(),
                               scores[:1].argsort())
    assert with_prior(lambda u: scores[u], prior, 16.0)(torch.tensor([0])).argmax().item() == 0
    assert BETAS[0] == 0.0 and list(BETAS) == sorted(BETAS)
