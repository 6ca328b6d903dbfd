/** The one way graft prints an address or offset: `0x` and lowercase hex, no padding. */
export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

/** Bytes as space-separated lowercase hex pairs, e.g. `f3 0f 1e fa`. */
export function hexBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Bytes as one unbroken lowercase hex string, e.g. `f30f1efa` (the journal's and manifest's form). */
export function hexString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex");
}

/** The bytes of an unbroken hex string (the inverse of hexString). */
export function bytesFromHex(text: string): Uint8Array {
  return Uint8Array.from(text.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
}
