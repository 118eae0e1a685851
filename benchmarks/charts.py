"""PNG charts of the benchmark report (matplotlib, Agg backend: no display needed).

Every function draws one figure, writes it atomically to ``path`` and returns the value labels it printed
on the chart (so tests can check that the numbers shown are the numbers given).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from kg.atomic_files import atomic_path

COLORS = plt.get_cmap("tab10").colors
DPI = 110


def _save(fig, path: str | Path) -> None:
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)


def bar_chart(rows: Mapping[str, tuple[Mapping[str, float], Mapping[str, float]]], metrics: Sequence[str],
              path: str | Path, title: str, reference: Mapping[str, Mapping[str, float]] | None = None,
              n_seeds: Mapping[str, int] | None = None) -> list[str]:
    """Grouped bars: one group per metric, one bar per row (model), height = mean, error bar = std over seeds.

    Args:
        rows: ``{row: (means, stds)}`` with ``means[metric]`` / ``stds[metric]``.
        reference: ``{row: {metric: value}}`` drawn as a dashed line across that row's bar (RecBole numbers).
        n_seeds: seeds per row, shown in the legend.
    """
    names = list(rows)
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(7.5, 1.2 * len(metrics) * max(len(names), 1) + 2), 5.2))
    labels: list[str] = []
    top = max([rows[r][0].get(m, 0.0) + (rows[r][1].get(m, 0.0) or 0.0) for r in names for m in metrics]
              + [v for r in (reference or {}).values() for v in r.values()] + [0.0])
    top = top if top == top and top > 0 else 1.0
    ref_label = "RecBole reference"
    for j, row in enumerate(names):
        means, stds = rows[row]
        xs = [m + (j - (len(names) - 1) / 2) * width for m in range(len(metrics))]
        ys = [means.get(m, float("nan")) for m in metrics]
        es = [stds.get(m, 0.0) or 0.0 for m in metrics]
        n = (n_seeds or {}).get(row)
        legend = row if n is None else f"{row} ({n} seed{'s' if n != 1 else ''})"
        ax.bar(xs, ys, width * 0.92, yerr=es, capsize=3, color=COLORS[j % len(COLORS)], label=legend)
        for x, y in zip(xs, ys, strict=True):
            if y != y:
                continue
            text = f"{y:.3f}"
            inside = y > 0.18 * top
            ax.annotate(text, (x, y if not inside else y / 2), xytext=(0, 3 if not inside else 0),
                        textcoords="offset points", ha="center", va="bottom" if not inside else "center",
                        fontsize=9, rotation=90 if len(names) > 3 else 0, color="white" if inside else "black",
                        fontweight="bold" if inside else "normal")
            labels.append(text)
        for m, metric in enumerate(metrics):
            ref = (reference or {}).get(row, {}).get(metric)
            if ref is not None:
                ax.hlines(ref, xs[m] - width * 0.5, xs[m] + width * 0.5, colors="black", linestyles="dashed",
                          linewidth=1.5, label=ref_label)
                ref_label = None
                ax.annotate(f"ref {ref:.3f}", (xs[m], ref), xytext=(0, 3), textcoords="offset points",
                            ha="center", va="bottom", fontsize=8, style="italic")
                labels.append(f"{ref:.3f}")
    ax.set_xticks(range(len(metrics)), [m.replace("test/", "") for m in metrics])
    ax.set_ylabel("metric value (mean over seeds, bar = ± std)")
    ax.set_xlabel("metric (test split, full ranking)")
    ax.set_title(title, wrap=True)
    ax.set_ylim(0, top * 1.3)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", ncols=2)
    _save(fig, path)
    return labels


def robustness_chart(table: Mapping, metric: str, path: str | Path, title: str) -> list[str]:
    """Left: ``metric`` vs perturbation level, one line per levelled perturbation (level 0 = clean model).
    Right: clean vs each removed modality."""
    clean = table["clean"].get(metric)
    curves: dict[str, list[tuple[float, float]]] = {}
    removed: dict[str, float] = {}
    for r in table["rows"]:
        v = r["metrics"].get(metric)
        if v is None or r["perturbation"] == "none":
            continue
        if r["perturbation"].startswith("no_"):
            removed[r["perturbation"]] = v
        else:
            curves.setdefault(r["perturbation"], []).append((r["level"], v))
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.5, 4.6), gridspec_kw={"width_ratios": [2.2, 1]})
    labels: list[str] = []
    for j, (name, pts) in enumerate(curves.items()):
        pts = sorted([(0.0, clean)] + pts) if clean is not None else sorted(pts)
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, marker="o", color=COLORS[j % len(COLORS)], label=name.replace("_", " "))
        for x, y in pts[1:] if clean is not None else pts:
            ax.annotate(f"{y:.3f}", (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8,
                        color=COLORS[j % len(COLORS)])
            labels.append(f"{y:.3f}")
    if clean is not None:
        ax.annotate(f"clean {clean:.3f}", (0, clean), xytext=(4, -12), textcoords="offset points", fontsize=8)
        labels.append(f"{clean:.3f}")
    ax.set_xlabel("perturbation level (fraction of KG triples / training pairs)")
    ax.set_ylabel(metric)
    ax.set_title("graph perturbations")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    bars = ({"clean": clean} if clean is not None else {}) | {k.replace("_", " "): v for k, v in removed.items()}
    bx.bar(list(bars), list(bars.values()), color=[COLORS[7]] + [COLORS[3 + j] for j in range(len(bars) - 1)])
    for x, (_, v) in enumerate(bars.items()):
        bx.annotate(f"{v:.3f}", (x, v), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=9)
        labels.append(f"{v:.3f}")
    bx.set_ylabel(metric)
    bx.set_title("modality removed")
    bx.set_ylim(0, max(bars.values(), default=1.0) * 1.2 or 1.0)
    failed = sorted({r["perturbation"].replace("_", " ") for r in table["rows"] if r.get("error")})
    skipped = sorted(p.replace("_", " ") for p in table.get("skipped", {}))
    if failed or skipped:
        fig.text(0.01, -0.02, "; ".join(x for x in (f"model failed on: {', '.join(failed)}" if failed else "",
                                                     f"not applicable: {', '.join(skipped)}" if skipped else "") if x)
                 + " (see the table)", fontsize=9, style="italic", ha="left", va="top")
    fig.suptitle(title)
    _save(fig, path)
    return labels


def training_curves_chart(curves: Mapping[str, Mapping[str, Sequence[float]]], path: str | Path, title: str,
                          valid_metric: str = "valid_ndcg@20") -> list[str]:
    """Left: training loss per epoch; right: validation ``valid_metric`` per epoch, one line per run.
    ``curves[run]`` holds ``"epoch"``, ``"loss"`` and ``valid_metric`` lists (the metric may be sparser)."""
    legend_h = 0.2 * ((len(curves) + 1) // 2) + 0.2  # inches of the legend below the panels
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11.5, 4.4 + legend_h))
    labels: list[str] = []
    for j, (run, c) in enumerate(curves.items()):
        color = COLORS[j % len(COLORS)]
        loss = list(c.get("loss", []))
        if loss:
            epochs = list(c.get("epoch", range(1, len(loss) + 1)))[: len(loss)]
            ax.plot(epochs, loss, color=color, label=run)
            ax.annotate(f"{loss[-1]:.4f}", (epochs[-1], loss[-1]), xytext=(3, 3), textcoords="offset points",
                        fontsize=8, color=color)
            labels.append(f"{loss[-1]:.4f}")
        val = list(c.get(valid_metric, []))
        if val:
            v_epochs = list(c.get("valid_epoch", c.get("epoch", range(1, len(val) + 1))))[: len(val)]
            best = max(range(len(val)), key=val.__getitem__)  # in the legend: labels beside stars collide
            bx.plot(v_epochs, val, marker=".", color=color, label=f"{run}: best {val[best]:.4f} @ {v_epochs[best]}")
            bx.plot([v_epochs[best]], [val[best]], marker="*", markersize=11, color=color)
            labels.append(f"{val[best]:.4f}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (sum of the loss terms)")
    ax.set_title("training loss")
    bx.set_xlabel("epoch")
    bx.set_ylabel(valid_metric.replace("_", " "))
    bx.set_title(f"{valid_metric.replace('_', ' ')} (* = selected epoch)")
    for a in (ax, bx):
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
        a.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    if bx.get_legend_handles_labels()[0]:  # below the panels: many runs would hide the curves
        fig.legend(*bx.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
        fig.subplots_adjust(bottom=(legend_h + 0.55) / (4.4 + legend_h), top=0.88)
    fig.suptitle(title)
    _save(fig, path)
    return labels
