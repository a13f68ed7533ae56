import type * as NodeCrypto from "node:crypto";

/**
 * Hashes and a constant-time comparison for core code: the registry's
 * fingerprint, Redis scripts' SHA1 for EVALSHA, the bearer token's check.
 *
 * On Bun they come from its native hasher (`Bun.CryptoHasher`) and its Web
 * Crypto's `timingSafeEqual`, not from node:crypto. Bun implements node:crypto
 * in JavaScript over node:stream (a Hash is a Transform stream), and loading it
 * for three hashes kept ~700 more code cells alive: every young collection
 * walks every live code cell (src/app.ts, on loading the gRPC edge), so code
 * loaded and never run on the hot path still costs at each collection.
 * Elsewhere (a Deno entry point) node:crypto is loaded on first use, through
 * `process.getBuiltinModule`, which both runtimes provide.
 */
export interface Digests {
  sha256(data: string | Uint8Array): Uint8Array;
  sha256Hex(data: string | Uint8Array): string;
  sha1Hex(data: string | Uint8Array): string;
  /** SHA-256 fed in pieces (a large file read a chunk at a time). */
  sha256Incremental(): IncrementalHash;
  /** Equal contents, compared in time independent of where they differ; different lengths are unequal. */
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
}

export interface IncrementalHash {
  update(data: Uint8Array): void;
  hex(): string;
}

interface BunHasher {
  update(data: string | Uint8Array): BunHasher;
  digest(): Uint8Array;
  digest(encoding: "hex"): string;
}

interface BunRuntime {
  CryptoHasher: new (algorithm: "sha256" | "sha1") => BunHasher;
}

/** Bun's native hasher and Web Crypto's timingSafeEqual (a Bun extension); undefined off Bun. */
export function bunDigests(): Digests | undefined {
  const bun = (globalThis as { Bun?: BunRuntime }).Bun;
  const equal = (globalThis.crypto as { timingSafeEqual?: (a: Uint8Array, b: Uint8Array) => boolean } | undefined)?.timingSafeEqual;
  if (bun === undefined || typeof bun.CryptoHasher !== "function" || typeof equal !== "function") return undefined;
  const Hasher = bun.CryptoHasher;
  return {
    // Bun's digest() is a Buffer, whose slice() is a view: hand out a plain Uint8Array over the same bytes.
    sha256: (data) => {
      const b = new Hasher("sha256").update(data).digest();
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
    sha256Hex: (data) => new Hasher("sha256").update(data).digest("hex"),
    sha1Hex: (data) => new Hasher("sha1").update(data).digest("hex"),
    sha256Incremental: () => {
      const h = new Hasher("sha256");
      return { update: (data) => void h.update(data), hex: () => h.digest("hex") };
    },
    timingSafeEqual: (a, b) => a.byteLength === b.byteLength && equal.call(globalThis.crypto, a, b),
  };
}

/** node:crypto's, loaded on first use. */
export function nodeDigests(): Digests {
  let loaded: typeof NodeCrypto | undefined;
  const crypto = (): typeof NodeCrypto => {
    loaded ??= process.getBuiltinModule("node:crypto");
    return loaded;
  };
  return {
    sha256: (data) => {
      const b = crypto().createHash("sha256").update(data).digest();
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    },
    sha256Hex: (data) => crypto().createHash("sha256").update(data).digest("hex"),
    sha1Hex: (data) => crypto().createHash("sha1").update(data).digest("hex"),
    sha256Incremental: () => {
      const h = crypto().createHash("sha256");
      return { update: (data) => void h.update(data), hex: () => h.digest("hex") };
    },
    timingSafeEqual: (a, b) => a.byteLength === b.byteLength && crypto().timingSafeEqual(a, b),
  };
}

/** The runtime's digests: Bun's native ones, else node:crypto's. */
export const digests: Digests = bunDigests() ?? nodeDigests();
