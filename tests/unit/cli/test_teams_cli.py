"""What `cli status` and `cli summary` show of teams and waiting requests."""

from __future__ import annotations

from shared.cli.api import format_detail, format_record, format_summary


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


def test_the_summary_shows_each_team_against_its_share_and_the_whole_capacity() -> None:
    body = {
        "at": "2026-12-07T02:00:00.000Z",
        "capacity": {"cores": {"inUse": 40.0, "budget": 100.0}, "groups": {"inUse": 20, "budget": 100}, "waiting": 12},
        "teams": [
            {
                "team": "a",
                "running": 3,
                "waiting": 5,
                "waitingByReason": {"waiting-for-capacity": 5},
                "cores": {"inUse": 12.5, "share": 50.0, "borrowLimit": 20.0},
                "groups": {"inUse": 6, "share": 50, "borrowLimit": None},
                "finished": {"succeeded": 10, "failed": 1, "cancelled": 0, "rejected": 2, "deadlettered": 0},
                "cost": {"amount": 1.234, "currency": "USD"},
            },
            {
                "team": None,
                "running": 1,
                "waiting": 0,
                "waitingByReason": {},
                "cores": {"inUse": 1.0, "share": None, "borrowLimit": None},
                "groups": {"inUse": 1, "share": None, "borrowLimit": None},
                "finished": {"succeeded": 0, "failed": 0, "cancelled": 0, "rejected": 0, "deadlettered": 0},
                "cost": {"amount": 0.0, "currency": "USD"},
            },
        ],
    }
    lines = format_summary(body).splitlines()
    assert lines[1].split() == ["a", "3", "5", "12.5/50+20", "6/50+∞", "10", "3", "1.23", "USD"]
    assert lines[2].split() == ["waiting:", "waiting-for-capacity", "5"]
    assert lines[3].split()[:5] == ["-", "1", "0", "1", "1"]
    assert lines[-1].startswith("capacity: 40/100 cores, 20/100 container groups in use, 12 waiting")
