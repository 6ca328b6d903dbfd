import { ERROR_CODES, type ErrorCode } from "./error-codes.js";

/** Base of every error graft throws on purpose: a stable code, a subject, a one-line message and a hint. */
export class GraftError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;
  /** What the error is about: a file, a PID, a function. */
  readonly subject: string | undefined;

  constructor(
    code: ErrorCode,
    detail?: string,
    options: { subject?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(
      detail ?? ERROR_CODES[code].message,
      options.cause === undefined ? undefined : { cause: options.cause },
    );
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint ?? ERROR_CODES[code].hint;
    this.subject = options.subject;
  }
}

/** Broken input bytes: where in which file, and what was expected there. */
export class FormatError extends GraftError {
  readonly file: string | undefined;
  readonly offset: bigint | undefined;

  constructor(code: ErrorCode, detail: string, where: { file?: string; offset?: bigint | number } = {}) {
    const offset = where.offset === undefined ? undefined : BigInt(where.offset);
    const at = offset === undefined ? "" : ` at offset 0x${offset.toString(16)}`;
    super(code, `${detail}${at}`, where.file === undefined ? {} : { subject: where.file });
    this.file = where.file;
    this.offset = offset;
  }
}

/** A failed operation on a live process. */
export class ProcessError extends GraftError {
  readonly pid: number;
  readonly tid: number | undefined;
  readonly op: string;
  readonly errno: number | undefined;

  constructor(
    code: ErrorCode,
    detail: string,
    where: { pid: number; tid?: number; op: string; errno?: number; hint?: string },
  ) {
    super(
      code,
      detail,
      where.hint === undefined
        ? { subject: `pid ${where.pid}` }
        : { subject: `pid ${where.pid}`, hint: where.hint },
    );
    this.pid = where.pid;
    this.tid = where.tid;
    this.op = where.op;
    this.errno = where.errno;
  }
}

/** A safety check said no. Nothing was changed. */
export class RefusedError extends GraftError {
  readonly reasons: readonly string[];

  constructor(
    code: ErrorCode,
    reasons: readonly string[],
    options: { subject?: string; hint?: string } = {},
  ) {
    super(code, reasons.join("; ") || ERROR_CODES[code].message, options);
    this.reasons = reasons;
  }
}
