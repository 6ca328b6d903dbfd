import { describe, expect, it } from "vitest";
import { committedLength, RECORD_BYTES, RECORD_KIND, RECORD_LAP_BIT, traceLayout } from "./trace-layout.js";

/** A record as the runtime writes it: kind and lap bit in the second word. */
function record(kind: number, lap: number, fid = 7): Uint8Array {
  const r = new Uint8Array(RECORD_BYTES);
  const view = new DataView(r.buffer);
  view.setBigUint64(0, 0x1234n, true);
  view.setBigUint64(8, (BigInt(kind) << 56n) | (BigInt(lap) << BigInt(RECORD_LAP_BIT)) | BigInt(fid), true);
  return r;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

describe("committedLength", () => {
  const E = RECORD_KIND.entry;
  const X = RECORD_KIND.exit;

  it("takes every committed record of the expected lap", () => {
    const buf = concat(record(E, 1), record(E, 1), record(X, 1), record(X, 1));
    expect(committedLength(buf, 0, buf.length, buf.length, 1)).toBe(4 * RECORD_BYTES);
  });

  it("stops at a record left from the lap before (reserved, not yet written over)", () => {
    const buf = concat(record(E, 0), record(X, 0), record(E, 1), record(X, 0));
    expect(committedLength(buf, 0, buf.length, buf.length, 0)).toBe(2 * RECORD_BYTES);
  });

  it("stops at a record never written (kind 0)", () => {
    const buf = concat(record(E, 0), new Uint8Array(RECORD_BYTES), record(X, 0));
    expect(committedLength(buf, 0, buf.length, buf.length, 0)).toBe(RECORD_BYTES);
  });

  it("does not take an argument value left from the lap before for a record", () => {
    // Lap 0 held an args record here whose value was -1 (every byte 0xff: kind 0xff, lap bit set):
    // in lap 1 the space is reserved, not yet written.
    const stale = new Uint8Array(RECORD_BYTES).fill(0xff);
    const buf = concat(record(E, 1), stale, record(X, 1));
    expect(committedLength(buf, 0, buf.length, buf.length, 1)).toBe(RECORD_BYTES);
    // A small positive value there: kind byte 0.
    const small = new Uint8Array(RECORD_BYTES);
    small[8] = 5;
    expect(committedLength(concat(record(E, 1), small), 0, 2 * RECORD_BYTES, 2 * RECORD_BYTES, 1)).toBe(
      RECORD_BYTES,
    );
    // Byte 14 other than the lap bit is never written by the runtime.
    const odd = record(E, 1);
    odd[14] = 0x81;
    expect(committedLength(odd, 0, RECORD_BYTES, RECORD_BYTES, 1)).toBe(0);
  });

  it("expects the other lap past the wrap", () => {
    // Two records at the ring's end (lap 1), then two at its start (lap 0 again, i.e. lap 2).
    const buf = concat(record(E, 1), record(X, 1), record(E, 0), record(X, 0));
    expect(committedLength(buf, 0, buf.length, 2 * RECORD_BYTES, 1)).toBe(4 * RECORD_BYTES);
    // The same bytes with the start's records still of lap 1 (not yet written this lap): stop at the wrap.
    const stale = concat(record(E, 1), record(X, 1), record(E, 1), record(X, 1));
    expect(committedLength(stale, 0, stale.length, 2 * RECORD_BYTES, 1)).toBe(2 * RECORD_BYTES);
  });

  it("keeps an entry with arguments whole, also across the wrap", () => {
    const args = concat(record(RECORD_KIND.entryArgs, 0), record(0, 0, 1), record(0, 0, 2), record(0, 0, 3));
    const buf = concat(args, record(X, 1));
    // The args entry starts a record before the wrap; the exit after it is of the next lap.
    expect(committedLength(buf, 0, buf.length, RECORD_BYTES, 0)).toBe(5 * RECORD_BYTES);
    // Cut short: an args entry whose argument records were not all copied is not taken.
    expect(committedLength(buf, 0, 3 * RECORD_BYTES, RECORD_BYTES, 0)).toBe(0);
  });

  it("reads from an offset into a larger buffer", () => {
    const buf = concat(record(X, 0), record(E, 1), record(X, 1));
    expect(committedLength(buf, RECORD_BYTES, 2 * RECORD_BYTES, 2 * RECORD_BYTES, 1)).toBe(2 * RECORD_BYTES);
  });

  it("has the lap bit clear of the fields the runtime writes (depth is 16 bits at 32)", () => {
    expect(RECORD_LAP_BIT).toBeGreaterThanOrEqual(48);
    expect(RECORD_LAP_BIT).toBeLessThan(56);
    expect(traceLayout(1, 4096).ringBytes).toBe(4096);
  });
});
