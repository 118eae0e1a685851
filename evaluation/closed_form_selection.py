"""After training (``--ease_blend true``): fit the closed-form item-item branch of a trained model
(:class:`gnn.closed_form_blend.ClosedFormBlend`) and choose its L2 and weight on validation only.

For each L2 in ``cfg.ease_blend_regs`` EASE's ``B`` is solved on the training pairs; each weight in
``cfg.ease_blend_weights`` is scaled by the ratio of the standard deviations of the model's scores and of
``X B`` over the (user, unseen item) pairs of up to ``SCALE_USERS`` users, and the blend is ranked on the
validation split. The best validation ``main_metric`` wins; the model alone (weight 0) wins ties, so the branch
stays off unless it helps on validation. The test split is not read here.
"""

from __future__ import annotations

from typing import Any

import torch

from evaluation.protocol import ValidationEvaluator, require_validation_evaluator
from gnn.ease import binary_history, ease_weights, item_gram
from gnn.graph_inputs import GraphInputs
from gnn.recommender import TrainableRecommender

SCALE_USERS = 2048


def select_closed_form(model: TrainableRecommender, inputs: GraphInputs, validator: ValidationEvaluator,
                       regs: list[float], weights: list[float], main_metric: str) -> dict[str, Any]:
    """Sets ``model.closed_form`` to the validation-best (L2, weight) and returns the record kept in
    ``metrics.json``: ``reg``, ``weight`` (as configured), ``scale``, ``factor`` (= weight x scale, what the
    branch multiplies by), ``valid`` (every metric of the chosen blend), ``base_valid`` and the ``grid``."""
    validator = require_validation_evaluator(validator)  # never the test split
    branch = model.closed_form
    branch.reset_parameters()
    model.eval()
    base = model.score_fn(inputs)
    history = branch.history(inputs.train_user, inputs.train_item, inputs.num_users)

    def evaluate(fn) -> dict[str, float]:
        return {k: v["mean"] for k, v in validator.evaluate(fn).metrics.items()}

    probe = torch.randperm(inputs.num_users, generator=torch.Generator().manual_seed(0))[:SCALE_USERS]
    probe_rows = branch.rows(history, probe)
    unseen = probe_rows == 0
    with torch.no_grad():
        base_std = base(probe).to(history.device)[unseen].std().item()
    base_valid = evaluate(base)
    best: dict[str, Any] = {"reg": None, "weight": 0.0, "scale": 0.0, "factor": 0.0, "valid": base_valid}
    grid = [{"reg": None, "weight": 0.0, main_metric: base_valid[main_metric]}]
    gram = item_gram(binary_history(inputs.train_user, inputs.train_item, inputs.num_users, inputs.num_items))
    for reg in regs:  # one X^T X, one inverse per L2
        b = ease_weights(gram, reg).to(history.device, torch.float32)
        other_std = (probe_rows @ b)[unseen].std().item()
        scale = base_std / other_std if other_std > 0 else 0.0
        for w in (w for w in weights if w > 0):
            branch.set(b, w * scale, reg)
            found = evaluate(branch.blended(base, history))
            grid.append({"reg": reg, "weight": w, main_metric: found[main_metric]})
            if found[main_metric] > best["valid"][main_metric]:
                best = {"reg": reg, "weight": w, "scale": scale, "factor": w * scale, "valid": found, "b": b}
    if best["reg"] is None:
        branch.reset_parameters()
    else:
        branch.set(best.pop("b"), best["factor"], best["reg"])
    return {**best, "base_valid": base_valid, "grid": grid}
