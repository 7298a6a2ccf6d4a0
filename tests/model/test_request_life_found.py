"""Sequences the long state-machine run (bench/stateful.py) found, replayed step by step.

Found on 2026-12-07 by a 30-minute run of the fully merged main (teams, follow-up passes, issue
17's access checks): an RBAC refusal, duplicated posts of one key, then Table faults end request
k0 with both ``job.succeeded`` and ``request.deadlettered``: the deadletter function, unable to
claim in the ledger, sent its event unrecorded, and a duplicate later created the Job. Fixed by
parking the body in the poison queue until the claim can be made (``shared.flows.deadletter``).
"""

from __future__ import annotations

from tests.model.request_life import RequestLife


def test_rbac_refusal_then_table_faults_end_a_request_once() -> None:
    state = RequestLife()
    steps = [
        ("post", {"big": False, "key": "k0"}),
        ("post", {"big": False, "key": "k0"}),
        ("weather", {"kind": "refuse:rbac", "n": 1}),
        ("tick", {"seconds": 5}),
        ("deliver", {"crash": False, "i": 0, "twice": False}),
        ("deliver", {"crash": False, "i": 0, "twice": True}),
        ("deliver", {"crash": False, "i": 0, "twice": True}),
        ("post", {"big": False, "key": "k0"}),
        ("post", {"big": False, "key": "k0"}),
        ("deliver", {"crash": False, "i": 21, "twice": False}),
        ("post", {"big": False, "key": "k0"}),
        ("weather", {"kind": "table", "n": 2}),
        ("deliver", {"crash": False, "i": 3, "twice": False}),
        ("deliver", {"crash": False, "i": 6, "twice": False}),
    ]
    for name, kwargs in steps:
        getattr(state, name)(**kwargs)
        state.never_a_job_after_a_terminal_state()
        state.one_outcome_and_the_ledger_agrees()
    state.teardown()
