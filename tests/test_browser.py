"""Notebook 2 in a real JupyterLab and a real browser: Debian's chromium, driven by selenium through Debian's
chromedriver (.ci/run installs both). Opened, the notebook is not marked modified and saving it rewrites both
files byte for byte (so opening it leaves `git status` clean); Run All runs it on the tiny stand-in (the
solutions skipped, as for a learner); and its rank slider, moved with the keyboard, rewrites the readout with
the count for the new rank. The screenshot is kept at <pytest basetemp>/browser/02_lora_configuration.png
(`make test`: runs/pytest-tmp/browser/), also when the test fails."""

import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from processes import free_port, stop_group, wait_for_server

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "en" / "02_lora_configuration.ipynb"
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# .ci/run sets this, so that CI fails instead of skipping when the browser is missing.
REQUIRED = os.environ.get("ERNIE_COURSE_BROWSER") == "required"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1400,1000"]
RUN_ALL_SECONDS = 240  # the notebook on the tiny stand-in takes about a minute on a loaded 2-core machine
# JupyterLab's own settings for this test: every cell in the page (by default, cells out of view are left out of
# it, with their prompts), and no pop-up asking to fetch news from the internet.
LAB_SETTINGS = {"@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
                "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false"}}


@pytest.fixture(scope="module")
def browser_tools():
    if not (CHROMIUM and CHROMEDRIVER):
        message = "chromium and chromedriver are not installed: `apt-get install -y chromium chromium-driver` (.ci/run does)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM, CHROMEDRIVER


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


class Lab:
    """A JupyterLab server on 127.0.0.1 serving `root`, in its own process group, with its own config folders."""

    def __init__(self, root: Path):
        self.root, self.port, self.token = root, free_port(), secrets.token_hex(16)
        self.log = root.parent / "jupyterlab.log"
        env = {key: value for key, value in os.environ.items() if key != "ERNIE_COURSE_SOLUTIONS"}  # Run All as a learner
        env.update(ERNIE_COURSE_MODEL="tiny", HF_HUB_OFFLINE="1", ERNIE_COURSE_WORK=os.environ["ERNIE_COURSE_WORK"],
                   **{name: str(root.parent / name.lower()) for name in
                      ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR",
                       "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR")})
        for name, settings in LAB_SETTINGS.items():
            path = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings))
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
                   f"--IdentityProvider.token={self.token}"] + (["--allow-root"] if os.geteuid() == 0 else [])
        self.log_file = self.log.open("w")
        self.process = subprocess.Popen(command, env=env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}{'&' if '?' in path else '?'}token={self.token}"

    def wait_until_up(self, seconds: float = 90) -> None:
        wait_for_server(self.process, lambda: get_json(self.url("api/status")), self.log, "JupyterLab", seconds,
                        pause=0.3)

    def kernel_states(self) -> list[str]:
        return [session["kernel"]["execution_state"] for session in get_json(self.url("api/sessions"))]

    def stop(self) -> None:
        """Shut the kernels down (they run in process groups of their own), then the server's process group."""
        try:
            for session in get_json(self.url("api/sessions")):
                request = urllib.request.Request(self.url(f"api/sessions/{session['id']}"), method="DELETE")
                urllib.request.urlopen(request, timeout=10).close()
        except OSError:
            pass  # the server no longer answers: stop it below all the same
        stop_group(self.process, self.log_file)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Notebook 2's pair in a fresh root folder. Its language_info.version is the Python of the kernel that will
    run it (JupyterLab marks a notebook modified when the kernel reports another one): the committed files name
    the Python of our machines, tests/test_notebook_metadata.py checks that; elsewhere only that line is adapted."""
    root = tmp_path_factory.mktemp("lab") / "root"
    root.mkdir()
    for suffix in (".ipynb", ".py"):
        shutil.copy(NOTEBOOK.with_suffix(suffix), root)
    notebook = json.loads((root / NOTEBOOK.name).read_text())
    if notebook["metadata"]["language_info"]["version"] != platform.python_version():
        notebook["metadata"]["language_info"]["version"] = platform.python_version()
        (root / NOTEBOOK.name).write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    os.utime(root / NOTEBOOK.name)  # the newer file of a pair is the one jupytext reads first
    from course_lib.tiny_ernie import ensure_tiny_ernie

    ensure_tiny_ernie("tiny")  # built once per work folder, here rather than inside Run All's time limit
    server = Lab(root)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def driver(browser_tools, lab):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = browser_tools
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS + [f"--user-data-dir={lab.root.parent / 'chromium-profile'}"]:
        options.add_argument(flag)
    service = Service(chromedriver)
    browser = webdriver.Chrome(service=service, options=options)
    try:
        yield browser
    finally:
        try:
            browser.quit()
        finally:
            if service.process and service.process.poll() is None:
                service.process.kill()


def wait_for(condition, seconds: float, what: str, poll: float = 0.25):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"waited {seconds} s for {what}")


def notebook_tab_classes(driver) -> str:
    return driver.execute_script(
        "const tab = [...document.querySelectorAll('.lm-TabBar-tab')].find(t => t.textContent.includes(arguments[0]));"
        "return tab ? tab.className : '';", NOTEBOOK.name)


def cell_states(driver) -> list[str]:
    """Each code cell's prompt ("[3]:" run, "[*]:" running or queued, "[ ]:" not run); a cell whose code is folded
    shows no prompt, so "output" when it has printed something."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(cell =>"
        " cell.querySelector('.jp-InputPrompt').textContent.trim()"
        " || (cell.querySelector('.jp-OutputArea-output') ? 'output' : ''))")


def run_all_finished(lab, driver, seconds: float) -> list[str]:
    """Wait until every code cell has run, or the kernel has stayed idle with cells left (an error stops Run All)."""
    deadline, idle_since = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        states = cell_states(driver)
        if all(re.fullmatch(r"\[\d+\]:|output", state) for state in states):
            return states
        idle = "[*]:" not in states and lab.kernel_states() == ["idle"]
        idle_since = (idle_since or time.monotonic()) if idle else None
        if idle_since and time.monotonic() - idle_since > 5:
            return states
        time.sleep(0.5)
    raise AssertionError(f"Run All did not finish in {seconds} s: {cell_states(driver)}")


def click_menu(driver, menu: str, item: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//div[contains(@class, 'lm-MenuBar-itemLabel') and text()='{menu}']").click()
    driver.find_element(By.XPATH, f"//div[contains(@class, 'lm-Menu-itemLabel') and text()='{item}']").click()


def rank_widget(driver):
    from selenium.webdriver.common.by import By

    label = driver.find_element(By.XPATH, "//label[contains(@class, 'widget-label') and text()='LoRA rank r']")
    return label.find_element(By.XPATH, "ancestor::div[contains(@class, 'widget-vbox')][1]")


def readout_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return rank_widget(driver).find_element(By.CSS_SELECTOR, ".widget-html-content").text


def test_notebook_2_in_jupyterlab(lab, driver, tmp_path_factory):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from transformers import AutoModelForCausalLM

    from course_lib import solutions
    from course_lib.tiny_ernie import ensure_tiny_ernie
    from course_lib.widgets import linear_shapes, lora_parameter_count

    artifacts = tmp_path_factory.getbasetemp() / "browser"
    artifacts.mkdir(exist_ok=True)
    screenshot = artifacts / NOTEBOOK.with_suffix(".png").name
    committed = {path.name: path.read_bytes() for path in lab.root.glob("02_*")}
    start = time.monotonic()
    try:
        driver.get(lab.url(f"lab/tree/{NOTEBOOK.name}"))
        wait_for(lambda: notebook_tab_classes(driver), 60, "the notebook's tab")
        wait_for(lambda: lab.kernel_states() == ["idle"], 90, "the kernel to start")
        time.sleep(2)  # the kernel's info has arrived; give JupyterLab the time to (wrongly) mark the notebook modified
        assert "jp-mod-dirty" not in notebook_tab_classes(driver), "opening the notebook marked it modified"

        mtime = (lab.root / NOTEBOOK.name).stat().st_mtime_ns
        driver.find_element(By.CSS_SELECTOR, ".jp-Notebook").click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()
        wait_for(lambda: (lab.root / NOTEBOOK.name).stat().st_mtime_ns != mtime, 30, "the save")
        time.sleep(1)  # the paired .py is written right after the .ipynb
        saved = {name: (lab.root / name).read_bytes() for name in committed}
        assert saved == committed, f"saving rewrote {sorted(n for n in saved if saved[n] != committed.get(n))}"

        click_menu(driver, "Run", "Run All Cells")
        started = time.monotonic()
        states = run_all_finished(lab, driver, RUN_ALL_SECONDS)
        stopped = [i for i, state in enumerate(states) if not re.fullmatch(r"\[\d+\]:|output", state)]
        errors = driver.find_elements(By.CSS_SELECTOR, "[data-mime-type='application/vnd.jupyter.stderr']")
        assert not stopped, f"Run All stopped before code cell {stopped[0] + 1} of {len(states)}:\n" + (
            "\n".join(error.text[-1500:] for error in errors))
        assert driver.find_elements(By.XPATH, f"//pre[contains(., {solutions.SKIPPED[:40]!r})]"), "no solution was skipped"
        run_all_seconds = time.monotonic() - started

        shapes = linear_shapes(AutoModelForCausalLM.from_pretrained(ensure_tiny_ernie("tiny")), [
            "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", rank_widget(driver))
        assert f"{lora_parameter_count(shapes, 16):,} trainable parameters" in readout_text(driver)
        rank_widget(driver).find_element(By.CSS_SELECTOR, ".noUi-handle").click()
        ActionChains(driver).send_keys(Keys.ARROW_RIGHT).perform()  # 16 -> 32, the next rank
        wait_for(lambda: f"{lora_parameter_count(shapes, 32):,} trainable parameters" in readout_text(driver), 10,
                 f"the readout for r = 32, got {readout_text(driver)!r}")
        assert "lora_alpha = LORA_ALPHA x r / LORA_R = 32 x 32 / 16 = 64" in readout_text(driver)
        assert "the tiny ERNIE-4.5 stand-in" in readout_text(driver) and "For ERNIE-4.5-0.3B (MODEL_NAME): T4 estimate" in readout_text(driver)
        print(f"opened and saved in {started - start:.0f} s, Run All in {run_all_seconds:.0f} s; screenshot: {screenshot}")
    finally:
        try:
            driver.save_screenshot(str(screenshot))
        except Exception as error:  # a broken browser must not hide why the test failed
            print(f"no screenshot: {error}")
