/**
 * A tiny DNS responder for tests (RFC 1035): answers A queries for the names it is given, and
 * NXDOMAIN for everything else, on one UDP address (a loopback address of the test's choosing;
 * a back-end reaches it through the resolv.conf the test gives it). Counts the queries.
 */
import { createSocket, type Socket } from "node:dgram";

export class DnsResponder {
  queries = 0;
  private readonly socket: Socket;

  private constructor(private readonly names: Map<string, number[]>) {
    this.socket = createSocket("udp4");
    this.socket.on("message", (q, from) => {
      const reply = this.answer(q);
      if (reply) this.socket.send(reply, from.port, from.address);
    });
  }

  static async listen(address: string, names: Record<string, number[]>, port = 53): Promise<DnsResponder> {
    const r = new DnsResponder(new Map(Object.entries(names).map(([k, v]) => [k.toLowerCase(), v])));
    await new Promise<void>((resolve, reject) => {
      r.socket.once("error", reject);
      r.socket.bind(port, address, () => resolve());
    });
    return r;
  }

  close(): void {
    this.socket.close();
  }

  private answer(q: Buffer): Buffer | null {
    if (q.length < 12 || (q[2] & 0x80) !== 0 || q.readUInt16BE(4) !== 1) return null;
    this.queries++;
    const labels: string[] = [];
    let at = 12;
    while (at < q.length && q[at] !== 0) {
      labels.push(q.subarray(at + 1, at + 1 + q[at]).toString("latin1"));
      at += 1 + q[at];
    }
    const questionEnd = at + 5; // zero label, QTYPE, QCLASS
    if (questionEnd > q.length) return null;
    const qtype = q.readUInt16BE(at + 1);
    const addr = this.names.get(labels.join(".").toLowerCase());
    const header = Buffer.from(q.subarray(0, 12));
    header[2] = 0x84 | (q[2] & 0x01); // response, authoritative, RD copied
    header[3] = addr ? 0x00 : 0x03; // NOERROR or NXDOMAIN
    const answers = addr && qtype === 1 ? 1 : 0;
    header.writeUInt16BE(answers, 6);
    header.writeUInt16BE(0, 8);
    header.writeUInt16BE(0, 10);
    const question = q.subarray(12, questionEnd);
    if (!answers) return Buffer.concat([header, question]);
    // Name as a pointer to the question (0xc00c), type A, class IN, TTL 60, 4 bytes.
    const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, ...addr!]);
    return Buffer.concat([header, question, rr]);
  }
}
