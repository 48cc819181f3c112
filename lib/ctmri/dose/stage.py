"""Stage 06 (issues 18, 24): per test patient, plans on its CT (the raw data set's ct.nii.gz / ct.mha, or a DICOM
folder's registered CT series) with the data set's own structures, recomputed on every whole-volume sampler's
MC-mean sCT (and the default sampler's MC samples) → runs/<profile>/dose.csv, dose_summary.md; a data set without
structures is skipped in one sentence."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from ctmri import paths
from ctmri.config import get_profile
from ctmri.data.intensity import model_to_hu
from ctmri.data.phantom import LABELS_FILE
from ctmri.data.slices import load_manifest, load_split, model_slices_to_volume
from ctmri.data.readers import goldatlas_ct
from ctmri.data.volumes import (MHA_SUFFIXES, NIFTI_SUFFIXES, DataError, Image, lps_spacing, read_image,
                                scan_series, to_lps)
from ctmri.dose.hu_tables import load_table
from ctmri.dose.pair import dose_pair
from ctmri.dose.structures import STRUCTURES_DIR, TARGET, patient_structures

log = logging.getLogger(__name__)
OUTLINES = ("BODY", "EXTERNAL")   # structure names (any case) of the patient outline


def _volume(profile: str, pid: str, base: np.ndarray, slices: np.ndarray, index: np.ndarray,
            body: np.ndarray) -> np.ndarray:
    """Model-space slices (n, H, W) of one patient back on its raw (S, P, L) grid in HU
    (`prepare.model_slices_to_volume`) inside the body outline; the voxels outside it or not covered keep `base`
    (the CT: the couch and what lies beyond the patient are the CT's in every dose, as the sCT is judged inside)."""
    back = model_slices_to_volume(profile, pid, slices, index, np.full(base.shape, np.nan, np.float32))
    covered = np.isfinite(back) & body
    vol = np.array(base, np.float32, copy=True)
    vol[covered] = model_to_hu(back[covered])
    return np.clip(vol, -1024.0, 3071.0)


def _patient_folder(source: Path, pid: str) -> Path | None:
    """A prepared patient's raw folder: <source>/<id> (the id may be a relative path), else a folder of that name."""
    if (source / pid).is_dir():
        return source / pid
    return next((p for p in sorted(source.rglob("*")) if p.is_dir() and p.name == pid), None)


def _ct_file(folder: Path) -> Path | None:
    """The patient folder's CT volume: ct.nii.gz, ct.nii or ct.mha (SynthRAD2023 layout)."""
    return next((folder / f"ct{s}" for s in NIFTI_SUFFIXES + MHA_SUFFIXES if (folder / f"ct{s}").is_file()), None)


def _dicom_ct(folder: Path) -> Image | str:
    """The registered CT of a DICOM patient folder, the series the Gold Atlas reader takes (`readers.goldatlas_ct`,
    $CTMRI_GOLDATLAS_CT), or why there is none (a clause)."""
    try:
        chosen = goldatlas_ct(scan_series(folder), folder)
    except DataError as err:
        return f"no ct.nii.gz / ct.mha and no registered CT series ({err})"
    return read_image(folder, series=f"uid={chosen.uid}")


def load_patient(source: str | Path, pid: str, margin_mm: float) \
        -> tuple[np.ndarray, tuple[float, float, float], dict[str, np.ndarray]] | str:
    """(CT in HU (S, P, L), spacing mm, structures) from one patient's raw folder (a SynthRAD-style ct.nii.gz /
    ct.mha, else a Gold-Atlas-style DICOM folder's registered CT), or why it has nothing to plan on (a clause:
    "patient 'x' (folder) has no ...")."""
    source = Path(source)
    folder = _patient_folder(source, pid)
    if folder is None:
        return f"patient {pid!r} has no folder under {source}"
    ct_file = _ct_file(folder)
    ct = read_image(ct_file) if ct_file is not None else _dicom_ct(folder)
    if isinstance(ct, str):
        return f"patient {pid!r} ({folder}) has {ct}"
    found = patient_structures(folder, ct, margin_mm)
    if found is None:
        rt = "RTSTRUCT referencing its CT series" if ct.kind == "dicom" else "RTSTRUCT .dcm"
        return f"patient {pid!r} ({folder}) has no {STRUCTURES_DIR}/<NAME>.nii.gz, {rt} or {LABELS_FILE}"
    if not np.any(found[0].get(TARGET, False)):
        raise DataError(f"Patient {pid!r}'s structures ({found[1]}: {', '.join(found[0]) or 'none'}) have no "
                        f"non-empty {TARGET!r}; the dose stage plans on the structure named {TARGET}.")
    if not any(np.any(m) for n, m in found[0].items() if n.upper() in OUTLINES):
        raise DataError(f"Patient {pid!r}'s structures ({found[1]}: {', '.join(found[0])}) have no non-empty BODY / "
                        "EXTERNAL outline (nor a mask.nii.gz beside the CT); the plan needs the patient outline.")
    log.info("Patient %s: structures from %s.", pid, found[1])
    return to_lps(ct.array, ct.direction).astype(np.float32), lps_spacing(ct), found[0]


def _outline(structures: dict[str, np.ndarray]) -> np.ndarray:
    """The patient outline: the union of the BODY / EXTERNAL structures."""
    return np.logical_or.reduce([m for n, m in structures.items() if n.upper() in OUTLINES])


def _check_grid(manifest: dict, pid: str, ct: np.ndarray, spacing: tuple[float, float, float]) -> None:
    """The CT the dose stage read lies on the grid the patient was prepared on (the manifest's), else one sentence."""
    grid = manifest["grids"][pid]
    if tuple(ct.shape) != tuple(grid["source_shape"]) or not np.allclose(spacing, grid["source_spacing"], rtol=1e-4):
        raise DataError(f"Patient {pid!r}: the CT the dose stage read ({tuple(ct.shape)} voxels of "
                        f"{tuple(round(v, 4) for v in spacing)} mm) is not on the grid it was prepared on "
                        f"({tuple(grid['source_shape'])} of {tuple(grid['source_spacing'])} mm); prepare it again.")


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


def _write(run: Path, rows: list[dict], unc: list[dict], figure: dict, summary: str) -> None:
    """dose.csv, dose_uncertainty.csv (with their header when empty), dose_figure.npz and dose_summary.md."""
    import pandas as pd

    run.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=None if rows else ["patient", "sampler", "modality"]).to_csv(run / "dose.csv",
                                                                                            index=False)
    pd.DataFrame(unc, columns=None if unc else ["patient", "sampler", "modality", "spearman", "dose_std_mean_gy"]) \
        .to_csv(run / "dose_uncertainty.csv", index=False)
    np.savez_compressed(run / "dose_figure.npz", **figure)
    (run / "dose_summary.md").write_text(summary)


def _skip(run: Path, reasons: list[str]) -> list[dict]:
    """No test patient has structures: say so in one sentence, write empty tables; the rest of the study runs."""
    message = (f"Dose stage skipped: none of the {len(reasons)} test patient(s) has structures to plan on "
               f"({'; '.join(reasons)}).")
    print(message)
    log.warning(message)
    _write(run, [], [], {}, message + "\n")
    return []


def run_dose(profile: str, hu_table: str | None = None) -> list[dict]:
    """The dose stage of a prepared profile (phantom or real data): rows written to runs/<profile>/dose.csv and
    dose_summary.md; the CT and structures come from the raw data set the manifest names as its source."""
    import pandas as pd
    from tqdm.auto import tqdm

    from ctmri.diffusion.samplers import SAMPLERS, default_sampler
    from ctmri.sample.store import load_samples, sample_files

    cfg = get_profile(profile).dose
    manifest = load_manifest(profile)
    if not manifest.get("source"):
        raise DataError(f"The manifest of profile {profile!r} names no source data set; prepare it again.")
    table = load_table(hu_table)
    test = load_split(profile, "test")
    run = paths.run_dir(profile)
    loaded = {pid: load_patient(manifest["source"], pid, cfg.ptv_margin_mm)
              for pid in sorted(set(test.patient.tolist()))}
    reasons = [v for v in loaded.values() if isinstance(v, str)]
    if len(reasons) == len(loaded):
        return _skip(run, reasons)
    for why in reasons:
        print(f"Dose stage: {why}, so it is left out.")
    files = {n: p for n, p in sample_files(profile).items() if SAMPLERS[n].evaluation == "volumes"}
    rows: list[dict] = []
    figure: dict[str, np.ndarray] = {}
    pooled: dict[str, tuple[list, list]] = {}
    for pid in tqdm([p for p, v in loaded.items() if not isinstance(v, str)], desc="dose: patients"):
        raw_ct, spacing, s = loaded[pid]
        _check_grid(manifest, pid, raw_ct, spacing)
        sel = test.patient == pid
        body = _outline(s)
        ct = _volume(profile, pid, raw_ct, test.ct[sel, 0], test.slice_index[sel], body)  # resampled alike
        z = _crop(s, cfg.z_margin_mm, spacing[0])
        s = {k: v[z] for k, v in s.items()}
        plans: dict = {}  # optimised once on this patient's CT, recomputed on every sCT
        for name, path in tqdm(files.items(), desc=f"dose: {pid}", leave=False):
            smp = load_samples(path)
            m = smp["patient"] == pid
            order = np.argsort(smp["slice_index"][m])
            idx = smp["slice_index"][m][order]
            sct = _volume(profile, pid, raw_ct, smp["mean"][m, 0][order], idx, body)[z]
            samples = []
            if name == default_sampler() and cfg.mc_doses > 1:
                k = min(cfg.mc_doses, smp["samples"].shape[1])
                samples = [_volume(profile, pid, raw_ct, smp["samples"][m, j, 0][order], idx, body)[z]
                           for j in range(k)]
            got, cubes = dose_pair(ct[z], sct, spacing, s, TARGET, cfg, table, samples, plans=plans)
            rows += [{"patient": pid, "sampler": name, **r} for r in got]
            if name == default_sampler() or not figure:
                _keep_for_figure(figure, pooled, pid, name, cubes, s)
    unc = [{"patient": r["patient"], "sampler": r["sampler"], "modality": r["modality"], "spearman": r["spearman"],
            "dose_std_mean_gy": r["dose_std_mean_gy"]} for r in rows if "spearman" in r]
    for modality, (std, err) in pooled.items():
        unc.append({"patient": "pooled", "sampler": default_sampler(), "modality": modality,
                    "spearman": float(spearmanr(np.concatenate(std), np.concatenate(err)).statistic),
                    "dose_std_mean_gy": float(np.concatenate(std).mean())})
    _write(run, rows, unc, figure, summary_markdown(pd.DataFrame(rows), cfg.fraction_gy, table.name))
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
