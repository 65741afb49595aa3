/** Shell snippets the small guests' /test.sh scripts share (busybox sh, awk, udhcpc): the demo, the web page, tests and benches. */

/** `csumerr PROTO` prints the kernel's InCsumErrors counter for Tcp or Udp (/proc/net/snmp). */
export const CSUMERR_FN = `csumerr() { awk -v g="$1:" '$1 == g { if (!h) { for (i = 1; i <= NF; i++) if ($i == "InCsumErrors") c = i; h = 1 } else print $c }' /proc/net/snmp; }`;

/**
 * DHCP on eth0 with busybox udhcpc. On a lease the address goes on eth0, `onLease` runs (shell
 * in udhcpc's hook, with its variables: $ip, $router, $dns, ...), and the guest prints
 * "VNW lease <ip>" followed by " <field> <value>" for each of `fields`; without a lease after
 * `tries` discovers, "VNW lease failed".
 */
export function dhcpScript(fields: string[] = [], onLease = "", tries = 10): string {
  const printed = ["$ip", ...fields.map((f) => `${f} $${f}`)].join(" ");
  return `
echo '#!/bin/sh' > /tmp/u.sh
echo 'case "$1" in bound|renew) ip addr add $ip/$mask dev $interface; ${onLease}${onLease ? "; " : ""}echo "VNW lease ${printed}";; esac' >> /tmp/u.sh
chmod +x /tmp/u.sh
ip addr flush dev eth0
udhcpc -i eth0 -n -q -f -t ${tries} -T 2 -s /tmp/u.sh 2>/dev/null || echo "VNW lease failed"
${CSUMERR_FN}
`;
}
