export interface PollOptions<T> {
  timeoutMs: number;
  /** Pause between two attempts; 20 ms by default. */
  intervalMs?: number;
  /** What a timeout resolves with: throw from it to fail, or return a last reading. */
  onTimeout: () => T | Promise<T>;
}

/**
 * Runs `attempt` until it returns something other than undefined and resolves with that; after `timeoutMs`,
 * with `onTimeout()`. An attempt that throws ends the polling with its error (a child that died, a port held
 * by another process). The one polling loop of the tests, the cluster runner and the bench.
 */
export async function pollUntil<T>(
  attempt: () => T | undefined | Promise<T | undefined>,
  { timeoutMs, intervalMs = 20, onTimeout }: PollOptions<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() > deadline) return onTimeout();
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
