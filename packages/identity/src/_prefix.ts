import { AddressError, type Prefix, parsePrefix } from '@membrane/types'
import { IdentityError, IdentityErrorCode } from './errors'

/**
 * A prefix from text (parsed by @membrane/types) or as given. Bad text is this package's
 * `IdentityError` `INVALID_PREFIX`, with the parser's message and error as `cause`.
 */
export function toPrefix(prefix: string | Prefix): Prefix {
  if (typeof prefix !== 'string') return prefix
  try {
    return parsePrefix(prefix)
  } catch (error) {
    if (!(error instanceof AddressError)) throw error
    throw new IdentityError(IdentityErrorCode.INVALID_PREFIX, error.message, {
      input: prefix,
      cause: error,
    })
  }
}
