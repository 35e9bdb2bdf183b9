"""Chart geometry of the overview: ranking, the "other" series, scale and the table behind each chart."""

from datetime import UTC, datetime, timedelta

from safety_admin.overview.charts import HEIGHT, TOP, horizontal_bars, stacked_bars

BUCKETS = [datetime(2026, 11, 25, h, tzinfo=UTC) for h in range(4)]


def test_series_beyond_seven_are_summed_into_other():
    series = {f"CODE_{i}": [i + 1, 0, 0, 0] for i in range(9)}  # CODE_8 is largest (9), CODE_0 smallest (1)

    chart = stacked_bars(BUCKETS, series, "hour")

    assert chart.legend == [("series-0", "CODE_8", 9), ("series-1", "CODE_7", 8), ("series-2", "CODE_6", 7),
                            ("series-3", "CODE_5", 6), ("series-4", "CODE_4", 5), ("series-5", "CODE_3", 4),
                            ("series-6", "other", 6)]  # fmt: skip
    assert chart.total == 45
    assert chart.table_head == [
        "Time (UTC)",
        "CODE_8",
        "CODE_7",
        "CODE_6",
        "CODE_5",
        "CODE_4",
        "CODE_3",
        "other",
        "Total",
    ]
    assert chart.table_rows == [["00:00", 9, 8, 7, 6, 5, 4, 6, 45]]


def test_bars_stack_to_scale_and_empty_buckets_draw_nothing():
    chart = stacked_bars(BUCKETS, {"HATE": [2, 0, 4, 0], "SECRET_LEAK": [2, 0, 0, 0]}, "hour")

    plot_h = chart.baseline - TOP
    assert [tick.label for tick in chart.y_ticks] == ["0", "1", "2", "3", "4"]
    assert [(r.css, r.h, r.title) for r in chart.rects] == [
        ("series-0", plot_h * 2 / 4, "00:00: 2 HATE"),
        ("series-1", plot_h * 2 / 4, "00:00: 2 SECRET_LEAK"),
        ("series-0", float(plot_h), "02:00: 4 HATE"),
    ]
    # The second segment sits on top of the first; the full bar reaches the top of the plot.
    assert chart.rects[1].y + chart.rects[1].h == chart.rects[0].y
    assert chart.rects[2].y == TOP
    assert chart.height == HEIGHT


def test_palette_fixes_order_and_colours():
    chart = stacked_bars(BUCKETS, {"blocked": [5, 0, 0, 0], "approved": [1, 0, 0, 0]}, "hour",
                         palette={"approved": "series-2", "blocked": "series-5"})  # fmt: skip
    assert chart.legend == [("series-2", "approved", 1), ("series-5", "blocked", 5)]


def test_day_labels_and_horizontal_bars():
    days = [datetime(2026, 11, 1, tzinfo=UTC) + timedelta(days=d) for d in range(30)]
    chart = stacked_bars(days, {}, "day")

    assert (chart.total, chart.rects, chart.table_rows) == (0, [], [])
    assert [t.label for t in chart.x_ticks][:3] == ["Nov 01", "Nov 04", "Nov 07"]
    assert [
        (b.label, b.value, b.width) for b in horizontal_bars([("a", 5, "c"), ("b", 10, "c"), ("x", None, "c")])
    ] == [
        ("a", 5, 150.0),
        ("b", 10, 300.0),
        ("x", None, 0.0),
    ]
