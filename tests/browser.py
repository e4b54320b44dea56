"""Pages rendered by the real headless Chromium (Debian's package, installed by `make test`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


def rendered(page: Path, profile: Path) -> str:
    """The DOM of a local page after Chromium loaded it."""
    browser = shutil.which("chromium")
    assert browser, "chromium is missing: `make test` installs Debian's chromium package"
    return subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout


def text_of(dom: str) -> str:
    """The visible text of a DOM, whitespace collapsed."""
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom)).strip()
    return re.sub(r" ([:;,.)])", r"\1", text)  # no space a closing tag left before punctuation


def external_references(html: str) -> list[str]:
    """Links a self-contained page must not have."""
    return re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//[^"' >]*""", html)
