// Sends COUNT UDP datagrams of PAYLOAD bytes to ADDR:PORT as fast as the socket takes them.
// Run inside the bench's namespace: it fills the tap's queue for the RX drain measurement.
import dgram from "node:dgram";
const [addr, port, count, size] = process.argv.slice(2).map((v, i) => (i === 0 ? v : Number(v)));
const s = dgram.createSocket("udp4");
const buf = Buffer.alloc(size, 0xab);
let sent = 0;
function more() {
  while (sent < count) {
    sent++;
    s.send(buf, port, addr);
    if (sent % 256 === 0) return setImmediate(more);
  }
  s.close();
}
more();
