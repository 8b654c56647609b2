"""The CNN: every option combination builds, and shapes that cannot work are refused."""

from __future__ import annotations

import itertools

import pytest
import torch

from fitlab.errors import FitlabError
from fitlab.models.cnn import CNN
from fitlab.models.settings import ACTIVATIONS, NORMS, POOLS, conv_output_size


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize(("norm", "pool"), list(itertools.product(NORMS, POOLS)))
def test_every_norm_and_pool_gives_logits(in_channels: int, norm: str, pool: str) -> None:
    for activation in ACTIVATIONS:
        net = CNN(in_channels, 10, (16, 16), channels=(8, 16), norm=norm, pool=pool,
                  activation=activation, dropout=0.1, head_dropout=0.1)  # fmt: skip
        logits = net(torch.randn(4, in_channels, 16, 16))
        assert logits.shape == (4, 10)
        assert torch.isfinite(logits).all()


def test_per_block_lists_and_non_square_images() -> None:
    net = CNN(3, 5, (12, 20), channels=[8, 16, 32], kernel_size=[5, 3, 3], padding=[2, 1, 0],
              pool=["none", "max", "stride"], norm=["batch", "group", "none"],
              activation=["relu", "gelu", "silu"], dropout=[0.0, 0.1, 0.2])  # fmt: skip
    assert net(torch.randn(2, 3, 12, 20)).shape == (2, 5)
    # 12x20 -> conv5 p2 12x20 -> conv3 p1 + pool 6x10 -> conv3 p0 s2 (stride pooling) 2x4
    assert net.output_size == (2, 4)


def test_output_size_formula() -> None:
    assert conv_output_size(8, kernel=3, stride=1, padding=1) == 8
    assert conv_output_size(8, kernel=3, stride=2, padding=1) == 4
    assert conv_output_size(7, kernel=2, stride=2, padding=0) == 3
    assert conv_output_size(5, kernel=5, stride=1, padding=0) == 1


def test_stride_pooling_uses_a_strided_convolution_and_no_pool_layer() -> None:
    net = CNN(1, 10, (8, 8), channels=(4,), pool="stride")
    conv = net.features[0][0]
    assert conv.stride == (2, 2)
    assert not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for m in net.modules())


def test_a_model_that_shrinks_the_image_below_one_pixel_is_refused() -> None:
    with pytest.raises(FitlabError) as info:
        CNN(1, 10, (8, 8), channels=(8, 16, 32, 64), padding=1, pool="max")
    message = str(info.value)
    assert "block 3" in message and "max pool" in message
    assert "floor((in + 2*padding - kernel) / stride) + 1" in message
    assert "1x1 input to 0x0" in message


def test_kernel_larger_than_the_image_names_the_conv_layer() -> None:
    with pytest.raises(FitlabError, match=r"block 0 \(conv, kernel=9.*8x8 input to 0x0"):
        CNN(1, 10, (8, 8), channels=(8,), kernel_size=9, padding=0)


@pytest.mark.parametrize(
    ("option", "value"),
    [("norm", "layer"), ("pool", "median"), ("activation", "swishy"), ("kernel_size", [3, 3])],
)
def test_bad_options_name_the_valid_ones(option: str, value: object) -> None:
    with pytest.raises(FitlabError, match=f"model.{option}"):
        CNN(1, 10, (8, 8), channels=(8, 16, 32), **{option: value})
