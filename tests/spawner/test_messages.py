"""What the hub's log keeps of a refusal or a failed spawn: the message in one line, never a
traceback, however JupyterHub or asyncio log it (the hub test sees whichever path the machine's
speed takes; both are driven here)."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from cellpipe.spawner.base import SpawnFailed, SpawnRefused, keep_spawn_messages_plain

EXPLANATION = "Your server was not started: the engine dropped its GPU device requests."


def test_a_handler_logging_with_exc_info_keeps_the_message_without_the_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the hub's logger with the spawners' filter
    log = logging.getLogger("cellpipe-test-hub")
    keep_spawn_messages_plain(log)
    keep_spawn_messages_plain(log)  # once, however many spawners are made

    # When JupyterHub's form handler logs our failure, and another error, as it does
    with caplog.at_level(logging.INFO, logger="cellpipe-test-hub"):
        for error in (SpawnFailed(EXPLANATION), SpawnRefused("CPU: '3' is not one of 1, 2")):
            try:
                raise error
            except Exception:
                log.error("Failed to spawn single-user server with %s", "form", exc_info=True)
        try:
            raise KeyError("a bug")
        except Exception:
            log.error("Unhandled error", exc_info=True)

    # Then ours are one line each with the message; anything else keeps its traceback
    ours, other = caplog.records[:2], caplog.records[2]
    assert [(r.getMessage(), r.exc_info) for r in ours] == [
        (f"Failed to spawn single-user server with form: {EXPLANATION}", None),
        ("Failed to spawn single-user server with form: CPU: '3' is not one of 1, 2", None),
    ]
    assert other.exc_info is not None
    assert [type(f).__name__ for f in log.filters] == ["PlainSpawnMessages"]


def test_a_spawn_task_left_unread_is_not_logged_for_our_failures(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the filter on (as every spawner puts it on asyncio's logger too)
    keep_spawn_messages_plain(logging.getLogger("cellpipe-test-hub"))

    async def fail(error: Exception) -> None:
        raise error

    def leave_unread(error: Exception) -> None:
        loop = asyncio.new_event_loop()
        try:
            task = loop.create_task(fail(error))
            loop.run_until_complete(asyncio.sleep(0.01))
            assert task.done()
            del task
            gc.collect()  # asyncio says "never retrieved" when the task is collected
        finally:
            loop.close()

    # When JupyterHub's spawn page leaves its spawn task unread (the spawn outlasted 1 s)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        leave_unread(SpawnFailed(EXPLANATION))
        ours = caplog.text
        leave_unread(RuntimeError("a bug"))

    # Then nothing is said of ours (User.spawn logged it, the page showed it); of others, all
    assert ours == ""
    assert "Task exception was never retrieved" in caplog.text
    assert "RuntimeError: a bug" in caplog.text


def log_a_spawn_exception_as_jupyterhub_does(log: logging.Logger, error: Exception) -> None:
    """The ways JupyterHub 5-6 log one spawn's exception: with its traceback (form handler,
    apply_user_options), in an except block with the exception in the text (User.spawn), with
    it as an argument (the pending page), and with only its text (the spawn page's wrapper)."""
    try:
        raise error
    except Exception as exc:
        log.exception("Exception applying user_options for alice")
        log.error(f"Error starting alice's server: {exc}")
    log.error("Previous spawn for %s failed: %s", "alice", error)
    log.error(f"Error starting server alice: {error}")


def test_a_refused_choice_is_a_warning_and_a_failed_spawn_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given the hub's logger with the spawners' filter
    log = logging.getLogger("cellpipe-test-hub-levels")
    keep_spawn_messages_plain(log)
    refusal = SpawnRefused("You chose T4 16 GB with 0 GPUs. Ask for at least 1 T4 16 GB.")

    # When JupyterHub logs a refusal of the user's choice, then a failed spawn, its ways
    with caplog.at_level(logging.INFO, logger="cellpipe-test-hub-levels"):
        log_a_spawn_exception_as_jupyterhub_does(log, refusal)
        refused = list(caplog.records)
        caplog.clear()
        log_a_spawn_exception_as_jupyterhub_does(log, SpawnFailed(EXPLANATION))
        failed = list(caplog.records)
        log.error("An unrelated error")

    # Then each line of the refusal is a warning, each line of the failure an error, all of
    # them one line with the message, and other errors stay errors
    assert [r.levelname for r in refused] == ["WARNING"] * 4
    assert [r.levelname for r in failed] == ["ERROR"] * 4
    for record in refused + failed:
        assert record.exc_info is None
    assert all(refusal.jupyterhub_message in r.getMessage() for r in refused)
    assert all(EXPLANATION in r.getMessage() for r in failed)
    assert caplog.records[-1].levelname == "ERROR"
