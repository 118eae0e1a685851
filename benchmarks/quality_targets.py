"""The quality benchmark's goals (the GNN issue), checked against ``quality.json``'s merged rows."""

from __future__ import annotations

LIFT = 1.05  # the full model's test R@20 and N@20 over our LightGCN's
COLD_LIFT = 3.0  # cold-start R@20 over a random ranking
SCALE_MB = 8 * 1024  # peak memory of one epoch on the generated graph
EPOCH_RATIO = 3.0  # CPU epoch time, full model / LightGCN


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def target_lines(models: dict, full: str | None, coldstart: dict, scale: dict) -> list[str]:
    """Markdown bullet lines: each goal, the measured value and whether it holds (means over seeds)."""
    lines = ["## Goals", ""]
    if full and "LightGCN" in models:
        f, lg = models[full]["mean"], models["LightGCN"]["mean"]
        for m in ("recall@20", "ndcg@20"):
            r = f[f"test/{m}"] / lg[f"test/{m}"]
            lines.append(f"- {full}, test {m} / LightGCN's: {r:.3f}x (goal >= {LIFT}x: {_verdict(r >= LIFT)})")
        if "EASE" in models:
            e = models["EASE"]["mean"]
            for m in ("recall@20", "ndcg@20"):
                a, b = f[f"test/{m}"], e[f"test/{m}"]
                lines.append(f"- {full}, test {m} {a:.4f} vs EASE {b:.4f} (goal: above: {_verdict(a > b)})")
        r = f["epoch_time_s"] / lg["epoch_time_s"]
        lines.append(f"- CPU epoch time {full} / LightGCN: {r:.1f}x (goal <= {EPOCH_RATIO}x: "
                     f"{_verdict(r <= EPOCH_RATIO)}; a shared 2-core machine, rows measured at different times)")
    for seed, c in coldstart.items():
        full_cold = next((k for k in c if isinstance(c[k], dict) and k.startswith("full model")
                          and "content only" not in k), None)
        best = max((k for k in c if isinstance(c[k], dict) and k.startswith("full model")),
                   key=lambda k: c[k]["cold/recall@20"], default=None)
        if best is None:
            continue
        v, rnd, knn = (c[k]["cold/recall@20"] for k in (best, "random", "content-kNN"))
        lines.append(f"- cold start (seed {seed}), best full-model variant `{best}`: R@20 {v:.4f} = {v / rnd:.2f}x "
                     f"random (goal >= {COLD_LIFT}x: {_verdict(v >= COLD_LIFT * rnd)}), content-kNN {knn:.4f} "
                     f"(goal: above: {_verdict(v > knn)})" + (f"; with IDs (`{full_cold}`): "
                                                               f"{c[full_cold]['cold/recall@20']:.4f}"
                                                               if full_cold and full_cold != best else ""))
    for seed, c in scale.items():
        peak = max(v["peak_rss_mb"] for v in c.values() if isinstance(v, dict))
        lines.append(f"- generated graph (seed {seed}): peak RSS {peak:.0f} MB (goal < {SCALE_MB} MB: "
                     f"{_verdict(peak < SCALE_MB)})")
    return lines + [""]
