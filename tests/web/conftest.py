"""Browser fixtures for the page tests: Debian's chromium driven by playwright.

`browser` is function-scoped (pytest-asyncio runs each test on its own event
loop, and a playwright connection belongs to the loop that started it).
`web` bundles a real livehub (`memory_server`) with the browser, opens pages in
separate contexts (separate localStorage), joins a room's watch page as a
named viewer, and records every page's console errors, uncaught exceptions and
CSP violations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    async_playwright,
    expect,
)
from support import Server

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
HAVE_CHROMIUM = Path(CHROMIUM).exists()
WAIT_MS = 10_000

# Runs before any page script (injected over CDP, so the page's CSP does not apply).
RECORD_CSP = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not HAVE_CHROMIUM:
        pytest.fail(f"{CHROMIUM} is not installed: run scripts/install-system")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            await b.close()


@dataclass
class PageLog:
    name: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)


@dataclass
class Web:
    server: Server
    browser: Browser
    contexts: list[BrowserContext] = field(default_factory=list)
    logs: dict[Page, PageLog] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.server.url + path

    async def page(self, name: str, **context_options: Any) -> Page:
        """A page in a fresh browser context (its own localStorage), English unless told."""
        context_options.setdefault("locale", "en-US")
        context = await self.browser.new_context(**context_options)
        self.contexts.append(context)
        await context.add_init_script(RECORD_CSP)
        page = await context.new_page()
        log = PageLog(name)
        self.logs[page] = log

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                log.console_errors.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: log.page_errors.append(str(exc)))
        return page

    async def answer_name(self, page: Page, room: str, name: str) -> None:
        """Open the watch page of ``room`` and answer its name prompt."""
        await page.goto(self.url(f"/watch/{room}"))
        await expect(page.locator("#name-dialog")).to_be_visible(timeout=WAIT_MS)
        await page.locator("#name-input").fill(name)
        await page.locator("#name-submit").click()
        await expect(page.locator("#name-dialog")).to_be_hidden(timeout=WAIT_MS)

    async def join(self, page: Page, room: str, name: str) -> str:
        """``answer_name``, then wait for the welcome; the viewer id."""
        await self.answer_name(page, room, name)
        handle = await page.wait_for_function(
            "() => window.livehub && window.livehub.client && window.livehub.client.you"
            " && window.livehub.client.you.viewer_id",
            timeout=WAIT_MS,
        )
        return str(await handle.json_value())

    async def csp_violations(self, page: Page) -> list[str]:
        return list(await page.evaluate("window.__cspViolations || []"))

    async def check_clean(self, *, allow_console: tuple[str, ...] = ()) -> None:
        """No uncaught exception, CSP violation or unexpected console error on any page."""
        problems: list[str] = []
        for page, log in self.logs.items():
            problems += [f"{log.name}: page error: {e}" for e in log.page_errors]
            problems += [
                f"{log.name}: console error: {e}"
                for e in log.console_errors
                if not any(a in e for a in allow_console)
            ]
            if not page.is_closed():
                problems += [f"{log.name}: CSP: {v}" for v in await self.csp_violations(page)]
        assert not problems, "\n".join(problems)

    async def close(self) -> None:
        for context in self.contexts:
            await context.close()
        self.contexts.clear()


@pytest.fixture
async def web(memory_server: Server, browser: Browser) -> AsyncIterator[Web]:
    w = Web(memory_server, browser)
    try:
        yield w
    finally:
        # close the pages before the server stops, so no socket is left reconnecting
        await w.close()
    errors = [f"{log.name}: {e}" for log in w.logs.values() for e in log.page_errors]
    assert not errors, "uncaught page errors:\n" + "\n".join(errors)
