/**
 * Repository text inside markdown: a fence longer than any backtick run in the code, so a snippet can never close
 * its fence and have the rest read as markup (or, for an LLM agent, as text outside the excerpt).
 * Shared by the editor's hover and the agent tools' text results; imports nothing so both bundles can use it.
 */
export function codeFence(code: string, language = ''): string {
  const longestRun = Math.max(0, ...(code.match(/`+/g) ?? []).map((run) => run.length));
  const fence = '`'.repeat(Math.max(3, longestRun + 1));
  return `${fence}${language}\n${code}\n${fence}`;
}

/** Fence language from the file extension; unknown ones simply get no highlighting. */
export function fenceLanguage(path: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(path)?.[1]?.toLowerCase() ?? '';
  return /^[a-z0-9]+$/.test(ext) ? ext : '';
}
