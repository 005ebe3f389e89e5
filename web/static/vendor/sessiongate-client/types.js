import { CODES } from './codes.js';
/**
 * The final refusal codes, {@link RefusalCode}: the rows of the server's
 * refusal table (codes.json) that say `retry: false`.
 */
export const REFUSAL_CODES = CODES.filter((c) => !c.retry).map((c) => c.code);
//# sourceMappingURL=types.js.map