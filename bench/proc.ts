import { readdirSync, readFileSync } from "node:fs";
import { integer } from "../src/config.js";

const TICKS_PER_SECOND = 100;

/** User and system CPU seconds of a process, from /proc/<pid>/stat (10 ms ticks). */
function statCpu(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name may contain spaces: fields are counted after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / TICKS_PER_SECOND, sys: Number(fields[12]) / TICKS_PER_SECOND };
}

/** user + system CPU seconds a process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const { user, sys } = statCpu(pid);
  return user + sys;
}

/**
 * CPU time of a process in nanoseconds: the time on CPU of each of its threads, from
 * /proc/<pid>/task/<tid>/schedstat (exact, where /proc/<pid>/stat counts 10 ms ticks). Falls back to the ticks.
 */
export function cpuNanoseconds(pid: number): number {
  try {
    let total = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
      } catch {
        // the thread ended in between
      }
    }
    return total;
  } catch {
    return cpuSeconds(pid) * 1e9;
  }
}

/** Busy and steal time of the whole machine in seconds (all cores), from the `cpu` line of /proc/stat. */
export function machineCpu(): { busy: number; steal: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = (user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0);
  return { busy: busy / TICKS_PER_SECOND, steal: (steal ?? 0) / TICKS_PER_SECOND };
}

export interface ProcessCounters {
  user: number;
  sys: number;
  /** write-family syscalls (write, writev, sendmsg…), from /proc/<pid>/io. */
  writes: number;
  /** read-family syscalls (read, readv, recvmsg…), from /proc/<pid>/io. */
  reads: number;
  /** Voluntary context switches of every thread: how often the process went to sleep and was woken up. */
  wakeups: number;
}

/** CPU seconds split into user and system time, and the syscall and wake-up counts so far. */
export function processCounters(pid: number): ProcessCounters {
  const io = readFileSync(`/proc/${pid}/io`, "utf8");
  let wakeups = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
        wakeups += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
      } catch {
        // the thread ended in between
      }
    }
  } catch {
    wakeups = NaN;
  }
  return {
    ...statCpu(pid),
    writes: Number(/syscw:\s+(\d+)/.exec(io)?.[1] ?? NaN),
    reads: Number(/syscr:\s+(\d+)/.exec(io)?.[1] ?? NaN),
    wakeups,
  };
}

export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

export const totalCpu = (pids: number[]): number => pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] as number;
}

export function median(values: number[]): number {
  return percentile(
    [...values].sort((a, b) => a - b),
    50,
  );
}

/** The value of a `--name=value` command-line option, if given. */
export const arg = (name: string): string | undefined =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];

/** `--name=N`: an integer in min..max (the strict parser of src/config.ts: "1e3" is refused), else `fallback`. */
export const intArg = (name: string, fallback: number, min: number, max: number): number =>
  integer({ [`--${name}`]: arg(name) }, `--${name}`, fallback, min, max);
