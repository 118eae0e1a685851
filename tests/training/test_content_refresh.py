"""``--content_refresh``: the content terms computed once per window of steps, their gradient summed over the
window. With a zero learning rate nothing moves, so a window's summed gradient must equal the sum of the exact
per-step gradients (``content_refresh 1``) over the same batches."""

import pytest
import torch

from gnn.mmkg_model import MMKGModel, MMKGOptions
from gnn.negative_sampling import NegativeSampler
from tests.gnn.test_fast_paths import _random_inputs
from training.config import ConfigError, TrainConfig, check_config
from training.epoch import train_epoch


class _Recorder(torch.optim.SGD):
    """SGD with lr 0 that keeps every step's gradients (``None`` where a parameter had none)."""

    def __init__(self, model):
        self.named = list(model.named_parameters())
        super().__init__([p for _, p in self.named], lr=0.0)
        self.seen = []

    def step(self, closure=None):
        self.seen.append({k: None if p.grad is None else p.grad.clone() for k, p in self.named})
        return super().step(closure)


def _run(refresh: int, inputs, steps: int = 6):
    torch.manual_seed(0)
    model = MMKGModel.from_inputs(inputs, MMKGOptions(embedding_dim=8, num_layers=2, use_kg=True, use_profile=True,
                                                      use_text=True, use_image=True, item_graphs="text,kg"))
    with torch.no_grad():  # open the gates, so every content parameter has a gradient
        for gate in (model.item_encoder.gate, model.user_encoder.gate, model.kg_gate):
            gate.fill_(0.5)
    cfg = TrainConfig(kg="x", loss="softmax", num_negatives=4, shared_negatives=True, l2_weight=1e-3,
                      batch_size=-(-inputs.train_user.numel() // steps), progress=False, content_refresh=refresh)
    opt = _Recorder(model)
    sampler = NegativeSampler(inputs.train_user, inputs.train_item, inputs.num_items)
    train_epoch(model, model, inputs, sampler, opt, cfg, 1, 0, 1)
    return model, opt.seen


def test_a_window_sums_the_exact_per_step_gradients():
    inputs = _random_inputs(5)
    model, exact = _run(1, inputs)
    _, windowed = _run(3, inputs)
    assert len(exact) == len(windowed) == 6
    content = {k for k, _ in model.named_parameters()
               if k.startswith(("item_encoder.proj", "item_encoder.fusion", "user_encoder.proj", "kg.", "profile_proj",
                                     "entity_encoder", "item_graphs."))
               or k in ("item_encoder.gate", "user_encoder.gate", "kg_gate")}
    assert {"kg.rel_emb.weight", "item_encoder.proj.text.lin1.weight", "item_graphs.attention.proj.weight"} <= content
    for step, grads in enumerate(windowed):
        end = step % 3 == 2
        for k in content:  # the content parameters: a gradient at the window's last step only
            assert (grads[k] is not None) == end, (step, k)
        for k in ("item_encoder.id_emb.weight", "user_encoder.id_emb.weight"):
            assert grads[k] is not None, (step, k)  # every step
    for window in (range(0, 3), range(3, 6)):
        for k, _ in model.named_parameters():
            want = sum(exact[s][k] for s in window if exact[s][k] is not None)
            got = sum(windowed[s][k] for s in window if windowed[s][k] is not None)
            if isinstance(want, int):
                assert isinstance(got, int), k
                continue
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), k


def test_reused_content_gives_the_same_embeddings():
    inputs = _random_inputs(6)
    model = MMKGModel.from_inputs(inputs, MMKGOptions(embedding_dim=8, use_kg=True, use_profile=True, use_text=True))
    content = {k: v for k, v in model.content_terms(inputs).items() if k in model.reusable_content}
    assert set(content) == {"item_content", "item_kg_term", "user_content"}
    user, item = model(inputs)
    user2, item2 = model(inputs, content={k: v.detach() for k, v in content.items()})
    assert torch.allclose(user, user2, atol=1e-6) and torch.allclose(item, item2, atol=1e-6)


@pytest.mark.parametrize("clash", [{"item_id_dropout": 0.5}, {"contrastive_weight": 0.1}, {"model": "lightgcn"},
                                   {"kg_loss_weight": 0.1}, {"distributed": True}])
def test_content_refresh_refuses_what_it_cannot_reuse(clash):
    with pytest.raises(ConfigError, match="content_refresh"):
        check_config(TrainConfig(kg="x", content_refresh=2, **{"model": "mmkg", **clash}))
    check_config(TrainConfig(kg="x", content_refresh=1, **{"model": "mmkg", **clash}))
