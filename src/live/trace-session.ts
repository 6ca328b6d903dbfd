/**
 * `graft trace`: hook functions of a running process into a generated runtime, collect their entry
 * and exit records from memory shared with the process, and take every hook out again.
 *
 * Attach:
 * 1. Choose the functions (their patch sites in the main executable, -F/-N globs) and check their
 *    bytes are the file's (else someone else — a patch, another tracer — owns them).
 * 2. With one quiet thread stopped: map the code region within rel32 reach of the module; create a
 *    memfd (memfd_create, ftruncate), map it MAP_SHARED, open it from graft through
 *    /proc/PID/fd/N and close the target's descriptor; write the slot table and the code (generated
 *    for these addresses, arch/x86-64/trace-runtime.ts). Nothing reaches it yet.
 * 3. Stop the world, check the thread-id offset on every thread, write the hooks (the far jump before
 *    the entry jump, see write-while-stopped.ts), resume.
 * While tracing, `drain()` copies committed records out of each thread's ring and frees the space.
 * Detach: stop the world; put every site's original bytes back (read back); single-step threads out
 * of the sites and the runtime; write the original return address over every hijacked one (from the
 * shadow stacks); then unmap the runtime unless a thread could still come back into it (a saved PC
 * in a signal frame or a word on a stack pointing into it) — then it stays mapped, unreachable from
 * the code, and the result says so. The target runs on; attach and detach can repeat.
 */
import { closeSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import { checkElf } from "../analysis/check.js";
import { globToRegExp } from "../analysis/glob.js";
import { chooseTraceSite } from "../analysis/trace-site.js";
import { getLiveArchForMachine } from "../arch/index.js";
import {
  committedLength,
  HEADER,
  RECORD_BYTES,
  RECORD_KIND,
  SHADOW,
  SHADOW_DEPTH,
  SHADOW_ENTRIES_OFFSET,
  SHADOW_ENTRY_BYTES,
  SLOT,
  SLOT_BYTES,
  SLOT_TABLE_OFFSET,
  TRACE_MAGIC,
  TRACE_VERSION,
  type TraceLayout,
  traceLayout,
} from "../arch/trace-layout.js";
import { generateTraceRuntime, type RuntimeFunction } from "../arch/x86-64/trace-runtime.js";
import { GraftError, ProcessError } from "../core/errors.js";
import { hex } from "../core/hex.js";
import { findFreeRegionNear } from "../process/free-region.js";
import { findMapping, readMaps } from "../process/maps.js";
import { openMemory, type ProcessMemory, readMemory } from "../process/memory.js";
import { processIsAlive } from "../process/process-alive.js";
import { stepThreadsOutOf } from "../process/step-out.js";
import { type StoppedProcess, type StopWindow, stopProcess } from "../process/stop-the-world.js";
import { injectMmap, injectMunmap, injectSyscall, MAP, PROT } from "../process/syscall-inject.js";
import { findThreadIdOffset } from "../process/thread-id-offset.js";
import { pickQuietThread } from "../process/threads.js";
import { sampleTsc, type TscSample } from "../process/tsc.js";
import { loadMainModule } from "./main-module.js";
import { processKey } from "./state-dir.js";
import { lockTarget, type TargetLock } from "./target-lock.js";
import { TargetModules } from "./target-modules.js";
import { loadTraceJournal, removeTraceJournal, saveTraceJournal } from "./trace-journal.js";
import { planUnwindHooks } from "./trace-unwind-hooks.js";
import { writeWhileStopped } from "./write-while-stopped.js";

/** x86-64 system call numbers [arch/x86/entry/syscalls/syscall_64.tbl]. */
const SYS_CLOSE = 3;
const SYS_FTRUNCATE = 77;
const SYS_MEMFD_CREATE = 319;
const MFD_CLOEXEC = 1;
const MAP_POPULATE = 0x8000;
const PAGE = 4096n;
/** Drained records are kept in chunks of this size (fewer, larger allocations than one per drain). */
const CHUNK_BYTES = 32 << 20;

export interface TraceOptions {
  /** Hook only functions matching one of these globs (default: every traceable function). */
  readonly include?: readonly string[];
  /** Never hook functions matching these globs. */
  readonly exclude?: readonly string[];
  /** Record rdi, rsi, rdx, rcx, r8, r9 at the entry of functions matching these globs. */
  readonly args?: readonly string[];
  /** Record calls at most this deep (1 = outermost traced calls only); deeper ones still run hooked. */
  readonly maxDepth?: number;
  /** Bytes of events per thread (a power of two; default 16 MiB, committed as it is first written). */
  readonly ringBytes?: number;
  /** Threads that can be traced at once (a power of two; default 64). */
  readonly slots?: number;
  /**
   * Map the event buffers populated (MAP_POPULATE): no page fault while tracing, at the price of
   * committing slots × ringBytes of memory up front. Default: pages are faulted in on first use.
   */
  readonly prefault?: boolean;
}

/** One hooked function. */
export interface TracedFunction {
  readonly fid: number;
  readonly name: string;
  /** Runtime address of its entry. */
  readonly address: bigint;
  readonly kind: "sled" | "fentry" | "hotpatch" | "overwrite";
  /** Runtime address of the hook's entry write. */
  readonly site: bigint;
  readonly args: boolean;
}

/**
 * Receives one record: `kind` is RECORD_KIND.entry (with `args` for --args functions), .exit or
 * .unwound; `ticks` is the TSC relative to the session's first clock sample.
 */
export type RecordVisitor = (
  tid: number,
  ticks: number,
  kind: number,
  fid: number,
  depth: number,
  args: readonly bigint[] | undefined,
) => void;

/** What was lost, by cause; all zero means every call was recorded. */
export interface TraceLosses {
  /** Records not written because a thread's ring was full (graft did not drain fast enough). */
  readonly ringFull: number;
  /** Calls not followed because a thread's shadow stack was full (deeper than its entries). */
  readonly shadowFull: number;
  /** Calls not followed because every thread slot was taken. */
  readonly noSlot: number;
  /** Frames left without returning (longjmp), closed when noticed. */
  readonly unwound: number;
  /** Records graft could not decode (should be 0; counted when the records are read, by the report). */
  readonly corrupt: number;
}

export interface DetachResult {
  readonly sitesRestored: number;
  readonly returnAddressesRestored: number;
  /** The runtime was unmapped; when false, `keptBecause` says why it stays mapped (unreachable). */
  readonly unmapped: boolean;
  readonly keptBecause: string | undefined;
  readonly targetExited: boolean;
  readonly pause: StopWindow | undefined;
}

interface SiteWrite {
  readonly address: bigint;
  readonly bytes: Uint8Array;
  readonly original: Uint8Array;
  readonly room: number;
}

/** A traced process: drain it while it runs, then detach. */
export class TraceSession {
  readonly pid: number;
  readonly functions: readonly TracedFunction[];
  /** Functions that matched the filters but cannot be hooked, with why. */
  readonly skipped: readonly { readonly name: string; readonly reason: string }[];
  readonly layout: TraceLayout;
  readonly codeBase: bigint;
  readonly codeSize: bigint;
  readonly dataBase: bigint;
  /** The private shadow blocks (anonymous memory of the target). */
  readonly privateBase: bigint;
  /** Per function id, the address its followed calls' return-address slots hold (the stub's return point). */
  readonly returnPoints: ReadonlyMap<number, bigint>;
  readonly tidOffset: number;
  readonly clockStart: TscSample;
  clockEnd: TscSample | undefined;
  readonly attachPause: StopWindow;
  readonly #fd: number;
  readonly #writes: readonly SiteWrite[];
  readonly #lock: TargetLock;
  readonly #journalKey: string;
  readonly #tails: bigint[];
  /** Records per thread slot and thread id (a slot is reused when its thread's id comes back). */
  readonly #chunks = new Map<string, { tid: number; data: Buffer[] }>();
  /** The chunk drained records are copied into, and how much of it is taken. */
  #chunk: Buffer | undefined;
  #chunkUsed = 0;
  #bytesDrained = 0;
  #detached: DetachResult | undefined;
  #finalLosses: TraceLosses | undefined;

  /** Built by attachTrace. */
  constructor(init: {
    pid: number;
    functions: TracedFunction[];
    skipped: { name: string; reason: string }[];
    layout: TraceLayout;
    codeBase: bigint;
    codeSize: bigint;
    dataBase: bigint;
    privateBase: bigint;
    returnPoints: ReadonlyMap<number, bigint>;
    tidOffset: number;
    fd: number;
    writes: SiteWrite[];
    lock: TargetLock;
    attachPause: StopWindow;
    journalKey: string;
  }) {
    this.pid = init.pid;
    this.functions = init.functions;
    this.skipped = init.skipped;
    this.layout = init.layout;
    this.codeBase = init.codeBase;
    this.codeSize = init.codeSize;
    this.dataBase = init.dataBase;
    this.privateBase = init.privateBase;
    this.returnPoints = init.returnPoints;
    this.tidOffset = init.tidOffset;
    this.#fd = init.fd;
    this.#writes = init.writes;
    this.#lock = init.lock;
    this.#journalKey = init.journalKey;
    this.attachPause = init.attachPause;
    this.#tails = new Array<bigint>(init.layout.slots).fill(0n);
    this.clockStart = sampleTsc();
  }

  /** Bytes of records copied out so far. */
  get bytesDrained(): number {
    return this.#bytesDrained;
  }

  #read(offset: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    this.#readInto(buf, 0, offset, length);
    return buf;
  }

  #write(offset: number, bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += writeSync(this.#fd, bytes, done, bytes.length - done, offset + done);
  }

  /**
   * Copy every committed record out of the rings and give their space back. Reading `head` before
   * the records, and stopping at the first record not yet committed (kind 0, or the lap bit of the
   * lap before: reserved, not yet written), means a record is never read half-written. The bytes go
   * straight into large chunks kept for the report (one copy per record), and the space is given
   * back by moving `tail` alone (the lap bit makes zeroing it needless). Returns the bytes copied.
   */
  drain(): number {
    const { slots, ringBytes } = this.layout;
    const table = this.#read(SLOT_TABLE_OFFSET, slots * SLOT_BYTES);
    let copied = 0;
    for (let i = 0; i < slots; i++) {
      const at = i * SLOT_BYTES;
      const tid = table.readUInt32LE(at + SLOT.tid);
      if (tid === 0) continue;
      const head = table.readBigUInt64LE(at + SLOT.head);
      const tail = this.#tails[i]!;
      if (head <= tail) continue;
      const ringAt = this.layout.ringOffset + i * ringBytes;
      const start = Number(tail % BigInt(ringBytes));
      const length = Math.min(Number(head - tail), ringBytes);
      const first = Math.min(length, ringBytes - start);
      const { chunk, offset } = this.#room(length);
      this.#readInto(chunk, offset, ringAt + start, first);
      if (first < length) this.#readInto(chunk, offset + first, ringAt, length - first);
      const lap = Number((tail / BigInt(ringBytes)) & 1n);
      const end = committedLength(chunk, offset, length, first, lap);
      if (end === 0) continue;
      this.#chunkUsed += end;
      const newTail = tail + BigInt(end);
      const tailBytes = Buffer.alloc(8);
      tailBytes.writeBigUInt64LE(newTail);
      this.#write(SLOT_TABLE_OFFSET + at + SLOT.tail, tailBytes);
      this.#tails[i] = newTail;
      const key = `${i}:${tid}`;
      let entry = this.#chunks.get(key);
      if (entry === undefined) {
        entry = { tid, data: [] };
        this.#chunks.set(key, entry);
      }
      entry.data.push(chunk.subarray(offset, offset + end));
      copied += end;
    }
    this.#bytesDrained += copied;
    return copied;
  }

  /** Room for `length` bytes at the end of the current chunk (a new chunk when it is full). */
  #room(length: number): { chunk: Buffer; offset: number } {
    if (this.#chunk === undefined || this.#chunkUsed + length > this.#chunk.length) {
      this.#chunk = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, length));
      this.#chunkUsed = 0;
    }
    return { chunk: this.#chunk, offset: this.#chunkUsed };
  }

  #readInto(buf: Buffer, at: number, offset: number, length: number): void {
    let done = 0;
    while (done < length) {
      const n = readSync(this.#fd, buf, at + done, length - done, offset + done);
      if (n <= 0) throw new GraftError("MEMORY_ACCESS_FAILED", `short read of the trace buffer at ${offset}`);
      done += n;
    }
  }

  /** What was lost so far (read from the shared counters; after detach, the final figures). */
  losses(): TraceLosses {
    return this.#finalLosses ?? this.#readLosses();
  }

  #readLosses(): TraceLosses {
    const header = this.#read(0, 0x40);
    const table = this.#read(SLOT_TABLE_OFFSET, this.layout.slots * SLOT_BYTES);
    let ringFull = 0n;
    let shadowFull = 0n;
    let unwound = 0n;
    for (let i = 0; i < this.layout.slots; i++) {
      const at = i * SLOT_BYTES;
      ringFull += table.readBigUInt64LE(at + SLOT.dropped);
      shadowFull += table.readBigUInt64LE(at + SLOT.overflow);
      unwound += table.readBigUInt64LE(at + SLOT.unwound);
    }
    return {
      ringFull: Number(ringFull),
      shadowFull: Number(shadowFull),
      noSlot: Number(header.readBigUInt64LE(HEADER.noSlot)),
      unwound: Number(unwound),
      corrupt: 0,
    };
  }

  /**
   * Visit every record drained so far, per thread in the order written, without allocating per
   * record: `ticks` is the time-stamp counter relative to `clockStart.tsc` (exact as a number for
   * 2^53 ticks, i.e. weeks). Returns how many records could not be decoded.
   */
  forEachRecord(visit: RecordVisitor): number {
    let corrupt = 0;
    const baseHi = Number(this.clockStart.tsc >> 32n);
    const baseLo = Number(this.clockStart.tsc & 0xffffffffn);
    const count = this.functions.length;
    for (const { tid, data } of this.#chunks.values()) {
      for (const buf of data) {
        for (let at = 0; at + RECORD_BYTES <= buf.length; at += RECORD_BYTES) {
          const ticks = (buf.readUInt32LE(at + 4) - baseHi) * 0x100000000 + (buf.readUInt32LE(at) - baseLo);
          const fid = buf.readUInt32LE(at + 8);
          const depth = buf.readUInt16LE(at + 12);
          const kind = buf[at + 15]!;
          if (fid >= count || kind === 0 || kind > RECORD_KIND.entryArgs) {
            corrupt++;
            continue;
          }
          if (kind === RECORD_KIND.entryArgs) {
            const args: bigint[] = [];
            for (let k = 1; k <= 3; k++) {
              args.push(buf.readBigUInt64LE(at + 16 * k), buf.readBigUInt64LE(at + 16 * k + 8));
            }
            visit(tid, ticks, RECORD_KIND.entry, fid, depth, args);
            at += 3 * RECORD_BYTES;
          } else visit(tid, ticks, kind, fid, depth, undefined);
        }
      }
    }
    return corrupt;
  }

  /** Take every hook out, drain the last records, release the process (see the file comment). */
  detach(): DetachResult {
    if (this.#detached !== undefined) return this.#detached;
    try {
      this.#detached = this.#detachLive();
      removeTraceJournal(this.#journalKey);
      this.drain();
      this.#finalLosses = this.#readLosses();
      this.clockEnd = sampleTsc();
      return this.#detached;
    } finally {
      closeSync(this.#fd);
      this.#lock.release();
    }
  }

  #detachLive(): DetachResult {
    if (!processIsAlive(this.pid)) return gone();
    let stopped: StoppedProcess;
    try {
      stopped = stopProcess(this.pid);
    } catch (e) {
      if (e instanceof ProcessError && e.code === "NO_SUCH_PROCESS") return gone();
      throw e;
    }
    const mem = openMemory(stopped.memoryPid);
    let result: Omit<DetachResult, "pause">;
    try {
      let sitesRestored = 0;
      for (const w of [...this.#writes].reverse()) {
        let now: Uint8Array;
        try {
          now = mem.read(w.address, w.bytes.length);
        } catch {
          continue; // unmapped since (a library's GOT, dlclose'd): nothing of graft's is left there
        }
        if (Buffer.from(now).equals(w.original)) continue;
        if (!Buffer.from(now).equals(w.bytes)) {
          throw new GraftError(
            "SITE_BYTES_CHANGED",
            `the hook at ${hex(w.address)} was changed by someone else`,
            {
              subject: `pid ${this.pid}`,
              hint: "the runtime stays mapped; check graft status PID",
            },
          );
        }
        mem.write(w.address, w.original);
        if (!Buffer.from(mem.read(w.address, w.original.length)).equals(w.original)) {
          throw new GraftError("MEMORY_ACCESS_FAILED", `site ${hex(w.address)} did not read back restored`, {
            subject: `pid ${this.pid}`,
          });
        }
        sitesRestored++;
      }
      const codeRange = { start: this.codeBase - 1n, end: this.codeBase + this.codeSize };
      stepThreadsOutOf(
        stopped,
        [...this.#writes.map((w) => ({ start: w.address, end: w.address + BigInt(w.room) })), codeRange],
        { maxSteps: 4096, timeoutMs: 1000 },
      );
      const returnAddressesRestored = this.#restoreReturnAddresses(stopped, mem);
      const keptBecause = this.#codeUser(stopped);
      if (keptBecause === undefined) {
        injectMunmap(stopped, this.codeBase, this.codeSize);
        injectMunmap(stopped, this.dataBase, BigInt(this.layout.totalBytes));
        injectMunmap(stopped, this.privateBase, BigInt(this.layout.privateBytes));
      }
      result = {
        sitesRestored,
        returnAddressesRestored,
        unmapped: keptBecause === undefined,
        keptBecause,
        targetExited: false,
      };
    } catch (e) {
      // Let the threads go on, as they are (the journal stays: graft trace --detach can finish).
      if (!stopped.resumed) stopped.resume();
      throw e;
    } finally {
      mem.close();
    }
    return { ...result, pause: stopped.resume() };
  }

  /**
   * Put back the original return address in every stack slot that still holds its stub's return point,
   * newest shadow entry first, live threads' slots before those of threads that are gone (so a stack
   * reused by a new thread is fixed from the new thread's entries).
   */
  #restoreReturnAddresses(stopped: StoppedProcess, mem: ProcessMemory): number {
    const { slots, shadowEntries } = this.layout;
    const table = this.#read(SLOT_TABLE_OFFSET, slots * SLOT_BYTES);
    const live = new Set(stopped.threads.map((t) => t.tid));
    const order = [...Array(slots).keys()].sort(
      (a, b) =>
        Number(!live.has(table.readUInt32LE(a * SLOT_BYTES))) -
        Number(!live.has(table.readUInt32LE(b * SLOT_BYTES))),
    );
    let restored = 0;
    for (const i of order) {
      if (table.readUInt32LE(i * SLOT_BYTES + SLOT.tid) === 0) continue;
      const block = this.privateBase + BigInt(i * this.layout.shadowBlockBytes);
      let head: Uint8Array;
      try {
        head = mem.read(block + BigInt(SHADOW_DEPTH), 4);
      } catch {
        continue;
      }
      const depth = Math.min(new DataView(head.buffer, head.byteOffset, 4).getUint32(0, true), shadowEntries);
      if (depth === 0) continue;
      const shadow = Buffer.from(mem.read(block + BigInt(SHADOW_ENTRIES_OFFSET), depth * SHADOW_ENTRY_BYTES));
      for (let d = depth - 1; d >= 0; d--) {
        const slot = shadow.readBigUInt64LE(d * SHADOW_ENTRY_BYTES + SHADOW.slot);
        const original = shadow.subarray(
          d * SHADOW_ENTRY_BYTES + SHADOW.returnAddress,
          d * SHADOW_ENTRY_BYTES + SHADOW.returnAddress + 8,
        );
        let now: Uint8Array;
        try {
          now = mem.read(slot, 8);
        } catch {
          continue;
        }
        const fid = shadow.readUInt32LE(d * SHADOW_ENTRY_BYTES + SHADOW.fid);
        const returnPoint = this.returnPoints.get(fid);
        if (returnPoint === undefined || Buffer.from(now).readBigUInt64LE(0) !== returnPoint) continue;
        mem.write(slot, original);
        restored++;
      }
    }
    return restored;
  }

  /** Why the runtime cannot be unmapped yet, or undefined when nothing can come back into it. */
  #codeUser(stopped: StoppedProcess): string | undefined {
    const start = this.codeBase;
    const end = this.codeBase + this.codeSize;
    const maps = readMaps(stopped.memoryPid);
    // The words above each stack pointer include every signal frame's saved PC (the frames sit on
    // the stack; a handler on a sigaltstack runs with rsp there, so that stack is the one read).
    for (const t of stopped.threads) {
      const rip = t.regs.rip;
      if (rip >= start && rip < end) return `thread ${t.tid} executes it at ${hex(rip)}`;
      const stack = findMapping(maps, t.regs.rsp);
      if (stack === undefined) continue;
      const low = t.regs.rsp & ~7n;
      const limit = stack.end - low > 8n << 20n ? low + (8n << 20n) : stack.end;
      let bytes: Uint8Array;
      try {
        bytes = readMemory(stopped.memoryPid, low, Number(limit - low));
      } catch {
        continue;
      }
      const words = new BigUint64Array(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + (bytes.length & ~7)),
      );
      for (const word of words) {
        if (word >= start && word < end) return `thread ${t.tid} has ${hex(word)} on its stack`;
      }
    }
    return undefined;
  }
}

function gone(): DetachResult {
  return {
    sitesRestored: 0,
    returnAddressesRestored: 0,
    unmapped: false,
    keptBecause: "the process exited",
    targetExited: true,
    pause: undefined,
  };
}

function matchesAny(name: string, aliases: readonly string[], globs: readonly RegExp[]): boolean {
  return globs.some((g) => g.test(name) || aliases.some((a) => g.test(a)));
}

/** Hook the chosen functions of process `pid` (see the file comment). */
export function attachTrace(pid: number, options: TraceOptions = {}): TraceSession {
  const loaded = loadMainModule(pid);
  const arch = getLiveArchForMachine(loaded.elf.header.e_machine, loaded.module.path);
  if (arch.name !== "x86-64") {
    throw new GraftError("TRACE_UNSUPPORTED", `tracing is implemented for x86-64, not ${arch.name}`, {
      subject: `pid ${pid}`,
    });
  }
  const report = checkElf(loaded.elf, arch);
  const include = (options.include ?? []).map(globToRegExp);
  const exclude = (options.exclude ?? []).map(globToRegExp);
  const withArgs = (options.args ?? []).map(globToRegExp);
  const functions: TracedFunction[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const planned: {
    fn: TracedFunction;
    resume: bigint;
    site: ReturnType<typeof chooseTraceSite>["site"];
    displaced: Uint8Array | undefined;
  }[] = [];
  for (const f of report.functions) {
    const wanted =
      (include.length === 0 ||
        matchesAny(f.name, f.aliases, include) ||
        matchesAny(f.name, f.aliases, withArgs)) &&
      !matchesAny(f.name, f.aliases, exclude);
    if (!wanted) continue;
    // The entry point is jumped to by the kernel with argc at the stack pointer, not called: there
    // is no return address to follow (hooking it would overwrite argc).
    if (f.address === loaded.elf.header.e_entry) {
      if (include.length > 0)
        skipped.push({ name: f.name, reason: "the program's entry point is not called" });
      continue;
    }
    // gcc's cold parts (`f.cold`, hot/cold splitting) are jumped to from inside their function, with
    // its frame at the stack pointer: there is no return address there to follow.
    if (/\.cold(\.\d+)?$/.test(f.name)) {
      if (include.length > 0)
        skipped.push({ name: f.name, reason: "a cold part, jumped to from its function, not called" });
      continue;
    }
    const choice = chooseTraceSite(f);
    if (choice.site === undefined) {
      if (include.length > 0 || withArgs.length > 0) skipped.push({ name: f.name, reason: choice.reason });
      continue;
    }
    let displaced: Uint8Array | undefined;
    if (choice.site.displaced !== undefined) {
      const d = choice.site.displaced;
      const bytes = loaded.elf.findBytesAt(d.address, d.length);
      const insns = bytes === undefined ? [] : arch.decode(bytes, d.address);
      const moving = insns.find(
        // A `ret` runs as well from a copy (it returns through the hijacked slot to `exit`).
        (i) => i.pcRelative || !["other", "nop", "endbr", "return"].includes(i.kind),
      );
      if (
        bytes === undefined ||
        moving !== undefined ||
        insns.reduce((n, i) => n + i.length, 0) !== d.length
      ) {
        if (include.length > 0 || withArgs.length > 0) {
          skipped.push({
            name: f.name,
            reason: `${choice.site.kind}: ${moving?.text ?? "the first instructions"} cannot run elsewhere`,
          });
        }
        continue;
      }
      displaced = bytes;
    }
    const fn: TracedFunction = {
      fid: functions.length,
      name: f.name,
      address: f.address + loaded.bias,
      kind: choice.site.kind,
      site: choice.site.entry.address + loaded.bias,
      args: matchesAny(f.name, f.aliases, withArgs),
    };
    functions.push(fn);
    planned.push({ fn, resume: choice.site.resume + loaded.bias, site: choice.site, displaced });
  }
  if (functions.length === 0) {
    throw new GraftError(
      "NOTHING_TO_TRACE",
      skipped.length > 0
        ? `no matching function can be hooked: ${skipped
            .slice(0, 3)
            .map((s) => `${s.name}: ${s.reason}`)
            .join("; ")}`
        : `no function of ${loaded.module.path} matches and has a usable patch site`,
      { subject: `pid ${pid}` },
    );
  }
  const unwind = planUnwindHooks(new TargetModules(pid, readMaps(pid)), loaded, (address) => {
    try {
      return Buffer.from(readMemory(pid, address, 8)).readBigUInt64LE(0);
    } catch {
      return undefined;
    }
  });
  const layout = traceLayout(options.slots ?? 64, options.ringBytes ?? 16 << 20);
  const maxDepth = options.maxDepth ?? 0x7fffffff;
  const runtimeFunctions = (): RuntimeFunction[] =>
    planned.map((p) => ({
      fid: p.fn.fid,
      resume: p.resume,
      args: p.fn.args,
      ...(p.displaced === undefined ? {} : { displaced: p.displaced }),
    }));
  const sizing = generateTraceRuntime({
    codeBase: loaded.module.start,
    dataBase: 0n,
    layout,
    tidOffset: 0x2d0,
    maxDepth,
    functions: runtimeFunctions(),
    unwindHooks: unwind.hooks,
  });
  const nameOffset = sizing.code.length;
  const codeSize = ((BigInt(nameOffset + 64) + PAGE - 1n) / PAGE) * PAGE;
  const lock = lockTarget(pid);
  const mem = openMemory(pid);
  let fd: number | undefined;
  let codeBase: bigint | undefined;
  let dataBase: bigint | undefined;
  let privateBase: bigint | undefined;
  let journalKey: string | undefined;
  try {
    // Every site's bytes must be the file's: anything else belongs to a patch or another tracer.
    const arch64 = arch;
    const writes: SiteWrite[] = [];
    const region = findFreeRegionNear(
      readMaps(pid),
      { start: loaded.module.start, end: loaded.module.end },
      codeSize,
    );
    if (region === undefined) {
      throw new GraftError("TARGET_OUT_OF_REACH", "no free address space within ±2 GiB of the module", {
        subject: `pid ${pid}`,
      });
    }
    codeBase = region.start;
    const setup = stopProcess(pid, { only: [pickQuietThread(pid)] });
    let tidOffset: number;
    try {
      tidOffset = setup.threads.every((t) => t.regs.fs_base === 0n) ? 0x2d0 : findThreadIdOffset(setup);
      injectMmap(setup, { addr: codeBase, length: codeSize, prot: PROT.PROT_READ | PROT.PROT_EXEC });
      mem.write(codeBase + BigInt(nameOffset), Buffer.from("graft-trace\0"));
      const targetFd = Number(
        injectSyscall(setup, SYS_MEMFD_CREATE, [codeBase + BigInt(nameOffset), MFD_CLOEXEC]),
      );
      try {
        injectSyscall(setup, SYS_FTRUNCATE, [targetFd, layout.totalBytes]);
        dataBase = injectMmap(setup, {
          length: BigInt(layout.totalBytes),
          prot: PROT.PROT_READ | PROT.PROT_WRITE,
          flags: MAP.MAP_SHARED | (options.prefault === true ? MAP_POPULATE : 0),
          fd: targetFd,
        });
        fd = openSync(`/proc/${setup.memoryPid}/fd/${targetFd}`, "r+");
      } finally {
        injectSyscall(setup, SYS_CLOSE, [targetFd]);
      }
      privateBase = injectMmap(setup, {
        length: BigInt(layout.privateBytes),
        prot: PROT.PROT_READ | PROT.PROT_WRITE,
        flags: MAP.MAP_PRIVATE | MAP.MAP_ANONYMOUS,
      });
      initialiseData(fd, layout, dataBase, privateBase, pidInsideItsNamespace(pid));
      const runtime = generateTraceRuntime({
        codeBase,
        dataBase,
        layout,
        tidOffset,
        maxDepth,
        functions: runtimeFunctions(),
        unwindHooks: unwind.hooks,
      });
      mem.write(codeBase, runtime.code);
      if (!Buffer.from(mem.read(codeBase, runtime.code.length)).equals(runtime.code)) {
        throw new GraftError("MEMORY_ACCESS_FAILED", "the tracing runtime did not read back as written", {
          subject: `pid ${pid}`,
        });
      }
      for (const [i, p] of planned.entries()) {
        const stub = codeBase + BigInt(runtime.stubs[i]!);
        const site = p.site!;
        const entryAt = site.entry.address + loaded.bias;
        const farAt = site.far === undefined ? undefined : site.far.address + loaded.bias;
        const pieces: { address: bigint; bytes: Uint8Array | undefined; room: number; link: bigint }[] =
          farAt === undefined
            ? [
                {
                  address: entryAt,
                  bytes: arch64.encodeNearJump(entryAt, stub),
                  room: site.entry.room,
                  link: site.entry.address,
                },
              ]
            : [
                {
                  address: farAt,
                  bytes: arch64.encodeNearJump(farAt, stub),
                  room: site.far!.room,
                  link: site.far!.address,
                },
                {
                  address: entryAt,
                  bytes: arch64.encodeShortJump(entryAt, farAt),
                  room: site.entry.room,
                  link: site.entry.address,
                },
              ];
        for (const piece of pieces) {
          if (piece.bytes === undefined) {
            throw new GraftError("TARGET_OUT_OF_REACH", `hook for ${p.fn.name} out of jump reach`, {
              subject: `pid ${pid}`,
            });
          }
          // The rest of displaced instructions under an entry jump becomes int3: never run, never half.
          if (p.displaced !== undefined && piece.address === entryAt && piece.bytes.length < piece.room) {
            const filled = new Uint8Array(piece.room).fill(0xcc);
            filled.set(piece.bytes);
            piece.bytes = filled;
          }
          const original = mem.read(piece.address, piece.bytes.length);
          const file = loaded.elf.findBytesAt(piece.link, piece.bytes.length);
          if (file === undefined || !Buffer.from(original).equals(file)) {
            throw new GraftError(
              "TRACE_SITE_BUSY",
              `${p.fn.name}'s site at ${hex(piece.address)} is not the file's bytes`,
              {
                subject: `pid ${pid}`,
              },
            );
          }
          writes.push({ address: piece.address, bytes: piece.bytes, original, room: piece.room });
        }
      }
      // The unwinder's entries, by their GOT slots (see trace-unwind-hooks.ts): written with the
      // hooks, restored with them.
      for (const slot of unwind.slots) {
        const bytes = Buffer.alloc(8);
        bytes.writeBigUInt64LE(codeBase + BigInt(runtime.hookOffsets[slot.hook]!));
        writes.push({ address: slot.address, bytes, original: mem.read(slot.address, 8), room: 8 });
      }
      const returnPoints = new Map(
        planned.map((p, i) => [p.fn.fid, region.start + BigInt(runtime.returnPoints[i]!)] as const),
      );
      setup.resume();
      journalKey = processKey(pid);
      saveTraceJournal({
        pid,
        key: journalKey,
        by: { pid: process.pid, at: new Date().toISOString() },
        codeBase: hex(codeBase),
        codeSize: hex(codeSize),
        dataBase: hex(dataBase),
        privateBase: hex(privateBase),
        layout: { slots: layout.slots, ringBytes: layout.ringBytes, shadowEntries: layout.shadowEntries },
        tidOffset,
        functions: functions.map((f) => ({
          fid: f.fid,
          name: f.name,
          address: hex(f.address),
          kind: f.kind,
          site: hex(f.site),
          args: f.args,
          returnPoint: hex(returnPoints.get(f.fid) ?? 0n),
        })),
        writes: writes.map((w) => ({
          address: hex(w.address),
          before: Buffer.from(w.original).toString("hex"),
          after: Buffer.from(w.bytes).toString("hex"),
          room: w.room,
        })),
      });
      const { pause } = writeWhileStopped(
        pid,
        mem,
        writes.map((w, i) => ({
          address: w.address,
          bytes: w.bytes,
          room: w.room,
          faultPoint: `trace-write-${i}`,
        })),
        {
          checkSignalFrames: readMaps(pid),
          beforeWrite: (stopped) => checkThreadIdOffset(stopped, tidOffset),
        },
      );
      const session = new TraceSession({
        pid,
        functions,
        skipped,
        layout,
        codeBase,
        codeSize,
        dataBase,
        privateBase,
        returnPoints,
        tidOffset,
        fd,
        writes,
        lock,
        attachPause: pause,
        journalKey,
      });
      return session;
    } finally {
      if (!setup.resumed) setup.resume();
    }
  } catch (error) {
    // The hooks are not in (writeWhileStopped puts back what it wrote when it fails).
    if (journalKey !== undefined) removeTraceJournal(journalKey);
    if (fd !== undefined) closeSync(fd);
    if (codeBase !== undefined) unmapQuietly(pid, codeBase, codeSize, dataBase, privateBase, layout);
    lock.release();
    throw error;
  } finally {
    mem.close();
  }
}

/** What `graft trace --detach` did: the detach, and who had left the hooks. */
export interface LeftTraceDetach extends DetachResult {
  readonly by: { readonly pid: number; readonly at: string };
  readonly functions: number;
}

/**
 * Take out the hooks a `graft trace` left in `pid` when it ended without detaching (killed, crashed):
 * from its journal (trace-journal.ts), exactly as that graft would have — sites and GOT slots back
 * (each checked to hold graft's bytes or the original), return addresses put back from the shadow
 * stacks, the runtime unmapped unless a stack still points into it. Refused while the tracing graft
 * still runs (it holds the target's lock: stop it with Ctrl-C instead).
 */
export function detachLeftTrace(pid: number): LeftTraceDetach {
  const journal = loadTraceJournal(pid);
  if (journal === undefined) {
    throw new GraftError("NOTHING_TO_TRACE", `no graft trace is on record for process ${pid}`, {
      subject: `pid ${pid}`,
      hint: "graft status PID shows what graft changed in it",
    });
  }
  const lock = lockTarget(pid);
  let session: TraceSession;
  try {
    const layout = traceLayout(journal.layout.slots, journal.layout.ringBytes, journal.layout.shadowEntries);
    const dataBase = BigInt(journal.dataBase);
    const range = `${dataBase.toString(16)}-${(dataBase + BigInt(layout.totalBytes)).toString(16)}`;
    let fd: number;
    try {
      fd = openSync(`/proc/${pid}/map_files/${range}`, "r+");
    } catch {
      throw new GraftError("MEMORY_ACCESS_FAILED", `the trace buffers at ${hex(dataBase)} are not mapped`, {
        subject: `pid ${pid}`,
        hint: "the journal does not describe this process; graft status PID",
      });
    }
    const bytes = (h: string) => Uint8Array.from(Buffer.from(h, "hex"));
    session = new TraceSession({
      pid,
      functions: journal.functions.map((f) => ({
        fid: f.fid,
        name: f.name,
        address: BigInt(f.address),
        kind: f.kind,
        site: BigInt(f.site),
        args: f.args,
      })),
      skipped: [],
      layout,
      codeBase: BigInt(journal.codeBase),
      codeSize: BigInt(journal.codeSize),
      dataBase,
      privateBase: BigInt(journal.privateBase),
      returnPoints: new Map(journal.functions.map((f) => [f.fid, BigInt(f.returnPoint)] as const)),
      tidOffset: journal.tidOffset,
      fd,
      writes: journal.writes.map((w) => ({
        address: BigInt(w.address),
        bytes: bytes(w.after),
        original: bytes(w.before),
        room: w.room,
      })),
      lock,
      // No attach here: the one that stopped the process is long over.
      attachPause: { stopNs: 0, heldNs: 0, resumeNs: 0, windowNs: 0, signalsRedelivered: 0, realtime: false },
      journalKey: journal.key,
    });
  } catch (e) {
    lock.release();
    throw e;
  }
  return { ...session.detach(), by: journal.by, functions: journal.functions.length };
}

/** Every thread with a thread control block must hold its own id at the runtime's offset. */
function checkThreadIdOffset(stopped: StoppedProcess, offset: number): void {
  for (const t of stopped.threads) {
    if (t.regs.fs_base === 0n) continue;
    const bytes = readMemory(stopped.memoryPid, t.regs.fs_base + BigInt(offset), 4);
    const value = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, true);
    if (value !== t.tid) {
      throw new ProcessError(
        "TRACE_UNSUPPORTED",
        `thread ${t.tid} keeps ${value} at %fs:${hex(BigInt(offset))}, not its id`,
        { pid: stopped.pid, tid: t.tid, op: "check the thread id offset" },
      );
    }
  }
}

/**
 * The pid the process itself gets from getpid(2): the last NSpid of /proc/PID/status (it differs from
 * `pid` when the process is in a PID namespace of its own, as in a container).
 */
function pidInsideItsNamespace(pid: number): number {
  try {
    const line = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"))?.[1];
    const last = Number(line?.trim().split(/\s+/).pop());
    return Number.isInteger(last) && last > 0 ? last : pid;
  } catch {
    return pid;
  }
}

function initialiseData(
  fd: number,
  layout: TraceLayout,
  dataBase: bigint,
  privateBase: bigint,
  pid: number,
): void {
  const header = Buffer.alloc(0x40);
  header.writeUInt32LE(pid, HEADER.pid);
  header.writeBigUInt64LE(TRACE_MAGIC, HEADER.magic);
  header.writeUInt32LE(TRACE_VERSION, HEADER.version);
  header.writeUInt32LE(layout.slots, HEADER.slots);
  header.writeBigUInt64LE(BigInt(layout.ringBytes), HEADER.ringBytes);
  header.writeUInt32LE(layout.shadowEntries, HEADER.shadowEntries);
  writeSync(fd, header, 0, header.length, 0);
  const table = Buffer.alloc(layout.slots * SLOT_BYTES);
  for (let i = 0; i < layout.slots; i++) {
    const at = i * SLOT_BYTES;
    table.writeBigUInt64LE(dataBase + BigInt(layout.ringOffset + i * layout.ringBytes), at + SLOT.ring);
    table.writeBigUInt64LE(privateBase + BigInt(i * layout.shadowBlockBytes), at + SLOT.shadow);
  }
  writeSync(fd, table, 0, table.length, SLOT_TABLE_OFFSET);
}

function unmapQuietly(
  pid: number,
  codeBase: bigint,
  codeSize: bigint,
  dataBase: bigint | undefined,
  privateBase: bigint | undefined,
  layout: TraceLayout,
): void {
  try {
    const stopped = stopProcess(pid, { only: [pickQuietThread(pid)] });
    try {
      const maps = readMaps(stopped.memoryPid);
      const code = findMapping(maps, codeBase);
      if (code !== undefined && code.start === codeBase && code.path === "") {
        injectMunmap(stopped, codeBase, codeSize);
      }
      if (dataBase !== undefined) injectMunmap(stopped, dataBase, BigInt(layout.totalBytes));
      if (privateBase !== undefined) injectMunmap(stopped, privateBase, BigInt(layout.privateBytes));
    } finally {
      stopped.resume();
    }
  } catch {
    // Best effort: the mappings are unreachable either way.
  }
}
