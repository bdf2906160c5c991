// Tuple-space search classifier: one hash subtable per distinct mask, flows chained per
// bucket in priority order, subtables visited in decreasing max-priority order with pruning.
// lookup() also ORs the masks of the visited subtables into `wc`, which is the megaflow mask
// the result depends on.
import { KEY_WORDS } from './consts.js';
import { type Flow, sameMatch } from './flow.js';

class Subtable {
  readonly mask: Uint32Array;
  /** Indices of the non-zero mask words. */
  readonly words: Int32Array;
  buckets: (Flow | null)[];
  bmask: number;
  count = 0;
  maxPriority = -1;

  constructor(mask: Uint32Array) {
    this.mask = mask.slice();
    const w: number[] = [];
    for (let i = 0; i < KEY_WORDS; i++) if (mask[i] !== 0) w.push(i);
    this.words = Int32Array.from(w);
    this.buckets = new Array<Flow | null>(8).fill(null);
    this.bmask = 7;
  }

  hash(key: Uint32Array): number {
    let h = 0x9747b28c;
    const words = this.words;
    const mask = this.mask;
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      h = Math.imul(h ^ (key[w] & mask[w]), 0x5bd1e995);
      h ^= h >>> 13;
    }
    return (h ^ (h >>> 15)) >>> 0;
  }

  matches(f: Flow, key: Uint32Array): boolean {
    const words = this.words;
    const mask = this.mask;
    const v = f.value;
    for (let i = 0; i < words.length; i++) {
      const w = words[i];
      if (((key[w] & mask[w]) >>> 0) !== v[w]) return false;
    }
    return true;
  }

  insert(f: Flow): void {
    if (this.count + 1 > this.buckets.length) this.grow();
    const b = this.hash(f.value) & this.bmask;
    let prev: Flow | null = null;
    let cur = this.buckets[b];
    while (cur != null && cur.priority >= f.priority) {
      prev = cur;
      cur = cur.next;
    }
    f.next = cur;
    if (prev == null) this.buckets[b] = f;
    else prev.next = f;
    this.count++;
    if (f.priority > this.maxPriority) this.maxPriority = f.priority;
  }

  remove(f: Flow): void {
    const b = this.hash(f.value) & this.bmask;
    let prev: Flow | null = null;
    let cur = this.buckets[b];
    while (cur != null && cur !== f) {
      prev = cur;
      cur = cur.next;
    }
    if (cur == null) return;
    if (prev == null) this.buckets[b] = f.next;
    else prev.next = f.next;
    f.next = null;
    this.count--;
  }

  private grow(): void {
    const old = this.buckets;
    const n = old.length * 2;
    this.buckets = new Array<Flow | null>(n).fill(null);
    this.bmask = n - 1;
    const all: Flow[] = [];
    for (let f of old) {
      while (f != null) {
        const nx: Flow | null = f.next;
        all.push(f);
        f = nx;
      }
    }
    this.count = 0;
    all.sort((a, b) => b.priority - a.priority);
    for (let i = all.length - 1; i >= 0; i--) this.insertHead(all[i]);
  }

  /** Inserts keeping priority order when called in increasing priority order... used by grow (reverse sorted). */
  private insertHead(f: Flow): void {
    const b = this.hash(f.value) & this.bmask;
    // all[] is sorted descending and we insert from lowest to highest, so the head is right.
    f.next = this.buckets[b];
    this.buckets[b] = f;
    this.count++;
  }

  recomputeMax(): void {
    let m = -1;
    for (let f of this.buckets) {
      while (f != null) {
        if (f.priority > m) m = f.priority;
        f = f.next;
      }
    }
    this.maxPriority = m;
  }
}

/** One OpenFlow table. */
export class FlowTable {
  readonly id: number;
  private subtables: Subtable[] = [];
  count = 0;
  /** Lookups and matches, for dump-tables. */
  lookups = 0;
  matched = 0;
  name: string;

  constructor(id: number) {
    this.id = id;
    this.name = `table${id}`;
  }

  private findSubtable(mask: Uint32Array): Subtable | null {
    outer: for (const st of this.subtables) {
      for (let i = 0; i < KEY_WORDS; i++) if (st.mask[i] !== mask[i]) continue outer;
      return st;
    }
    return null;
  }

  private sortSubtables(): void {
    this.subtables.sort((a, b) => b.maxPriority - a.maxPriority);
  }

  insert(f: Flow): void {
    let st = this.findSubtable(f.mask);
    if (st == null) {
      st = new Subtable(f.mask);
      this.subtables.push(st);
    }
    st.insert(f);
    this.count++;
    this.sortSubtables();
  }

  remove(f: Flow): void {
    const st = this.findSubtable(f.mask);
    if (st == null) return;
    const before = st.count;
    st.remove(f);
    if (st.count === before) return;
    this.count--;
    if (st.count === 0) this.subtables.splice(this.subtables.indexOf(st), 1);
    else if (f.priority === st.maxPriority) st.recomputeMax();
    this.sortSubtables();
  }

  /** The flow with identical match and priority, if any. */
  findExact(value: Uint32Array, mask: Uint32Array, priority: number): Flow | null {
    const st = this.findSubtable(mask);
    if (st == null) return null;
    let f = st.buckets[st.hash(value) & st.bmask];
    while (f != null) {
      if (f.priority === priority && sameMatch(f.value, f.mask, value, mask)) return f;
      f = f.next;
    }
    return null;
  }

  /**
   * Highest-priority flow matching `key`, or null. ORs the consulted masks into `wc`.
   */
  lookup(key: Uint32Array, wc: Uint32Array | null): Flow | null {
    let best: Flow | null = null;
    const sts = this.subtables;
    for (let i = 0; i < sts.length; i++) {
      const st = sts[i];
      if (best != null && st.maxPriority <= best.priority) break;
      if (wc != null) {
        const words = st.words;
        for (let j = 0; j < words.length; j++) wc[words[j]] |= st.mask[words[j]];
      }
      let f = st.buckets[st.hash(key) & st.bmask];
      while (f != null) {
        if ((best == null || f.priority > best.priority) && st.matches(f, key)) {
          best = f;
          break;
        }
        f = f.next;
      }
    }
    return best;
  }

  /** Every flow (allocates; control path only). */
  flows(): Flow[] {
    const out: Flow[] = [];
    for (const st of this.subtables) {
      for (let f of st.buckets) {
        while (f != null) {
          out.push(f);
          f = f.next;
        }
      }
    }
    out.sort((a, b) => b.priority - a.priority);
    return out;
  }

  get subtableCount(): number {
    return this.subtables.length;
  }
}
