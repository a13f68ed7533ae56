import type protobuf from "protobufjs";
import { invalid, resourceExhausted } from "../../errors/index.ts";
import { Undecoded } from "./call.ts";

export interface HeldMessagesOptions {
  /** Most bytes of large request messages held at once, arrived and not yet read (RESOURCE_EXHAUSTED beyond). */
  readonly capBytes: number;
  /** A large message whose call its client has not ended this long after it arrived is dropped (ms; between this and twice it). */
  readonly unendedMs: number;
  /** Messages from this size (bytes) are counted; smaller ones pass as they are. */
  readonly fromBytes: number;
}

/**
 * The bytes of large request messages the server holds before it reads
 * them, bounded. A message is held from its arrival until its call is
 * admitted (call.ts Undecoded), and grpc-js runs a unary handler only once
 * the client ends the call: a client that sends messages and never ends
 * their calls had the server hold each one, up to the message limit, for as
 * long as it liked. Gzipped, 4 MiB of zeros is 4 KB on the wire: 100 such
 * calls on one connection (413 KB sent) held 434 MB, and connections are not
 * counted. Here the large ones (`fromBytes`) are counted against `capBytes`
 * (one beyond it is answered RESOURCE_EXHAUSTED, unread, once its call is
 * run), and one whose call has not reached its handler `unendedMs` after it
 * arrived is dropped (its call, if it is ever ended, is INVALID_ARGUMENT).
 * Small messages, every lookup a client normally sends, cost nothing here.
 */
export class HeldMessages {
  private bytes = 0;
  /** Counted messages by age: `young` arrived within the last sweep interval, `old` within the one before. */
  private young: Undecoded[] = [];
  private old: Undecoded[] = [];
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly o: HeldMessagesOptions) {
    if (!(o.capBytes > 0 && o.unendedMs > 0 && o.fromBytes > 0)) throw new Error(`held messages: capBytes, unendedMs and fromBytes must be > 0, got ${JSON.stringify(o)}`);
  }

  /** Bytes held now. */
  get heldBytes(): number {
    return this.bytes;
  }

  /** A request message as it arrives, for its handler to read once admitted. */
  take(buf: Buffer, type: protobuf.Type): Undecoded {
    if (buf.length < this.o.fromBytes) return new Undecoded(buf, type);
    if (this.bytes + buf.length > this.o.capBytes) {
      return Undecoded.gone(resourceExhausted("messages_held", `the server holds ${this.o.capBytes} bytes of request messages not yet run, the most it holds; retry shortly`));
    }
    this.bytes += buf.length;
    const u = new Undecoded(buf, type, this);
    this.young.push(u);
    if (this.timer === undefined) {
      // A message is young until the next sweep, old until the one after: dropped between one and two intervals old.
      this.timer = setInterval(this.sweep, this.o.unendedMs);
      (this.timer as { unref?: () => void }).unref?.();
    }
    return u;
  }

  /** `n` bytes are no longer held (their message was read or let go). */
  release(n: number): void {
    this.bytes -= n;
  }

  /** Drops what arrived over `unendedMs` ago and whose call has not reached its handler. */
  private readonly sweep = (): void => {
    for (const u of this.old) u.expire(unended(this.o.unendedMs));
    this.old = this.young;
    this.young = [];
    if (this.old.length === 0 && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  };
}

function unended(ms: number) {
  return invalid("call_not_ended", "(message)", `the call was not ended within ${ms} ms of its message; the message was dropped (send the message and end the call)`);
}
