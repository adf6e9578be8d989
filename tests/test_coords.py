"""Thousandths of the ORIGINAL screenshot -> pixels: the off-target-click trap."""

from __future__ import annotations

import math

import pytest

from deskpilot.actions.coords import box_to_pixels, centre, to_pixel, to_pixels, to_thousandths
from deskpilot.actions.parse import ParseError


@pytest.mark.parametrize(
    ("value", "size", "pixel"),
    [
        (0, 1920, 0), (500, 1920, 960), (999, 1920, 1918), (1000, 1920, 1919),
        (999, 1080, 1079), (999, 1440, 1439), (999, 2560, 2557), (333, 1280, 426),
        (1, 28, 0), (18, 28, 1), (999.9, 7680, 7679), (0.4, 7680, 3),
    ],
)
def test_to_pixel_known_values(value, size, pixel):
    assert to_pixel(value, size) == pixel


def test_mapping_uses_the_original_size_not_the_resized_image():
    # The processor feeds 1932x1092 for 1920x1080; a click at 999 must stay on screen.
    assert to_pixels((999, 999), 1920, 1080) == (1918, 1079)
    assert to_pixels((500, 500), 1920, 1080) == (960, 540)


@pytest.mark.parametrize("bad", [-0.001, 1000.5, math.nan, math.inf, -math.inf, "12", None, True, [1]])
def test_bad_values_raise_parse_error(bad):
    with pytest.raises(ParseError) as info:
        to_pixel(bad, 1920)
    assert "0 to 999" in info.value.message


def test_centre_of_box_and_point():
    assert centre([100, 200, 300, 400]) == (200, 300)
    assert centre([7, 8]) == (7, 8)
    with pytest.raises(ParseError):
        centre([1, 2, 3])


def test_box_to_pixels_orders_corners_and_accepts_points():
    assert box_to_pixels([500, 500, 0, 0], 1000, 1000) == (0, 0, 500, 500)
    assert box_to_pixels([250, 250], 1920, 1080) == (480, 270, 480, 270)
    with pytest.raises(ParseError):
        box_to_pixels([1, 2, 3], 100, 100)


def test_round_trip_within_one_pixel():
    for size in (28, 1080, 1366, 7680):
        for pixel in range(0, size, max(1, size // 97)):
            assert abs(to_pixel(to_thousandths(pixel, size), size) - pixel) <= 1


def test_bad_screen_size_is_a_programming_error():
    with pytest.raises(ValueError):
        to_pixel(5, 0)
