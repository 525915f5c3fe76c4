/**
 * `--baseline=<rev>`: another git revision checked out in a temporary worktree, so that the setups named
 * `<setup>@base` run that revision's `src/` in the same run as this checkout's, interleaved with them. Only
 * the server code comes from the worktree: the load processes, the orchestrator and `node_modules` (a symlink)
 * are this checkout's, so both sides are measured by the same harness.
 */
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, rmSync, symlinkSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../", import.meta.url).pathname;

export interface Baseline {
  /** The revision as given (`42bf97f`, `HEAD~3`, a branch). */
  rev: string;
  /** Its short commit id, for labels ("cluster-3 @42bf97f"). */
  sha: string;
  /** The worktree, with a trailing slash. */
  root: string;
  /** Removes the worktree (idempotent; also run on process exit). */
  remove(): void;
}

const git = (args: string[]): string => execFileSync("git", args, { cwd: ROOT, encoding: "utf8" }).trim();

export function addBaseline(rev: string): Baseline {
  const sha = git(["rev-parse", "--short", "--verify", `${rev}^{commit}`]);
  const dir = mkdtempSync(join(tmpdir(), `rt-bench-${sha}-`));
  const modules = join(dir, "node_modules");
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    process.off("exit", remove);
    // The symlink goes first, so that nothing removing the worktree can reach this checkout's node_modules.
    try {
      if (lstatSync(modules).isSymbolicLink()) unlinkSync(modules);
    } catch {
      // not created yet
    }
    try {
      git(["worktree", "remove", "--force", dir]);
    } catch {
      if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
      try {
        git(["worktree", "prune"]);
      } catch {
        // nothing more to do
      }
    }
  };
  process.on("exit", remove);
  try {
    git(["worktree", "add", "--detach", "--quiet", dir, sha]);
    symlinkSync(join(ROOT, "node_modules"), modules, "dir");
  } catch (err) {
    remove();
    throw err;
  }
  return { rev, sha, root: `${dir}/`, remove };
}
