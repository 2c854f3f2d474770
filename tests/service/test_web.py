"""The web page at `/`, driven in headless Chromium against a real `mouthpiece serve`.

Debian's /usr/bin/chromium through Playwright's Python API (never a downloaded browser); the
server is a real process on a loopback port with a temporary data directory. Accounts are made
the operator's way: `mouthpiece admin create-user` for the end-to-end test, the same library
call (`service.users.create_user`) where a CLI start-up per account would only cost time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.service.servers import free_port

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
STARTUP_TIMEOUT_S = 60.0
SHORT_TOKEN_TTL_S = 4  # the page renews an access token after 80 % of its life at the latest
JOB_TIMEOUT_MS = 240_000  # one short clip at 128 px on two shared CPU cores

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    process: subprocess.Popen

    def create_user(self, name: str, plan: str = "basic") -> str:
        """A new account, made with the admin library call on the server's database; returns its API key."""
        from mouthpiece.service.config import Settings
        from mouthpiece.service.db import make_engine, session_factory
        from mouthpiece.service.users import create_user

        engine = make_engine(Settings(data_dir=self.data_dir).db_url)
        try:
            with session_factory(engine)() as session:
                _, key = create_user(session, name, plan)
                session.commit()
        finally:
            engine.dispose()
        return key

    def create_user_with_cli(self, name: str, plan: str = "basic") -> str:
        """A new account made by `mouthpiece admin create-user`, as an operator would; returns its key."""
        done = subprocess.run(
            [sys.executable, "-m", "mouthpiece.cli", "admin", "create-user", name, "--plan", plan,
             "--data-dir", str(self.data_dir), "--json"],
            capture_output=True, text=True, timeout=60, cwd=ROOT, env=_env(self.data_dir, workers=0))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)["api_key"]


def _env(data_dir: Path, workers: int, **settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOUTHPIECE_")}
    env.update(MOUTHPIECE_DATA_DIR=str(data_dir), MOUTHPIECE_WORKERS=str(workers))
    env.update({f"MOUTHPIECE_{name.upper()}": str(value) for name, value in settings.items()})
    return env


def _start_server(data_dir: Path, workers: int, log_path: Path, **settings) -> LiveServer:
    port = free_port()
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "mouthpiece.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--data-dir", str(data_dir)],
        stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=_env(data_dir, workers, **settings))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mouthpiece serve exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return LiveServer(url, data_dir, process)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"mouthpiece serve did not become ready:\n{log_path.read_text()}")


def _stop_server(server: LiveServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def api_only_server(tmp_path_factory):
    """A server without workers (everything the page does except running jobs), whose access
    tokens live only seconds, so the page's renewal is exercised."""
    tmp = tmp_path_factory.mktemp("web-api")
    server = _start_server(tmp / "data", workers=0, log_path=tmp / "serve.log",
                           access_token_ttl_s=SHORT_TOKEN_TTL_S)
    yield server
    _stop_server(server)


@pytest.fixture(scope="module")
def working_server(tmp_path_factory):
    """A server with one worker process that really runs the engine."""
    tmp = tmp_path_factory.mktemp("web-work")
    server = _start_server(tmp / "data", workers=1, log_path=tmp / "serve.log")
    yield server
    _stop_server(server)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def short_speech(tmp_path_factory) -> Path:
    """About 1.3 s of real speech (espeak-ng): the shortest clip that still has lip motion."""
    path = tmp_path_factory.mktemp("web-speech") / "hello.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "170", "-w", str(path), "Hello, my friend."], check=True)
    return path


def sign_in(page, server: LiveServer, key: str) -> None:
    page.goto(server.url + "/")
    page.wait_for_selector("#signin-view:not([hidden])")
    page.fill("#api-key", key)
    page.click("#signin-button")
    page.wait_for_selector("#app-view:not([hidden])")
    expect(page.locator("#plan-badge")).not_to_have_text("–")


def poll_js(page, expression: str, timeout_s: float, every_s: float = 0.25):
    """Evaluate `expression` until it is truthy (the page's CSP forbids wait_for_function's eval)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value or time.monotonic() > deadline:
            assert value, f"timed out after {timeout_s:.0f} s waiting for {expression}"
            return value
        page.wait_for_timeout(every_s * 1000)


def limit_value(page, term: str) -> str:
    """The value shown next to `term` in the plan-and-quota card."""
    return page.locator(f"#limits div:has(dt:text-is('{term}')) dd").inner_text()


def test_bad_key_shows_the_servers_reason(page, api_only_server):
    page.goto(api_only_server.url + "/")
    page.wait_for_selector("#signin-view:not([hidden])")
    page.click("#signin-button")
    assert page.inner_text("#signin-error") == "Enter your API key."

    page.fill("#api-key", "mp_0123456789ab_" + "x" * 43)
    page.click("#signin-button")
    error = page.wait_for_selector("#signin-error:not([hidden])")
    assert "not accepted" in error.inner_text()
    assert "invalid API key" in error.inner_text()  # the API's own message, not a generic one
    assert page.get_attribute("#api-key", "aria-invalid") == "true"
    assert page.is_hidden("#app-view")


def test_sign_in_shows_plan_quota_and_allowed_params(page, api_only_server):
    key = api_only_server.create_user("web-fast-user", "basic")
    signed_in_at = time.monotonic()
    sign_in(page, api_only_server, key)

    assert page.inner_text("#user-name") == "web-fast-user"
    assert page.inner_text("#plan-badge").lower() == "basic"
    assert page.inner_text("#quota-left") == "10 min"  # the basic plan's 600 s, nothing used yet
    # Only resolutions the plan allows can be picked; the rest are shown but disabled.
    options = page.eval_on_selector_all(
        "#min_resolution option", "os => os.map(o => [Number(o.value), o.disabled])")
    assert options and all(disabled == (value > 512) for value, disabled in options)
    assert page.input_value("#min_resolution") == "512"
    # Every setting on the page is one the API accepts, with the API's own bounds (from /openapi.json).
    settings = page.eval_on_selector_all(
        "#settings [data-default]", "els => els.map(e => [e.name, !e.closest('[hidden]'), e.min, e.max])")
    assert settings and all(visible for _, visible, _, _ in settings)
    assert ("inference_steps", True, "1", "100") in [tuple(s) for s in settings]
    assert "No videos yet" in page.inner_text("#history-empty")

    # The API key is gone; the access token lives in memory only, the refresh token in this tab.
    stored = page.evaluate("() => ({local: {...localStorage}, session: {...sessionStorage}})")
    assert stored["local"] == {}
    assert list(stored["session"]) == ["mouthpiece.refresh_token"]
    assert key not in json.dumps(stored)

    # Before the access token expires the page trades its refresh token for a new pair by itself…
    refresh_token = "sessionStorage.getItem('mouthpiece.refresh_token')"
    first = stored["session"]["mouthpiece.refresh_token"]
    poll_js(page, f"{refresh_token} !== {json.dumps(first)}", timeout_s=SHORT_TOKEN_TTL_S + 10)
    page.wait_for_timeout(max(0.0, signed_in_at + SHORT_TOKEN_TTL_S + 0.5 - time.monotonic()) * 1000)
    # the first access token has expired by now: the page must be using the renewed one
    page.click("#history-refresh")
    expect(page.locator("#history-refresh")).to_be_enabled()
    expect(page.locator("#history-error")).to_be_hidden()
    assert page.is_visible("#app-view")

    # … and a reload keeps the session by rotating it once more.
    second = page.evaluate(refresh_token)
    page.reload()
    page.wait_for_selector("#app-view:not([hidden])")
    assert page.evaluate(refresh_token) not in (first, second)

    page.click("#sign-out")
    page.wait_for_selector("#signin-view:not([hidden])")
    assert page.evaluate("sessionStorage.length") == 0


def test_form_errors_are_shown_in_words(page, api_only_server, tmp_path):
    key = api_only_server.create_user("web-form-user", "basic")
    sign_in(page, api_only_server, key)

    page.click("#submit-button")
    assert "Choose a portrait photo." in page.inner_text("#form-error")
    assert page.get_attribute("#image", "aria-invalid") == "true"

    # A file that is not an image reaches the server, which refuses it with a JSON error.
    not_an_image = tmp_path / "face.png"
    not_an_image.write_text("this is not a picture")
    page.set_input_files("#image", str(not_an_image))
    page.click("label[for=mode-text]")
    page.fill("#text", "Hello there.")
    page.click("#submit-button")
    error = page.locator("#form-error")
    expect(error).not_to_contain_text("Choose a portrait")
    expect(error).to_be_visible()
    expect(page.locator("#submit-button")).to_be_enabled()
    message = error.inner_text()
    assert "image" in message.lower() and "HTTP" not in message
    assert page.is_hidden("#job-view")  # nothing was submitted


def test_submit_queue_and_cancel_refunds(page, api_only_server, portrait_path, short_speech):
    key = api_only_server.create_user("web-cancel-user", "basic")
    sign_in(page, api_only_server, key)
    page.set_input_files("#image", str(portrait_path))
    page.set_input_files("#audio", str(short_speech))
    page.click("#submit-button")

    # No worker runs on this server: the job waits in the queue, charged, until it is canceled.
    expect(page.locator("#job-status")).to_have_text("Queued")
    expect(page.locator("#job-message")).to_contain_text("Waiting in the queue")
    expect(page.locator("#quota-left")).not_to_have_text("10 min")
    assert page.get_attribute("#job-progress", "aria-valuenow") == "0"
    page.click("#cancel-button")
    expect(page.locator("#job-status")).to_have_text("Canceled")
    expect(page.locator("#job-message")).to_contain_text("refunded")
    expect(page.locator("#quota-left")).to_have_text("10 min")
    expect(page.locator("#history-body tr .status-badge")).to_have_text(["Canceled"])


@pytest.mark.slow
def test_generate_watch_play_download(page, working_server, portrait_path, short_speech, tmp_path):
    key = working_server.create_user_with_cli("web-e2e-user", "basic")
    sign_in(page, working_server, key)
    quota_before = page.inner_text("#quota-left")
    job_requests: list[str] = []
    page.on("request", lambda r: job_requests.append(r.url) if "/v1/jobs/" in r.url else None)
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)

    page.set_input_files("#image", str(portrait_path))
    page.set_input_files("#audio", str(short_speech))
    expect(page.locator("#cost-hint")).to_contain_text("Uses about")
    page.click("#settings summary")
    page.select_option("#min_resolution", "128")
    page.fill("#seed", "7")
    page.click("#submit-button")

    page.wait_for_selector("#job-view:not([hidden])")
    expect(page.locator("#job-status")).to_have_text("Ready", timeout=JOB_TIMEOUT_MS)
    job_id = page.inner_text("#job-id").removeprefix("Job ").strip()
    # Progress came from the job's event stream, not from polling: one stream, then one final read.
    assert [u.split("/v1/jobs/")[1] for u in job_requests] == [f"{job_id}/events", job_id]

    # The <video> has a source the browser really plays: metadata loads, time advances, no error.
    poll_js(page, "(() => { const v = document.getElementById('result-video');"
                  " return v.readyState >= 1 && v.duration > 0; })()", timeout_s=30)
    page.evaluate("async () => { const v = document.getElementById('result-video');"
                  " v.muted = true; await v.play(); }")
    poll_js(page, "document.getElementById('result-video').currentTime > 0.2", timeout_s=30)
    video = page.evaluate("(() => { const v = document.getElementById('result-video');"
                          " v.pause(); return {src: v.currentSrc, duration: v.duration,"
                          " error: v.error && v.error.code, width: v.videoWidth}; })()")
    assert video["error"] is None and video["duration"] > 1.0 and video["width"] > 0

    # The download link is a signed URL that works without the session token.
    href = page.get_attribute("#download-link", "href")
    assert href == video["src"]
    response = httpx.get(href, timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("video/mp4")
    assert response.content[4:8] == b"ftyp"
    with page.expect_download() as download_info:
        page.click("#download-link")
    saved = tmp_path / "download.mp4"
    download_info.value.save_as(saved)
    assert saved.read_bytes() == response.content

    # History lists the job as ready; the quota went down by the clip's length.
    expect(page.locator(f"#history-body tr[data-job-id='{job_id}'] .status-badge")).to_have_text("Ready")
    expect(page.locator("#quota-left")).not_to_have_text(quota_before)
    assert limit_value(page, "Used today") != "0 s"

    outputs = ROOT / "outputs"
    outputs.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.evaluate("async () => { const v = document.getElementById('result-video'); v.currentTime = 0.6;"
                  " await new Promise(done => v.addEventListener('seeked', done, {once: true})); }")
    page.screenshot(path=str(outputs / "web.png"), full_page=True)
    assert not console_errors, console_errors
