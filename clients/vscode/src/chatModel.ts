// The chat view's state and the messages between the webview and the extension. The webview
// only renders what it is sent and posts user intents; the extension checks every message
// (parseWebviewMessage) and talks to the server (docs/CHAT.md 5-7, docs/AGENT.md for agent
// turns). Plain logic, unit-tested.
import {
    AgentFile,
    agentResult,
    changedSomething,
    EditCounts,
    filesSummary,
    limitNote,
    toolStep,
    ToolStep,
    toolSteps,
} from './agent';
import { renderMarkdown } from './chatMarkdown';

export interface Reference {
    uri?: string;
    path: string;
    line: number;
    endLine?: number;
    source?: string;
    label?: string;
}

export interface RuleFile {
    path: string;
    chars?: number;
    truncated?: boolean;
}

/** `limit`: an agent turn stopped by a budget (steps, tokens, wall time). */
export type TurnStatus = 'streaming' | 'done' | 'cancelled' | 'error' | 'interrupted' | 'limit';

export type TurnMode = 'chat' | 'agent';

/** What an agent turn did, from its result. */
export interface AgentOutcome {
    files: AgentFile[];
    edits: EditCounts;
    /** Set while the turn can be undone (this session, something was written, not undone yet). */
    undoTurnId?: string;
    note?: string;
}

export interface Turn {
    turnId?: string;
    message: string;
    reply: string;
    references: Reference[];
    status: TurnStatus;
    error?: string;
    mode?: TurnMode;
    /** Agent turns: the tool calls, in order. */
    tools?: ToolStep[];
    /** The last progress message: an agent's step ("step 2/12: read_file geometry.py"),
     *  or how much of a long prompt a local model has read. */
    progress?: string;
    agent?: AgentOutcome;
    /** Agent turns: what the undo did, once undone. */
    undone?: string;
}

export interface ChatState {
    conversationId?: string;
    title?: string;
    turns: Turn[];
    rules?: RuleFile[];
    /** The work-done token of the turn that is streaming, if one is. */
    streamingToken?: string;
    /** The composer's "Agent" toggle: new questions go to the agent (docs/AGENT.md). */
    agentMode?: boolean;
}

export function emptyChat(): ChatState {
    return { turns: [] };
}

export type WebviewMessage =
    | { type: 'ready' }
    | { type: 'ask'; text: string; mode: TurnMode }
    | { type: 'setMode'; agent: boolean }
    | { type: 'undo'; turn: number }
    | { type: 'stop' }
    | { type: 'newChat' }
    | { type: 'history' }
    | { type: 'resume'; conversationId: string }
    | { type: 'openReference'; path: string; line: number }
    | { type: 'codeBlock'; turn: number; block: number; mode: 'insert' | 'apply' };

export const MAX_MESSAGE_CHARS = 20000;

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIndex(value: unknown): value is number {
    return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/** A message posted by the webview, checked field by field; anything else is undefined. */
export function parseWebviewMessage(raw: unknown): WebviewMessage | undefined {
    if (!isObject(raw) || typeof raw.type !== 'string') {
        return undefined;
    }
    switch (raw.type) {
        case 'ready':
        case 'stop':
        case 'newChat':
        case 'history':
            return { type: raw.type };
        case 'ask':
            if (raw.mode !== undefined && raw.mode !== 'chat' && raw.mode !== 'agent') {
                return undefined;
            }
            return typeof raw.text === 'string' && raw.text.trim() && raw.text.length <= MAX_MESSAGE_CHARS
                ? { type: 'ask', text: raw.text.trim(), mode: raw.mode === 'agent' ? 'agent' : 'chat' }
                : undefined;
        case 'setMode':
            return typeof raw.agent === 'boolean' ? { type: 'setMode', agent: raw.agent } : undefined;
        case 'undo':
            return isIndex(raw.turn) ? { type: 'undo', turn: raw.turn } : undefined;
        case 'resume':
            return typeof raw.conversationId === 'string' && raw.conversationId ? { type: 'resume', conversationId: raw.conversationId } : undefined;
        case 'openReference':
            return typeof raw.path === 'string' && raw.path && isIndex(raw.line) && raw.line >= 1
                ? { type: 'openReference', path: raw.path, line: raw.line }
                : undefined;
        case 'codeBlock':
            return isIndex(raw.turn) && isIndex(raw.block) && (raw.mode === 'insert' || raw.mode === 'apply')
                ? { type: 'codeBlock', turn: raw.turn, block: raw.block, mode: raw.mode }
                : undefined;
        default:
            return undefined;
    }
}

function references(value: unknown): Reference[] {
    if (!Array.isArray(value)) {
        return [];
    }
    return value
        .filter((item): item is Record<string, unknown> => isObject(item) && typeof item.path === 'string' && isIndex(item.line))
        .map((item) => ({
            uri: typeof item.uri === 'string' ? item.uri : undefined,
            path: item.path as string,
            line: item.line as number,
            endLine: isIndex(item.endLine) ? item.endLine : undefined,
            source: typeof item.source === 'string' ? item.source : undefined,
            label: typeof item.label === 'string' ? item.label : undefined,
        }));
}

function replaceLast(state: ChatState, change: (turn: Turn) => Turn): ChatState {
    const last = state.turns[state.turns.length - 1];
    if (last === undefined) {
        return state;
    }
    return { ...state, turns: [...state.turns.slice(0, -1), change(last)] };
}

/** The user asked: a new streaming turn on `token` (a chat question or an agent task). */
export function startTurn(state: ChatState, message: string, token: string, mode: TurnMode = 'chat'): ChatState {
    const turn: Turn = { message, reply: '', references: [], status: 'streaming' };
    if (mode === 'agent') {
        turn.mode = 'agent';
        turn.tools = [];
    }
    return { ...state, turns: [...state.turns, turn], streamingToken: token };
}

/** One `$/progress` value of the streaming turn (begin / report with delta / end). */
export function applyProgress(state: ChatState, value: unknown): ChatState {
    if (!isObject(value)) {
        return state;
    }
    const conversationId = typeof value.conversationId === 'string' ? value.conversationId : state.conversationId;
    const turnId = typeof value.turnId === 'string' ? value.turnId : undefined;
    const next = { ...state, conversationId };
    return replaceLast(next, (turn) => {
        if (turn.status !== 'streaming') {
            return turn;
        }
        const updated: Turn = { ...turn, turnId: turnId ?? turn.turnId };
        if (value.kind === 'report') {
            if (typeof value.delta === 'string') {
                updated.reply = turn.reply + value.delta;
                if (turn.mode !== 'agent' && value.delta) {
                    updated.progress = undefined; // the answer itself shows now
                }
            }
            if (Array.isArray(value.references)) {
                updated.references = references(value.references);
            }
            if (turn.mode === 'agent') {
                const step = toolStep(value.tool);
                if (step !== undefined) {
                    updated.tools = [...(turn.tools ?? []), step];
                }
                if (typeof value.message === 'string' && value.message) {
                    updated.progress = value.message;
                }
            } else if (value.delta === undefined && typeof value.message === 'string' && value.message) {
                // Before the first text: a local model reading a long prompt says how far.
                updated.progress = value.message;
            }
        }
        return updated;
    });
}

function stopStatus(stopReason: unknown, cancelled: unknown, error: unknown): TurnStatus {
    if (cancelled === true || stopReason === 'cancelled') {
        return 'cancelled';
    }
    return stopReason === 'error' || (typeof error === 'string' && error) ? 'error' : 'done';
}

/** The chat request's result: the full reply replaces the streamed one. */
export function applyResult(state: ChatState, result: unknown): ChatState {
    const done: ChatState = { ...state, streamingToken: undefined };
    if (state.turns[state.turns.length - 1]?.mode === 'agent') {
        return applyAgentResult(done, result);
    }
    if (!isObject(result)) {
        return replaceLast(done, (turn) => ({ ...turn, status: 'error', error: 'the server sent no result' }));
    }
    const next: ChatState = {
        ...done,
        conversationId: typeof result.conversationId === 'string' ? result.conversationId : state.conversationId,
        rules: Array.isArray(result.rules) ? rules(result.rules) : state.rules,
    };
    return replaceLast(next, (turn) => ({
        ...turn,
        turnId: typeof result.turnId === 'string' ? result.turnId : turn.turnId,
        reply: typeof result.reply === 'string' ? result.reply : turn.reply,
        references: Array.isArray(result.references) ? references(result.references) : turn.references,
        status: stopStatus(result.stopReason, result.cancelled, result.error),
        error: typeof result.error === 'string' && result.error ? result.error : undefined,
    }));
}

const AGENT_TURN_STATUS: Record<string, TurnStatus> = {
    done: 'done',
    steps: 'limit',
    tokens: 'limit',
    time: 'limit',
    cancelled: 'cancelled',
    error: 'error',
};

/** `ouzel.agent`'s result (docs/AGENT.md): the answer, the files changed, whether it can be undone. */
function applyAgentResult(done: ChatState, value: unknown): ChatState {
    const result = agentResult(value);
    if (result === undefined) {
        return replaceLast(done, (turn) => ({ ...turn, status: 'error', error: 'the server sent no agent result' }));
    }
    const next: ChatState = { ...done, conversationId: result.conversationId ?? done.conversationId };
    return replaceLast(next, (turn) => ({
        ...turn,
        turnId: result.turnId ?? turn.turnId,
        reply: result.answer || turn.reply,
        status: result.error !== undefined && result.status === 'done' ? 'error' : (AGENT_TURN_STATUS[result.status] ?? 'error'),
        error: result.error,
        progress: undefined,
        agent: {
            files: result.files,
            edits: result.edits,
            undoTurnId: changedSomething(result) ? result.undoTurnId : undefined,
            note: limitNote(result.status),
        },
    }));
}

/** The turn `turnId` was undone: it says what the undo did and offers no second undo. */
export function markUndone(state: ChatState, turnId: string | undefined, summary: string): ChatState {
    const index = turnId === undefined ? -1 : state.turns.findIndex((turn) => turn.turnId === turnId);
    if (index < 0) {
        return state;
    }
    const turns = state.turns.slice();
    const turn = turns[index];
    turns[index] = { ...turn, undone: summary, agent: turn.agent === undefined ? undefined : { ...turn.agent, undoTurnId: undefined } };
    return { ...state, turns };
}

/** The request failed (a JSON-RPC error, a dead server): the turn says why. */
export function failTurn(state: ChatState, error: string): ChatState {
    return replaceLast({ ...state, streamingToken: undefined }, (turn) => ({ ...turn, status: 'error', error }));
}

function rules(value: unknown[]): RuleFile[] {
    return value
        .filter((item): item is Record<string, unknown> => isObject(item) && typeof item.path === 'string')
        .map((item) => ({
            path: item.path as string,
            chars: isIndex(item.chars) ? item.chars : undefined,
            truncated: item.truncated === true,
        }));
}

const STORED_STATUS: Record<string, TurnStatus> = {
    done: 'done',
    cancelled: 'cancelled',
    error: 'error',
    interrupted: 'interrupted',
    streaming: 'interrupted',
    steps: 'limit',
    tokens: 'limit',
    time: 'limit',
};

/** `ouzel/chatLoad`'s result as the view's state (a resumed conversation). */
export function stateFromLoad(loaded: unknown, previous: ChatState): ChatState {
    if (!isObject(loaded) || typeof loaded.conversationId !== 'string' || !Array.isArray(loaded.turns)) {
        return previous;
    }
    const turns: Turn[] = loaded.turns.filter(isObject).map((turn) => {
        const status = typeof turn.status === 'string' ? turn.status : 'done';
        const loadedTurn: Turn = {
            turnId: typeof turn.turnId === 'string' ? turn.turnId : undefined,
            message: typeof turn.message === 'string' ? turn.message : '',
            reply: typeof turn.reply === 'string' ? turn.reply : typeof turn.answer === 'string' ? turn.answer : '',
            references: references(turn.references),
            status: STORED_STATUS[status] ?? 'done',
        };
        if (turn.mode === 'agent') {
            loadedTurn.mode = 'agent';
            loadedTurn.tools = toolSteps(turn.tools);
            const note = limitNote(status);
            if (note !== undefined) {
                loadedTurn.agent = { files: [], edits: { proposed: 0, applied: 0, rejected: 0, refused: 0, retried: 0 }, note };
            }
        }
        return loadedTurn;
    });
    return {
        conversationId: loaded.conversationId,
        title: typeof loaded.title === 'string' ? loaded.title : undefined,
        turns,
        rules: previous.rules,
        agentMode: previous.agentMode,
    };
}

export interface HistoryItem {
    conversationId: string;
    title: string;
    updated: string;
    turns: number;
}

/** `ouzel/chatList`'s conversations, newest first as the server sends them. */
export function historyItems(listed: unknown): HistoryItem[] {
    if (!isObject(listed) || !Array.isArray(listed.conversations)) {
        return [];
    }
    return listed.conversations
        .filter((item): item is Record<string, unknown> => isObject(item) && typeof item.conversationId === 'string')
        .map((item) => ({
            conversationId: item.conversationId as string,
            title: typeof item.title === 'string' && item.title ? item.title : '(untitled)',
            updated: typeof item.updated === 'string' ? item.updated : '',
            turns: isIndex(item.turns) ? item.turns : 0,
        }));
}

/** What the webview receives: turns with their answer already rendered to safe HTML. */
export interface ViewTurn {
    message: string;
    html: string;
    references: Reference[];
    status: TurnStatus;
    error?: string;
    mode: TurnMode;
    tools: ToolStep[];
    progress?: string;
    /** Agent turns: "2 file(s) changed: …" once the turn ended. */
    summary?: string;
    note?: string;
    canUndo: boolean;
    undone?: string;
}

export interface ViewState {
    conversationId?: string;
    title?: string;
    streaming: boolean;
    agentMode: boolean;
    rules?: RuleFile[];
    turns: ViewTurn[];
}

export function viewState(state: ChatState): ViewState {
    return {
        conversationId: state.conversationId,
        title: state.title,
        streaming: state.streamingToken !== undefined,
        agentMode: state.agentMode === true,
        rules: state.rules,
        turns: state.turns.map((turn) => ({
            message: turn.message,
            html: renderMarkdown(turn.reply),
            references: turn.references,
            status: turn.status,
            error: turn.error,
            mode: turn.mode ?? 'chat',
            tools: turn.tools ?? [],
            progress: turn.progress,
            summary: turn.agent !== undefined && turn.agent.files.length + turn.agent.edits.proposed > 0 ? filesSummary(turn.agent) : undefined,
            note: turn.agent?.note,
            canUndo: turn.agent?.undoTurnId !== undefined && state.streamingToken === undefined,
            undone: turn.undone,
        })),
    };
}
