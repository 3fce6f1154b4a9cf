// @membrane/bandwidth: EDT egress shaping and ingress token buckets: rate parsing, throttle
// entries, models. Pure: no I/O here; host-side code (fq probing, the manager) is in
// `@membrane/bandwidth/host`.
export type { BandwidthErrorDetails } from './errors'
export { BandwidthError, BandwidthErrorCode } from './errors'
export type {
  EdtModelOptions,
  EdtModelPacket,
  EdtModelResult,
  TokenBucketModelOptions,
  TokenBucketModelPacket,
  TokenBucketModelResult,
  TracePacket,
} from './model'
export { edtModel, tokenBucketModel } from './model'
export type { Quantity } from './quantity'
export { parseQuantity, quantityCeil } from './quantity'
export type { BandwidthAnnotations, BandwidthLimit } from './rate'
export {
  EGRESS_BANDWIDTH_ANNOTATION,
  INGRESS_BANDWIDTH_ANNOTATION,
  MAX_BITS_PER_SECOND,
  MIN_BITS_PER_SECOND,
  parseBandwidth,
  parseBandwidthAnnotations,
} from './rate'
export type {
  ThrottleDirection,
  ThrottleEntryOptions,
  ThrottleKey,
  ThrottleMode,
  ThrottleValue,
} from './throttle'
export {
  bucketTokens,
  DEFAULT_BURST_NS,
  DEFAULT_HORIZON_NS,
  decodeThrottleKey,
  decodeThrottleValue,
  encodeThrottleKey,
  encodeThrottleValue,
  THROTTLE_DIRECTION,
  THROTTLE_KEY_SIZE,
  THROTTLE_MAP_NAME,
  THROTTLE_MAX_ENTRIES,
  THROTTLE_MODE,
  THROTTLE_STRUCT_CODECS,
  THROTTLE_VALUE_SIZE,
  throttleEntry,
  throttleKeyCodec,
  throttleValueCodec,
} from './throttle'
