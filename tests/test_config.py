"""Profiles: every profile's image size fits the UNet, unknown names are clear errors."""
import pytest

from ctmri.config import PROFILES, check_method, get_profile


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
