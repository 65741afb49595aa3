/** What the real-guest tests under QEMU share: the built CLI, the host-side helper, and whether they can run here. */
import { fileURLToPath } from "node:url";
import { guestAvailable } from "../../host/guests/qemu.js";
import { netTestsAvailable } from "../support/netns.js";

export const cli = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
export const helper = fileURLToPath(new URL("../integration/host-helper.mjs", import.meta.url));
const guestOk = guestAvailable();
/** A QEMU guest and a tap in a namespace can run here, or why not. */
export const avail = guestOk.ok ? netTestsAvailable() : guestOk;
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
