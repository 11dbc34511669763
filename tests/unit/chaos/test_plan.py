"""The seeded fault plan: a seed replays the same faults; every kind strikes."""

import pytest

from testbed.chaos.plan import BY_NAME, CATALOGUE, WARMUP_S, make_plan


def test_the_same_seed_gives_the_same_plan() -> None:
    assert make_plan(seed=17, duration_s=300) == make_plan(seed=17, duration_s=300)


def test_another_seed_gives_another_plan() -> None:
    assert make_plan(seed=17, duration_s=300) != make_plan(seed=18, duration_s=300)


@pytest.mark.parametrize("minutes", [1, 5, 30], ids=["1-min", "5-min", "30-min"])
def test_every_kind_of_fault_is_planned_at_least_once(minutes: int) -> None:
    planned = {fault.kind for fault in make_plan(seed=3, duration_s=minutes * 60)}
    assert planned == set(BY_NAME)


@pytest.mark.parametrize("minutes", [1, 30], ids=["1-min", "30-min"])
def test_faults_start_after_the_warmup_and_before_the_end(minutes: int) -> None:
    duration = minutes * 60
    plan = make_plan(seed=5, duration_s=duration)
    assert plan == sorted(plan, key=lambda fault: fault.at)
    assert all(WARMUP_S <= f.at < duration for f in plan)


def test_a_long_run_strikes_each_kind_about_at_its_rate() -> None:
    plan = make_plan(seed=11, duration_s=600 * 60)
    for kind in CATALOGUE:
        count = sum(1 for fault in plan if fault.kind == kind.name)
        expected = kind.per_minute * 600
        assert 0.7 * expected < count < 1.3 * expected + 2, kind.name


def test_a_run_too_short_for_any_fault_plans_none() -> None:
    assert make_plan(seed=1, duration_s=WARMUP_S) == []


def test_durations_and_counts_stay_within_their_bounds() -> None:
    for fault in make_plan(seed=23, duration_s=3600):
        params = fault.params
        if "count" in params:
            assert 1 <= int(params["count"]) <= 40
        if "for_s" in params:
            assert 2 <= float(params["for_s"]) <= 30


def test_intensity_multiplies_the_rates() -> None:
    calm = make_plan(seed=8, duration_s=1800)
    stormy = make_plan(seed=8, duration_s=1800, intensity=3)
    assert 2.4 * len(calm) < len(stormy) < 3.6 * len(calm)
