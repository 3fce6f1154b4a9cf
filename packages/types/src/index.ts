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
export { EVENT_STRUCT_CODECS, eventCodec } from './layouts/events'
