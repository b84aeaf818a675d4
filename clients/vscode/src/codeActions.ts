// The server's AI code actions (docs/CHAT.md sections 2-4) as the extension runs them: the
// instruction for "edit selection", the client-made progress token, and what to tell the
// user about the result. Plain logic, no VS Code: unit-tested in test/codeActions.test.ts.

export const RUN_COMMAND = 'ouzel.codeAction.run';
export const APPLY_BLOCK_COMMAND = 'ouzel.applyCodeBlock';
export const MAX_INSTRUCTION_CHARS = 2000;

export interface RunArgument {
    action: string;
    instruction?: string | null;
    workDoneToken?: string | number | null;
    conversationId?: string | null;
    [key: string]: unknown;
}

function isObject(value: unknown): value is Record<string, unknown> {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The single argument of `ouzel.codeAction.run`, or undefined when it is not one. */
export function runArgument(args: readonly unknown[] | undefined): RunArgument | undefined {
    const first = args?.[0];
    if (args?.length !== 1 || !isObject(first) || typeof first.action !== 'string') {
        return undefined;
    }
    return first as RunArgument;
}

/** "Edit selection" comes without an instruction: the client asks the user for one. */
export function needsInstruction(argument: RunArgument): boolean {
    return argument.action === 'edit' && !(typeof argument.instruction === 'string' && argument.instruction.trim());
}

/** For `showInputBox`'s `validateInput`: a message when the text cannot be sent. */
export function instructionProblem(text: string): string | undefined {
    if (!text.trim()) {
        return 'Say what to change, e.g. "use pathlib instead of os.path".';
    }
    if (text.length > MAX_INSTRUCTION_CHARS) {
        return `At most ${MAX_INSTRUCTION_CHARS.toLocaleString('en')} characters (this is ${text.length.toLocaleString('en')}).`;
    }
    return undefined;
}

/** A copy of the argument with the user's instruction and the token the extension listens on. */
export function withRunOptions(argument: RunArgument, token: string, instruction?: string): RunArgument {
    const copy: RunArgument = { ...argument, workDoneToken: token };
    if (instruction !== undefined) {
        copy.instruction = instruction.trim();
    }
    return copy;
}

export type Severity = 'info' | 'warning' | 'error';

export interface RunOutcome {
    severity: Severity;
    text: string;
    /** explain / tests: the answer is a chat turn the chat view can show. */
    conversationId?: string;
}

const STATUS_SEVERITY: Record<string, Severity> = {
    applied: 'info',
    rejected: 'info',
    unchanged: 'info',
    answered: 'info',
    cancelled: 'info',
    refused: 'warning',
    stale: 'warning',
    failed: 'error',
};

const STATUS_TEXT: Record<string, string> = {
    applied: 'the change was applied',
    rejected: 'you discarded the change',
    unchanged: 'the model proposed no change',
    answered: 'answered',
    cancelled: 'cancelled',
    refused: 'the model reply was refused',
    stale: 'the document changed while the model worked; nothing was applied',
    failed: 'no model could do it',
};

/** What to tell the user about `ouzel.codeAction.run`'s (or `ouzel.applyCodeBlock`'s) result. */
export function runOutcome(result: unknown): RunOutcome {
    if (!isObject(result) || typeof result.status !== 'string') {
        return { severity: 'error', text: `ouzel: unexpected answer from the server: ${JSON.stringify(result)?.slice(0, 200)}` };
    }
    const status = result.status;
    const severity = STATUS_SEVERITY[status] ?? 'warning';
    const message = typeof result.message === 'string' && result.message.trim() ? result.message.trim() : STATUS_TEXT[status] ?? status;
    const outcome: RunOutcome = { severity, text: `ouzel: ${message}` };
    if (typeof result.conversationId === 'string' && result.conversationId) {
        outcome.conversationId = result.conversationId;
    }
    return outcome;
}

/** What the progress notification shows while the model works. */
export interface ProgressView {
    message?: string;
    done: boolean;
}

/** Follows one work-done token's `$/progress` values (begin, reports with `delta`, end). */
export class ProgressFollower {
    private title = '';
    private chars = 0;

    update(value: unknown): ProgressView {
        if (!isObject(value)) {
            return { done: false };
        }
        if (value.kind === 'begin') {
            this.title = typeof value.title === 'string' ? value.title : '';
            return { message: 'waiting for the model…', done: false };
        }
        if (value.kind === 'report') {
            if (typeof value.delta === 'string') {
                this.chars += value.delta.length;
            }
            const message = typeof value.message === 'string' && value.message ? value.message : 'generating…';
            return { message: this.chars > 0 ? `${message} (${this.chars.toLocaleString('en')} characters)` : message, done: false };
        }
        if (value.kind === 'end') {
            return { message: typeof value.message === 'string' ? value.message : undefined, done: true };
        }
        return { done: false };
    }

    get heading(): string {
        return this.title;
    }
}
