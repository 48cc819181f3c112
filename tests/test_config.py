"""Profiles: lookups, clear errors, the study's settings in `paper`."""
import pytest

from ctmri.config import PROFILES, check_method, get_profile


def test_paper_profile_holds_the_study_settings() -> None:
    p = get_profile("paper")
    assert p.data.image_size == 512 and p.data.n_patients == 19 and p.data.n_test_patients == 2
    assert p.process.num_steps == 1000 and p.train.batch_size == 2 and p.train.lr == 1e-4
    assert p.train.adam_betas == (0.9, 0.999) and p.train.adam_eps == 1e-8
    assert p.train.epoch_rule and p.train.min_epochs == 100 and p.train.rule_window == 20
    assert p.sample.ddpm_steps == 1000 and p.sample.pc_steps == 500 and p.sample.mc_samples == 10
    assert p.train.ddpm_loss_weighting == "eps"


def test_sizes_fit_the_unet_downsampling() -> None:
    for p in PROFILES.values():
        assert p.data.image_size % 2 ** (len(p.model.channel_mults) - 1) == 0, p.name


@pytest.mark.parametrize("bad", ["fast", "", "CPU"])
def test_unknown_profile_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValueError, match="Unknown profile"):
        get_profile(bad)


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expected one of ddpm, vesde, cnn, wgan"):
        check_method("gan")
