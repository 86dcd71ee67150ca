// The client address behind TRUST_PROXY: forwarded headers count only from trusted hops.
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientAddress, compileTrust } from './client-address.js';

const request = (peer: string, forwardedFor?: string) =>
  ({
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
  }) as unknown as IncomingMessage;

describe('clientAddress', () => {
  it('ignores X-Forwarded-For when no proxy is trusted', () => {
    expect(clientAddress(request('198.51.100.7', '203.0.113.9'), compileTrust(false))).toBe('198.51.100.7');
  });

  it('takes as many hops as TRUST_PROXY counts, never more', () => {
    const trust = compileTrust(1);
    expect(clientAddress(request('10.0.0.2', '203.0.113.1, 203.0.113.9'), trust)).toBe('203.0.113.9');
    expect(clientAddress(request('10.0.0.2'), trust)).toBe('10.0.0.2');
  });

  it('trusts only the listed proxies (addresses, CIDRs, keywords, IPv4-mapped peers)', () => {
    const trust = compileTrust(['loopback', '10.0.0.0/8']);
    expect(clientAddress(request('::ffff:127.0.0.1', '203.0.113.9'), trust)).toBe('203.0.113.9');
    expect(clientAddress(request('10.1.2.3', '203.0.113.5, 10.9.9.9'), trust)).toBe('203.0.113.5');
    // An untrusted peer's header is its own invention.
    expect(clientAddress(request('198.51.100.7', '127.0.0.1'), trust)).toBe('198.51.100.7');
  });
});
