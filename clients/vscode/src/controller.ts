// Owns the language client, the status bar item, the commands and the output channel.
import * as vscode from 'vscode';
import {
    DidChangeConfigurationNotification,
    ErrorCodes,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    Middleware,
    ProposedFeatures,
    ResponseError,
    State,
    WorkDoneProgress,
} from 'vscode-languageclient/node';
import { AGENT_UNDO_COMMAND, agentMessageProblem } from './agent';
import { ChatServer, ChatViewProvider, CHAT_VIEW_ID } from './chatView';
import {
    instructionProblem,
    needsInstruction,
    ProgressFollower,
    RUN_COMMAND,
    RunArgument,
    runArgument,
    runOutcome,
    withRunOptions,
} from './codeActions';
import { endpoint, Endpoint, readConnectionSettings } from './connection';
import { errorText, explainStartFailure } from './errors';
import { toMarkdown } from './markdown';
import { statusTooltip, VIEW_SCHEME, ViewProvider } from './views';
import { initialStatus, modelFromStatus, ProgressTracker, renderStatus, StatusState } from './status';
import { contributedKeys, explicitSettings, SECTION, userOnlyKeys } from './settingsSync';
import { ContentChange, ghostText, SuggestionTracker } from './suggestions';

const ACCEPTED_COMMAND = 'ouzel.internal.accepted';
// Telemetry notifications the server reads (server/handlers/completion.py), as Copilot's.
const DID_SHOW = 'textDocument/didShowCompletion';
const DID_PARTIALLY_ACCEPT = 'textDocument/didPartiallyAcceptCompletion';
// The cursor rests at a place: the server warms its model for a suggestion there.
const CURSOR_REST = 'ouzel/cursorRest';
const CURSOR_REST_MS = 300;
/** Index commands the server may offer through `workspace/executeCommand`, preferred first. */
const INDEX_COMMANDS = ['ouzel.index', 'ouzel.reindex'];

interface WireItem {
    insertText: string;
    command?: { title: string; command: string; arguments?: unknown[] };
}

/** The item as the server sent it, for telemetry (the server finds its id in the command). */
function wireItem(item: vscode.InlineCompletionItem): WireItem {
    const insertText = typeof item.insertText === 'string' ? item.insertText : item.insertText.value;
    const command = item.command;
    return command === undefined
        ? { insertText }
        : { insertText, command: { title: command.title, command: command.command, arguments: command.arguments } };
}

export class OuzelController implements vscode.Disposable {
    private client: LanguageClient | undefined;
    private readonly output: vscode.OutputChannel;
    private readonly statusItem: vscode.StatusBarItem;
    private readonly progress = new ProgressTracker();
    private readonly suggestions = new SuggestionTracker();
    private restTimer: ReturnType<typeof setTimeout> | undefined;
    private lastRest = '';
    private readonly views = new ViewProvider();
    private readonly disposables: vscode.Disposable[] = [];
    private readonly settingKeys: string[];
    private readonly userOnlySettingKeys: Set<string>;
    private status: StatusState;
    private lastShownKey: string | undefined;
    private readonly chatView: ChatViewProvider;
    private progressCounter = 0;

    constructor(context: vscode.ExtensionContext) {
        this.output = vscode.window.createOutputChannel('ouzel');
        this.statusItem = vscode.window.createStatusBarItem('ouzel.status', vscode.StatusBarAlignment.Right, 100);
        this.statusItem.name = 'ouzel';
        this.statusItem.command = 'ouzel.showOutput';
        this.settingKeys = contributedKeys(context.extension.packageJSON?.contributes?.configuration);
        this.userOnlySettingKeys = userOnlyKeys(context.extension.packageJSON?.contributes?.configuration);
        this.status = initialStatus('', this.completionsEnabled());
        this.chatView = new ChatViewProvider(context.extensionUri, () => this.chatServer());
        this.disposables.push(
            this.chatView,
            vscode.window.registerWebviewViewProvider(CHAT_VIEW_ID, this.chatView),
            vscode.commands.registerCommand('ouzel.openChat', () => vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`)),
            // The server's own `ouzel.agent` / `ouzel.agent.undo` are registered by the language
            // client (they are its executeCommand commands): these are the palette's.
            vscode.commands.registerCommand('ouzel.askAgent', () => this.askAgent()),
            vscode.commands.registerCommand('ouzel.undoAgentTurn', () => this.undoAgentTurn()),
            this.output,
            this.statusItem,
            this.views,
            vscode.workspace.registerTextDocumentContentProvider(VIEW_SCHEME, this.views),
            vscode.commands.registerCommand('ouzel.toggleCompletions', () => this.toggleCompletions()),
            vscode.commands.registerCommand('ouzel.reindexWorkspace', () => this.reindexWorkspace()),
            vscode.commands.registerCommand('ouzel.showStatus', () => this.showStatus()),
            vscode.commands.registerCommand('ouzel.showContext', () => this.showContext()),
            vscode.commands.registerCommand('ouzel.restartServer', () => this.restart()),
            vscode.commands.registerCommand('ouzel.showOutput', () => this.output.show(true)),
            vscode.commands.registerCommand('ouzel.acceptNextWord', () =>
                this.acceptPart('editor.action.inlineSuggest.acceptNextWord'),
            ),
            vscode.commands.registerCommand('ouzel.acceptNextLine', () =>
                this.acceptPart('editor.action.inlineSuggest.acceptNextLine'),
            ),
            vscode.commands.registerCommand(ACCEPTED_COMMAND, (serverCommand?: vscode.Command) =>
                this.onAccepted(serverCommand),
            ),
            vscode.workspace.onDidChangeConfiguration((event) => this.onConfigurationChanged(event)),
            vscode.workspace.onDidChangeTextDocument((event) => this.onDocumentChanged(event)),
            vscode.window.onDidChangeTextEditorSelection((event) => this.onCursorMoved(event.textEditor)),
            vscode.window.onDidChangeActiveTextEditor((editor) => editor && this.onCursorMoved(editor)),
            // Trust lets the extension run the workspace's own .venv/bin/ouzel.
            vscode.workspace.onDidGrantWorkspaceTrust(() => void this.restart()),
        );
        this.statusItem.show();
    }

    // --- lifecycle -------------------------------------------------------------------------

    async start(): Promise<void> {
        const settings = readConnectionSettings();
        const target = endpoint(settings);
        this.progress.clear();
        this.status = { ...initialStatus(target.description, this.completionsEnabled()) };
        this.render();
        this.output.appendLine(`[ouzel] starting the language server: ${target.description}`);
        if (target.token.problem) {
            this.output.appendLine(`[ouzel] ${target.token.problem}`);
            void vscode.window.showWarningMessage(`ouzel: ${target.token.problem}`);
        }
        const client = new LanguageClient('ouzel', 'ouzel', target.serverOptions, this.clientOptions(target));
        client.registerFeatures(ProposedFeatures.createAll(client));
        client.onDidChangeState((event) => {
            if (this.client !== client) {
                return;
            }
            if (event.newState === State.Running) {
                this.update({ connection: 'running', error: undefined });
                void this.refreshStatus();
            } else if (event.newState === State.Stopped) {
                this.progress.clear();
                this.update({ connection: this.status.connection === 'failed' ? 'failed' : 'stopped', progress: undefined });
            }
        });
        this.client = client;
        try {
            await target.preflight();
            await client.start();
        } catch (error) {
            const message = explainStartFailure(error);
            this.output.appendLine(`[ouzel] the language server did not start: ${message}`);
            this.update({ connection: 'failed', error: message });
            void vscode.window.showErrorMessage(`ouzel: ${message}`, 'Show Log', 'Open Settings').then((choice) => {
                if (choice === 'Show Log') {
                    this.output.show(true);
                } else if (choice === 'Open Settings') {
                    void vscode.commands.executeCommand('workbench.action.openSettings', 'ouzel.server');
                }
            });
        }
    }

    async stop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        this.suggestions.clear();
        if (client === undefined) {
            return;
        }
        try {
            if (client.isRunning()) {
                await client.stop(5000);
            } else {
                await client.dispose(2000);
            }
        } catch (error) {
            this.output.appendLine(`[ouzel] stopping the language server: ${errorText(error)}`);
        }
    }

    async restart(): Promise<void> {
        await this.stop();
        await this.start();
    }

    dispose(): void {
        clearTimeout(this.restTimer);
        void this.stop();
        for (const disposable of this.disposables.splice(0)) {
            disposable.dispose();
        }
    }

    // --- the language client -------------------------------------------------------------

    private clientOptions(target: Endpoint): LanguageClientOptions {
        const token = target.token.token;
        return {
            documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
            outputChannel: this.output,
            // The token rides in `initialize` only; the server never stores it as a setting.
            initializationOptions: () => ({
                ...this.serverSettings(undefined),
                ...(token === undefined ? {} : { authToken: token }),
            }),
            middleware: this.middleware(),
            initializationFailedHandler: (error) => {
                this.output.appendLine(`[ouzel] initialize failed: ${errorText(error)}`);
                return false;
            },
        };
    }

    private middleware(): Middleware {
        return {
            workspace: {
                configuration: async (params, token, next) => {
                    const results: unknown[] = [];
                    for (const item of params.items) {
                        if (item.section === SECTION) {
                            results.push(this.serverSettings(item.scopeUri));
                        } else {
                            const answer = await next({ items: [item] }, token);
                            results.push(Array.isArray(answer) ? answer[0] : null);
                        }
                    }
                    return results;
                },
            },
            handleWorkDoneProgress: (token, params, next) => {
                this.progress.update(token, params);
                this.update({ progress: this.progress.current() });
                if ((params as { kind?: string }).kind === 'end') {
                    void this.refreshStatus();
                }
                next(token, params);
            },
            // The server's AI actions (tagged LLMGenerated, which client 9 does not map) are AI.
            provideCodeActions: async (document, range, context, token, next) => {
                const actions = await next(document, range, context, token);
                for (const action of actions ?? []) {
                    if (action instanceof vscode.CodeAction && action.command?.command === RUN_COMMAND) {
                        (action as vscode.CodeAction & { isAI?: boolean }).isAI = true;
                    }
                }
                return actions;
            },
            executeCommand: async (command, args, next) => {
                if (command === AGENT_UNDO_COMMAND) {
                    // e.g. the `undo` command of an agent turn's result: the view marks the turn.
                    const first: unknown = args[0];
                    const turnId =
                        typeof first === 'object' && first !== null && typeof (first as { turnId?: unknown }).turnId === 'string'
                            ? (first as { turnId: string }).turnId
                            : undefined;
                    return this.chatView.undo(turnId);
                }
                const argument = command === RUN_COMMAND ? runArgument(args) : undefined;
                return argument === undefined ? next(command, args) : this.runCodeAction(argument);
            },
            // Ghost text is this extension's UI; the server's popup items (its suggestion again,
            // plus Jedi's names) would duplicate it and the Python extension's completions.
            provideCompletionItem: () => undefined,
            provideInlineCompletionItems: async (document, position, context, token, next) => {
                if (!this.status.enabled) {
                    return null;
                }
                const started = performance.now();
                try {
                    const result = await next(document, position, context, token);
                    if (token.isCancellationRequested) {
                        return result;
                    }
                    const items = Array.isArray(result) ? result : (result?.items ?? []);
                    this.onItems(document, position, items);
                    this.update({ lastLatencyMs: performance.now() - started, error: undefined });
                    return result;
                } catch (error) {
                    if (!(error instanceof vscode.CancellationError)) {
                        this.update({ error: `completion failed: ${errorText(error)}` });
                    }
                    return null;
                }
            },
        };
    }

    /** The settings the user set explicitly for `scopeUri`, as the server's nested object. */
    private serverSettings(scopeUri: string | undefined): Record<string, unknown> {
        const scope = scopeUri ? vscode.Uri.parse(scopeUri) : undefined;
        const config = vscode.workspace.getConfiguration(undefined, scope);
        return explicitSettings(this.settingKeys, (key) => config.inspect(key), this.userOnlySettingKeys);
    }

    // --- suggestions and telemetry -------------------------------------------------------

    private onItems(document: vscode.TextDocument, position: vscode.Position, items: vscode.InlineCompletionItem[]): void {
        if (items.length === 0) {
            return;
        }
        const wireItems = items.map(wireItem);
        for (const item of items) {
            // Route acceptance through our command: it counts, then tells the server.
            item.command = { title: 'accepted', command: ACCEPTED_COMMAND, arguments: [item.command] };
        }
        // VS Code shows the first item; stable VS Code has no "shown" event, so an item handed
        // back for display counts as shown, once per suggestion.
        const shown = wireItems[0];
        const key = JSON.stringify(shown.command?.arguments ?? shown.insertText);
        if (key !== this.lastShownKey) {
            this.lastShownKey = key;
            this.update({ shown: this.status.shown + 1 });
            void this.notify(DID_SHOW, { item: shown });
        }
        const first = items[0];
        if (typeof first.insertText !== 'string') {
            return;
        }
        const start = first.range?.start ?? position;
        const typed = document.getText(new vscode.Range(start, position));
        const ghost = ghostText(first.insertText, typed);
        if (ghost !== undefined) {
            this.suggestions.show({
                uri: document.uri.toString(),
                anchor: { line: position.line, character: position.character },
                insertText: first.insertText,
                ghost,
                item: shown,
            });
        }
    }

    /** A notification to the server when it runs; failures only reach the log. */
    private async notify(method: string, params: unknown): Promise<void> {
        const client = this.client;
        if (!client?.isRunning()) {
            return;
        }
        try {
            await client.sendNotification(method, params);
        } catch (error) {
            this.output.appendLine(`[ouzel] ${method} failed: ${errorText(error)}`);
        }
    }

    private async onAccepted(serverCommand: vscode.Command | undefined): Promise<void> {
        this.suggestions.acceptedWhole();
        this.update({ accepted: this.status.accepted + 1 });
        const client = this.client;
        if (serverCommand?.command && client?.isRunning()) {
            try {
                await client.sendRequest(ExecuteCommandRequest.type, {
                    command: serverCommand.command,
                    arguments: serverCommand.arguments,
                });
            } catch (error) {
                this.output.appendLine(`[ouzel] reporting an accepted suggestion failed: ${errorText(error)}`);
            }
        }
    }

    private async acceptPart(builtin: string): Promise<void> {
        this.suggestions.expectPartialAccept();
        try {
            await vscode.commands.executeCommand(builtin);
        } finally {
            // The edit (if any) has arrived by now; an unused mark must not tag later typing.
            this.suggestions.endPartialAccept();
        }
    }

    private onDocumentChanged(event: vscode.TextDocumentChangeEvent): void {
        if (event.contentChanges.length === 0) {
            return;
        }
        const changes: ContentChange[] = event.contentChanges.map((change) => ({
            range: {
                start: { line: change.range.start.line, character: change.range.start.character },
                end: { line: change.range.end.line, character: change.range.end.character },
            },
            text: change.text,
        }));
        const partial = this.suggestions.onDidChange(event.document.uri.toString(), changes);
        if (partial !== undefined) {
            void this.reportPartialAccept(partial.item, partial.acceptedLength);
        }
    }

    /** After the cursor stays put for CURSOR_REST_MS, tell the server where it rests. */
    private onCursorMoved(editor: vscode.TextEditor): void {
        clearTimeout(this.restTimer);
        this.restTimer = setTimeout(() => {
            const client = this.client;
            if (!client?.isRunning() || vscode.window.activeTextEditor !== editor) {
                return;
            }
            const document = editor.document;
            const position = editor.selection.active;
            const place = `${document.uri.toString()}:${document.version}:${position.line}:${position.character}`;
            if (place === this.lastRest) {
                return;
            }
            this.lastRest = place;
            void this.notify(CURSOR_REST, {
                textDocument: { uri: client.code2ProtocolConverter.asUri(document.uri) },
                position: { line: position.line, character: position.character },
            });
        }, CURSOR_REST_MS);
    }

    private async reportPartialAccept(item: unknown, acceptedLength: number): Promise<void> {
        await this.notify(DID_PARTIALLY_ACCEPT, { item, acceptedLength });
    }

    // --- AI code actions and chat --------------------------------------------------------

    private chatServer(): ChatServer | undefined {
        const client = this.client;
        if (!client?.isRunning()) {
            return undefined;
        }
        return {
            // A third argument, even undefined, would be sent as a second param: pass it only when set.
            request: <T>(method: string, params: unknown, token?: vscode.CancellationToken) =>
                token === undefined ? client.sendRequest<T>(method, params) : client.sendRequest<T>(method, params, token),
            notify: (method, params) => this.notify(method, params),
            onProgress: (token, handler) => client.onProgress(WorkDoneProgress.type, token, handler),
            runEditCommand: async (command, argument, title) => {
                await this.runWithProgress(command, argument as RunArgument, title);
            },
            log: (line) => this.output.appendLine(line),
        };
    }

    /** "Ask the agent…": the task, then the agent turn in the chat view. */
    private async askAgent(): Promise<void> {
        if (!this.client?.isRunning()) {
            void vscode.window.showWarningMessage('ouzel: the language server is not running.');
            return;
        }
        const message = await vscode.window.showInputBox({
            title: 'ouzel: ask the agent',
            prompt: 'What should change? The agent reads the workspace; you review every change before it is written, and can undo the whole turn.',
            placeHolder: 'e.g. rename area to surface in geometry.py and its callers',
            ignoreFocusOut: true,
            validateInput: (text) => agentMessageProblem(text),
        });
        if (message === undefined) {
            return;
        }
        await this.chatView.askAgent(message.trim());
    }

    private async undoAgentTurn(): Promise<void> {
        if (!this.client?.isRunning()) {
            void vscode.window.showWarningMessage('ouzel: the language server is not running.');
            return;
        }
        await this.chatView.undo();
    }

    /** A light-bulb action: ask for the instruction when it needs one, then run it. */
    private async runCodeAction(argument: RunArgument): Promise<unknown> {
        let instruction: string | undefined;
        if (needsInstruction(argument)) {
            instruction = await vscode.window.showInputBox({
                title: 'ouzel: edit the selection',
                prompt: 'What should change in the selected lines? You review each change before it is written.',
                placeHolder: 'e.g. add type hints',
                ignoreFocusOut: true,
                validateInput: (text) => instructionProblem(text),
            });
            if (instruction === undefined) {
                return undefined;
            }
        }
        return this.runWithProgress(RUN_COMMAND, argument, undefined, instruction);
    }

    /** Runs a server command on a work-done token of ours, shown as a cancellable
     *  notification; Cancel sends `window/workDoneProgress/cancel` (docs/CHAT.md 3). */
    private async runWithProgress(
        command: string,
        argument: RunArgument,
        title: string | undefined,
        instruction?: string,
    ): Promise<unknown> {
        const client = this.client;
        if (!client?.isRunning()) {
            void vscode.window.showWarningMessage('ouzel: the language server is not running.');
            return undefined;
        }
        const token = `ouzel-vscode-${process.pid}-${++this.progressCounter}`;
        const follower = new ProgressFollower();
        const result = await vscode.window.withProgress(
            { location: vscode.ProgressLocation.Notification, title: title ?? 'ouzel', cancellable: true },
            async (progress, cancellation) => {
                const listening = client.onProgress(WorkDoneProgress.type, token, (value) => {
                    const view = follower.update(value);
                    const heading = follower.heading && follower.heading !== title ? `${follower.heading}: ` : '';
                    if (view.message !== undefined) {
                        progress.report({ message: heading + view.message });
                    }
                });
                const cancelling = cancellation.onCancellationRequested(
                    () => void this.notify('window/workDoneProgress/cancel', { token }),
                );
                try {
                    return await client.sendRequest(ExecuteCommandRequest.type, {
                        command,
                        arguments: [withRunOptions(argument, token, instruction)],
                    });
                } catch (error) {
                    return { status: 'failed', message: `${command} failed: ${errorText(error)}` };
                } finally {
                    cancelling.dispose();
                    listening.dispose();
                }
            },
        );
        const outcome = runOutcome(result);
        this.output.appendLine(`[ouzel] ${command}: ${JSON.stringify(result)?.slice(0, 500)}`);
        const show =
            outcome.severity === 'error'
                ? vscode.window.showErrorMessage
                : outcome.severity === 'warning'
                  ? vscode.window.showWarningMessage
                  : vscode.window.showInformationMessage;
        void show(outcome.text);
        if (outcome.conversationId !== undefined) {
            void this.chatView.showConversation(outcome.conversationId);
        }
        return result;
    }

    // --- commands ------------------------------------------------------------------------

    private completionsEnabled(): boolean {
        return vscode.workspace.getConfiguration(SECTION).get<boolean>('completion.enabled') ?? true;
    }

    private async toggleCompletions(): Promise<void> {
        const config = vscode.workspace.getConfiguration(SECTION);
        const inspected = config.inspect<boolean>('completion.enabled');
        const target =
            inspected?.workspaceFolderValue !== undefined
                ? vscode.ConfigurationTarget.WorkspaceFolder
                : inspected?.workspaceValue !== undefined
                  ? vscode.ConfigurationTarget.Workspace
                  : vscode.ConfigurationTarget.Global;
        const enabled = !this.completionsEnabled();
        await config.update('completion.enabled', enabled, target);
        vscode.window.setStatusBarMessage(`ouzel: completions ${enabled ? 'on' : 'off'}`, 3000);
    }

    private async request<T>(method: string, params: unknown, what: string): Promise<T | undefined> {
        const client = this.client;
        if (!client?.isRunning()) {
            void vscode.window.showWarningMessage('ouzel: the language server is not running.');
            return undefined;
        }
        try {
            return await client.sendRequest<T>(method, params);
        } catch (error) {
            if (error instanceof ResponseError && error.code === ErrorCodes.MethodNotFound) {
                void vscode.window.showInformationMessage(`ouzel: this server cannot ${what} yet (${method}).`);
            } else {
                void vscode.window.showErrorMessage(`ouzel: ${what} failed: ${errorText(error)}`);
            }
            return undefined;
        }
    }

    private async refreshStatus(): Promise<unknown> {
        const client = this.client;
        if (!client?.isRunning()) {
            return undefined;
        }
        try {
            const status = await client.sendRequest('ouzel/status', {});
            this.applyModel(status);
            return status;
        } catch (error) {
            this.output.appendLine(`[ouzel] ouzel/status failed: ${errorText(error)}`);
            return undefined;
        }
    }

    private async showStatus(): Promise<void> {
        const status = await this.request<unknown>('ouzel/status', {}, 'show its status');
        if (status === undefined) {
            return;
        }
        this.applyModel(status);
        const extension = {
            endpoint: this.status.endpoint,
            connection: this.status.connection,
            completionsEnabled: this.status.enabled,
            lastCompletionMs: this.status.lastLatencyMs === undefined ? null : Math.round(this.status.lastLatencyMs),
            suggestionsShown: this.status.shown,
            suggestionsAccepted: this.status.accepted,
            lastError: this.status.error ?? null,
        };
        await this.views.show('status', toMarkdown('ouzel status', { extension, server: status }));
    }

    private async showContext(): Promise<void> {
        const editor = vscode.window.activeTextEditor;
        if (editor === undefined) {
            void vscode.window.showInformationMessage('ouzel: open a file and put the cursor where you want a completion.');
            return;
        }
        const position = editor.selection.active;
        const context = await this.request<unknown>(
            'ouzel/context',
            {
                textDocument: { uri: editor.document.uri.toString() },
                position: { line: position.line, character: position.character },
            },
            'show the context',
        );
        if (context !== undefined) {
            const where = `${vscode.workspace.asRelativePath(editor.document.uri)}:${position.line + 1}:${position.character + 1}`;
            await this.views.show('context', toMarkdown(`ouzel context for ${where}`, context));
        }
    }

    private async reindexWorkspace(): Promise<void> {
        const client = this.client;
        if (!client?.isRunning()) {
            void vscode.window.showWarningMessage('ouzel: the language server is not running.');
            return;
        }
        const offered = client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
        const command = INDEX_COMMANDS.find((name) => offered.includes(name));
        if (command === undefined) {
            void vscode.window.showInformationMessage('ouzel: this server does not offer indexing (ouzel.index) yet.');
            return;
        }
        vscode.window.setStatusBarMessage('ouzel: indexing the workspace', 3000);
        try {
            await client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [] });
        } catch (error) {
            void vscode.window.showErrorMessage(`ouzel: indexing failed: ${errorText(error)}`);
        }
    }

    // --- settings and status -------------------------------------------------------------

    private onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
        if (!event.affectsConfiguration(SECTION)) {
            return;
        }
        if (event.affectsConfiguration('ouzel.server')) {
            this.output.appendLine('[ouzel] the server settings changed: restarting the language server');
            void this.restart();
            return;
        }
        this.update({ enabled: this.completionsEnabled() });
        const client = this.client;
        if (client?.isRunning()) {
            // The server pulls `workspace/configuration`; the pushed copy serves clients' peers
            // that do not pull.
            void client
                .sendNotification(DidChangeConfigurationNotification.type, {
                    settings: { [SECTION]: this.serverSettings(undefined) },
                })
                .then(() => this.refreshStatus());
        }
    }

    private applyModel(status: unknown): void {
        const model = modelFromStatus(status);
        if (model.error !== undefined) {
            this.update({ model: model.name, error: model.error });
        } else if (model.name !== undefined) {
            this.update({ model: model.name });
        }
    }

    private update(change: Partial<StatusState>): void {
        this.status = { ...this.status, ...change };
        this.render();
    }

    private render(): void {
        const rendered = renderStatus(this.status);
        this.statusItem.text = rendered.text;
        this.statusItem.tooltip = statusTooltip(rendered.tooltip);
        this.statusItem.backgroundColor =
            rendered.severity === 'error'
                ? new vscode.ThemeColor('statusBarItem.errorBackground')
                : rendered.severity === 'warning'
                  ? new vscode.ThemeColor('statusBarItem.warningBackground')
                  : undefined;
    }
}
