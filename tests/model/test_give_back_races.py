"""A capacity give-back racing its own repeat: the soak's third Job for one request (issue k1).

``bench/soak.py --requests 500 --seed 1`` once counted Job ``vnb-soak-1-00119-…`` created three
times with one give-back. The request had no duplicate message; its faults were the soak's
"after" kind (a call takes effect, its answer is lost). Replayed here in the model world over the
real services (dispatch, reconcile, the ledger):

1. the Job is created, ACI refuses its pod for quota;
2. the reconciler gives the request back (condemn, ledger back to waiting, requeue), and a call
   of that give-back loses its answer, so the next pass meets the Job again;
3. if the request was sent back twice, the first message creates the second Job; the repeat, a
   capacity retry, reads the ledger, and before its create the second Job succeeds, is reported
   and deleted at once (VNB_KEEP_FINISHED_SECONDS=0): the repeat creates a third Job, and with
   its create's answer lost, its redelivery finds the request finished.
"""

from __future__ import annotations

from tests.model.request_life import body
from tests.model.world import World


def _refused_job(world: World) -> str:
    world.deliver(world.produce(body("k0")))
    [name] = world.cluster.jobs
    world.cluster.progress(name, "refuse")
    return name


def _outcomes(world: World) -> list[str]:
    return [s.event["type"] for s in world.sent if s.event["data"].get("requestKey") == "k0"]


def _drain(world: World) -> None:
    for _ in range(5):
        while world.queue:
            world.deliver(world.queue[0])
        for name in world.cluster.unfinished():
            world.cluster.progress(name, "succeed")
        world.reconcile()


def _jobs_explained(world: World) -> None:
    """One Job per request, once more per give-back and per Job dispatch took back (the soak's count)."""
    cluster = world.cluster
    creates, condemned, taken = cluster.creates["k0"], cluster.condemned["k0"], cluster.taken_back["k0"]
    assert creates <= 1 + condemned + taken, f"{creates} Jobs created, {condemned} give-back(s), {taken} taken back"


def test_a_give_back_whose_delete_answer_is_lost_sends_the_request_back_once() -> None:
    world = World()
    name = _refused_job(world)
    world.cluster.lose_next["delete"] = 1
    world.reconcile()  # condemned, sent back, deleted; the delete's answer is lost
    world.reconcile()  # the Job is still there (the app's finalizer), being deleted
    assert name not in world.cluster.jobs
    assert len(world.queue) == 1, "the request was sent back twice"
    _drain(world)
    assert _outcomes(world) == ["io.vnodebatch.job.succeeded"]
    assert world.cluster.creates["k0"] == 2
    _jobs_explained(world)


def test_a_repeated_give_back_never_leaves_a_third_job_running() -> None:
    world = World()
    name = _refused_job(world)
    world.enqueue_lost = 1
    world.reconcile()  # condemned, sent back; the send's answer is lost: nothing deleted
    world.reconcile()  # condemned, not being deleted: sent back again (it cannot know)
    assert name not in world.cluster.jobs
    assert len(world.queue) == 2, "the request was sent back twice (the repeat this test is about)"
    first, repeat = world.queue

    world.deliver(first)  # the second Job
    second = world.cluster.jobs[name]["metadata"]["uid"]

    def second_job_finishes() -> None:
        world.cluster.progress(name, "succeed")
        world.reconcile()  # job.succeeded sent, the Job deleted at once

    world.admission.on_admit = second_job_finishes  # between the repeat's ledger read and its create
    world.cluster.lose_next["create"] = 1
    world.deliver(repeat)  # the third Job; its answer is lost, so the message comes back
    assert world.cluster.jobs[name]["metadata"]["uid"] not in (second, "")
    world.deliver(repeat)  # the redelivery: the request has ended

    # What a user notices: the request ended once, and no Job of it is left to run it again.
    assert world.cluster.live() == [], f"a Job of the finished request is left to run: {world.cluster.live()}"
    _jobs_explained(world)
    _drain(world)
    assert not world.cluster.jobs
    assert _outcomes(world) == ["io.vnodebatch.job.succeeded"]


def test_a_repeat_whose_request_ends_before_its_create_takes_its_job_back() -> None:
    """The repeat read the ledger as ``submitted`` (the second Job's), so the check after its
    create moves ``submitted`` to ``submitted``: a no-op that must still see the stored record
    (finished meanwhile), not the one the repeat read before (``Ledger.move``)."""
    world = World()
    name = _refused_job(world)
    world.enqueue_lost = 1
    world.reconcile()
    world.reconcile()  # sent back twice
    first, repeat = world.queue
    world.deliver(first)

    def second_job_finishes() -> None:
        world.cluster.progress(name, "succeed")
        world.reconcile()

    world.admission.on_admit = second_job_finishes
    world.deliver(repeat)  # creates a third Job: the request ended between its ledger read and its create
    assert world.cluster.live() == [], f"a Job of the finished request is left to run: {world.cluster.live()}"
    _jobs_explained(world)
    _drain(world)
    assert not world.cluster.jobs
    assert _outcomes(world) == ["io.vnodebatch.job.succeeded"]
