import { parseYamlText } from "../text/yaml-text.ts";

/**
 * Topology text to plain data: the YAML parser (~1k code cells), which a
 * server needs only while it reads the file. loadTopology (topology.ts) runs
 * this reader in a worker (runtime/off-thread.ts), so the parser never loads in
 * the server's own heap; the data's meaning is checked there by parseTopology.
 */
export function readTopologyText(text: string, source: string): unknown {
  return parseYamlText(text, source, "invalid_topology", "(file)");
}
