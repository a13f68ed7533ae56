import { runStreamSourceContract } from "./stream-source-contract.ts";
import { startNatsEngine, startRedisEngine } from "./support/stream-engines.ts";

runStreamSourceContract("Redis Streams", startRedisEngine);
runStreamSourceContract("NATS JetStream", startNatsEngine);
