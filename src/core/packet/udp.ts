// UDP header layout (RFC 768). Port rewrites live in l4.ts, checksums in csum.ts.

export const UDP_SPORT = 0;
export const UDP_DPORT = 2;
export const UDP_LEN = 4;
export const UDP_CHECK = 6;
export const UDP_HLEN = 8;
