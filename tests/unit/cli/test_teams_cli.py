"""What `cli status` and `cli ls --summary` show of teams and waiting requests."""

from __future__ import annotations

from shared.cli.api import format_detail, format_record, format_summary, tally


def test_status_shows_the_team_the_place_and_the_estimated_start() -> None:
    record = {
        "id": "r-1",
        "state": "waiting-for-capacity",
        "team": "team-a",
        "submittedBy": "key:0123456789ab",
        "queue": {
            "position": 3,
            "waiting": 40,
            "teamPosition": 2,
            "teamWaiting": 12,
            "estimatedStartAt": "2026-12-07T12:00:00.000Z",
            "estimatedBy": "running Jobs end at their deadline (no finished Job observed yet)",
        },
    }
    text = format_detail(record)
    assert "team: team-a" in text
    assert "place: 3 of 40 waiting (2 of 12 in its team)" in text
    assert "estimated start: 2026-12-07T12:00:00.000Z (running Jobs end at their deadline" in text
    assert "team=team-a" in format_record(record)
    assert "place=3/40" in format_record(record)


def test_the_summary_counts_each_team_by_running_waiting_and_finished() -> None:
    counts: dict[str, dict[str, int]] = {}
    for team, state in [("a", "running"), ("a", "waiting-for-capacity"), ("b", "succeeded"), ("a", "submitted")]:
        tally(counts, {"team": team, "state": state})
    assert counts == {"a": {"running": 2, "waiting": 1, "finished": 0}, "b": {"running": 0, "waiting": 0, "finished": 1}}
    assert format_summary(counts).splitlines()[1].split() == ["a", "2", "1", "0"]
