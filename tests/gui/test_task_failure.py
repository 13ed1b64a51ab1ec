"""A task's failure reaches the GUI as the exception itself (no message parsed back from text)."""

from __future__ import annotations

from tlstudio.core.backbone.weights import WeightsCancelled
from tlstudio.core.cancel import Cancelled
from tlstudio.gui.worker import Task, TaskFailure, failure_line, reason, was_cancelled


def _fail_with(qtbot, err: BaseException) -> TaskFailure:
    def work():
        raise err

    task = Task(work)
    with qtbot.waitSignal(task.failed, timeout=10_000) as got:
        task.start()
    task.wait()
    return got.args[0]


def test_the_failure_carries_the_exception_object(qtbot):
    err = ValueError("photos/a: b.png is not an image\nsecond line of advice")
    failure = _fail_with(qtbot, err)
    assert isinstance(failure, TaskFailure) and isinstance(failure, str)
    assert failure.error is err
    # the words keep their own ': ' (the old text parsing split on the first one it met)
    assert reason(failure) == "photos/a: b.png is not an image"
    assert failure_line(failure) == "ValueError: photos/a: b.png is not an image"
    assert "Traceback" in failure and "second line of advice" in failure
    assert not was_cancelled(failure)


def test_a_cancel_is_told_apart_from_a_failure_by_its_type(qtbot):
    assert was_cancelled(_fail_with(qtbot, Cancelled("label check cancelled")))
    # a subclass named for its work counts too, whatever its words say
    assert was_cancelled(_fail_with(qtbot, WeightsCancelled("download stopped")))
    # an error whose words merely mention cancelling is still a failure
    assert not was_cancelled(_fail_with(qtbot, RuntimeError("the cancelled run's folder is missing")))


def test_a_failure_with_no_words_still_says_what_it_was(qtbot):
    failure = _fail_with(qtbot, KeyError())
    assert reason(failure) == "KeyError" and failure_line(failure) == "KeyError"
