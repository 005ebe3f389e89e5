/** The most members the client keeps per room; past it `truncated` is set. */
export const MAX_PRESENCE_USERS = 10_000;
/**
 * A presence room's members on the client. Changes are applied
 * idempotently: a user already in the set who appears in `joined` (the
 * subscriber's own user, announced after its snapshot) changes nothing.
 */
export class MemberSet {
    room;
    #users = new Set();
    #count = 0;
    #connections;
    #truncated = true;
    /** A snapshot seeded the set on the current connection. */
    seeded = false;
    /** Some change has been applied (a snapshot or an event). */
    known = false;
    constructor(room) {
        this.room = room;
    }
    /** Replaces the members with the snapshot `p`; returns the difference with the set before. */
    seed(p) {
        const next = new Set(p.users.slice(0, MAX_PRESENCE_USERS));
        const joined = [...next].filter((u) => !this.#users.has(u));
        const left = [...this.#users].filter((u) => !next.has(u));
        const first = !this.known;
        const same = joined.length === 0 &&
            left.length === 0 &&
            this.#count === p.count &&
            this.#connections === p.connections &&
            this.#truncated === (p.truncated || p.users.length > MAX_PRESENCE_USERS);
        this.#users = next;
        this.#count = p.count;
        this.#connections = p.connections;
        this.#truncated = p.truncated || p.users.length > MAX_PRESENCE_USERS;
        this.seeded = true;
        this.known = true;
        return first || !same ? { joined, left } : undefined;
    }
    /** Applies a `presence` event; returns what changed. */
    apply(e) {
        const joined = [];
        const left = [];
        let truncated = this.#truncated || e.truncated === true;
        for (const u of e.left)
            if (this.#users.delete(u))
                left.push(u);
        for (const u of e.joined) {
            if (this.#users.has(u))
                continue;
            if (this.#users.size >= MAX_PRESENCE_USERS) {
                truncated = true;
                continue;
            }
            this.#users.add(u);
            joined.push(u);
        }
        const changed = !this.known ||
            joined.length > 0 ||
            left.length > 0 ||
            e.count !== this.#count ||
            truncated !== this.#truncated;
        this.#count = e.count;
        this.#truncated = truncated;
        this.known = true;
        if (!changed)
            return undefined;
        this.#connections = undefined;
        return { joined, left };
    }
    /** The members now, with `change` as the snapshot's joined and left. */
    snapshot(change = { joined: [], left: [] }) {
        const s = {
            room: this.room,
            users: [...this.#users],
            count: this.#count,
            joined: change.joined,
            left: change.left,
            truncated: this.#truncated,
        };
        return this.#connections === undefined ? s : { ...s, connections: this.#connections };
    }
}
/** Returns the `presence` of a subscribe acknowledgement, when it has a valid one. */
export function ackPresenceOf(reply) {
    if (!isRecord(reply))
        return undefined;
    const p = reply['presence'];
    if (!isRecord(p) || !Array.isArray(p['users']) || !isCount(p['count']))
        return undefined;
    const out = {
        users: strings(p['users']),
        count: p['count'],
        truncated: p['truncated'] === true,
    };
    if (isCount(p['connections']))
        out.connections = p['connections'];
    return out;
}
/** Returns the `presence` event `data`, when it has the shape of contract §15. */
export function presenceEventOf(data) {
    if (!isRecord(data) || typeof data['room'] !== 'string' || !isCount(data['count']))
        return undefined;
    const e = {
        room: data['room'],
        joined: Array.isArray(data['joined']) ? strings(data['joined']) : [],
        left: Array.isArray(data['left']) ? strings(data['left']) : [],
        count: data['count'],
    };
    if (data['truncated'] === true)
        e.truncated = true;
    return e;
}
function strings(a) {
    return a.filter((u) => typeof u === 'string');
}
function isCount(v) {
    return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}
function isRecord(v) {
    return typeof v === 'object' && v !== null;
}
//# sourceMappingURL=presence.js.map