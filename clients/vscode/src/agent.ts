// The agent over LSP (docs/AGENT.md) as the extension uses it: the params of `ouzel.agent`,
// the tool steps of its `$/progress` reports, its result, the result of `ouzel.agent.undo`,
// and which documents may be settled (saved) after a turn. Plain logic, no VS Code:
// unit-tested in test/agent.test.ts.

export const AGENT_COMMAND = 'ouzel.agent';
export const AGENT_UNDO_COMMAND = 'ouzel.agent.undo';
export const MAX_AGENT_MESSAGE_CHARS = 20000;

export interface Position {
    line: number;
    character: number;
}

export interface RangeJson {
    start: Position;
    end: Position;
}

export type ToolStatus = 'ok' | 'refused' | 'failed';

/** One tool call of a turn, as the progress reports (or the stored turn) name it. */
export interface ToolStep {
    name: string;
    summary: string;
    status: ToolStatus;
    reason?: string;
}

/** One file the turn proposed to change. */
export interface AgentFile {
    path: string;
    uri?: string;
    created: boolean;
    hunks: number;
    accepted: number;
}

export interface EditCounts {
    proposed: number;
    applied: number;
    rejected: number;
    refused: number;
    retried: number;
}

export type AgentStatus = 'done' | 'steps' | 'tokens' | 'time' | 'cancelled' | 'error';

export interface AgentResult {
    conversationId?: string;
    turnId?: string;
    status: AgentStatus;
    answer: string;
    files: AgentFile[];
    edits: EditCounts;
    steps?: number;
    tokens?: number;
    backend?: string;
    error?: string;
    /** The turn id to undo, when the server offers undo for this turn. */
    undoTurnId?: string;
}

export interface UndoResult {
    turnId?: string;
    restored: string[];
    deleted: string[];
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function count(value: unknown): number {
    return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0;
}

function text(value: unknown): string | undefined {
    return typeof value === 'string' && value ? value : undefined;
}

/** The single argument of `ouzel.agent` (the same params as `ouzel/chat` with `mode: "agent"`). */
export function agentParams(options: {
    message: string;
    workDoneToken: string;
    conversationId?: string;
    uri?: string;
    selection?: RangeJson;
}): Record<string, unknown> {
    const params: Record<string, unknown> = { message: options.message, workDoneToken: options.workDoneToken };
    if (options.conversationId !== undefined) {
        params.conversationId = options.conversationId;
    }
    if (options.uri !== undefined) {
        params.textDocument = { uri: options.uri };
        if (options.selection !== undefined) {
            params.selection = options.selection;
        }
    }
    return params;
}

/** For the input box of "Ask the agent…": a message when the text cannot be sent. */
export function agentMessageProblem(message: string): string | undefined {
    if (!message.trim()) {
        return 'Say what the agent should change, e.g. "rename area to surface in geometry.py and its callers".';
    }
    if (message.length > MAX_AGENT_MESSAGE_CHARS) {
        return `At most ${MAX_AGENT_MESSAGE_CHARS.toLocaleString('en')} characters (this is ${message.length.toLocaleString('en')}).`;
    }
    return undefined;
}

const TOOL_STATUSES: readonly string[] = ['ok', 'refused', 'failed'];

/** A `tool` object of a progress report or of a stored turn, checked; else undefined. */
export function toolStep(value: unknown): ToolStep | undefined {
    if (!isObject(value) || typeof value.name !== 'string' || !value.name) {
        return undefined;
    }
    const status = typeof value.status === 'string' && TOOL_STATUSES.includes(value.status) ? (value.status as ToolStatus) : 'ok';
    const step: ToolStep = { name: value.name, summary: typeof value.summary === 'string' ? value.summary : '', status };
    const reason = text(value.reason);
    if (reason !== undefined) {
        step.reason = reason;
    }
    return step;
}

export function toolSteps(value: unknown): ToolStep[] {
    return Array.isArray(value) ? value.map(toolStep).filter((step): step is ToolStep => step !== undefined) : [];
}

function agentFile(value: unknown): AgentFile | undefined {
    if (!isObject(value) || typeof value.path !== 'string' || !value.path) {
        return undefined;
    }
    return {
        path: value.path,
        uri: text(value.uri),
        created: value.created === true,
        hunks: count(value.hunks),
        accepted: count(value.accepted),
    };
}

const AGENT_STATUSES: readonly string[] = ['done', 'steps', 'tokens', 'time', 'cancelled', 'error'];

/** The result of `ouzel.agent`; undefined when it is not one. */
export function agentResult(value: unknown): AgentResult | undefined {
    if (!isObject(value) || typeof value.status !== 'string') {
        return undefined;
    }
    const status = AGENT_STATUSES.includes(value.status) ? (value.status as AgentStatus) : 'error';
    const edits = isObject(value.edits) ? value.edits : {};
    const undo = isObject(value.undo) ? value.undo : undefined;
    const undoArgument = Array.isArray(undo?.arguments) && isObject(undo.arguments[0]) ? undo.arguments[0] : undefined;
    const result: AgentResult = {
        conversationId: text(value.conversationId),
        turnId: text(value.turnId),
        status,
        answer: typeof value.answer === 'string' ? value.answer : '',
        files: Array.isArray(value.files) ? value.files.map(agentFile).filter((file): file is AgentFile => file !== undefined) : [],
        edits: {
            proposed: count(edits.proposed),
            applied: count(edits.applied),
            rejected: count(edits.rejected),
            refused: count(edits.refused),
            retried: count(edits.retried),
        },
        steps: typeof value.steps === 'number' ? value.steps : undefined,
        tokens: typeof value.tokens === 'number' ? value.tokens : undefined,
        backend: text(value.backend),
        error: text(value.error),
        undoTurnId: undo?.command === AGENT_UNDO_COMMAND ? (text(undoArgument?.turnId) ?? text(value.turnId)) : undefined,
    };
    if (!AGENT_STATUSES.includes(value.status)) {
        result.error = result.error ?? `the server sent an unknown status ${JSON.stringify(value.status)}`;
    }
    return result;
}

/** Whether the turn wrote anything the user could want undone. */
export function changedSomething(result: AgentResult): boolean {
    return result.edits.applied > 0 || result.files.some((file) => file.accepted > 0);
}

const LIMITS: Record<string, string> = {
    steps: 'stopped: the step budget (agent.max_steps) ran out',
    tokens: 'stopped: the token budget (agent.max_tokens) ran out',
    time: 'stopped: the time budget (agent.max_wall_s) ran out',
};

/** A line about a turn that ended before the model was done, or undefined. */
export function limitNote(status: string): string | undefined {
    return LIMITS[status];
}

/** "2 file(s) changed: geometry.py (2 of 2 changes), shapes.py (created)". */
export function filesSummary(result: Pick<AgentResult, 'files' | 'edits'>): string {
    const changed = result.files.filter((file) => file.accepted > 0);
    const parts = result.files.map((file) => {
        if (file.created) {
            return `${file.path} (${file.accepted > 0 ? 'created' : 'not created'})`;
        }
        return `${file.path} (${file.accepted} of ${file.hunks} change${file.hunks === 1 ? '' : 's'})`;
    });
    const head = `${changed.length} file(s) changed`;
    const extra: string[] = [];
    if (result.edits.refused > 0) {
        extra.push(`${result.edits.refused} edit(s) refused`);
    }
    if (result.edits.rejected > 0) {
        extra.push(`${result.edits.rejected} rejected by you`);
    }
    return [parts.length ? `${head}: ${parts.join(', ')}` : head, ...extra].join('; ');
}

/** The result of `ouzel.agent.undo`; undefined when it is not one. */
export function undoResult(value: unknown): UndoResult | undefined {
    if (!isObject(value)) {
        return undefined;
    }
    const strings = (items: unknown): string[] =>
        Array.isArray(items) ? items.filter((item): item is string => typeof item === 'string') : [];
    if (!Array.isArray(value.restored) && !Array.isArray(value.deleted)) {
        return undefined;
    }
    return { turnId: text(value.turnId), restored: strings(value.restored), deleted: strings(value.deleted) };
}

/** What to tell the user after an undo. */
export function undoSummary(result: UndoResult): string {
    const parts: string[] = [];
    if (result.restored.length > 0) {
        parts.push(`restored ${result.restored.join(', ')}`);
    }
    if (result.deleted.length > 0) {
        parts.push(`deleted ${result.deleted.join(', ')}`);
    }
    return parts.length ? `undid the agent turn: ${parts.join('; ')}` : 'undid the agent turn (nothing to restore)';
}

/** The URIs a turn (or an undo) touched, for settling their documents afterwards. */
export function touchedUris(result: Pick<AgentResult, 'files'>): string[] {
    return result.files.map((file) => file.uri).filter((uri): uri is string => uri !== undefined);
}

/** A document whose text is what is on disk may be marked saved: the server wrote it. The
 *  disk bytes are decoded as UTF-8 (a leading BOM is not part of the text). */
export function textEqualsDisk(documentText: string, disk: Uint8Array): boolean {
    let decoded: string;
    try {
        decoded = new TextDecoder('utf-8', { fatal: true }).decode(disk);
    } catch {
        return false;
    }
    return decoded === documentText;
}

/** Settings that change a file while it is saved: then a save would not just mark it clean. */
export const SAVE_PARTICIPANT_SETTINGS = ['editor.formatOnSave', 'files.trimTrailingWhitespace', 'files.insertFinalNewline', 'files.trimFinalNewlines'];

export function savingChangesText(get: (key: string) => unknown): boolean {
    if (SAVE_PARTICIPANT_SETTINGS.some((key) => get(key) === true)) {
        return true;
    }
    const actions = get('editor.codeActionsOnSave');
    if (Array.isArray(actions)) {
        return actions.length > 0;
    }
    return isObject(actions) && Object.values(actions).some((setting) => setting === true || setting === 'explicit' || setting === 'always');
}
