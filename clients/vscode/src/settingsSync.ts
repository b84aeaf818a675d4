// Which settings go to the server. Pure logic: no `vscode` import.
//
// VS Code answers `workspace/configuration` with every contributed default filled in. Sent
// as is, those defaults would override the user's `.ouzel/config.toml`, so only values the
// user set explicitly (user, workspace or folder settings) are sent.

/** Settings the extension reads itself (`ouzel.server.*`, `ouzel.trace.*`). */
export const CLIENT_ONLY_SECTIONS: readonly string[] = ['server', 'trace'];

export const SECTION = 'ouzel';

export interface InspectedValue {
    globalValue?: unknown;
    workspaceValue?: unknown;
    workspaceFolderValue?: unknown;
}

interface ContributedConfiguration {
    properties?: Record<string, unknown>;
}

/** The `ouzel.*` keys in a package.json `contributes.configuration` (one object or a list). */
export function contributedKeys(configuration: unknown): string[] {
    const categories = Array.isArray(configuration) ? configuration : [configuration];
    const keys: string[] = [];
    for (const category of categories as ContributedConfiguration[]) {
        for (const key of Object.keys(category?.properties ?? {})) {
            if (key.startsWith(SECTION + '.')) {
                keys.push(key);
            }
        }
    }
    return keys;
}

/** Keys the server understands: every contributed key but the extension's own. */
export function serverKeys(keys: readonly string[]): string[] {
    return keys.filter((key) => {
        const first = key.split('.')[1];
        return first !== undefined && !CLIENT_ONLY_SECTIONS.includes(first);
    });
}

/** The most specific explicit value, or undefined when only the default applies. */
export function explicitValue(inspected: InspectedValue | undefined): unknown {
    if (inspected === undefined) {
        return undefined;
    }
    return inspected.workspaceFolderValue ?? inspected.workspaceValue ?? inspected.globalValue;
}

/**
 * Nested settings object (`{completion: {debounceMs: 80}}`) of the explicitly set values of
 * `keys` (full names such as `ouzel.completion.debounceMs`).
 */
export function explicitSettings(
    keys: readonly string[],
    inspect: (key: string) => InspectedValue | undefined,
): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    for (const key of serverKeys(keys)) {
        const value = explicitValue(inspect(key));
        if (value === undefined) {
            continue;
        }
        const parts = key.split('.').slice(1);
        let node = result;
        for (const part of parts.slice(0, -1)) {
            const child = node[part];
            if (typeof child !== 'object' || child === null || Array.isArray(child)) {
                node[part] = {};
            }
            node = node[part] as Record<string, unknown>;
        }
        node[parts[parts.length - 1]] = structuredClone(value);
    }
    return result;
}
