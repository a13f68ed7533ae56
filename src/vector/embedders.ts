import { existsSync } from "node:fs";
import type { CompiledView } from "../registry/index.ts";
import type { Embedder } from "./embedder.ts";
import { HashedNgramEmbedder } from "./hashed-ngram-embedder.ts";

export interface EmbedderOptions {
  /** `--embedder-model`: an operator-supplied ONNX sentence-embedding model file. */
  readonly modelPath: string;
}

/**
 * The embedder a view's `index.embedder` names, built once at start-up (and
 * on registry reload). Throws naming the setting when it cannot be built, so
 * a misconfigured server does not start.
 *
 * `onnx` is the seam for a real sentence model: the setting and the model
 * path exist and are validated, but this build bundles no ONNX runtime (no
 * model or runtime may be downloaded here), so it refuses to start rather
 * than silently answering with a different embedder. Adding one means an
 * `OnnxEmbedder implements Embedder` (tokenizer + onnxruntime session, mean
 * pooling, L2 normalisation) returned from this function.
 */
export function createEmbedder(view: CompiledView, options: EmbedderOptions): Embedder | undefined {
  const spec = view.index;
  if (!spec?.embedder) return undefined;
  if (spec.embedder === "hashed-ngrams") return new HashedNgramEmbedder(spec.dim);
  const where = `feature view "${view.name}" index.embedder: onnx`;
  if (!options.modelPath) throw new Error(`${where} needs --embedder-model (QUIVER_EMBEDDER_MODEL) naming an ONNX model file`);
  if (!existsSync(options.modelPath)) throw new Error(`--embedder-model: no file at ${options.modelPath} (${where})`);
  throw new Error(`${where}: this build has no ONNX runtime to run ${options.modelPath}; use embedder: hashed-ngrams, or send vectors`);
}
