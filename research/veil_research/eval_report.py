"""Tables and the protection-versus-quality plot that `veil-research eval` writes.

matplotlib is an optional benchmark dependency (`pip install matplotlib` in `.venv`); without
it the plot is skipped with a message and the tables are still written.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from veil.optimizer import ModeBudget


@dataclass(frozen=True)
class ProtectionRow:
    mode: str
    attacker: str
    reencode: str
    scores: dict[str, float]  # classifier -> protection


@dataclass(frozen=True)
class LooRow:
    row: ProtectionRow  # row.attacker is the held-out recogniser
    surrogates: list[str]


@dataclass(frozen=True)
class ModeRow:
    mode: str
    budget: ModeBudget
    crop_ssim: float
    crop_dssim: float
    seconds_per_face: float
    surrogates: list[str]


@dataclass(frozen=True)
class PhotoRow:
    mode: str
    photos: int
    mean_ssim: float  # whole-image SSIM
    min_ssim: float
    mean_face_ssim: float  # face region at output resolution (the engine's budget)
    seconds_per_face: float  # whole photo wall time / faces, engine end to end


@dataclass
class Figures:
    identities: int
    uploads: int
    command: str
    baseline: dict[str, dict[str, float]] = field(default_factory=dict)
    modes: list[ModeRow] = field(default_factory=list)
    ensemble: list[ProtectionRow] = field(default_factory=list)
    loo: list[LooRow] = field(default_factory=list)
    photos: list[PhotoRow] = field(default_factory=list)

    def loo_means(self) -> list[tuple[str, str, dict[str, float], list[str]]]:
        """Per (mode, re-encode): mean held-out protection per classifier, and over whom."""
        groups: dict[tuple[str, str], list[ProtectionRow]] = {}
        for item in self.loo:
            groups.setdefault((item.row.mode, item.row.reencode), []).append(item.row)
        out = []
        for (mode, reencode), rows in groups.items():
            means = {c: sum(r.scores[c] for r in rows) / len(rows) for c in rows[0].scores}
            out.append((mode, reencode, means, [r.attacker for r in rows]))
        return out

    def as_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Figures:
        """The inverse of `as_json` (to merge several `veil-research eval` runs into one report)."""

        def row(item: dict[str, Any]) -> ProtectionRow:
            return ProtectionRow(item["mode"], item["attacker"], item["reencode"], item["scores"])

        return cls(
            identities=data["identities"],
            uploads=data["uploads"],
            command=data["command"],
            baseline=data["baseline"],
            modes=[ModeRow(**{**m, "budget": _budget(m["budget"])}) for m in data["modes"]],
            ensemble=[row(r) for r in data["ensemble"]],
            loo=[LooRow(row(r["row"]), r["surrogates"]) for r in data["loo"]],
            photos=[PhotoRow(**p) for p in data.get("photos", [])],
        )


def _budget(saved: dict[str, Any]) -> ModeBudget:
    """A saved budget; fields ModeBudget no longer has (older runs' research knobs) dropped."""
    known = {f.name for f in fields(ModeBudget)}
    return ModeBudget(**{k: v for k, v in saved.items() if k in known})


def _pair(scores: dict[str, float]) -> str:
    return f"{scores['centroid']:.2f} / {scores['logreg']:.2f}"


def render_markdown(fig: Figures) -> str:
    lines = [
        "# Protection benchmark",
        "",
        f"Command: `{fig.command}`",
        "",
        f"{fig.identities} identities, {fig.uploads} cloaked uploads per configuration. "
        "Protection = share of the protected person's clean probes NOT identified as them "
        "(nearest centroid / logistic regression), mean over identities.",
        "",
        "## Uncloaked baseline",
        "",
        "| attacker | protection (centroid / logreg) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {_pair(scores)} |" for name, scores in fig.baseline.items()]
    lines += [
        "",
        "## Modes: budget, quality, speed",
        "",
        "| mode | L-inf (/255) | steps | copies | grid | crop SSIM | crop DSSIM | s/face |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in fig.modes:
        b = m.budget
        lines.append(
            f"| {m.mode} | {b.linf * 255:.0f} | {b.steps} | {b.copies} | {b.grid} | "
            f"{m.crop_ssim:.4f} | {m.crop_dssim:.4f} | {m.seconds_per_face:.2f} |"
        )
    if fig.photos:
        lines += [
            "",
            "## Full-resolution photos through the engine",
            "",
            "| mode | photos | whole-image SSIM mean | min | face SSIM mean | s/face |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {p.mode} | {p.photos} | {p.mean_ssim:.4f} | {p.min_ssim:.4f} | "
            f"{p.mean_face_ssim:.4f} | {p.seconds_per_face:.2f} |"
            for p in fig.photos
        ]
    reencodes = sorted({r.reencode for r in fig.ensemble}, key=_reencode_order)
    lines += ["", "## Full ensemble against each attacker", ""]
    lines += _protection_table(fig.ensemble, reencodes)
    if fig.loo:
        lines += [
            "",
            "## Held out (cloak without M, attack with M): the transfer figure",
            "",
        ]
        lines += _protection_table([item.row for item in fig.loo], reencodes)
        lines += [
            "",
            "| mode | re-encode | mean held-out (centroid / logreg) | over |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {m} | {r} | {_pair(s)} | {', '.join(held)} |" for m, r, s, held in fig.loo_means()
        ]
    return "\n".join(lines) + "\n"


def _reencode_order(name: str) -> int:
    order = ["none", "jpeg75", "down0.75"]
    return order.index(name) if name in order else len(order)


def _protection_table(rows: list[ProtectionRow], reencodes: list[str]) -> list[str]:
    header = "| mode | attacker | " + " | ".join(reencodes) + " |"
    lines = [header, "|---|---|" + "---|" * len(reencodes)]
    keyed = {(r.mode, r.attacker, r.reencode): r.scores for r in rows}
    seen: list[tuple[str, str]] = []
    for r in rows:
        if (r.mode, r.attacker) not in seen:
            seen.append((r.mode, r.attacker))
    for mode, attacker in seen:
        cells = [
            _pair(keyed[(mode, attacker, re)]) if (mode, attacker, re) in keyed else "-"
            for re in reencodes
        ]
        lines.append(f"| {mode} | {attacker} | " + " | ".join(cells) + " |")
    return lines


def write_plot(fig: Figures, path: Path) -> str:
    """Protection (logreg, no re-encode) vs crop DSSIM, one curve per attacker."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "plot skipped: matplotlib is not installed (.venv/bin/pip install matplotlib)"
    dssim = {m.mode: m.crop_dssim for m in fig.modes}
    figure, axes = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[tuple[float, float, str]]] = {}
    held_out = {(i.row.mode, i.row.attacker, i.row.reencode) for i in fig.loo}
    surrogates: dict[str, set[str]] = {}
    for item in fig.loo:
        surrogates.setdefault(item.row.mode, set()).update(item.surrogates)
    for r in fig.ensemble:
        # A never-surrogate attacker's ensemble row is its held-out row: plotted once, as
        # held out. A surrogate's ensemble row is its white-box figure and stays.
        never_surrogate = r.attacker not in surrogates.get(r.mode, set())
        if (r.mode, r.attacker, r.reencode) in held_out and never_surrogate:
            continue
        if r.reencode == "none" and r.mode in dssim:
            series.setdefault(f"{r.attacker} (ensemble)", []).append(
                (dssim[r.mode], r.scores["logreg"], r.mode)
            )
    for item in fig.loo:
        r = item.row
        if r.reencode == "none" and r.mode in dssim:
            series.setdefault(f"{r.attacker} (held out)", []).append(
                (dssim[r.mode], r.scores["logreg"], r.mode)
            )
    for label, points in series.items():
        points.sort()
        style = "--" if "held out" in label else "-"
        axes.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=label)
        for x, y, mode in points:
            axes.annotate(mode, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    axes.axvspan(0.004, 0.017, color="grey", alpha=0.15, label="Fawkes DSSIM budgets")
    axes.set_xlabel("crop DSSIM (lower = less visible)")
    axes.set_ylabel("protection (logistic regression)")
    axes.set_ylim(-0.02, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    axes.set_title("Veil: protection vs quality, one point per mode")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return f"plot: {path}"
