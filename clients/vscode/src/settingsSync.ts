// Which settings go to the server. Pure logic: no `vscode` import.
//
// VS Code answers `workspace/configuration` with every contributed default filled in. Sent
// as is, those defaults would override the user's `.ouzel/config.toml`, so only values the
// user set explicitly (user, workspace or folder settings) are sent.
//
// A workspace's `.vscode/settings.json` arrives with the repository, like its
// `.ouzel/config.toml`. Settings a workspace may not set freely (endpoints, keys, routing,
// privacy, secret rules) are contributed with `"scope": "machine"`; for those only the
// user's own (global) value is sent, even if `inspect` reports a workspace value.

/** Settings the extension reads itself (`ouzel.server.*`, `ouzel.trace.*`). */
export const CLIENT_ONLY_SECTIONS: readonly string[] = ['server', 'trace'];

export const SECTION = 'ouzel';

export interface InspectedValue {
    globalValue?: unknown;
    workspaceValue?: unknown;
    workspaceFolderValue?: unknown;
}

interface ContributedConfiguration {
    properties?: Record<string, { scope?: unknown } | undefined>;
}

/** Scopes VS Code reads only from the user's own settings. */
export const USER_ONLY_SCOPES: readonly string[] = ['machine', 'application'];

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

/** The `ouzel.*` keys whose contributed scope lets only the user's own settings set them. */
export function userOnlyKeys(configuration: unknown): Set<string> {
    const categories = Array.isArray(configuration) ? configuration : [configuration];
    const keys = new Set<string>();
    for (const category of categories as ContributedConfiguration[]) {
        for (const [key, schema] of Object.entries(category?.properties ?? {})) {
            if (key.startsWith(SECTION + '.') && USER_ONLY_SCOPES.includes(String(schema?.scope))) {
                keys.add(key);
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

/**
 * The most specific explicit value, or undefined when only the default applies. With
 * `userOnly`, workspace and folder values are ignored: only the user's global value counts.
 */
export function explicitValue(inspected: InspectedValue | undefined, userOnly = false): unknown {
    if (inspected === undefined) {
        return undefined;
    }
    if (userOnly) {
        return inspected.globalValue;
    }
    return inspected.workspaceFolderValue ?? inspected.workspaceValue ?? inspected.globalValue;
}

/**
 * Nested settings object (`{completion: {debounceMs: 80}}`) of the explicitly set values of
 * `keys` (full names such as `ouzel.completion.debounceMs`); keys in `userOnly` are taken
 * from the user's global settings only.
 */
export function explicitSettings(
    keys: readonly string[],
    inspect: (key: string) => InspectedValue | undefined,
    userOnly: ReadonlySet<string> = new Set(),
): Record<string, unknown> {
    const result: Record<string, unknown> = {};
    for (const key of serverKeys(keys)) {
        const value = explicitValue(inspect(key), userOnly.has(key));
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
