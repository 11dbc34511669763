"""`make bench` draws its charts from results.json: each chart is a PNG file, and a
chart whose figures the run lacks is left out rather than drawn empty."""

import json
from pathlib import Path

from bench import charts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _results() -> dict[str, object]:
    return {
        "burst": {
            "claims": 40,
            "ideal_seconds": 1.0,
            "cpu_ms_per_pvc": 4.0,
            "bound_over_time": [[0.0, 0], [0.5, 18], [1.1, 40]],
        },
        "burst_naive": {"bound_over_time": [[0.0, 0], [0.8, 3], [1.6, 6]]},
        "burst_instant": {"cpu_ms_per_pvc": 3.5},
        "scale_sizes": {
            "p1000": {"pairs": 1000, "ready_seconds": 0.4, "rss_mb": 60.0},
            "p50000": {"pairs": 50000, "ready_seconds": 6.0, "rss_mb": 480.0},
        },
    }


def _is_png(path: Path) -> bool:
    return path.read_bytes()[: len(PNG_SIGNATURE)] == PNG_SIGNATURE


def test_every_chart_is_drawn_as_a_png_from_a_results_file(tmp_path: Path) -> None:
    results_file = tmp_path / "results.json"
    results_file.write_text(json.dumps(_results()))
    baseline_file = tmp_path / "before.json"
    baseline_file.write_text(json.dumps({"burst": {"cpu_ms_per_pvc": 6.0}}))

    code = charts.main(
        [str(results_file), "--baseline", str(baseline_file), "--output", str(tmp_path / "out")]
    )

    assert code == 0
    drawn = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert drawn == ["burst.png", "cpu_per_claim.png", "scale.png"]
    assert all(_is_png(tmp_path / "out" / name) for name in drawn)


def test_a_run_without_the_scale_sizes_draws_no_scale_chart(tmp_path: Path) -> None:
    results = _results()
    del results["scale_sizes"]

    written = charts.write(results, tmp_path)

    assert sorted(p.name for p in written) == ["burst.png", "cpu_per_claim.png"]
    assert not (tmp_path / "scale.png").exists()


def test_a_run_with_no_waves_draws_nothing(tmp_path: Path) -> None:
    assert charts.write({"node": {"stage_ms": 50.0}}, tmp_path) == []
