"""The change feed's lag sample: what a busy run publishes of its lags (CloudWatch takes at
most 100 values of a metric in one record, and the dashboard's p50 and p95 are read from
them)."""

from cliniko_automations.changefeed.handler import lag_sample


def test_a_sample_spreads_over_every_lag_to_the_longest() -> None:
    # 150 changes, 50 of them waiting 2 s longer: every other lag was a step of 1, so the
    # sample was the shortest 100 and the 50 changes waiting longest were never published.
    lags = [1.0] * 100 + [3.0] * 50
    sample = lag_sample(lags)
    assert len(sample) == 100
    assert (min(sample), max(sample)) == (1.0, 3.0)
    # A third of the changes waited longer, a third of the sample did (give or take the one
    # that straddles).
    assert 33 <= sample.count(3.0) <= 34


def test_a_sample_keeps_the_run_s_order_statistics() -> None:
    lags = [float(i) for i in range(1, 1001)]  # one lag per second up to 1,000
    sample = lag_sample(lags)
    assert sample[0] == 1.0 and sample[-1] == 1000.0
    assert sample == sorted(sample)
    # Its median and 95th percentile are the run's within a step of the sample.
    assert abs(sample[49] - 500) <= 10 and abs(sample[94] - 950) <= 10


def test_a_quiet_run_publishes_every_lag() -> None:
    assert lag_sample([2.0, 1.0, 3.0]) == [1.0, 2.0, 3.0]
