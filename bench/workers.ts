import { fork, type ChildProcess } from "node:child_process";
import type { Command } from "./load.js";

const ROOT = new URL("../", import.meta.url).pathname;

/** A load process (bench/load.ts) driven over IPC. */
export interface Worker {
  child: ChildProcess;
  ask<T extends object>(command: Command, expect: string): Promise<T>;
}

export function startWorker(): Promise<Worker> {
  const child = fork(`${ROOT}bench/load.ts`, [], { execArgv: ["--import", "tsx"], stdio: "inherit" });
  const ask = <T extends object>(command: Command, expect: string) =>
    new Promise<T>((resolve, reject) => {
      const onMessage = (msg: { ev: string; message?: string }) => {
        if (msg.ev === "error") reject(new Error(msg.message));
        else if (msg.ev === expect) resolve(msg as unknown as T);
        else return;
        child.off("message", onMessage);
      };
      child.on("message", onMessage);
      child.send(command);
    });
  return new Promise((resolve) => child.once("message", () => resolve({ child, ask })));
}
