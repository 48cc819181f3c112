"""Evaluation stage and figures on fake samples files that follow the samples contract (docs/ARCHITECTURE.md)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctmri.evaluate.claims import check_claims
from ctmri.data.intensity import HU_PER_UNIT
from ctmri.evaluate.tables import evaluate, summarise, uncertainty_metrics
from ctmri.figures.study import FIGURES, make_all_figures
from ctmri.provenance import save_npz
from ctmri.sample.store import load_samples, save_samples

ALL = ("cnn", "wgan", "ddpm", "ode", "em", "pc", "ddim", "dpm++2m", "heun")
# (bias, MC noise, seconds per sample, NFE): ODE worst and fastest, PC slowest, EM / PC least uncertain
FAKE = {"cnn": (0.10, 0.10, 0.001, 1), "wgan": (0.09, 0.10, 0.001, 1), "ddpm": (0.02, 0.04, 1.0, 1000),
        "ode": (0.06, 0.08, 0.2, 150), "em": (0.06, 0.03, 1.1, 1000), "pc": (0.02, 0.03, 2.0, 1000),
        "ddim": (0.04, 0.05, 0.05, 50), "dpm++2m": (0.04, 0.05, 0.02, 20), "heun": (0.05, 0.04, 0.04, 39)}
# Built so that every claim FAILS: the CNN almost perfect (C4), DDPM replicates identical so its mean
# cannot beat one sample (C1), EM / PC the most uncertain (C2), ODE the slowest and best (C3, C5).
FAILING = {"cnn": (0.0, 0.005, 0.001, 1), "wgan": (0.09, 0.10, 0.001, 1), "ddpm": (0.05, 0.0, 1.0, 1000),
           "ode": (0.0, 0.01, 5.0, 150), "em": (0.06, 0.12, 1.1, 1000), "pc": (0.05, 0.12, 0.5, 1000)}
H = 16
PATIENTS = ("P1", "P2")
SLICES = 3


def phantom(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(CT in model space, MR, body mask) of one 16 × 16 slice: soft tissue disc, a bone ring, air outside."""
    yy, xx = np.mgrid[:H, :H] - (H - 1) / 2
    r = np.hypot(yy / 6.5, xx / 5.5)
    body = r < 1
    hu = np.where(body, 40.0, -1000.0)
    hu[(r > 0.35) & (r < 0.55)] = 1000.0 + rng.normal(0, 50)
    ct = (np.clip(hu, -1024, 3000) + 1024) / 4024 * 2 - 1 + rng.normal(0, 0.005, hu.shape)
    mr = np.where(body, 0.3, -1.0) - 1.2 * ((r > 0.35) & (r < 0.55))
    return ct, mr, body


def write_fake(profile: str, sampler: str, k: int, seed: int = 0, table: dict = FAKE,
               slices: tuple[int, ...] | None = None) -> Path:
    """A samples npz for `sampler` with K replicates: truth + a fixed bias field + MC noise (`table` sets them), on
    every slice of the fake test volumes (or only `slices` of each patient, as the long samplers' subset)."""
    from ctmri.diffusion.samplers import spec

    rng = np.random.default_rng(seed + len(sampler))
    bias, noise, seconds, nfe = table[sampler]
    cts, mrs, masks, samples = [], [], [], []
    for p in range(len(PATIENTS)):
        for s in range(SLICES):
            ct, mr, body = phantom(np.random.default_rng(10 * p + s))
            field = bias * np.sin(np.arange(H) / 2.0)[None, :]
            reps = ct + field + noise * rng.standard_normal((k, H, H))
            cts.append(ct), mrs.append(mr), masks.append(body), samples.append(reps)
    samples = np.asarray(samples, dtype=np.float32)[:, :, None]
    keep = np.array([s in (slices or range(SLICES)) for _ in PATIENTS for s in range(SLICES)])
    samples, cts, mrs, masks = samples[keep], np.asarray(cts)[keep], np.asarray(mrs)[keep], np.asarray(masks)[keep]
    n = samples.shape[0]
    frames = 5
    traj = np.stack([samples[0, 0] + (1 - f / (frames - 1)) * 3 * rng.standard_normal((1, H, H))
                     for f in range(frames)])
    return save_samples(
        profile, sampler, samples=samples, mean=samples.mean(1),
        std=samples.std(1) if k > 1 else np.zeros_like(samples[:, 0]), target=np.asarray(cts, np.float32)[:, None],
        cond=np.asarray(mrs, np.float32)[:, None], mask=np.asarray(masks), patient=np.repeat(PATIENTS, SLICES)[keep],
        slice_index=np.tile(np.arange(SLICES), len(PATIENTS))[keep], seeds=np.zeros((n, k), np.int64),
        test_index=np.flatnonzero(keep), evaluation=spec(sampler).evaluation if slices is None else "subset",
        trajectory=traj[None].astype(np.float32), trajectory_slices=np.array([0]),
        trajectory_steps=np.linspace(0, nfe - 1, frames).astype(int), trajectory_x0=traj[None].astype(np.float32),
        seconds_total=np.float64(seconds * n * k), seconds_per_sample=np.float64(seconds), nfe=np.float64(nfe),
        sampler=sampler, method="cnn" if sampler in ("cnn", "wgan") else "x", steps=np.int64(nfe), direction="mr2ct",
        provenance=json.dumps({"git_commit": "fake"}))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CTMRI_ROOT", str(tmp_path))
    return tmp_path


def write_all(profile: str, samplers: tuple[str, ...] = ALL, k: int = 4) -> None:
    for s in samplers:
        write_fake(profile, s, 1 if s in ("cnn", "wgan") else k)


def test_full_evaluation_writes_every_table_and_evaluates_every_claim(root: Path) -> None:
    write_all("t")
    out = evaluate("t")
    assert set(out) >= {"metrics", "summary", "summary_md", "patients", "claims", "claims_json", "uncertainty"}
    m = pd.read_csv(out["metrics"])
    n = len(PATIENTS) * SLICES
    assert len(m) == n * (2 + 2 * 7)        # baselines single only; seven MC samplers single + mean
    assert set(m["label"]) >= {"CNN", "WGAN-GP", "DDPM", "DDPM-M", "ODE-M", "Heun-M"}
    assert np.isfinite(m.select_dtypes("number").to_numpy(float)).all()
    assert (m["mae"] > 0).all() and (m["paper_ssim"] <= 1).all()
    s = pd.read_csv(out["summary"])
    assert list(s["label"][:4]) == ["CNN", "WGAN-GP", "DDPM", "DDPM-M"]
    assert (s.set_index("label").loc["DDPM-M", "mae_mean"] < s.set_index("label").loc["DDPM", "mae_mean"])
    assert "| DDPM-M |" in out["summary_md"].read_text()
    p = pd.read_csv(out["patients"])          # the samplers on whole volumes: CNN, WGAN-GP, DDIM(-M), DPM++2M(-M), Heun(-M)
    assert len(p) == len(PATIENTS) * 8 and p["ssim"].notna().all()    # 3 slices: a 3-D SSIM exists
    assert set(p["sampler"]) == {"cnn", "wgan", "ddim", "dpm++2m", "heun"}
    assert np.isfinite(p[["z_roughness_ratio", "hf_ratio", "worst_slice_ratio"]].to_numpy()).all()
    assert "## Whole test volumes" in out["summary_md"].read_text()
    u = pd.read_csv(out["uncertainty"])
    assert set(u["label"]) == {"DDPM-M", "ODE-M", "EM-M", "PC-M", "DDIM-M", "DPM++2M-M", "Heun-M"}
    claims = json.loads(out["claims_json"].read_text())["claims"]
    assert [c["status"] for c in claims[:5]] == ["pass"] * 5, claims   # the fake data is built to satisfy them
    assert [c["id"] for c in claims[5:]] == ["V1", "V2", "V3", "V4", "V5", "V6"]
    text = out["claims"].read_text()
    for cid in ("C1", "C2", "C3", "C4", "C5"):
        line = next(line for line in text.splitlines() if cid in line)
        assert "✓" in line and "not evaluated" not in line, line


def test_full_evaluation_reports_failing_claims(root: Path) -> None:
    """The same pipeline on data that contradicts the study: every claim must come out ✗, not ✓."""
    for s in FAILING:
        write_fake("neg", s, 1 if s in ("cnn", "wgan") else 4, table=FAILING)
    out = evaluate("neg")
    claims = json.loads(out["claims_json"].read_text())["claims"]
    assert [c["status"] for c in claims[:5]] == ["fail"] * 5, claims
    text = out["claims"].read_text()
    for cid in ("C1", "C2", "C3", "C4", "C5"):
        line = next(line for line in text.splitlines() if f"| {cid} |" in line)
        assert "✗" in line and "✓" not in line, line
    s = pd.read_csv(out["summary"]).set_index("label")
    assert s.loc["CNN", "paper_ssim_mean"] > s.loc["DDPM-M", "paper_ssim_mean"]     # what C4 saw


def test_subset_marks_claims_not_evaluated(root: Path) -> None:
    write_all("sub", ("cnn", "ddpm", "em"), k=3)
    out = evaluate("sub")
    claims = {c["id"]: c for c in json.loads(out["claims_json"].read_text())["claims"]}
    assert all(claims[c]["status"] == "not evaluated" for c in ("C1", "C2", "C3", "C4", "C5", "V1", "V2", "V3"))
    assert claims["C4"]["missing"] == ["wgan", "pc", "ode"]
    text = out["claims"].read_text()
    assert text.count("not evaluated (missing samplers:") == 9          # C1-C5, V1-V3, V6 (no WGAN-GP)
    assert "| C3 | not evaluated (missing samplers: pc, ode) |" in text


def test_single_replicate_samplers_have_no_mc_rows(root: Path) -> None:
    write_all("k1", ("ddpm", "cnn"), k=1)
    out = evaluate("k1")
    assert set(pd.read_csv(out["metrics"])["label"]) == {"DDPM", "CNN"}
    assert "C1 | not evaluated" in out["claims"].read_text()


def test_missing_samples_is_a_clear_error(root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="No samples"):
        evaluate("empty")


def test_bad_samples_file_is_a_clear_error(root: Path) -> None:
    path = write_fake("bad", "ddpm", 2)
    with np.load(path) as z:
        d = dict(z)
    d["mask"] = d["mask"][:, :8]
    save_npz(path, **d)
    with pytest.raises(ValueError, match="mask has shape"):
        load_samples(path)


def _summary(**over: dict) -> pd.DataFrame:
    """A hand-made summary where every claim holds; `over` replaces (label -> {column: value})."""
    rows = {"CNN": ("cnn", "single", 0.70, 20.0, 0, 0.01), "WGAN-GP": ("wgan", "single", 0.71, 20.5, 0, 0.01)}
    for s, ssim, psnr, unc, sec in (("ddpm", 0.80, 24.0, 0.05, 10.0), ("ode", 0.74, 21.0, 0.06, 1.0),
                                    ("em", 0.77, 23.0, 0.02, 12.0), ("pc", 0.79, 23.5, 0.03, 20.0)):
        rows[s.upper()] = (s, "single", ssim, psnr, 0, sec)
        rows[s.upper() + "-M"] = (s, "mc_mean", ssim + 0.02, psnr + 1.0, unc, sec)
    df = pd.DataFrame([{"label": k, "sampler": v[0], "variant": v[1], "paper_ssim_mean": v[2], "paper_psnr_mean": v[3],
                        "uncertainty_mean": v[4] if v[1] == "mc_mean" else np.nan, "seconds_per_sample": v[5]}
                       for k, v in rows.items()]).set_index("label")
    for lab, cols in over.items():
        for col, val in cols.items():
            df.loc[lab, col] = val
    return df.reset_index()


def _status(df: pd.DataFrame) -> dict[str, str]:
    return {c["id"]: c["status"] for c in check_claims(df)}


def test_claims_pass_on_a_summary_that_satisfies_them() -> None:
    assert set(_status(_summary()).values()) == {"pass"}


@pytest.mark.parametrize("over, failing", [
    ({"ODE-M": {"paper_psnr_mean": 20.9}}, "C1"),                       # averaging lowers ODE's PSNR
    ({"EM-M": {"uncertainty_mean": 0.055}}, "C2"),                      # EM above DDPM
    ({"EM": {"seconds_per_sample": 16.0}, "EM-M": {"seconds_per_sample": 16.0}}, "C3"),  # ratio 1.6 > 1.5
    ({"ODE": {"seconds_per_sample": 11.0}}, "C3"),                      # ODE not fastest
    ({"ODE-M": {"paper_ssim_mean": 0.705}}, "C4"),                      # ODE-M below WGAN-GP
    ({"EM": {"paper_ssim_mean": 0.795}}, "C5"),                         # EM among the two best SSIM
])
def test_each_claim_can_fail(over: dict, failing: str) -> None:
    status = _status(_summary(**over))
    assert status[failing] == "fail", status


@pytest.mark.slow
def test_every_figure_writes_a_png(root: Path) -> None:
    write_all("f", k=3)
    ckpts = root / "runs" / "f" / "checkpoints"                    # validation curves of the four methods
    ckpts.mkdir(parents=True, exist_ok=True)
    for m, sampler in (("cnn", "cnn"), ("wgan", "wgan"), ("ddpm", "ddpm"), ("vesde", "dpm++2m-ve")):
        rows = [f"{s},{mae},{sampler},10,6,1.0" for s, mae in ((500, 120.0), (1000, 90.0), (1500, 80.0))]
        (ckpts / f"{m}_val.csv").write_text("step,val_mae_hu,sampler,steps,slices,seconds\n" + "\n".join(rows) + "\n")
    evaluate("f")
    assert (root / "runs" / "f" / "convergence.csv").exists()
    made = make_all_figures("f")
    assert len(made) == len(FIGURES)
    for png in made:
        assert png.suffix == ".png" and png.stat().st_size > 1000, png
        assert png.with_suffix(".pdf").stat().st_size > 1000


def test_figures_skip_missing_inputs(root: Path, capsys: pytest.CaptureFixture) -> None:
    write_all("g", ("cnn",), k=1)
    made = make_all_figures("g")            # no summary.csv, no MC samplers, no trajectories of the four
    names = {p.stem for p in made}
    assert names == {"fig4_comparison", "fig_hu_error_maps", "fig_volume_views"}
    assert "Skipped fig3_bars" in capsys.readouterr().out


def test_summarise_orders_methods_like_the_study() -> None:
    rows = [{"label": lab, "sampler": s, "variant": v, "K": 2, "seconds_per_sample": 1.0, "nfe": 1.0,
             **{q: 0.5 for q in ("paper_ssim", "paper_psnr", "mae", "psnr", "ssim", "bone_dice")}}
            for lab, s, v in (("PC-M", "pc", "mc_mean"), ("PC", "pc", "single"), ("CNN", "cnn", "single"),
                              ("Heun", "heun", "single"), ("DDPM", "ddpm", "single"))]
    s = summarise(pd.DataFrame(rows), pd.DataFrame())
    assert list(s["label"]) == ["CNN", "DDPM", "PC", "PC-M", "Heun"]


def test_uncertainty_table_reports_the_std_in_hu_and_on_the_unit_scale() -> None:
    """uncertainty.csv: uncertainty_hu = mean std inside the body in HU, uncertainty = the same on [0, 1] (std / 2)."""
    rng = np.random.default_rng(2)
    samples = rng.normal(0.0, 0.1, size=(2, 5, 1, 8, 8)).astype(np.float32)
    mask = np.zeros((2, 8, 8), bool)
    mask[:, 2:6, 2:6] = True
    d = {"name": "ddpm", "K": 5, "samples": samples, "mean": samples.mean(1), "std": samples.std(1, ddof=1),
         "target": np.zeros((2, 1, 8, 8), np.float32), "mask": mask, "patient": np.array(["a", "a"]),
         "slice_index": np.arange(2)}
    u = uncertainty_metrics(d)
    for i in range(2):
        body_std = float(d["std"][i, 0][mask[i]].mean())
        assert u["uncertainty_hu"][i] == pytest.approx(HU_PER_UNIT * body_std, rel=1e-5)
        assert u["uncertainty"][i] == pytest.approx(body_std / 2, rel=1e-5)


def test_summary_compares_every_sampler_on_the_slices_all_of_them_ran(root: Path) -> None:
    """The long samplers ran only a subset: the summary's rows are on those slices for every sampler; the volume
    table holds only the samplers that ran every slice."""
    for s in ("cnn", "wgan", "heun"):
        write_fake("v", s, 1 if s in ("cnn", "wgan") else 3)
    for s in ("ddpm", "ode", "em", "pc"):
        write_fake("v", s, 3, slices=(0, 2))
    out = evaluate("v")
    s = pd.read_csv(out["summary"])
    assert (s["n_slices"] == 2 * len(PATIENTS)).all(), s[["label", "n_slices"]]
    m = pd.read_csv(out["metrics"])
    assert (m[m["sampler"] == "heun"].groupby("variant").size() == SLICES * len(PATIENTS)).all()
    p = pd.read_csv(out["patients"])
    assert set(p["sampler"]) == {"cnn", "wgan", "heun"} and (p["n_slices"] == SLICES).all()


def test_volume_table_measures_flicker_between_slices(root: Path) -> None:
    """A sampler whose slices each carry their own offset flickers through-plane: z-roughness far above 1, while
    the same error as one offset for the whole volume keeps the CT's roughness."""
    from ctmri.evaluate.tables import patient_metrics

    write_fake("z", "heun", 1, table={"heun": (0.0, 0.0, 0.01, 10)})
    d = load_samples(root / "runs" / "z" / "samples" / "heun.npz")
    exact = patient_metrics(d)
    assert np.allclose(exact["z_roughness_ratio"], 1.0) and np.allclose(exact["hf_ratio"], 1.0)
    offsets = np.where(np.arange(len(d["target"])) % 2, 0.05, -0.05).astype(np.float32)[:, None, None, None]
    flicker = dict(d, samples=(d["target"] + offsets)[:, None])
    steady = dict(d, samples=(d["target"] + 0.05)[:, None])
    zf = patient_metrics(flicker)["z_roughness_ratio"]
    zs = patient_metrics(steady)["z_roughness_ratio"]
    assert (zf > 10).all() and np.allclose(zs, 1.0, atol=0.05), (zf, zs)


def _volume_rows(mae: dict, hf: dict, z: float, single_z: float = 3.0) -> pd.DataFrame:
    """A patients table: baselines' single rows (MAE, HF), diffusion samplers' MC-mean (MAE, z) and single (HF, z)."""
    rows = []
    for s, m in mae.items():
        if s in ("cnn", "wgan"):
            rows.append({"sampler": s, "variant": "single", "mae": m, "hf_ratio": hf.get(s, np.nan)})
        else:
            rows.append({"sampler": s, "variant": "mc_mean", "mae": m, "z_roughness_ratio": z})
            rows.append({"sampler": s, "variant": "single", "mae": m + 5, "hf_ratio": hf[s],
                         "z_roughness_ratio": single_z})
    return pd.DataFrame(rows)


def _subset_rows(ddpm_mae: float, cnn_mae: float, dice: float, false_bone: float) -> pd.DataFrame:
    """A per-slice table: the ancestral DDPM (single, MC mean) and the CNN on the same two subset slices."""
    rows = []
    for k in (3, 7):
        ids = {"patient": "P1", "slice_index": k}
        rows.append({"sampler": "ddpm", "variant": "single", "mae": ddpm_mae + 10, "bone_dice": dice,
                     "false_bone": false_bone, **ids})
        rows.append({"sampler": "ddpm", "variant": "mc_mean", "mae": ddpm_mae, "bone_dice": dice, "false_bone": 0.0,
                     **ids})
        rows.append({"sampler": "cnn", "variant": "single", "mae": cnn_mae, "bone_dice": 0.9, "false_bone": 0.0,
                     **ids})
    return pd.DataFrame(rows)


def test_volume_targets_pass_and_fail_on_what_they_check() -> None:
    """V1-V6 on hand-made tables: each passes on numbers that meet it and fails when one number misses it."""
    from ctmri.evaluate.volume_targets import check_volume_targets

    main = "dpm++2m-ve"
    heun = pd.DataFrame({"sampler": ["heun"] * 4, "variant": "single", "mae": [40.0, 42, 41, 60],
                         "patient": "P1", "slice_index": [0, 1, 2, 4]})
    slices = pd.concat([heun, _subset_rows(70.0, 80.0, 0.9, 0.005)])
    good = _volume_rows({"cnn": 90.0, "wgan": 80.0, main: 50.0, "heun": 55.0},
                        {"cnn": 0.4, "wgan": 0.8, main: 1.0, "heun": 0.9}, z=1.1)
    status = {c["id"]: c["status"] for c in check_volume_targets(good, slices)}
    assert status == {f"V{i}": "pass" for i in range(1, 7)}, status
    # each target missed by one number: a few-step MC mean above 0.9 x the CNN (V1), an HF outside the band (V2),
    # a rough MC mean (V3), one divergent slice (V4), a DDPM with weak bone Dice (V5), a smooth WGAN-GP (V6)
    bad = _volume_rows({"cnn": 90.0, "wgan": 52.0, main: 50.0, "heun": 85.0},
                       {"cnn": 0.4, "wgan": 0.2, main: 1.3, "heun": 0.9}, z=1.5)
    spiky = pd.concat([slices[slices["sampler"] != "ddpm"], _subset_rows(70.0, 80.0, 0.7, 0.005),
                       pd.DataFrame({"sampler": ["heun"], "variant": "single", "mae": [200.0], "patient": "P1",
                                     "slice_index": [5]})])
    status = {c["id"]: c["status"] for c in check_volume_targets(bad, spiky)}
    assert status == {f"V{i}": "fail" for i in range(1, 7)}, status
    # the subset half of V1 alone: the ancestral DDPM-M above 0.9 x the CNN on the same slices
    subset_only = pd.concat([heun, _subset_rows(75.0, 80.0, 0.9, 0.005)])
    assert {c["id"]: c["status"] for c in check_volume_targets(good, subset_only)}["V1"] == "fail"
    # and V5's false-bone half alone
    hallucinating = pd.concat([heun, _subset_rows(70.0, 80.0, 0.9, 0.02)])
    assert {c["id"]: c["status"] for c in check_volume_targets(good, hallucinating)}["V5"] == "fail"
    empty = {c["id"]: c["status"] for c in check_volume_targets(pd.DataFrame(), heun)}
    assert empty == {"V1": "not evaluated", "V2": "not evaluated", "V3": "not evaluated", "V4": "pass",
                     "V5": "not evaluated", "V6": "not evaluated"}
