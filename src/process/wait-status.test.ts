import { describe, expect, it } from "vitest";
import { decodeWaitStatus } from "./wait-status.js";

describe("decodeWaitStatus", () => {
  it("decodes a normal exit with its code", () => {
    expect(decodeWaitStatus(3 << 8)).toEqual({ kind: "exited", code: 3 });
  });

  it("decodes death by a signal, with and without a core dump", () => {
    expect(decodeWaitStatus(9)).toEqual({ kind: "signaled", signal: 9, coreDumped: false });
    expect(decodeWaitStatus(11 | 0x80)).toEqual({ kind: "signaled", signal: 11, coreDumped: true });
  });

  it("decodes a signal-delivery-stop as event 0 and a PTRACE_EVENT_STOP as event 128", () => {
    expect(decodeWaitStatus((10 << 8) | 0x7f)).toEqual({ kind: "stopped", signal: 10, event: 0 });
    expect(decodeWaitStatus((128 << 16) | (5 << 8) | 0x7f)).toEqual({
      kind: "stopped",
      signal: 5,
      event: 128,
    });
    expect(decodeWaitStatus((128 << 16) | (19 << 8) | 0x7f)).toEqual({
      kind: "stopped",
      signal: 19,
      event: 128,
    });
    expect(decodeWaitStatus((3 << 16) | (5 << 8) | 0x7f)).toEqual({ kind: "stopped", signal: 5, event: 3 });
  });

  it("decodes a continued child", () => {
    expect(decodeWaitStatus(0xffff)).toEqual({ kind: "continued" });
  });
});
