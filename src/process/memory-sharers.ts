/**
 * Processes that share one address space with a target: children made with clone(CLONE_VM) without
 * CLONE_THREAD, and vfork children until they exec or exit. Stopping the target's threads leaves
 * theirs running through the same memory, so graft must not rewrite code there.
 *
 * Method: the candidates are the processes a shared mm is born between — children of any of the
 * target's threads (/proc/PID/task/TID/children: a CLONE_VM or vfork child the target made) and the
 * target's parent (the target is such a child) — and kcmp(2) KCMP_VM says exactly whether two
 * processes have the same mm. Limits: a CLONE_VM|CLONE_PARENT child is a sibling, and a sharer whose
 * creator exited is reparented; neither is a candidate (scanning every process of /proc with kcmp
 * would find them, at a cost per target that grows with the machine).
 */
import { readdirSync, readFileSync } from "node:fs";
import { getLibc, lastErrno } from "./libc.js";

const SYS_kcmp = 312;
const KCMP_VM = 1;

/** A process sharing the target's memory, and how it relates to it. */
export interface MemorySharer {
  readonly pid: number;
  readonly relation: "child" | "parent";
  /** `vfork`: its parent waits in vfork() until it execs or exits. */
  readonly vfork: boolean;
  readonly name: string;
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return undefined;
  }
}

function statField(pid: number, index: number): string | undefined {
  const stat = read(`/proc/${pid}/stat`);
  if (stat === undefined) return undefined;
  // Fields after the command name (which may hold spaces and parentheses) are plain; field 3 is index 0.
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[index - 3];
}

/**
 * Whether some thread of `pid` is inside vfork(), waiting for its child: /proc/PID/task/TID/syscall
 * names the call a blocked thread is in — vfork (58), clone (56) with CLONE_VFORK in its flags, or
 * clone3 (435), whose flags sit in memory (a clone3 caller blocked there is waiting for a vfork child).
 */
function waitsInVfork(pid: number): boolean {
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {}
  return tids.some((tid) => {
    const [nr, flags] = (read(`/proc/${pid}/task/${tid}/syscall`) ?? "").split(" ");
    if (nr === "58" || nr === "435") return true;
    return nr === "56" && flags !== undefined && (BigInt(flags) & 0x4000n) !== 0n;
  });
}

/**
 * Every process found sharing `pid`'s address space (see the method above); empty when none, or when
 * kcmp is unavailable (`undefined` is returned then, so the caller can say it could not tell).
 */
export function findMemorySharers(pid: number): MemorySharer[] | undefined {
  const candidates = new Map<number, "child" | "parent">();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {}
  for (const tid of tids) {
    for (const c of (read(`/proc/${pid}/task/${tid}/children`) ?? "").split(" ")) {
      const child = Number(c);
      if (Number.isInteger(child) && child > 0) candidates.set(child, "child");
    }
  }
  const parent = Number(statField(pid, 4));
  if (Number.isInteger(parent) && parent > 1) candidates.set(parent, "parent");
  const libc = getLibc();
  const out: MemorySharer[] = [];
  for (const [other, relation] of candidates) {
    const r = Number(libc.syscall3(SYS_kcmp, pid, other, KCMP_VM));
    if (r === -1) {
      const errno = lastErrno();
      if (errno === 38 /* ENOSYS */ || errno === 22 /* EINVAL: no CONFIG_KCMP */) return undefined;
      continue; // ESRCH (gone), EPERM (not ours: cannot share our memory without ptrace rights either)
    }
    if (r !== 0) continue;
    const waiter = relation === "child" ? pid : other;
    out.push({
      pid: other,
      relation,
      vfork: waitsInVfork(waiter),
      name: (read(`/proc/${other}/comm`) ?? "").trim(),
    });
  }
  return out;
}
