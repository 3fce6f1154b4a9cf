/**
 * @membrane/types — the vocabulary every Membrane package shares. Each concept has its one
 * home here, and the other packages import it instead of keeping a copy.
 */
export type {
  Codec,
  CodecErrorCodeName,
  LpmKey,
  NamedField,
  PadCodec,
  StructCodec,
  StructField,
  StructFields,
  StructMembers,
  StructValue,
} from './codec'
export {
  aligned,
  array,
  be16,
  be32,
  bytes,
  CodecError,
  CodecErrorCode,
  i8,
  i16,
  i32,
  i64,
  ipv4,
  ipv6,
  lpmKey,
  mac,
  named,
  namedStructs,
  pad,
  snakeCase,
  struct,
  structAt,
  u8,
  u16,
  u32,
  u32array,
  u64,
} from './codec'
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
export type { L7Dns, L7Http, L7Kafka, L7Peer, L7Record } from './l7-record'
export {
  NAMESPACE_LABELS_PREFIX,
  POD_NAMESPACE_LABEL,
  SERVICE_ACCOUNT_LABEL,
} from './labels'
export { EVENT_STRUCT_CODECS, eventCodec } from './layouts/events'
export {
  isProxyMark,
  MARK_MAGIC_MASK,
  MARK_MAGIC_PROXY,
  MarkError,
  markIdentity,
  proxyMark,
} from './marks'
export { isNodeName, NODE_NAME_RULE } from './node'
export type { ProxyOrigin } from './proxy-origin'
