import type { CompiledSource } from "./compile-sources.ts";
import type { DeadLetterQueue } from "./dead-letters.ts";
import type { StreamPublisher, StreamSource } from "./stream-source.ts";

/**
 * Opens a source's engine objects. Implementations are loaded on demand, so
 * a server without sources does not load either client.
 */
export async function openStreamSource(source: CompiledSource, consumerName: string): Promise<StreamSource> {
  if (source.redis) {
    const { RedisStreamSource } = await import("./redis-stream-source.ts");
    return new RedisStreamSource(source.name, source.redis, consumerName);
  }
  if (source.nats) {
    const { NatsStreamSource } = await import("./nats-stream-source.ts");
    return new NatsStreamSource(source.name, source.nats, { batchSize: source.batchSize });
  }
  throw new Error(`source "${source.name}": no engine settings`);
}

/**
 * A source's dead-letter queue; `connectNow: false` (the consumers) opens a
 * NATS connection on first use instead, so an unreachable server does not
 * hold up a start.
 */
export async function openDeadLetters(source: CompiledSource, options: { readonly connectNow?: boolean } = {}): Promise<DeadLetterQueue> {
  if (source.redis) {
    const { RedisDeadLetters } = await import("./redis-stream-source.ts");
    return new RedisDeadLetters(source.redis.url, source.redis.deadLetterStream, source.deadLetterRetention);
  }
  if (source.nats) {
    const { NatsDeadLetters } = await import("./nats-stream-source.ts");
    if (options.connectNow === false) return new NatsDeadLetters(source.nats.servers, source.nats.deadLetterStream, source.deadLetterRetention);
    return NatsDeadLetters.connect(source.nats.servers, source.nats.deadLetterStream, source.deadLetterRetention);
  }
  throw new Error(`source "${source.name}": no engine settings`);
}

/** A publisher onto the source's own stream (producer, dead-letter replay); `maxLen` trims Redis streams (`MAXLEN ~`). */
export async function openPublisher(source: CompiledSource, options: { readonly maxLen?: number } = {}): Promise<StreamPublisher> {
  if (source.redis) {
    const { RedisStreamPublisher } = await import("./redis-stream-source.ts");
    return new RedisStreamPublisher(source.redis, options.maxLen);
  }
  if (source.nats) {
    const { NatsStreamPublisher } = await import("./nats-stream-source.ts");
    return NatsStreamPublisher.connect(source.nats);
  }
  throw new Error(`source "${source.name}": no engine settings`);
}
