/**
 * What every CLI command does with its arguments before its own work: parse them strictly
 * (an unknown flag or a missing value is a usage error, exit 2, with the command's help),
 * answer --help (exit 0), and give the command one way to fail with a usage message.
 */
import { parseArgs, type ParseArgsConfig } from "node:util";

type Options = NonNullable<ParseArgsConfig["options"]>;
type WithHelp<O extends Options> = O & { help: { type: "boolean"; default: false } };

/** The parsed flags (with their parseArgs types), and `fail(message)`, which prints a usage error and returns exit code 2. */
export interface CommandArgs<O extends Options> {
  values: ReturnType<typeof parseArgs<{ args: string[]; options: WithHelp<O>; strict: true }>>["values"];
  fail: (message: string) => number;
}

/**
 * Parses `args` for command `name` with `options` (plus --help). Returns the flags, or the
 * exit code when there is nothing more to do: 0 after printing the help, 2 after a usage error.
 */
export function commandArgs<O extends Options>(
  name: string, help: string, args: string[], options: O, out: (s: string) => void, err: (s: string) => void,
): CommandArgs<O> | number {
  let values: CommandArgs<O>["values"];
  try {
    values = parseArgs({ args, options: { ...options, help: { type: "boolean", default: false } } as WithHelp<O>, strict: true }).values;
  } catch (e) {
    err(`virtio-net-wasm ${name}: ${(e as Error).message}\n\n${help}`);
    return 2;
  }
  if ((values as { help?: boolean }).help) {
    out(help);
    return 0;
  }
  return { values, fail: (message) => { err(`virtio-net-wasm ${name}: ${message}`); return 2; } };
}
