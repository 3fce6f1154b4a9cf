/**
 * Field readers shared by the policy parser and the L7 rule validators: each one checks a
 * field's JSON type and throws a PolicyError naming the document and the field path.
 */
import { PolicyError, type PolicyErrorCode } from '../errors'

export type Obj = Record<string, unknown>

export class Ctx {
  constructor(
    readonly index: number,
    public label: string | undefined,
  ) {}

  fail(
    code: PolicyErrorCode,
    path: string,
    reason: string,
    expected?: string,
    ...rest: unknown[]
  ): never {
    const details: ConstructorParameters<typeof PolicyError>[2] = {
      documentIndex: this.index,
      path,
    }
    if (this.label) details.document = this.label
    if (expected !== undefined) details.expected = expected
    if (rest.length > 0) details.got = rest[0]
    throw new PolicyError(code, reason, details)
  }
}

export const join = (path: string, key: string | number) =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

export function obj(
  ctx: Ctx,
  v: unknown,
  path: string,
  known: readonly string[],
  unsupported: readonly string[] = [],
): Obj {
  if (!isObj(v)) ctx.fail('INVALID_TYPE', path, 'wrong type', 'an object', v)
  for (const k of Object.keys(v)) {
    if (unsupported.includes(k)) {
      if (
        v[k] === undefined ||
        v[k] === null ||
        (Array.isArray(v[k]) && (v[k] as unknown[]).length === 0)
      )
        continue
      ctx.fail(
        'UNSUPPORTED_FIELD',
        join(path, k),
        `field "${k}" is not supported by @membrane/policy`,
      )
    }
    if (!known.includes(k)) {
      ctx.fail('UNKNOWN_FIELD', join(path, k), `unknown field "${k}"`, `one of ${known.join(', ')}`)
    }
  }
  return v
}

export function arr(ctx: Ctx, v: unknown, path: string): unknown[] | undefined {
  if (v === undefined || v === null) return undefined
  if (!Array.isArray(v)) ctx.fail('INVALID_TYPE', path, 'wrong type', 'a list', v)
  return v
}

export function str(ctx: Ctx, v: unknown, path: string): string | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'string') ctx.fail('INVALID_TYPE', path, 'wrong type', 'a string', v)
  return v
}

export function bool(ctx: Ctx, v: unknown, path: string): boolean | undefined {
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') ctx.fail('INVALID_TYPE', path, 'wrong type', 'true or false', v)
  return v
}
