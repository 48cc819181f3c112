"""Stage 06 (issue 18): per test patient, plans on the CT recomputed on every
whole-volume sampler's MC-mean sCT (and the default sampler's MC samples) → runs/<profile>/dose.csv, dose_summary.md."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from ctmri import paths
from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.phantom import make_case
from ctmri.data.prepare import load_manifest, load_split, unresample_slices
from ctmri.dose.hu_tables import load_table
from ctmri.dose.pair import dose_pair
from ctmri.dose.structures import TARGET, phantom_structures


def _volume(case_ct: np.ndarray, slices: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Model-space slices (n, H, W) of one patient back on its (z, y, x) grid in HU; other slices keep the CT."""
    vol = case_ct.copy()
    vol[index] = model_to_hu(unresample_slices(slices, case_ct.shape[1:]))
    return np.clip(vol, -1024.0, 3071.0)


def _crop(structures: dict[str, np.ndarray], margin_mm: float, dz: float) -> slice:
    """Slices of the PTV ± margin (the z-crop that keeps the stage inside its budget)."""
    zs = np.where(structures[TARGET].any(axis=(1, 2)))[0]
    m = int(round(margin_mm / dz))
    return slice(max(0, zs.min() - m), min(len(structures[TARGET]), zs.max() + 1 + m))


def _keep_for_figure(figure: dict, pooled: dict, pid: str, sampler: str, cubes: dict, s: dict) -> None:
    """The PTV-centre slice of the CT / sCT / std doses and the DVHs of one patient; the std and |error| voxels for
    the pooled Spearman."""
    from ctmri.dose.metrics import dvh_curve

    zc = int(np.round(np.mean(np.where(s[TARGET].any(axis=(1, 2)))[0])))
    for modality, c in cubes.items():
        key = f"{pid}|{sampler}|{modality}"
        figure[key + "|ct"], figure[key + "|sct"] = c["ct"][zc], c["sct"][zc]
        bins = np.linspace(0.0, 1.2 * float(c["ct"].max()), 121)
        figure[key + "|bins"] = bins
        for name, m in s.items():
            if np.any(m) and name != "BODY":
                figure[f"{key}|dvh_ct|{name}"] = dvh_curve(c["ct"], m, bins)
                figure[f"{key}|dvh_sct|{name}"] = dvh_curve(c["sct"], m, bins)
        if "std" in c:
            figure[key + "|std"] = c["std"][zc]
            region = c["ct"] >= 0.1 * c["ct"].max()
            pooled.setdefault(modality, ([], []))
            pooled[modality][0].append(c["std"][region])
            pooled[modality][1].append(np.abs(c["mean"] - c["ct"])[region])


def run_dose(profile: str, hu_table: str | None = None) -> list[dict]:
    """The dose stage of a phantom profile: rows written to runs/<profile>/dose.csv and dose_summary.md."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ctmri.diffusion.samplers import SAMPLERS, default_sampler
    from ctmri.sample.store import load_samples, sample_files

    prof = get_profile(profile)
    cfg, d = prof.dose, prof.data
    if load_manifest(profile).get("phantom_first_seed") is None:
        raise ValueError("The dose stage rebuilds structures from the phantom's labels; for real data use `ctmri dose`.")
    table = load_table(hu_table)
    test = load_split(profile, "test")
    files = {n: p for n, p in sample_files(profile).items() if SAMPLERS[n].evaluation == "volumes"}
    rows: list[dict] = []
    figure: dict[str, np.ndarray] = {}
    pooled: dict[str, tuple[list, list]] = {}
    for pid in tqdm(sorted(set(test.patient.tolist())), desc="dose: patients"):
        case = make_case(int(pid.removeprefix("phantom")), d.phantom_shape, d.phantom_spacing,
                         misregistration_mm=d.misregistration_mm)
        sel = test.patient == pid
        idx = test.slice_index[sel]
        ct = _volume(case.ct, test.ct[sel, 0], idx)  # the reference through the same resampling as the sCTs
        s = phantom_structures(case.labels, case.mask, case.spacing, cfg.ptv_margin_mm)
        z = _crop(s, cfg.z_margin_mm, case.spacing[0])
        s = {k: v[z] for k, v in s.items()}
        plans: dict = {}  # optimised once on this patient's CT, recomputed on every sCT
        for name, path in tqdm(files.items(), desc=f"dose: {pid}", leave=False):
            smp = load_samples(path)
            m = smp["patient"] == pid
            order = np.argsort(smp["slice_index"][m])
            sct = _volume(case.ct, smp["mean"][m, 0][order], smp["slice_index"][m][order])[z]
            samples = []
            if name == default_sampler() and cfg.mc_doses > 1:
                k = min(cfg.mc_doses, smp["samples"].shape[1])
                samples = [_volume(case.ct, smp["samples"][m, j, 0][order], smp["slice_index"][m][order])[z]
                           for j in range(k)]
            got, cubes = dose_pair(ct[z], sct, case.spacing, s, TARGET, cfg, table, samples, plans=plans)
            rows += [{"patient": pid, "sampler": name, **r} for r in got]
            if name == default_sampler() or not figure:
                _keep_for_figure(figure, pooled, pid, name, cubes, s)
    run = paths.run_dir(profile)
    df = pd.DataFrame(rows)
    df.to_csv(run / "dose.csv", index=False)
    unc = [{"patient": r["patient"], "sampler": r["sampler"], "modality": r["modality"], "spearman": r["spearman"],
            "dose_std_mean_gy": r["dose_std_mean_gy"]} for r in rows if "spearman" in r]
    for modality, (std, err) in pooled.items():
        unc.append({"patient": "pooled", "sampler": default_sampler(), "modality": modality,
                    "spearman": float(spearmanr(np.concatenate(std), np.concatenate(err)).statistic),
                    "dose_std_mean_gy": float(np.concatenate(std).mean())})
    pd.DataFrame(unc).to_csv(run / "dose_uncertainty.csv", index=False)
    np.savez_compressed(run / "dose_figure.npz", **figure)
    (run / "dose_summary.md").write_text(summary_markdown(df, cfg.fraction_gy, table.name))
    return rows


def summary_markdown(df, fraction_gy: float, table: str) -> str:
    """dose_summary.md: mean over patients per sampler (MC mean) and modality."""
    if not len(df):
        return "No whole-volume samples to dose.\n"
    cols = [c for c in ("dose_mae_pct", "gamma_2_2", "gamma_1_1", "d_PTV_D98", "spearman") if c in df]
    g = df.groupby(["sampler", "modality"], sort=False)[cols].mean()
    lines = [f"Dose of the CT plan recomputed on each MC-mean sCT ({fraction_gy:g} Gy per fraction to the PTV; "
             f"HU table {table}); mean over test patients.", "",
             "| sampler | modality | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols)]
    for (sampler, modality), r in g.iterrows():
        lines.append(f"| {sampler} | {modality} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines) + "\n"
