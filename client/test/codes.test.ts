// The client's refusal table against the server's: both come from codes.json
// in the repository root, which the Go server embeds.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CODES } from '../src/codes.js';
import { REFUSAL_CODES } from '../src/index.js';

const table: unknown = JSON.parse(
  readFileSync(new URL('../../codes.json', import.meta.url), 'utf8'),
);

describe('refusal codes', () => {
  it('are the server table (codes.json), row for row', () => {
    expect(CODES).toEqual(table);
  });

  it('REFUSAL_CODES are the rows that are not retried', () => {
    const rows = table as { code: string; retry: boolean }[];
    expect([...REFUSAL_CODES]).toEqual(rows.filter((r) => !r.retry).map((r) => r.code));
    expect(REFUSAL_CODES).not.toContain('RATE_LIMITED');
    expect(REFUSAL_CODES).not.toContain('INTERNAL');
  });
});
