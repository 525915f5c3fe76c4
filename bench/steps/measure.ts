/**
 * The timing harness of bench/steps.ts: bounded loops (a count and a time limit, whichever ends first), paired
 * repetitions of "ours" and "the other" in alternating order, and medians with their min–max.
 */

export interface Stat {
  median: number;
  min: number;
  max: number;
}

export function stat(values: number[]): Stat {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
  return { median: median ?? NaN, min: sorted[0] ?? NaN, max: sorted[sorted.length - 1] ?? NaN };
}

/** Per-repetition differences a[i] − b[i] (the pairs ran minutes, not hours, apart: same machine state). */
export const pairedDiff = (a: number[], b: number[]): Stat => stat(a.map((x, i) => x - (b[i] ?? NaN)));

/** Defeats dead-code elimination: every loop body adds something here. */
export const sink = { value: 0 };

const now = () => process.hrtime.bigint();

/** ns per call of `fn` over one bounded loop: `iterations` calls, or fewer when `maxMs` runs out first. */
export function loopNs(fn: (i: number) => void, iterations: number, maxMs: number): number {
  const deadline = now() + BigInt(Math.round(maxMs * 1e6));
  const start = now();
  let i = 0;
  while (i < iterations) {
    fn(i++);
    if ((i & 255) === 0 && now() > deadline) break;
  }
  return Number(now() - start) / i;
}

/**
 * ns per call of a function that may return a promise: calls go out in batches of `batch`, and each batch is
 * awaited (settled) before the next, so an async handler's whole chain (its awaits, its ack) is inside the time.
 */
export async function loopAsyncNs(
  fn: (i: number) => Promise<unknown> | unknown,
  iterations: number,
  maxMs: number,
  batch = 64,
): Promise<number> {
  const deadline = now() + BigInt(Math.round(maxMs * 1e6));
  const start = now();
  const pending: Array<Promise<unknown>> = [];
  let i = 0;
  while (i < iterations) {
    for (let b = 0; b < batch; b++) {
      const result = fn(i++);
      if (result instanceof Promise) pending.push(result);
    }
    await Promise.all(pending);
    pending.length = 0;
    if (now() > deadline) break;
  }
  return Number(now() - start) / i;
}

export interface Paired {
  /** µs per call, one value per repetition. */
  ours: number[];
  other: number[];
}

export interface LoopOptions {
  iterations: number;
  maxMs: number;
  reps: number;
}

/** Warm-up, then `reps` repetitions of both loops, alternating which goes first. µs per call. */
export function pairSync(ours: (i: number) => void, other: (i: number) => void, o: LoopOptions): Paired {
  loopNs(ours, o.iterations / 5, o.maxMs / 2);
  loopNs(other, o.iterations / 5, o.maxMs / 2);
  const result: Paired = { ours: [], other: [] };
  for (let r = 0; r < o.reps; r++) {
    const first = r % 2 === 0;
    if (first) result.ours.push(loopNs(ours, o.iterations, o.maxMs) / 1000);
    result.other.push(loopNs(other, o.iterations, o.maxMs) / 1000);
    if (!first) result.ours.push(loopNs(ours, o.iterations, o.maxMs) / 1000);
  }
  return result;
}

/** pairSync for functions that may return promises (loopAsyncNs). */
export async function pairAsync(
  ours: (i: number) => Promise<unknown> | unknown,
  other: (i: number) => Promise<unknown> | unknown,
  o: LoopOptions & { batch?: number },
): Promise<Paired> {
  await loopAsyncNs(ours, o.iterations / 5, o.maxMs / 2, o.batch);
  await loopAsyncNs(other, o.iterations / 5, o.maxMs / 2, o.batch);
  const result: Paired = { ours: [], other: [] };
  for (let r = 0; r < o.reps; r++) {
    const first = r % 2 === 0;
    if (first) result.ours.push((await loopAsyncNs(ours, o.iterations, o.maxMs, o.batch)) / 1000);
    result.other.push((await loopAsyncNs(other, o.iterations, o.maxMs, o.batch)) / 1000);
    if (!first) result.ours.push((await loopAsyncNs(ours, o.iterations, o.maxMs, o.batch)) / 1000);
  }
  return result;
}
