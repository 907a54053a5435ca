"""The console in a real browser (Debian's Chromium driven by Playwright) inside the Airflow UI.

A user logs in, opens "Gemini tuning", sees a running job appear, watches its curve gain points,
cancels it and sees CANCELLED, opens a finished job and asks the tuned and the base model.
Screenshots of each page go to .test-artifacts/console/ (printed at the end): they are what a
user sees. Every wait is on a condition in the page, with generous deadlines for a loaded CI.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tests.console.conftest import PASSWORD, USER

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = PROJECT_ROOT / ".test-artifacts" / "console"
WAIT_MS = 120_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt pins it)")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium when it runs as root")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def screenshots():
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    yield ARTIFACTS
    print(f"\nconsole screenshots: {ARTIFACTS}")


@pytest.fixture(scope="module")
def jobs(console_airflow):
    """A finished job created by a real DAG run (its labels), and a long one left training."""
    from gemini_tuning.operators.tuning_job import dag_run_labels

    token = console_airflow.token()
    with console_airflow.client(token) as client:
        console_airflow.wait_for("the admin DAG parsed", lambda: client.get(
            "/api/v2/dags/gemini_tuning_admin").status_code == 200 or None)
        run = client.post("/api/v2/dags/gemini_tuning_admin/dagRuns", json={"logical_date": None, "conf": {}})
    run.raise_for_status()
    run_id = run.json()["dag_run_id"]
    finished = console_airflow.create_job("browser-finished", examples=16, epochs=30,
                                          labels=dag_run_labels("gemini_tuning_admin", run_id))
    console_airflow.service.wait_for_state(finished, {"JOB_STATE_SUCCEEDED"}, timeout_s=240)
    running = console_airflow.create_job("browser-running", examples=128, epochs=100)  # minutes: it is cancelled
    return {"finished": finished.rsplit("/", 1)[-1], "running": running.rsplit("/", 1)[-1], "run_id": run_id}


# How many points the loss chart's train line has, as its legend says ("train (12)").
TRAIN_POINTS = """() => {
  const chart = document.querySelector("[data-chart=loss]");
  const found = chart && /train \\((\\d+)\\)/.exec(chart.textContent);
  return found ? Number(found[1]) : 0;
}"""


def point_count(frame, chart: str, series: str) -> int:
    legend = frame.locator(f"[data-chart={chart}] text.legend", has_text=re.compile(rf"^{series} \(")).text_content()
    return int(re.search(r"\((\d+)\)", legend).group(1))


@pytest.fixture
def page(browser, screenshots):
    """A fresh page; a screenshot of what it showed last (last-page.png, useful on a failure) is kept."""
    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    yield page
    page.screenshot(path=screenshots / "last-page.png")
    page.close()


def test_a_user_watches_cancels_and_tries_models_in_the_console(console_airflow, page, screenshots, jobs):
    expect = sync_api.expect
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)

    # Log in with Airflow's own form.
    page.goto(f"{console_airflow.url}/")
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))

    # The console from Airflow's navigation: the running job appears and turns RUNNING.
    page.goto(f"{console_airflow.url}/plugin/gemini-tuning")
    console = page.frame_locator("iframe[title='Gemini tuning']")
    running_row = console.locator(f"tr[data-job='{jobs['running']}']")
    expect(running_row).to_be_visible()
    expect(running_row.locator("[data-state=JOB_STATE_RUNNING]")).to_be_visible()
    finished_row = console.locator(f"tr[data-job='{jobs['finished']}']")
    expect(finished_row.locator("[data-state=JOB_STATE_SUCCEEDED]")).to_be_visible()
    expect(finished_row.get_by_role("link", name=f"gemini_tuning_admin / {jobs['run_id']}")).to_be_visible()
    page.screenshot(path=screenshots / "01-jobs.png")

    # The running job's page: the loss curve gains points without a reload.
    running_row.get_by_role("link", name="browser-running").click()
    expect(console.locator("h1", has_text="browser-running")).to_be_visible()
    frame = next(f for f in page.frames if f.parent_frame and f.url.endswith(f"/jobs/{jobs['running']}"))
    frame.wait_for_function(f"() => ({TRAIN_POINTS})() > 0")
    first = point_count(frame, "loss", "train")
    frame.wait_for_function(f"n => ({TRAIN_POINTS})() > n", arg=first)
    assert point_count(frame, "loss", "train") > first
    assert page.url.endswith(f"/plugin/gemini-tuning/gemini-tuning/jobs/{jobs['running']}")  # a shareable address
    page.screenshot(path=screenshots / "02-running-job.png")

    # Cancel, confirmed in the page: the state goes CANCELLING (or straight on) to CANCELLED, live.
    console.get_by_role("button", name="Cancel job").click()
    expect(console.get_by_role("alertdialog")).to_contain_text("Cancel this tuning job?")
    page.screenshot(path=screenshots / "03-cancel-confirmation.png")
    console.get_by_role("button", name="Yes, cancel the job").click()
    expect(console.locator("h1 [data-state=JOB_STATE_CANCELLED]")).to_be_visible()
    expect(console.get_by_role("button", name="Cancel job")).to_be_hidden()
    page.screenshot(path=screenshots / "04-cancelled-job.png")

    # A finished job: its details, its DAG run, and Try the model with both answers.
    console.get_by_role("link", name="← All jobs").click()
    console.locator(f"tr[data-job='{jobs['finished']}']").get_by_role("link", name="browser-finished").click()
    expect(console.locator("h1 [data-state=JOB_STATE_SUCCEEDED]")).to_be_visible()
    expect(console.get_by_role("link", name="DAG run").first).to_be_visible()
    expect(console.locator("dd", has_text="ADAPTER_SIZE_FOUR")).to_be_visible()
    page.screenshot(path=screenshots / "05-finished-job.png")

    console.locator("textarea[name=systemInstruction]").fill("Classify the message.")
    console.locator("textarea[name=prompt]").fill("message 3: my shipping question")
    console.locator("input[name=maxOutputTokens]").fill("8")
    console.locator("input[name=temperature]").fill("0")
    console.get_by_role("button", name="Send").click()
    for target in ("tuned", "base"):
        answer = console.locator(f".answer:has([data-answer={target}])")
        expect(answer).to_have_attribute("data-done", "true")
        expect(answer.locator(".answer-stats")).to_contain_text("answer")
        expect(answer.locator(".answer-stats")).to_contain_text("total")
        assert answer.locator(".error-text").count() == 0, answer.inner_text()
    console.locator(".answers").scroll_into_view_if_needed()
    page.screenshot(path=screenshots / "06-try-the-model.png")
