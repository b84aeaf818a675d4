// Drives a real VS Code (code-server) in Debian's Chromium through playwright-core.
//
//   node e2e/driver.mjs '{"url": ..., "file": "calc.py", "edits": [...], ...}'
//
// Open the workbench, wait for ouzel's status bar item to report a running server, open the
// file; then for each edit `{line, type, accept: "tab" | "word", screenshot?}`: cursor to
// the end of `line` (1-based), type `type`, wait for ghost text, screenshot it, and accept
// it whole (Tab) or its next word (Ctrl+Right, then Escape for the rest). Finally save.
// Then run `commands` from the palette, the AI `codeActions` (select lines, pick the action in
// the Ctrl+. menu, type the instruction, tick hunks in the Refactor Preview, apply, save) and
// the `chat` view steps (ask, wait for the streamed answer, open a cited file; or resume a
// past conversation from the history), and the `agent` steps (a turn from the chat view's
// Agent mode or the "Ask the Agent…" command, its edits reviewed in the Refactor Preview, the
// files read from disk, then "Undo agent turn"). With `expectServerFailure`, wait instead for the
// status bar and a notification to report a server that cannot start. Every wait is on a condition with a time limit; progress and results are JSON lines on
// stdout. tests/e2e/test_vscode.py starts code-server and checks the file on disk and the
// server's telemetry.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(process.argv[2]);
const timeout = config.timeoutMs ?? 60000;

function emit(event, data = {}) {
    process.stdout.write(JSON.stringify({ event, time: Date.now(), ...data }) + '\n');
}

async function statusText(page) {
    const item = page.locator('.statusbar-item', { hasText: 'ouzel' }).first();
    return (await item.count()) > 0 ? ((await item.innerText()) ?? '') : '';
}

async function goToLine(page, quickInput, line) {
    await page.keyboard.press('Control+G');
    await quickInput.waitFor();
    await page.keyboard.type(String(line));
    await page.keyboard.press('Enter');
    await quickInput.waitFor({ state: 'hidden' });
}

async function paletteCommand(page, quickInput, title) {
    await page.keyboard.press('Control+Shift+P');
    await quickInput.waitFor();
    await page.keyboard.type(title);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor();
    await page.keyboard.press('Enter');
}

// VS Code's Refactor Preview: record its rows (one per hunk) and whether they start ticked,
// tick exactly `step.accept` (row indices or "all"), screenshot, Apply.
async function reviewPreview(page, index, step) {
    const panel = page.locator('.bulk-edit-panel[data-state=data]');
    await panel.waitFor();
    const hunks = panel.locator('.monaco-list-row:has(.monaco-tl-contents.textedit)');
    await hunks.first().waitFor();
    const checkbox = (row) => row.locator('.edit-checkbox').first();
    const ticked = async () => Promise.all((await hunks.all()).map((row) => checkbox(row).isChecked()));
    const before = await ticked();
    const texts = await hunks.allInnerTexts();
    const titles = await Promise.all((await hunks.all()).map(async (row) => (await row.getAttribute('aria-label')) ?? ''));
    emit('preview', { index, rows: texts, labels: titles, tickedBefore: before });
    const wanted = step.accept === 'all' ? texts.map((_, i) => i) : step.accept;
    for (const [position, row] of (await hunks.all()).entries()) {
        if (wanted.includes(position) !== (await checkbox(row).isChecked())) {
            await checkbox(row).click();
        }
    }
    const after = await ticked();
    emit('ticked', { index, ticked: after });
    if (step.screenshotPreview) {
        await page.screenshot({ path: step.screenshotPreview });
    }
    await panel.locator('.buttons .monaco-button', { hasText: 'Apply' }).first().click();
    await page.locator('.bulk-edit-panel[data-state=data]').waitFor({ state: 'hidden' });
}

// One AI code action: `{fromLine, toLine, title, instruction?, accept: [row indices] | "all",
// screenshotMenu?, screenshotProgress?, screenshotPreview?, screenshotApplied?}` (1-based
// lines, inclusive). The Refactor Preview lists one row per hunk, all unticked (they need
// confirmation); the listed rows are ticked, then Apply, then Ctrl+S.
async function runCodeAction(page, quickInput, index, step) {
    const editor = page.locator('.editor-instance .monaco-editor').first();
    await editor.locator('.view-lines').click();
    await goToLine(page, quickInput, step.fromLine);
    await page.keyboard.press('Home');
    await page.keyboard.press('Home'); // past the indentation to column 1
    for (let line = step.fromLine; line <= step.toLine; line += 1) {
        await page.keyboard.press('Shift+ArrowDown');
    }
    // VS Code drops a code-action answer that comes after it cancelled the request (the first
    // one of a freshly started server can be that slow here): ask again, a bounded few times.
    const item = page.locator('.action-widget .monaco-list-row', { hasText: step.title }).first();
    for (let attempt = 1; ; attempt += 1) {
        await page.keyboard.press('Control+.');
        try {
            await item.waitFor({ timeout: 15000 });
            emit('codeActionMenuShown', { index, attempt });
            break;
        } catch (error) {
            if (attempt >= 5) {
                throw new Error(`the Ctrl+. menu never listed "${step.title}" (5 attempts): ${error}`);
            }
            await page.keyboard.press('Escape');
        }
    }
    const menu = await page.locator('.action-widget .monaco-list-row').allInnerTexts();
    emit('codeActionMenu', { index, items: menu });
    if (step.screenshotMenu) {
        await page.screenshot({ path: step.screenshotMenu });
    }
    // The action widget runs the focused row on Enter (a mouse click there is not reliable).
    const rows = page.locator('.action-widget .monaco-list-row.action');
    for (let tries = 0; tries < 20; tries += 1) {
        const focused = page.locator('.action-widget .monaco-list-row.focused');
        if ((await focused.count()) > 0 && (await focused.first().innerText()).includes(step.title)) {
            break;
        }
        await page.keyboard.press('ArrowDown');
    }
    emit('codeActionChosen', { index, rows: await rows.count() });
    await page.keyboard.press('Enter');
    if (step.instruction !== undefined) {
        await quickInput.waitFor();
        await page.keyboard.type(step.instruction);
        await page.keyboard.press('Enter');
    }
    // Our cancellable progress notification, then VS Code's Refactor Preview.
    const toast = page.locator('.notifications-toasts .notification-toast', { hasText: 'ouzel' }).first();
    await toast.waitFor();
    emit('codeActionProgress', {
        index,
        text: await toast.innerText(),
        cancellable: (await toast.locator('.monaco-button', { hasText: 'Cancel' }).count()) > 0,
    });
    if (step.screenshotProgress) {
        await page.screenshot({ path: step.screenshotProgress });
    }
    await reviewPreview(page, index, step);
    // The outcome notification of ouzel.codeAction.run.
    const outcome = page.locator('.notifications-toasts .notification-list-item-message', { hasText: /applied|proposed|discarded|refused/ }).first();
    await outcome.waitFor();
    emit('codeActionOutcome', { index, text: await outcome.innerText() });
    await editor.locator('.view-lines').click();
    await page.keyboard.press('Control+S');
    await page.locator('.tab.active.dirty').waitFor({ state: 'detached' });
    if (step.screenshotApplied) {
        await page.screenshot({ path: step.screenshotApplied });
    }
    emit('codeActionSaved', { index });
    // Close the notifications so the next step's toast is its own.
    await page.keyboard.press('Escape');
    await page.locator('.notifications-toasts .notification-toast').first().waitFor({ state: 'detached' }).catch(() => {});
}

// The chat view: `{ask?, openReference?, resume?, screenshotAnswer?, screenshotHistory?,
// screenshotReference?}`. The webview's page is two iframes deep.
async function runChat(page, quickInput, step) {
    await paletteCommand(page, quickInput, 'ouzel: Open Chat');
    const view = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
    await view.locator('#input').waitFor();
    emit('chatOpened');
    if (step.ask) {
        await view.locator('#input').fill(step.ask);
        await view.locator('#ask').click();
        // Streaming: the answer grows while the Stop button shows; sample it until done.
        const samples = [];
        const answer = view.locator('.turn').last().locator('.answer');
        const deadline = Date.now() + (step.timeoutMs ?? 240000);
        while (Date.now() < deadline) {
            const streaming = await view.locator('#stop').isVisible();
            const text = await answer.innerText().catch(() => '');
            if (samples.length === 0 || samples[samples.length - 1].chars !== text.length) {
                samples.push({ chars: text.length, streaming });
            }
            if (!streaming && (await view.locator('.turn.status-streaming').count()) === 0) {
                break;
            }
            await page.waitForTimeout(100);
        }
        const last = view.locator('.turn').last();
        if ((await last.getAttribute('class'))?.includes('status-streaming')) {
            throw new Error(`the chat answer was still streaming after ${step.timeoutMs ?? 240000} ms`);
        }
        emit('chatAnswer', {
            samples,
            status: await last.getAttribute('class'),
            text: await last.locator('.answer').innerText(),
            html: await last.locator('.answer').innerHTML(),
            references: await last.locator('.references a.ref').allInnerTexts(),
            rules: await view.locator('#rules').innerText(),
        });
        if (step.screenshotAnswer) {
            await page.screenshot({ path: step.screenshotAnswer });
        }
    }
    if (step.openReference) {
        const link = view.locator('.references a.ref', { hasText: step.openReference }).first();
        const target = await link.innerText();
        await link.click();
        await page.locator('.tab.active', { hasText: target.split(':')[0] }).waitFor();
        // The cursor moves to the cited line (the status bar shows "Ln N, Col 1").
        const wantedLine = target.split(':')[1].split('-')[0];
        const cursor = page.locator('.statusbar-item', { hasText: `Ln ${wantedLine}, Col 1` }).first();
        await cursor.waitFor();
        emit('referenceOpened', { link: target, tab: await page.locator('.tab.active').innerText(), cursor: await cursor.innerText() });
        if (step.screenshotReference) {
            await page.screenshot({ path: step.screenshotReference });
        }
    }
    if (step.stop) {
        // Ask, wait for the first streamed text, press Stop: the turn ends as "stopped".
        await view.locator('#input').fill(step.stop);
        await view.locator('#ask').click();
        const answer = view.locator('.turn').last().locator('.answer');
        await view.locator('.turn.status-streaming .answer:not(:empty)').first().waitFor();
        const before = (await answer.innerText()).length;
        await view.locator('#stop').click();
        await view.locator('.turn.status-cancelled').last().waitFor();
        emit('chatStopped', { charsAtStop: before, chars: (await answer.innerText()).length, note: await view.locator('.turn').last().locator('.note').innerText() });
    }
    if (step.insertBlock) {
        // Insert the last answer's first code block before the cursor line of the editor.
        if (step.insertBlock.ask) {
            await view.locator('#input').fill(step.insertBlock.ask);
            await view.locator('#ask').click();
            await view.locator('.turn').last().locator('.note').waitFor({ state: 'detached' });
            await view.locator('.turn.status-streaming').waitFor({ state: 'detached' });
        }
        const block = view.locator('.turn').last().locator('.code-block').first();
        await block.waitFor();
        const code = await block.locator('pre code').innerText();
        await block.locator('button[data-action=insert]').click();
        await reviewPreview(page, 'block', step.insertBlock);
        const outcome = page.locator('.notifications-toasts .notification-list-item-message', { hasText: /Apply code block/ }).first();
        await outcome.waitFor();
        const editor = page.locator('.editor-instance .monaco-editor').first();
        await editor.locator('.view-lines').click();
        await page.keyboard.press('Control+S');
        await page.locator('.tab.active.dirty').waitFor({ state: 'detached' });
        emit('blockInserted', { code, outcome: await outcome.innerText() });
    }
    if (step.resume) {
        await view.locator('#show-history').click();
        const row = view.locator('.history-item', { hasText: step.resume }).first();
        await row.waitFor();
        const items = await view.locator('.history-item').allInnerTexts();
        if (step.screenshotHistory) {
            await page.screenshot({ path: step.screenshotHistory });
        }
        await row.click();
        await view.locator('.turn .question', { hasText: step.resume }).first().waitFor();
        emit('resumed', {
            history: items,
            questions: await view.locator('.turn .question').allInnerTexts(),
            answers: await view.locator('.turn .answer').allInnerTexts(),
        });
        if (step.screenshotResumed) {
            await page.screenshot({ path: step.screenshotResumed });
        }
    }
}

// The files `paths` (relative to `config.workspace`) as they are on disk now; null: missing.
function readDisk(paths) {
    const files = {};
    for (const path of paths) {
        try {
            files[path] = readFileSync(join(config.workspace, path), 'utf8');
        } catch {
            files[path] = null;
        }
    }
    return files;
}

// One agent turn: `{ask, via?: "view" | "command", previews: [{accept, protected?, screenshotPreview?,
// screenshotProtected?}],
// files: [paths], undo?: "button" | "command", screenshotTurn?, screenshotUndone?}`. The turn
// starts from the chat view with the Agent toggle on, or from the palette's "Ask the Agent…";
// each proposed file change opens the Refactor Preview (reviewed like a code action's); a
// protected file's change is first a warning notification, answered with `protected` (a button);
// then the view shows the tool steps, the answer and "Undo agent turn".
async function runAgent(page, quickInput, step) {
    await paletteCommand(page, quickInput, 'ouzel: Open Chat');
    const view = page.frameLocator('iframe.webview.ready').frameLocator('iframe#active-frame');
    await view.locator('#input').waitFor();
    const before = await view.locator('.turn.mode-agent').count();
    if (step.via === 'command') {
        await paletteCommand(page, quickInput, 'ouzel: Ask the Agent');
        await page.locator('.quick-input-widget .quick-input-title', { hasText: 'ask the agent' }).waitFor();
        await page.keyboard.type(step.ask);
        await page.keyboard.press('Enter');
    } else {
        const toggle = view.locator('#agent-mode');
        if (!(await toggle.isChecked())) {
            await toggle.check();
        }
        emit('agentMode', { checked: await toggle.isChecked(), button: await view.locator('#ask').innerText() });
        await view.locator('#input').fill(step.ask);
        await view.locator('#ask').click();
    }
    const turn = view.locator('.turn.mode-agent').nth(before);
    await turn.waitFor();
    const samples = [];
    for (const [index, preview] of (step.previews ?? []).entries()) {
        if (preview.protected) {
            // window/showMessageRequest: VS Code's own notification with the server's buttons.
            const toast = page.locator('.notifications-toasts .notification-toast', { hasText: /protected file/ }).first();
            await toast.waitFor({ timeout: step.timeoutMs ?? 120000 });
            emit('agentProtected', {
                index,
                text: await toast.locator('.notification-list-item-message').innerText(),
                buttons: await toast.locator('.monaco-button').allInnerTexts(),
                warning: (await toast.locator('.codicon-warning').count()) > 0,
            });
            if (preview.screenshotProtected) {
                await page.screenshot({ path: preview.screenshotProtected });
            }
            await toast.locator('.monaco-button', { hasText: preview.protected }).first().click();
            if (preview.accept === undefined) {
                continue; // refused: no preview follows
            }
        }
        await page.locator('.bulk-edit-panel[data-state=data]').waitFor({ timeout: step.timeoutMs ?? 120000 });
        samples.push({
            preview: index,
            streaming: (await turn.getAttribute('class'))?.includes('status-streaming') ?? false,
            tools: await turn.locator('.tool').allInnerTexts(),
            progress: await turn.locator('.progress').allInnerTexts(),
        });
        await reviewPreview(page, `agent-${index}`, preview);
    }
    await view.locator('.turn.mode-agent.status-streaming').waitFor({ state: 'detached', timeout: step.timeoutMs ?? 120000 });
    const finished = view.locator('.turn.mode-agent').nth(before);
    emit('agentTurn', {
        samples,
        status: await finished.getAttribute('class'),
        question: await finished.locator('.question').innerText(),
        tools: await finished.locator('.tool').allInnerTexts(),
        answer: await finished.locator('.answer').innerText(),
        summary: await finished.locator('.summary').allInnerTexts(),
        undoButtons: await finished.locator('button.undo').count(),
        notes: await finished.locator('.note').allInnerTexts(),
    });
    // The extension saves the documents whose text is the disk's (the server wrote them).
    await page.waitForTimeout(500);
    emit('agentDisk', { when: 'accepted', files: readDisk(step.files ?? []), dirtyTabs: await page.locator('.tab.dirty').allInnerTexts() });
    if (step.screenshotTurn) {
        await page.screenshot({ path: step.screenshotTurn });
    }
    if (!step.undo) {
        return;
    }
    if (step.undo === 'command') {
        await paletteCommand(page, quickInput, 'ouzel: Undo Last Agent Turn');
    } else {
        await finished.locator('button.undo').click();
    }
    await finished.locator('.undone').waitFor();
    const outcome = page.locator('.notifications-toasts .notification-list-item-message', { hasText: /undid the agent turn/ }).first();
    await outcome.waitFor();
    await page.waitForTimeout(500);
    emit('agentUndone', {
        text: await finished.locator('.undone').innerText(),
        undoButtons: await finished.locator('button.undo').count(),
        notification: await outcome.innerText(),
    });
    emit('agentDisk', { when: 'undone', files: readDisk(step.files ?? []), dirtyTabs: await page.locator('.tab.dirty').allInnerTexts() });
    if (step.screenshotUndone) {
        await page.screenshot({ path: step.screenshotUndone });
    }
}

async function main() {
    const context = await chromium.launchPersistentContext(config.profileDir, {
        executablePath: config.chromium ?? '/usr/bin/chromium',
        headless: true,
        viewport: { width: 1400, height: 850 },
        args: [
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
            '--disable-dev-shm-usage',
        ],
    });
    context.setDefaultTimeout(timeout);
    const page = context.pages()[0] ?? (await context.newPage());
    const consoleErrors = [];
    page.on('console', (message) => {
        if (message.type() === 'error') {
            consoleErrors.push(message.text().slice(0, 500));
        }
    });
    try {
        await page.goto(config.url);
        await page.locator('.monaco-workbench').waitFor();
        emit('workbench');

        // ouzel's status bar item says "starting" until the language server answered.
        await page.waitForFunction(
            () => {
                const items = [...document.querySelectorAll('.statusbar-item')];
                const ouzel = items.find((item) => item.textContent?.includes('ouzel'));
                return ouzel !== undefined && !/starting/.test(ouzel.textContent ?? '');
            },
            undefined,
            { timeout },
        );
        if (config.expectServerFailure) {
            // A server that cannot start: the status bar turns red and a notification says why.
            await page.locator('.statusbar-item', { hasText: 'server failed' }).first().waitFor();
            const toast = page.locator('.notifications-toasts .notification-list-item-message', { hasText: 'ouzel' });
            await toast.first().waitFor();
            emit('failure', { status: await statusText(page), notifications: await toast.allInnerTexts() });
            if (config.screenshotServerFailure) {
                await page.screenshot({ path: config.screenshotServerFailure });
            }
            emit('done', { consoleErrors });
            return;
        }
        const serverStatus = await statusText(page);
        emit('server', { status: serverStatus });
        if (/failed|stopped/.test(serverStatus)) {
            throw new Error(`the ouzel server did not start: status bar says "${serverStatus}"`);
        }
        if (config.screenshotStarted) {
            await page.screenshot({ path: config.screenshotStarted });
        }

        // Open the file through Quick Open and wait for its editor.
        await page.locator('.monaco-workbench').click({ position: { x: 700, y: 400 } }).catch(() => {});
        await page.keyboard.press('Control+P');
        const quickInput = page.locator('.quick-input-widget input');
        await quickInput.waitFor();
        await quickInput.fill(config.file);
        await page.locator('.quick-input-list .monaco-list-row', { hasText: config.file }).first().waitFor();
        await page.keyboard.press('Enter');
        const editor = page.locator('.editor-instance .monaco-editor').first();
        await page.locator('.tab.active', { hasText: config.file }).waitFor();
        await editor.locator('.view-lines').waitFor();
        await editor.locator('.view-lines').click();
        emit('opened', { file: config.file });

        const ghost = page.locator('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text');
        for (const [index, edit] of config.edits.entries()) {
            // Cursor to the end of the line, then type like a person.
            await page.keyboard.press('Control+G');
            await quickInput.waitFor();
            await page.keyboard.type(String(edit.line));
            await page.keyboard.press('Enter');
            await quickInput.waitFor({ state: 'hidden' });
            await page.keyboard.press('End');
            await page.keyboard.type(edit.type, { delay: 40 });
            emit('typed', { index, text: edit.type });

            await ghost.first().waitFor({ state: 'visible' });
            const parts = await ghost.allInnerTexts();
            emit('ghost', { index, parts, status: await statusText(page) });
            if (edit.screenshot) {
                await page.screenshot({ path: edit.screenshot });
            }
            const shown = parts.join('\n');
            // Tab takes it all; Ctrl+Right (ouzel's wrapper of accept-next-word) the next word.
            await page.keyboard.press(edit.accept === 'word' ? 'Control+ArrowRight' : 'Tab');
            // The ghost text changes: shorter, gone, or (after Tab) a next suggestion.
            await page.waitForFunction(
                (before) => {
                    const nodes = document.querySelectorAll('.ghost-text-decoration, .ghost-text-decoration-preview, .ghost-text');
                    return [...nodes].map((node) => node.innerText).join('\n') !== before;
                },
                shown,
                { timeout },
            );
            await page.keyboard.press('Escape');
            await ghost.first().waitFor({ state: 'detached' });
            emit('accepted', { index, how: edit.accept, status: await statusText(page) });
        }

        await page.keyboard.press('Control+S');
        await page.locator('.tab.active.dirty').waitFor({ state: 'detached' });
        emit('saved', { status: await statusText(page) });
        if (config.screenshotSaved) {
            await page.screenshot({ path: config.screenshotSaved });
        }
        if (config.screenshotTooltip) {
            // The status item's tooltip: server, model, latency, counts and command links.
            await page.locator('.statusbar-item', { hasText: 'ouzel' }).first().hover();
            const hover = page.locator('.workbench-hover, .monaco-hover', { hasText: 'suggestions shown' });
            await hover.first().waitFor();
            emit('tooltip', { text: await hover.first().innerText() });
            await page.screenshot({ path: config.screenshotTooltip });
            await page.mouse.move(700, 400);
        }

        // Commands from the palette: `{title, tab?, text?, status?, screenshot?}` wait for an
        // editor tab, text in an editor, or text in ouzel's status bar item.
        for (const step of config.commands ?? []) {
            await page.keyboard.press('Control+Shift+P');
            await quickInput.waitFor();
            await page.keyboard.type(step.title);
            await page.locator('.quick-input-list .monaco-list-row', { hasText: step.title }).first().waitFor();
            await page.keyboard.press('Enter');
            if (step.tab) {
                await page.locator('.tab', { hasText: step.tab }).first().waitFor();
            }
            if (step.text) {
                await page.locator('.editor-instance .view-lines', { hasText: step.text }).first().waitFor();
            }
            if (step.status) {
                await page.waitForFunction(
                    (wanted) =>
                        [...document.querySelectorAll('.statusbar-item')].some(
                            (item) => item.textContent?.includes('ouzel') && item.textContent.includes(wanted),
                        ),
                    step.status,
                    { timeout },
                );
            }
            if (step.screenshot) {
                await page.screenshot({ path: step.screenshot });
            }
            emit('command', { title: step.title, status: await statusText(page) });
        }
        for (const [index, step] of (config.codeActions ?? []).entries()) {
            await runCodeAction(page, quickInput, index, step);
        }
        if (config.chat) {
            await runChat(page, quickInput, config.chat);
        }
        for (const step of config.agent ?? []) {
            await runAgent(page, quickInput, step);
        }
        emit('done', { consoleErrors });
    } catch (error) {
        emit('error', { message: String(error?.stack ?? error), status: await statusText(page).catch(() => '') });
        if (config.screenshotFailure) {
            await page.screenshot({ path: config.screenshotFailure }).catch(() => {});
        }
        process.exitCode = 1;
    } finally {
        await context.close();
    }
}

await main();
