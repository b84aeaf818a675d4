// The chat view (a webview view in its own activity bar container): the webview posts intents,
// this class checks them (chatModel.parseWebviewMessage), asks the server (docs/CHAT.md 5-7;
// agent turns and their undo: docs/AGENT.md) and posts back the state with the answer
// rendered to safe HTML (chatMarkdown.ts).
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import { AGENT_COMMAND, AGENT_UNDO_COMMAND, agentParams, agentResult, touchedUris, undoResult, undoSummary } from './agent';
import { chatHtml, makeNonce } from './chatHtml';
import { codeBlocks } from './chatMarkdown';
import {
    applyProgress,
    applyResult,
    ChatState,
    emptyChat,
    failTurn,
    historyItems,
    markUndone,
    parseWebviewMessage,
    startTurn,
    stateFromLoad,
    TurnMode,
    viewState,
    WebviewMessage,
} from './chatModel';
import { APPLY_BLOCK_COMMAND } from './codeActions';
import { errorText } from './errors';
import { settleDocuments } from './settle';

export const CHAT_VIEW_ID = 'ouzel.chatView';

/** What the chat view needs from the language client (the controller provides it). */
export interface ChatServer {
    request<T>(method: string, params: unknown, token?: vscode.CancellationToken): Promise<T>;
    notify(method: string, params: unknown): Promise<void>;
    onProgress(token: string, handler: (value: unknown) => void): vscode.Disposable;
    /** Runs a server command through the confirmable edit path and tells the user the outcome. */
    runEditCommand(command: string, argument: unknown, title: string): Promise<void>;
    log(line: string): void;
}

let tokenCounter = 0;

export class ChatViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
    private view: vscode.WebviewView | undefined;
    private state: ChatState = emptyChat();
    private lastEditor: vscode.TextEditor | undefined = vscode.window.activeTextEditor;
    private readonly disposables: vscode.Disposable[] = [];
    private cancel: vscode.CancellationTokenSource | undefined;

    constructor(
        private readonly extensionUri: vscode.Uri,
        private readonly server: () => ChatServer | undefined,
    ) {
        this.disposables.push(
            vscode.window.onDidChangeActiveTextEditor((editor) => {
                if (editor !== undefined) {
                    this.lastEditor = editor;
                }
            }),
        );
    }

    resolveWebviewView(view: vscode.WebviewView): void {
        this.view = view;
        const dist = vscode.Uri.joinPath(this.extensionUri, 'dist');
        view.webview.options = { enableScripts: true, localResourceRoots: [dist] };
        const nonce = makeNonce((size) => randomBytes(size));
        const script = view.webview.asWebviewUri(vscode.Uri.joinPath(dist, 'chat.js'));
        view.webview.html = chatHtml(nonce, script.toString());
        view.webview.onDidReceiveMessage((raw) => void this.onMessage(raw), undefined, this.disposables);
        view.onDidDispose(() => (this.view = undefined), undefined, this.disposables);
    }

    /** "Ask the agent…": the task goes to the agent in this view's conversation. */
    async askAgent(text: string): Promise<void> {
        await vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`);
        if (this.state.streamingToken !== undefined) {
            void vscode.window.showInformationMessage('ouzel: wait for the running answer, or press Stop in the chat view.');
            return;
        }
        await this.ask(text, 'agent');
    }

    /** Undo an agent turn (`turnId`), or the last one that changed something. */
    async undo(turnId?: string): Promise<unknown> {
        if (this.state.streamingToken !== undefined) {
            void vscode.window.showInformationMessage('ouzel: stop the running turn before undoing one.');
            return undefined;
        }
        const server = this.connected();
        let raw: unknown;
        try {
            raw = await server.request<unknown>('workspace/executeCommand', {
                command: AGENT_UNDO_COMMAND,
                arguments: [turnId === undefined ? {} : { turnId }],
            });
        } catch (error) {
            void vscode.window.showWarningMessage(`ouzel: undo failed: ${errorText(error)}`);
            return undefined;
        }
        const result = undoResult(raw);
        if (result === undefined) {
            void vscode.window.showErrorMessage(`ouzel: unexpected answer to the undo: ${JSON.stringify(raw)?.slice(0, 200)}`);
            return raw;
        }
        const summary = undoSummary(result);
        // The server restored the files on disk, then set the open documents to the same text.
        await settleDocuments([], result.restored, (line) => server.log(line));
        this.state = markUndone(this.state, result.turnId ?? turnId, summary);
        this.post();
        void vscode.window.showInformationMessage(`ouzel: ${summary}`);
        return raw;
    }

    /** Show a conversation (e.g. an "explain" answer) in the view. */
    async showConversation(conversationId: string): Promise<void> {
        await vscode.commands.executeCommand(`${CHAT_VIEW_ID}.focus`);
        await this.resume(conversationId);
    }

    private post(): void {
        void this.view?.webview.postMessage({ type: 'state', state: viewState(this.state) });
    }

    private async onMessage(raw: unknown): Promise<void> {
        const message = parseWebviewMessage(raw);
        if (message === undefined) {
            this.server()?.log(`[ouzel] chat view: ignored a malformed message ${JSON.stringify(raw)?.slice(0, 200)}`);
            return;
        }
        try {
            await this.handle(message);
        } catch (error) {
            void vscode.window.showErrorMessage(`ouzel chat: ${errorText(error)}`);
        }
    }

    private async handle(message: WebviewMessage): Promise<void> {
        switch (message.type) {
            case 'ready':
                this.post();
                return;
            case 'ask':
                return this.ask(message.text, message.mode);
            case 'setMode':
                this.state = { ...this.state, agentMode: message.agent };
                this.post();
                return;
            case 'undo': {
                const turnId = this.state.turns[message.turn]?.agent?.undoTurnId;
                if (turnId !== undefined) {
                    await this.undo(turnId);
                }
                return;
            }
            case 'stop':
                return this.stop();
            case 'newChat':
                this.state = { turns: [], rules: this.state.rules, agentMode: this.state.agentMode };
                this.post();
                return;
            case 'history':
                return this.showHistory();
            case 'resume':
                return this.resume(message.conversationId);
            case 'openReference':
                return this.openReference(message.path, message.line);
            case 'codeBlock':
                return this.useCodeBlock(message.turn, message.block, message.mode);
        }
    }

    private connected(): ChatServer {
        const server = this.server();
        if (server === undefined) {
            throw new Error('the language server is not running');
        }
        return server;
    }

    private async ask(text: string, mode: TurnMode): Promise<void> {
        if (this.state.streamingToken !== undefined) {
            return;
        }
        const server = this.connected();
        const token = `ouzel-vscode-${mode}-${process.pid}-${++tokenCounter}`;
        this.state = startTurn(this.state, text, token, mode);
        this.post();
        const editor = this.lastEditor && !this.lastEditor.document.isClosed ? this.lastEditor : undefined;
        const inFile = editor !== undefined && editor.document.uri.scheme === 'file';
        const params = agentParams({
            message: text,
            workDoneToken: token,
            conversationId: this.state.conversationId,
            uri: inFile ? editor.document.uri.toString() : undefined,
            selection: inFile && !editor.selection.isEmpty ? rangeJson(editor.selection) : undefined,
        });
        const listening = server.onProgress(token, (value) => {
            if (this.state.streamingToken === token) {
                this.state = applyProgress(this.state, value);
                this.post();
            }
        });
        this.cancel = new vscode.CancellationTokenSource();
        try {
            // An agent turn is `ouzel.agent` (docs/AGENT.md); its edits arrive meanwhile as
            // confirmable `workspace/applyEdit`s, which VS Code shows in the Refactor Preview.
            const result =
                mode === 'agent'
                    ? await server.request<unknown>(
                          'workspace/executeCommand',
                          { command: AGENT_COMMAND, arguments: [params] },
                          this.cancel.token,
                      )
                    : await server.request<unknown>('ouzel/chat', params, this.cancel.token);
            this.state = applyResult(this.state, result);
            this.post();
            if (mode === 'agent') {
                const agent = agentResult(result);
                server.log(`[ouzel] ${AGENT_COMMAND}: ${JSON.stringify(result)?.slice(0, 1000)}`);
                if (agent !== undefined) {
                    await settleDocuments(touchedUris(agent), agent.files.map((file) => file.path), (line) => server.log(line));
                }
            }
        } catch (error) {
            this.state = failTurn(this.state, errorText(error));
        } finally {
            listening.dispose();
            this.cancel.dispose();
            this.cancel = undefined;
            this.post();
        }
    }

    /** Stop: the server stops generating and stores what it has (`cancelled`). */
    private async stop(): Promise<void> {
        const token = this.state.streamingToken;
        if (token !== undefined) {
            await this.server()?.notify('window/workDoneProgress/cancel', { token });
        }
    }

    private async showHistory(): Promise<void> {
        const listed = await this.connected().request<unknown>('ouzel/chatList', { limit: 50 });
        void this.view?.webview.postMessage({ type: 'history', items: historyItems(listed) });
    }

    private async resume(conversationId: string): Promise<void> {
        if (this.state.streamingToken !== undefined) {
            void vscode.window.showInformationMessage('ouzel chat: stop the running answer first.');
            return;
        }
        const loaded = await this.connected().request<unknown>('ouzel/chatLoad', { conversationId });
        this.state = stateFromLoad(loaded, this.state);
        this.post();
    }

    /** A `path:line` from the answer or the references; only files inside the workspace. */
    private async openReference(path: string, line: number): Promise<void> {
        const target = await resolveWorkspaceFile(path);
        if (target === undefined) {
            void vscode.window.showWarningMessage(`ouzel chat: ${path} is not a file of this workspace.`);
            return;
        }
        const document = await vscode.workspace.openTextDocument(target);
        const position = new vscode.Position(Math.min(line - 1, document.lineCount - 1), 0);
        await vscode.window.showTextDocument(document, {
            viewColumn: this.lastEditor?.viewColumn ?? vscode.ViewColumn.One,
            selection: new vscode.Range(position, position),
        });
    }

    /** Insert a code block before the cursor line, or replace the selected lines with it,
     *  through the server's confirmable edit (`ouzel.applyCodeBlock`, Refactor Preview). */
    private async useCodeBlock(turnIndex: number, blockIndex: number, mode: 'insert' | 'apply'): Promise<void> {
        const turn = this.state.turns[turnIndex];
        const block = turn === undefined ? undefined : codeBlocks(turn.reply)[blockIndex];
        if (block === undefined) {
            return;
        }
        const editor = this.lastEditor && !this.lastEditor.document.isClosed ? this.lastEditor : undefined;
        if (editor === undefined) {
            void vscode.window.showInformationMessage('ouzel chat: open the file to change, put the cursor or select lines, then click again.');
            return;
        }
        const text = block.code.endsWith('\n') || block.code === '' ? block.code : `${block.code}\n`;
        // The server replaces whole lines (docs/CHAT.md 7): "insert" replaces the cursor line
        // with the block followed by that same line, so the only hunk is the insertion.
        const cursorLine = editor.selection.active.line;
        const range =
            mode === 'insert'
                ? { start: { line: cursorLine, character: 0 }, end: { line: cursorLine, character: 0 } }
                : rangeJson(editor.selection);
        const replacement = mode === 'insert' ? text + editor.document.lineAt(cursorLine).text + '\n' : text;
        await this.connected().runEditCommand(
            APPLY_BLOCK_COMMAND,
            {
                textDocument: { uri: editor.document.uri.toString(), version: editor.document.version },
                range,
                text: replacement,
            },
            mode === 'insert' ? 'Insert code block' : 'Apply code block',
        );
    }

    dispose(): void {
        this.cancel?.cancel();
        for (const disposable of this.disposables.splice(0)) {
            disposable.dispose();
        }
    }
}

function rangeJson(range: vscode.Range): { start: { line: number; character: number }; end: { line: number; character: number } } {
    return {
        start: { line: range.start.line, character: range.start.character },
        end: { line: range.end.line, character: range.end.character },
    };
}

/** `path` (relative to a workspace folder, or a file: URI) if it is an existing file inside one. */
async function resolveWorkspaceFile(path: string): Promise<vscode.Uri | undefined> {
    if (path.includes('\0') || path.split(/[\\/]/).includes('..')) {
        return undefined;
    }
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
        const candidate = vscode.Uri.joinPath(folder.uri, path);
        try {
            const stat = await vscode.workspace.fs.stat(candidate);
            if (stat.type & vscode.FileType.File) {
                return candidate;
            }
        } catch {
            // not in this folder
        }
    }
    return undefined;
}
