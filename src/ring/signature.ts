/** A ring's members as `name:weight`, sorted: equal for two rings that place every key alike at the same virtual nodes. */
export function ringOf(members: readonly { readonly id: string; readonly weight: number }[]): string {
  return members
    .map((m) => `${m.id}:${m.weight}`)
    .sort()
    .join(",");
}

/** A ring as a placement record names it: virtual nodes per unit of weight, then its members (`ringOf`). */
export function ringSignature(vnodes: number, members: readonly { readonly id: string; readonly weight: number }[]): string {
  return `${vnodes} vnodes: ${ringOf(members)}`;
}
