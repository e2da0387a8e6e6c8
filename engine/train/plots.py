"""PNG plots of training curves and of the accuracy-speed trade-off (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training(history: list[dict[str, Any]], path: Path) -> Path:
    """Losses and validation mAP per epoch, one panel per phase."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    det = [r for r in history if r["phase"] == "detectors"]
    router = [r for r in history if r["phase"] == "router"]
    for key in ("det1", "det2"):
        axes[0].plot([r["epoch"] + 1 for r in det], [r.get(key, float("nan")) for r in det], marker="o", label=key)
    axes[0].set(title="detector losses (phase 1)", xlabel="epoch", ylabel="loss")
    for key in ("val_map_exit1", "val_map_exit2"):
        rows = [r for r in det if key in r]
        axes[1].plot([r["epoch"] + 1 for r in rows], [r[key] for r in rows], marker="o", label=key)
    axes[1].set(title="validation mAP@0.5:0.95", xlabel="epoch")
    axes[2].plot([r["epoch"] + 1 for r in router], [r.get("router", float("nan")) for r in router], marker="o",
                 label="router")
    axes[2].set(title="router loss (phase 2)", xlabel="epoch")
    if router and "score" in router[-1]:
        # A short router phase is one or two points: spell out what it ended with.
        last = router[-1]
        axes[2].annotate(f"mean easiness {last['score']:.3f}\nmean gain (L1 - L2) {last.get('gain', float('nan')):.4f}"
                         f"\nrunning median {last.get('median', float('nan')):.4f}",
                         xy=(0.03, 0.05), xycoords="axes fraction", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_tradeoff(result: dict[str, Any], path: Path) -> Path:
    """mAP against milliseconds per image: router curve, random routing and the two single exits."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    router, random = result["router"], result["random"]
    ms = [r["ms_per_image"] for r in router]
    ax.plot(ms, [r["map"] for r in router], marker="o", label="router")
    ax.plot(ms, [r["map"] for r in random], marker="x", linestyle="--", label="random routing")
    ax.scatter([ms[0]], [result["exit1"]["map"]], s=80, marker="s", label="exit 1 only", zorder=3)
    ax.scatter([ms[-1]], [result["exit2"]["map"]], s=80, marker="D", label="exit 2 only", zorder=3)
    for r, x in zip(router, ms):
        ax.annotate(f"{r['second_fraction']:.0%}", (x, r["map"]), textcoords="offset points", xytext=(4, -10),
                    fontsize=7)
    ax.set(xlabel="ms per image (CPU, batch 1)", ylabel="mAP@0.5:0.95",
           title="accuracy vs speed (labels: share sent to exit 2)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
