/**
 * @membrane/types — the vocabulary every Membrane package shares. Each concept has its one
 * home here, and the other packages import it instead of keeping a copy.
 */
export type { DropReasonName } from './drop-reasons'
export { DropReason, dropReasonName, isDropReason } from './drop-reasons'
export type { ReservedIdentityName } from './identity'
export {
  LOCAL_IDENTITY_FLAG,
  MAX_CLUSTER_ID,
  MAX_CLUSTER_IDENTITY,
  MAX_LOCAL_IDENTITY_INDEX,
  MIN_CLUSTER_IDENTITY,
  RESERVED_IDENTITY_BY_NAME,
  RESERVED_IDENTITY_NAMES,
  ReservedIdentity,
  reservedIdentityByName,
  reservedIdentityName,
} from './identity'
export type { IpAddress, IpFamily, Prefix } from './ip'
export {
  AddressError,
  AddressErrorCode,
  canonicalIp,
  familyBits,
  formatIp,
  formatIpv4,
  formatIpv4Bytes,
  formatIpv6Bytes,
  ipFamily,
  ipFromBigInt,
  ipToBigInt,
  isIpv4,
  isIpv6,
  makePrefix,
  mustParseIp,
  parseIp,
  parseIpv4,
  parsePrefix,
  parsePrefixOrUndefined,
  prefixBytes,
  prefixContains,
  prefixContainsIp,
  prefixMask,
  prefixOverlaps,
  readIp,
  unmapIp,
  writeIp,
} from './ip'
export {
  NAMESPACE_LABELS_PREFIX,
  POD_NAMESPACE_LABEL,
  SERVICE_ACCOUNT_LABEL,
} from './labels'
export {
  isProxyMark,
  MARK_MAGIC_MASK,
  MARK_MAGIC_PROXY,
  MarkError,
  markIdentity,
  proxyMark,
} from './marks'
export type { ProxyOrigin } from './proxy-origin'
