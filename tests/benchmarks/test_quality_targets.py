"""The quality benchmark's Goals lines on hand-made rows: ratios, verdicts, and no variant picked by test."""

from benchmarks.quality_targets import target_lines


def _row(r20: float, n20: float, epoch: float) -> dict:
    return {"mean": {"test/recall@20": r20, "test/ndcg@20": n20, "epoch_time_s": epoch}}


def test_goal_lines_from_hand_made_rows() -> None:
    models = {"LightGCN": _row(0.40, 0.30, 1.0), "EASE": _row(0.41, 0.33, 0.5), "Full": _row(0.42, 0.33, 4.0)}
    cold = {"0": {"random": {"cold/recall@20": 0.2}, "content-kNN": {"cold/recall@20": 0.3},
                  "full model": {"cold/recall@20": 0.62}, "full model, content only": {"cold/recall@20": 0.25}},
            "1": {"random": {"cold/recall@20": 0.2}, "content-kNN": {"cold/recall@20": 0.3},
                  "full model": {"cold/recall@20": 0.58}, "full model, content only": {"cold/recall@20": 0.35}}}
    scale = {"0": {"full model": {"peak_rss_mb": 9000.0}, "LightGCN": {"peak_rss_mb": 3000.0}}}
    lines = target_lines(models, "Full", cold, scale)
    assert "- Full, test recall@20 / LightGCN's: 1.050x (goal >= 1.05x: met)" in lines
    assert "- Full, test ndcg@20 / LightGCN's: 1.100x (goal >= 1.05x: met)" in lines
    assert "- Full, test recall@20 0.4200 vs EASE 0.4100 (goal: above: met)" in lines
    assert "- Full, test ndcg@20 0.3300 vs EASE 0.3300 (goal: above: **missed**)" in lines  # a tie is not above
    assert any(line.startswith("- CPU epoch time Full / LightGCN: 4.0x (goal <= 3.0x: **missed**") for line in lines)
    # both variants reported with their seed means (0.60 and 0.30), neither chosen by its test score
    assert any("`full model` (mean of 2 seeds): R@20 0.6000 = 3.00x random 0.2000 (goal >= 3.0x: met); "
               "content-kNN 0.3000 (goal: above: met)" in line for line in lines)
    assert any("`full model, content only` (mean of 2 seeds): R@20 0.3000 = 1.50x random" in line
               and line.endswith("(goal: above: **missed**)") for line in lines)
    assert "- generated graph (seed 0): peak RSS 9000 MB (goal < 8192 MB: **missed**)" in lines
