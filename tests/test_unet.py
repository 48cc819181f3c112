"""The shared UNet and the WGAN-GP critic: shapes, conditioning channels, time embedding, size errors."""
from __future__ import annotations

import pytest
import torch

from ctmri import config as C
from ctmri.models.build import build_model
from ctmri.models.unet import AttnBlock, Critic, UNet, group_count


pytestmark = pytest.mark.usefixtures("one_thread")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(len(shape)))


@pytest.mark.parametrize("cond_channels", [1, 3])
@pytest.mark.parametrize("hw", [(16, 16), (24, 24), (16, 32)])
def test_diffusion_unet_keeps_shape(cond_channels: int, hw: tuple[int, int]) -> None:
    net = UNet(1, cond_channels, 1, base_channels=8, channel_mults=(1, 2, 4), image_size=hw[0])
    x, y = _randn(2, 1, *hw), _randn(2, cond_channels, *hw)
    assert net(x, y, torch.tensor([3, 999])).shape == (2, 1, *hw)
    assert net(x, y, torch.tensor(5)).shape == (2, 1, *hw)  # one t broadcast over the batch


@pytest.mark.parametrize("cond_channels", [1, 3])
def test_baseline_generator_takes_condition_only(cond_channels: int) -> None:
    net = UNet(0, cond_channels, 1, base_channels=8, channel_mults=(1, 2), time_embedding=False, image_size=8)
    y = _randn(3, cond_channels, 8, 8)
    assert net(None, y).shape == (3, 1, 8, 8)
    assert torch.equal(net(None, y), net(None, y, torch.tensor([1, 2, 3])))  # t ignored


def test_time_embedding_changes_output() -> None:
    net = UNet(1, 1, 1, base_channels=8, channel_mults=(1, 2), image_size=8)
    torch.nn.init.normal_(net.conv_out.weight, generator=_gen())  # zero-initialised head would hide t
    for block in net.modules():
        if hasattr(block, "conv2"):
            torch.nn.init.normal_(block.conv2.weight, std=0.1, generator=_gen(1))
    x, y = _randn(1, 1, 8, 8), _randn(1, 1, 8, 8)
    # base 8 channels: one channel per GroupNorm group, where an additive embedding would be normalised away
    assert (net(x, y, torch.tensor([10])) - net(x, y, torch.tensor([900]))).abs().max() > 1e-2
    with pytest.raises(ValueError, match="time embedding"):
        net(x, y)


def test_bad_sizes_and_channels_are_clear() -> None:
    net = UNet(1, 1, 1, base_channels=8, channel_mults=(1, 2, 4), image_size=16)
    t = torch.tensor([0])
    with pytest.raises(ValueError, match="divisible by 4, got 18x16"):
        net(_randn(1, 1, 18, 16), _randn(1, 1, 18, 16), t)
    with pytest.raises(ValueError, match=r"condition y of shape \(B, 1, H, W\)"):
        net(_randn(1, 1, 16, 16), _randn(1, 2, 16, 16), t)
    with pytest.raises(ValueError, match="x_t of shape"):
        net(None, _randn(1, 1, 16, 16), t)
    with pytest.raises(ValueError, match="x_channels"):
        UNet(0, 0, 1)


def test_attention_sits_at_the_requested_resolution() -> None:
    net = UNet(1, 1, 1, base_channels=8, channel_mults=(1, 2), attention_resolutions=(8,), image_size=16,
               dropout=0.1)
    n_attn = sum(isinstance(m, AttnBlock) for m in net.modules())
    assert n_attn == 1 + 2 + 1  # down at 8 px, up at 8 px (2 blocks), middle
    assert net(_randn(2, 1, 16, 16), _randn(2, 1, 16, 16), torch.tensor([1, 2])).shape == (2, 1, 16, 16)


def test_group_count_divides_channels() -> None:
    assert [group_count(c) for c in (3, 8, 48, 64, 256)] == [3, 8, 24, 32, 32]


@pytest.mark.parametrize("cond_channels", [1, 3])
def test_critic_scores_each_sample(cond_channels: int) -> None:
    critic = Critic(1, cond_channels, base_channels=8, channel_mults=(1, 2))
    assert critic(_randn(5, 1, 16, 16), _randn(5, cond_channels, 16, 16)).shape == (5,)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in critic.modules())
    with pytest.raises(ValueError, match="divisible by 4"):
        critic(_randn(1, 1, 10, 10), _randn(1, cond_channels, 10, 10))


def test_build_model_per_method() -> None:
    p = C.get_profile("smoke", model=C.ModelConfig(base_channels=8, channel_mults=(1, 2), cond_channels=3))
    nets = {m: build_model(m, p) for m in C.METHODS}
    assert nets["ddpm"]["net"].time_mlp is not None and nets["vesde"]["net"].time_mlp is not None
    assert nets["cnn"]["net"].time_mlp is None and nets["cnn"]["net"].x_channels == 0
    assert set(nets["wgan"]) == {"net", "critic"}
    y = _randn(2, 3, 16, 16)
    assert nets["ddpm"]["net"](_randn(2, 1, 16, 16), y, torch.tensor([1, 2])).shape == (2, 1, 16, 16)
    assert nets["wgan"]["net"](None, y).shape == (2, 1, 16, 16)
    with pytest.raises(ValueError, match="Unknown method"):
        build_model("gan", p)


def test_patch_stem_runs_the_unet_at_a_quarter_of_the_resolution() -> None:
    """A 4x pixel-unshuffle stem: 128² in, 128² out, the inner UNet sees 32² x 16 channels; a pixel of the output
    depends on its own 4 x 4 patch (shuffle is an exact inverse of unshuffle)."""
    import torch.nn.functional as F

    from ctmri.models.patch_stem import PatchStem

    torch.manual_seed(0)
    net = PatchStem(4, x_channels=1, cond_channels=1, out_channels=1, image_size=128, base_channels=8,
                    channel_mults=(1, 2)).eval()
    torch.nn.init.normal_(net.conv_out.weight, std=0.1)
    seen = {}
    net.inner.conv_in.register_forward_hook(lambda m, i, o: seen.update(shape=tuple(i[0].shape)))
    x, y = torch.randn(2, 1, 128, 128), torch.randn(2, 1, 128, 128)
    out = net(x, y, torch.tensor([3.0, 500.0]))
    assert out.shape == (2, 1, 128, 128) and seen["shape"] == (2, 32, 32, 32)
    z = torch.randn(2, 1, 128, 128)
    assert torch.equal(F.pixel_shuffle(F.pixel_unshuffle(z, 4), 4), z)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(x[..., :126], y[..., :126], torch.tensor([1.0, 1.0]))
    with pytest.raises(ValueError, match="dividing the image size"):
        PatchStem(3, x_channels=1, cond_channels=1, out_channels=1, image_size=128)


def test_every_method_builds_with_a_patch_stem() -> None:
    from dataclasses import replace

    from ctmri.config import DataConfig, get_profile
    from ctmri.models.build import build_model

    prof = get_profile("smoke")
    prof = replace(prof, data=DataConfig(image_size=32), model=replace(prof.model, patch_size=2))
    y = torch.randn(2, 1, 32, 32)
    for method in ("ddpm", "vesde", "cnn", "wgan"):
        net = build_model(method, prof)["net"]
        x = None if method in ("cnn", "wgan") else torch.randn(2, 1, 32, 32)
        assert net(x, y, torch.ones(2)).shape == (2, 1, 32, 32), method


@pytest.mark.parametrize("linear_skip, bound", [(True, 0.05), (False, None)])
def test_patch_stem_skip_lets_a_narrow_net_pass_its_noisy_input_through(linear_skip: bool, bound) -> None:
    """Known answer: F = -x_t pixel by pixel (EDM's target at mid sigma is ~ -noise). Behind a 4x stem, 16 sub-pixels
    of x_t and 16 of the condition share the UNet's 8 first channels: without the linear skip 150 Adam steps leave
    most of the error; with it the map is learned (relative error < 5 %)."""
    from ctmri.models.patch_stem import PatchStem

    torch.manual_seed(0)
    net = PatchStem(4, x_channels=1, cond_channels=1, out_channels=1, image_size=16, base_channels=8,
                    channel_mults=(1,), linear_skip=linear_skip)
    assert (net.skip is not None) == linear_skip
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        x, y = torch.randn(16, 1, 16, 16), torch.randn(16, 1, 16, 16)
        loss = (net(x, y, torch.rand(16)) + x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, y = torch.randn(64, 1, 16, 16), torch.randn(64, 1, 16, 16)
    with torch.no_grad():
        rel = float((net(x, y, torch.rand(64)) + x).pow(2).mean() / x.pow(2).mean())
    if bound is not None:
        assert rel < bound, rel
    else:
        assert rel > 0.2, rel          # the bottleneck the skip removes is real
