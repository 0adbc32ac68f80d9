"""``bkgdask validate``: a bundle against truth, runs and held-out folds; PNG + JSON + Markdown."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..engine.build import select_obs_ids
from ..errors import BkgdaskError
from ..io.files import check_output
from ..io.store import DataStore
from ..models import read_models
from ..sim.truth import TRUTH_FILE, TruthModel
from . import plots
from .binned import binned_tables, stacked_significance
from .crossval import cross_validate, ratio_summary
from .model_check import safe_energy_range
from .runs import RunValidationSettings, significance_summary, validate_run
from .truth_check import compare_bundle_to_truth

log = logging.getLogger(__name__)

OURS = "bkgdask"
STORE_MODEL = "store-bkg"


@dataclass
class ValidationRequest:
    """What to validate.

    Attributes
    ----------
    bundle, store : Path
        The bundle and the store its runs come from.
    outdir : Path
        Report folder.
    selection : str, optional
        Runs to apply the models to (obs-index query); default: the bundle's runs.
    regions : list
        Exclusion regions (``regions.SkyRegion``).
    truth : Path, optional
        Truth file; default: ``truth.yaml`` beside the store, if there.
    kfold : int
        Folds of the cross-validation (0: none).
    compare_store_models : bool
        Also apply the store's own bkg models (e.g. the official H.E.S.S. ones).
    max_runs : int
        At most this many runs (evenly spaced in obs_id) get the map validation.
    settings : RunValidationSettings
    """

    bundle: Path
    store: Path
    outdir: Path
    selection: str | None = None
    regions: list = field(default_factory=list)
    truth: Path | None = None
    kfold: int = 0
    compare_store_models: bool = False
    max_runs: int = 50
    settings: RunValidationSettings = field(default_factory=RunValidationSettings)


def _subset(obs_ids, n: int) -> list[int]:
    ids = sorted(map(int, obs_ids))
    if len(ids) <= n:
        return ids
    return [ids[i] for i in np.linspace(0, len(ids) - 1, n).round().astype(int)]


def _apply_models(request, store, obs_ids, zenith, bundles=None) -> dict[str, list]:
    """Map validation of runs under our models (and the store's), same safe energy range."""
    from gammapy.data import DataStore as GammapyStore

    ours_store = GammapyStore.from_file(request.bundle)
    original = GammapyStore.from_dir(store.base_dir) if request.compare_store_models else None
    results: dict[str, list] = {OURS: []}
    if original is not None:
        results[STORE_MODEL] = []
    safe = dict(zip(obs_ids, zip(*safe_energy_range(store, obs_ids))))
    for obs_id in obs_ids:
        source = GammapyStore.from_file(bundles[obs_id]) if bundles else ours_store
        obs = source.obs(obs_id, required_irf=["bkg"])
        models = {OURS: obs.bkg}
        if original is not None:
            models[STORE_MODEL] = original.obs(obs_id, required_irf=["bkg"]).bkg
        for label, bkg in models.items():
            result = validate_run(
                obs, bkg, label, request.settings, request.regions, safe_energy=safe[obs_id]
            )
            result.zenith = zenith[obs_id]
            results[label].append(result)
    return results


def _targets(store: DataStore) -> dict[int, str]:
    """obs_id -> TARGET_NAME (or OBJECT) of the obs-index, '' if neither."""
    for column in ("TARGET_NAME", "OBJECT"):
        if column in store.obs_index:
            names = [str(n).strip() for n in store.obs_index[column]]
            return dict(zip(store.obs_ids.tolist(), names))
    return {}


def _run_rows(results) -> list[dict]:
    return [r.row() for r in results]


def _section(results: dict[str, list], targets: dict[int, str], settings) -> dict:
    out = {}
    for label, runs in results.items():
        rows = _run_rows(runs)
        for row in rows:
            row["target"] = targets.get(row["obs_id"], "")
        by_target: dict[str, list] = {}
        for row in rows:
            by_target.setdefault(row["target"], []).append(row)
        out[label] = {
            "by_target": {
                t: ratio_summary(r["ratio"] for r in v) for t, v in sorted(by_target.items())
            },
            "norm_by_target": {t: norm_summary(v) for t, v in sorted(by_target.items())},
            "runs": rows,
            "ratio": ratio_summary(r["ratio"] for r in rows),
            "norm": ratio_summary(r["norm"] for r in rows),
            "significance": significance_summary(runs),
            "binned": binned_tables(runs, settings),
            "safe_threshold_median_tev": float(np.nanmedian([r.energy_threshold for r in runs])),
        }
    return out


def norm_summary(rows: list[dict]) -> dict:
    """Mean and spread of the runs' fitted FoV norms, and their median fit error."""
    out = ratio_summary(r["norm"] for r in rows)
    errors = [r["norm_error"] for r in rows if np.isfinite(r["norm_error"])]
    out["median_error"] = float(np.median(errors)) if errors else None
    return out


def run_validation(request: ValidationRequest) -> dict:
    """Run every check the request asks for; write the report; return its numbers."""
    models, _ = read_models(request.bundle)
    if not models:
        raise BkgdaskError(f"{request.bundle} holds no BKG models")
    store = DataStore.open(request.store)
    outdir = check_output(request.outdir, [store.base_dir], "validation folder")
    outdir.mkdir(parents=True, exist_ok=True)
    zenith = dict(zip(store.obs_ids.tolist(), store.zenith_deg().tolist()))
    targets = _targets(store)
    report: dict = {
        "bundle": str(request.bundle),
        "store": str(store.base_dir),
        "settings": asdict(request.settings),
    }
    figures: dict[str, str] = {}

    truth_path = request.truth or (store.base_dir / TRUTH_FILE)
    if request.truth is not None or truth_path.is_file():
        truth = TruthModel.read(truth_path)
        comparisons = compare_bundle_to_truth(models, store, truth)
        report["truth"] = [c.summary() for c in comparisons]
        for c in comparisons:
            figures[f"pulls {c.hdu_name}"] = plots.pulls(c, outdir / f"pulls-{c.hdu_name}.png").name

    used = sorted(o for m in models.values() for o in m.obs_ids)
    selected = select_obs_ids(store, request.selection) if request.selection else used
    runs = _subset(selected, request.max_runs)
    applied = _apply_models(request, store, runs, zenith)
    report["runs"] = _section(applied, targets, request.settings)
    figures.update(_figures(applied, report["runs"], request.settings, outdir))

    if request.kfold:
        with tempfile.TemporaryDirectory(dir=outdir, prefix=".folds-") as workdir:
            rows, bundles, _ = cross_validate(
                store, models, request.kfold, Path(workdir), request.settings.offset_max
            )
            folded = _apply_models(request, store, [r["obs_id"] for r in rows], zenith, bundles)
        for row in rows:
            row["zenith"] = zenith[row["obs_id"]]
        report["crossval"] = {
            "k": request.kfold,
            "exact": {"runs": rows, "ratio": ratio_summary(r["ratio"] for r in rows)},
            **_section(folded, targets, request.settings),
        }
        figures["crossval"] = plots.ratios(
            {"held-out, model bins": rows}, "ratio", outdir / "crossval-ratio.png"
        ).name
    report["figures"] = figures
    (outdir / "report.json").write_text(json.dumps(report, indent=1, default=_jsonable))
    (outdir / "report.md").write_text(markdown(report))
    return report


def _figures(applied: dict[str, list], section: dict, settings, outdir: Path) -> dict:
    """Significance histogram and stacked maps, norms against zenith, binned ratios."""
    sig = {k: np.concatenate([r.significance for r in v]) for k, v in applied.items()}
    maps = {k: stacked_significance(v, settings) for k, v in applied.items()}
    tables = {k: v["binned"] for k, v in section.items()}
    thresholds = {k: v["safe_threshold_median_tev"] for k, v in section.items()}
    rows = {k: _run_rows(v) for k, v in applied.items()}
    return {
        "significance": plots.significance_histogram(sig, outdir / "significance.png").name,
        "significance map": plots.significance_maps(
            maps, settings.offset_max, outdir / "significance-map.png"
        ).name,
        "norm": plots.ratios(rows, "norm", outdir / "norm-vs-zenith.png").name,
        "binned": plots.binned_ratios(tables, thresholds, outdir / "binned-ratios.png").name,
    }


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _fmt(stat: dict | None, key: str = "mean", spread: str = "std") -> str:
    if not stat or stat.get(key) is None:
        return "–"
    return f"{stat[key]:.3f} ± {stat[spread]:.3f}"


def _norm_lines(section: dict, models: list[str]) -> list[str]:
    """FoV norms by target: mean ± sd over runs, median fit error, per model."""
    targets = sorted(set().union(*(section[m]["norm_by_target"] for m in models)))
    lines = ["", "FoV norm by target (mean ± sd over runs; median fit error):", ""]
    lines += ["| target | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    for target in targets:
        cells = []
        for m in models:
            stat = section[m]["norm_by_target"].get(target)
            error = stat.get("median_error") if stat else None
            suffix = "" if error is None else f" (±{error:.3f}, n={stat['n']})"
            cells.append(_fmt(stat) + suffix)
        lines.append(f"| {target or '–'} | " + " | ".join(cells) + " |")
    return lines


def _binned_lines(section: dict, models: list[str]) -> list[str]:
    """Counts / prediction (Poisson error) per energy bin and offset ring, per model."""
    lines = []
    for key, unit, label in (("energy", "tev", "energy (TeV)"), ("offset", "deg", "offset (deg)")):
        lines += ["", f"counts / prediction per {key} bin (before the norm fit):", ""]
        lines += [f"| {label} | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
        tables = [section[m]["binned"][key] for m in models]
        for rows in zip(*tables):
            if not any(r["predicted"] > 0 for r in rows):
                continue
            edges = f"{rows[0][f'{key}_lo_{unit}']:.3g}–{rows[0][f'{key}_hi_{unit}']:.3g}"
            cells = [
                f"{r['ratio']:.3f} ± {r['error']:.3f} ({r['counts']:.0f})"
                if r["predicted"] > 0
                else "–"
                for r in rows
            ]
            lines.append(f"| {edges} | " + " | ".join(cells) + " |")
    return lines


def markdown(report: dict) -> str:
    """A short human summary of the report's numbers."""
    lines = [
        "# Background model validation",
        "",
        f"Bundle `{report['bundle']}`, store `{report['store']}`.",
        "",
    ]
    if "truth" in report:
        lines += [
            "## Against the truth",
            "",
            "| model | χ²/ndf | p-value | counts/truth |",
            "|---|---|---|---|",
        ]
        for t in report["truth"]:
            lines.append(
                f"| {t['model']} | {t['chi2']:.1f}/{t['ndf']} | {t['p_value']:.3g} | "
                f"{t['counts_over_expected']:.4f} |"
            )
        lines.append("")
    sections = [("runs", "Applied to runs (gammapy maps)")]
    if "crossval" in report:
        sections.append(("crossval", f"{report['crossval']['k']}-fold cross-validation"))
    for key, title in sections:
        lines += [
            f"## {title}",
            "",
            "| model | runs | obs/pred (mean ± sd) | FoV norm (mean ± sd) "
            "| significance mean | width |",
            "|---|---|---|---|---|---|",
        ]
        for label, sec in report[key].items():
            if label in ("k", "exact"):
                continue
            s = sec["significance"]
            mean = "–" if s["mean"] is None else f"{s['mean']:.3f}"
            width = "–" if s["width"] is None else f"{s['width']:.3f}"
            lines.append(
                f"| {label} | {sec['ratio']['n']} | {_fmt(sec['ratio'])} | "
                f"{_fmt(sec['norm'])} | {mean} | {width} |"
            )
        models = [m for m in report[key] if m not in ("k", "exact")]
        targets = sorted(set().union(*(report[key][m]["by_target"] for m in models)))
        if len(targets) > 1:
            lines += [
                "",
                "obs/pred by target:",
                "",
                "| target | " + " | ".join(models) + " |",
                "|---" * (len(models) + 1) + "|",
            ]
            for target in targets:
                cells = [_fmt(report[key][m]["by_target"].get(target)) for m in models]
                lines.append(f"| {target} | " + " | ".join(cells) + " |")
        lines += _norm_lines(report[key], models) + _binned_lines(report[key], models)
        if key == "crossval":
            exact = report["crossval"]["exact"]["ratio"]
            lines += [
                "",
                f"Held-out obs/pred in the model's own bins (no interpolation): "
                f"{_fmt(exact)} over {exact['n']} runs.",
            ]
        lines.append("")
    lines += ["## Figures", ""] + [f"- {k}: ![{k}]({v})" for k, v in report["figures"].items()]
    return "\n".join(lines) + "\n"
