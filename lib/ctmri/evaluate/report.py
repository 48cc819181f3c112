"""The evaluation stage's markdown reports: summary.md (tables of mean ± std) and claims.md (✓ / ✗ per claim)."""
from __future__ import annotations

import numpy as np
import pandas as pd


def _pm(mean: float, std: float, digits: int) -> str:
    if not np.isfinite(mean):
        return "–" if np.isnan(mean) else f"{mean}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def summary_markdown(profile: str, summary: pd.DataFrame, patients: pd.DataFrame, prov: dict) -> str:
    """summary.md: the per-slice table (mean ± std) and the per-patient 3-D SynthRAD2023 table."""
    cols = [("paper_ssim", "SSIM [0,1]", 3), ("paper_psnr", "PSNR [0,1] (dB)", 2), ("mae", "MAE (HU)", 1),
            ("psnr", "PSNR HU (dB)", 2), ("ssim", "SSIM HU", 3), ("bone_dice", "bone Dice", 3),
            ("false_bone_pct", "false bone %", 2), ("missed_bone_pct", "missed bone %", 1),
            ("uncertainty", "uncertainty [0,1]", 4), ("spearman", "Spearman ρ", 3), ("ause_hu", "AUSE (HU)", 1)]
    summary = summary.copy()
    for c in ("false_bone", "missed_bone"):                     # fractions shown in percent
        for s_ in ("mean", "std"):
            summary[f"{c}_pct_{s_}"] = 100 * summary.get(f"{c}_{s_}", np.nan)
    rows = [[r.label, str(int(r.K)), str(int(r.n_slices))] + [_pm(getattr(r, f"{c}_mean"), getattr(r, f"{c}_std"), d)
                                                            for c, _, d in cols]
            + [f"{r.seconds_per_sample:.3g}", f"{r.nfe:.0f}"] for r in summary.itertuples()]
    text = [f"# Summary: profile `{profile}`", "",
            "Per test slice, mean ± std over the slices every sampler ran (the long samplers run on the profile's "
            "subset; the others on the whole volumes, below). *SSIM / PSNR [0,1]*: the study's metrics on CT with the HU "
            "window [−1024, 3000] scaled to [0, 1], whole image. *MAE, PSNR HU, SSIM HU*: SynthRAD2023 protocol "
            "inside the body mask (clip to [−1024, 3000], data range 4024). Bone Dice: CT > 200 HU (1 when "
            "neither image has bone). *false bone*: share of body voxels with sCT > 300 HU where the CT < 100 HU; "
            "*missed bone*: share of the CT's bone (> 300 HU) the sCT puts below 100 HU. *-M*: mean of the K "
            "Monte-Carlo samples; uncertainty = mean MC std inside the body on the [0, 1] scale; Spearman ρ and "
            "AUSE compare the std map with |error| of the MC mean. Seconds and NFE are per sample (an -M estimate "
            "costs K samples).", "",
            markdown_table(["method", "K", "slices"] + [c[1] for c in cols] + ["s / sample", "NFE"], rows)]
    if len(patients):
        p = patients.groupby("label", sort=False).agg(
            n=("patient", "size"), slices=("n_slices", "sum"), mae=("mae", "mean"), psnr=("psnr", "mean"),
            ssim=("ssim", "mean"), dice=("bone_dice", "mean"), z=("z_roughness_ratio", "mean"),
            hf=("hf_ratio", "mean"), worst=("worst_slice_ratio", "max"),
            fb=("false_bone", "mean"), mb=("missed_bone", "mean"), air=("mae_air", "mean"), fat=("mae_fat", "mean"),
            soft=("mae_soft", "mean"), bone=("mae_bone", "mean"))
        p = p.reindex([lab for lab in summary["label"] if lab in p.index] +
                      [lab for lab in p.index if lab not in set(summary["label"])])
        f = lambda v, d: "–" if not np.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
        prow = [[lab, str(int(r.n)), str(int(r.slices)), f(r.mae, 1), f(r.psnr, 2), f(r.ssim, 3), f(r.dice, 3),
                 f(r.z, 2), f(r.hf, 2), f(r.worst, 2), f(100 * r.fb, 2), f(100 * r.mb, 1), f(r.air, 0), f(r.fat, 0),
                 f(r.soft, 0), f(r.bone, 0)] for lab, r in p.iterrows()]
        text += ["", "## Whole test volumes (3-D, SynthRAD2023)", "",
                 "Samplers evaluated on every slice of the test patients (registry `evaluation=\"volumes\"`); each "
                 "patient's contiguous slices stacked into a volume; mean over patients. *z-roughness*: the sCT's "
                 "mean squared through-plane second difference in the body over the CT's own (1 = as consistent "
                 "from slice to slice as the CT; slice-wise noise raises it, over-smoothing lowers it). *HF*: "
                 "in-plane power above 0.25 cycles / pixel, sCT over CT, median over slices (1 = the CT's detail). "
                 "*worst slice*: the largest slice MAE over the median slice MAE, worst patient. *false bone*: "
                 "body voxels where the sCT > 300 HU and the CT < 100 HU (hallucinated bone); *missed bone*: the CT's "
                 "bone voxels (> 300 HU) the sCT puts below 100 HU. MAE per tissue class of the CT (air / gas "
                 "< −400, fat < −30, soft tissue < 200, bone), as the Gold Atlas sCT studies report it.", "",
                 markdown_table(["method", "patients", "slices", "MAE (HU)", "PSNR (dB)", "SSIM", "bone Dice",
                                 "z-roughness", "HF", "worst slice", "false bone %", "missed bone %",
                                 "MAE air", "MAE fat", "MAE soft", "MAE bone"], prow)]
    text += ["", f"_git {prov['git_commit']}, created {prov['created']}._", ""]
    return "\n".join(text)


SYMBOL = {"pass": "✓", "fail": "✗"}


def claims_markdown(profile: str, claims: list[dict], prov: dict, convergence: pd.DataFrame | None = None) -> str:
    """claims.md: one table row per claim (✓ / ✗ / not evaluated) with the criterion and the numbers, the models it was
    judged on that were still improving, and the convergence of each model."""
    rows = []
    for c in claims:
        result = SYMBOL.get(c["status"]) or f"not evaluated (missing samplers: {', '.join(c['missing'])})"
        still = ", ".join(c.get("unconverged") or []) or "–"
        rows.append([c["id"], result, c["study"], c["criterion"], c["measured"] or "–", still])
    text = [
        f"# The study's claims, checked automatically: profile `{profile}`", "",
        "Quality is the study's metric (SSIM / PSNR on CT with the HU window [−1024, 3000] scaled to [0, 1]), "
        "mean over test slices; X-M is the mean of the K Monte-Carlo samples of sampler X. V1–V6 are this "
        "project's targets for the 3-mm study (SynthRAD2023 MAE in HU against the CNN's, high-frequency power and "
        "through-plane roughness against the CT's, the DDPM's bone Dice and false bone, the WGAN-GP's detail and "
        "fidelity; `evaluate/volume_targets.py`). A ✗ is a finding "
        "about this run, not a bug. *Not converged*: the models the claim is judged on whose validation MAE still "
        "moved by 3 % or more over the last fifth of training (below).", "",
        markdown_table(["claim", "result", "the study says", "checked as", "measured", "not converged"], rows)]
    if convergence is not None and len(convergence):
        f = lambda v, d: "–" if v is None or not np.isfinite(v) else f"{v:.{d}f}"  # noqa: E731
        crow = [[r.method, r.sampler, str(r.final_step), str(r.points), f(r.mae_last_fifth_start, 1), f(r.val_mae_hu, 1),
                 f(100 * r.change, 1) if np.isfinite(r.change) else "–",
                 {True: "yes", False: "no"}.get(r.converged, "unknown")] for r in convergence.itertuples()]
        text += ["", "## Convergence", "",
                 "Validation MAE (HU, body) at every checkpoint: the method's default sampler, one sample on each of "
                 "a few validation slices, fixed seeds (`runs/<profile>/checkpoints/<method>_val.csv`). Converged: "
                 "the MAE changed by less than 3 % over the last fifth of training (interpolated at 80 % of the final "
                 "step).", "",
                 markdown_table(["method", "sampler", "steps", "points", "MAE at 80 %", "final MAE", "change %",
                                 "converged"], crow)]
    text += ["", f"_Samplers evaluated: {', '.join(prov.get('samplers', []))}; git {prov['git_commit']}, "
             f"created {prov['created']}._", ""]
    return "\n".join(text)
