"""The web console of `optout serve` in real headless Chromium (Debian's chromium and
chromium-driver, driven by selenium): log in, the requests list, a plan approved, the request
watched to completion, its report with a verified signature, the catalog, the lineage
picture, and the person's own status page; each page's DOM holds no raw identifier, and each
is photographed (`OPTOUT_SCREENSHOTS=DIR` keeps the pictures, as the README's were made).
Then what a browser enforces: the cookie's flags, CSRF, the login limit, the headers."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from test_server import EMAIL, Server, submit

from optout.server.lineage_svg import lineage_svg


@pytest.fixture()
def browser(tmp_path: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--no-first-run", "--disable-background-networking", "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    os.environ["SE_OFFLINE"] = "true"  # selenium never fetches a driver: Debian's is used
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture()
def server(tmp_path: Path, classifier):
    # pat: a privacy officer who approves plans and audits reports
    s = Server(tmp_path, classifier, extra_principals={"pat": ["approver", "auditor"]})
    yield s
    s.stop()


def _look(driver, name: str, shots: Path) -> str:
    """The page's DOM, checked for the subject's email, and its picture."""
    dom = driver.page_source
    assert EMAIL not in dom, name
    assert "person7" not in dom, name
    driver.save_screenshot(str(shots / f"console-{name}.png"))
    return dom


def _wait(driver, condition, seconds: float = 30) -> None:
    """Until the page the last click asked for has loaded."""
    WebDriverWait(driver, seconds).until(condition)
    WebDriverWait(driver, seconds).until(
        lambda d: d.execute_script("return document.readyState") == "complete")


def _until(driver, url: str, text: str, seconds: float = 90) -> str:
    deadline = time.monotonic() + seconds
    while True:
        driver.get(url)
        if text in driver.page_source:
            return driver.page_source
        assert time.monotonic() < deadline, driver.page_source[-2000:]
        time.sleep(0.5)


def test_privacy_staff_work_a_request_in_the_browser(server: Server, browser,
                                                     tmp_path: Path) -> None:
    shots = Path(os.environ.get("OPTOUT_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    sent = submit(server).json()
    rid = sent["id"]
    server.wait_for(rid, ("awaiting_approval",))
    base = server.base
    # log in as the privacy officer
    browser.get(f"{base}/console/")
    assert browser.current_url.endswith("/console/login")
    browser.find_element(By.ID, "token").send_keys(server.tokens["pat"])
    browser.find_element(By.CSS_SELECTOR, "form[action='/console/login'] button").click()
    _wait(browser, lambda d: d.current_url.endswith("/console/"))
    assert rid in _look(browser, "requests", shots)
    # the request, its plan's dry run, approved
    browser.find_element(By.LINK_TEXT, rid).click()
    _wait(browser, lambda d: d.current_url.endswith(f"/console/requests/{rid}"))
    dom = _look(browser, "plan", shots)
    assert "Plan waiting for approval" in dom and "customers" in dom and "orders" in dom
    browser.find_element(By.ID, "approve").click()
    _wait(browser, lambda d: "approved by pat" in d.page_source)
    dom = _until(browser, f"{base}/console/requests/{rid}", 'id="report-link"')
    assert "applied" in dom
    # the signed report, its signature checked by the server
    browser.find_element(By.ID, "report-link").click()
    _wait(browser, lambda d: d.current_url.endswith("/report"))
    assert browser.find_element(By.ID, "verified").text == "verified"
    _look(browser, "report", shots)
    # the catalog's PII columns, and the lineage picture
    browser.get(f"{base}/console/catalog")
    dom = _look(browser, "catalog", shots)
    assert "EMAIL_ADDRESS" in dom and "customers" in dom
    browser.get(f"{base}/console/lineage")
    _look(browser, "lineage", shots)
    boxes = browser.find_elements(By.CSS_SELECTOR, "#lineage svg g.dataset.pii")
    assert {b.text for b in boxes} >= {"customers (PII)"}
    # the person's own page: the state and the summary, without her email
    browser.delete_all_cookies()
    browser.get(base + sent["status_page"])
    assert browser.find_element(By.ID, "state").text == "complete"
    _look(browser, "status", shots)
    # keyboard: the login form is reachable and usable without a mouse
    browser.get(f"{base}/console/login")
    assert browser.switch_to.active_element.get_attribute("id") == "token"


def test_what_the_console_enforces(server: Server) -> None:
    base = server.base
    client = httpx.Client(base_url=base, follow_redirects=False)
    # a page without a session goes to the login
    assert client.get("/console/").headers["location"] == "/console/login"
    login = client.post("/console/login", data={"token": server.tokens["bob"]})
    assert login.status_code == 303
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    page = client.get("/console/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert "<script" not in page.text
    # a form without the session's CSRF token is refused
    rid = submit(server).json()["id"]
    server.wait_for(rid, ("awaiting_approval",))
    forged = client.post(f"/console/requests/{rid}/approve", data={"csrf": "forged"})
    assert forged.status_code == 403
    assert server.get("bob", f"/v1/plans/{rid}").json()["approved_by"] == []
    # failed logins are limited per client
    other = httpx.Client(base_url=base)
    codes = [other.post("/console/login", data={"token": "wrong"}).status_code
             for _ in range(6)]
    assert codes == [401] * 5 + [429]
    # an unknown status page is a plain 404
    assert client.get("/status/not-a-token").status_code == 404


def test_the_lineage_picture_draws_derived_edges_as_arrows() -> None:
    svg = lineage_svg([("orders", True), ("daily_revenue", False), ("<b>x</b>", False)],
                      [("orders", "daily_revenue")])
    assert svg.count('class="edge"') == 1 and 'marker-end="url(#arrow)"' in svg
    assert 'class="dataset pii"' in svg and "orders (PII)" in svg
    assert "<b>x</b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
    # the derived dataset is drawn right of what it derives from
    assert svg.index("orders (PII)") < svg.index("daily_revenue")
