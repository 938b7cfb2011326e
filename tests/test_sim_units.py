import pytest

from labcore.units import (
    UnitError,
    format_duration,
    parse_duration,
    parse_fraction,
    parse_quantity,
    parse_rate,
)


@pytest.mark.parametrize(
    "text, seconds",
    [("250ms", 0.25), ("15m", 900.0), ("1.5s", 1.5), ("2h", 7200.0), ("100us", 1e-4),
     ("1d", 86400.0), (0, 0.0), ("0s", 0.0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", [5, "5", "5 parsecs", "-1s", True, None, "ms"])
def test_bad_durations_are_refused(bad):
    with pytest.raises(UnitError):
        parse_duration(bad)


def test_rates_fractions_and_quantities():
    assert parse_rate("120/s") == 120.0
    assert parse_rate("600/m") == 10.0
    assert parse_fraction("99.9%") == pytest.approx(0.999)
    assert parse_fraction(0.5) == 0.5
    assert parse_quantity("1.5s") == 1.5
    assert parse_quantity("0.5%") == pytest.approx(0.005)
    assert parse_quantity("10/s") == 10.0
    assert parse_quantity(3) == 3.0
    for bad in ("120 per second", "12/fortnight"):
        with pytest.raises(UnitError):
            parse_rate(bad)
    for bad in ("150%", 1.5, "-1%"):
        with pytest.raises(UnitError):
            parse_fraction(bad)
    with pytest.raises(UnitError):
        parse_quantity("fast")


def test_format_duration():
    assert format_duration(0.25) == "250ms"
    assert format_duration(840) == "14m 0s"
    assert format_duration(float("nan")) == "n/a"
