// Tracks the ghost text on screen to report partial accepts. Pure logic: no `vscode` import.
//
// VS Code's stable API tells an extension when a suggestion is accepted whole (the item's
// command runs) but not when part of it is (Ctrl+Right accepts the next word). The extension
// wraps the partial-accept commands: it marks the next edit as a partial accept, and this
// tracker checks that the edit really inserted the start of ouzel's ghost text.

export interface Position {
    line: number;
    character: number;
}

export interface ShownSuggestion {
    uri: string;
    /** Where the ghost text starts (the cursor when it was requested). */
    anchor: Position;
    /** The item's whole insert text (it may start before the cursor). */
    insertText: string;
    /** The text shown after the cursor: the end of `insertText`. */
    ghost: string;
    /** The server's item, reported back with each partial accept. */
    item: unknown;
}

export interface ContentChange {
    range: { start: Position; end: Position };
    text: string;
}

export interface PartialAccept {
    item: unknown;
    /** Characters of the item's insert text now in the document (UTF-16 code units). */
    acceptedLength: number;
    /** The text the last partial accept inserted. */
    acceptedText: string;
}

export function advance(position: Position, text: string): Position {
    const lines = text.split(/\r\n|\r|\n/);
    if (lines.length === 1) {
        return { line: position.line, character: position.character + text.length };
    }
    return { line: position.line + lines.length - 1, character: lines[lines.length - 1].length };
}

function samePosition(a: Position, b: Position): boolean {
    return a.line === b.line && a.character === b.character;
}

/**
 * The part of `insertText` still to be shown when the document already holds `typed` between
 * the item's range start and the cursor, or undefined when the item does not continue it.
 */
export function ghostText(insertText: string, typed: string): string | undefined {
    if (!insertText.startsWith(typed)) {
        return undefined;
    }
    const ghost = insertText.slice(typed.length);
    return ghost === '' ? undefined : ghost;
}

export class SuggestionTracker {
    private shown: ShownSuggestion | undefined;
    private partialPending = false;

    show(suggestion: ShownSuggestion): void {
        this.shown = { ...suggestion };
    }

    /** The next edit comes from accepting the next word or line of the ghost text. */
    expectPartialAccept(): void {
        this.partialPending = true;
    }

    /** The partial-accept command finished: its edit, if any, has been seen. */
    endPartialAccept(): void {
        this.partialPending = false;
    }

    /** The whole suggestion was accepted (its command ran). */
    acceptedWhole(): void {
        this.shown = undefined;
        this.partialPending = false;
    }

    clear(): void {
        this.shown = undefined;
        this.partialPending = false;
    }

    get current(): ShownSuggestion | undefined {
        return this.shown === undefined ? undefined : { ...this.shown };
    }

    /** Feed every document change; returns a partial accept when this edit was one. */
    onDidChange(uri: string, changes: readonly ContentChange[]): PartialAccept | undefined {
        const shown = this.shown;
        const partial = this.partialPending;
        this.partialPending = false;
        if (shown === undefined || uri !== shown.uri || changes.length === 0) {
            return undefined;
        }
        const change = changes.length === 1 ? changes[0] : undefined;
        const continuesGhost =
            change !== undefined &&
            change.text !== '' &&
            samePosition(change.range.start, change.range.end) &&
            samePosition(change.range.start, shown.anchor) &&
            shown.ghost.startsWith(change.text);
        if (!continuesGhost) {
            this.shown = undefined;
            return undefined;
        }
        // The edit matches the ghost text: either typed through or partially accepted.
        shown.anchor = advance(shown.anchor, change.text);
        shown.ghost = shown.ghost.slice(change.text.length);
        if (!partial) {
            if (shown.ghost === '') {
                this.shown = undefined;
            }
            return undefined;
        }
        const event = {
            item: shown.item,
            acceptedLength: shown.insertText.length - shown.ghost.length,
            acceptedText: change.text,
        };
        if (shown.ghost === '') {
            this.shown = undefined;
        }
        return event;
    }
}
