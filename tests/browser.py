"""A small headless-Chromium driver over the Chrome DevTools Protocol (CDP), with aiohttp only.

    async with Chromium.launch() as browser:
        page = await browser.new_page(width=1280, height=800)
        await page.goto(path.as_uri())
        title = await page.evaluate("document.title")

Chromium listens on 127.0.0.1 (port chosen by the OS) with a throw-away profile; it is started in
its own process group and that group is always stopped on exit. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
Predicate = Callable[[dict[str, Any]], bool]
#: Events kept in `Chromium.events`: what a page reports as going wrong.
RECORDED = frozenset({"Runtime.exceptionThrown", "Runtime.consoleAPICalled", "Log.entryAdded"})
START_TIMEOUT_S = 20.0
CALL_TIMEOUT_S = 20.0


def artifacts_folder(basetemp: Path) -> Path:
    """Where browser tests keep screenshots for people to look at: $BATCHGEN_ARTIFACTS (for CI to
    collect), else `artifacts/` in pytest's temporary directory `basetemp`; made if missing."""
    folder = Path(os.environ.get("BATCHGEN_ARTIFACTS") or basetemp / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def find_chromium() -> str | None:
    """$CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH; None when there is none."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return shutil.which(explicit)
    return shutil.which("chromium") or shutil.which("chromium-browser")


_LIVE_GROUPS: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort (an interrupted test run): kill the process groups of Chromiums still running."""
    for pgid in list(_LIVE_GROUPS):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


class CDPError(RuntimeError):
    """Chromium answered a command with an error, or a page script threw."""


class Chromium:
    """One headless Chromium process and its browser-level DevTools connection."""

    def __init__(self, proc: asyncio.subprocess.Process, profile: str) -> None:
        self.proc = proc
        self.profile = profile
        self.stderr_tail: list[str] = []
        self.events: list[tuple[str, str | None, dict[str, Any]]] = []  # RECORDED events, in order
        self._ids = itertools.count(1)
        self._calls: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, str | None, Predicate | None, asyncio.Future[dict[str, Any]]]] = []
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, binary: str | None = None) -> AsyncIterator[Chromium]:
        """Start Chromium, connect to it, and stop it (and its children) however the block ends."""
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("no chromium binary (install Debian's `chromium` or set $CHROMIUM)")
        profile = tempfile.mkdtemp(prefix="batchgen-chromium-")
        proc = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        _LIVE_GROUPS.add(proc.pid)
        browser = cls(proc, profile)
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                url = await browser._devtools_url()
            await browser._connect(url)
            yield browser
        finally:
            await browser._stop()

    async def _devtools_url(self) -> str:
        assert self.proc.stderr is not None
        while True:
            line = (await self.proc.stderr.readline()).decode(errors="replace")
            if not line:
                raise CDPError("chromium exited before it listened: " + "".join(self.stderr_tail[-20:]))
            self.stderr_tail.append(line)
            if line.startswith("DevTools listening on "):
                url = line.removeprefix("DevTools listening on ").strip()
                host = urlsplit(url).hostname
                if host not in ("127.0.0.1", "localhost", "::1"):
                    raise CDPError(f"chromium listens on {host}, not on loopback")
                return url

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr_tail = [*self.stderr_tail[-50:], line.decode(errors="replace")]

    async def _connect(self, url: str) -> None:
        self._tasks.append(asyncio.create_task(self._drain_stderr()))
        self._http = aiohttp.ClientSession()
        self._ws = await self._http.ws_connect(url, max_msg_size=0, autoping=True)
        self._tasks.append(asyncio.create_task(self._read()))

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "id" in data:
                    future = self._calls.pop(data["id"], None)
                    if future is not None and not future.done():
                        future.set_result(data)
                    continue
                params = data.get("params", {})
                if data.get("method") in RECORDED:
                    self.events.append((data["method"], data.get("sessionId"), params))
                for waiter in list(self._waiters):
                    method, session, predicate, future = waiter
                    if future.done():
                        self._waiters.remove(waiter)
                    elif (
                        data.get("method") == method
                        and session in (None, data.get("sessionId"))
                        and (predicate is None or predicate(params))
                    ):
                        self._waiters.remove(waiter)
                        future.set_result(params)
        finally:
            error = CDPError("the DevTools connection closed")
            for future in [*self._calls.values(), *(w[3] for w in self._waiters)]:
                if not future.done():
                    future.set_exception(error)
            self._calls.clear()
            self._waiters.clear()

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        limit_s: float = CALL_TIMEOUT_S,
    ) -> dict[str, Any]:
        """One CDP command; returns its result, raises CDPError on an error answer."""
        assert self._ws is not None
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._calls[call_id] = future
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        try:
            await self._ws.send_str(json.dumps(message))
            async with asyncio.timeout(limit_s):
                answer = await future
        finally:
            self._calls.pop(call_id, None)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error']}")
        result: dict[str, Any] = answer.get("result", {})
        return result

    def expect(
        self, method: str, session_id: str | None = None, predicate: Predicate | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """A future for the next `method` event whose params satisfy `predicate` (register it before
        causing the event; await it under a timeout)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, session_id, predicate, future))
        return future

    async def new_page(self, *, width: int = 1280, height: int = 800, mobile: bool = False) -> Page:
        """A fresh tab of `width` x `height` CSS pixels, attached in flat mode (`mobile`: as a phone
        shows a page, with its viewport meta tag honoured and touch events)."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = Page(self, attached["sessionId"])
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        await page.send("Log.enable")
        await page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile},
        )
        if mobile:
            await page.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
        return page

    async def _stop(self) -> None:
        with contextlib.suppress(Exception):
            if self._ws is not None and not self._ws.closed:
                await self.send("Browser.close", limit_s=3)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._http is not None:
            await self._http.close()
        try:
            async with asyncio.timeout(5):
                await self.proc.wait()
        except TimeoutError:
            pass
        with contextlib.suppress(ProcessLookupError):  # the group we started: helpers, renderers
            os.killpg(self.proc.pid, signal.SIGKILL)
        _LIVE_GROUPS.discard(self.proc.pid)
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab, addressed by its flat-mode session id."""

    def __init__(self, browser: Chromium, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    async def send(
        self, method: str, params: dict[str, Any] | None = None, limit_s: float = CALL_TIMEOUT_S
    ) -> dict[str, Any]:
        return await self.browser.send(method, params, session_id=self.session_id, limit_s=limit_s)

    async def goto(self, url: str, limit_s: float = CALL_TIMEOUT_S) -> None:
        """Navigate and wait for the load event."""
        loaded = self.browser.expect("Page.loadEventFired", self.session_id)
        result = await self.send("Page.navigate", {"url": url})
        if result.get("errorText"):
            loaded.cancel()
            raise CDPError(f"cannot open {url}: {result['errorText']}")
        async with asyncio.timeout(limit_s):
            await loaded

    async def evaluate(self, expression: str, limit_s: float = CALL_TIMEOUT_S) -> Any:
        """The JSON value of `expression` (awaited if it is a promise); a thrown error raises CDPError."""
        result = await self.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "awaitPromise": True,
                "returnByValue": True,
                "userGesture": True,
            },
            limit_s=limit_s,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"page script failed: {text}")
        return result.get("result", {}).get("value")

    async def wait_for(self, condition: str, limit_s: float = 10.0) -> Any:
        """Wait, inside the page, until the JS expression `condition` is truthy; return its value."""
        script = f"""new Promise((resolve, reject) => {{
            const deadline = performance.now() + {int(limit_s * 1000)};
            const poll = () => {{
                let value;
                try {{ value = ({condition}); }} catch (e) {{ reject(e); return; }}
                if (value) resolve(value);
                else if (performance.now() > deadline) reject(new Error("timed out waiting for: " +
                    {json.dumps(condition)}));
                else setTimeout(poll, 25);
            }};
            poll();
        }})"""
        return await self.evaluate(script, limit_s=limit_s + 5)

    def errors(self) -> list[str]:
        """Uncaught exceptions, console.error calls and error log entries (CSP refusals, failed
        loads) this page reported so far."""
        found = []
        for method, session, params in self.browser.events:
            if session != self.session_id:
                continue
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                found.append(details.get("exception", {}).get("description") or details.get("text", "?"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                found.append(
                    " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                )
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                found.append(params["entry"].get("text", "?"))
        return found

    async def screenshot(self, path: Path) -> Path:
        """Save a PNG of the viewport."""
        shot = await self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
