/**
 * `npm test`'s pretest: fails at once, before the format and type checks, when the machine lacks what the
 * suite needs, naming the command that installs it (test/support/prerequisites.ts, also vitest's globalSetup).
 */
import { missingPrerequisites, prerequisitesMessage } from "../test/support/prerequisites.js";

const missing = missingPrerequisites();
if (missing.length > 0) {
  process.stderr.write(`${prerequisitesMessage(missing)}\n`);
  process.exit(1);
}
