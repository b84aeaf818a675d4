// What the status bar item says. Pure logic: no `vscode` import.

export type ConnectionState = 'starting' | 'running' | 'stopped' | 'failed';

export interface ProgressState {
    title: string;
    message?: string;
    percentage?: number;
}

export interface StatusState {
    connection: ConnectionState;
    /** `ouzel.completion.enabled` as the extension sees it. */
    enabled: boolean;
    /** "stdio: /ws/.venv/bin/ouzel serve" or "tcp: 127.0.0.1:2087". */
    endpoint: string;
    model?: string;
    progress?: ProgressState;
    lastLatencyMs?: number;
    /** The last error, cleared by the next success. */
    error?: string;
    shown: number;
    accepted: number;
}

export type Severity = 'normal' | 'warning' | 'error';

export interface RenderedStatus {
    text: string;
    tooltip: string;
    severity: Severity;
}

export function initialStatus(endpoint: string, enabled: boolean): StatusState {
    return { connection: 'starting', enabled, endpoint, shown: 0, accepted: 0 };
}

function progressText(progress: ProgressState): string {
    const parts = [progress.title.toLowerCase()];
    if (progress.percentage !== undefined) {
        parts.push(`${Math.round(Math.max(0, Math.min(100, progress.percentage)))}%`);
    }
    return parts.join(' ');
}

export function renderStatus(state: StatusState): RenderedStatus {
    const tooltip = [`ouzel (${state.endpoint})`, `server: ${state.connection}`];
    if (state.model) {
        tooltip.push(`model: ${state.model}`);
    }
    tooltip.push(`completions: ${state.enabled ? 'on' : 'off'}`);
    if (state.progress) {
        const detail = state.progress.message ? `: ${state.progress.message}` : '';
        tooltip.push(`${progressText(state.progress)}${detail}`);
    }
    if (state.lastLatencyMs !== undefined) {
        tooltip.push(`last completion: ${Math.round(state.lastLatencyMs)} ms`);
    }
    tooltip.push(`suggestions shown ${state.shown}, accepted ${state.accepted}`);
    if (state.error) {
        tooltip.push(`error: ${state.error}`);
    }

    let icon = '$(sparkle)';
    const words: string[] = ['ouzel'];
    let severity: Severity = 'normal';
    if (state.connection === 'failed') {
        icon = '$(error)';
        severity = 'error';
        words.push('server failed');
    } else if (state.connection === 'stopped') {
        icon = '$(debug-disconnect)';
        severity = 'warning';
        words.push('stopped');
    } else if (state.connection === 'starting') {
        icon = '$(loading~spin)';
        words.push('starting');
    } else if (!state.enabled) {
        icon = '$(circle-slash)';
        words.push('off');
    } else {
        if (state.model) {
            words.push(state.model);
        }
        if (state.progress) {
            icon = '$(sync~spin)';
            words.push(progressText(state.progress));
        } else if (state.lastLatencyMs !== undefined) {
            words.push(`${Math.round(state.lastLatencyMs)} ms`);
        }
    }
    if (state.error && severity === 'normal') {
        icon = '$(warning)';
        severity = 'warning';
    }
    return { text: `${icon} ${words.join(' · ')}`, tooltip: tooltip.join('\n'), severity };
}

/** Work-done progress by token; the newest active one is shown. */
export class ProgressTracker {
    private readonly active = new Map<string, ProgressState>();

    update(token: string | number, value: unknown): void {
        const key = String(token);
        if (typeof value !== 'object' || value === null) {
            return;
        }
        const report = value as { kind?: string; title?: string; message?: string; percentage?: number };
        if (report.kind === 'begin') {
            this.active.delete(key); // re-insert so it becomes the newest
            this.active.set(key, {
                title: report.title ?? 'working',
                message: report.message,
                percentage: report.percentage,
            });
        } else if (report.kind === 'report') {
            const current = this.active.get(key);
            if (current !== undefined) {
                if (report.message !== undefined) {
                    current.message = report.message;
                }
                if (report.percentage !== undefined) {
                    current.percentage = report.percentage;
                }
            }
        } else if (report.kind === 'end') {
            this.active.delete(key);
        }
    }

    current(): ProgressState | undefined {
        let newest: ProgressState | undefined;
        for (const state of this.active.values()) {
            newest = state;
        }
        return newest === undefined ? undefined : { ...newest };
    }

    clear(): void {
        this.active.clear();
    }
}

export interface ModelSummary {
    /** A short name for the status bar: the GGUF's file name, a model id or "embedded". */
    name?: string;
    /** Why the model cannot serve, when it cannot. */
    error?: string;
}

/**
 * The model from an `ouzel/status` result. The server's "model" section is an object
 * (`{profile, path, state, error, ...}`); a plain string under `model` is taken as the name.
 */
export function modelFromStatus(status: unknown): ModelSummary {
    if (typeof status !== 'object' || status === null) {
        return {};
    }
    const model = (status as Record<string, unknown>)['model'];
    if (typeof model === 'string') {
        return model === '' ? {} : { name: shortModelName(model) };
    }
    if (typeof model !== 'object' || model === null) {
        return {};
    }
    const section = model as Record<string, unknown>;
    const summary: ModelSummary = {};
    for (const key of ['path', 'model', 'profile']) {
        const value = section[key];
        if (typeof value === 'string' && value !== '') {
            summary.name = shortModelName(value);
            break;
        }
    }
    if (section['state'] === 'failed') {
        const reason = typeof section['error'] === 'string' ? section['error'] : 'it could not load';
        summary.error = `model ${summary.name ?? ''} unavailable: ${reason}`.replace('  ', ' ');
    }
    return summary;
}

/** "/models/gemma-3-270m-it-Q4_K_M.gguf" → "gemma-3-270m-it-Q4_K_M". */
export function shortModelName(name: string): string {
    const base = name.split(/[\\/]/).pop() ?? name;
    return base.replace(/\.gguf$/i, '');
}
