"""The one event codec between a trial in another process and the live view (tuner.trial.events)."""

from __future__ import annotations

import multiprocessing as mp

from tuner.trial import Forward, deliver


class Heard:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def trial_started(self, *args):
        self.calls.append(("trial_started", *args))

    def epoch_done(self, *args):
        self.calls.append(("epoch_done", *args))

    def batch_done(self, *args):
        self.calls.append(("batch_done", *args))


def test_what_a_worker_forwards_through_a_real_queue_reaches_the_listener_as_called():
    events = mp.get_context("spawn").Queue()
    sent = Forward(events)
    sent.trial_started(3, {"lr": 0.1}, False, "10.0.0.7 cuda:1")
    sent.batch_done(3, 1, 4, 5, 10, 640)
    sent.epoch_done(3, 1, 4, {"val_accuracy": 0.9})
    heard = Heard()
    for _ in range(3):
        assert deliver(events.get(timeout=10), heard)
    assert heard.calls == [("trial_started", 3, {"lr": 0.1}, False, "10.0.0.7 cuda:1"),
                           ("batch_done", 3, 1, 4, 5, 10, 640),
                           ("epoch_done", 3, 1, 4, {"val_accuracy": 0.9})]
    assert not deliver(("done", 0), heard) and len(heard.calls) == 3  # a worker's own word is not the listener's
    assert deliver(("epoch_done", 3, 2, 4, None), None)  # no live view: heard by nobody, still the listener's
