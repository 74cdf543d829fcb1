"""A real JupyterHub, DockerGPUSpawner on podman, and Chromium: the form as people use it.

One hub for the module (tests/spawner/hub.py: loopback only, stopped at the end with every
server, container and volume it made). alice sees each GPU type with what is free of it, the
count following the type she picks (0 becomes 1), and reaches her own server through the hub;
bob, in a browser without JavaScript, reads the free counts, is refused a type left at 0 GPUs
and a count that is not free, with the message on the re-rendered form, then gets his own
server and volume; dave asks for a GPU that podman's Docker API cannot give and reads the
spawner's explanation, not "Internal Server Error"; carol uses the REST API: checked the same
way, limits across her named servers, and progress events while her server starts. The hub's
log holds no traceback and no "Received unhandled user_options"; a refused choice is a warning
there, a failed spawn an error. Each telling moment's screenshot is kept under
test-artifacts/hub/ (with the hub's log), each checked to be a PNG with an image in it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from cellpipe.spawner.names import safe_name
from cellpipe.spawner.objects import GPUS_LABEL, HOME_LABEL, USER_LABEL
from tests.containers import BaseImage, ContainerEngine, Registry
from tests.spawner.browser import Browser
from tests.spawner.conftest import A100, T4
from tests.spawner.hub import Hub, start_hub
from tests.spawner.notebook_image import NotebookImage, build_notebook_image

HOME = "/home/jovyan"
SUBMIT = "#spawn_form button[type=submit]"
GPUS = "#cellpipe-gpus"
NOT_STARTED = "Your server was not started: the container engine (Podman Engine "
DROPPED = "dropped its GPU device requests, so the server would have no GPU"


def gpu_type(value: str) -> str:
    """The selector of the GPU type's radio button."""
    return f'input[name=gpu_type][value="{value}"]'


def checked_type(browser: Browser, page: str) -> list[str]:
    return [r["value"] for r in browser.call("radios", page, name="gpu_type") if r["checked"]]


@pytest.fixture(scope="module")
def notebook_image(base_image: BaseImage, registry: Registry) -> NotebookImage:
    return build_notebook_image(base_image, registry)


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory,
    container_engine: ContainerEngine,
    notebook_image: NotebookImage,
) -> Iterator[Hub]:
    with start_hub(tmp_path_factory.mktemp("hub"), container_engine, notebook_image) as hub:
        yield hub


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory, hub: Hub) -> Iterator[Browser]:
    with Browser.opened(tmp_path_factory.mktemp("browser")) as browser:
        try:
            yield browser
        finally:
            browser.keep_log(hub.process.log_path)  # the hub's log beside the screenshots


def log_in(browser: Browser, hub: Hub, user: str, javascript: bool = True) -> None:
    browser.call("goto", user, url=f"{hub.url}/hub/login", javaScript=javascript)
    browser.call("fill", user, selector="#username_input", value=user)
    browser.call("fill", user, selector="#password_input", value=hub.password)
    browser.call("submit", user, selector="#login_submit")


def contents(browser: Browser, hub: Hub, page: str, owner: str) -> dict[str, Any]:
    """GET /user/OWNER/api/contents in `page`'s browser, through the hub's proxy."""
    opened = browser.call("goto", page, url=f"{hub.url}/user/{owner}/api/contents")
    assert opened["status"] == 200, (opened, browser.call("text", page), server_logs(hub, owner))
    listing: dict[str, Any] = json.loads(browser.call("text", page, selector="pre"))
    return listing


def hub_log_lines(hub: Hub, text: str) -> list[str]:
    """The lines of the hub's log that say `text`."""
    log = hub.process.log_path.read_text(errors="replace")
    return [line for line in log.splitlines() if text in line]


def level(line: str) -> str:
    """The level letter of a hub log line ("[W 2026-... JupyterHub ...] ...": W)."""
    assert line.startswith("[") and line[2] == " ", line
    return line[1]


def server_logs(hub: Hub, user: str) -> str:
    api = hub.engine.client().api
    return "\n".join(
        api.logs(c["Id"]).decode(errors="replace")[-4000:] for c in hub.containers(user)
    )


def write_file(hub: Hub, user: str, name: str) -> None:
    """A file in the user's home, written inside their container."""
    (container,) = hub.containers(user)
    api = hub.engine.client().api
    run = api.exec_create(container["Id"], ["sh", "-c", f"echo hello > {HOME}/{name}"])
    api.exec_start(run["Id"])
    assert api.exec_inspect(run["Id"])["ExitCode"] == 0


def home_mount(container: dict[str, Any]) -> dict[str, Any]:
    (mount,) = [m for m in container["Mounts"] if m["Destination"] == HOME]
    return mount


def seed_home(hub: Hub, base_image: BaseImage, user: str, name: str, text: str) -> None:
    """The user's home volume as a previous server would have left it, with one file."""
    volume = safe_name("cellpipe-home", user)
    hub.engine.client().api.create_volume(volume, labels={HOME_LABEL: "1", USER_LABEL: user})
    hub.engine.podman(
        "run", "--rm", "-v", f"{volume}:{HOME}", base_image.local_ref,
        "sh", "-c", f"echo '{text}' > {HOME}/{name}",
    )  # fmt: skip


def test_alice_fills_the_form_and_reaches_her_own_server(
    hub: Hub, browser: Browser, base_image: BaseImage
) -> None:
    # Given alice, whose home volume is there from before, logged in, on the spawn form
    seed_home(hub, base_image, "alice", "welcome.txt", "welcome back, alice")
    log_in(browser, hub, "alice")
    page = browser.call("goto", "alice", url=f"{hub.url}/hub/spawn")
    assert page["status"] == 200

    # Then the form offers each GPU type with what is free of it, in plain sight
    assert browser.call("radios", "alice", name="gpu_type") == [
        {"value": "", "text": "No GPU", "checked": True, "disabled": False},
        {"value": A100, "text": "A100 80 GB: 2 of 2 free", "checked": False, "disabled": False},
        {"value": T4, "text": "T4 16 GB: 1 of 1 free", "checked": False, "disabled": False},
    ]
    assert browser.call("value", "alice", selector=GPUS) == "0"
    browser.screenshot("alice", "01-form-free-counts")

    # When she picks the T4 with the count at 0, then the count becomes 1, at most 1
    browser.call("check", "alice", selector=gpu_type(T4))
    assert browser.call("value", "alice", selector=GPUS) == "1"
    browser.screenshot("alice", "02-type-picked-count-1")
    assert browser.call("attribute", "alice", selector=GPUS, name="max") == "1"
    assert browser.call("text", "alice", selector="#cellpipe-gpus-bound") == (
        "T4 16 GB: 1 to 1 (free now)."
    )
    # and each type bounds the count by its own free count and her limit, not one for all
    browser.call("check", "alice", selector=gpu_type(A100))
    assert browser.call("attribute", "alice", selector=GPUS, name="max") == "2"
    browser.call("fill", "alice", selector=GPUS, value="2")
    browser.call("check", "alice", selector=gpu_type(T4))
    assert browser.call("value", "alice", selector=GPUS) == "1"
    browser.call("check", "alice", selector=gpu_type(""))
    assert browser.call("value", "alice", selector=GPUS) == "0"
    assert [o["value"] for o in browser.call("options", "alice", selector="#cellpipe-cpu")] == [
        "1",
        "2",
    ]
    assert "Your limit across all your servers: 2 GPUs, 2 CPUs." in browser.call("text", "alice")

    # When she chooses 2 CPUs, 1 GiB and no GPU, and starts
    browser.call("select", "alice", selector="#cellpipe-cpu", value="2")
    browser.call("select", "alice", selector="#cellpipe-memory", value="1Gi")
    browser.call("submit", "alice", selector=SUBMIT)

    # Then the hub takes her browser to her own running server, with her files
    landed = browser.call("waitForUrl", "alice", pattern="/user/alice/files/", ms=150_000)
    assert landed == f"{hub.url}/user/alice/files/welcome.txt"
    assert browser.call("text", "alice").strip() == "welcome back, alice"
    browser.screenshot("alice", "03-alice-on-her-own-server")
    assert hub.server("alice")["ready"] is True
    write_file(hub, "alice", "alice-was-here.txt")
    listing = contents(browser, hub, "alice", "alice")
    assert sorted(item["name"] for item in listing["content"]) == [
        "alice-was-here.txt",
        "welcome.txt",
    ]

    # And her container is what she chose: her volume at home, her limits, no GPU, loopback
    (container,) = hub.containers("alice")
    labels = container["Config"]["Labels"]
    assert (labels[USER_LABEL], labels[GPUS_LABEL]) == ("alice", "")
    assert home_mount(container)["Name"] == safe_name("cellpipe-home", "alice")
    assert container["HostConfig"]["NetworkMode"] == "host"
    assert container["HostConfig"]["Memory"] == 2**30
    assert container["HostConfig"]["NanoCpus"] == 2_000_000_000
    assert not container["HostConfig"].get("DeviceRequests")
    env = dict(e.split("=", 1) for e in container["Config"]["Env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["JUPYTERHUB_SERVICE_URL"].startswith("http://127.0.0.1:")


def test_bob_without_javascript_is_refused_then_gets_his_own_server(
    hub: Hub, browser: Browser
) -> None:
    # Given bob, in a browser without JavaScript, on the spawn form
    log_in(browser, hub, "bob", javascript=False)
    browser.call("goto", "bob", url=f"{hub.url}/hub/spawn")

    # Then what is free of each GPU type is there to read
    page = browser.call("text", "bob")
    assert "A100 80 GB: 2 of 2 free" in page and "T4 16 GB: 1 of 1 free" in page
    browser.screenshot("bob", "04-no-javascript-free-counts")

    # When he picks the T4 and leaves the count at 0 (no script makes it 1 here)
    browser.call("check", "bob", selector=gpu_type(T4))
    refused = browser.call("submit", "bob", selector=SUBMIT)

    # Then the server refuses to start a server without the GPU he picked, and the form
    # comes back with the T4 and a count of 1
    assert refused["status"] == 400
    assert browser.call("text", "bob", selector=".spawn-error-msg") == (
        "Error: You chose T4 16 GB with 0 GPUs, which would start a server without a GPU. "
        "Ask for at least 1 T4 16 GB, or choose No GPU."
    )
    assert checked_type(browser, "bob") == [T4]
    assert browser.call("value", "bob", selector=GPUS) == "1"
    browser.screenshot("bob", "05-no-javascript-type-with-0-refused")
    # and the hub's log says it as a warning, in one line: the user's choice, not its error
    (said,) = hub_log_lines(hub, "You chose T4 16 GB with 0 GPUs")
    assert level(said) == "W", said

    # When he asks for 2 T4s (one exists)
    browser.call("fill", "bob", selector=GPUS, value="2")
    refused = browser.call("submit", "bob", selector=SUBMIT)

    # Then the server refuses, and the form comes back with the message and the T4, its
    # count within what is free
    assert refused["status"] == 400
    assert browser.call("text", "bob", selector=".spawn-error-msg") == (
        "Error: You asked for 2 × T4 16 GB; only 1 is free right now. Ask for fewer, choose "
        "another type, or try again later."
    )
    assert checked_type(browser, "bob") == [T4]
    assert browser.call("value", "bob", selector=GPUS) == "1"
    assert hub.server("bob") is None

    # When he picks No GPU instead (the count still says 1: nothing clears it here)
    browser.call("check", "bob", selector=gpu_type(""))
    browser.call("submit", "bob", selector=SUBMIT)
    hub.wait_ready("bob")

    # Then he reaches his own server, with his own volume, and not alice's
    write_file(hub, "bob", "bob-was-here.txt")
    opened = browser.call("goto", "bob", url=f"{hub.url}/user/bob/files/bob-was-here.txt")
    assert (opened["status"], browser.call("text", "bob").strip()) == (200, "hello")
    browser.screenshot("bob", "06-bob-on-his-own-server")
    listing = contents(browser, hub, "bob", "bob")
    assert [item["name"] for item in listing["content"]] == ["bob-was-here.txt"]
    other = browser.call("goto", "bob", url=f"{hub.url}/user/alice/api/contents")
    assert other["status"] == 403
    (bobs,) = hub.containers("bob")
    (alices,) = hub.containers("alice")
    assert home_mount(bobs)["Name"] == safe_name("cellpipe-home", "bob")
    assert home_mount(bobs)["Name"] != home_mount(alices)["Name"]
    assert bobs["Name"].lstrip("/") == safe_name("jupyter", "bob", "")
    assert bobs["Config"]["Labels"][GPUS_LABEL] == ""  # No GPU chosen: none given


def test_dave_asks_for_a_gpu_the_engine_cannot_give_and_reads_why(
    hub: Hub, browser: Browser
) -> None:
    # Given dave on the spawn form, and podman's Docker API, which drops GPU requests
    log_in(browser, hub, "dave")
    browser.call("goto", "dave", url=f"{hub.url}/hub/spawn")

    # When he picks the T4 (the count becomes 1 by itself) and starts
    browser.call("check", "dave", selector=gpu_type(T4))
    assert browser.call("value", "dave", selector=GPUS) == "1"
    browser.call("submit", "dave", selector=SUBMIT)

    # Then he reads the spawner's explanation where the hub shows a failed spawn (the form
    # again when it fails at once, else the pending page's progress), not an HTTP 500
    shown = browser.call("waitForText", "dave", text=NOT_STARTED, ms=120_000)
    assert DROPPED in shown
    assert "Internal Server Error" not in shown
    browser.screenshot("dave", "07-failed-spawn-explained")

    # And the page the hub shows for his server afterwards says it too, without scripts
    later = browser.call("goto", "dave", url=f"{hub.url}/hub/spawn-pending/dave")
    assert later["status"] == 503
    text = browser.call("text", "dave")
    assert "The latest attempt to start your server" in text and "has failed" in text
    assert NOT_STARTED in text and DROPPED in text
    browser.screenshot("dave", "08-failed-spawn-page-afterwards")
    assert hub.containers("dave") == []
    assert hub.server("dave") is None

    # And the hub's log has the explanation in one line, with no traceback
    log = hub.process.log_path.read_text(errors="replace")
    said = [line for line in log.splitlines() if NOT_STARTED in line]
    assert any("Error starting dave's server" in line for line in said), log[-4000:]
    assert all(DROPPED in line for line in said), said  # whole, on one line
    assert {level(line) for line in said} == {"E"}, said  # the hub's failure: an error
    assert "Traceback" not in log, log[-4000:]


def progress_of(hub: Hub, user: str, server: str) -> list[dict[str, Any]]:
    """The server's spawn progress events, read from the hub's event stream."""
    events = []
    url = f"{hub.url}/hub/api/users/{user}/servers/{server}/progress"
    headers = {"Authorization": f"token {hub.token}"}
    with requests.get(url, headers=headers, stream=True, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if line and line.startswith("data:"):
                event = json.loads(line[5:])
                events.append(event)
                if event.get("ready") or event.get("failed"):
                    break
    return events


def test_carol_uses_the_rest_api_checked_and_limited_across_her_servers(hub: Hub) -> None:
    # Given carol, with named servers and a limit of 2 CPUs at a time
    assert hub.api("POST", "/users/carol").status_code in (201, 409)

    # When she asks for more GPUs than her limit, or an image not offered
    too_many = hub.api("POST", "/users/carol/servers/one", json={"gpus": 3, "gpu_type": A100})
    foreign = hub.api("POST", "/users/carol/servers/one", json={"image": "evil.example/x:1"})

    # Then both are refused with what is allowed
    assert too_many.status_code == 400
    assert too_many.json()["message"] == (
        "You asked for 3 GPUs; your limit is 2 GPUs at a time, so you may ask for at most 2."
    )
    assert foreign.status_code == 400
    assert foreign.json()["message"].startswith(
        "Image: 'evil.example/x:1' is not one of the offered images: "
    )
    hub.wait_stopped("carol", "one")

    # When she starts server "one" with 2 CPUs, following its progress
    started: dict[str, Any] = {}

    def start() -> None:
        started["response"] = hub.api(
            "POST", "/users/carol/servers/one", json={"cpu": "2", "memory": "512Mi"}
        )

    thread = threading.Thread(target=start)
    thread.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (hub.server("carol", "one") or {}).get("pending"):
        time.sleep(0.05)
    events = progress_of(hub, "carol", "one")
    thread.join(120)

    # Then the events say what happens, in order, up to ready
    assert started["response"].status_code in (201, 202)
    messages = [e["message"] for e in events]
    image = hub.containers("carol")[0]["Config"]["Image"]
    expected = [
        "Server requested",
        f"Your choices: {image}, 2 CPUs, 512Mi memory",
        f"Created your volume {safe_name('cellpipe-home', 'carol')}, mounted at {HOME}",
        f"The image {image} is already here",
        f"Creating the container {safe_name('jupyter', 'carol', 'one')}",
        "Starting the server",
        "The server has started; waiting for it to answer",
    ]
    assert messages[: len(expected)] == expected
    assert events[-1]["ready"] is True
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress)

    # When she asks for a second server while the first holds both her CPUs
    second = hub.api("POST", "/users/carol/servers/two", json={"cpu": "1"})

    # Then the limit across her servers refuses it
    assert second.status_code == 400
    assert second.json()["message"] == (
        "You asked for 1 CPU; your limit is 2 CPUs at a time and your other running server "
        "already uses 2 CPUs. Choose less, or stop another server first."
    )

    # When she stops server "one": its container goes, her volume stays
    assert hub.api("DELETE", "/users/carol/servers/one").status_code in (202, 204)
    hub.wait_stopped("carol", "one")
    assert hub.containers("carol") == []
    volumes = hub.engine.client().api.volumes(filters={"label": HOME_LABEL})["Volumes"]
    assert safe_name("cellpipe-home", "carol") in {v["Name"] for v in volumes}

    # And through all of it (every user's spawns, the refusals), the hub's log has no
    # traceback and never says the choices went unhandled
    log = hub.process.log_path.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "unhandled user_options" not in log.lower()
    assert "Exception applying user_options for carol:one: You asked for 3 GPUs" in log
    # and each line of a refused choice is a warning: hers (the REST API's), and bob's (the form)
    for refused in (
        "You asked for 3 GPUs",
        "is not one of the offered images",
        "You asked for 1 CPU; your limit is 2 CPUs",
        "You chose T4 16 GB with 0 GPUs",
        "You asked for 2 × T4 16 GB",
    ):
        said = hub_log_lines(hub, refused)
        assert said and {level(line) for line in said} == {"W"}, said
