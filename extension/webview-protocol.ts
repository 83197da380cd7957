/**
 * Messages between the search side panel (media/search-view.js) and the extension. The webview only ever
 * names a result by its index into the last results the extension sent, never by a path of its own.
 */

import type { TrainingStatus } from '../sidecar/server/protocol';

/** One result row as the webview draws it; all strings are drawn as text, never as markup. */
export interface ViewHit {
  /** Relative to the workspace folder. */
  path: string;
  /** `10-29`: kept apart from the path so that it stays visible however long the path is. */
  lines: string;
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

/** Messages between the training view (media/training-view.js) and the extension. */

/** One point of the loss chart. */
export interface ViewLossPoint {
  step: number;
  loss: number;
  entropyRetriever: number;
  entropyTeacher: number;
}

export type ToTrainingView =
  /** `trusted`: false in Restricted Mode, where training (it calls the LM) is unavailable. */
  | { type: 'training'; status: TrainingStatus; history: ViewLossPoint[]; trusted: boolean }
  | { type: 'comparison'; query: string; tunedName: string; base: ViewHit[]; tuned: ViewHit[] };

export type FromTrainingView =
  | { type: 'train' }
  | { type: 'cancel' }
  | { type: 'compare'; query: string }
  | { type: 'open'; side: 'base' | 'tuned'; index: number }
  | { type: 'ready' };
