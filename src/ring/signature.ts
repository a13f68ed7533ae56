/** A ring as a record names it: virtual nodes per unit of weight, then `name:weight` in name order. */
export function ringSignature(vnodes: number, members: readonly { readonly id: string; readonly weight: number }[]): string {
  const ms = [...members].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return `${vnodes} vnodes: ${ms.map((m) => `${m.id}:${m.weight}`).join(",")}`;
}
