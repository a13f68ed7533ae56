import { decodeFromCompressedBase64 } from "hdr-histogram-js";

/**
 * HdrHistogram's percentile-distribution text (the .hgrm format the HdrHistogram
 * plotter and wrk2 use), with values in milliseconds.
 */
export function hgrmText(compressedHistogram: string, ticksPerHalfDistance = 5): string {
  const h = decodeFromCompressedBase64(compressedHistogram);
  return h.outputPercentileDistribution(ticksPerHalfDistance, 1000);
}
