import { describe, expect, it } from 'vitest';
import { errorCode, errorMessage, toError } from '../../src/core/errors.js';

describe('thrown values', () => {
  it('keeps an Error as it is', () => {
    const err = new TypeError('bad type');
    expect(toError(err)).toBe(err);
    expect(errorMessage(err)).toBe('bad type');
  });

  it('wraps anything else thrown in an Error carrying it as the cause', () => {
    const wrapped = toError('plain words');
    expect(wrapped).toBeInstanceOf(Error);
    expect(wrapped.message).toBe('plain words');
    expect(wrapped.cause).toBe('plain words');
    expect(errorMessage(42)).toBe('42');
    expect(errorMessage(undefined)).toBe('undefined');
  });

  it('reads a value String() cannot read by its tag', () => {
    expect(errorMessage(Object.create(null))).toBe('[object Object]');
  });

  it("reads a Node.js system error's code, and none from other values", () => {
    const enoent = Object.assign(new Error('no such file'), { code: 'ENOENT' });
    expect(errorCode(enoent)).toBe('ENOENT');
    expect(errorCode(new Error('plain'))).toBeUndefined();
    expect(errorCode({ code: 'ENOENT' })).toBeUndefined();
    expect(errorCode(Object.assign(new Error('numeric'), { code: 7 }))).toBeUndefined();
  });
});
