import type { PresenceEvent } from './types.js';

/**
 * Who is in a presence room (contract §15), as the client knows it: the
 * subscribe acknowledgement's snapshot with the `presence` events since
 * applied to it.
 */
export interface PresenceSnapshot {
  /** The room. */
  readonly room: string;
  /** The members (`passport.user` ids), in the order the client learnt of them. */
  readonly users: readonly string[];
  /** The number of members, exact even when `users` is not complete. */
  readonly count: number;
  /**
   * The sockets in the room, as of the subscribe acknowledgement; absent once
   * a `presence` event has changed the members (events do not carry it).
   */
  readonly connections?: number;
  /** Members added to `users` by this change (all of them at the first snapshot). */
  readonly joined: readonly string[];
  /** Members removed from `users` by this change. */
  readonly left: readonly string[];
  /**
   * `users` may miss members: the server cut a list at `PRESENCE_MAX_MEMBERS`,
   * the client holds {@link MAX_PRESENCE_USERS} already, or the socket is in
   * the room without a subscribe of its own (no snapshot, only events).
   */
  readonly truncated: boolean;
}

/** Receives a presence room's members after each change; see `Realtime.onPresence`. */
export type PresenceHandler = (snapshot: PresenceSnapshot) => void;

/** The most members the client keeps per room; past it `truncated` is set. */
export const MAX_PRESENCE_USERS = 10_000;

/** The subscribe acknowledgement's `presence` object. */
export interface AckPresence {
  users: string[];
  count: number;
  connections?: number;
  truncated: boolean;
}

/** What a change did to a {@link MemberSet}; undefined when it did nothing. */
export interface Change {
  joined: string[];
  left: string[];
}

/**
 * A presence room's members on the client. Changes are applied
 * idempotently: a user already in the set who appears in `joined` (the
 * subscriber's own user, announced after its snapshot) changes nothing.
 */
export class MemberSet {
  readonly room: string;
  #users = new Set<string>();
  #count = 0;
  #connections: number | undefined;
  #truncated = true;
  /** A snapshot seeded the set on the current connection. */
  seeded = false;
  /** Some change has been applied (a snapshot or an event). */
  known = false;

  constructor(room: string) {
    this.room = room;
  }

  /** Replaces the members with the snapshot `p`; returns the difference with the set before. */
  seed(p: AckPresence): Change | undefined {
    const next = new Set(p.users.slice(0, MAX_PRESENCE_USERS));
    const joined = [...next].filter((u) => !this.#users.has(u));
    const left = [...this.#users].filter((u) => !next.has(u));
    const first = !this.known;
    const same =
      joined.length === 0 &&
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
  apply(e: PresenceEvent): Change | undefined {
    const joined: string[] = [];
    const left: string[] = [];
    let truncated = this.#truncated || e.truncated === true;
    for (const u of e.left) if (this.#users.delete(u)) left.push(u);
    for (const u of e.joined) {
      if (this.#users.has(u)) continue;
      if (this.#users.size >= MAX_PRESENCE_USERS) {
        truncated = true;
        continue;
      }
      this.#users.add(u);
      joined.push(u);
    }
    const changed =
      !this.known ||
      joined.length > 0 ||
      left.length > 0 ||
      e.count !== this.#count ||
      truncated !== this.#truncated;
    this.#count = e.count;
    this.#truncated = truncated;
    this.known = true;
    if (!changed) return undefined;
    this.#connections = undefined;
    return { joined, left };
  }

  /** The members now, with `change` as the snapshot's joined and left. */
  snapshot(change: Change = { joined: [], left: [] }): PresenceSnapshot {
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
export function ackPresenceOf(reply: unknown): AckPresence | undefined {
  if (!isRecord(reply)) return undefined;
  const p = reply['presence'];
  if (!isRecord(p) || !Array.isArray(p['users']) || !isCount(p['count'])) return undefined;
  const out: AckPresence = {
    users: strings(p['users']),
    count: p['count'],
    truncated: p['truncated'] === true,
  };
  if (isCount(p['connections'])) out.connections = p['connections'];
  return out;
}

/** Returns the `presence` event `data`, when it has the shape of contract §15. */
export function presenceEventOf(data: unknown): PresenceEvent | undefined {
  if (!isRecord(data) || typeof data['room'] !== 'string' || !isCount(data['count']))
    return undefined;
  const e: PresenceEvent = {
    room: data['room'],
    joined: Array.isArray(data['joined']) ? strings(data['joined']) : [],
    left: Array.isArray(data['left']) ? strings(data['left']) : [],
    count: data['count'],
  };
  if (data['truncated'] === true) e.truncated = true;
  return e;
}

function strings(a: unknown[]): string[] {
  return a.filter((u): u is string => typeof u === 'string');
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}
