export { compileRegistry, parseDefinitionsText, unknownRefMessage } from "./compile-registry.ts";
export type { RegistryDef } from "./definitions.ts";
export { loadRegistryFile } from "./load-registry.ts";
export { type CompiledFeature, type CompiledView, type FeatureRef, type JoinKey, type Registry, RegistryHolder } from "./registry.ts";
export { describe as describeValue } from "./value-types.ts";
