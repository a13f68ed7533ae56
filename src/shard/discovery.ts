/** Who the primary and replicas of a shard are right now (`host:port` each). */
export interface Layout {
  readonly primary: string;
  readonly replicas: readonly string[];
  /** The sources (Sentinels) that named this primary; absent for a fixed layout. */
  readonly namedBy?: readonly string[];
  /** The newest Sentinel configuration epoch behind this answer (each failover raises it); absent for a fixed layout. */
  readonly epoch?: number;
  /**
   * Layouts other sources named instead (Sentinels that disagree), most-named
   * first; absent when every source that answered named the same primary.
   */
  readonly rivals?: readonly Layout[];
}

/**
 * Where a replica set learns its layout: Sentinel (follows failovers) or a
 * fixed list from the topology file. Kept behind one interface so the
 * replica set does not care which.
 */
export interface Discovery {
  readonly kind: "sentinel" | "static";
  /**
   * The current layout (the most-named, with its rivals when sources
   * disagree: the replica set confirms the primary with ROLE); rejects when
   * no source can answer.
   */
  resolve(): Promise<Layout>;
  /** Registers a callback for pushed changes (Sentinel's `+switch-master`, `+sdown`, ...). */
  watch(onChange: () => void): void;
  /** For /readyz: what the discovery is configured with. */
  describe(): Record<string, unknown>;
  /**
   * Is a failover of the shard under way (Sentinel has begun one and not yet
   * announced its end)? Writes acknowledged meanwhile may be on a primary
   * about to be deposed, confirmed by a replica Sentinel did not pick.
   */
  failoverUnderWay(): boolean;
  close(): Promise<void>;
}

/** A fixed layout from the topology file; ROLE probes in the replica set still notice a manual promotion. */
export class StaticDiscovery implements Discovery {
  readonly kind = "static";
  private readonly layout: Layout;

  constructor(layout: Layout) {
    this.layout = { primary: layout.primary, replicas: [...layout.replicas] };
  }

  resolve(): Promise<Layout> {
    return Promise.resolve(this.layout);
  }

  watch(): void {}

  /** Fixed addresses: nothing announces a failover (ROLE probes follow a manual promotion). */
  failoverUnderWay(): boolean {
    return false;
  }

  describe(): Record<string, unknown> {
    return { kind: this.kind, primary: this.layout.primary, replicas: this.layout.replicas };
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
