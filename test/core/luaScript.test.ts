import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadLuaSource, LuaScript, replies, ScriptIncludeError, ScriptReplyError } from '../../src/core/luaScript.js';
import { deleteKeysWithPrefix, testRedisUrl, uniquePrefix } from '../helpers/testRedis.js';

let redis: Redis;
let dir: string;
const prefix = uniquePrefix('lua');

beforeAll(() => {
  redis = new Redis(testRedisUrl());
  dir = mkdtempSync(join(tmpdir(), 'dialer-lua-'));
  writeFileSync(join(dir, 'addTo.lua'), "return redis.call('INCRBY', KEYS[1], ARGV[1])\n");
  writeFileSync(join(dir, 'countKeys.lua'), 'return #KEYS\n');
  writeFileSync(join(dir, 'wrongShape.lua'), "return 'not a number'\n");
  mkdirSync(join(dir, 'includes'));
  writeFileSync(join(dir, 'includes', 'double.lua'), 'local function double(n) return n * 2 end\n');
  writeFileSync(join(dir, 'includes', 'quadruple.lua'), '--- @include "double"\nlocal function quadruple(n) return double(double(n)) end\n');
  writeFileSync(join(dir, 'quadrupleArg.lua'), '--- @include "quadruple"\n--- @include "double"\nreturn quadruple(tonumber(ARGV[1]))\n');
  writeFileSync(join(dir, 'includesMissing.lua'), '--- @include "nowhere"\nreturn 1\n');
});

afterAll(async () => {
  await deleteKeysWithPrefix(redis, prefix);
  await redis.quit();
  rmSync(dir, { recursive: true, force: true });
});

describe('LuaScript', () => {
  const folder = () => pathToFileURL(`${dir}/`);

  it('runs a script with typed keys and arguments and returns the parsed reply', async () => {
    const addTo = new LuaScript<[counter: string], [by: number], number>('addTo', folder(), 1, replies.integer);
    expect(await addTo.run(redis, [`${prefix}:n`], [2])).toBe(2);
    expect(await addTo.run(redis, [`${prefix}:n`], [3])).toBe(5);
  });

  it('sends the key count first for a script that takes any number of keys', async () => {
    const countKeys = new LuaScript<readonly string[], readonly string[], number>('countKeys', folder(), 'variable', replies.integer);
    expect(await countKeys.run(redis, [`${prefix}:a`, `${prefix}:b`, `${prefix}:c`], ['x'])).toBe(3);
  });

  it('refuses a reply of the wrong shape with an error naming the script', async () => {
    const wrongShape = new LuaScript<[], [], number>('wrongShape', folder(), 0, replies.integer);
    await expect(wrongShape.run(redis, [], [])).rejects.toBeInstanceOf(ScriptReplyError);
    await expect(wrongShape.run(redis, [], [])).rejects.toThrow('wrongShape.lua answered an unexpected reply: "not a number"');
  });

  it('expands --- @include lines with the files of includes/, each once, including from includes', async () => {
    const quadrupleArg = new LuaScript<[], [n: number], number>('quadrupleArg', folder(), 0, replies.integer);
    expect(await quadrupleArg.run(redis, [], [3])).toBe(12);
    const source = loadLuaSource(folder(), 'quadrupleArg');
    expect(source.match(/local function double/g)).toHaveLength(1);
    expect(source).not.toContain('@include');
  });

  it('refuses an include that names no file, naming the script and the include', () => {
    expect(() => loadLuaSource(folder(), 'includesMissing')).toThrow(ScriptIncludeError);
    expect(() => loadLuaSource(folder(), 'includesMissing')).toThrow('includesMissing.lua includes "nowhere"');
  });
});
