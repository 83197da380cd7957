import type { Passage } from '../corpus/passage';

/** A passage as stored: `label` is its slot in the dense index, or -1 while it has no vector. */
export interface StoredPassage extends Passage {
  label: number;
}

/** What the index knows of one source file, to skip it cheaply when unchanged. */
export interface FileRecord {
  /** The root the file was found under ('' for CSV corpora given by path). */
  root: string;
  size: number;
  mtimeMs: number;
  passageIds: string[];
}

/** Passage metadata and file table of one generation (`passages.json`). */
export interface StoredState {
  nextLabel: number;
  files: Record<string, FileRecord>;
  passages: StoredPassage[];
}

const JSON_BATCH = 1000;

/** In-memory tables with the lookups incremental updates need. */
export class PassageTable {
  readonly files = new Map<string, FileRecord>();
  readonly byId = new Map<string, StoredPassage>();
  readonly byLabel = new Map<number, StoredPassage>();
  /** Text hash → label of a live passage with that text: an unchanged text moved elsewhere keeps its vector. */
  private readonly labelByHash = new Map<string, number>();
  nextLabel = 0;

  static fromStored(state: StoredState): PassageTable {
    const table = new PassageTable();
    table.nextLabel = state.nextLabel;
    for (const [file, record] of Object.entries(state.files)) table.files.set(file, record);
    for (const passage of state.passages) table.put(passage);
    return table;
  }

  toStored(): StoredState {
    return { nextLabel: this.nextLabel, files: Object.fromEntries(this.files), passages: [...this.byId.values()] };
  }

  /**
   * `toStored()` as JSON text in pieces of about a thousand passages, so a save never holds the whole text (several
   * times the size of the source for a large workspace) as one string and again as its bytes.
   */
  *toJsonChunks(): Generator<string> {
    yield `{"nextLabel":${this.nextLabel},"files":${JSON.stringify(Object.fromEntries(this.files))},"passages":[`;
    let batch: string[] = [];
    let first = true;
    for (const passage of this.byId.values()) {
      batch.push(JSON.stringify(passage));
      if (batch.length === JSON_BATCH) {
        yield `${first ? '' : ','}${batch.join(',')}`;
        [batch, first] = [[], false];
      }
    }
    if (batch.length) yield `${first ? '' : ','}${batch.join(',')}`;
    yield ']}';
  }

  put(passage: StoredPassage): void {
    this.byId.set(passage.id, passage);
    if (passage.label >= 0) {
      this.byLabel.set(passage.label, passage);
      this.labelByHash.set(passage.hash, passage.label);
    }
  }

  delete(id: string): StoredPassage | undefined {
    const passage = this.byId.get(id);
    if (!passage) return undefined;
    this.byId.delete(id);
    if (passage.label >= 0) {
      this.byLabel.delete(passage.label);
      if (this.labelByHash.get(passage.hash) === passage.label) this.labelByHash.delete(passage.hash);
    }
    return passage;
  }

  /** Label of a live passage whose text has this hash, if any. */
  labelForHash(hash: string): number | undefined {
    return this.labelByHash.get(hash);
  }
}
