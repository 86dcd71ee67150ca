// Which address a request comes from, honouring X-Forwarded-For only from the proxies that
// TRUST_PROXY names. HTTP (Fastify's trustProxy) and Socket.IO handshakes use the same rule.
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** Does the hop at `index` (0 = the peer of the TCP connection) belong to a trusted proxy? */
export type TrustFunction = (address: string, index: number) => boolean;

const KEYWORDS: Record<string, [string, number][]> = {
  loopback: [
    ['127.0.0.0', 8],
    ['::1', 128],
  ],
  linklocal: [
    ['169.254.0.0', 16],
    ['fe80::', 10],
  ],
  uniquelocal: [
    ['10.0.0.0', 8],
    ['172.16.0.0', 12],
    ['192.168.0.0', 16],
    ['fc00::', 7],
  ],
};

const unmapped = (address: string): string =>
  address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;

export function compileTrust(setting: false | number | string[]): TrustFunction {
  if (setting === false) return () => false;
  if (typeof setting === 'number') return (_address, index) => index < setting;
  const list = new BlockList();
  for (const entry of setting) {
    const subnets = KEYWORDS[entry] ?? [
      [entry.split('/')[0]!, Number(entry.split('/')[1] ?? (isIPv6(entry.split('/')[0]!) ? 128 : 32))],
    ];
    for (const [network, prefix] of subnets)
      list.addSubnet(network, prefix, isIPv6(network) ? 'ipv6' : 'ipv4');
  }
  return (address) => {
    const plain = unmapped(address);
    if (isIPv4(plain)) return list.check(plain, 'ipv4');
    return isIPv6(plain) && list.check(plain, 'ipv6');
  };
}

/** The client's address: the first hop, from the connection back, that is not a trusted proxy. */
export function clientAddress(request: IncomingMessage, trust: TrustFunction): string {
  const peer = unmapped(request.socket.remoteAddress ?? '');
  const header = request.headers['x-forwarded-for'];
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .reverse();
  const hops = [peer, ...forwarded];
  for (let i = 0; i < hops.length - 1; i++) {
    if (!trust(hops[i]!, i)) return hops[i]!;
  }
  return unmapped(hops[hops.length - 1]!);
}
