import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { GraftError, RefusedError } from "../core/errors.js";
import type { PatchFile } from "./patch-file.js";
import { MANIFEST_SECTION } from "./patch-manifest.js";

/** Version tag of the signature sidecar and of the statement it signs. */
export const SIGNATURE_FORMAT = "graft-signature/1";

/**
 * A detached signature, stored beside the patch as `PATCH.sig` (JSON). Only `signature` is trusted:
 * the other fields say what was signed, for people and for choosing the key, and verification
 * recomputes the statement from the patch itself.
 */
export interface PatchSignature {
  readonly format: typeof SIGNATURE_FORMAT;
  readonly patch: string;
  /** The patch's content hash (manifest `sha256`: every section but the manifest). */
  readonly sha256: string;
  /** sha256 of the manifest section's bytes. */
  readonly manifestSha256: string;
  /** Id of the signing key: the first 16 hex digits of sha256 over its SubjectPublicKeyInfo DER. */
  readonly key: string;
  /** ed25519 signature of the statement, base64. */
  readonly signature: string;
}

/** The signer of a verified patch. */
export interface VerifiedSignature {
  readonly patch: string;
  readonly sha256: string;
  readonly key: string;
  /** The trusted public key file that verified it. */
  readonly keyFile: string;
}

/** A trusted public key and where it came from. */
export interface TrustedKey {
  readonly id: string;
  readonly file: string;
  readonly key: KeyObject;
}

/** Where the signature of `patchPath` is looked for unless told otherwise. */
export function defaultSignaturePath(patchPath: string): string {
  return `${patchPath}.sig`;
}

/**
 * What a signature signs: the content hash (the code, symbols and relocations) and the hash of the
 * manifest (target build-id, sites and their expected bytes, dependencies). Together they cover every
 * byte that decides what the patch does; ELF padding and section order do not matter.
 */
function statement(patch: PatchFile): { text: Buffer; manifestSha256: string } {
  const section = patch.elf.findSection(MANIFEST_SECTION);
  const manifestBytes = section === undefined ? new Uint8Array() : patch.elf.sectionBytes(section);
  const manifestSha256 = createHash("sha256").update(manifestBytes).digest("hex");
  const text = `${SIGNATURE_FORMAT}\n${patch.manifest.id}\n${patch.manifest.sha256}\n${manifestSha256}\n`;
  return { text: Buffer.from(text), manifestSha256 };
}

/** Key id: sha256 of the public key's SubjectPublicKeyInfo DER, first 16 hex digits. */
export function keyId(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return createHash("sha256")
    .update(pub.export({ type: "spki", format: "der" }))
    .digest("hex")
    .slice(0, 16);
}

function readKey(path: string, kind: "private" | "public"): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(path, "utf8");
  } catch {
    throw new GraftError("FILE_NOT_FOUND", `cannot read key ${path}`, { subject: path });
  }
  // createPublicKey derives a public key from a private PEM: never let a .key pass for a .pub.
  if (kind === "public" && /PRIVATE KEY/.test(pem))
    throw new GraftError("KEY_INVALID", "a private key where a public key (.pub) belongs", { subject: path });
  let key: KeyObject;
  try {
    key = kind === "private" ? createPrivateKey(pem) : createPublicKey(pem);
  } catch {
    throw new GraftError("KEY_INVALID", `not a PEM ${kind} key`, { subject: path });
  }
  if (key.asymmetricKeyType !== "ed25519")
    throw new GraftError("KEY_INVALID", `a ${key.asymmetricKeyType} key, not ed25519`, { subject: path });
  return key;
}

/** Write a new ed25519 key pair: `BASE.key` (PKCS#8 PEM, mode 0600) and `BASE.pub` (SPKI PEM). */
export function generateKeyPair(base: string): { keyFile: string; pubFile: string; id: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const keyFile = `${base}.key`;
  const pubFile = `${base}.pub`;
  // "wx": never overwrite a key someone may already sign with.
  for (const [file, text, mode] of [
    [keyFile, privateKey.export({ type: "pkcs8", format: "pem" }) as string, 0o600],
    [pubFile, publicKey.export({ type: "spki", format: "pem" }) as string, 0o644],
  ] as const) {
    let fd: number;
    try {
      fd = openSync(file, "wx", mode);
    } catch (e) {
      throw new GraftError(
        "USAGE",
        (e as NodeJS.ErrnoException).code === "EEXIST" ? "file exists" : "cannot create",
        { subject: file, hint: "choose another name; graft keygen never overwrites a key" },
      );
    }
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
  }
  return { keyFile, pubFile, id: keyId(publicKey) };
}

/** Sign a (hash-verified) patch with the private key in `keyFile`. */
export function signPatch(patch: PatchFile, keyFile: string): PatchSignature {
  const key = readKey(keyFile, "private");
  const { text, manifestSha256 } = statement(patch);
  return {
    format: SIGNATURE_FORMAT,
    patch: patch.manifest.id,
    sha256: patch.manifest.sha256,
    manifestSha256,
    key: keyId(key),
    signature: sign(null, text, key).toString("base64"),
  };
}

/**
 * Public keys to trust: the files given, else every `*.pub` in the directories of $GRAFT_TRUSTED_KEYS
 * (colon-separated; a file there counts too).
 */
export function loadTrustedKeys(files: readonly string[] = []): TrustedKey[] {
  const paths = [...files];
  if (paths.length === 0) {
    for (const entry of (process.env.GRAFT_TRUSTED_KEYS ?? "").split(":").filter((e) => e !== "")) {
      let isDir = false;
      try {
        isDir = statSync(entry).isDirectory();
      } catch {
        throw new GraftError("FILE_NOT_FOUND", "GRAFT_TRUSTED_KEYS names a missing path", { subject: entry });
      }
      if (!isDir) paths.push(entry);
      else
        for (const name of readdirSync(entry).sort())
          if (name.endsWith(".pub")) paths.push(join(entry, name));
    }
  }
  return paths.map((file) => {
    const key = readKey(file, "public");
    return { id: keyId(key), file, key };
  });
}

function parseSignature(text: string, file: string): PatchSignature {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new RefusedError("SIGNATURE_INVALID", ["the signature file is not JSON"], { subject: file });
  }
  if (
    raw === null ||
    typeof raw !== "object" ||
    raw.format !== SIGNATURE_FORMAT ||
    typeof raw.key !== "string" ||
    typeof raw.signature !== "string"
  ) {
    throw new RefusedError("SIGNATURE_INVALID", [`not a ${SIGNATURE_FORMAT} signature`], { subject: file });
  }
  return raw as unknown as PatchSignature;
}

/**
 * Check that `patch` (already hash-verified by readPatchFile) carries a valid signature by one of
 * `trusted`. Refuses SIGNATURE_MISSING (no .sig), SIGNATURE_UNTRUSTED (signed, by another key),
 * SIGNATURE_INVALID (the statement recomputed from this patch does not verify: the manifest or the
 * code changed after signing, or the .sig is another patch's).
 */
export function verifyPatchSignature(
  patch: PatchFile,
  trusted: readonly TrustedKey[],
  signatureFile = defaultSignaturePath(patch.path),
): VerifiedSignature {
  if (trusted.length === 0) {
    throw new GraftError("USAGE", "no trusted public key to verify the signature with", {
      subject: patch.path,
      hint: "pass --pubkey PUB or set GRAFT_TRUSTED_KEYS to a directory of .pub files",
    });
  }
  let text: string;
  try {
    text = readFileSync(signatureFile, "utf8");
  } catch {
    throw new RefusedError("SIGNATURE_MISSING", [`no signature ${signatureFile}`], { subject: patch.path });
  }
  const sig = parseSignature(text, signatureFile);
  const key = trusted.find((k) => k.id === sig.key);
  if (key === undefined) {
    throw new RefusedError(
      "SIGNATURE_UNTRUSTED",
      [`signed by key ${sig.key}; trusted: ${trusted.map((k) => `${k.id} (${k.file})`).join(", ")}`],
      { subject: patch.path },
    );
  }
  const { text: signed } = statement(patch);
  if (!verify(null, signed, key.key, Buffer.from(sig.signature, "base64"))) {
    throw new RefusedError(
      "SIGNATURE_INVALID",
      [`the signature by key ${key.id} does not verify for patch ${patch.manifest.id}`],
      { subject: patch.path },
    );
  }
  return { patch: patch.manifest.id, sha256: patch.manifest.sha256, key: key.id, keyFile: key.file };
}
