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
