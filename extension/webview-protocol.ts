/**
 * Messages between the search side panel (media/search-view.js) and the extension. The webview only ever
 * names a result by its index into the last results the extension sent, never by a path of its own.
 */

/** One result row as the webview draws it; all strings are drawn as text, never as markup. */
export interface ViewHit {
  label: string;
  score: string;
  code: string;
}

export type ToWebview =
  | { type: 'results'; query: string; hits: ViewHit[] }
  | { type: 'busy'; query: string }
  | { type: 'error'; message: string };

export type FromWebview =
  | { type: 'search'; query: string }
  | { type: 'open'; index: number }
  | { type: 'retrieveAtCursor' };
