import { readFileSync } from 'node:fs';
import type { RedisClient } from './redisClient.js';

/** What a Lua script takes as a key or an argument: ioredis sends numbers as their decimal text. */
export type ScriptArg = string | number;

/**
 * A line `--- @include "name"` in a script is replaced by the file `includes/<name>.lua` beside it (BullMQ's script
 * loader has the same directive), so scripts share Lua functions instead of copies of them.
 */
const INCLUDE_LINE = /^--- @include "([A-Za-z0-9_-]+)"[ \t]*$/gm;
/** Includes may include others; deeper than this is a cycle or a mistake. */
const MAX_INCLUDE_DEPTH = 4;

/** Thrown when a script's `@include` names a file that does not exist, or includes nest deeper than MAX_INCLUDE_DEPTH. */
export class ScriptIncludeError extends Error {
  override readonly name = 'ScriptIncludeError';
}

/**
 * The text of `<name>.lua` in `folder` with its `--- @include` lines replaced (see INCLUDE_LINE), each include once
 * per script (a second `@include` of the same file is dropped). Throws ScriptIncludeError or the file system's error.
 */
export function loadLuaSource(folder: URL, name: string): string {
  const included = new Set<string>();
  const expand = (text: string, from: string, depth: number): string =>
    text.replace(INCLUDE_LINE, (_line, include: string) => {
      if (depth >= MAX_INCLUDE_DEPTH) throw new ScriptIncludeError(`${from}.lua: includes nest deeper than ${MAX_INCLUDE_DEPTH} (a cycle?) at "${include}"`);
      if (included.has(include)) return '';
      included.add(include);
      let body: string;
      try {
        body = readFileSync(new URL(`includes/${include}.lua`, folder), 'utf8');
      } catch (err) {
        throw new ScriptIncludeError(`${from}.lua includes "${include}", which is not in ${new URL('includes/', folder).pathname}`, { cause: err });
      }
      return expand(body, `includes/${include}`, depth + 1);
    });
  return expand(readFileSync(new URL(`${name}.lua`, folder), 'utf8'), name, 0);
}

/** Thrown when a script answers something its reply parser does not accept: a bug between the script and its caller. */
export class ScriptReplyError extends Error {
  override readonly name = 'ScriptReplyError';
  constructor(script: string, reply: unknown) {
    super(`${script}.lua answered an unexpected reply: ${JSON.stringify(reply)}`);
  }
}

/**
 * One of the dialer's Lua scripts with typed keys, arguments and reply: the single way the dialer runs Lua (as
 * BullMQ's script loader is for its own commands). The script is registered on each connection on first use with
 * ioredis' `defineCommand`, which sends it by SHA (EVALSHA) and loads it again after a Redis restart (NOSCRIPT).
 * `Keys` and `Args` are tuples naming each position, so a call site cannot pass them in the wrong number or order;
 * the reply is checked by `parse` once, here, and trusted from there on.
 */
export class LuaScript<Keys extends readonly ScriptArg[], Args extends readonly ScriptArg[], Reply> {
  /** The ioredis command name: `dialer` + the script's name, so it cannot shadow a Redis command. */
  private readonly command: string;
  private lua: string | undefined;

  /**
   * `name`: the file `<name>.lua` in `folder` (a file URL, usually `new URL('./lua/', import.meta.url)`), read once on
   * first use with its `--- @include` lines expanded (loadLuaSource). `keyCount`: how many of the leading values are keys (they must all share a hash slot on a cluster), or
   * `variable` for a script taking any number of keys (the count is sent first, as EVAL wants it).
   */
  constructor(
    readonly name: string,
    private readonly folder: URL,
    readonly keyCount: Keys['length'] | 'variable',
    private readonly parse: (reply: unknown) => Reply | undefined,
  ) {
    this.command = `dialer${name.charAt(0).toUpperCase()}${name.slice(1)}`;
  }

  /** Runs the script on `redis`; throws Redis' error, or ScriptReplyError for a reply `parse` refused. */
  async run(redis: RedisClient, keys: Keys, args: Args): Promise<Reply> {
    if (!(this.command in redis)) {
      this.lua ??= loadLuaSource(this.folder, this.name);
      redis.defineCommand(this.command, this.keyCount === 'variable' ? { lua: this.lua } : { numberOfKeys: this.keyCount, lua: this.lua });
    }
    // defineCommand adds the method at run time, so its type is not on Redis: read it back, check it is one
    const command: unknown = Reflect.get(redis, this.command);
    if (typeof command !== 'function') throw new Error(`ioredis did not define ${this.command}`);
    const values = this.keyCount === 'variable' ? [keys.length, ...keys, ...args] : [...keys, ...args];
    const reply: unknown = await Reflect.apply(command, redis, values);
    const parsed = this.parse(reply);
    if (parsed === undefined) throw new ScriptReplyError(this.name, reply);
    return parsed;
  }
}

/** Reply parsers for the shapes the dialer's scripts answer. Each returns undefined for anything else. */
export const replies = {
  integer: (reply: unknown): number | undefined => (typeof reply === 'number' ? reply : undefined),
  string: (reply: unknown): string | undefined => (typeof reply === 'string' ? reply : undefined),
  integerOrString: (reply: unknown): number | string | undefined => (typeof reply === 'number' || typeof reply === 'string' ? reply : undefined),
  integers: (reply: unknown): number[] | undefined => (Array.isArray(reply) && reply.every((r) => typeof r === 'number') ? reply : undefined),
  /** `{status, n}` as a two-element array: a status word and a number (or its decimal text). */
  statusAndNumber: (reply: unknown): [string, number] | undefined => {
    if (!Array.isArray(reply) || reply.length !== 2 || typeof reply[0] !== 'string') return undefined;
    const n = Number(reply[1]);
    return Number.isFinite(n) ? [reply[0], n] : undefined;
  },
  /** Two numbers (or their decimal text, for values past 2^53 such as µs timestamps). */
  twoNumbers: (reply: unknown): [number, number] | undefined => {
    if (!Array.isArray(reply) || reply.length !== 2) return undefined;
    const [a, b] = reply.map(Number);
    return a !== undefined && b !== undefined && Number.isFinite(a) && Number.isFinite(b) ? [a, b] : undefined;
  },
  /** An array of any values, for scripts whose callers read positions themselves. */
  array: (reply: unknown): unknown[] | undefined => (Array.isArray(reply) ? reply : undefined),
};
