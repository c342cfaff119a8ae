"""The SVG bar chart of the stats page: well-formed, to scale, stacked, escaped."""

import xml.etree.ElementTree as ET

import pytest

from cks.hkp.bar_chart import BOTTOM, HEIGHT, TOP, Series, nice_scale, stacked_bars, tick_label

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize("maximum, scale", [
    (0, (1, 1)), (1, (1, 1)), (3, (1, 3)), (5, (2, 6)), (10, (5, 10)), (11, (5, 15)),
    (99, (50, 100)), (1234, (500, 1500)), (987654, (500000, 1000000))])
def test_scale_steps_are_round(maximum, scale):
    assert nice_scale(maximum) == scale


@pytest.mark.parametrize("value, label", [
    (0, "0"), (999, "999"), (5000, "5,000"), (10000, "10k"), (250000, "250k"),
    (1000000, "1M"), (2500000, "2.5M")])
def test_tick_labels_fit_beside_the_axis(value, label):
    assert tick_label(value) == label


def test_bars_are_stacked_to_scale():
    labels = ["d%d" % n for n in range(12)]
    added = [n % 4 for n in range(12)]
    updated = [(n * 7) % 5 for n in range(12)]
    chart = ET.fromstring(stacked_bars("A <chart> & more", labels,
                                       [Series("added", "#080", added),
                                        Series("up<dated>", "#008", updated)],
                                       "day", "keys"))
    assert chart.find(SVG + "title").text == "A <chart> & more"
    step, top = nice_scale(max(a + u for a, u in zip(added, updated)))
    unit = (HEIGHT - TOP - BOTTOM) / top  # pixels per key
    bars = chart.findall(SVG + "g")
    assert len(bars) == len(labels)
    for bar, label, a, u in zip(bars, labels, added, updated):
        assert bar.find(SVG + "title").text == "%s: %d added, %d up<dated>" % (label, a, u)
        low, high = bar.findall(SVG + "rect")
        assert float(low.get("height")) == pytest.approx(a * unit, abs=0.1)
        assert float(high.get("height")) == pytest.approx(u * unit, abs=0.1)
        assert float(high.get("y")) + float(high.get("height")) == \
            pytest.approx(float(low.get("y")), abs=0.1)  # on top of the first
        assert float(low.get("y")) + float(low.get("height")) == \
            pytest.approx(HEIGHT - BOTTOM, abs=0.1)  # standing on the axis
    texts = [t.text for t in chart.iter(SVG + "text")]
    assert [t for t in texts if t in labels] == ["d1", "d6", "d11"]  # every 5th, to the last
    assert [str(tick) for tick in range(0, top + 1, step)] == \
        [t for t in texts if t.isdigit()]
    assert "up<dated>" in texts and "day" in texts and "keys" in texts


def test_text_is_in_the_page_colour():
    """Axis labels, titles and legend take the page's text colour, so a dark
    theme or forced colours show them (SVG's default, black, did not)."""
    chart = ET.fromstring(stacked_bars("chart", ["a", "b"], [Series("added", "#080", [1, 2])],
                                       "day", "keys", label_every=1))
    texts = list(chart.iter(SVG + "text"))
    assert len(texts) >= 6  # ticks, day labels, axis titles, legend
    assert {t.get("fill") for t in texts} == {"currentColor"}
