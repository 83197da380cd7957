/**
 * The rules that keep the LM API key with the server the user entered it for, and keep a repository's settings
 * from choosing where code (and the key) is sent unasked. Pure (no `vscode` import), so they are unit-tested;
 * lm-access.ts asks the user and remembers the answers.
 */

/** The key as kept in SecretStorage: bound to the origin (scheme, host and port) it was entered for. */
export interface StoredKey {
  key: string;
  /** Absent for a key saved before keys were bound (asked about once, then bound). */
  origin?: string;
}

/** `https://host:port` of an http(s) URL; undefined for anything else. */
export function originOf(url: string): string | undefined {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'http:' || parsed.protocol === 'https:' ? parsed.origin : undefined;
  } catch {
    return undefined;
  }
}

export function serializeKey(stored: StoredKey): string {
  return JSON.stringify(stored);
}

/** Reads the secret; a plain string is a key from before keys were bound. */
export function parseStoredKey(secret: string | undefined): StoredKey | undefined {
  if (!secret) return undefined;
  try {
    const parsed = JSON.parse(secret) as Partial<StoredKey>;
    if (typeof parsed.key === 'string' && parsed.key) {
      return { key: parsed.key, origin: typeof parsed.origin === 'string' ? parsed.origin : undefined };
    }
  } catch {
    // not JSON: the old format
  }
  return { key: secret };
}

/** What to do with the key for a request to `baseUrl`: send it only to its own origin, otherwise the user decides. */
export function keyDecision(stored: StoredKey | undefined, baseUrl: string, remembered: (question: string) => boolean | undefined): 'send' | 'none' | { ask: string } {
  if (!stored) return 'none';
  const target = originOf(baseUrl);
  if (!target) return 'none';
  if (stored.origin === target) return 'send';
  const question = keyQuestion(stored, target);
  const answer = remembered(question);
  return answer === undefined ? { ask: question } : answer ? 'send' : 'none';
}

/** The decision's identity: the key's origin and the origin it would go to. */
export function keyQuestion(stored: StoredKey, target: string): string {
  return `${stored.origin ?? '(unbound key)'} -> ${target}`;
}

/** Where an effective setting value comes from, from `WorkspaceConfiguration.inspect`. */
export interface SettingLayers<T> {
  defaultValue?: T;
  globalValue?: T;
  workspaceValue?: T;
  workspaceFolderValue?: T;
}

/**
 * The value a workspace (its `.vscode/settings.json` or `.code-workspace` file) sets for a setting, when that is the
 * value in effect; undefined when the value is the user's or the default.
 */
export function workspaceProvided<T>(layers: SettingLayers<T> | undefined): T | undefined {
  return layers?.workspaceFolderValue ?? layers?.workspaceValue;
}

/** A setting value as a stable string, for showing it exactly and remembering a decision about it. */
export function settingText(value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
