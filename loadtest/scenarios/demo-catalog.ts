import type { KeySpace } from "../template.ts";

/**
 * The feature views of src/registry/example-registry.yaml and the key spaces of the demo data
 * (src/api/http/README.md): drivers 1001.., customers "c0"... A test keeps this in step with
 * the YAML; scenarios need only names, types and key spaces, not the full registry.
 */
export type FeatureType = "int64" | "float64" | "string" | "bool" | "int64[]" | "float64[]" | "string[]" | `embedding(${number})`;

export interface JoinKeyInfo {
  readonly name: string;
  /** Index into DEMO_KEY_SPACES. */
  readonly space: number;
}

export interface ViewInfo {
  readonly name: string;
  readonly joinKeys: readonly JoinKeyInfo[];
  readonly features: readonly { readonly name: string; readonly type: FeatureType }[];
}

export const DEMO_KEY_SPACES: readonly KeySpace[] = [
  { kind: "int", base: 1001 },
  { kind: "string", prefix: "c" },
];

const DRIVER = [{ name: "driver_id", space: 0 }];
const CUSTOMER = [{ name: "customer_id", space: 1 }];

export const DEMO_VIEWS: readonly ViewInfo[] = [
  {
    name: "driver_hourly_stats",
    joinKeys: DRIVER,
    features: [
      { name: "conv_rate", type: "float64" },
      { name: "acc_rate", type: "float64" },
      { name: "avg_daily_trips", type: "int64" },
      { name: "is_active", type: "bool" },
      { name: "city", type: "string" },
      { name: "vehicle_type", type: "string" },
      { name: "rating", type: "float64" },
      { name: "hours_online_7d", type: "float64" },
      { name: "recent_trip_ids", type: "int64[]" },
      { name: "rating_history", type: "float64[]" },
    ],
  },
  {
    name: "customer_profile",
    joinKeys: CUSTOMER,
    features: [
      { name: "lifetime_spend", type: "float64" },
      { name: "orders_30d", type: "int64" },
      { name: "segment", type: "string" },
      { name: "is_premium", type: "bool" },
      { name: "favorite_categories", type: "string[]" },
      { name: "signup_days", type: "int64" },
      { name: "embedding", type: "embedding(8)" },
    ],
  },
  {
    name: "fraud_signals",
    joinKeys: CUSTOMER,
    features: [
      { name: "spend_1h", type: "float64" },
      { name: "spend_30d", type: "float64" },
      { name: "txn_count_1h", type: "int64" },
      { name: "distinct_cards_7d", type: "int64" },
      { name: "chargeback_flag", type: "bool" },
      { name: "risk_score", type: "float64" },
      { name: "device_ids", type: "string[]" },
    ],
  },
  {
    name: "driver_customer_affinity",
    joinKeys: [...DRIVER, ...CUSTOMER],
    features: [
      { name: "trips_together", type: "int64" },
      { name: "avg_rating_given", type: "float64" },
      { name: "last_tip_pct", type: "float64" },
      { name: "blocked", type: "bool" },
    ],
  },
];

export function findView(name: string): ViewInfo {
  const v = DEMO_VIEWS.find((x) => x.name === name);
  if (v === undefined) throw new Error(`--view: unknown feature view "${name}" (known: ${DEMO_VIEWS.map((x) => x.name).join(", ")})`);
  return v;
}

/** Feature names to request: all of the view's, or the `--features` subset (checked). */
export function pickFeatures(view: ViewInfo, names: readonly string[] | undefined): readonly ViewInfo["features"][number][] {
  if (names === undefined || names.length === 0) return view.features;
  return names.map((n) => {
    const f = view.features.find((x) => x.name === n);
    if (f === undefined) throw new Error(`--features: "${n}" is not a feature of ${view.name}`);
    return f;
  });
}
