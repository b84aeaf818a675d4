// Drives a real VS Code (code-server) in Debian's Chromium through playwright-core.
//
//   node e2e/driver.mjs '{"url": ..., "file": "calc.py", "edits": [...], ...}'
//
// Open the workbench, wait for ouzel's status bar item to report a running server, open the
// file; then for each edit `{line, type, accept: "tab" | "word", screenshot?}`: cursor to
// the end of `line` (1-based), type `type`, wait for ghost text, screenshot it, and accept
// it whole (Tab) or its next word (Ctrl+Right, then Escape for the rest). Finally save.
// Then run `commands` from the palette. With `expectServerFailure`, wait instead for the
// status bar and a notification to report a server that cannot start. Every wait is on a condition with a time limit; progress and results are JSON lines on
// stdout. tests/e2e/test_vscode.py starts code-server and checks the file on disk and the
// server's telemetry.
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
