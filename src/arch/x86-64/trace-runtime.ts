/**
 * The in-target tracing runtime, generated as x86-64 machine code (no compiler at trace time).
 *
 * A traced function's site (sled NOPs, the fentry call, hotpatch padding, or its first instructions)
 * becomes `jmp stub_f`; the stub is
 *     push $fid ; call entry ; lea 8(%rsp),%rsp ; call body_f ; ret_f: jmp exit
 *     body_f: [the displaced instructions] ; jmp <end of the site>
 * `entry` records {rdtsc, fid, depth} in the calling thread's ring (reserved with xadd, committed
 * by storing the record's kind word last), pushes {return-address slot, original return address,
 * fid} on the thread's shadow stack and returns with `ret $8`, dropping the fid. The stub then drops
 * the caller's return address and calls the function: the call puts `ret_f` in the very slot the
 * caller's address held, so the function sees its stack arguments where they were, and its `ret`
 * comes back to `ret_f` as the return-stack buffer predicts (writing `exit` into the slot instead
 * cost a mispredicted return on every call, and one more in each caller, ~30% of the per-call time).
 * For a call it does not follow (no thread slot, shadow stack full) `entry` returns to body_f
 * instead. At `exit`, the thread's shadow stack is searched from the top for the entry whose slot
 * is the one just returned through; an exit record is written, that entry is removed, and `exit`
 * returns to the original address. A thread may run traced frames on several stacks at once (ucontext coroutines
 * switched from inside traced calls, a handler on a sigaltstack), so the entries above the match
 * are not all dead: only those whose slot lies less than SAME_STACK_REACH below the returning slot
 * were left by a longjmp on the same stack (a longjmp only moves rsp up, over the frames it skips)
 * and are recorded as `unwound` and dropped; the others stay (the stack is compacted over the
 * removed ones) and return later through their own slots.
 *
 * Every register the code touches is saved and restored (gcc's -fipa-ra lets a caller keep values
 * in caller-saved registers across a call to a function that leaves them alone, so even those
 * must survive); flags are not (dead at a function's entry and at its return, SysV ABI §3.2.1).
 * No vector register is used. Threads are told apart by the kernel thread id stored in the C
 * library's thread control block (`%fs:tidOffset`, found by graft in the stopped threads), hashed
 * into a fixed table of slots.
 */
import {
  HEADER,
  RECORD_BYTES,
  RECORD_KIND,
  RECORD_LAP_BIT,
  SHADOW,
  SHADOW_DEPTH,
  SHADOW_ENTRIES_OFFSET,
  SLOT,
  SLOT_BYTES,
  SLOT_TABLE_OFFSET,
  type TraceLayout,
} from "../trace-layout.js";
import { CC, R, type Reg, X86Emitter } from "./emit.js";

/** One function to hook. */
export interface RuntimeFunction {
  readonly fid: number;
  /** Runtime address execution continues at after the hook (the end of the site's room). */
  readonly resume: bigint;
  /** Record rdi, rsi, rdx, rcx, r8, r9 at entry. */
  readonly args: boolean;
  /** Position-independent original instructions the hook replaced, run before going back. */
  readonly displaced?: Uint8Array;
}

/**
 * A function of the C++ (or any DWARF-unwinding) runtime that graft routes through the runtime, by
 * its GOT slots, before it runs: `throw` for those that start unwinding (_Unwind_RaiseException,
 * _Unwind_Resume_or_Rethrow), `catch` for __cxa_begin_catch. See `unwind_throw` below.
 */
export interface UnwindHook {
  readonly kind: "throw" | "catch";
  /** The real function, jumped to after the runtime's work. */
  readonly target: bigint;
}

export interface RuntimeRequest {
  /** Where the code will be mapped (must be within rel32 of every `resume`). */
  readonly codeBase: bigint;
  /** Where the shared memory is mapped. */
  readonly dataBase: bigint;
  readonly layout: TraceLayout;
  /** Offset of the 32-bit kernel thread id in the thread control block (%fs). */
  readonly tidOffset: number;
  /** Calls deeper than this are followed (for their exits) but not recorded. */
  readonly maxDepth: number;
  readonly functions: readonly RuntimeFunction[];
  readonly unwindHooks?: readonly UnwindHook[];
}

export interface RuntimeCode {
  readonly code: Uint8Array;
  /** Offset of each function's stub, in the order of `functions`. */
  readonly stubs: readonly number[];
  /**
   * Offset of each function's return point (in the order of `functions`): the address a followed
   * call's return-address slot holds while the function runs.
   */
  readonly returnPoints: readonly number[];
  /** Offset of the table of return points by function id (8 bytes each; the code's last bytes). */
  readonly returnPointTableOffset: number;
  /** Offset of each unwind hook's entry, in the order of `unwindHooks` (what its GOT slots get). */
  readonly hookOffsets: readonly number[];
  readonly entryOffset: number;
  readonly exitOffset: number;
}

/** Registers saved by both trampolines, in push order. */
const SAVED: readonly Reg[] = [R.rax, R.rcx, R.rdx, R.rsi, R.rdi, R.r8, R.r9, R.r10, R.r11];
const FRAME = SAVED.length * 8;
/** Where a saved register sits relative to rsp after the pushes. */
const savedAt = (r: Reg): number => FRAME - 8 - SAVED.indexOf(r) * 8;
/**
 * How far below a returning slot an entry above it counts as a frame of the same stack, left by
 * longjmp. Two stacks closer than this with traced frames on both (coroutine stacks smaller than
 * it, side by side) could take a live frame for a dead one, whose return then finds no entry; a
 * longjmp over more than this much stack (or a siglongjmp off a sigaltstack) leaves its entries in
 * place instead: not recorded as unwound, they take room until the shadow stack is full (further
 * calls counted as `shadowFull`) — a loss of events, never of the target. 32 KiB is far above the
 * frames a longjmp usually skips and below the usual coroutine stack (64 KiB and up).
 */
export const SAME_STACK_REACH = 32 * 1024;

/**
 * Bytes of a stub from the return of `call entry` to the function's own instructions: the call-through
 * (`lea 8(%rsp),%rsp`, `call body`) and the return point (`jmp exit`). `entry` adds it to its return
 * address for a call it does not follow.
 */
const UNTRACED_SKIP = 15;

/**
 * How far above the stack pointer at a throw the hijacked slots it gives back may lie: the frames
 * an exception can unwind are on the throwing thread's own stack (8 MiB by default), and a slot
 * outside that reach (another stack's frame) is neither read nor written.
 */
export const THROW_REACH = 8 * 1024 * 1024;

/** Shadow entry flag: the frame's slot holds its original return address again (an exception is in flight). */
const FLAG_RESTORED = 2;

/** x86-64 getpid(2). */
const SYS_GETPID = 39;

function saveAll(e: X86Emitter): void {
  for (const r of SAVED) e.push(r);
}
function restoreAll(e: X86Emitter): void {
  for (const r of [...SAVED].reverse()) e.pop(r);
}

/** Generate the runtime for `request`. */
export function generateTraceRuntime(request: RuntimeRequest): RuntimeCode {
  const { layout, dataBase } = request;
  const e = new X86Emitter();
  const mask = layout.ringBytes - 1;

  // `to` = address of the record `index` records past head (rsi), wrapping in the ring.
  const recordAddress = (index: number, to: Reg = R.r9): void => {
    e.mov(to, R.rsi);
    if (index > 0) e.aluImm("add", to, index * RECORD_BYTES);
    e.aluImm("and", to, mask);
    e.aluLoad("add", to, R.rdi, SLOT.ring);
  };

  // or into `word` the lap bit of the record reserved at byte offset rsi (see RECORD_LAP_BIT); clobbers `scratch`.
  const lapShift = RECORD_LAP_BIT - Math.log2(layout.ringBytes);
  const orLapBit = (word: Reg, scratch: Reg): void => {
    e.mov(scratch, R.rsi);
    e.aluImm("and", scratch, layout.ringBytes);
    e.shl(scratch, lapShift);
    e.alu("or", word, scratch);
  };

  // rax = shadow entry `index` (a register) of block r9: fields at SHADOW_ENTRIES_OFFSET.
  const entryAt = (index: Reg): void => {
    e.mov(R.rax, index, 32);
    e.shl(R.rax, 5);
    e.alu("add", R.rax, R.r9);
  };

  // From entry ecx of block r9 downwards, the topmost whose slot is r10 (rax the entry, ecx its
  // index); jumps to `missing` when there is none.
  const searchSlot = (loop: string, missing: string): void => {
    e.bind(loop);
    e.test(R.rcx, R.rcx, 32);
    e.jcc(CC.e, missing);
    e.dec(R.rcx, 32);
    entryAt(R.rcx);
    e.cmpMem(R.rax, SHADOW_ENTRIES_OFFSET + SHADOW.slot, R.r10);
    e.jcc(CC.ne, loop);
  };

  // rdi = this thread's slot (r8d = its tid), by one probe of the table inline; the claiming and
  // probing loop runs out of line. Jumps to `missing` when there is none.
  const findSlot = (L: (s: string) => string, missing: string): void => {
    e.mov(R.rcx, R.r8, 32);
    e.aluImm("and", R.rcx, layout.slots - 1, 32);
    e.shl(R.rcx, 6);
    e.movImm64(R.rdi, dataBase + BigInt(SLOT_TABLE_OFFSET));
    e.alu("add", R.rdi, R.rcx);
    e.cmpMem(R.rdi, SLOT.tid, R.r8, 32);
    e.jcc(CC.e, L("found"));
    e.call("lookup");
    e.test(R.rdi, R.rdi);
    e.jcc(CC.e, missing);
    e.bind(L("found"));
  };

  // Write one exit-kind record for shadow entry r9 (rdi slot, ecx its depth, r11 kind bits) when
  // its entry was recorded; clobbers rax rdx rsi r8.
  const exitRecord = (L: (s: string) => string): void => {
    e.testMemImm(R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.flags, 1);
    e.jcc(CC.e, L("done"));
    e.load(R.rsi, R.rdi, SLOT.head);
    e.mov(R.rax, R.rsi);
    e.aluLoad("sub", R.rax, R.rdi, SLOT.tail);
    e.aluImm("cmp", R.rax, layout.ringBytes - RECORD_BYTES);
    e.jcc(CC.a, L("full"));
    e.movImm32(R.rsi, RECORD_BYTES);
    e.xaddMem(R.rdi, SLOT.head, R.rsi);
    e.mov(R.r8, R.rsi);
    e.aluImm("and", R.r8, mask);
    e.aluLoad("add", R.r8, R.rdi, SLOT.ring);
    e.rdtsc();
    e.shl(R.rdx, 32);
    e.alu("or", R.rax, R.rdx);
    e.store(R.r8, 0, R.rax);
    e.load(R.rax, R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.fid, 32);
    e.mov(R.rdx, R.rcx, 32);
    e.shl(R.rdx, 32);
    e.alu("or", R.rax, R.rdx);
    e.alu("or", R.rax, R.r11);
    orLapBit(R.rax, R.rdx);
    e.store(R.r8, 8, R.rax); // commit
    e.jmp(L("done"));
    e.bind(L("full"));
    e.incMem(R.rdi, SLOT.dropped);
    e.bind(L("done"));
  };

  const emitEntry = (name: string, withArgs: boolean): void => {
    const L = (s: string) => `${name}.${s}`;
    const need = (withArgs ? 4 : 1) * RECORD_BYTES;
    const FID = FRAME + 8; // above the stub's return address
    const RET_SLOT = FRAME + 16; // the function's return address
    e.align(16);
    e.bind(name);
    saveAll(e);
    e.loadFs32(R.r8, request.tidOffset);
    e.test(R.r8, R.r8, 32);
    e.jcc(CC.e, L("noslot"));
    findSlot(L, L("noslot"));
    e.load(R.r10, R.rdi, SLOT.shadow); // r10: the shadow block
    e.load(R.rcx, R.r10, SHADOW_DEPTH, 32);
    e.aluImm("cmp", R.rcx, layout.shadowEntries, 32);
    e.jcc(CC.ae, L("overflow"));
    e.alu("xor", R.r11, R.r11, 32); // r11 = recorded flag (until it holds a record's kind word)
    if (request.maxDepth < layout.shadowEntries) {
      e.aluImm("cmp", R.rcx, request.maxDepth, 32);
      e.jcc(CC.ae, L("shadow"));
    }
    e.load(R.rsi, R.rdi, SLOT.head);
    e.mov(R.rax, R.rsi);
    e.aluLoad("sub", R.rax, R.rdi, SLOT.tail);
    e.aluImm("cmp", R.rax, layout.ringBytes - need);
    e.jcc(CC.a, L("full"));
    // Reserve with one xadd, so a signal handler that traces calls between here and the commit
    // gets records of its own instead of sharing these.
    e.movImm32(R.rsi, need);
    e.xaddMem(R.rdi, SLOT.head, R.rsi);
    recordAddress(0, R.r8);
    e.rdtsc();
    e.shl(R.rdx, 32);
    e.alu("or", R.rax, R.rdx);
    e.store(R.r8, 0, R.rax);
    e.load(R.r11, R.rsp, FID, 32);
    e.mov(R.rdx, R.rcx, 32);
    e.shl(R.rdx, 32);
    e.alu("or", R.r11, R.rdx);
    e.bts(R.r11, 56 + Math.log2(withArgs ? RECORD_KIND.entryArgs : RECORD_KIND.entry));
    orLapBit(R.r11, R.rdx);
    if (withArgs) {
      const pairs: [Reg, Reg][] = [
        [R.rdi, R.rsi],
        [R.rdx, R.rcx],
        [R.r8, R.r9],
      ];
      pairs.forEach(([a, b], i) => {
        recordAddress(i + 1);
        e.load(R.rax, R.rsp, savedAt(a));
        e.store(R.r9, 0, R.rax);
        e.load(R.rax, R.rsp, savedAt(b));
        e.store(R.r9, 8, R.rax);
      });
    }
    // Commit: the kind word is stored last; graft stops reading at a record whose kind is 0.
    e.store(R.r8, 8, R.r11);
    e.movImm32(R.r11, 1);
    e.bind(L("shadow"));
    e.mov(R.r9, R.r10);
    e.mov(R.rax, R.rcx, 32);
    e.shl(R.rax, 5);
    e.alu("add", R.r9, R.rax);
    // Count the entry before filling it: a signal handler that makes traced calls meanwhile pushes
    // (and pops) its entries above this one instead of over it. Nothing reads an entry below its own
    // match, so this one is not looked at before it is whole.
    e.inc(R.rcx, 32);
    e.store(R.r10, SHADOW_DEPTH, R.rcx, 32);
    e.lea(R.rax, R.rsp, RET_SLOT);
    e.store(R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.slot, R.rax);
    e.load(R.rax, R.rsp, RET_SLOT);
    e.store(R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.returnAddress, R.rax);
    e.load(R.rax, R.rsp, FID, 32);
    e.store(R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.fid, R.rax, 32);
    e.store(R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.flags, R.r11, 32);
    e.bind(L("out"));
    restoreAll(e);
    e.retPop(8);
    e.bind(L("full"));
    e.incMem(R.rdi, SLOT.dropped);
    e.jmp(L("shadow"));
    e.bind(L("overflow"));
    e.incMem(R.rdi, SLOT.overflow);
    e.jmp(L("untraced"));
    e.bind(L("noslot"));
    e.movImm64(R.rax, dataBase);
    e.incMem(R.rax, HEADER.noSlot, true);
    // Not followed: return past the stub's call-through, straight to the function (no shadow entry
    // is there for an exit to find).
    e.bind(L("untraced"));
    e.addMemImm8(R.rsp, FRAME, UNTRACED_SKIP);
    e.jmp(L("out"));
  };

  emitEntry("entry", false);
  emitEntry("entry_args", true);

  // rax = entry `index` of the shadow block r9; jumps to `keep` unless its slot lies in
  // [r10 − SAME_STACK_REACH, r10), i.e. it was left by a longjmp on the stack r10 is on. Clobbers rsi.
  const unwoundTest = (index: Reg, keep: string): void => {
    entryAt(index);
    e.mov(R.rsi, R.r10);
    e.aluLoad("sub", R.rsi, R.rax, SHADOW_ENTRIES_OFFSET + SHADOW.slot);
    e.aluImm("cmp", R.rsi, SAME_STACK_REACH);
    e.jcc(CC.ae, keep); // unsigned: a slot above r10 wraps to a huge distance
  };

  // exit: entered by the traced function's `ret`; rsp is one word above the hijacked slot.
  e.align(16);
  e.bind("exit");
  e.lea(R.rsp, R.rsp, -8); // the slot again: it receives the original return address
  saveAll(e);
  e.lea(R.r10, R.rsp, FRAME);
  e.loadFs32(R.r8, request.tidOffset);
  // No slot to be had (every one taken by other threads): a forked child returning through frames it
  // inherited finds them in its copy of the blocks, as when its own block has none.
  findSlot((x) => `exit.${x}`, "exit.other");
  e.load(R.r9, R.rdi, SLOT.shadow);
  e.load(R.rcx, R.r9, SHADOW_DEPTH, 32);
  searchSlot("exit.search", "exit.other"); // the topmost entry whose slot is the one just returned through
  // ecx = m, the match. Entries above it that sit just below the returning slot were left by a
  // longjmp on this stack: record them as unwound (top first). The others belong to another stack
  // (a coroutine's, a signal's alternate stack) and stay: they return later through their own slots.
  e.load(R.rdx, R.r9, SHADOW_DEPTH, 32);
  e.dec(R.rdx, 32);
  e.alu("cmp", R.rdx, R.rcx, 32);
  e.jcc(CC.ne, "exit.above");
  // The usual case: the match is the top entry (rax). Write its exit, pop it, leave.
  e.mov(R.r10, R.r9); // r10: the shadow block
  e.mov(R.r9, R.rax);
  e.movImm64(R.r11, BigInt(RECORD_KIND.exit) << 56n);
  exitRecord((x) => `exit.top.${x}`);
  e.load(R.rax, R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.returnAddress);
  e.store(R.rsp, FRAME, R.rax);
  e.store(R.r10, SHADOW_DEPTH, R.rcx, 32);
  e.jmp("exit.leave");
  e.bind("exit.unwound");
  e.dec(R.rdx, 32);
  e.alu("cmp", R.rdx, R.rcx, 32);
  e.jcc(CC.be, "exit.matched");
  e.bind("exit.above");
  unwoundTest(R.rdx, "exit.unwound");
  e.push(R.rcx);
  e.push(R.rdx);
  e.mov(R.r9, R.rax); // rax: the entry, from unwoundTest
  e.mov(R.rcx, R.rdx, 32);
  e.movImm64(R.r11, BigInt(RECORD_KIND.unwound) << 56n);
  e.call("emit_exit");
  e.incMem(R.rdi, SLOT.unwound);
  e.pop(R.rdx);
  e.pop(R.rcx);
  e.load(R.r9, R.rdi, SLOT.shadow);
  e.jmp("exit.unwound");
  e.bind("exit.matched");
  e.mov(R.rax, R.rcx, 32);
  e.shl(R.rax, 5);
  e.alu("add", R.r9, R.rax);
  e.movImm64(R.r11, BigInt(RECORD_KIND.exit) << 56n);
  exitRecord((x) => `exit.record.${x}`);
  e.load(R.rax, R.r9, SHADOW_ENTRIES_OFFSET + SHADOW.returnAddress);
  e.store(R.rsp, FRAME, R.rax);
  // Compact: the entries above m that stay move down over m and the unwound ones (r8 = where the
  // next kept entry goes, edx = the entry looked at, r11d = the depth).
  e.load(R.r9, R.rdi, SLOT.shadow);
  e.mov(R.r8, R.rcx, 32);
  e.mov(R.rdx, R.rcx, 32);
  e.load(R.r11, R.r9, SHADOW_DEPTH, 32);
  e.bind("exit.compact");
  e.inc(R.rdx, 32);
  e.alu("cmp", R.rdx, R.r11, 32);
  e.jcc(CC.ae, "exit.compacted");
  unwoundTest(R.rdx, "exit.keep");
  e.jmp("exit.compact");
  e.bind("exit.keep");
  e.mov(R.rcx, R.r8, 32);
  e.shl(R.rcx, 5);
  e.alu("add", R.rcx, R.r9);
  for (let k = 0; k < 32; k += 8) {
    e.load(R.rsi, R.rax, SHADOW_ENTRIES_OFFSET + k);
    e.store(R.rcx, SHADOW_ENTRIES_OFFSET + k, R.rsi);
  }
  e.inc(R.r8, 32);
  e.jmp("exit.compact");
  e.bind("exit.compacted");
  e.store(R.r9, SHADOW_DEPTH, R.r8, 32);
  e.bind("exit.leave");
  restoreAll(e);
  // `ret`: the function's own return was into the stub's call-through, so the return-stack buffer
  // still holds the caller's call of the function on top, and this return is predicted.
  e.ret();

  // No entry in this thread's own stack: a child forked inside traced calls returns through frames
  // its parent thread entered. Its private copy of the shadow blocks has them (as at the fork):
  // find the entry in any block, pop it there, go back — not recorded (the child is not traced).
  e.bind("exit.other");
  e.movImm64(R.rsi, dataBase + BigInt(SLOT_TABLE_OFFSET));
  e.movImm32(R.rdx, layout.slots);
  e.bind("exit.other.slot");
  e.load(R.r9, R.rsi, SLOT.shadow);
  e.load(R.rcx, R.r9, SHADOW_DEPTH, 32);
  searchSlot("exit.other.search", "exit.other.next");
  e.store(R.r9, SHADOW_DEPTH, R.rcx, 32);
  e.load(R.rax, R.rax, SHADOW_ENTRIES_OFFSET + SHADOW.returnAddress);
  e.store(R.rsp, FRAME, R.rax);
  e.jmp("exit.leave");
  e.bind("exit.other.next");
  e.aluImm("add", R.rsi, SLOT_BYTES);
  e.dec(R.rdx, 32);
  e.jcc(CC.ne, "exit.other.slot");
  // No shadow entry anywhere: the original address is unknown and execution cannot go on. Reached
  // only when an entry was dropped as unwound though its frame was live: a frame of another stack
  // lying less than SAME_STACK_REACH below the returning slot (see there).
  e.bind("exit.lost");
  e.ud2();

  // emit_exit: exitRecord as a subroutine, for the rare unwound records.
  e.align(16);
  e.bind("emit_exit");
  exitRecord((x) => `emit_exit.${x}`);
  e.ret();

  // lookup: r8d = tid → rdi = its slot (claimed on first use), 0 when the table is full;
  // clobbers rax rcx rdx rsi.
  e.align(16);
  e.bind("lookup");
  e.movImm64(R.rsi, dataBase + BigInt(SLOT_TABLE_OFFSET));
  e.mov(R.rcx, R.r8, 32);
  e.aluImm("and", R.rcx, layout.slots - 1, 32);
  e.movImm32(R.rdx, layout.slots);
  e.bind("lookup.loop");
  e.mov(R.rdi, R.rcx);
  e.shl(R.rdi, 6);
  e.alu("add", R.rdi, R.rsi);
  e.load(R.rax, R.rdi, SLOT.tid, 32);
  e.alu("cmp", R.rax, R.r8, 32);
  e.jcc(CC.e, "lookup.done");
  e.test(R.rax, R.rax, 32);
  e.jcc(CC.ne, "lookup.next");
  e.lockCmpxchg32(R.rdi, SLOT.tid, R.r8); // eax = 0: claim the free slot
  e.jcc(CC.e, "lookup.done");
  e.bind("lookup.next");
  e.inc(R.rcx, 32);
  e.aluImm("and", R.rcx, layout.slots - 1, 32);
  e.dec(R.rdx, 32);
  e.jcc(CC.ne, "lookup.loop");
  e.alu("xor", R.rdi, R.rdi, 32);
  e.bind("lookup.done");
  e.ret();

  // r11 = the return point of shadow entry rax's function (from the table after the stubs); clobbers rdx.
  const returnPointTable: number[] = [];
  const returnPointOf = (): void => {
    e.load(R.rdx, R.rax, SHADOW_ENTRIES_OFFSET + SHADOW.fid, 32);
    e.shl(R.rdx, 3);
    e.movImm64(R.r11, 0n); // patched below to the table's address
    returnPointTable.push(e.here - 8);
    e.alu("add", R.r11, R.rdx);
    e.load(R.r11, R.r11, 0);
  };
  const E = SHADOW_ENTRIES_OFFSET;

  // unwind_throw: called on the way into _Unwind_RaiseException / _Unwind_Resume_or_Rethrow. The
  // unwinder reads return addresses off the stack and knows no frame for a return point in this
  // code (it would end the search and the process would terminate), so every slot of this thread
  // that holds a return point, from the thrower's frame up to THROW_REACH, gets its original return
  // address back now; its shadow entry is flagged (FLAG_RESTORED), not dropped: unwind_catch sorts
  // the frames the exception left from those it did not.
  e.align(16);
  e.bind("unwind_throw");
  saveAll(e);
  e.lea(R.r10, R.rsp, FRAME + 16); // the thrower's stack pointer (above: our call, its call)
  // A child forked inside traced calls throws through frames its parent entered: they are in its
  // private copies of every block, not in a slot of its own (see exit.other). Tell it by its pid
  // (one system call; a throw costs microseconds anyway) and give back the slots of every block.
  e.movImm32(R.rax, SYS_GETPID);
  e.syscall(); // clobbers rcx, r11 (saved)
  e.movImm64(R.rsi, dataBase);
  e.cmpMem(R.rsi, HEADER.pid, R.rax, 32);
  e.jcc(CC.ne, "unwind_throw.forked");
  e.loadFs32(R.r8, request.tidOffset);
  e.test(R.r8, R.r8, 32);
  e.jcc(CC.e, "unwind_throw.out");
  findSlot((x) => `unwind_throw.${x}`, "unwind_throw.out");
  e.load(R.r9, R.rdi, SLOT.shadow);
  e.call("unwind_throw.block");
  e.bind("unwind_throw.out");
  restoreAll(e);
  e.ret();
  e.bind("unwind_throw.forked");
  e.movImm64(R.rdi, dataBase + BigInt(SLOT_TABLE_OFFSET));
  e.movImm32(R.r8, layout.slots);
  e.bind("unwind_throw.forked.slot");
  e.load(R.r9, R.rdi, SLOT.shadow);
  e.call("unwind_throw.block");
  e.aluImm("add", R.rdi, SLOT_BYTES);
  e.dec(R.r8, 32);
  e.jcc(CC.ne, "unwind_throw.forked.slot");
  e.jmp("unwind_throw.out");

  // unwind_throw.block: the entries of block r9 whose slot lies in [r10, r10 + THROW_REACH) and
  // holds its return point get their original return address back and FLAG_RESTORED; clobbers
  // rax rcx rdx rsi r11.
  e.align(16);
  e.bind("unwind_throw.block");
  e.load(R.rcx, R.r9, SHADOW_DEPTH, 32);
  e.bind("unwind_throw.loop");
  e.test(R.rcx, R.rcx, 32);
  e.jcc(CC.e, "unwind_throw.block.done");
  e.dec(R.rcx, 32);
  entryAt(R.rcx);
  e.load(R.rsi, R.rax, E + SHADOW.slot);
  e.mov(R.rdx, R.rsi);
  e.alu("sub", R.rdx, R.r10);
  e.aluImm("cmp", R.rdx, THROW_REACH);
  e.jcc(CC.ae, "unwind_throw.loop"); // unsigned: below the thrower, or beyond its stack's reach
  returnPointOf();
  e.cmpMem(R.rsi, 0, R.r11);
  e.jcc(CC.ne, "unwind_throw.loop"); // already given back, or no longer that frame
  e.load(R.rdx, R.rax, E + SHADOW.returnAddress);
  e.store(R.rsi, 0, R.rdx);
  e.aluMemImm32("or", R.rax, E + SHADOW.flags, FLAG_RESTORED);
  e.jmp("unwind_throw.loop");
  e.bind("unwind_throw.block.done");
  e.ret();

  // unwind_catch: called on the way into __cxa_begin_catch, in the frame that caught. Flagged
  // entries whose slot lies below that frame's stack pointer were left by the exception: they are
  // on top of the shadow stack (every call made since the throw has returned), recorded as unwound
  // and dropped. The flagged entries left are frames the exception did not reach: their slots get
  // the return point again, so their returns are traced as before.
  e.align(16);
  e.bind("unwind_catch");
  saveAll(e);
  e.loadFs32(R.r8, request.tidOffset);
  e.test(R.r8, R.r8, 32);
  e.jcc(CC.e, "unwind_catch.out");
  findSlot((x) => `unwind_catch.${x}`, "unwind_catch.out");
  e.lea(R.r10, R.rsp, FRAME + 16); // the catching frame's stack pointer
  e.load(R.r9, R.rdi, SLOT.shadow);
  e.bind("unwind_catch.pop");
  e.load(R.rcx, R.r9, SHADOW_DEPTH, 32);
  e.test(R.rcx, R.rcx, 32);
  e.jcc(CC.e, "unwind_catch.rehook");
  e.dec(R.rcx, 32);
  entryAt(R.rcx);
  e.testMemImm(R.rax, E + SHADOW.flags, FLAG_RESTORED);
  e.jcc(CC.e, "unwind_catch.rehook");
  e.cmpMem(R.rax, E + SHADOW.slot, R.r10);
  e.jcc(CC.ae, "unwind_catch.rehook"); // slot at or above the catcher: a live frame
  e.push(R.r9);
  e.mov(R.r9, R.rax);
  e.movImm64(R.r11, BigInt(RECORD_KIND.unwound) << 56n);
  e.call("emit_exit");
  e.pop(R.r9);
  e.incMem(R.rdi, SLOT.unwound);
  e.store(R.r9, SHADOW_DEPTH, R.rcx, 32);
  e.jmp("unwind_catch.pop");
  e.bind("unwind_catch.rehook");
  e.load(R.rcx, R.r9, SHADOW_DEPTH, 32);
  e.bind("unwind_catch.rehook.loop");
  e.test(R.rcx, R.rcx, 32);
  e.jcc(CC.e, "unwind_catch.out");
  e.dec(R.rcx, 32);
  entryAt(R.rcx);
  e.testMemImm(R.rax, E + SHADOW.flags, FLAG_RESTORED);
  e.jcc(CC.e, "unwind_catch.rehook.loop");
  e.aluMemImm32("and", R.rax, E + SHADOW.flags, ~FLAG_RESTORED);
  e.load(R.rsi, R.rax, E + SHADOW.slot);
  e.load(R.rdx, R.rax, E + SHADOW.returnAddress);
  e.cmpMem(R.rsi, 0, R.rdx);
  e.jcc(CC.ne, "unwind_catch.rehook.loop"); // the slot changed: not that frame any more, leave it
  returnPointOf();
  e.store(R.rsi, 0, R.r11);
  e.jmp("unwind_catch.rehook.loop");
  e.bind("unwind_catch.out");
  restoreAll(e);
  e.ret();

  // One entry per hooked function: the runtime's part, then on to the real function with every
  // argument register as it came (r11 is free at a call boundary: SysV ABI §3.2.3, PLT scratch).
  const hookOffsets: number[] = [];
  for (const hook of request.unwindHooks ?? []) {
    e.align(16);
    hookOffsets.push(e.here);
    e.call(hook.kind === "throw" ? "unwind_throw" : "unwind_catch");
    e.movImm64(R.r11, hook.target);
    e.jmpReg(R.r11);
  }

  const stubs: number[] = [];
  const returnPoints: number[] = [];
  for (const [i, f] of request.functions.entries()) {
    e.align(16);
    stubs.push(e.here);
    e.pushImm(f.fid);
    e.call(f.args ? "entry_args" : "entry");
    const afterEntry = e.here;
    e.lea(R.rsp, R.rsp, 8); // the caller's return address (kept in the shadow entry) goes
    if (f.displaced === undefined) e.callAbsolute(request.codeBase, f.resume);
    else e.call(`stub${i}.body`);
    returnPoints.push(e.here);
    e.jmp("exit");
    e.bind(`stub${i}.body`);
    if (e.here - afterEntry !== UNTRACED_SKIP) throw new Error("trace stub layout changed");
    if (f.displaced !== undefined) e.raw(...f.displaced);
    e.jmpAbsolute(request.codeBase, f.resume);
  }
  // The return point of every function id, for the unwind hooks.
  e.align(8);
  const tableAt = e.here;
  const byFid = new Map(request.functions.map((f, i) => [f.fid, returnPoints[i]!] as const));
  const fids = Math.max(-1, ...byFid.keys()) + 1;
  for (let fid = 0; fid < fids; fid++) {
    const at = byFid.get(fid);
    const address = at === undefined ? 0n : request.codeBase + BigInt(at);
    for (let i = 0n; i < 8n; i++) e.raw(Number((address >> (8n * i)) & 0xffn));
  }
  const code = e.finish();
  const view = new DataView(code.buffer, code.byteOffset, code.byteLength);
  for (const at of returnPointTable) view.setBigUint64(at, request.codeBase + BigInt(tableAt), true);
  return {
    code,
    stubs,
    returnPoints,
    returnPointTableOffset: tableAt,
    hookOffsets,
    entryOffset: e.offsetOf("entry"),
    exitOffset: e.offsetOf("exit"),
  };
}
