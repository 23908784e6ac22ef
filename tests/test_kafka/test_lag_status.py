"""Burrow's evaluation rules, one by one, on windows written out by hand (no broker)."""

from movieflix_lab.kafka.lag_status import (
    Commit,
    Status,
    group_status,
    partition_status,
    record_commit,
    worst,
)


def window(*commits: tuple[int, int, int | None]) -> list[Commit]:
    """(offset, seconds, lag) per commit."""
    return [Commit(offset, seconds * 1000, lag) for offset, seconds, lag in commits]


def status(
    commits: list[Commit], *, ends: list[int], lag: int, now: int, allowed: int = 0
) -> Status:
    return partition_status(
        commits, broker_offsets=ends, current_lag=lag, now_ms=now * 1000, allowed_lag=allowed
    )


def test_no_lag_now_is_ok_whatever_the_window_holds() -> None:
    stalled_long_ago = window((5, 0, 10), (5, 10, 20))
    assert status(stalled_long_ago, ends=[5], lag=0, now=1000) is Status.OK


def test_no_commits_cannot_be_judged_and_is_ok() -> None:
    assert status([], ends=[100], lag=100, now=10) is Status.OK


def test_a_consumer_that_stopped_committing_is_stop() -> None:
    # Commits 0-20 s, none since: 40 s without a commit is longer than the 20 s they span.
    commits = window((10, 0, 5), (20, 10, 5), (30, 20, 5))
    assert status(commits, ends=[40, 45], lag=15, now=60) is Status.STOP
    # 15 s since the last commit is not (yet) longer than the 20 s span: judged on the lags.
    assert status(commits, ends=[40, 45], lag=15, now=35) is Status.WARN  # lag never dropped
    assert status(window((10, 0, 5), (20, 10, 3)), ends=[25], lag=5, now=15) is Status.OK


def test_stop_waits_while_the_log_end_was_lately_at_the_last_commit() -> None:
    commits = window((30, 0, 0), (30, 10, 0))
    # A sampled log end at offset 30: caught up a moment ago, the producer just wrote more.
    assert status(commits, ends=[30, 31], lag=1, now=100) is Status.OK
    assert status(commits, ends=[31, 32], lag=2, now=100) is Status.STOP


def test_a_single_old_commit_with_lag_is_stop() -> None:
    assert status(window((7, 0, None)), ends=[9, 12], lag=5, now=30) is Status.STOP


def test_an_offset_going_back_is_rewind_until_it_gets_back() -> None:
    rewound = window((100, 0, 5), (50, 5, 60), (70, 10, 45))
    assert status(rewound, ends=[115], lag=45, now=12) is Status.REWIND
    recovered = window((100, 0, 5), (50, 5, 60), (110, 10, 8))
    assert status(recovered, ends=[118], lag=8, now=12) is Status.OK  # lag went down


def test_rewind_is_checked_before_lag_was_ever_zero() -> None:
    # Zero lag early, then a reset to an earlier offset: still REWIND (Burrow's comment).
    commits = window((100, 0, 0), (10, 5, 95), (20, 10, 90))
    assert status(commits, ends=[110], lag=90, now=12) is Status.REWIND


def test_committing_the_same_offset_with_lag_is_stall() -> None:
    commits = window((42, 0, 3), (42, 5, 8), (42, 10, 13))
    assert status(commits, ends=[55], lag=13, now=12) is Status.STALL


def test_lag_zero_at_any_commit_makes_the_window_ok() -> None:
    commits = window((42, 0, 0), (42, 5, 8), (42, 10, 13))  # would be STALL but for the 0
    assert status(commits, ends=[55], lag=13, now=12) is Status.OK
    within = window((42, 0, 2), (42, 5, 8), (42, 10, 13))
    assert status(within, ends=[55], lag=13, now=12, allowed=2) is Status.OK


def test_moving_but_never_catching_up_is_warn() -> None:
    falling_behind = window((10, 0, 5), (20, 5, 9), (30, 10, 9), (40, 15, 14))
    assert status(falling_behind, ends=[54], lag=14, now=17) is Status.WARN
    catching_up_once = window((10, 0, 5), (20, 5, 9), (30, 10, 7), (40, 15, 14))
    assert status(catching_up_once, ends=[54], lag=14, now=17) is Status.OK


def test_unknown_lags_are_skipped_by_the_lag_rules() -> None:
    # Commits made before the watch began carry no lag.
    commits = window((10, 0, None), (20, 5, None), (30, 10, 6), (40, 15, 9))
    assert status(commits, ends=[49], lag=9, now=17) is Status.WARN
    assert status(window((10, 0, None), (20, 5, 4), (30, 10, 2)), ends=[32], lag=2, now=11) is (
        Status.OK
    )


def test_the_window_keeps_the_latest_commits_with_their_lag() -> None:
    commits: list[Commit] = []
    for i in range(12):
        commits = record_commit(commits, i * 10, i * 1000, broker_offset=i * 10 + 3, intervals=10)
    assert [c.offset for c in commits] == [20, 30, 40, 50, 60, 70, 80, 90, 100, 110]
    assert {c.lag for c in commits} == {3}
    ahead = record_commit([], 50, 0, broker_offset=40)  # log end sampled before the commit
    assert ahead[0].lag == 0
    unknown = record_commit([], 50, 0, broker_offset=None)
    assert unknown[0].lag is None


def test_commits_closer_than_min_distance_merge_into_the_earlier_one() -> None:
    commits = record_commit([], 10, 1_000, broker_offset=20, min_distance_ms=5_000)
    commits = record_commit(commits, 12, 3_000, broker_offset=20, min_distance_ms=5_000)
    assert commits == [Commit(12, 1_000, 8)]
    commits = record_commit(commits, 14, 7_000, broker_offset=20, min_distance_ms=5_000)
    assert [c.offset for c in commits] == [12, 14]


def test_a_group_is_its_worst_partition_with_errors_as_err() -> None:
    assert group_status([]) is Status.OK
    assert group_status([Status.OK, Status.OK]) is Status.OK
    assert group_status([Status.OK, Status.WARN]) is Status.WARN
    for error in (Status.STOP, Status.STALL, Status.REWIND):
        assert group_status([Status.WARN, error, Status.OK]) is Status.ERR
    assert worst([Status.STOP, Status.REWIND, Status.STALL]) is Status.REWIND
