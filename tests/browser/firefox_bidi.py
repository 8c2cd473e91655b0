"""A minimal WebDriver BiDi client (aiohttp websocket) for Firefox ESR: start
Firefox headless, install the unpacked extension as a temporary add-on
(`webExtension.install`), drive pages with `script.evaluate`, and set files
on an input with `input.setFiles` (trusted input/change events).

BiDi's `input` module cannot drop files, and the headless clipboard holds only
text natively. Firefox is therefore started with `--remote-allow-system-access`,
which lets this client run script in the browser's own (chrome) window, and
from there drive Firefox's test machinery: `trusted_drop()` and
`put_image_on_clipboard()` below."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import subprocess
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
from harness import free_port

PREFS = {
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.homepage_override.mstone": "ignore",
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "app.update.disabledForTesting": True,
    "browser.aboutwelcome.enabled": False,
    "extensions.update.enabled": False,
    "network.proxy.type": 0,
    # Console output (pages, content scripts, extension) into firefox.log, for diagnosis.
    "devtools.console.stdout.content": True,
    "devtools.console.stdout.chrome": True,
}


# Runs in every content process (Services.ppmm.loadProcessScript, system principal). On a
# 'VeilTest:drop' message for a browsing context of its own it drops the files at the point:
# a drag session for tests, then dragenter, dragover and drop dispatched through the pres shell
# (trusted, hit-tested like real input). The Files are made from the files on disk in the parent
# (File.createFromNsIFile: name, type, date and path as a drop from the desktop carries them) and
# added to a DataTransfer in the page's own realm: items that privileged code adds are hidden from
# the page (principal check).
DROP_PROCESS_SCRIPT = r"""
Services.cpmm.addMessageListener('VeilTest:drop', ({ data }) => {
  const context = BrowsingContext.get(data.browsingContextId);
  if (!context || !context.docShell) return; // another process's page
  const reply = (answer) =>
    Services.cpmm.sendAsyncMessage('VeilTest:dropped', { request: data.request, ...answer });
  try {
    const win = context.window;
    const transfer = new (Cu.waiveXrays(win).DataTransfer)();
    for (const file of data.files) Cu.waiveXrays(transfer).items.add(Cu.cloneInto(file, win));
    const dragService = Cc['@mozilla.org/widget/dragservice;1'].getService(Ci.nsIDragService);
    dragService.startDragSessionForTests(win, Ci.nsIDragService.DRAGDROP_ACTION_COPY);
    const session = win.windowUtils.dragSession;
    session.dataTransfer = transfer;
    const target = win.document.elementFromPoint(data.x, data.y);
    const cancelled = {};
    try {
      for (const type of ['dragenter', 'dragover', 'drop']) {
        const event = new win.DragEvent(type, {
          bubbles: true, cancelable: true, composed: true,
          clientX: data.x, clientY: data.y,
          screenX: win.mozInnerScreenX + data.x, screenY: win.mozInnerScreenY + data.y,
          dataTransfer: transfer,
        });
        cancelled[type] = win.windowUtils.dispatchDOMEventViaPresShellForTesting(target, event);
      }
    } finally {
      session.endDragSession(true, 0);
    }
    reply({ result: { target: target.localName + '#' + target.id, cancelled } });
  } catch (error) {
    reply({ error: String(error) });
  }
});
"""


# Runs in every content process, as DROP_PROCESS_SCRIPT does. On a 'VeilTest:contentScriptEval'
# message for a browsing context of its own it evaluates an expression in an extension's content
# script sandbox of that page (the realm the extension's content scripts run in, with their
# `browser`/`chrome` APIs), awaits it and answers with its value as a string. WebDriver BiDi
# lists no content script realms, and what a content script may ask the background is the point
# of some tests (a page that compromised its renderer speaks with the content script's voice).
CONTENT_SCRIPT_PROCESS_SCRIPT = r"""
Services.cpmm.addMessageListener('VeilTest:contentScriptEval', async ({ data }) => {
  const context = BrowsingContext.get(data.browsingContextId);
  if (!context || !context.docShell) return; // another process's page
  const reply = (answer) =>
    Services.cpmm.sendAsyncMessage(
      'VeilTest:contentScriptEvaluated', { request: data.request, ...answer });
  try {
    const { ExtensionContent } = ChromeUtils.importESModule(
      'resource://gre/modules/ExtensionContent.sys.mjs');
    const scripts = ExtensionContent.getContextByExtensionId(data.extensionId, context.window);
    if (!scripts || !scripts.sandbox) throw new Error('no content script of ' + data.extensionId);
    const value = await Cu.evalInSandbox(data.expression, scripts.sandbox);
    reply({ result: String(value) });
  } catch (error) {
    reply({ error: String(error) });
  }
});
"""


class BiDiError(Exception):
    pass


class Firefox:
    def __init__(self, binary: str, profile: Path) -> None:
        self.binary = binary
        self.profile = profile
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.events: list[dict[str, Any]] = []
        self._chrome: str | None = None
        self._drop_script_loaded = False
        self._content_script_eval_loaded = False

    async def start(self) -> Firefox:
        self.profile.mkdir(parents=True, exist_ok=True)
        lines = [f'user_pref("{key}", {json.dumps(value)});' for key, value in PREFS.items()]
        (self.profile / "user.js").write_text("\n".join(lines) + "\n")
        log = (self.profile / "firefox.log").open("wb")
        self.process = subprocess.Popen(
            [
                self.binary,
                "--headless",
                "--no-remote",
                "--profile",
                str(self.profile),
                "--remote-debugging-port",
                str(self.port),
                # Script in the browser's chrome window (trusted drops, the clipboard): only
                # this client, on its free loopback port, can ask for it.
                "--remote-allow-system-access",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        self._session = aiohttp.ClientSession()
        while True:
            try:
                self._ws = await self._session.ws_connect(
                    f"ws://127.0.0.1:{self.port}/session", max_msg_size=0
                )
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("Firefox did not open its WebDriver BiDi port") from None
                await asyncio.sleep(0.3)
        self._reader = asyncio.create_task(self._read())
        # A click on a file input must not leave a native file picker open: BiDi sets the files.
        # A confirm() (Veil's Forget) stays open for the test to answer, as the person would;
        # by default BiDi would dismiss it at once.
        prompts = {"file": "ignore", "confirm": "ignore"}
        capabilities = {"acceptInsecureCerts": True, "unhandledPromptBehavior": prompts}
        await self.send("session.new", {"capabilities": {"alwaysMatch": capabilities}})
        return self

    async def _read(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            data = message.json()
            if "method" in data and "id" not in data:
                self.events.append(data)
                continue
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)

    async def send(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        assert self._ws is not None
        command_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._ws.send_json({"id": command_id, "method": method, "params": params})
        answer = await asyncio.wait_for(future, 120)
        if answer.get("type") == "error":
            raise BiDiError(f"{method}: {answer.get('error')}: {answer.get('message')}")
        return dict(answer["result"])

    async def evaluate(self, context: str, expression: str) -> Any:
        result = await self.send(
            "script.evaluate",
            {"expression": expression, "target": {"context": context}, "awaitPromise": True},
        )
        if result.get("type") == "exception":
            raise BiDiError(str(result["exceptionDetails"].get("text")))
        return result["result"]

    async def value(self, context: str, expression: str) -> Any:
        return (await self.evaluate(context, expression)).get("value")

    async def contexts(self) -> list[dict[str, Any]]:
        return list((await self.send("browsingContext.getTree", {}))["contexts"])

    async def wait_for_context(self, pattern: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for context in await self.contexts():
                if re.search(pattern, context["url"]):
                    return context
            if time.monotonic() > deadline:
                raise AssertionError(f"no tab matching {pattern}")
            await asyncio.sleep(0.2)

    async def wait_until(self, context: str, expression: str, timeout: float = 30) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.value(context, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            await asyncio.sleep(0.2)

    async def subscribe(self, *events: str) -> None:
        await self.send("session.subscribe", {"events": list(events)})

    async def wait_for_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        """The first event of this kind not taken yet (subscribe() first)."""
        deadline = time.monotonic() + timeout
        while True:
            for index, event in enumerate(self.events):
                if event["method"] == method:
                    return dict(self.events.pop(index)["params"])
            if time.monotonic() > deadline:
                raise AssertionError(f"no {method} event within {timeout:.0f} s")
            await asyncio.sleep(0.05)

    async def navigate(self, context: str, url: str) -> None:
        await self.send(
            "browsingContext.navigate", {"context": context, "url": url, "wait": "complete"}
        )

    async def new_tab(self) -> str:
        return str((await self.send("browsingContext.create", {"type": "tab"}))["context"])

    async def set_files(self, context: str, element_expression: str, files: list[Path]) -> None:
        element = await self.evaluate(context, element_expression)
        await self.send(
            "input.setFiles",
            {
                "context": context,
                "element": {"sharedId": element["sharedId"]},
                "files": [str(f) for f in files],
            },
        )

    async def set_files_on(self, context: str, shared_id: str, files: list[Path]) -> None:
        """input.setFiles on an element known by its shared id (from input.fileDialogOpened)."""
        await self.send(
            "input.setFiles",
            {
                "context": context,
                "element": {"sharedId": shared_id},
                "files": [str(f) for f in files],
            },
        )

    async def key(self, context: str, key: str, *held: str) -> None:
        """A trusted key press (input.performActions), with modifier keys held."""
        keys = [{"type": "keyDown", "value": k} for k in (*held, key)]
        keys += [{"type": "keyUp", "value": k} for k in (key, *reversed(held))]
        actions = [{"type": "key", "id": "keyboard", "actions": keys}]
        await self.send("input.performActions", {"context": context, "actions": actions})

    async def click(self, context: str, element_expression: str, dx: int = 0) -> None:
        """A trusted mouse click in the middle of an element, or dx pixels right of it."""
        element = await self.evaluate(context, element_expression)
        await self.click_node(context, element["sharedId"], dx)

    async def click_node(self, context: str, shared_id: str, dx: int = 0) -> None:
        """A trusted mouse click in the middle of an element known by its shared id."""
        origin = {"type": "element", "element": {"sharedId": shared_id}}
        pointer = [
            {"type": "pointerMove", "x": dx, "y": 0, "origin": origin},
            {"type": "pointerDown", "button": 0},
            {"type": "pointerUp", "button": 0},
        ]
        mouse = {"type": "pointer", "id": "mouse", "actions": pointer}
        await self.send("input.performActions", {"context": context, "actions": [mouse]})

    async def chrome_window(self) -> str:
        """The browser's own window (chrome scope, system principal; needs
        --remote-allow-system-access)."""
        if self._chrome is None:
            tree = await self.send("browsingContext.getTree", {"moz:scope": "chrome"})
            [browser] = [
                c for c in tree["contexts"] if c["url"] == "chrome://browser/content/browser.xhtml"
            ]
            self._chrome = str(browser["context"])
        return self._chrome

    async def chrome_value(self, expression: str) -> Any:
        return await self.value(await self.chrome_window(), expression)

    async def trusted_drop(self, context: str, element_expression: str, files: list[Path]) -> Any:
        """A trusted (isTrusted) drop of files onto the middle of an element of a top-level page.

        Dragenter, dragover and drop go through the page's pres shell as Firefox's own tests
        send them (`nsIDOMWindowUtils.dispatchDOMEventViaPresShellForTesting`, within a drag
        session from `nsIDragService.startDragSessionForTests`), from a process script in the
        page's content process. The parent process of headless Firefox has no drag service, so
        a drag from the operating system (the mock drag service driving the widget) cannot be
        simulated; the page's target is found by hit testing at the point, as for a real drop.
        Returns what the process script reports (target, whether each event was cancelled)."""
        if not self._drop_script_loaded:
            script = "data:," + urllib.parse.quote(DROP_PROCESS_SCRIPT)
            await self.chrome_value(
                f"Services.ppmm.loadProcessScript({json.dumps(script)}, true), 1"
            )
            self._drop_script_loaded = True
        point = await self.value(
            context,
            f"""(() => {{
                const box = ({element_expression}).getBoundingClientRect();
                return JSON.stringify([box.x + box.width / 2, box.y + box.height / 2]);
            }})()""",
        )
        x, y = json.loads(point)
        answer = await self.chrome_value(
            f"""(async () => {{
                const {{ NavigableManager }} = ChromeUtils.importESModule(
                    'chrome://remote/content/shared/NavigableManager.sys.mjs');
                const context = NavigableManager.getBrowsingContextById({json.dumps(context)});
                if (!context) throw new Error('no browsing context {context}');
                const files = [];
                for (const path of {json.dumps([str(f) for f in files])}) {{
                    const file = Cc['@mozilla.org/file/local;1'].createInstance(Ci.nsIFile);
                    file.initWithPath(path);
                    files.push(await File.createFromNsIFile(file));
                }}
                const request = Services.uuid.generateUUID().toString();
                return await new Promise((resolve, reject) => {{
                    const timer = setTimeout(
                        () => reject(new Error('no answer from the drop')), 15000);
                    const listener = {{
                        receiveMessage({{ data }}) {{
                            if (data.request !== request) return;
                            clearTimeout(timer);
                            Services.ppmm.removeMessageListener('VeilTest:dropped', listener);
                            if (data.error) reject(new Error(data.error));
                            else resolve(JSON.stringify(data.result));
                        }},
                    }};
                    Services.ppmm.addMessageListener('VeilTest:dropped', listener);
                    Services.ppmm.broadcastAsyncMessage('VeilTest:drop', {{
                        request, browsingContextId: context.id, x: {x}, y: {y}, files,
                    }});
                }});
            }})()"""
        )
        return json.loads(answer)

    async def content_script_value(self, context: str, extension_id: str, expression: str) -> str:
        """Evaluates `expression` (awaited) in the content script realm that the extension
        `extension_id` has in the page of `context`; returns its value as a string.
        Runs through CONTENT_SCRIPT_PROCESS_SCRIPT (needs --remote-allow-system-access)."""
        if not self._content_script_eval_loaded:
            script = "data:," + urllib.parse.quote(CONTENT_SCRIPT_PROCESS_SCRIPT)
            await self.chrome_value(
                f"Services.ppmm.loadProcessScript({json.dumps(script)}, true), 1"
            )
            self._content_script_eval_loaded = True
        answer = await self.chrome_value(
            f"""(async () => {{
                const {{ NavigableManager }} = ChromeUtils.importESModule(
                    'chrome://remote/content/shared/NavigableManager.sys.mjs');
                const context = NavigableManager.getBrowsingContextById({json.dumps(context)});
                if (!context) throw new Error('no browsing context {context}');
                const request = Services.uuid.generateUUID().toString();
                return await new Promise((resolve, reject) => {{
                    const timer = setTimeout(
                        () => reject(new Error('no answer from the content script')), 15000);
                    const listener = {{
                        receiveMessage({{ data }}) {{
                            if (data.request !== request) return;
                            clearTimeout(timer);
                            Services.ppmm.removeMessageListener(
                                'VeilTest:contentScriptEvaluated', listener);
                            if (data.error) reject(new Error(data.error));
                            else resolve(data.result);
                        }},
                    }};
                    Services.ppmm.addMessageListener('VeilTest:contentScriptEvaluated', listener);
                    Services.ppmm.broadcastAsyncMessage('VeilTest:contentScriptEval', {{
                        request,
                        browsingContextId: context.id,
                        extensionId: {json.dumps(extension_id)},
                        expression: {json.dumps(expression)},
                    }});
                }});
            }})()"""
        )
        return str(answer)

    async def put_image_on_clipboard(self, image: Path, mime: str = "image/png") -> None:
        """Puts an image's bytes on the clipboard as an image (as an image viewer's Copy does),
        for a real Ctrl+V to paste. The headless clipboard keeps only text and HTML natively,
        but Firefox also keeps the data it was given as a cache; with
        widget.clipboard.use-cached-data.enabled it answers reads from that cache."""
        await self.chrome_value(
            f"""(() => {{
                Services.prefs.setBoolPref('widget.clipboard.use-cached-data.enabled', true);
                const file = Cc['@mozilla.org/file/local;1'].createInstance(Ci.nsIFile);
                file.initWithPath({json.dumps(str(image))});
                const stream = Cc['@mozilla.org/network/file-input-stream;1']
                    .createInstance(Ci.nsIFileInputStream);
                stream.init(file, -1, -1, 0);
                const transferable = Cc['@mozilla.org/widget/transferable;1']
                    .createInstance(Ci.nsITransferable);
                transferable.init(null);
                transferable.addDataFlavor({json.dumps(mime)});
                transferable.setTransferData({json.dumps(mime)}, stream);
                Services.clipboard.setData(transferable, null, Ci.nsIClipboard.kGlobalClipboard);
                if (!Services.clipboard.hasDataMatchingFlavors(
                        [{json.dumps(mime)}], Ci.nsIClipboard.kGlobalClipboard)) {{
                    throw new Error('the clipboard does not hold the image');
                }}
                return 1;
            }})()"""
        )

    async def _veil_prompt_call(
        self, context: str, function: str, *args: str, role: str = "alertdialog"
    ) -> Any:
        """Calls `function(dialog, ...args)` on Veil's prompt (or, with role "status", on its
        progress indicator), or returns None when none is open.
        The prompt is in a closed shadow root on a child of <body> or <html>: page scripts
        cannot reach it, but BiDi serialises closed shadow roots when asked to
        (includeShadowTree: "all"), and a page-realm function may then be given the root."""
        hosts = await self.send(
            "script.evaluate",
            {
                "expression": "[...document.documentElement.children,"
                " ...(document.body ? document.body.children : [])]",
                "target": {"context": context},
                "awaitPromise": False,
                "serializationOptions": {"maxDomDepth": 0, "includeShadowTree": "all"},
            },
        )
        for host in hosts["result"]["value"]:
            root = (host.get("value") or {}).get("shadowRoot")
            if not root or root["value"].get("mode") != "closed":
                continue
            result = await self.send(
                "script.callFunction",
                {
                    "functionDeclaration": f"""(root, ...args) => {{
                        const dialog = root.querySelector('[role={role}]');
                        if (!dialog || !dialog.querySelector('[data-veil-choice]')) return null;
                        return ({function})(dialog, ...args);
                    }}""",
                    "arguments": [{"sharedId": root["sharedId"]}]
                    + [{"type": "string", "value": arg} for arg in args],
                    "target": {"context": context},
                    "awaitPromise": False,
                },
            )
            if result.get("type") == "exception":
                raise BiDiError(str(result["exceptionDetails"].get("text")))
            if result["result"]["type"] != "null":
                return result["result"]
        return None

    async def veil_prompt_text(self, context: str) -> str | None:
        """The text of Veil's failure prompt in this page, or None when none is open."""
        found = await self._veil_prompt_call(context, "(dialog) => dialog.textContent")
        return None if found is None else str(found["value"])

    async def answer_veil_prompt(self, context: str, choice: str) -> None:
        """Clicks a button of Veil's failure prompt ('cancel', 'original', 'retry') with a
        trusted mouse click, as the person would."""
        button = await self._veil_prompt_call(
            context,
            '(dialog, choice) => dialog.querySelector(`[data-veil-choice="${choice}"]`)',
            choice,
        )
        assert button is not None, f"no {choice!r} button: Veil's prompt is not open"
        await self.click_node(context, button["sharedId"])

    async def veil_indicator_text(self, context: str) -> str | None:
        """The text of Veil's "protecting your ..." indicator (with its Cancel), or None."""
        found = await self._veil_prompt_call(context, "(badge) => badge.textContent", role="status")
        return None if found is None else str(found["value"])

    async def cancel_veil_indicator(self, context: str) -> None:
        """Clicks the indicator's Cancel with a trusted mouse click, as the person would."""
        button = await self._veil_prompt_call(
            context, "(badge) => badge.querySelector('[data-veil-choice=stop]')", role="status"
        )
        assert button is not None, "no Cancel: Veil's indicator is not showing"
        await self.click_node(context, button["sharedId"])

    async def stop(self) -> None:
        try:
            if self._ws is not None:
                await asyncio.wait_for(self.send("session.end", {}), 10)
        except Exception:
            pass
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


async def submit_pairing_code(firefox: Firefox, tab: str, code: str) -> str:
    """Enter `code` on Veil's pairing page open in `tab`, submit it, return the result text."""
    await firefox.value(
        tab,
        f"""document.getElementById('code').value = {json.dumps(code)};
            document.querySelector('#pair-form button[type=submit]').click();""",
    )
    return str(
        await firefox.wait_until(
            tab, "(e => e.className && e.textContent)(document.getElementById('pair-result'))"
        )
    )
