"""End to end, as a user meets the explorer: JupyterLab on localhost in headless Chromium, then the exported HTML offline.

Needs Debian's `chromium` (apt-get install chromium; `.ci/run` installs it) driven by Playwright for
Python with `executable_path` (no browser download). Without them the test skips, saying why.
Set EXPLORER_SCREENSHOTS=<folder> to keep the screenshots; EXPLORER_ROOT (+ EXPLORER_PROFILE) to
explore an existing run instead of the toy samples folder.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from explorer_fake_run import write_fake_run

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _need_browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (`apt-get install -y chromium`) or set "
                    "CHROMIUM=/path/to/chromium")
    return pytest.importorskip("playwright.sync_api", reason="Playwright for Python is missing: `make setup` "
                               "installs it (dev extra)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A samples folder, a copy of 05_explore.ipynb (JupyterLab saves into it, never into the repo), the env."""
    _need_browser()
    tmp = tmp_path_factory.mktemp("browser")
    root, profile = os.environ.get("EXPLORER_ROOT"), os.environ.get("EXPLORER_PROFILE", "demo")
    env = dict(os.environ, CTMRI_ROOT=root or str(tmp / "root"), PYDEVD_DISABLE_FILE_VALIDATION="1")
    if not root:
        mp = pytest.MonkeyPatch()
        mp.setenv("CTMRI_ROOT", env["CTMRI_ROOT"])
        write_fake_run(profile)
        mp.undo()
    nb = tmp / "nb"
    nb.mkdir()
    text = (REPO / "notebooks" / "05_explore.ipynb").read_text()
    (nb / "05_explore.ipynb").write_text(text.replace('profile = \\"demo\\"', f'profile = \\"{profile}\\"'))
    shots = Path(os.environ.get("EXPLORER_SCREENSHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    return {"tmp": tmp, "nb": nb, "env": env, "shots": shots, "profile": profile}


@pytest.fixture(scope="module")
def lab(site):
    port, token = _free_port(), "ctmri-test-token"
    settings = site["tmp"] / "lab-settings"          # no "Jupyter news?" popup in the screenshots
    news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    site["env"]["JUPYTERLAB_SETTINGS_DIR"] = str(settings)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--IdentityProvider.token={token}", f"--notebook-dir={site['nb']}", "--ServerApp.open_browser=False",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(site["tmp"] / "lab.log", "w")
    proc = subprocess.Popen(cmd, env=site["env"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"JupyterLab did not start: {(site['tmp'] / 'lab.log').read_text()[-2000:]}")
        yield f"{url}/lab/tree/05_explore.ipynb?token={token}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _shot(page, path: Path) -> bytes:
    page.locator("img.widget-image").first.screenshot(path=str(path))
    return path.read_bytes()


def _wait_new_image(page, before: str) -> None:
    page.wait_for_function("(b) => { const i = document.querySelector('img.widget-image'); "
                           "return i && i.src && i.src !== b; }", arg=before, timeout=60_000)


def test_explorer_in_jupyterlab(site, lab):
    sync_api = _need_browser()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1200})
        try:
            _explore(page, lab, site["shots"])
        except Exception:
            page.screenshot(path=str(site["shots"] / "failure.png"), full_page=True)
            raise
        finally:
            browser.close()


def _explore(page, lab: str, shots: Path) -> None:
    page.goto(lab)
    page.wait_for_selector(".jp-Notebook", timeout=60_000)
    choose = page.locator(".jp-Dialog button", has_text="Select")        # the kernel dialog, when it comes
    try:
        choose.wait_for(timeout=10_000)
        choose.click()
    except Exception:  # noqa: BLE001 - no dialog: the kernel started by itself
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    page.get_by_role("menuitem", name="Run").click()
    page.get_by_role("menuitem", name="Run All Cells").first.click()
    page.wait_for_selector("img.widget-image", timeout=90_000)
    page.wait_for_function("document.querySelectorAll('.jp-InputArea-prompt').length > 0 && "
                           "[...document.querySelectorAll('.jp-InputArea-prompt')].every(e => !e.textContent.includes('*'))",
                           timeout=90_000)
    page.locator("img.widget-image").first.scroll_into_view_if_needed()
    first = _shot(page, shots / "explorer_final.png")

    img = page.locator("img.widget-image").first
    src = img.get_attribute("src")
    step = page.locator(".widget-slider").filter(has_text="step").locator(".widget-readout").first
    step.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("0")
    page.keyboard.press("Enter")
    _wait_new_image(page, src)
    noise = _shot(page, shots / "explorer_step0.png")
    assert noise != first, "moving the step slider did not change the rendered image"

    src = img.get_attribute("src")
    select = page.locator(".widget-select-multiple select").first
    options = select.locator("option").all_inner_texts()
    select.select_option([options[-1]])
    _wait_new_image(page, src)
    other = _shot(page, shots / "explorer_sampler.png")
    assert other != noise, "changing the sampler did not change the rendered image"

    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    text = page.locator(".jp-OutputArea").all_inner_texts()
    assert not any("Traceback" in t or "Error" in t for t in errors + text), errors
    page.screenshot(path=str(shots / "explorer_lab.png"), full_page=True)


def test_exported_html_plays_offline(site):
    sync_api = _need_browser()
    out = site["tmp"] / "export"
    out.mkdir()
    env = site["env"]
    subprocess.run([sys.executable, "-m", "papermill", "--no-progress-bar", "--log-level", "WARNING", "-k", "python3",
                    str(site["nb"] / "05_explore.ipynb"), str(out / "05_explore.ipynb"), "-p", "profile",
                    site["profile"]], check=True, env=env)
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--log-level", "WARN",
                    str(out / "05_explore.ipynb")], check=True, env=env, capture_output=True)
    html = out / "05_explore.html"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
        context.route("http*://**/*", lambda route: route.abort())       # nothing from the network, ever
        page = context.new_page()
        page.goto(html.as_uri())
        anim = page.locator(".animation img").first
        anim.wait_for(timeout=30_000)
        anim.scroll_into_view_if_needed()
        before = anim.get_attribute("src")
        assert before.startswith("data:image/png;base64,")
        page.locator(".anim-buttons button").nth(5).click()                 # ▶ (play forwards)
        page.wait_for_function("(b) => document.querySelector('.animation img').src !== b", arg=before,
                               timeout=10_000)
        page.locator(".animation").first.screenshot(path=str(site["shots"] / "exported_animation.png"))
        browser.close()
